//! The processes the lab runs: commands to completion, daemons detached
//! into their own session, readiness read from the kernel's socket tables
//! (no traffic needed), and stopping by PID.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::command::{describe, output};

/// Runs `command` with this process's stdin, stdout and stderr; its exit
/// code (128 + N when signal N ended it, as shells report it).
pub(super) fn run_attached(command: &mut Command) -> anyhow::Result<ExitCode> {
    let status = command.status().with_context(|| format!("running {}", describe(command)))?;
    Ok(exit_code(status))
}

fn exit_code(status: ExitStatus) -> ExitCode {
    let code = status.code().or_else(|| status.signal().map(|signal| 128 + signal)).unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Starts `command` in a session of its own (`setsid`, which execs in place,
/// so the PID is the program's): it outlives `porin lab` and the terminal.
/// Its stdout and stderr are appended to the given files.
pub(super) fn spawn_detached(command: &Command, stdout: &Path, stderr: &Path) -> anyhow::Result<u32> {
    let mut detached = Command::new("setsid");
    detached.arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => detached.env(key, value),
            None => detached.env_remove(key),
        };
    }
    let out = append(stdout)?;
    let err = if stdout == stderr { out.try_clone()? } else { append(stderr)? };
    let child = detached
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {} (setsid is in util-linux)", describe(command)))?;
    Ok(child.id())
}

fn append(path: &Path) -> anyhow::Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Whether process `pid` runs (a zombie has exited).
pub(super) fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name, which is in parentheses.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z" | "X"))
}

/// Sends `signal` (`HUP`, `TERM`, ...) to `pid`.
pub(super) fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    output(Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string())).map(drop)
}

/// Stops `pids`: SIGTERM, then SIGKILL for any still running after 5 s.
pub(super) fn stop(pids: &[u32]) {
    for (name, patience) in [("TERM", Duration::from_secs(5)), ("KILL", Duration::from_secs(2))] {
        let running: Vec<u32> = pids.iter().copied().filter(|pid| alive(*pid)).collect();
        if running.is_empty() {
            return;
        }
        for pid in &running {
            signal(*pid, name).ok();
        }
        let deadline = Instant::now() + patience;
        while running.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether the network namespace of process `pid` has a TCP socket
/// listening on `port`, or a UDP socket bound to it.
pub(super) fn listens(pid: u32, port: u16, udp: bool) -> bool {
    let local = format!(":{port:04X}");
    // Dual-stack servers (grpcio) listen on IPv6 sockets that take IPv4 too.
    let tables: [&str; 2] = if udp { ["udp", "udp6"] } else { ["tcp", "tcp6"] };
    tables.iter().any(|table| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        text.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1; state 0A is LISTEN.
            fields.len() > 3 && fields[1].ends_with(&local) && (udp || fields[3] == "0A")
        })
    })
}

/// Polls `ready` until it holds. Fails, with the end of `log`, when `pid`
/// exits first or `limit` passes.
pub(super) fn wait_ready(
    what: &str,
    pid: u32,
    log: &Path,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if ready() {
            return Ok(());
        }
        if !alive(pid) {
            bail!("{what} exited; the end of {}:\n{}", log.display(), tail(log, 20));
        }
        if Instant::now() > deadline {
            bail!("{what} is not ready after {limit:?}; the end of {}:\n{}", log.display(), tail(log, 20));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `lines` lines of a log file.
pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
