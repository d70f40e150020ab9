//! Resolution: the rules that select an endpoint, turned into its
//! datapath entries and L7 rule sets.
//!
//! Per direction, the rules become grants (remote identity or any,
//! protocol, port range, optional L7 rules). Then:
//!
//! 1. Every port with L7 rules becomes a redirect for each peer allowed on
//!    it. A peer allowed there only at L3/L4 (by any rule whose ports cover
//!    the port) gets the filter's allow-all rule, so its traffic is still
//!    parsed and recorded. Rules for the same peer merge; two filters on
//!    one port is a conflict, and the port is denied until it is fixed.
//! 2. Grants without L7 become allow entries.
//! 3. Deny rules become deny entries, and every allow that overlaps a deny
//!    is removed (when covered) or shadowed by a deny at the overlap, so the
//!    most-specific lookup of [`super::resolved`] keeps deny precedence.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock};

use super::enforcement::EnforcementMode;
use super::l7::{L7Rules, RuleSets};
use super::resolved::{
    Action, DenyReason, Direction, DirectionPolicy, EndpointPolicy, PolicyEntry, PortRange, Protocol,
};
use super::rule::{Peer, PolicySpec, Port, PortProtocol, PortRule, RuleRef};
use crate::diagnostic::{Diagnostic, Location};
use crate::endpoint::NamedPorts;
use crate::identity::{Entity, IdentityTable, NumericIdentity};

/// What an L3-only rule (no `toPorts`) allows: every port and protocol.
static EVERY_PORT: LazyLock<[PortRule; 1]> = LazyLock::new(|| {
    [PortRule {
        ports: vec![PortProtocol { port: Port::Range(PortRange::ALL), protocol: Protocol::Any }],
        l7: None,
    }]
});

/// The identities a peer selects; `None` is every identity (a wildcard entry).
type Selection = Option<Arc<[NumericIdentity]>>;

/// (remote, protocol, ports): the key of a datapath entry.
type Key = (Option<NumericIdentity>, Protocol, PortRange);

struct Grant<'a> {
    remote: Option<NumericIdentity>,
    protocol: Protocol,
    ports: PortRange,
    l7: Option<&'a L7Rules>,
    origin: &'a RuleRef,
}

pub(super) struct Resolver<'a> {
    identities: &'a IdentityTable,
    selections: HashMap<&'a Peer, Selection>,
    /// Named ports of the endpoints behind each identity (egress named ports
    /// resolve against the destination), and of all endpoints together.
    remote_ports: HashMap<NumericIdentity, NamedPorts>,
    all_ports: NamedPorts,
    pub(super) rule_sets: RuleSets,
    pub(super) diagnostics: Vec<Diagnostic>,
    mode: EnforcementMode,
}

fn push_unique(origins: &mut Vec<RuleRef>, origin: &RuleRef) {
    if !origins.contains(origin) {
        origins.push(origin.clone());
    }
}

fn merge_ports(into: &mut NamedPorts, from: &NamedPorts) {
    for (name, ports) in from {
        let entry = into.entry(name.clone()).or_default();
        for port in ports {
            if !entry.contains(port) {
                entry.push(*port);
            }
        }
    }
}

/// Transports an L7 filter can be redirected on.
fn l7_transports(l7: &L7Rules) -> &'static [Protocol] {
    match l7 {
        L7Rules::Http(_) | L7Rules::Kafka(_) => &[Protocol::Tcp],
        L7Rules::Dns(_) | L7Rules::Generic { .. } => &[Protocol::Tcp, Protocol::Udp],
    }
}

/// The concrete protocols a written protocol stands for on `ports`.
fn protocols(written: Protocol, ports: PortRange, l7: Option<&L7Rules>) -> Vec<Protocol> {
    match (l7, written) {
        (Some(l7), _) => l7_transports(l7).iter().copied().filter(|p| written.covers(*p)).collect(),
        (None, Protocol::Any) if ports.is_all() => vec![Protocol::Any],
        (None, Protocol::Any) => Protocol::CONCRETE.to_vec(),
        (None, protocol) => vec![protocol],
    }
}

