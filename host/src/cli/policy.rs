//! `porin policy validate | compile | explain`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::Output;
use crate::diagnostic::{Diagnostic, Severity, has_errors};
use crate::endpoint::Workloads;
use crate::k8s;
use crate::manifest::Manifests;
use crate::policy::explain::{HttpQuery, PeerQuery, Query, explain};
use crate::policy::resolved::{Action, DirectionPolicy, Protocol};
use crate::policy::{EnforcementMode, ResolvedPolicy, compile, compile_with};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check policies and workloads; exit 1 and list every error if any.
    Validate(ValidateArgs),
    /// Print identities and the resolved policy of every endpoint.
    Compile(CompileArgs),
    /// Explain whether traffic between two peers is allowed, and by which rule.
    Explain(Box<ExplainArgs>),
}

#[derive(Debug, Args)]
pub struct Inputs {
    /// Manifest files or directories (YAML, multi-document); repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1.., required_unless_present = "from_cluster")]
    pub files: Vec<PathBuf>,
    /// Read the objects from the live cluster instead (namespaces, pods,
    /// services, endpointslices and network policies, as the agent does).
    #[arg(long, conflicts_with = "files")]
    pub from_cluster: bool,
    /// The kubeconfig for --from-cluster. Default: $KUBECONFIG,
    /// ~/.kube/config, or the in-cluster service account.
    #[arg(long, value_name = "FILE", requires = "from_cluster")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub inputs: Inputs,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Cilium's policy enforcement mode: default (deny once a policy selects the endpoint), always, never.
    #[arg(long, value_enum, default_value_t, value_name = "MODE")]
    pub policy_enforcement: EnforcementMode,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Source: NAMESPACE/NAME (a pod or Deployment; an unknown NAME is an ad-hoc pod labelled run=NAME), an entity, or an IP.
    #[arg(long, value_name = "SRC", value_parser = parse_peer)]
    pub from: PeerQuery,
    /// Destination, in the same forms as --from.
    #[arg(long, value_name = "DST", value_parser = parse_peer)]
    pub to: PeerQuery,
    /// Destination port, optionally with protocol: 80, 53/UDP.
    #[arg(long, value_name = "PORT[/PROTO]", value_parser = parse_port)]
    pub port: (u16, Protocol),
    /// Extra labels for the source pod: k=v,k2=v2.
    #[arg(long, value_name = "LABELS", value_parser = parse_labels, default_value = "")]
    pub from_labels: BTreeMap<String, String>,
    /// Extra labels for the destination pod: k=v,k2=v2.
    #[arg(long, value_name = "LABELS", value_parser = parse_labels, default_value = "")]
    pub to_labels: BTreeMap<String, String>,
    /// HTTP request method to evaluate against L7 rules.
    #[arg(long, value_name = "METHOD")]
    pub http_method: Option<String>,
    /// HTTP request path (and query) to evaluate.
    #[arg(long, value_name = "PATH")]
    pub http_path: Option<String>,
    /// HTTP Host header to evaluate.
    #[arg(long, value_name = "HOST")]
    pub http_host: Option<String>,
    /// Cilium's policy enforcement mode: default (deny once a policy selects the endpoint), always, never.
    #[arg(long, value_enum, default_value_t, value_name = "MODE")]
    pub policy_enforcement: EnforcementMode,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

fn parse_peer(text: &str) -> Result<PeerQuery, String> {
    text.parse()
}

fn parse_port(text: &str) -> Result<(u16, Protocol), String> {
    let (port, protocol) = match text.split_once('/') {
        Some((port, protocol)) => (port, Protocol::parse(&protocol.to_ascii_uppercase())?),
        None => (text, Protocol::Tcp),
    };
    if protocol == Protocol::Any {
        return Err("give a concrete protocol: TCP, UDP or SCTP".to_string());
    }
    let port = port.parse::<u16>().map_err(|_| format!("invalid port `{port}`: expected 1-65535"))?;
    if port == 0 {
        return Err("port 0 is not a destination port".to_string());
    }
    Ok((port, protocol))
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(format!("invalid label `{pair}`: expected key=value")),
        })
        .collect()
}

