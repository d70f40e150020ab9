//! The Kubernetes source against a test API server speaking the real
//! list/watch protocol (`porin_tests::apiserver`): initial lists, watch
//! events, bookmarks, `410 Gone`, errors and reconnects, missing CRDs,
//! policy events, and FilterModules with their status.

use std::time::Duration;

use base64::Engine as _;
use porin::filter::{BUILTIN_FILTERS, FilterRegistry, RuntimeConfig};
use porin::k8s::{Cluster, ClusterSettings};
use porin::manifest::Body;
use porin::reading::Reading;
use porin_tests::TempDir;
use porin_tests::apiserver::{self, ApiServer, CNPS, CONFIG_MAPS, FILTER_MODULES, PODS, Resource};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The objects of a multi-document YAML text.
fn objects_of(text: &str) -> Vec<Value> {
    let documents = text.split("\n---\n").filter(|d| !d.trim().is_empty());
    documents.map(|document| serde_yaml::from_str(document).unwrap()).collect()
}

/// The objects of the fixture cluster (`tests/fixtures/k8s/cluster.yaml`).
fn fixture_objects() -> Vec<Value> {
    objects_of(&std::fs::read_to_string(porin_tests::fixture("k8s/cluster.yaml")).unwrap())
}

fn load(server: &ApiServer, objects: Vec<Value>) {
    for object in objects {
        server.apply(resource_of(&object), object);
    }
}

fn resource_of(object: &Value) -> Resource {
    *apiserver::ALL
        .iter()
        .find(|r| r.kind == object["kind"] && r.api_version == object["apiVersion"])
        .unwrap_or_else(|| panic!("not served: {object}"))
}

/// A cluster source watching `server`, as node `node-a` in namespace `porin`.
struct Watching {
    cluster: Cluster,
    in_force: Reading,
    _kubeconfig: TempDir,
}

impl Watching {
    async fn start(server: &ApiServer) -> Watching {
        let dir = TempDir::new("kubeconfig");
        std::fs::write(dir.path("config"), server.kubeconfig()).unwrap();
        let client = porin::k8s::client(Some(&dir.path("config"))).await.unwrap();
        let settings = ClusterSettings { node_name: "node-a".into(), namespace: "porin".into() };
        Watching {
            cluster: Cluster::start(client, &settings),
            in_force: Reading::default(),
            _kubeconfig: dir,
        }
    }

    /// Reads until `done` holds for the reading, and takes that reading
    /// as in force.
    async fn read_until(&mut self, what: &str, done: impl Fn(&Reading) -> bool) -> Reading {
        for _ in 0..300 {
            if let Some(reading) = self.cluster.read(&self.in_force)
                && done(&reading)
            {
                self.in_force = reading.clone();
                return reading;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not read within 15 s: {what}; waiting for {:?}", self.cluster.waiting_for());
    }
}

fn names(reading: &Reading) -> Vec<String> {
    reading.manifests().objects.iter().filter_map(|object| object.location.object.clone()).collect()
}

/// Whether a reading holds the object `Kind ns/name`.
fn has(name: &str) -> impl Fn(&Reading) -> bool + '_ {
    move |reading| names(reading).iter().any(|n| n == name)
}

fn lacks(name: &str) -> impl Fn(&Reading) -> bool + '_ {
    move |reading| !has(name)(reading)
}

fn pod_ip(reading: &Reading, name: &str) -> Option<String> {
    reading.manifests().objects.iter().find_map(|object| match &object.body {
        Body::Pod(pod) if pod.metadata.name == name => Some(pod.status.pod_ip.clone()),
        _ => None,
    })?
}

fn pod(namespace: &str, name: &str, app: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
           "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
           "status": {"phase": "Running", "podIP": ip}})
}

fn count(server: &ApiServer, prefix: &str) -> usize {
    server.requests().iter().filter(|r| r.starts_with(prefix) && !r.contains("watch=")).count()
}

