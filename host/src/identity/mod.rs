//! Security identities: a label set becomes a numeric identity.
//!
//! Reserved identities use Cilium's numbers. Workload label sets get
//! identities from 256 upward; CIDR prefixes named by policy get
//! local-scope identities from 2^24 upward. Allocation sorts its inputs, so
//! the same input always yields the same numbers.

mod entity;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

pub use entity::Entity;

use crate::labels::{Label, LabelSet, Source};

/// A numeric security identity, as carried in the datapath and flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NumericIdentity(pub u32);

impl fmt::Display for NumericIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Cilium's reserved identities.
pub mod reserved {
    use super::NumericIdentity;
    pub const HOST: NumericIdentity = NumericIdentity(1);
    pub const WORLD: NumericIdentity = NumericIdentity(2);
    pub const UNMANAGED: NumericIdentity = NumericIdentity(3);
    pub const HEALTH: NumericIdentity = NumericIdentity(4);
    pub const INIT: NumericIdentity = NumericIdentity(5);
    pub const REMOTE_NODE: NumericIdentity = NumericIdentity(6);
    pub const KUBE_APISERVER: NumericIdentity = NumericIdentity(7);
    pub const INGRESS: NumericIdentity = NumericIdentity(8);

    /// Every reserved identity with its label name.
    pub const ALL: [(NumericIdentity, &str); 8] = [
        (HOST, "host"),
        (WORLD, "world"),
        (UNMANAGED, "unmanaged"),
        (HEALTH, "health"),
        (INIT, "init"),
        (REMOTE_NODE, "remote-node"),
        (KUBE_APISERVER, "kube-apiserver"),
        (INGRESS, "ingress"),
    ];
}

/// First identity for workload label sets.
pub const FIRST_ENDPOINT_IDENTITY: u32 = 256;
/// First local-scope identity (CIDR prefixes).
pub const FIRST_LOCAL_IDENTITY: u32 = 1 << 24;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "prefix")]
pub enum IdentityKind {
    Reserved,
    Endpoint,
    Cidr(IpNet),
}

#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub id: NumericIdentity,
    pub kind: IdentityKind,
    pub labels: LabelSet,
}

impl Identity {
    /// World and CIDR identities: peers outside the cluster.
    pub fn is_world(&self) -> bool {
        self.labels.contains(&Label::reserved("world"))
    }
}

/// All identities known to one policy computation.
#[derive(Debug, Clone)]
pub struct IdentityTable {
    identities: Vec<Identity>,
    by_labels: HashMap<LabelSet, NumericIdentity>,
    /// CIDR identities, longest prefix first, for IP lookups.
    prefixes: Vec<(IpNet, NumericIdentity)>,
    /// CIDR identities in address order, for "which prefixes lie within".
    by_address: Vec<(IpNet, NumericIdentity)>,
}

fn cidr_label(net: &IpNet) -> Label {
    Label::new(Source::Cidr, net.to_string(), "")
}

fn default_route(ip: &IpNet) -> IpNet {
    match ip {
        IpNet::V4(_) => "0.0.0.0/0".parse().expect("valid prefix"),
        IpNet::V6(_) => "::/0".parse().expect("valid prefix"),
    }
}

impl IdentityTable {
    /// Allocates identities for workload label sets and the CIDR prefixes
    /// that policies name (including `except` prefixes).
    pub fn build(
        endpoint_labels: impl IntoIterator<Item = LabelSet>,
        prefixes: impl IntoIterator<Item = IpNet>,
    ) -> Self {
        let mut identities: Vec<Identity> = reserved::ALL
            .iter()
            .map(|(id, name)| {
                let mut labels = vec![Label::reserved(name)];
                if *id == reserved::WORLD {
                    labels.push(Label::new(Source::Cidr, "0.0.0.0/0", ""));
                    labels.push(Label::new(Source::Cidr, "::/0", ""));
                }
                Identity { id: *id, kind: IdentityKind::Reserved, labels: LabelSet::new(labels) }
            })
            .collect();

        let mut label_sets: Vec<LabelSet> = endpoint_labels.into_iter().collect();
        label_sets.sort();
        label_sets.dedup();
        for (i, labels) in label_sets.into_iter().enumerate() {
            let id = NumericIdentity(FIRST_ENDPOINT_IDENTITY + i as u32);
            identities.push(Identity { id, kind: IdentityKind::Endpoint, labels });
        }

        let mut nets: Vec<IpNet> =
            prefixes.into_iter().map(|net| net.trunc()).filter(|n| n.prefix_len() > 0).collect();
        nets.sort();
        nets.dedup();
        let named: HashSet<IpNet> = nets.iter().copied().collect();
        for (i, net) in nets.iter().enumerate() {
            // A prefix carries the labels of every named prefix that contains
            // it, so `toCIDR: 10.0.0.0/8` selects the identity of 10.1.0.0/16.
            let mut labels = vec![Label::reserved("world"), cidr_label(&default_route(net))];
            let supernets = std::iter::successors(Some(*net), IpNet::supernet);
            labels.extend(supernets.filter(|outer| named.contains(outer)).map(|outer| cidr_label(&outer)));
            let id = NumericIdentity(FIRST_LOCAL_IDENTITY + i as u32);
            identities.push(Identity { id, kind: IdentityKind::Cidr(*net), labels: LabelSet::new(labels) });
        }

        let by_labels = identities.iter().map(|i| (i.labels.clone(), i.id)).collect();
        let mut prefixes: Vec<(IpNet, NumericIdentity)> = identities
            .iter()
            .filter_map(|i| match i.kind {
                IdentityKind::Cidr(net) => Some((net, i.id)),
                _ => None,
            })
            .collect();
        let mut by_address = prefixes.clone();
        by_address.sort();
        prefixes.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        IdentityTable { identities, by_labels, prefixes, by_address }
    }

    /// The CIDR identities whose prefix lies within `net` (itself included).
    pub fn cidrs_within(&self, net: IpNet) -> impl Iterator<Item = (IpNet, NumericIdentity)> + '_ {
        let net = net.trunc();
        // Stored prefixes are truncated, so those within `net` sit together
        // in address order, from its network address to its broadcast one.
        let start = self
            .by_address
            .partition_point(|(n, _)| (n.addr().is_ipv6(), n.addr()) < (net.addr().is_ipv6(), net.network()));
        self.by_address[start..]
            .iter()
            .take_while(move |(n, _)| {
                n.addr().is_ipv6() == net.addr().is_ipv6() && n.addr() <= net.broadcast()
            })
            .filter(move |(n, _)| n.prefix_len() >= net.prefix_len())
            .copied()
    }

    pub fn get(&self, id: NumericIdentity) -> Option<&Identity> {
        self.identities.binary_search_by_key(&id, |i| i.id).ok().map(|index| &self.identities[index])
    }

    pub fn by_labels(&self, labels: &LabelSet) -> Option<NumericIdentity> {
        self.by_labels.get(labels).copied()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Identity> {
        self.identities.iter()
    }

    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// The identity of an address outside the cluster: the longest CIDR
    /// prefix that contains it, else `world`.
    pub fn outside_identity(&self, ip: IpAddr) -> NumericIdentity {
        self.prefixes.iter().find(|(net, _)| net.contains(&ip)).map(|(_, id)| *id).unwrap_or(reserved::WORLD)
    }

    /// CIDR identities as (prefix, identity), longest prefix first.
    pub fn prefixes(&self) -> &[(IpNet, NumericIdentity)] {
        &self.prefixes
    }
}

#[cfg(test)]
mod tests;
