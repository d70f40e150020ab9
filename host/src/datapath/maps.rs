//! Keeps the datapath's maps equal to the resolved policy, by diff.
//!
//! A write computes the whole desired content first and refuses it, leaving
//! the maps untouched, when it would not fit. Otherwise it inserts and
//! updates, then removes what is stale, then bumps the revision in the
//! config map so the datapath revalidates established connections.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, bail};
use aya::maps::MapError;
use aya::maps::lpm_trie::Key;

use super::Maps;
use super::abi::*;
use crate::identity::reserved;
use crate::policy::ResolvedPolicy;
use crate::policy::resolved::{Action, DenyReason, Direction, PolicyEntry, Protocol};

/// What one write changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    pub endpoints: usize,
    pub policy_entries: usize,
    pub ipcache_entries: usize,
    pub changed: usize,
    pub removed: usize,
    pub revision: u32,
}

/// Writes resolved policy into the maps.
#[derive(Debug)]
pub struct MapWriter {
    maps: Maps,
    proxy_port: u16,
    sizes: Sizes,
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    ipcache: u32,
    endpoints: u32,
    policy: u32,
}

/// The complete desired content of the policy-bearing maps.
#[derive(Debug, Default)]
struct Desired {
    ipcache: BTreeMap<(u32, [u8; 4]), IpcacheValue>,
    endpoints: BTreeMap<[u8; 4], EndpointValue>,
    policy: BTreeMap<(u32, PolicyKey), PolicyValue>,
}

impl MapWriter {
    pub fn new(maps: Maps, proxy_port: u16, settings: &super::Settings) -> MapWriter {
        let sizes = Sizes {
            ipcache: settings.ipcache_entries,
            endpoints: settings.endpoint_entries,
            policy: settings.policy_entries,
        };
        MapWriter { maps, proxy_port, sizes }
    }

    pub fn maps(&mut self) -> &mut Maps {
        &mut self.maps
    }

    /// The datapath's counters ([`super::abi::COUNTERS`]), summed over CPUs.
    pub fn counters(&self) -> anyhow::Result<Vec<u64>> {
        (0..super::abi::COUNTERS.len() as u32)
            .map(|index| Ok(self.maps.counters.get(&index, 0)?.iter().sum()))
            .collect()
    }

    /// Makes the maps say what `policy` says for the endpoints on this node
    /// (`local`: pod address → host-side interface index; `host`: the
    /// node's own addresses).
    pub fn write(
        &mut self,
        policy: &ResolvedPolicy,
        local: &BTreeMap<Ipv4Addr, u32>,
        host: &[Ipv4Addr],
    ) -> anyhow::Result<WriteSummary> {
        let mut desired = self.desired(policy, local)?;
        for address in host {
            desired.ipcache.insert((32, address.octets()), IpcacheValue { identity: reserved::HOST.0 });
        }
        for (map, wanted, size) in [
            ("ipcache", desired.ipcache.len(), self.sizes.ipcache),
            ("endpoints", desired.endpoints.len(), self.sizes.endpoints),
            ("policy", desired.policy.len(), self.sizes.policy),
        ] {
            if wanted > size as usize {
                bail!(
                    "the {map} map needs {wanted} entries but holds {size}; raise its size \
                     (--{map}-entries); the policy in force is unchanged"
                );
            }
        }
        let mut summary = WriteSummary {
            endpoints: desired.endpoints.len(),
            policy_entries: desired.policy.len(),
            ipcache_entries: desired.ipcache.len(),
            ..WriteSummary::default()
        };

        let maps = &mut self.maps;
        let current_ipcache =
            content(maps.ipcache.iter(), |k: Key<IpcacheKey>| (k.prefix_len(), k.data().addr))?;
        let current_endpoints = content(maps.endpoints.iter(), |k: [u8; 4]| k)?;
        let current_policy = content(maps.policy.iter(), |k: Key<PolicyKey>| (k.prefix_len(), k.data()))?;

        for (&(len, addr), value) in &desired.ipcache {
            if current_ipcache.get(&(len, addr)) != Some(value) {
                maps.ipcache.insert(&Key::new(len, IpcacheKey { addr }), value, 0).context("ipcache")?;
                summary.changed += 1;
            }
        }
        for (addr, value) in &desired.endpoints {
            if current_endpoints.get(addr) != Some(value) {
                maps.endpoints.insert(addr, value, 0).context("endpoints")?;
                summary.changed += 1;
            }
        }
        for (&(len, key), value) in &desired.policy {
            if current_policy.get(&(len, key)) != Some(value) {
                maps.policy.insert(&Key::new(len, key), value, 0).context("policy")?;
                summary.changed += 1;
            }
        }
        for &(len, key) in current_policy.keys().filter(|k| !desired.policy.contains_key(k)) {
            maps.policy.remove(&Key::new(len, key)).context("policy")?;
            summary.removed += 1;
        }
        for addr in current_endpoints.keys().filter(|k| !desired.endpoints.contains_key(*k)) {
            maps.endpoints.remove(addr).context("endpoints")?;
            summary.removed += 1;
        }
        for &(len, addr) in current_ipcache.keys().filter(|k| !desired.ipcache.contains_key(k)) {
            maps.ipcache.remove(&Key::new(len, IpcacheKey { addr })).context("ipcache")?;
            summary.removed += 1;
        }

        let mut config = maps.config.get(&0, 0).context("config")?;
        config.revision = config.revision.wrapping_add(1).max(1);
        maps.config.set(0, &config, 0).context("config")?;
        summary.revision = config.revision;
        Ok(summary)
    }

