//! BPF unit tests: the real programs run over crafted packets with
//! `BPF_PROG_TEST_RUN`, against maps the [`MapWriter`] wrote from resolved
//! policy. They need root; without it (and outside CI) they skip loudly.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};

use super::abi::{self, FlowEvent};
use super::{Datapath, EventRing, Hook, MapWriter, Settings, program};
use crate::diagnostic::Location;
use crate::endpoint::Workloads;
use crate::identity::NumericIdentity;
use crate::manifest::Manifests;
use crate::policy::resolved::{
    Action, DenyReason, DirectionPolicy, EndpointPolicy, PolicyEntry, PortRange, Protocol,
};
use crate::policy::{self, ResolvedPolicy};

const TC_ACT_SHOT: u32 = 2;
/// TC_ACT_UNSPEC (-1): pass, and let later programs run.
const TC_ACT_UNSPEC: u32 = u32::MAX;
const PROXY_PORT: u16 = 15_001;

/// The pods every test has: web (10.1.0.10), other (10.1.0.11), api (10.1.0.20).
const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: app, labels: {app: web}}
status: {podIP: 10.1.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: app, labels: {app: other}}
status: {podIP: 10.1.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: app, labels: {app: api}}
status: {podIP: 10.1.0.20}
"#;

/// web may reach api on TCP 80 and 8000-8100, except 8080; other may not.
/// The L7 port 9000 redirects.
const API_POLICY: &str = r#"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: app}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: web}}]
      toPorts:
        - ports: [{port: "80", protocol: TCP}, {port: "8000", endPort: 8100, protocol: TCP}]
        - ports: [{port: "9000", protocol: TCP}]
          rules: {http: [{method: GET}]}
  ingressDeny:
    - fromEndpoints: [{matchLabels: {app: web}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#;

const WEB: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
const API: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 20);

/// api's ingress denies everything.
const DENY_ALL: &str = r#"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: app}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress: [{}]
"#;

/// Whether BPF tests can run (as root); `tests` names them in the loud
/// skip line. In CI they must run.
pub(super) fn privileged(tests: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        assert!(std::env::var_os("CI").is_none(), "BPF tests must run in CI: run them as root");
        eprintln!("SKIPPED: {tests} need root (not in CI, so skipping)");
    }
    root
}

/// The usual start of a test: a fresh datapath with [`API_POLICY`] written,
/// and that policy; `None` (skip) without root.
fn with_api_policy() -> Option<(Loaded, ResolvedPolicy)> {
    let mut dp = Loaded::new()?;
    let policy = compiled(API_POLICY);
    dp.write(&policy);
    Some((dp, policy))
}

/// A loaded datapath under its own pin directory, removed on drop.
struct Loaded {
    datapath: Datapath,
    writer: MapWriter,
    events: EventRing,
    _pins: Pins,
}

/// Removes a pin directory, also when loading failed half-way.
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        super::uninstall_pins(&self.0).ok();
    }
}

impl Loaded {
    fn new() -> Option<Loaded> {
        Loaded::with(|_| {})
    }

