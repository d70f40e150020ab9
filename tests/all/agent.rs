//! `porin agent` as a daemon: saved edits to its manifest directory apply
//! without SIGHUP, a broken edit keeps the file's last good version in
//! force, and the HTTP API answers health checks on its unix socket.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::datapath::{API_DENY_WEB, can_run};
use porin_tests::agent::Agent;
use porin_tests::netns::Node;

const WEB: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 10);
const API: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 20);

/// Saves `name` as editors do: a temporary file renamed over it.
fn save(agent: &Agent, name: &str, yaml: &str) {
    let temporary = agent.manifests.path(&format!(".{name}.swp"));
    std::fs::write(&temporary, yaml).unwrap();
    std::fs::rename(&temporary, agent.manifests.path(name)).unwrap();
}

/// Waits until the agent has logged `revisions` applies, at most `limit`.
fn applied_within(agent: &Agent, revisions: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    while agent.stderr().matches("policy revision").count() < revisions {
        assert!(start.elapsed() < limit, "no apply within {limit:?}:\n{}", agent.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn status(agent: &Agent) -> serde_json::Value {
    let (code, body) = agent.api_get("/v1/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|err| panic!("{err}: {body}"))
}

#[test]
fn saved_edits_apply_without_sighup_and_a_broken_edit_keeps_the_last_good_version() {
    if !can_run() {
        return;
    }
    let mut node = Node::new("watch");
    let web = node.add_pod("app", "web", WEB, &[("app", "web")]);
    node.add_pod("app", "api", API, &[("app", "api")]);
    let agent = Agent::start(&node, &[("pods.yaml", &node.pod_manifests())]);
    assert_eq!(agent.api_get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(agent.api_get("/readyz"), (200, "ready\n".to_string()));
    let first = status(&agent);
    assert_eq!(first["ready"], true, "{first}");
    assert_eq!(first["endpoints"], 2, "{first}");
    assert!(first["last_error"].is_null(), "{first}");
    assert!(web.ping(API, 1000), "no policy selects api yet");

    let mut revisions = agent.stderr().matches("policy revision").count();
    save(&agent, "deny.yaml", API_DENY_WEB);
    revisions += 1;
    applied_within(&agent, revisions, Duration::from_secs(2));
    assert!(!web.ping(API, 500), "the saved deny is enforced");
    assert!(status(&agent)["revision"].as_u64() > first["revision"].as_u64());
    // The denied pings are flows: in the API and in the export file.
    let is_denied_ping = |line: &str| {
        let flow: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        let flow = &flow["flow"];
        flow["verdict"] == "DROPPED"
            && flow["l4"]["ICMPv4"]["type"] == 8
            && flow["destination"]["pod_name"] == "api"
    };
    let (code, flows) = agent.api_get("/v1/flows?verdict=DROPPED&protocol=icmp&to_pod=app/api");
    assert_eq!(code, 200, "{flows}");
    assert!(!flows.is_empty() && flows.lines().all(is_denied_ping), "{flows}");
    let exported = std::fs::read_to_string(&agent.export).unwrap();
    assert!(exported.lines().any(is_denied_ping), "{exported}");

    // A typo: reported with the file and line; the deny stays in force.
    // The same policy with a typo in a field name.
    save(&agent, "deny.yaml", &API_DENY_WEB.replace("ingressDeny:", "ingresDeny:"));
    revisions += 1;
    applied_within(&agent, revisions, Duration::from_secs(2));
    let stderr = agent.stderr();
    let report = stderr.lines().find(|l| l.contains("update failed, the policy in force stays:"));
    let report = report.unwrap_or_else(|| panic!("the broken edit is not reported:\n{stderr}"));
    assert!(
        report.contains("deny.yaml") && report.contains("line") && report.contains("ingresDeny"),
        "{report}"
    );
    assert!(!web.ping(API, 500), "the last good version of deny.yaml stays in force");
    let held_back = status(&agent);
    assert_eq!(held_back["ready"], true, "the node enforces a consistent policy: {held_back}");
    assert!(held_back["rejected"][0].as_str().is_some_and(|r| r.contains("deny.yaml")), "{held_back}");

    // Removing the file deletes its policy.
    std::fs::remove_file(agent.manifests.path("deny.yaml")).unwrap();
    revisions += 1;
    applied_within(&agent, revisions, Duration::from_secs(2));
    assert!(web.ping(API, 1000), "the deleted deny is gone");
    assert_eq!(status(&agent)["rejected"], serde_json::json!([]));
}
