use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{ApiAddress, ApiServer, respond};
use crate::agent::status::Status;

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
    let server = ApiServer::start(&ApiAddress::Unix(socket.clone()), receiver).unwrap();
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

    let second = ApiServer::start(&ApiAddress::Unix(socket.clone()), sender.subscribe());
    assert!(second.unwrap_err().to_string().contains("another process serves"), "a live socket is kept");
    drop(server);
    assert!(!socket.exists());
    std::fs::remove_dir_all(&dir).ok();
}
