//! gRPC through porin's http filter with real peers: a grpcio server, the
//! grpcio client and grpcurl calling it through `porin gateway`, allowed
//! and denied methods on shared HTTP/2 connections, and h2load for load.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use porin_tests::{Daemon, Gateway, TempDir, free_port, have, must_run, output_within, python};

/// Only Echo/Say and the streaming methods; Admin is denied.
const RULES: &str = r#"{http: [{method: POST, path: "/porin.test.Echo/(Say|Count|Collect|Chat)"}]}"#;

fn grpc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/grpc")
}

/// The gRPC echo server the lab runs for `grpc-echo` images.
fn server_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../host/src/lab/grpc_echo/server.py")
}

fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/grpc")
}

/// grpcio installed; [`have`]'s semantics.
fn have_grpcio() -> bool {
    let found = Command::new(python()).args(["-c", "import grpc"]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(!must_run(), "grpcio is missing; `make test` installs it (pip install grpcio)");
        eprintln!("SKIPPED: grpcio is missing (run `make test` to install it)");
    }
    found
}

/// The grpcio Echo server, with the calls it received in a file.
struct Server {
    port: u16,
    calls: PathBuf,
    _daemon: Daemon,
    _dir: TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = TempDir::new("grpc");
        let calls = dir.path("calls");
        let mut command = Command::new(python());
        command.arg(server_script()).arg("0").arg("--calls-file").arg(&calls);
        let daemon = Daemon::spawn(command);
        let line = daemon.stdout_line_containing("listening on");
        let port = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
        Server { port, calls, _daemon: daemon, _dir: dir }
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

fn gateway(server: &Server) -> (Gateway, u16) {
    let port = free_port();
    let config = format!(
        "listeners:\n  - name: grpc\n    listen: 127.0.0.1:{port}\n    upstream: 127.0.0.1:{}\n    filter: http\n    rules: {RULES}\n",
        server.port
    );
    (Gateway::start(&config), port)
}

/// `client.py 127.0.0.1:PORT CALLS...`: its JSON report.
fn client(port: u16, calls: &[&str]) -> serde_json::Value {
    let mut command = Command::new(python());
    command.arg(grpc_dir().join("client.py")).arg(format!("127.0.0.1:{port}")).args(calls);
    let output = output_within(&mut command, b"", Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

#[test]
fn grpc_calls_are_enforced_per_method_on_one_connection() {
    if !have_grpcio() {
        return;
    }
    let server = Server::start();
    let (gateway, port) = gateway(&server);
    let report = client(port, &["Say", "Admin", "Say", "Count:3", "Admin", "Collect:2", "Chat:2", "Say"]);
    let codes: Vec<(&str, &str)> = report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["method"].as_str().unwrap(), c["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            ("Say", "OK"),
            ("Admin", "PERMISSION_DENIED"),
            ("Say", "OK"),
            ("Count", "OK"),
            ("Admin", "PERMISSION_DENIED"),
            ("Collect", "OK"),
            ("Chat", "OK"),
            ("Say", "OK"),
        ],
        "{report}"
    );
    assert_eq!(report["connections"], 1, "one HTTP/2 connection throughout: {report}");
    let count = &report["calls"][3];
    assert_eq!(count["texts"], serde_json::json!(["1", "2", "3"]), "{report}");
    // The server never saw a denied call.
    let calls = server.calls();
    assert!(!calls.iter().any(|c| c.ends_with("/Admin")), "{calls:?}");
    assert_eq!(calls.iter().filter(|c| c.ends_with("/Say")).count(), 3, "{calls:?}");
    // Per-stream L7 flows: the denial and the responses with grpc-status.
    let flows = gateway.flows();
    let l7 = |kind: &str, verdict: &str| -> Vec<serde_json::Value> {
        flows.iter().filter(|f| f["l7"]["type"] == kind && f["verdict"] == verdict).cloned().collect()
    };
    let denied = l7("REQUEST", "DROPPED");
    assert_eq!(denied.len(), 2, "{flows:#?}");
    assert_eq!(denied[0]["l7"]["http"]["url"].as_str().unwrap().rsplit('/').next(), Some("Admin"));
    assert_eq!(denied[0]["l7"]["http"]["protocol"], "HTTP/2");
    let responses = l7("RESPONSE", "FORWARDED");
    assert_eq!(responses.len(), 6, "{flows:#?}");
    assert!(
        responses.iter().all(|f| f["l7"]["http"]["code"] == 200 && f["l7"]["http"]["grpc_status"] == 0),
        "{responses:#?}"
    );
}

#[test]
fn grpcurl_sees_allowed_and_denied_methods() {
    if !have_grpcio() || !have("grpcurl") {
        return;
    }
    let server = Server::start();
    let (_gateway, port) = gateway(&server);
    let grpcurl = |method: &str| {
        let mut command = Command::new("grpcurl");
        command.args(["-plaintext", "-import-path"]).arg(proto_dir());
        command.args(["-proto", "echo.proto", "-d", r#"{"text":"hi"}"#, &format!("127.0.0.1:{port}")]);
        command.arg(format!("porin.test.Echo/{method}"));
        output_within(&mut command, b"", Duration::from_secs(30))
    };
    let say = grpcurl("Say");
    assert!(say.status.success(), "{}", String::from_utf8_lossy(&say.stderr));
    assert!(String::from_utf8_lossy(&say.stdout).contains(r#""text": "hi""#));
    let admin = grpcurl("Admin");
    // grpcurl exits 64 + the gRPC code.
    assert_eq!(admin.status.code(), Some(64 + 7), "{}", String::from_utf8_lossy(&admin.stderr));
    let stderr = String::from_utf8_lossy(&admin.stderr);
    assert!(stderr.contains("Code: PermissionDenied") && stderr.contains("Access denied"), "{stderr}");
    assert!(!server.calls().iter().any(|c| c.ends_with("/Admin")));
}

#[test]
fn h2load_calls_through_porin() {
    if !have_grpcio() || !have("h2load") {
        return;
    }
    let server = Server::start();
    let (gateway, port) = gateway(&server);
    let mut command = Command::new("h2load");
    command.args(["-n", "400", "-c", "4", "-m", "10", "-d"]).arg(proto_dir().join("say.bin"));
    command.args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
    command.arg(format!("http://127.0.0.1:{port}/porin.test.Echo/Say"));
    let output = output_within(&mut command, b"", Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("400 succeeded, 0 failed"), "{stdout}");
    assert_eq!(server.calls().len(), 400);
    drop(gateway);
}

/// Plain HTTP/2 (h2c with prior knowledge) against nginx: allowed requests
/// reach it, a denied path gets porin's 403 on the same connections.
#[test]
fn h2load_against_nginx_through_porin() {
    if !have("h2load") {
        return;
    }
    let upstream = free_port();
    let Some(_nginx) =
        porin_tests::Nginx::spawn(&format!("127.0.0.1:{upstream} http2"), upstream, |n| Command::new(n))
    else {
        return;
    };
    porin_tests::wait_for_port(upstream);
    let port = free_port();
    let config = format!(
        "listeners:\n  - listen: 127.0.0.1:{port}\n    upstream: 127.0.0.1:{upstream}\n    filter: http\n    rules: {{http: [{{method: GET, path: /public/.*}}]}}\n"
    );
    let _gateway = Gateway::start(&config);
    let h2load = |path: &str| {
        let mut command = Command::new("h2load");
        command.args(["-n", "300", "-c", "3", "-m", "10", &format!("http://127.0.0.1:{port}{path}")]);
        String::from_utf8_lossy(&output_within(&mut command, b"", Duration::from_secs(120)).stdout)
            .into_owned()
    };
    let allowed = h2load("/public/a");
    assert!(allowed.contains("300 succeeded, 0 failed") && allowed.contains("300 2xx"), "{allowed}");
    let denied = h2load("/admin");
    // h2load counts a 4xx as failed; none may be a stream or connection error.
    assert!(
        denied.contains("300 done") && denied.contains("0 errored") && denied.contains("300 4xx"),
        "{denied}"
    );
}

/// curl's `--http2` on plain http offers `Upgrade: h2c`; hypercorn takes
/// it: the connection turns into HTTP/2 through porin, and the response
/// (stream 1) comes back over it.
#[test]
fn an_h2c_upgrade_from_curl_goes_on_as_http2() {
    let hypercorn = Command::new(python()).args(["-c", "import hypercorn"]).output();
    if !hypercorn.is_ok_and(|o| o.status.success()) {
        assert!(!must_run(), "hypercorn is missing; `make test` installs it (pip install hypercorn)");
        eprintln!("SKIPPED: hypercorn is missing (run `make test` to install it)");
        return;
    }
    let upstream = free_port();
    let mut server = Command::new(python());
    server.args(["-m", "hypercorn", "--bind", &format!("127.0.0.1:{upstream}"), "h2c_app:app"]);
    server.current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support"));
    server
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _server = porin_tests::Process(server.spawn().expect("hypercorn starts"));
    porin_tests::wait_for_port(upstream);
    let port = free_port();
    let config = format!(
        "listeners:\n  - listen: 127.0.0.1:{port}\n    upstream: 127.0.0.1:{upstream}\n    filter: http\n    rules: {{http: [{{method: GET, path: /public/.*}}]}}\n"
    );
    let gateway = Gateway::start(&config);
    let curl = |path: &str| {
        let url = format!("http://127.0.0.1:{port}{path}");
        let mut command = Command::new("curl");
        command.args(["-s", "--http2", "-w", "%{http_version} %{http_code}", &url]);
        String::from_utf8_lossy(&output_within(&mut command, b"", Duration::from_secs(30)).stdout)
            .into_owned()
    };
    assert_eq!(curl("/public/a"), "hello over HTTP/2\n2 200");
    let flows = gateway.flows();
    let response =
        flows.iter().find(|f| f["l7"]["type"] == "RESPONSE" && f["l7"]["http"]["protocol"] == "HTTP/2");
    assert!(response.is_some_and(|f| f["l7"]["http"]["code"] == 200), "{flows:#?}");
    // A denied upgrade request is answered in HTTP/1 and never switches.
    assert_eq!(curl("/admin"), "Access denied\r\n1.1 403");
}
