//! Validation of `toPorts[].rules`.

use porin_filter_http::RuleSet;

use super::Ctx;
use crate::manifest::cilium;
use crate::policy::l7::L7Rules;
use crate::policy::resolved::Protocol;
use crate::policy::rule::{Port, PortProtocol};

/// Kafka API keys by the names Cilium accepts in `apiKey`.
const KAFKA_API_KEYS: [&str; 34] = [
    "produce",
    "fetch",
    "offsets",
    "metadata",
    "leaderandisr",
    "stopreplica",
    "updatemetadata",
    "controlledshutdown",
    "offsetcommit",
    "offsetfetch",
    "findcoordinator",
    "joingroup",
    "heartbeat",
    "leavegroup",
    "syncgroup",
    "describegroups",
    "listgroups",
    "saslhandshake",
    "apiversions",
    "createtopics",
    "deletetopics",
    "deleterecords",
    "initproducerid",
    "offsetforleaderepoch",
    "addpartitionstotxn",
    "addoffsetstotxn",
    "endtxn",
    "writetxnmarkers",
    "txnoffsetcommit",
    "describeacls",
    "createacls",
    "deleteacls",
    "describeconfigs",
    "alterconfigs",
];

impl Ctx<'_> {
    /// Validates L7 rules and the ports they are attached to. `Ok(None)`:
    /// no L7 rules (an empty list means plain L4, as in Cilium).
    pub(super) fn l7_rules(
        &mut self,
        field: &str,
        rules: &cilium::L7Rules,
        ports: &[PortProtocol],
    ) -> Result<Option<L7Rules>, ()> {
        let kinds =
            [rules.http.is_some(), rules.kafka.is_some(), rules.dns.is_some(), rules.l7proto.is_some()];
        if kinds.iter().filter(|set| **set).count() > 1 {
            self.error(field, "only one of http, kafka, dns and l7proto may be set in one port rule");
            return Err(());
        }
        if rules.l7.is_some() && rules.l7proto.is_none() {
            self.error(&format!("{field}.l7"), "`l7` rules need `l7proto` to name the filter");
            return Err(());
        }
        let errors_before = self.diagnostics.len();
        let l7 = if let Some(http) = rules.http.as_ref().filter(|r| !r.is_empty()) {
            if let Err(err) = RuleSet::compile(http) {
                self.error(&format!("{field}.http[{}].{}", err.rule, err.field), err.message);
            }
            L7Rules::Http(http.clone())
        } else if let Some(kafka) = rules.kafka.as_ref().filter(|r| !r.is_empty()) {
            for (i, rule) in kafka.iter().enumerate() {
                self.kafka_rule(&format!("{field}.kafka[{i}]"), rule);
            }
            L7Rules::Kafka(kafka.clone())
        } else if let Some(dns) = rules.dns.as_ref().filter(|r| !r.is_empty()) {
            for (i, rule) in dns.iter().enumerate() {
                self.dns_rule(&format!("{field}.dns[{i}]"), rule);
            }
            L7Rules::Dns(dns.clone())
        } else if let Some(proto) = &rules.l7proto {
            if proto.is_empty() || !proto.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                self.error(&format!("{field}.l7proto"), format!("invalid filter name `{proto}`"));
            }
            let rules =
                rules.l7.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| vec![Default::default()]);
            L7Rules::Generic { proto: proto.clone(), rules }
        } else {
            return Ok(None);
        };
        self.l7_ports(field, &l7, ports);
        if self.diagnostics[errors_before..].iter().any(|d| d.severity == crate::diagnostic::Severity::Error)
        {
            return Err(());
        }
        Ok(Some(l7))
    }

    /// L7 rules apply to one port at a time, on a transport the filter speaks.
    fn l7_ports(&mut self, field: &str, l7: &L7Rules, ports: &[PortProtocol]) {
        if ports.is_empty() {
            self.error(&format!("{field}.ports"), "L7 rules need at least one port");
        }
        let udp_ok = !matches!(l7, L7Rules::Http(_) | L7Rules::Kafka(_));
        for (i, port) in ports.iter().enumerate() {
            let port_field = format!("{field}.ports[{i}]");
            if let Port::Range(range) = port.port
                && !(range.is_single() && range.first != 0)
            {
                let message = format!("L7 rules need a single port, not {range}");
                self.error(&format!("{port_field}.port"), message);
            }
            let transport_ok = match port.protocol {
                Protocol::Tcp | Protocol::Any => true,
                Protocol::Udp => udp_ok,
                Protocol::Sctp => false,
            };
            if !transport_ok {
                let message = format!("{} rules cannot apply to {}", l7.filter(), port.protocol);
                self.error(&format!("{port_field}.protocol"), message);
            }
        }
    }

    fn kafka_rule(&mut self, field: &str, rule: &cilium::KafkaRule) {
        if rule.role.is_some() && rule.api_key.is_some() {
            self.error(field, "role and apiKey are mutually exclusive");
        }
        if let Some(role) = &rule.role
            && !matches!(role.to_ascii_lowercase().as_str(), "produce" | "consume")
        {
            self.error(
                &format!("{field}.role"),
                format!("unknown role `{role}`; expected produce or consume"),
            );
        }
        if let Some(key) = &rule.api_key
            && !KAFKA_API_KEYS.contains(&key.to_ascii_lowercase().as_str())
        {
            self.error(&format!("{field}.apiKey"), format!("unknown Kafka apiKey `{key}`"));
        }
        if let Some(version) = &rule.api_version
            && version.parse::<i16>().map_or(true, |v| v < 0)
        {
            self.error(&format!("{field}.apiVersion"), format!("invalid apiVersion `{version}`"));
        }
        if let Some(topic) = &rule.topic {
            let valid = (1..=255).contains(&topic.len())
                && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !valid {
                self.error(&format!("{field}.topic"), format!("invalid topic `{topic}`"));
            }
        }
    }

    fn dns_rule(&mut self, field: &str, rule: &cilium::DnsRule) {
        if rule.match_name.is_none() && rule.match_pattern.is_none() {
            self.error(field, "a DNS rule needs matchName or matchPattern");
        }
        let valid = |text: &str, wildcard: bool| {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b) || (wildcard && b == b'*'))
                && !text.contains("..")
        };
        if let Some(name) = &rule.match_name
            && !valid(name, false)
        {
            self.error(&format!("{field}.matchName"), format!("invalid DNS name `{name}`"));
        }
        if let Some(pattern) = &rule.match_pattern
            && !valid(pattern, true)
        {
            self.error(&format!("{field}.matchPattern"), format!("invalid DNS pattern `{pattern}`"));
        }
    }
}