#[tokio::test]
async fn every_kind_is_listed_then_watched_and_read_as_the_same_manifests_as_files() {
    let server = ApiServer::start();
    load(&server, fixture_objects());
    let mut watching = Watching::start(&server).await;
    let reading =
        watching.read_until("the fixture", has("CiliumClusterwideNetworkPolicy deny-world-to-backend")).await;
    let names = names(&reading);
    for expected in [
        "Namespace frontend",
        "Pod frontend/web-7d9c6b5f4-x2x9k",
        "Pod backend/api-0",
        "Service backend/api",
        "EndpointSlice backend/api-4h7sd",
        "CiliumNetworkPolicy backend/api-from-web",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    assert_eq!(reading.rejections().count(), 0, "{:?}", reading.rejections().collect::<Vec<_>>());
    assert_eq!(pod_ip(&reading, "api-0").as_deref(), Some("10.244.2.20"));
    assert_eq!(pod_ip(&reading, "kube-proxy-abcde"), None, "a host-network pod's address is the node's");
    assert_eq!(pod_ip(&reading, "migrate-xyz"), None, "a finished pod released its address");

    for resource in apiserver::ALL {
        let listed = server
            .requests()
            .iter()
            .any(|r| r.contains(&format!("/{}?", resource.plural)) && !r.contains("watch="));
        let watched = server.requests().iter().any(|r| {
            r.contains(&format!("/{}?", resource.plural))
                && r.contains("watch=true")
                && r.contains("allowWatchBookmarks=true")
        });
        assert!(
            listed && watched,
            "{} listed {listed}, watched {watched}: {:?}",
            resource.plural,
            server.requests()
        );
    }
    assert!(
        server.requests().iter().any(|r| r.starts_with("GET /api/v1/namespaces/porin/configmaps?")),
        "ConfigMaps are read in the agent's namespace only: {:?}",
        server.requests()
    );
}

#[tokio::test]
async fn watch_events_apply_and_a_bookmark_resumes_the_watch_without_a_relist() {
    let server = ApiServer::start();
    load(&server, fixture_objects());
    let mut watching = Watching::start(&server).await;
    watching.read_until("the fixture", has("Pod backend/api-0")).await;

    server.apply(PODS, pod("frontend", "new", "web", "10.244.1.11"));
    watching.read_until("ADDED", has("Pod frontend/new")).await;
    server.apply(PODS, pod("frontend", "new", "web", "10.244.1.12"));
    watching.read_until("MODIFIED", |r| pod_ip(r, "new").as_deref() == Some("10.244.1.12")).await;
    server.delete(PODS, "frontend", "new");
    watching.read_until("DELETED", lacks("Pod frontend/new")).await;

    let lists = count(&server, "GET /api/v1/pods?");
    server.bookmark();
    let bookmarked = server.resource_version();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.cut_watches();
    let resumed = format!("resourceVersion={bookmarked}");
    let mut watch_from_bookmark = false;
    for _ in 0..200 {
        let requests = server.requests();
        watch_from_bookmark =
            requests.iter().any(|r| r.starts_with("GET /api/v1/pods?") && r.contains(&resumed));
        if watch_from_bookmark {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        watch_from_bookmark,
        "the watch resumes from the bookmark {bookmarked}: {:?}",
        &server.requests()[9..]
    );
    assert_eq!(count(&server, "GET /api/v1/pods?"), lists, "no relist after a cut watch");
    server.apply(PODS, pod("frontend", "after-cut", "web", "10.244.1.13"));
    watching.read_until("an event after the reconnect", has("Pod frontend/after-cut")).await;
}

#[tokio::test]
async fn gone_relists_and_objects_deleted_meanwhile_disappear() {
    let server = ApiServer::start();
    load(&server, fixture_objects());
    let mut watching = Watching::start(&server).await;
    watching.read_until("the fixture", has("Pod backend/api-0")).await;
    let lists = count(&server, "GET /api/v1/pods?");

    // Deleted while no watch saw it, and history compacted: 410 Gone.
    server.delete_and_compact(PODS, "backend", "api-0");
    watching.read_until("the relist", lacks("Pod backend/api-0")).await;
    assert!(count(&server, "GET /api/v1/pods?") > lists, "410 Gone makes the watcher relist");
    assert!(has("Pod frontend/web-7d9c6b5f4-x2x9k")(&watching.in_force), "the rest stays");
}

#[tokio::test]
async fn api_server_errors_keep_the_last_known_state_until_it_answers_again() {
    let server = ApiServer::start();
    load(&server, fixture_objects());
    let mut watching = Watching::start(&server).await;
    let before = watching.read_until("the fixture", has("Pod backend/api-0")).await;

    server.fail_with(Some(500));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = watching.cluster.read(&watching.in_force).expect("still readable");
    assert_eq!(names(&during), names(&before), "an API server answering errors changes nothing");
    server.fail_with(Some(503));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(names(&watching.cluster.read(&watching.in_force).unwrap()), names(&before));

    server.fail_with(None);
    server.apply(PODS, pod("frontend", "back", "web", "10.244.1.14"));
    watching.read_until("a change once the server answers again", has("Pod frontend/back")).await;
}

#[tokio::test]
async fn a_cluster_without_ciliums_or_porins_crds_is_read_without_them() {
    let server = ApiServer::start();
    load(&server, fixture_objects());
    for absent in [apiserver::CNPS, apiserver::CCNPS, FILTER_MODULES] {
        server.remove_collection(absent);
    }
    let mut watching = Watching::start(&server).await;
    let reading = watching.read_until("the fixture", has("Pod backend/api-0")).await;
    assert!(!names(&reading).iter().any(|n| n.starts_with("Cilium")), "{:?}", names(&reading));
}

#[tokio::test]
async fn nothing_is_read_before_every_kind_was_listed() {
    let server = ApiServer::start();
    server.fail_with(Some(403));
    let mut watching = Watching::start(&server).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(watching.cluster.read(&Reading::default()).is_none(), "no reading before the lists");
    let waiting = watching.cluster.waiting_for().unwrap();
    assert!(waiting.contains("v1 pods") && waiting.contains("403"), "{waiting}");
    server.fail_with(None);
    load(&server, fixture_objects());
    watching.read_until("the lists once allowed", has("Pod backend/api-0")).await;
}

/// The events posted so far with `reason`, as (object name, note).
fn events(server: &ApiServer, reason: &str) -> Vec<(String, String)> {
    server
        .posted_events()
        .iter()
        .filter(|event| event["reason"] == reason)
        .map(|event| {
            assert_eq!(event["reportingInstance"], "node-a", "{event}");
            assert_eq!(event["reportingController"], "porin-agent", "{event}");
            (
                event["regarding"]["name"].as_str().unwrap().to_string(),
                event["note"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn wait_for_events(server: &ApiServer, reason: &str, n: usize) -> Vec<(String, String)> {
    for _ in 0..100 {
        if events(server, reason).len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    events(server, reason)
}

#[tokio::test]
async fn policies_get_an_event_when_applied_or_rejected_with_the_error() {
    let server = ApiServer::start();
    load(&server, fixture_objects());
    let mut watching = Watching::start(&server).await;
    let first = watching.read_until("the fixture", has("CiliumNetworkPolicy backend/api-from-web")).await;
    watching.cluster.report(&Reading::default(), &first, Ok(7));
    let applied = wait_for_events(&server, "PolicyApplied", 2).await;
    assert!(
        applied.contains(&("api-from-web".into(), "enforced on node node-a (policy revision 7)".into())),
        "{applied:?}"
    );
    assert!(applied.iter().any(|(name, _)| name == "deny-world-to-backend"), "{applied:?}");
    assert_eq!(applied.len(), 2, "pods and services get no events: {applied:?}");

    // Unchanged policies are not reported again.
    watching.cluster.report(&first, &first, Ok(8));
    let mut broken = fixture_objects().into_iter().find(|o| o["metadata"]["name"] == "api-from-web").unwrap();
    broken["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["port"] = json!("99999");
    server.apply(CNPS, broken);
    let mut second = watching.cluster.read(&first).unwrap();
    for _ in 0..100 {
        if second.rejections().count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        second = watching.cluster.read(&first).unwrap();
    }
    assert!(second.rejections().count() > 0, "the broken edit is rejected");
    assert!(has("CiliumNetworkPolicy backend/api-from-web")(&second), "its last valid version stays");
    watching.cluster.report(&first, &second, Ok(9));
    let rejected = wait_for_events(&server, "PolicyRejected", 1).await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].0, "api-from-web");
    assert!(
        rejected[0].1.contains("99999") && rejected[0].1.contains("last valid version stays"),
        "{}",
        rejected[0].1
    );
    assert_eq!(events(&server, "PolicyApplied").len(), 2, "nothing unchanged was reported again");

    watching.cluster.report(&Reading::default(), &first, Err("the datapath's maps are full"));
    let failed = wait_for_events(&server, "PolicyNotApplied", 2).await;
    assert!(failed.iter().all(|(_, note)| note.contains("maps are full")), "{failed:?}");
}

fn filter_module(name: &str, source: Value) -> Value {
    json!({"apiVersion": "porin.dev/v1alpha1", "kind": "FilterModule", "metadata": {"name": name},
           "spec": {"source": source, "limits": {"memory": "32Mi", "cpu": "20ms"}, "failMode": "Closed"}})
}

/// Syncs the modules until `name`'s reported status satisfies `done`.
async fn synced_status(
    watching: &mut Watching,
    server: &ApiServer,
    registry: &FilterRegistry,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/apis/porin.dev/v1alpha1/filtermodules/{name}/status");
    for _ in 0..200 {
        watching.cluster.sync_modules(registry);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let last = server.status_patches().into_iter().rev().find(|(p, _)| *p == path);
        if let Some((_, patch)) = last {
            let status = patch["status"]["nodes"]["node-a"].clone();
            if done(&status) {
                return status;
            }
        }
    }
    panic!("no status for {name}: {:?}", server.status_patches());
}

#[tokio::test]
async fn filter_modules_load_from_a_config_map_or_a_pinned_url_and_report_their_status() {
    let server = ApiServer::start();
    load(&server, fixture_objects());
    let (_, http) = BUILTIN_FILTERS.iter().find(|(name, _)| *name == "http").unwrap();
    let sha256: String = Sha256::digest(http).iter().map(|b| format!("{b:02x}")).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(http);
    server.apply(
        CONFIG_MAPS,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-filter", "namespace": "porin"}, "binaryData": {"web.wasm": encoded}}),
    );
    server.apply(
        FILTER_MODULES,
        filter_module("web", json!({"configMap": {"name": "web-filter", "key": "web.wasm"}})),
    );
    server.serve_file("remote.wasm", http);
    let url = format!("http://127.0.0.1:{}/files/remote.wasm", server.port);
    server.apply(FILTER_MODULES, filter_module("pinned", json!({"url": url, "sha256": sha256})));
    server.apply(FILTER_MODULES, filter_module("tampered", json!({"url": url, "sha256": "0".repeat(64)})));
    server.apply(
        FILTER_MODULES,
        filter_module("missing", json!({"configMap": {"name": "nope", "key": "x.wasm"}})),
    );

    let registry = FilterRegistry::with_builtins(RuntimeConfig::default()).unwrap();
    let mut watching = Watching::start(&server).await;
    watching.read_until("the fixture", has("Pod backend/api-0")).await;

    let web = synced_status(&mut watching, &server, &registry, "web", |s| s["ready"] == true).await;
    assert_eq!(web["sha256"], sha256.as_str());
    assert!(web["lastUpdated"].is_string(), "{web}");
    assert!(registry.module_status("web").loaded);
    let pinned = synced_status(&mut watching, &server, &registry, "pinned", |s| s["ready"] == true).await;
    assert_eq!(pinned["sha256"], sha256.as_str());
    let tampered = synced_status(&mut watching, &server, &registry, "tampered", |s| {
        s["message"].as_str().is_some_and(|m| m.contains("mismatch"))
    })
    .await;
    assert_eq!(tampered["ready"], false);
    let status = registry.module_status("tampered");
    assert!(
        !status.loaded && status.error.as_deref().is_some_and(|e| e.contains("sha256 mismatch")),
        "{status:?}"
    );
    let missing = synced_status(&mut watching, &server, &registry, "missing", |s| s["ready"] == false).await;
    assert!(missing["message"].as_str().unwrap().contains("ConfigMap porin/nope not found"), "{missing}");

    server.delete(FILTER_MODULES, "", "web");
    for _ in 0..100 {
        watching.cluster.sync_modules(&registry);
        if !registry.module_status("web").loaded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!registry.module_status("web").loaded, "a deleted FilterModule is unloaded");
}

#[test]
fn the_agent_enforces_the_clusters_policies_and_keeps_them_while_the_api_server_fails() {
    if !super::datapath::can_run() {
        return;
    }
    let web_ip = std::net::Ipv4Addr::new(10, 213, 0, 10);
    let api_ip = std::net::Ipv4Addr::new(10, 213, 0, 20);
    let mut node = porin_tests::netns::Node::new("k8s");
    let web = node.add_pod("app", "web", web_ip, &[("app", "web")]);
    node.add_pod("app", "api", api_ip, &[("app", "api")]);
    node.exec_ok("ip", &["link", "set", "lo", "up"]);
    let server = ApiServer::start_in_netns(node.name());
    load(&server, objects_of(&node.pod_manifests()));
    load(&server, objects_of(super::datapath::API_DENY_WEB));

    let agent = porin_tests::agent::Agent::start_watching(&node, &server);
    assert_eq!(agent.api_get("/readyz").0, 200);
    assert!(!web.ping(api_ip, 500), "the cluster's deny is enforced");
    let applied = events(&server, "PolicyApplied");
    assert!(applied.iter().any(|(name, _)| name == "api-deny-web"), "{applied:?}");

    server.delete(CNPS, "app", "api-deny-web");
    assert!(pings_within(&web, api_ip, true), "deleting the policy lifts it");
    load(&server, objects_of(super::datapath::API_DENY_WEB));
    assert!(pings_within(&web, api_ip, false), "the policy is back");

    // Chaining: a pod on the node is an endpoint while it exists.
    assert_eq!(endpoints(&agent), 2);
    server.delete(PODS, "app", "web");
    assert!((0..100).any(|_| endpoints(&agent) == 1 || sleep_a_bit()), "the deleted pod's veth is detached");
    load(&server, objects_of(&node.pod_manifests()));
    assert!((0..100).any(|_| endpoints(&agent) == 2 || sleep_a_bit()), "and attached again when it is back");

    // 500: kube's client retries 503s itself before the watchers see them.
    server.fail_with(Some(500));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!web.ping(api_ip, 500), "an API server answering errors removes no enforcement");
    assert_eq!(agent.api_get("/readyz").0, 200, "{}", agent.stderr());
    assert!(agent.stderr().contains("the last known state stays in force"), "{}", agent.stderr());
}

/// The endpoints the agent enforces for, from its status.
fn endpoints(agent: &porin_tests::agent::Agent) -> u64 {
    let (_, body) = agent.api_get("/v1/status");
    serde_json::from_str::<Value>(&body).unwrap()["endpoints"].as_u64().unwrap()
}

fn sleep_a_bit() -> bool {
    std::thread::sleep(Duration::from_millis(100));
    false
}

/// Whether `pod` reaching `ip` becomes `expected` within ten seconds.
fn pings_within(pod: &porin_tests::netns::Pod, ip: std::net::Ipv4Addr, expected: bool) -> bool {
    (0..20).any(|_| pod.ping(ip, 500) == expected)
}

#[test]
fn policy_explain_reads_the_live_cluster() {
    let server = ApiServer::start();
    load(&server, fixture_objects());
    let dir = TempDir::new("kubeconfig");
    std::fs::write(dir.path("config"), server.kubeconfig()).unwrap();
    let kubeconfig = dir.path("config");
    let explain = |from: &str, method: &str| {
        let args = ["policy", "explain", "--from-cluster", "--kubeconfig", kubeconfig.to_str().unwrap()];
        let query = ["--from", from, "--to", "backend/api-0", "--port", "8080", "--http-method", method];
        porin_tests::porin(args.iter().chain(&query).chain(&["--http-path", "/api/v1", "-o", "json"]))
    };
    let get = explain("frontend/web-7d9c6b5f4-x2x9k", "GET");
    assert!(get.success, "{}", get.stderr);
    assert_eq!(get.json()["verdict"], "allowed", "{}", get.stdout);
    let post = explain("frontend/web-7d9c6b5f4-x2x9k", "POST");
    assert_eq!(post.json()["verdict"], "denied", "{}", post.stdout);
    let world = explain("world", "GET");
    assert_eq!(world.json()["verdict"], "denied", "the CCNP's ingressDeny: {}", world.stdout);

    server.fail_with(Some(403));
    let forbidden = explain("frontend/web-7d9c6b5f4-x2x9k", "GET");
    assert!(!forbidden.success && forbidden.stderr.contains("403"), "{}", forbidden.stderr);
}