fn intersect(a: &Key, b: &Key) -> Option<Key> {
    let remote = match (a.0, b.0) {
        (remote, None) | (None, remote) => remote,
        (Some(x), Some(y)) if x == y => Some(x),
        _ => return None,
    };
    let protocol = match (a.1, b.1) {
        (Protocol::Any, p) | (p, Protocol::Any) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    Some((remote, protocol, a.2.intersect(b.2)?))
}

impl<'a> Resolver<'a> {
    pub(super) fn new(
        identities: &'a IdentityTable,
        endpoint_ports: Vec<(NumericIdentity, &NamedPorts)>,
        rule_sets: RuleSets,
        mode: EnforcementMode,
    ) -> Self {
        let mut remote_ports: HashMap<NumericIdentity, NamedPorts> = HashMap::new();
        let mut all_ports = NamedPorts::new();
        for (identity, ports) in endpoint_ports {
            merge_ports(remote_ports.entry(identity).or_default(), ports);
            merge_ports(&mut all_ports, ports);
        }
        Resolver {
            identities,
            selections: HashMap::new(),
            remote_ports,
            all_ports,
            rule_sets,
            diagnostics: Vec::new(),
            mode,
        }
    }

    fn select(&mut self, peer: &'a Peer) -> Selection {
        if let Some(selection) = self.selections.get(peer) {
            return selection.clone();
        }
        let identities = self.identities;
        let selection: Selection = match peer {
            Peer::All | Peer::Entity(Entity::All) => None,
            Peer::Entity(entity) => {
                Some(identities.iter().filter(|i| entity.selects(i)).map(|i| i.id).collect())
            }
            Peer::Endpoints(selector) => {
                Some(identities.iter().filter(|i| selector.matches(&i.labels)).map(|i| i.id).collect())
            }
            Peer::Cidr { net, except } => {
                let world = (net.prefix_len() == 0).then_some(crate::identity::reserved::WORLD);
                let within = identities
                    .cidrs_within(*net)
                    .filter(|(prefix, _)| !except.iter().any(|e| e.contains(prefix)))
                    .map(|(_, id)| id);
                let mut selected: Vec<NumericIdentity> = world.into_iter().chain(within).collect();
                selected.sort();
                Some(selected.into())
            }
        };
        self.selections.insert(peer, selection.clone());
        selection
    }

    /// The policy of an endpoint selected by `specs`.
    pub(super) fn endpoint_policy(
        &mut self,
        endpoint: &str,
        specs: &[&'a PolicySpec],
        local_ports: &NamedPorts,
    ) -> EndpointPolicy {
        EndpointPolicy {
            ingress: self.direction_policy(endpoint, Direction::Ingress, specs, local_ports),
            egress: self.direction_policy(endpoint, Direction::Egress, specs, local_ports),
        }
    }

    fn direction_policy(
        &mut self,
        endpoint: &str,
        direction: Direction,
        specs: &[&'a PolicySpec],
        local_ports: &NamedPorts,
    ) -> DirectionPolicy {
        let mut enforced_by = Vec::new();
        let mut grants = Vec::new();
        let mut denies = Vec::new();
        for spec in specs {
            if spec.default_deny(direction) && !enforced_by.contains(&spec.policy) {
                enforced_by.push(spec.policy.clone());
            }
            for rule in spec.rules.iter().filter(|r| r.origin.section.direction() == direction) {
                let port_rules: &'a [PortRule] = rule.ports.as_deref().unwrap_or(&*EVERY_PORT);
                let target = if rule.origin.section.is_deny() { &mut denies } else { &mut grants };
                for peer in &rule.peers {
                    let selection = self.select(peer);
                    let remotes: Vec<Option<NumericIdentity>> = match &selection {
                        None => vec![None],
                        Some(ids) => ids.iter().copied().map(Some).collect(),
                    };
                    for port_rule in port_rules {
                        for port in &port_rule.ports {
                            let l7 = port_rule.l7.as_ref();
                            for (remote, protocol, ports) in
                                self.expand(direction, port, l7, &remotes, local_ports)
                            {
                                target.push(Grant { remote, protocol, ports, l7, origin: &rule.origin });
                            }
                        }
                    }
                }
            }
        }
        let entries = self.entries(endpoint, direction, &grants, &denies);
        DirectionPolicy { enforced: self.mode.default_deny(!enforced_by.is_empty()), enforced_by, entries }
    }

    /// Concrete (remote, protocol, ports) for one written port; named ports
    /// resolve against the local endpoint (ingress) or the peer (egress).
    fn expand(
        &self,
        direction: Direction,
        port: &PortProtocol,
        l7: Option<&L7Rules>,
        remotes: &[Option<NumericIdentity>],
        local_ports: &NamedPorts,
    ) -> Vec<(Option<NumericIdentity>, Protocol, PortRange)> {
        let mut out = Vec::new();
        for remote in remotes {
            match &port.port {
                Port::Range(range) => {
                    out.extend(
                        protocols(port.protocol, *range, l7).into_iter().map(|p| (*remote, p, *range)),
                    );
                }
                Port::Named(name) => {
                    let named = match (direction, remote) {
                        (Direction::Ingress, _) => Some(local_ports),
                        (Direction::Egress, Some(id)) => self.remote_ports.get(id),
                        (Direction::Egress, None) => Some(&self.all_ports),
                    };
                    let numbers = named.and_then(|n| n.get(name)).map(Vec::as_slice).unwrap_or_default();
                    for (number, protocol) in numbers {
                        let transport_ok = l7.is_none_or(|l7| l7_transports(l7).contains(protocol));
                        if port.protocol.covers(*protocol) && transport_ok {
                            out.push((*remote, *protocol, PortRange::single(*number)));
                        }
                    }
                }
            }
        }
        out
    }

    fn entries(
        &mut self,
        endpoint: &str,
        direction: Direction,
        grants: &[Grant<'a>],
        denies: &[Grant<'a>],
    ) -> Vec<PolicyEntry> {
        let mut allowed: BTreeMap<Key, (Action, Vec<RuleRef>)> = BTreeMap::new();
        let l7_ports: BTreeSet<(Protocol, u16)> =
            grants.iter().filter(|g| g.l7.is_some()).map(|g| (g.protocol, g.ports.first)).collect();
        for (protocol, port) in l7_ports {
            let members: Vec<&Grant<'a>> =
                grants.iter().filter(|g| g.protocol.covers(protocol) && g.ports.contains(port)).collect();
            let remotes: BTreeSet<Option<NumericIdentity>> = members.iter().map(|g| g.remote).collect();
            let filters: BTreeSet<&str> = members.iter().filter_map(|g| g.l7.map(L7Rules::filter)).collect();
            if filters.len() > 1 {
                let mut origins = Vec::new();
                members.iter().for_each(|g| push_unique(&mut origins, g.origin));
                self.conflict(endpoint, direction, protocol, port, &filters, &origins);
                let action = Action::Deny { reason: DenyReason::L7ParserConflict };
                for remote in remotes {
                    allowed.insert(
                        (remote, protocol, PortRange::single(port)),
                        (action.clone(), origins.clone()),
                    );
                }
                continue;
            }
            let template = members.iter().find_map(|g| g.l7).expect("an L7 port has an L7 grant");
            for remote in remotes {
                let mut rules: Option<L7Rules> = None;
                let mut origins = Vec::new();
                for grant in members.iter().filter(|g| g.remote.is_none() || g.remote == remote) {
                    let granted = grant.l7.cloned().unwrap_or_else(|| template.allow_all());
                    match &mut rules {
                        None => rules = Some(granted),
                        Some(rules) => rules.merge(&granted),
                    }
                    push_unique(&mut origins, grant.origin);
                }
                let rules = rules.expect("every remote comes from a member");
                let action = Action::Redirect {
                    filter: rules.filter().to_string(),
                    rule_set: self.rule_sets.intern(rules),
                };
                allowed.insert((remote, protocol, PortRange::single(port)), (action, origins));
            }
        }
        for grant in grants.iter().filter(|g| g.l7.is_none()) {
            let (_, origins) = allowed
                .entry((grant.remote, grant.protocol, grant.ports))
                .or_insert_with(|| (Action::Allow, Vec::new()));
            push_unique(origins, grant.origin);
        }

        let mut denied: BTreeMap<Key, Vec<RuleRef>> = BTreeMap::new();
        for deny in denies {
            push_unique(denied.entry((deny.remote, deny.protocol, deny.ports)).or_default(), deny.origin);
        }
        let mut shadows: BTreeMap<Key, Vec<RuleRef>> = BTreeMap::new();
        allowed.retain(|key, (action, _)| {
            if !action.allows() {
                return true;
            }
            let mut keep = true;
            for (deny_key, origins) in &denied {
                match intersect(key, deny_key) {
                    Some(overlap) if overlap == *key => keep = false,
                    Some(overlap) => {
                        origins.iter().for_each(|o| push_unique(shadows.entry(overlap).or_default(), o))
                    }
                    None => {}
                }
            }
            keep
        });
        for (key, origins) in shadows {
            let entry = denied.entry(key).or_default();
            origins.iter().for_each(|o| push_unique(entry, o));
        }

        let mut entries: BTreeMap<Key, (Action, Vec<RuleRef>)> = denied
            .into_iter()
            .map(|(key, origins)| (key, (Action::Deny { reason: DenyReason::PolicyDeny }, origins)))
            .collect();
        for (key, value) in allowed {
            entries.entry(key).or_insert(value);
        }
        entries
            .into_iter()
            .map(|((remote, protocol, ports), (action, derived_from))| PolicyEntry {
                remote,
                protocol,
                ports,
                action,
                derived_from,
            })
            .collect()
    }

    fn conflict(
        &mut self,
        endpoint: &str,
        direction: Direction,
        protocol: Protocol,
        port: u16,
        filters: &BTreeSet<&str>,
        origins: &[RuleRef],
    ) {
        let rules: Vec<String> = origins.iter().map(ToString::to_string).collect();
        let filters: Vec<&str> = filters.iter().copied().collect();
        let message = format!(
            "{} port {port}/{protocol}: rules name different L7 filters ({}): {}; \
             the port is denied until they agree",
            direction.as_str(),
            filters.join(", "),
            rules.join("; ")
        );
        let location = Location { object: Some(format!("endpoint {endpoint}")), ..Location::default() };
        self.diagnostics.push(Diagnostic::error(location, message));
    }
}
