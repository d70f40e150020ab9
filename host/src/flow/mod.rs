//! Flows: what happened to a connection or a request, under Hubble's field
//! names and meanings, so tools that read Hubble JSON read porin's.
//!
//! The datapath's events and the filters' L7 records both become a [`Flow`],
//! enriched with the endpoints' metadata at the time of the flow
//! ([`EndpointIndex`]). Flows go into a bounded [`FlowStore`]; readers
//! (the API, `porin observe`, the web UI, the exporter) select them with a
//! [`FlowFilter`].
//!
//! A flow is kept compact because the store holds tens of thousands: the
//! time and UUID are integers, endpoint metadata is shared, and the `l7`
//! object stays the JSON it is written as; the `Summary` is derived when
//! the flow is written out.

mod endpoints;
mod filter;
mod record;
mod store;
mod summary;
mod time;
mod uuid;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

pub use self::endpoints::EndpointIndex;
pub use self::filter::{FlowFilter, FlowQuery};
pub use self::record::{L7Record, parse_record};
pub use self::store::{FlowReader, FlowStore, StoredFlow};
pub use self::time::Timestamp;
pub use self::uuid::Uuid;
pub use crate::endpoint::Workload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Forwarded,
    Dropped,
    Error,
    /// Handed to the L7 proxy by the datapath.
    Redirected,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [Verdict::Forwarded, Verdict::Dropped, Verdict::Error, Verdict::Redirected];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Forwarded => "FORWARDED",
            Verdict::Dropped => "DROPPED",
            Verdict::Error => "ERROR",
            Verdict::Redirected => "REDIRECTED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficDirection {
    Ingress,
    Egress,
}

/// What is known about one side of a flow besides its identity; shared by
/// every flow of that endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<Workload>,
}

/// One side of a flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEndpoint {
    #[serde(default)]
    pub identity: u32,
    #[serde(flatten)]
    pub info: Arc<EndpointInfo>,
}

impl FlowEndpoint {
    /// `namespace/pod`, or empty for an endpoint that is not a pod.
    pub fn pod(&self) -> Option<String> {
        (!self.info.pod_name.is_empty()).then(|| format!("{}/{}", self.info.namespace, self.info.pod_name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpVersion {
    IPv4,
    IPv6,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ip {
    pub source: IpAddr,
    pub destination: IpAddr,
    #[serde(rename = "ipVersion")]
    pub ip_version: IpVersion,
}

impl Ip {
    pub fn new(source: IpAddr, destination: IpAddr) -> Ip {
        let ip_version = if source.is_ipv4() { IpVersion::IPv4 } else { IpVersion::IPv6 };
        Ip { source, destination, ip_version }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub source_port: u16,
    pub destination_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum L4 {
    #[serde(rename = "TCP")]
    Tcp(Ports),
    #[serde(rename = "UDP")]
    Udp(Ports),
    #[serde(rename = "ICMPv4")]
    Icmpv4 { r#type: u8, code: u8 },
    /// Another IP protocol, by number.
    #[serde(rename = "other")]
    Other { protocol: u8 },
}

impl L4 {
    pub fn ports(&self) -> Option<Ports> {
        match self {
            L4::Tcp(ports) | L4::Udp(ports) => Some(*ports),
            L4::Icmpv4 { .. } | L4::Other { .. } => None,
        }
    }

    /// The same with source and destination ports swapped (for replies).
    pub fn reversed(&self) -> L4 {
        let swap = |p: &Ports| Ports { source_port: p.destination_port, destination_port: p.source_port };
        match self {
            L4::Tcp(ports) => L4::Tcp(swap(ports)),
            L4::Udp(ports) => L4::Udp(swap(ports)),
            other => other.clone(),
        }
    }

    /// `TCP`, `UDP`, `ICMPv4`, or `OTHER`: a label from a fixed set.
    pub fn transport(&self) -> &'static str {
        match self {
            L4::Tcp(_) => "TCP",
            L4::Udp(_) => "UDP",
            L4::Icmpv4 { .. } => "ICMPv4",
            L4::Other { .. } => "OTHER",
        }
    }
}

/// A flow's `l7` object (`type`, `latency_ns`, and one object named after
/// the protocol: `http`, `dns`, `kafka`, or a custom filter's), kept as the
/// JSON it is written as.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct L7(Box<RawValue>);

impl PartialEq for L7 {
    fn eq(&self, other: &L7) -> bool {
        self.0.get() == other.0.get()
    }
}

impl L7 {
    /// An `l7` object; `None` if `value` is not a JSON object.
    pub fn new(value: &serde_json::Value) -> Option<L7> {
        value.is_object().then(|| L7(serde_json::value::to_raw_value(value).expect("JSON values serialize")))
    }

    /// An `l7` object from its JSON text; `None` unless it is an object.
    pub fn from_json(json: String) -> Option<L7> {
        let raw = RawValue::from_string(json).ok()?;
        raw.get().starts_with('{').then_some(L7(raw))
    }

    /// The object's JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The object, parsed.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("an L7 object is valid JSON")
    }
}

/// Which L7 filter handled a redirected flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyInfo {
    pub filter: Arc<str>,
    pub rule_set: u32,
}

/// One flow record. It serializes with Hubble's names plus the derived
/// `Type`, `event_type` and `Summary`; those three are ignored when read back.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flow {
    pub time: Timestamp,
    pub uuid: Uuid,
    pub verdict: Verdict,
    /// Why it was dropped: a Hubble drop reason name (`POLICY_DENIED`), or
    /// the proxy's words.
    #[serde(default)]
    pub drop_reason_desc: Option<Cow<'static, str>>,
    #[serde(rename = "IP")]
    pub ip: Ip,
    pub l4: L4,
    pub source: FlowEndpoint,
    pub destination: FlowEndpoint,
    pub node_name: Arc<str>,
    #[serde(default)]
    pub l7: Option<L7>,
    pub traffic_direction: TrafficDirection,
    #[serde(default)]
    pub is_reply: bool,
    /// A connection the policy allowed when it began and no longer does.
    #[serde(default)]
    pub policy_revoked: bool,
    #[serde(default)]
    pub proxy: Option<ProxyInfo>,
}

/// Hubble's flow types (`Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowType {
    L3L4,
    L7,
}

impl FlowType {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowType::L3L4 => "L3_L4",
            FlowType::L7 => "L7",
        }
    }
}

/// Cilium's monitor event types, as Hubble's `event_type.type`.
const EVENT_DROP: u8 = 1;
const EVENT_TRACE: u8 = 4;
const EVENT_POLICY_VERDICT: u8 = 5;
const EVENT_L7: u8 = 129;

impl Flow {
    /// Proxy flows are L7 flows; the datapath's are L3/L4.
    pub fn flow_type(&self) -> FlowType {
        if self.l7.is_some() || self.proxy.is_some() { FlowType::L7 } else { FlowType::L3L4 }
    }

