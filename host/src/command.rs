//! Running the system's tools (`ip`, `sysctl`, `setsid`...): to completion,
//! stdin closed, failing with what they said on stderr.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Runs `command` to completion with stdin closed: its stdout, or an error
/// with its stderr.
pub(crate) fn output(command: &mut Command) -> anyhow::Result<String> {
    let result = command.stdin(Stdio::null()).output();
    let output = result.with_context(|| format!("running {}", describe(command)))?;
    if !output.status.success() {
        bail!("{} failed: {}", describe(command), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `ip ARGS...` (iproute2).
pub(crate) fn ip(args: &[&str]) -> anyhow::Result<String> {
    output(Command::new("ip").args(args))
}

/// The command line, for messages.
pub(crate) fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
