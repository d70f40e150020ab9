//! ABI v1: the names, numbers and encodings the host and filters share.
//! `sdk/ABI.md` is the specification; this module is its definition in code.

/// The ABI version this SDK implements; exported by every filter as
/// `porin_abi_version`.
pub const ABI_VERSION: u32 = 1;

/// Module name of the functions the host provides.
pub const IMPORT_MODULE: &str = "porin";

/// Functions a filter exports.
pub mod exports {
    /// Returns the ABI version (`() -> i32`).
    pub const ABI_VERSION: &str = "porin_abi_version";
    /// Returns the address of an input buffer of at least `len` bytes (`(len) -> ptr`).
    pub const BUFFER: &str = "porin_buffer";
    /// Adds or replaces rule set `id` from the JSON in the buffer (`(id, len) -> status`).
    pub const RULES_SET: &str = "porin_rules_set";
    /// Removes rule set `id` (`(id)`).
    pub const RULES_REMOVE: &str = "porin_rules_remove";
    /// Opens stream `id` with the metadata in the buffer (`(id, len) -> status`).
    pub const STREAM_OPEN: &str = "porin_stream_open";
    /// Hands buffered stream bytes to the filter (`(id, flags, len) -> status`).
    pub const STREAM_DATA: &str = "porin_stream_data";
    /// Closes stream `id` (`(id)`).
    pub const STREAM_CLOSE: &str = "porin_stream_close";
    /// Opens datagram flow `id` with the metadata in the buffer (`(id, len) -> status`).
    pub const DATAGRAM_OPEN: &str = "porin_datagram_open";
    /// Decides one datagram (`(id, flags, len) -> verdict`).
    pub const DATAGRAM: &str = "porin_datagram";
    /// Closes datagram flow `id` (`(id)`).
    pub const DATAGRAM_CLOSE: &str = "porin_datagram_close";
    /// The exported linear memory.
    pub const MEMORY: &str = "memory";
}

/// Functions the host provides (in module [`IMPORT_MODULE`](super::IMPORT_MODULE)).
pub mod imports {
    /// Emits one stream operation (`(op, arg: i64, ptr, len)`).
    pub const OP: &str = "op";
    /// Emits one L7 record, a JSON object (`(ptr, len)`).
    pub const RECORD: &str = "record";
    /// Writes a log line (`(level, ptr, len)`).
    pub const LOG: &str = "log";
    /// Returns monotonic time in nanoseconds (`() -> i64`).
    pub const NOW_NS: &str = "now_ns";
    /// Sets the error message of the current failing call (`(ptr, len)`).
    pub const ERROR: &str = "error";
}

/// Operation codes passed to the `op` import.
pub mod op {
    /// Need `arg` more bytes (at least 1) before deciding.
    pub const MORE: i32 = 1;
    /// Forward `arg` bytes; `arg` may exceed what is buffered.
    pub const PASS: i32 = 2;
    /// Discard `arg` bytes; `arg` may exceed what is buffered.
    pub const DROP: i32 = 3;
    /// Send the bytes at `ptr`/`len`: `arg` 0 in the current direction,
    /// `arg` 1 back to the sender of the current data.
    pub const INJECT: i32 = 4;
    /// Close the connection; `arg` is an error code, `ptr`/`len` a reason.
    pub const ERROR: i32 = 5;
}

/// `arg` values of [`op::INJECT`].
pub mod inject {
    /// Inject in the current direction.
    pub const FORWARD: i64 = 0;
    /// Inject back towards the sender of the current data.
    pub const REPLY: i64 = 1;
}

/// Bits of the `flags` argument of `porin_stream_data` and `porin_datagram`.
pub mod flags {
    /// The data flows from the destination back to the source.
    pub const REPLY: i32 = 1;
    /// The sender closed its side; no more data follows in this direction.
    pub const END_STREAM: i32 = 2;
    /// The destination could not be reached (set with REPLY and END_STREAM,
    /// no data): the filter may answer the source, then the host closes.
    pub const UPSTREAM_FAILED: i32 = 4;
}

/// Return values of `porin_datagram`.
pub mod datagram {
    /// Forward the datagram.
    pub const PASS: i32 = 0;
    /// Drop the datagram silently.
    pub const DROP: i32 = 1;
    /// Drop the datagram and send the injected reply bytes back instead.
    pub const REPLY: i32 = 2;
}

/// Levels of the `log` import.
pub mod log {
    /// Errors.
    pub const ERROR: i32 = 0;
    /// Warnings.
    pub const WARN: i32 = 1;
    /// Normal operation.
    pub const INFO: i32 = 2;
    /// Details.
    pub const DEBUG: i32 = 3;
}

/// Direction of the policy that redirected a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrafficDirection {
    /// Enforced at the source endpoint.
    Egress = 0,
    /// Enforced at the destination endpoint.
    Ingress = 1,
}