    fn desired(&self, policy: &ResolvedPolicy, local: &BTreeMap<Ipv4Addr, u32>) -> anyhow::Result<Desired> {
        let mut desired = Desired::default();
        desired.ipcache.insert((0, [0; 4]), IpcacheValue { identity: reserved::WORLD.0 });
        for (net, identity) in policy.ipcache() {
            if let ipnet::IpNet::V4(net) = net {
                desired.ipcache.insert(
                    (u32::from(net.prefix_len()), net.network().octets()),
                    IpcacheValue { identity: identity.0 },
                );
            }
        }

        // Keep the ids endpoints already have, so their policy keys stay put.
        let existing: BTreeMap<[u8; 4], u32> = content(self.maps.endpoints.iter(), |k: [u8; 4]| k)?
            .into_iter()
            .map(|(addr, value)| (addr, value.id))
            .collect();
        let locals: Vec<_> = policy
            .endpoints
            .iter()
            .filter_map(|endpoint| match endpoint.ip {
                Some(IpAddr::V4(ip)) => Some((endpoint, ip, *local.get(&ip)?)),
                _ => None,
            })
            .collect();
        let mut used: BTreeSet<u32> =
            locals.iter().filter_map(|(_, ip, _)| existing.get(&ip.octets()).copied()).collect();
        let mut next_free = 1;
        for (endpoint, ip, ifindex) in locals {
            let id = match existing.get(&ip.octets()) {
                Some(&id) => id,
                None => {
                    while used.contains(&next_free) {
                        next_free += 1;
                    }
                    used.insert(next_free);
                    next_free
                }
            };
            let mut flags = 0;
            if endpoint.policy.ingress.enforced {
                flags |= ENDPOINT_F_INGRESS_ENFORCED;
            }
            if endpoint.policy.egress.enforced {
                flags |= ENDPOINT_F_EGRESS_ENFORCED;
            }
            desired
                .endpoints
                .insert(ip.octets(), EndpointValue { id, identity: endpoint.identity.0, ifindex, flags });
            for direction in [Direction::Ingress, Direction::Egress] {
                for entry in &endpoint.policy.direction(direction).entries {
                    for (len, key, value) in policy_keys(id, direction, entry, self.proxy_port) {
                        let slot = desired.policy.entry((len, key)).or_insert(value);
                        // Equal keys: the stronger action wins (deny, redirect, allow).
                        if strength(value.action) > strength(slot.action) {
                            *slot = value;
                        }
                    }
                }
            }
        }
        Ok(desired)
    }
}

/// A map's whole content, keyed by `key_of`.
pub(super) fn content<K, V, Q: Ord>(
    items: impl Iterator<Item = Result<(K, V), MapError>>,
    key_of: impl Fn(K) -> Q,
) -> anyhow::Result<BTreeMap<Q, V>> {
    let mut content = BTreeMap::new();
    for item in items {
        let (key, value) = item.context("reading a datapath map")?;
        content.insert(key_of(key), value);
    }
    Ok(content)
}

fn strength(action: u8) -> u8 {
    match action {
        ACTION_DENY => 2,
        ACTION_REDIRECT => 1,
        _ => 0,
    }
}

/// The LPM entries of one policy entry: one for "any protocol", else one
/// per aligned power-of-two block of its port range.
fn policy_keys(
    endpoint: u32,
    direction: Direction,
    entry: &PolicyEntry,
    proxy_port: u16,
) -> Vec<(u32, PolicyKey, PolicyValue)> {
    let direction = match direction {
        Direction::Ingress => DIR_INGRESS,
        Direction::Egress => DIR_EGRESS,
    };
    let identity = entry.remote.map_or(0, |r| r.0);
    let (action, drop_reason, proxy_port) = match &entry.action {
        Action::Allow => (ACTION_ALLOW, 0, 0),
        Action::Deny { reason: DenyReason::PolicyDeny | DenyReason::L7ParserConflict } => {
            (ACTION_DENY, DROP_POLICY_DENY, 0)
        }
        Action::Redirect { .. } => (ACTION_REDIRECT, 0, proxy_port),
    };
    let make = |len: u32, protocol: u8, port: u16| {
        let key = PolicyKey { endpoint, identity, direction, protocol, port: port.to_be_bytes() };
        let value = PolicyValue { action, drop_reason, prefixlen: len as u8, pad: 0, proxy_port, pad2: 0 };
        (len, key, value)
    };
    if entry.protocol == Protocol::Any {
        return vec![make(POLICY_PREFIX_FIXED, 0, 0)];
    }
    entry
        .ports
        .blocks()
        .into_iter()
        .map(|(start, bits)| {
            make(POLICY_PREFIX_FIXED + 8 + u32::from(bits), entry.protocol.ip_proto(), start)
        })
        .collect()
}