    /// A datapath with `adjust`ed settings (map sizes); `None` without root.
    fn with(adjust: impl FnOnce(&mut Settings)) -> Option<Loaded> {
        if !privileged("BPF_PROG_TEST_RUN tests") {
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let pin_dir = PathBuf::from(format!(
            "/sys/fs/bpf/porin-unit-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let pins = Pins(pin_dir.clone());
        let mut settings = Settings { pin_dir, ..Settings::default() };
        adjust(&mut settings);
        let mut datapath = Datapath::load(settings.clone()).expect("the datapath loads and verifies");
        let writer = MapWriter::new(datapath.take_maps().unwrap(), PROXY_PORT, &settings);
        let events = datapath.take_events().unwrap();
        Some(Loaded { datapath, writer, events, _pins: pins })
    }

    /// Writes `policy` with every pod local on interface 1 (the loopback
    /// device `BPF_PROG_TEST_RUN` uses).
    fn write(&mut self, policy: &ResolvedPolicy) {
        self.try_write(policy).expect("maps written");
    }

    fn try_write(&mut self, policy: &ResolvedPolicy) -> anyhow::Result<super::WriteSummary> {
        let local: BTreeMap<Ipv4Addr, u32> = policy
            .endpoints
            .iter()
            .filter_map(|e| match e.ip {
                Some(std::net::IpAddr::V4(ip)) => Some((ip, 1)),
                _ => None,
            })
            .collect();
        self.writer.write(policy, &local, &[])
    }

    fn run(&mut self, hook: Hook, packet: &Packet) -> u32 {
        let bytes = packet.bytes();
        // struct __sk_buff up to `mark` (offset 8): the proxy's identity mark.
        let mut ctx = [0u8; 12];
        ctx[8..12].copy_from_slice(&packet.mark.to_ne_bytes());
        let options =
            TestRunOptions { data_in: Some(&bytes), ctx_in: Some(&ctx), ..TestRunOptions::default() };
        let ebpf = &mut self.datapath.objects.iter_mut().find(|(h, _)| *h == hook).unwrap().1;
        let program: &SchedClassifier = program(ebpf, hook).unwrap();
        program.test_run(options).expect("BPF_PROG_TEST_RUN").return_value
    }

    /// The events emitted since the last call.
    fn events(&mut self) -> Vec<FlowEvent> {
        self.events.drain()
    }
}

#[derive(Clone, Copy, Debug)]
struct Packet {
    source: Ipv4Addr,
    destination: Ipv4Addr,
    protocol: u8,
    sport: u16,
    dport: u16,
    /// TCP flags, or the ICMP type.
    flags: u8,
    mark: u32,
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

impl Packet {
    fn tcp(source: Ipv4Addr, sport: u16, destination: Ipv4Addr, dport: u16, flags: u8) -> Packet {
        Packet { source, destination, protocol: 6, sport, dport, flags, mark: 0 }
    }

    fn icmp_echo(source: Ipv4Addr, destination: Ipv4Addr) -> Packet {
        Packet { source, destination, protocol: 1, sport: 7, dport: 0, flags: 8, mark: 0 }
    }

    /// The packet as the proxy sends it on: marked with the source's identity.
    fn via_proxy(self, identity: NumericIdentity) -> Packet {
        Packet { mark: crate::proxy::mark::identity_mark(identity.0), ..self }
    }

    fn reply(self, flags: u8) -> Packet {
        Packet {
            source: self.destination,
            destination: self.source,
            sport: self.dport,
            dport: self.sport,
            flags,
            mark: 0,
            ..self
        }
    }

    /// Ethernet, IPv4 and a TCP, UDP or ICMP header.
    fn bytes(&self) -> Vec<u8> {
        let l4: Vec<u8> = match self.protocol {
            6 => {
                let mut tcp = vec![0u8; 20];
                tcp[0..2].copy_from_slice(&self.sport.to_be_bytes());
                tcp[2..4].copy_from_slice(&self.dport.to_be_bytes());
                tcp[12] = 5 << 4;
                tcp[13] = self.flags;
                tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
                tcp
            }
            17 => {
                let mut udp = vec![0u8; 8];
                udp[0..2].copy_from_slice(&self.sport.to_be_bytes());
                udp[2..4].copy_from_slice(&self.dport.to_be_bytes());
                udp[4..6].copy_from_slice(&8u16.to_be_bytes());
                udp
            }
            _ => {
                let mut icmp = vec![0u8; 8];
                icmp[0] = self.flags;
                icmp[4..6].copy_from_slice(&self.sport.to_be_bytes());
                icmp
            }
        };
        let mut packet = vec![0u8; 14];
        packet[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = self.protocol;
        ip[12..16].copy_from_slice(&self.source.octets());
        ip[16..20].copy_from_slice(&self.destination.octets());
        packet.extend(ip);
        packet.extend(l4);
        packet
    }
}

/// [`PODS`] with `policies`, compiled.
fn compiled(policies: &str) -> ResolvedPolicy {
    let mut manifests = Manifests::default();
    manifests.parse(&format!("{PODS}{policies}"), Location::default());
    let (workloads, diagnostics) = Workloads::from_manifests(&manifests);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let policy = policy::compile(&manifests, &workloads);
    assert!(policy.diagnostics.is_empty(), "{:?}", policy.diagnostics);
    policy
}

fn identity(policy: &ResolvedPolicy, pod: &str) -> NumericIdentity {
    policy.endpoint("app", pod).unwrap().identity
}

#[test]
fn ingress_policy_allows_denies_and_tracks_replies() {
    let Some((mut dp, policy)) = with_api_policy() else { return };
    let syn = Packet::tcp(WEB, 40_000, API, 80, SYN);
    // web's egress is not enforced; api's ingress allows web on 80.
    assert_eq!(dp.run(Hook::FromPod, &syn), TC_ACT_UNSPEC);
    assert_eq!(dp.run(Hook::ToPod, &syn), TC_ACT_UNSPEC);
    // The reply leaves api (from-pod) and enters web (to-pod): conntrack passes it.
    let syn_ack = syn.reply(SYN | ACK);
    assert_eq!(dp.run(Hook::FromPod, &syn_ack), TC_ACT_UNSPEC);
    assert_eq!(dp.run(Hook::ToPod, &syn_ack), TC_ACT_UNSPEC);

    // Port ranges, and the explicit deny inside the range beats the allow.
    for (port, verdict) in [(8000, TC_ACT_UNSPEC), (8100, TC_ACT_UNSPEC), (8101, TC_ACT_SHOT)] {
        assert_eq!(dp.run(Hook::ToPod, &Packet::tcp(WEB, 40_001, API, port, SYN)), verdict, "port {port}");
    }
    assert_eq!(dp.run(Hook::ToPod, &Packet::tcp(WEB, 40_002, API, 8080, SYN)), TC_ACT_SHOT);
    // Another identity: default deny.
    assert_eq!(dp.run(Hook::ToPod, &Packet::tcp(OTHER, 40_003, API, 80, SYN)), TC_ACT_SHOT);

    let events = dp.events();
    let drop_reasons: Vec<(u16, u8)> = events
        .iter()
        .filter(|e| e.kind == abi::EVENT_DROP)
        .map(|e| (u16::from_be_bytes(e.dport), e.drop_reason))
        .collect();
    assert_eq!(
        drop_reasons,
        [(8101, abi::DROP_POLICY_DENIED), (8080, abi::DROP_POLICY_DENY), (80, abi::DROP_POLICY_DENIED)]
    );
    let new_flow =
        events.iter().find(|e| e.kind == abi::EVENT_FLOW && e.direction == abi::DIR_INGRESS).unwrap();
    assert_eq!((new_flow.saddr, new_flow.daddr), (WEB.octets(), API.octets()));
    assert_eq!(
        (new_flow.src_identity, new_flow.dst_identity),
        (identity(&policy, "web").0, identity(&policy, "api").0)
    );
}

#[test]
fn a_policy_that_does_not_fit_is_refused_and_the_one_in_force_stays() {
    let Some(mut dp) = Loaded::with(|settings| settings.policy_entries = 4) else { return };
    dp.write(&compiled(""));
    let error = dp.try_write(&compiled(API_POLICY)).expect_err("more entries than the map holds");
    assert!(error.to_string().contains("the policy map needs"), "{error}");
    // Nothing of it was written: api's ingress is still not enforced.
    assert_eq!(dp.run(Hook::ToPod, &Packet::tcp(OTHER, 43_000, API, 80, SYN)), TC_ACT_UNSPEC);
    assert_eq!(dp.writer.maps().policy.iter().count(), 0, "no entry was written");
}

#[test]
fn revoking_an_allow_stops_an_established_connection() {
    let Some((mut dp, with_policy)) = with_api_policy() else { return };
    let syn = Packet::tcp(WEB, 41_000, API, 80, SYN);
    assert_eq!(dp.run(Hook::ToPod, &syn), TC_ACT_UNSPEC);
    let data = Packet::tcp(WEB, 41_000, API, 80, ACK);
    assert_eq!(dp.run(Hook::ToPod, &data), TC_ACT_UNSPEC);

    // The allow goes away but a deny-all stays: the next packet of the
    // established connection is dropped.
    dp.write(&compiled(DENY_ALL));
    dp.events();
    assert_eq!(dp.run(Hook::ToPod, &data), TC_ACT_SHOT);
    let revoked = dp.events();
    assert!(revoked.iter().any(|e| e.kind == abi::EVENT_REVOKED), "{revoked:?}");
    // The entry is gone: the next packet is judged as new, and denied.
    assert_eq!(dp.run(Hook::ToPod, &data), TC_ACT_SHOT);
    let conntrack: Vec<_> = dp.writer.maps().conntrack.iter().collect();
    assert!(conntrack.is_empty(), "{conntrack:?}");

    // Allowing again lets new connections through.
    dp.write(&with_policy);
    assert_eq!(dp.run(Hook::ToPod, &Packet::tcp(WEB, 41_001, API, 80, SYN)), TC_ACT_UNSPEC);
}

#[test]
fn l7_ports_are_redirected_and_fail_closed_without_a_proxy() {
    let Some((mut dp, policy)) = with_api_policy() else { return };
    // api's ingress rule on 9000 is L7: web's packet is steered at web's
    // from-pod hook. No proxy listens in the test's namespace: dropped.
    let syn = Packet::tcp(WEB, 42_000, API, 9000, SYN);
    assert_eq!(dp.run(Hook::FromPod, &syn), TC_ACT_SHOT);
    let events = dp.events();
    assert_eq!(events.last().map(|e| e.drop_reason), Some(abi::DROP_PROXY_LOOKUP_FAILED), "{events:?}");

    // With a transparent listener on the proxy port, the lookup finds it.
    // (The assignment itself needs a real ingress path, which
    // BPF_PROG_TEST_RUN is not; the netns tests cover it.)
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.set_reuse_address(true).unwrap();
    listener.set_ip_transparent(true).unwrap();
    listener.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], PROXY_PORT)).into()).unwrap();
    listener.listen(8).unwrap();
    dp.run(Hook::FromPod, &Packet::tcp(WEB, 42_001, API, 9000, SYN));
    let events = dp.events();
    assert_eq!(events.last().map(|e| e.drop_reason), Some(abi::DROP_PROXY_SET_FAILED), "{events:?}");

    // At api's to-pod hook, only the proxy (identity mark) may use an L7 port.
    let direct = Packet::tcp(WEB, 42_002, API, 9000, SYN);
    assert_eq!(dp.run(Hook::ToPod, &direct), TC_ACT_SHOT);
    let proxied = Packet { sport: 42_003, ..direct }.via_proxy(identity(&policy, "web"));
    assert_eq!(dp.run(Hook::ToPod, &proxied), TC_ACT_UNSPEC);
}

#[test]
fn icmp_echo_follows_l3_policy_and_replies_pass() {
    let Some((mut dp, _)) = with_api_policy() else { return };
    let echo = Packet::icmp_echo(WEB, API);
    // api's ingress names ports only, so ICMP is default-denied...
    assert_eq!(dp.run(Hook::ToPod, &echo), TC_ACT_SHOT);
    // ...and allowed when nothing enforces ingress; the echo reply passes back.
    dp.write(&compiled(""));
    assert_eq!(dp.run(Hook::FromPod, &echo), TC_ACT_UNSPEC);
    assert_eq!(dp.run(Hook::ToPod, &echo), TC_ACT_UNSPEC);
    let reply = Packet { source: API, destination: WEB, flags: 0, ..echo };
    assert_eq!(dp.run(Hook::FromPod, &reply), TC_ACT_UNSPEC);
    assert_eq!(dp.run(Hook::ToPod, &reply), TC_ACT_UNSPEC);
}

/// A tiny deterministic generator (no dependency for one test).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The programs decide exactly as [`DirectionPolicy::lookup`] does, for
/// random entry sets (identities, protocols, port ranges, actions) and
/// random packets.
#[test]
fn the_datapath_decides_like_the_policy_engine() {
    let Some(mut dp) = Loaded::new() else { return };
    let base = compiled("");
    let identities: Vec<NumericIdentity> = base.endpoints.iter().map(|e| e.identity).collect();
    let mut rng = XorShift(0x5eed_cafe);
    let mut sport = 20_000u16;
    for round in 0..20 {
        let mut entries = Vec::new();
        for _ in 0..rng.below(12) + 1 {
            let protocol = [Protocol::Any, Protocol::Tcp, Protocol::Udp][rng.below(3) as usize];
            let ports = match protocol {
                Protocol::Any => PortRange::ALL,
                _ => {
                    let first = 75 + rng.below(20) as u16;
                    PortRange { first, last: first + rng.below(8) as u16 }
                }
            };
            let action = match rng.below(3) {
                0 => Action::Deny { reason: DenyReason::PolicyDeny },
                1 => Action::Allow,
                _ => Action::Redirect { filter: "http".into(), rule_set: porin_sdk::RuleSetId(1) },
            };
            let remote = (rng.below(2) == 0).then(|| identities[rng.below(identities.len() as u64) as usize]);
            entries.push(PolicyEntry { remote, protocol, ports, action, derived_from: Vec::new() });
        }
        let ingress = DirectionPolicy { enforced: rng.below(2) == 0, enforced_by: Vec::new(), entries };
        let mut policy = base.clone();
        let api = policy.endpoints.iter_mut().find(|e| e.name == "api").unwrap();
        api.policy = Arc::new(EndpointPolicy { ingress, egress: DirectionPolicy::default() });
        let expected_policy = api.policy.clone();
        dp.write(&policy);
        for _ in 0..40 {
            let (source, identity) =
                if rng.below(2) == 0 { (WEB, identities[0]) } else { (OTHER, identities[1]) };
            let protocol = if rng.below(2) == 0 { Protocol::Tcp } else { Protocol::Udp };
            let port = 70 + rng.below(35) as u16;
            sport += 1;
            // Through the proxy, so a redirect entry counts as allowed here.
            let packet =
                Packet { protocol: protocol.ip_proto(), ..Packet::tcp(source, sport, API, port, SYN) }
                    .via_proxy(identity);
            let lookup = expected_policy.ingress.lookup(identity, protocol, port);
            let want = if lookup.allowed() { TC_ACT_UNSPEC } else { TC_ACT_SHOT };
            assert_eq!(
                dp.run(Hook::ToPod, &packet),
                want,
                "round {round}: {protocol} {port} from {identity:?}: {lookup:?}"
            );
        }
    }
}
