//! Cilium's policy entities (`fromEntities` / `toEntities`).

use std::fmt;
use std::str::FromStr;

use super::{Identity, IdentityKind, NumericIdentity, reserved};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    /// Every peer, inside and outside the cluster.
    All,
    /// Everything outside the cluster: `world` and every CIDR identity.
    World,
    /// Everything inside the cluster: every workload and every reserved
    /// identity except `world`.
    Cluster,
    Host,
    RemoteNode,
    KubeApiserver,
    Health,
    Init,
    Unmanaged,
    Ingress,
}

impl Entity {
    pub const ALL: [Entity; 10] = [
        Entity::All,
        Entity::World,
        Entity::Cluster,
        Entity::Host,
        Entity::RemoteNode,
        Entity::KubeApiserver,
        Entity::Health,
        Entity::Init,
        Entity::Unmanaged,
        Entity::Ingress,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Entity::All => "all",
            Entity::World => "world",
            Entity::Cluster => "cluster",
            Entity::Host => "host",
            Entity::RemoteNode => "remote-node",
            Entity::KubeApiserver => "kube-apiserver",
            Entity::Health => "health",
            Entity::Init => "init",
            Entity::Unmanaged => "unmanaged",
            Entity::Ingress => "ingress",
        }
    }

    /// The reserved identity an entity stands for, when it is exactly one.
    pub fn reserved_identity(self) -> Option<NumericIdentity> {
        reserved::ALL.iter().find(|(_, name)| *name == self.name()).map(|(id, _)| *id)
    }

    pub fn selects(self, identity: &Identity) -> bool {
        match self {
            Entity::All => true,
            Entity::World => identity.is_world(),
            Entity::Cluster => !identity.is_world(),
            _ => identity.kind == IdentityKind::Reserved && self.reserved_identity() == Some(identity.id),
        }
    }
}

impl FromStr for Entity {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Entity::ALL.into_iter().find(|e| e.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Entity::ALL.iter().map(|e| e.name()).collect();
            format!("unknown entity `{name}`; expected one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
