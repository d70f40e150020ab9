//! A stand-in Kubernetes API server speaking the real list/watch protocol
//! over HTTP/1.1, for testing porin's watchers without a cluster.
//!
//! What it implements is what a client of the real one relies on:
//! * `GET` of a collection (all namespaces, or one): a `…List` whose items
//!   carry no `apiVersion`/`kind`, with the collection's `resourceVersion`;
//! * `?watch=true&resourceVersion=N`: a chunked stream of `ADDED`,
//!   `MODIFIED` and `DELETED` events newer than N, `BOOKMARK`s when asked
//!   for, and an `ERROR` with a `410 Gone` Status when N is too old;
//! * `POST` of events and `PATCH` of a FilterModule's status, recorded;
//! * failure injection: every request answered with an error status, and
//!   open watches cut.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A collection the server serves.
#[derive(Debug, Clone, Copy)]
pub struct Resource {
    /// `v1`, `cilium.io/v2`, ...
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

pub const NAMESPACES: Resource =
    Resource { api_version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false };
pub const PODS: Resource = Resource { api_version: "v1", kind: "Pod", plural: "pods", namespaced: true };
pub const SERVICES: Resource =
    Resource { api_version: "v1", kind: "Service", plural: "services", namespaced: true };
pub const CONFIG_MAPS: Resource =
    Resource { api_version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true };
pub const ENDPOINT_SLICES: Resource = Resource {
    api_version: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    plural: "endpointslices",
    namespaced: true,
};
pub const NETWORK_POLICIES: Resource = Resource {
    api_version: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    plural: "networkpolicies",
    namespaced: true,
};
pub const CNPS: Resource = Resource {
    api_version: "cilium.io/v2",
    kind: "CiliumNetworkPolicy",
    plural: "ciliumnetworkpolicies",
    namespaced: true,
};
pub const CCNPS: Resource = Resource {
    api_version: "cilium.io/v2",
    kind: "CiliumClusterwideNetworkPolicy",
    plural: "ciliumclusterwidenetworkpolicies",
    namespaced: false,
};
pub const FILTER_MODULES: Resource = Resource {
    api_version: "porin.dev/v1alpha1",
    kind: "FilterModule",
    plural: "filtermodules",
    namespaced: false,
};

/// Everything porin watches.
pub const ALL: [Resource; 9] =
    [NAMESPACES, PODS, SERVICES, CONFIG_MAPS, ENDPOINT_SLICES, NETWORK_POLICIES, CNPS, CCNPS, FILTER_MODULES];

#[derive(Debug, Clone)]
struct Change {
    event: &'static str,
    resource_version: u64,
    plural: &'static str,
    kind: &'static str,
    namespace: Option<String>,
    object: Value,
}

#[derive(Debug, Default)]
struct State {
    resource_version: u64,
    /// Per plural: objects by (namespace, name).
    objects: BTreeMap<&'static str, BTreeMap<(String, String), Value>>,
    /// Collections answered with 404 (a CRD that is not installed).
    absent: Vec<&'static str>,
    changes: Vec<Change>,
    /// Watches asked from a version below this get `410 Gone`.
    oldest_watchable: u64,
    /// Every request is answered with this status.
    failing: Option<u16>,
    /// Bumped to end every open watch.
    cut: u64,
    /// Bumped to send every open watch a bookmark.
    bookmarks: u64,
    requests: Vec<String>,
    posted_events: Vec<Value>,
    status_patches: Vec<(String, Value)>,
    files: BTreeMap<String, Vec<u8>>,
}

/// The server; it stops serving when dropped.
#[derive(Debug, Clone)]
pub struct ApiServer {
    pub port: u16,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl ApiServer {
    /// Serves on 127.0.0.1.
    pub fn start() -> ApiServer {
        ApiServer::serve_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Serves on 127.0.0.1 of the network namespace `/run/netns/NAME`
    /// (where an agent under test runs).
    pub fn start_in_netns(name: &str) -> ApiServer {
        let netns = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
        // A thread of its own enters the namespace, so the test's threads stay where they are.
        let listener = std::thread::spawn(move || {
            nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            TcpListener::bind("127.0.0.1:0").unwrap()
        });
        ApiServer::serve_on(listener.join().unwrap())
    }

    fn serve_on(listener: TcpListener) -> ApiServer {
        let port = listener.local_addr().unwrap().port();
        let shared =
            Arc::new((Mutex::new(State { resource_version: 1000, ..State::default() }), Condvar::new()));
        let server = ApiServer { port, shared };
        let serving = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let serving = serving.clone();
                std::thread::spawn(move || serving.serve(stream));
            }
        });
        server
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.0.lock().unwrap()
    }

