//! The `porin` command line. The structs live in the library so tests can
//! build and run commands without a process.

mod agent;
mod filter;
mod gateway;
mod lab;
mod observe;
mod policy;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use agent::{AgentArgs, AgentCommand};
pub use filter::{FilterCommand, TestArgs};
pub use gateway::GatewayArgs;
pub use lab::{LabArgs, LabCommand, Resource};
pub use observe::{ObserveArgs, ObserveFilters};
pub use policy::{CompileArgs, ExplainArgs, PolicyCommand, ValidateArgs};

#[derive(Debug, Parser)]
#[command(name = "porin", version, about = "Identity-aware L3-L7 network policy for Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, compile and explain policy offline, from manifest files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with L7 filters: run one over captured traffic.
    #[command(subcommand)]
    Filter(FilterCommand),
    /// Run the L7 proxy in front of services, without the datapath.
    Gateway(GatewayArgs),
    /// Run the node agent: eBPF datapath, transparent proxy and filters.
    Agent(AgentArgs),
    /// Run a small cluster in network namespaces (node, pods, world, agent), driven like kubectl.
    Lab(LabArgs),
    /// Show flows (connections and requests, forwarded and dropped) from an agent, like hubble observe.
    Observe(ObserveArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Readable text.
    #[default]
    Text,
    /// JSON, for scripts.
    Json,
}

impl Cli {
    /// Runs the command, writing results to `out` and diagnostics to `err`.
    pub fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Policy(command) => command.run(out, err),
            Command::Filter(command) => command.run(out, err),
            Command::Gateway(args) => gateway::run(args, out, err),
            Command::Agent(args) => agent::run(args, out, err),
            Command::Lab(args) => lab::run(args, out, err),
            Command::Observe(args) => observe::run(args, out),
        }
    }
}