/// One side of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peer {
    /// Security identity.
    pub identity: u32,
    /// Address and port.
    pub address: Option<std::net::SocketAddr>,
    /// Kubernetes namespace, empty when not a pod.
    pub namespace: String,
    /// Pod name, empty when not a pod.
    pub pod: String,
    /// Identity labels, `source:key=value`.
    pub labels: Vec<String>,
}

/// What the host tells a filter about a connection (or datagram flow) when
/// it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionMeta {
    /// The L7 rule set that applies.
    pub rule_set: u32,
    /// Which endpoint's policy redirected the connection.
    pub direction: TrafficDirection,
    /// The side that opened the connection.
    pub source: Peer,
    /// The side it connects to.
    pub destination: Peer,
}

/// Errors decoding connection metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError(pub &'static str);

impl ConnectionMeta {
    /// Encodes as ABI.md describes: a little-endian header, then for each of
    /// source and destination: identity, port, address, namespace, pod and
    /// labels (strings as u16 length + UTF-8 bytes; labels joined by '\n').
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&ABI_VERSION.to_le_bytes());
        out.extend_from_slice(&self.rule_set.to_le_bytes());
        out.push(self.direction as u8);
        for peer in [&self.source, &self.destination] {
            out.extend_from_slice(&peer.identity.to_le_bytes());
            let (family, port, ip) = match peer.address {
                None => (0u8, 0u16, [0u8; 16]),
                Some(std::net::SocketAddr::V4(a)) => {
                    let mut ip = [0u8; 16];
                    ip[..4].copy_from_slice(&a.ip().octets());
                    (4, a.port(), ip)
                }
                Some(std::net::SocketAddr::V6(a)) => (6, a.port(), a.ip().octets()),
            };
            out.push(family);
            out.extend_from_slice(&port.to_le_bytes());
            out.extend_from_slice(&ip);
            for text in [peer.namespace.as_str(), peer.pod.as_str(), &peer.labels.join("\n")] {
                let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
                out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    /// Decodes [`ConnectionMeta::encode`]'s output; never panics on bad input.
    pub fn decode(bytes: &[u8]) -> Result<ConnectionMeta, MetaError> {
        let mut reader = Reader { bytes };
        if reader.u32()? != ABI_VERSION {
            return Err(MetaError("unknown metadata version"));
        }
        let rule_set = reader.u32()?;
        let direction = match reader.u8()? {
            0 => TrafficDirection::Egress,
            1 => TrafficDirection::Ingress,
            _ => return Err(MetaError("bad direction")),
        };
        let mut peers = [Peer::default(), Peer::default()];
        for peer in &mut peers {
            peer.identity = reader.u32()?;
            let family = reader.u8()?;
            let port = u16::from_le_bytes([reader.u8()?, reader.u8()?]);
            let ip: [u8; 16] = reader.take(16)?.try_into().map_err(|_| MetaError("short address"))?;
            peer.address = match family {
                0 => None,
                4 => Some(std::net::SocketAddr::from(([ip[0], ip[1], ip[2], ip[3]], port))),
                6 => Some(std::net::SocketAddr::from((ip, port))),
                _ => return Err(MetaError("bad address family")),
            };
            peer.namespace = reader.string()?;
            peer.pod = reader.string()?;
            let labels = reader.string()?;
            peer.labels = labels.split('\n').filter(|l| !l.is_empty()).map(str::to_string).collect();
        }
        let [source, destination] = peers;
        Ok(ConnectionMeta { rule_set, direction, source, destination })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MetaError> {
        if self.bytes.len() < n {
            return Err(MetaError("truncated metadata"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, MetaError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, MetaError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| MetaError("short"))?))
    }

    fn string(&mut self) -> Result<String, MetaError> {
        let len = u16::from_le_bytes([self.u8()?, self.u8()?]) as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| MetaError("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_rejects_garbage() {
        let meta = ConnectionMeta {
            rule_set: 7,
            direction: TrafficDirection::Ingress,
            source: Peer {
                identity: 258,
                address: Some("10.0.0.1:40000".parse().unwrap()),
                namespace: "frontend".into(),
                pod: "web".into(),
                labels: vec!["k8s:app=web".into(), "k8s:io.kubernetes.pod.namespace=frontend".into()],
            },
            destination: Peer {
                identity: 2,
                address: Some("[2001:db8::1]:443".parse().unwrap()),
                ..Peer::default()
            },
        };
        let bytes = meta.encode();
        assert_eq!(ConnectionMeta::decode(&bytes), Ok(meta));
        for cut in 0..bytes.len() {
            assert!(ConnectionMeta::decode(&bytes[..cut]).is_err(), "{cut}");
        }
    }
}
