use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{ApiAddress, ApiServer, ApiState, respond};
use crate::agent::status::Status;
use crate::observe::Observer;

fn ready() -> Status {
    Status { revision: Some(3), endpoints: 2, policy_entries: 7, ready: true, ..Status::default() }
}

#[test]
fn addresses_are_unix_paths_or_ip_ports() {
    assert_eq!("unix:/run/x.sock".parse(), Ok(ApiAddress::Unix("/run/x.sock".into())));
    assert_eq!("127.0.0.1:9876".parse(), Ok(ApiAddress::Tcp(([127, 0, 0, 1], 9876).into())));
    assert!("unix:".parse::<ApiAddress>().is_err());
    assert!("localhost".parse::<ApiAddress>().is_err());
    assert_eq!("unix:/a".parse::<ApiAddress>().unwrap().to_string(), "unix:/a");
}

#[test]
fn readiness_needs_an_enforcing_datapath_and_a_good_last_update() {
    let code = |status: &Status| respond(&Method::GET, "/readyz", status).status();
    assert_eq!(code(&Status::default()), StatusCode::SERVICE_UNAVAILABLE, "before the first apply");
    assert_eq!(code(&ready()), StatusCode::OK);
    let mut failed = ready();
    failed.failed("policy map full".into(), Vec::new());
    assert_eq!(code(&failed), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failed.not_ready_because().unwrap(), "the last update failed: policy map full");
    assert_eq!(respond(&Method::GET, "/healthz", &failed).status(), StatusCode::OK);
    assert_eq!(respond(&Method::GET, "/nope", &failed).status(), StatusCode::NOT_FOUND);
    assert_eq!(respond(&Method::POST, "/readyz", &failed).status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// One HTTP/1.0 request over the unix socket: (status code, body).
async fn get(socket: &std::path::Path, path: &str) -> (u16, String) {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let code = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status line");
    (code, body.to_string())
}

#[tokio::test]
async fn serves_status_on_a_unix_socket_and_removes_it_when_dropped() {
    let dir = std::env::temp_dir().join(format!("porin-api-test-{}", std::process::id()));
    let socket = dir.join("nested/agent.sock");
    let (sender, receiver) = watch::channel(Status::default());
    let state = ApiState { status: receiver, observer: Observer::new(16) };
    let server = ApiServer::start(&ApiAddress::Unix(socket.clone()), state.clone()).unwrap();
    let (code, body) = get(&socket, "/readyz").await;
    assert_eq!((code, body.as_str()), (503, "not ready: the datapath is not enforcing yet\n"));

    sender.send_replace(ready());
    assert_eq!(get(&socket, "/readyz").await, (200, "ready\n".to_string()));
    let (_, body) = get(&socket, "/v1/status").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["revision"], 3);
    assert_eq!(json["endpoints"], 2);
    assert_eq!(json["policy_entries"], 7);
    assert_eq!(json["ready"], true);
    assert_eq!(json["last_error"], serde_json::Value::Null);

    let second = ApiServer::start(&ApiAddress::Unix(socket.clone()), state);
    assert!(second.unwrap_err().to_string().contains("another process serves"), "a live socket is kept");
    drop(server);
    assert!(!socket.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// An API on a fresh socket whose observer holds `flows`.
fn flow_api(
    name: &str,
    flows: Vec<crate::flow::Flow>,
) -> (ApiServer, std::path::PathBuf, std::sync::Arc<Observer>) {
    let socket = std::env::temp_dir().join(format!("porin-api-{name}-{}.sock", std::process::id()));
    let observer = Observer::new(64);
    flows.into_iter().for_each(|flow| observer.publish(flow));
    let state = ApiState { status: watch::channel(ready()).1, observer: observer.clone() };
    (ApiServer::start(&ApiAddress::Unix(socket.clone()), state).unwrap(), socket, observer)
}

fn flow_lines(body: &str) -> Vec<serde_json::Value> {
    body.lines().map(|line| serde_json::from_str(line).expect("NDJSON")).collect()
}

#[tokio::test]
async fn flows_are_served_as_ndjson_filtered_and_limited() {
    use crate::flow::tests::{http_flow, sample_flow};
    let flows = vec![
        sample_flow(),
        http_flow("REQUEST", "GET", "http://api/", None),
        http_flow("RESPONSE", "GET", "http://api/", Some(200)),
        http_flow("REQUEST", "POST", "http://api/admin", None),
    ];
    let (_server, socket, _) = flow_api("filters", flows);
    let (code, body) = get(&socket, "/v1/flows").await;
    assert_eq!(code, 200);
    assert_eq!(flow_lines(&body).len(), 4);
    let (_, body) = get(&socket, "/v1/flows?verdict=DROPPED").await;
    let dropped = flow_lines(&body);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["flow"]["drop_reason_desc"], "POLICY_DENIED");
    let (_, body) = get(&socket, "/v1/flows?protocol=http&last=2").await;
    let last: Vec<_> =
        flow_lines(&body).iter().map(|l| l["flow"]["Summary"].as_str().unwrap().to_string()).collect();
    assert_eq!(last, ["HTTP/1.1 200 2ms (GET http://api/)", "HTTP/1.1 POST http://api/admin"]);
    let (_, body) = get(&socket, "/v1/flows?http_status=200&from_pod=backend%2Fapi").await;
    assert_eq!(flow_lines(&body).len(), 1);
    let (code, body) = get(&socket, "/v1/flows?verdict=ALLOWED").await;
    assert_eq!(code, 400);
    assert!(body.contains("bad flow filter") && body.contains("verdict"), "{body}");
}

#[tokio::test]
async fn following_streams_new_flows_as_they_are_published() {
    let (_server, socket, observer) = flow_api("follow", vec![crate::flow::tests::sample_flow()]);
    let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    stream
        .write_all(b"GET /v1/flows?follow=true&last=0&verdict=FORWARDED HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        observer.publish(crate::flow::tests::sample_flow()); // dropped: filtered out
        observer.publish(crate::flow::tests::http_flow("REQUEST", "GET", "http://api/followed", None));
    });
    let mut seen = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("followed") {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read).await.expect("the new flow arrives");
    publisher.join().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(!text.contains("DROPPED"), "the filter applies to followed flows: {text}");
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_the_ui_is_served() {
    let (_server, socket, _) = flow_api("metrics", vec![crate::flow::tests::sample_flow()]);
    let (code, body) = get(&socket, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("porin_flows_processed_total{type=\"L3_L4\",verdict=\"DROPPED\"} 1"), "{body}");
    assert!(body.contains("porin_flow_store_flows 1"), "{body}");
    assert!(body.contains("porin_drops_total{reason=\"POLICY_DENIED\",protocol=\"TCP\"} 1"), "{body}");
    let (code, page) = get(&socket, "/").await;
    assert_eq!(code, 200);
    assert!(page.contains("/ui/app.js"), "the page loads its script");
    assert_eq!(get(&socket, "/ui/app.js").await.0, 200);
    assert_eq!(get(&socket, "/ui/style.css").await.0, 200);
}