    fn changed(&self, state: MutexGuard<'_, State>) {
        drop(state);
        self.shared.1.notify_all();
    }

    /// A kubeconfig file's text pointing at this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters: [{{name: test, cluster: {{server: 'http://127.0.0.1:{}'}}}}]\n\
             contexts: [{{name: test, context: {{cluster: test, user: test, namespace: porin}}}}]\n\
             users: [{{name: test, user: {{token: test-token}}}}]\n",
            self.port
        )
    }

    /// Adds or replaces an object (its `metadata` gets a uid and a new
    /// resourceVersion, as the API server gives them).
    pub fn apply(&self, resource: Resource, mut object: Value) {
        let mut state = self.state();
        state.resource_version += 1;
        let version = state.resource_version;
        let (namespace, name) = object_key(&object);
        let objects = state.objects.entry(resource.plural).or_default();
        let existing = objects.get(&(namespace.clone(), name.clone()));
        let uid = existing.and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string));
        let event = if existing.is_some() { "MODIFIED" } else { "ADDED" };
        let metadata = object["metadata"].as_object_mut().expect("objects have metadata");
        metadata
            .insert("uid".into(), json!(uid.unwrap_or_else(|| format!("uid-{}-{name}", resource.plural))));
        metadata.insert("resourceVersion".into(), json!(version.to_string()));
        objects.insert((namespace.clone(), name), object.clone());
        record(&mut state, resource, event, namespace, object);
        self.changed(state);
    }

    /// Deletes an object, with a `DELETED` event.
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) {
        let mut state = self.state();
        state.resource_version += 1;
        let removed =
            state.objects.entry(resource.plural).or_default().remove(&(namespace.into(), name.into()));
        if let Some(object) = removed {
            record(&mut state, resource, "DELETED", namespace.to_string(), object);
        }
        self.changed(state);
    }

    /// Deletes an object as if during an outage: no watcher ever gets an
    /// event for it, and events before now are compacted away, so the
    /// next watch from an older version gets `410 Gone` and must relist.
    pub fn delete_and_compact(&self, resource: Resource, namespace: &str, name: &str) {
        let mut state = self.state();
        state.resource_version += 1;
        state.objects.entry(resource.plural).or_default().remove(&(namespace.into(), name.into()));
        state.oldest_watchable = state.resource_version;
        state.changes.clear();
        state.cut += 1;
        self.changed(state);
    }

    /// Serve 404 for a collection (its CRD is not installed).
    pub fn remove_collection(&self, resource: Resource) {
        self.state().absent.push(resource.plural);
    }

    /// Sends a BOOKMARK on every open watch that asked for them, at a
    /// version newer than any of their events (other kinds' writes move it
    /// on in a real cluster).
    pub fn bookmark(&self) {
        let mut state = self.state();
        state.resource_version += 1;
        state.bookmarks += 1;
        self.changed(state);
    }

    /// Ends every open watch, as an API server restart or a load balancer
    /// timeout does.
    pub fn cut_watches(&self) {
        let mut state = self.state();
        state.cut += 1;
        self.changed(state);
    }

    /// Answers every request with `status` (`None`: serve again); open
    /// watches are cut.
    pub fn fail_with(&self, status: Option<u16>) {
        let mut state = self.state();
        state.failing = status;
        state.cut += 1;
        self.changed(state);
    }

    /// Serves `bytes` at `GET /files/NAME`.
    pub fn serve_file(&self, name: &str, bytes: &[u8]) {
        self.state().files.insert(format!("/files/{name}"), bytes.to_vec());
    }

    pub fn resource_version(&self) -> u64 {
        self.state().resource_version
    }

    /// `METHOD path?query` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    pub fn posted_events(&self) -> Vec<Value> {
        self.state().posted_events.clone()
    }

    /// (path, body) of every status patch.
    pub fn status_patches(&self) -> Vec<(String, Value)> {
        self.state().status_patches.clone()
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut stream = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let (method, target) =
                (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            self.state().requests.push(format!("{method} {target}"));
            if !self.respond(&mut stream, &method, &target, &body) {
                return;
            }
        }
    }

    /// Answers one request; `false` when the connection is done.
    fn respond(&self, stream: &mut TcpStream, method: &str, target: &str, body: &[u8]) -> bool {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query: BTreeMap<&str, &str> = query.split('&').filter_map(|pair| pair.split_once('=')).collect();
        if let Some(code) = self.state().failing {
            return send(stream, code, &status_object(code, "Failure", "injected failure"));
        }
        if let Some(bytes) = self.state().files.get(path).cloned() {
            return send_bytes(stream, 200, "application/octet-stream", &bytes);
        }
        match method {
            "POST" if path.ends_with("/events") => {
                let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                self.state().posted_events.push(event.clone());
                send(stream, 201, &event)
            }
            "PATCH" if path.ends_with("/status") => {
                let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                self.state().status_patches.push((path.to_string(), patch.clone()));
                send(stream, 200, &patch)
            }
            "GET" => {
                let Some((resource, namespace)) = route(path) else {
                    return send(
                        stream,
                        404,
                        &status_object(404, "NotFound", "the server could not find the requested resource"),
                    );
                };
                if self.state().absent.contains(&resource.plural) {
                    return send(
                        stream,
                        404,
                        &status_object(404, "NotFound", "the server could not find the requested resource"),
                    );
                }
                if matches!(query.get("watch"), Some(&"true" | &"1")) {
                    self.watch(stream, resource, namespace, &query);
                    false
                } else {
                    send(stream, 200, &self.list(resource, namespace.as_deref()))
                }
            }
            _ => send(stream, 405, &status_object(405, "MethodNotAllowed", "not served by the test server")),
        }
    }

    fn list(&self, resource: Resource, namespace: Option<&str>) -> Value {
        let state = self.state();
        let items: Vec<Value> = state
            .objects
            .get(resource.plural)
            .into_iter()
            .flat_map(|objects| objects.iter())
            .filter(|((ns, _), _)| namespace.is_none_or(|wanted| wanted == ns))
            .map(|(_, object)| {
                let mut item = object.clone();
                let map = item.as_object_mut().unwrap();
                map.remove("apiVersion");
                map.remove("kind");
                item
            })
            .collect();
        json!({
            "apiVersion": resource.api_version,
            "kind": format!("{}List", resource.kind),
            "metadata": {"resourceVersion": state.resource_version.to_string()},
            "items": items,
        })
    }

    /// Streams events newer than the asked version until the watch times
    /// out or is cut.
    fn watch(
        &self,
        stream: &mut TcpStream,
        resource: Resource,
        namespace: Option<String>,
        query: &BTreeMap<&str, &str>,
    ) {
        let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let bookmarks = query.get("allowWatchBookmarks") == Some(&"true");
        let timeout =
            Duration::from_secs(query.get("timeoutSeconds").and_then(|v| v.parse().ok()).unwrap_or(300));
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let start = Instant::now();
        let mut state = self.state();
        if from < state.oldest_watchable {
            let message = format!("too old resource version: {from} ({})", state.oldest_watchable);
            let event = json!({"type": "ERROR", "object": status_object(410, "Expired", &message)});
            drop(state);
            write_chunk(stream, &event);
            write_chunk_end(stream);
            return;
        }
        let (cut, mut bookmarks_seen, mut sent_up_to) = (state.cut, state.bookmarks, from);
        loop {
            let pending: Vec<Change> = state
                .changes
                .iter()
                .filter(|change| change.resource_version > sent_up_to && change.plural == resource.plural)
                .filter(|change| {
                    namespace.as_ref().is_none_or(|wanted| change.namespace.as_ref() == Some(wanted))
                })
                .cloned()
                .collect();
            let bookmark = (bookmarks && state.bookmarks != bookmarks_seen).then_some(state.resource_version);
            bookmarks_seen = state.bookmarks;
            let done = state.cut != cut || start.elapsed() >= timeout;
            drop(state);
            for change in pending {
                sent_up_to = change.resource_version;
                let mut object = change.object;
                object["apiVersion"] = json!(resource.api_version);
                object["kind"] = json!(change.kind);
                if !write_chunk(stream, &json!({"type": change.event, "object": object})) {
                    return;
                }
            }
            if let Some(version) = bookmark {
                let object = json!({"kind": resource.kind, "apiVersion": resource.api_version,
                                    "metadata": {"resourceVersion": version.to_string()}});
                if !write_chunk(stream, &json!({"type": "BOOKMARK", "object": object})) {
                    return;
                }
            }
            if done {
                write_chunk_end(stream);
                return;
            }
            state = self.state();
            state = self.shared.1.wait_timeout(state, Duration::from_millis(200)).unwrap().0;
        }
    }
}