    fn event_type(&self) -> u8 {
        match (self.flow_type(), self.verdict) {
            (FlowType::L7, _) => EVENT_L7,
            (FlowType::L3L4, Verdict::Redirected) => EVENT_TRACE,
            (FlowType::L3L4, Verdict::Forwarded) => EVENT_POLICY_VERDICT,
            (FlowType::L3L4, Verdict::Dropped | Verdict::Error) => EVENT_DROP,
        }
    }

    /// Hubble's one-line `Summary`.
    pub fn summary(&self) -> String {
        summary::of(self)
    }

    /// The flow as one JSON line of `/v1/flows` (as `hubble observe -o
    /// json` writes them): `{"flow":{...}}`.
    pub fn to_json_line(&self) -> String {
        let mut line = Vec::new();
        self.write_json_line(&mut line);
        String::from_utf8(line).expect("JSON is UTF-8")
    }

    /// Appends [`Flow::to_json_line`] without its own allocation.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"flow\":");
        serde_json::to_writer(&mut *out, self).expect("flows serialize");
        out.push(b'}');
    }
}

impl Serialize for Flow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct EventType {
            r#type: u8,
        }
        let mut s = serializer.serialize_struct("Flow", 17)?;
        s.serialize_field("time", &self.time)?;
        s.serialize_field("uuid", &self.uuid)?;
        s.serialize_field("verdict", &self.verdict)?;
        if let Some(reason) = &self.drop_reason_desc {
            s.serialize_field("drop_reason_desc", reason)?;
        }
        s.serialize_field("IP", &self.ip)?;
        s.serialize_field("l4", &self.l4)?;
        s.serialize_field("source", &self.source)?;
        s.serialize_field("destination", &self.destination)?;
        s.serialize_field("Type", self.flow_type().as_str())?;
        s.serialize_field("node_name", &self.node_name)?;
        s.serialize_field("event_type", &EventType { r#type: self.event_type() })?;
        if let Some(l7) = &self.l7 {
            s.serialize_field("l7", l7)?;
        }
        s.serialize_field("traffic_direction", &self.traffic_direction)?;
        s.serialize_field("is_reply", &self.is_reply)?;
        if self.policy_revoked {
            s.serialize_field("policy_revoked", &true)?;
        }
        if let Some(proxy) = &self.proxy {
            s.serialize_field("proxy", proxy)?;
        }
        s.serialize_field("Summary", &self.summary())?;
        s.end()
    }
}

/// The name flows carry as `node_name`: the host name, else `porin`.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "porin".into(), |h| h.trim().to_string())
}

/// The addresses and ports of a flow.
pub fn addressing(tcp: bool, source: SocketAddr, destination: SocketAddr) -> (Ip, L4) {
    let ports = Ports { source_port: source.port(), destination_port: destination.port() };
    (Ip::new(source.ip(), destination.ip()), if tcp { L4::Tcp(ports) } else { L4::Udp(ports) })
}

#[cfg(test)]
pub(crate) mod tests;
