//! Translation of policy objects into [`PolicySpec`]s, with validation.
//!
//! Each object is translated on its own: an error anywhere in it rejects
//! that object (and only it) with a diagnostic naming the field. Parts that
//! porin does not enforce yet are handled in the fail-closed direction: in
//! an allow rule they allow nothing and produce a warning; in a deny rule,
//! or where ignoring them would allow more, they are errors.

mod cilium;
mod l7;
mod netpol;

use ipnet::IpNet;

pub(super) use cilium::translate_cilium;
pub(super) use netpol::translate_network_policy;

use super::resolved::{PortRange, Protocol};
use super::rule::{Port, PortProtocol};
use crate::diagnostic::{Diagnostic, Location};
use crate::labels::{LabelKey, Source};
use crate::manifest::meta::{IntOrString, LabelSelector};
use crate::selector::{Operator, Requirement, Selector};

/// The namespace label every pod identity carries.
pub(super) const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Prefix of the namespace's own labels on pod identities.
pub(super) const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

/// Collects the diagnostics of one object.
struct Ctx<'a> {
    location: &'a Location,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    fn new(location: &'a Location) -> Self {
        Ctx { location, diagnostics: Vec::new() }
    }

    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::error(self.location.at_field(field), message));
    }

    fn warning(&mut self, field: &str, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::warning(self.location.at_field(field), message));
    }

    fn failed(&self) -> bool {
        crate::diagnostic::has_errors(&self.diagnostics)
    }

    /// Converts a label selector. Keys without a source get `default_source`;
    /// `key_prefix` is put in front of every key (NetworkPolicy namespace
    /// selectors select namespace labels).
    fn selector(
        &mut self,
        field: &str,
        selector: &LabelSelector,
        default_source: Source,
        key_prefix: &str,
    ) -> Selector {
        let key = |text: &str| {
            let key = LabelKey::parse(text, default_source.clone());
            LabelKey { key: format!("{key_prefix}{}", key.key), ..key }
        };
        let mut requirements = Vec::new();
        for (name, value) in &selector.match_labels {
            requirements.push(Requirement::equals(key(name), value.clone()));
        }
        for (i, expression) in selector.match_expressions.iter().enumerate() {
            let field = format!("{field}.matchExpressions[{i}]");
            let values = expression.values.clone();
            let op = match expression.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    self.error(&field, format!("operator {} needs at least one value", expression.operator));
                    continue;
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    self.error(&field, format!("operator {} takes no values", expression.operator));
                    continue;
                }
                "In" => Operator::In(values),
                "NotIn" => Operator::NotIn(values),
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    self.error(
                        &field,
                        format!("unknown operator `{other}`; expected In, NotIn, Exists or DoesNotExist"),
                    );
                    continue;
                }
            };
            requirements.push(Requirement { key: key(&expression.key), op });
        }
        Selector::new(requirements)
    }

    /// Parses `10.0.0.0/8` or a bare address (a /32 or /128).
    fn cidr(&mut self, field: &str, text: &str) -> Option<IpNet> {
        let parsed = text
            .parse::<IpNet>()
            .map(|net| net.trunc())
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => Some(net),
            Err(_) => {
                self.error(field, format!("invalid CIDR `{text}`; expected e.g. 10.0.0.0/8 or 192.0.2.1"));
                None
            }
        }
    }

    /// A CIDR with `except` prefixes that must lie inside it.
    fn cidr_with_except(
        &mut self,
        field: &str,
        cidr: &str,
        except: &[String],
    ) -> Option<(IpNet, Vec<IpNet>)> {
        let net = self.cidr(&format!("{field}.cidr"), cidr)?;
        let mut excepted = Vec::new();
        for (i, text) in except.iter().enumerate() {
            let field = format!("{field}.except[{i}]");
            let Some(inner) = self.cidr(&field, text) else { continue };
            if !net.contains(&inner) {
                self.error(&field, format!("except prefix {inner} is not inside {net}"));
                continue;
            }
            excepted.push(inner);
        }
        Some((net, excepted))
    }

    /// One port with optional end port and protocol.
    fn port(
        &mut self,
        field: &str,
        port: Option<&IntOrString>,
        end_port: Option<i64>,
        protocol: Protocol,
    ) -> Option<PortProtocol> {
        let number = |ctx: &mut Self, value: i64| -> Option<u16> {
            let port = u16::try_from(value).ok();
            if port.is_none() {
                ctx.error(&format!("{field}.port"), format!("port {value} is out of range 0-65535"));
            }
            port
        };
        let first = match port {
            None => None,
            Some(IntOrString::Int(value)) => Some(number(self, *value)?),
            Some(IntOrString::String(text)) => match text.parse::<i64>() {
                Ok(value) => Some(number(self, value)?),
                Err(_) => {
                    if !is_port_name(text) {
                        let message = format!(
                            "invalid port `{text}`: expected a number or a container port name \
                             (1-15 lower-case letters, digits and '-', with at least one letter)"
                        );
                        self.error(&format!("{field}.port"), message);
                        return None;
                    }
                    if end_port.is_some() {
                        self.error(&format!("{field}.endPort"), "endPort cannot be used with a named port");
                        return None;
                    }
                    return Some(PortProtocol { port: Port::Named(text.clone()), protocol });
                }
            },
        };
        let range = match (first.filter(|p| *p != 0), end_port) {
            (None, None) => PortRange::ALL,
            (None, Some(_)) => {
                self.error(&format!("{field}.endPort"), "endPort needs a non-zero port");
                return None;
            }
            (Some(first), None) => PortRange::single(first),
            (Some(first), Some(end)) => {
                let last = number(self, end)?;
                if last < first {
                    self.error(&format!("{field}.endPort"), format!("endPort {last} is below port {first}"));
                    return None;
                }
                PortRange { first, last }
            }
        };
        Some(PortProtocol { port: Port::Range(range), protocol })
    }

    fn protocol(&mut self, field: &str, protocol: Option<&str>, default: Protocol) -> Option<Protocol> {
        match protocol.map(Protocol::parse) {
            None => Some(default),
            Some(Ok(protocol)) => Some(protocol),
            Some(Err(message)) => {
                self.error(&format!("{field}.protocol"), message);
                None
            }
        }
    }
}

/// An IANA service name, as Kubernetes requires for container port names.
fn is_port_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}