/// Records a change for watchers.
fn record(state: &mut State, resource: Resource, event: &'static str, namespace: String, object: Value) {
    let namespace = resource.namespaced.then_some(namespace);
    let resource_version = state.resource_version;
    let (plural, kind) = (resource.plural, resource.kind);
    state.changes.push(Change { event, resource_version, plural, kind, namespace, object });
}

fn object_key(object: &Value) -> (String, String) {
    let metadata = &object["metadata"];
    let namespace = metadata["namespace"].as_str().unwrap_or_default().to_string();
    (namespace, metadata["name"].as_str().expect("objects have a name").to_string())
}

/// The collection a path names, and the namespace when it names one.
fn route(path: &str) -> Option<(Resource, Option<String>)> {
    let rest = path.strip_prefix("/api/v1/").map(|rest| ("v1", rest)).or_else(|| {
        let rest = path.strip_prefix("/apis/")?;
        let mut parts = rest.splitn(3, '/');
        let (group, version, rest) = (parts.next()?, parts.next()?, parts.next()?);
        let api_version = ALL.iter().find(|r| r.api_version == format!("{group}/{version}"))?.api_version;
        Some((api_version, rest))
    })?;
    let (api_version, rest) = rest;
    let segments: Vec<&str> = rest.split('/').collect();
    let (namespace, plural) = match segments.as_slice() {
        [plural] => (None, *plural),
        ["namespaces", namespace, plural] => (Some(namespace.to_string()), *plural),
        _ => return None,
    };
    let resource = ALL.iter().find(|r| r.api_version == api_version && r.plural == plural)?;
    Some((*resource, namespace))
}

fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn send(stream: &mut TcpStream, code: u16, body: &Value) -> bool {
    send_bytes(stream, code, "application/json", &serde_json::to_vec(body).unwrap())
}

fn send_bytes(stream: &mut TcpStream, code: u16, content_type: &str, body: &[u8]) -> bool {
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        if code < 300 { "OK" } else { "Error" },
        body.len()
    );
    stream.write_all(head.as_bytes()).is_ok() && stream.write_all(body).is_ok()
}

fn write_chunk(stream: &mut TcpStream, event: &Value) -> bool {
    let mut line = serde_json::to_vec(event).unwrap();
    line.push(b'\n');
    let head = format!("{:x}\r\n", line.len());
    stream.write_all(head.as_bytes()).is_ok()
        && stream.write_all(&line).is_ok()
        && stream.write_all(b"\r\n").is_ok()
}

fn write_chunk_end(stream: &mut TcpStream) {
    stream.write_all(b"0\r\n\r\n").ok();
}
