//! Test support shared by porin's integration tests.

use std::path::PathBuf;

use clap::Parser;
use porin::cli::Cli;

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