/// Loads manifests (from files or the cluster) and workloads.
fn load(inputs: &Inputs) -> anyhow::Result<(Manifests, Workloads)> {
    let mut manifests = if inputs.from_cluster {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let client = k8s::client(inputs.kubeconfig.as_ref()).await?;
            k8s::list_manifests(&client).await
        })?
    } else {
        Manifests::load(&inputs.files)
    };
    let (workloads, diagnostics) = Workloads::from_manifests(&manifests);
    manifests.diagnostics.extend(diagnostics);
    Ok((manifests, workloads))
}

fn report(diagnostics: &[Diagnostic], err: &mut dyn Write) -> std::io::Result<()> {
    for diagnostic in diagnostics {
        writeln!(err, "{diagnostic}")?;
    }
    Ok(())
}

impl PolicyCommand {
    pub fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
        match self {
            PolicyCommand::Validate(args) => {
                let (manifests, workloads) = load(&args.inputs)?;
                let resolved = compile(&manifests, &workloads);
                report(&resolved.diagnostics, err)?;
                if has_errors(&resolved.diagnostics) {
                    let errors =
                        resolved.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
                    writeln!(err, "{errors} error(s); invalid objects are not used")?;
                    return Ok(ExitCode::FAILURE);
                }
                let warnings =
                    resolved.diagnostics.iter().filter(|d| d.severity == Severity::Warning).count();
                writeln!(
                    out,
                    "valid: {} policies, {} endpoints, {warnings} warning(s)",
                    resolved.policies.len(),
                    resolved.endpoints.len()
                )?;
                Ok(ExitCode::SUCCESS)
            }
            PolicyCommand::Compile(args) => {
                let (manifests, workloads) = load(&args.inputs)?;
                let resolved = compile_with(&manifests, &workloads, args.policy_enforcement);
                report(&resolved.diagnostics, err)?;
                match args.output {
                    Output::Json => {
                        writeln!(out, "{}", serde_json::to_string_pretty(&compiled_json(&resolved))?)?
                    }
                    Output::Text => write_compiled(&resolved, out)?,
                }
                Ok(if has_errors(&resolved.diagnostics) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
            }
            PolicyCommand::Explain(args) => {
                let args = *args;
                let (manifests, mut workloads) = load(&args.inputs)?;
                let http = match (args.http_method, args.http_path, args.http_host) {
                    (None, None, None) => None,
                    (method, path, host) => Some(HttpQuery {
                        method: method.unwrap_or_else(|| "GET".to_string()),
                        path: path.unwrap_or_else(|| "/".to_string()),
                        host,
                    }),
                };
                let (port, protocol) = args.port;
                let query = Query {
                    from: args.from,
                    to: args.to,
                    from_labels: args.from_labels,
                    to_labels: args.to_labels,
                    port,
                    protocol,
                    http,
                };
                query.add_pods(&mut workloads);
                let resolved = compile_with(&manifests, &workloads, args.policy_enforcement);
                let problems: Vec<Diagnostic> =
                    resolved.diagnostics.iter().filter(|d| d.severity > Severity::Note).cloned().collect();
                report(&problems, err)?;
                let explanation = match explain(&resolved, &query) {
                    Ok(explanation) => explanation,
                    Err(message) => bail!(message),
                };
                match args.output {
                    Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&explanation)?)?,
                    Output::Text => write!(out, "{explanation}")?,
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn compiled_json(resolved: &ResolvedPolicy) -> serde_json::Value {
    let identities: Vec<_> = resolved.identities.iter().collect();
    let ipcache: Vec<_> =
        resolved.ipcache().into_iter().map(|(net, id)| json!({ "prefix": net, "identity": id })).collect();
    let rule_sets: Vec<_> = resolved.rule_sets.iter().collect();
    json!({
        "identities": identities,
        "ipcache": ipcache,
        "endpoints": resolved.endpoints,
        "rule_sets": rule_sets,
        "diagnostics": resolved.diagnostics,
        "policy_enforcement": resolved.enforcement,
    })
}

fn write_compiled(resolved: &ResolvedPolicy, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "policy enforcement: {}", resolved.enforcement)?;
    writeln!(out)?;
    writeln!(out, "IDENTITY   LABELS")?;
    for identity in resolved.identities.iter() {
        writeln!(out, "{:<10} {}", identity.id, identity.labels)?;
    }
    for endpoint in &resolved.endpoints {
        writeln!(out)?;
        let ip = endpoint.ip.map(|ip| format!(" ip {ip}")).unwrap_or_default();
        writeln!(
            out,
            "endpoint {}/{} identity {}{ip}",
            endpoint.namespace, endpoint.name, endpoint.identity
        )?;
        for (name, direction) in [("ingress", &endpoint.policy.ingress), ("egress", &endpoint.policy.egress)]
        {
            write_direction(name, direction, resolved.enforcement, out)?;
        }
    }
    if !resolved.rule_sets.is_empty() {
        writeln!(out)?;
        writeln!(out, "RULE SET   FILTER     RULES")?;
        for set in resolved.rule_sets.iter() {
            writeln!(out, "{:<10} {:<10} {}", set.id, set.filter, set.rules)?;
        }
    }
    Ok(())
}

fn write_direction(
    name: &str,
    policy: &DirectionPolicy,
    enforcement: EnforcementMode,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mode = match (policy.enforced, enforcement) {
        (true, EnforcementMode::Always) => "default deny (policy enforcement always)".to_string(),
        (true, _) => {
            let by: Vec<String> = policy.enforced_by.iter().map(ToString::to_string).collect();
            format!("default deny (by {})", by.join(", "))
        }
        (false, _) => "default allow".to_string(),
    };
    writeln!(out, "  {name}: {mode}")?;
    for entry in &policy.entries {
        let remote = entry.remote.map_or_else(|| "any".to_string(), |id| id.to_string());
        let action = match &entry.action {
            Action::Allow => "allow".to_string(),
            Action::Deny { .. } => "deny".to_string(),
            Action::Redirect { filter, rule_set } => format!("redirect {filter}#{rule_set}"),
        };
        let ports = format!("{}/{}", entry.ports, entry.protocol);
        let from: Vec<String> =
            entry.derived_from.iter().map(|r| format!("{} {}", r.policy, r.path())).collect();
        writeln!(out, "    {action:<16} {remote:<10} {ports:<14} {}", from.join(", "))
            .context("writing output")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    /// `porin policy ARGS...` over the seed app with its L7 policy: (exit success, stdout).
    fn policy(args: &[&str]) -> (bool, String) {
        let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/seed");
        let files = ["-f", &format!("{seed}/test-app.yaml"), &format!("{seed}/cnp-front-to-back-l7.yaml")];
        let argv = ["porin", "policy"].iter().chain(args).chain(&files).copied();
        let Command::Policy(command) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = command.run(&mut out, &mut err).unwrap();
        (code == std::process::ExitCode::SUCCESS, String::from_utf8(out).unwrap())
    }

    #[test]
    fn policy_enforcement_flag_reaches_compile_and_explain() {
        let (ok, json) = policy(&["compile", "-o", "json", "--policy-enforcement", "never"]);
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(ok);
        assert_eq!(json["policy_enforcement"], "never");
        assert_eq!(json["rule_sets"], serde_json::json!([]), "an unused rule set is never interned");

        let (_, text) = policy(&["compile"]);
        assert!(text.starts_with("policy enforcement: default\n"), "{text}");

        let explain = ["explain", "--from", "db/postgres", "--to", "world", "--port", "443"];
        let (_, allowed) = policy(&explain);
        assert!(allowed.lines().next().unwrap().ends_with("ALLOWED"), "{allowed}");
        let (_, denied) = policy(&[&explain[..], &["--policy-enforcement", "always"]].concat());
        assert!(denied.lines().next().unwrap().ends_with("DENIED"), "{denied}");
        assert!(denied.contains("policy enforcement mode `always`"), "{denied}");
    }
}
