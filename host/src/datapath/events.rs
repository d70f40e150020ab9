//! Reads the datapath's ring buffer and turns its events into flows.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use super::abi::{self, FlowEvent};
use crate::flow::{EndpointIndex, Flow, Ip, L4, Ports, Timestamp, TrafficDirection, Uuid, Verdict};

/// The datapath's event ring buffer.
pub struct EventRing(RingBuf<MapData>);

impl std::fmt::Debug for EventRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventRing")
    }
}

impl AsRawFd for EventRing {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl EventRing {
    pub(super) fn new(ring: RingBuf<MapData>) -> EventRing {
        EventRing(ring)
    }

    /// Every event available now.
    pub fn drain(&mut self) -> Vec<FlowEvent> {
        let mut events = Vec::new();
        while let Some(item) = self.0.next() {
            events.extend(FlowEvent::parse(&item));
        }
        events
    }
}

/// The ring buffer, readable from tokio.
#[derive(Debug)]
pub struct EventReader {
    ring: AsyncFd<EventRing>,
}

impl EventReader {
    /// Registers the ring with the current tokio runtime.
    #[allow(unsafe_code)]
    pub fn new(ring: EventRing) -> std::io::Result<EventReader> {
        // SAFETY: the ring buffer owns its descriptor and lives inside the
        // AsyncFd, so the descriptor stays open as long as it is registered.
        let ring = unsafe { AsyncFd::register(ring) }.map_err(std::io::Error::from)?;
        Ok(EventReader { ring })
    }

    /// Waits for events and returns every one available.
    pub async fn next_batch(&mut self) -> std::io::Result<Vec<FlowEvent>> {
        loop {
            let mut guard = self.ring.readable_mut().await?;
            let events = guard.get_inner_mut().drain();
            guard.clear_ready();
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }
}

/// The flow an event stands for, enriched with `endpoints`.
pub fn flow_of(event: &FlowEvent, endpoints: &EndpointIndex, node_name: &Arc<str>) -> Flow {
    let (source, destination) = (IpAddr::from(event.saddr), IpAddr::from(event.daddr));
    let ports = Ports {
        source_port: u16::from_be_bytes(event.sport),
        destination_port: u16::from_be_bytes(event.dport),
    };
    let l4 = match event.protocol {
        6 => L4::Tcp(ports),
        17 => L4::Udp(ports),
        // The datapath puts ICMP's type and code in the source port.
        1 => L4::Icmpv4 { r#type: event.sport[0], code: event.sport[1] },
        other => L4::Other { protocol: other },
    };
    let verdict = match event.verdict {
        abi::VERDICT_FORWARDED => Verdict::Forwarded,
        abi::VERDICT_REDIRECTED => Verdict::Redirected,
        _ => Verdict::Dropped,
    };
    Flow {
        time: Timestamp::now(),
        uuid: Uuid::new(),
        verdict,
        drop_reason_desc: (verdict == Verdict::Dropped)
            .then(|| abi::drop_reason_name(event.drop_reason).into()),
        ip: Ip::new(source, destination),
        l4,
        source: endpoints.endpoint(source, event.src_identity),
        destination: endpoints.endpoint(destination, event.dst_identity),
        node_name: node_name.clone(),
        l7: None,
        traffic_direction: match event.direction {
            abi::DIR_EGRESS => TrafficDirection::Egress,
            _ => TrafficDirection::Ingress,
        },
        is_reply: event.is_reply != 0,
        policy_revoked: event.kind == abi::EVENT_REVOKED,
        proxy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_events_become_hubble_flows() {
        let event = FlowEvent {
            saddr: [10, 0, 0, 2],
            daddr: [10, 0, 0, 3],
            sport: 40000u16.to_be_bytes(),
            dport: 80u16.to_be_bytes(),
            src_identity: 256,
            dst_identity: 257,
            protocol: 6,
            kind: abi::EVENT_DROP,
            verdict: abi::VERDICT_DROPPED,
            drop_reason: abi::DROP_POLICY_DENIED,
            direction: abi::DIR_EGRESS,
            ..FlowEvent::default()
        };
        let flow = flow_of(&event, &EndpointIndex::default(), &"node-1".into());
        let json = serde_json::to_value(&flow).unwrap();
        assert_eq!(json["verdict"], "DROPPED");
        assert_eq!(json["drop_reason_desc"], "POLICY_DENIED");
        assert_eq!(json["l4"]["TCP"]["destination_port"], 80);
        assert_eq!(json["traffic_direction"], "EGRESS");
        assert_eq!(json["source"]["identity"], 256);
        assert_eq!(flow.summary(), "TCP dropped (POLICY_DENIED)");
    }

    #[test]
    fn events_parse_from_ring_buffer_bytes() {
        let mut bytes = vec![0u8; 48];
        bytes[8..12].copy_from_slice(&[10, 0, 0, 2]);
        bytes[20..24].copy_from_slice(&300u32.to_ne_bytes());
        bytes[32] = 17;
        bytes[38..40].copy_from_slice(&4000u16.to_ne_bytes());
        let event = FlowEvent::parse(&bytes).unwrap();
        assert_eq!((event.saddr, event.src_identity, event.protocol), ([10, 0, 0, 2], 300, 17));
        assert_eq!(event.proxy_port, 4000);
        assert!(FlowEvent::parse(&bytes[..47]).is_none());
    }
}
