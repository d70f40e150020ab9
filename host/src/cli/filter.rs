//! `porin filter test`: run a filter in the real runtime over captured bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use porin_sdk::RuleSetId;
use porin_sdk::driver::{Op, Sink};
use porin_sdk::testing::test_meta;
use serde::Serialize;
use serde_json::json;

use super::Output;
use crate::filter::{
    DatagramVerdict, FilterRegistry, RuntimeConfig, StreamSession, TraceEvent, WorkerFilters,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Tcp,
    Udp,
}

#[derive(Debug, Subcommand)]
pub enum FilterCommand {
    /// Run a filter over captured bytes and print every op and L7 record.
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A built-in filter (http, ...) or the path of a .wasm module.
    #[arg(long, value_name = "NAME|PATH")]
    pub filter: String,
    /// The rules, as in a policy's `toPorts[].rules` (YAML or JSON), e.g. `http: [{method: GET}]`.
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// Bytes the client sends.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Bytes the server answers, fed after the input.
    #[arg(long, value_name = "FILE")]
    pub reply_input: Option<PathBuf>,
    /// Feed the bytes in chunks of this size (default: all at once; TCP only).
    #[arg(long, value_name = "BYTES")]
    pub chunk: Option<usize>,
    /// TCP (a byte stream) or UDP (datagrams). With UDP, input files hold
    /// datagrams, each prefixed by its length as a 2-byte big-endian number.
    /// Default: TCP when the filter handles streams, else UDP.
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

impl FilterCommand {
    pub fn run(self, out: &mut dyn Write, _err: &mut dyn Write) -> anyhow::Result<ExitCode> {
        match self {
            FilterCommand::Test(args) => test(args, out),
        }
    }
}

/// Loads the filter: a built-in by name, else a module file.
fn load_filter(registry: &FilterRegistry, filter: &str) -> anyhow::Result<String> {
    if registry.module(filter).is_some() {
        return Ok(filter.to_string());
    }
    let path = Path::new(filter);
    if !path.exists() {
        let builtins: Vec<String> = registry.modules().iter().map(|m| m.name.clone()).collect();
        bail!("no built-in filter `{filter}` and no such file (built-in filters: {})", builtins.join(", "));
    }
    Ok(registry.load_file(path, None)?.name.clone())
}

/// Reads the rules file (YAML or JSON) as the JSON rule set a filter gets.
fn read_rules(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{}: invalid YAML or JSON", path.display()))?;
    Ok(value.to_string())
}

#[derive(Default)]
struct Wire {
    upstream: usize,
    downstream: usize,
}

impl Sink for Wire {
    fn send(&mut self, to_source: bool, data: &[u8]) {
        if to_source { self.downstream += data.len() } else { self.upstream += data.len() }
    }
}

fn direction(reply: bool) -> &'static str {
    if reply { "reply" } else { "request" }
}

fn op_json(reply: bool, op: &Op) -> serde_json::Value {
    let direction = direction(reply);
    match op {
        Op::More(n) => json!({ "direction": direction, "op": "MORE", "n": n }),
        Op::Pass(n) => json!({ "direction": direction, "op": "PASS", "n": n }),
        Op::Drop(n) => json!({ "direction": direction, "op": "DROP", "n": n }),
        Op::Inject { reply: back, data } => json!({
            "direction": direction,
            "op": "INJECT",
            "to": if *back { "source" } else { "destination" },
            "data": String::from_utf8_lossy(data),
        }),
        Op::Error { code, reason } => {
            json!({ "direction": direction, "op": "ERROR", "code": code, "reason": reason })
        }
    }
}

fn op_text(op: &Op) -> String {
    match op {
        Op::More(n) => format!("MORE {n}"),
        Op::Pass(n) => format!("PASS {n}"),
        Op::Drop(n) => format!("DROP {n}"),
        Op::Inject { reply, data } => {
            let to = if *reply { "source" } else { "destination" };
            format!("INJECT to {to}: {:?}", String::from_utf8_lossy(data))
        }
        Op::Error { code, reason } => format!("ERROR {code}: {reason}"),
    }
}

fn test(args: TestArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let registry = Arc::new(FilterRegistry::with_builtins(RuntimeConfig::default())?);
    let name = load_filter(&registry, &args.filter)?;
    let rules = read_rules(&args.rules)?;
    let meta = test_meta();
    registry.set_rule_set(RuleSetId(meta.rule_set), &name, &rules)?;
    let kinds = registry.module(&name).expect("just loaded").kinds;
    let transport = args.transport.unwrap_or(if kinds.stream { Transport::Tcp } else { Transport::Udp });
    let read = |path: &Option<PathBuf>| -> anyhow::Result<Vec<u8>> {
        path.as_ref()
            .map_or(Ok(Vec::new()), |p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
    };
    let feeds = [(false, read(&args.input)?), (true, read(&args.reply_input)?)];
    let mut worker = WorkerFilters::new(registry.clone());
    let summary = match transport {
        Transport::Tcp => {
            let mut session = worker.open_stream(&name, &meta)?;
            test_stream(&mut session, &feeds, args.chunk, args.output, out)?
        }
        Transport::Udp => {
            let mut session = worker.open_datagram(&name, &meta)?;
            let mut counts = DatagramCounts::default();
            for (reply, bytes) in &feeds {
                for datagram in split_datagrams(bytes)? {
                    let verdict = session.datagram(*reply, datagram);
                    counts.add(&verdict);
                    let (label, reply_bytes) = match &verdict {
                        DatagramVerdict::Pass => ("PASS", None),
                        DatagramVerdict::Drop => ("DROP", None),
                        DatagramVerdict::Reply(bytes) => ("REPLY", Some(bytes.len())),
                    };
                    let event = json!({
                        "direction": direction(*reply),
                        "datagram_bytes": datagram.len(),
                        "verdict": label,
                        "reply_bytes": reply_bytes,
                    });
                    match args.output {
                        Output::Json => writeln!(out, "{event}")?,
                        Output::Text => {
                            let answer =
                                reply_bytes.map(|n| format!(" ({n}-byte reply)")).unwrap_or_default();
                            writeln!(
                                out,
                                "{} datagram: {} bytes: {label}{answer}",
                                direction(*reply),
                                datagram.len()
                            )?;
                        }
                    }
                    print_records(session.take_records(), args.output, out)?;
                }
            }
            Summary::Datagrams(counts)
        }
    };
    match args.output {
        Output::Json => writeln!(out, "{}", json!({ "summary": { "filter": name, "result": summary } }))?,
        Output::Text => writeln!(out, "{summary}")?,
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Default, Serialize)]
struct DatagramCounts {
    datagrams: usize,
    passed: usize,
    dropped: usize,
    replied: usize,
}

impl DatagramCounts {
    fn add(&mut self, verdict: &DatagramVerdict) {
        self.datagrams += 1;
        match verdict {
            DatagramVerdict::Pass => self.passed += 1,
            DatagramVerdict::Drop => self.dropped += 1,
            DatagramVerdict::Reply(_) => self.replied += 1,
        }
    }
}

/// What a test run amounted to.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Summary {
    Stream { to_destination_bytes: usize, to_source_bytes: usize, closed: Option<String> },
    Datagrams(DatagramCounts),
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Summary::Stream { to_destination_bytes, to_source_bytes, closed } => {
                let state = closed
                    .as_ref()
                    .map_or_else(|| "connection open".into(), |r| format!("connection closed: {r}"));
                write!(
                    f,
                    "{to_destination_bytes} bytes to the destination, {to_source_bytes} bytes to the source; {state}"
                )
            }
            Summary::Datagrams(c) => {
                write!(
                    f,
                    "{} datagrams: {} passed, {} dropped, {} replied",
                    c.datagrams, c.passed, c.dropped, c.replied
                )
            }
        }
    }
}

/// Splits a file of 2-byte big-endian length-prefixed datagrams.
fn split_datagrams(mut bytes: &[u8]) -> anyhow::Result<Vec<&[u8]>> {
    let mut datagrams = Vec::new();
    while !bytes.is_empty() {
        let Some((len, rest)) = bytes.split_first_chunk::<2>() else {
            bail!("datagram input ends inside a length prefix")
        };
        let len = u16::from_be_bytes(*len) as usize;
        if rest.len() < len {
            bail!("datagram input is truncated: a {len}-byte datagram has only {} bytes", rest.len());
        }
        datagrams.push(&rest[..len]);
        bytes = &rest[len..];
    }
    Ok(datagrams)
}

fn test_stream(
    session: &mut StreamSession,
    feeds: &[(bool, Vec<u8>)],
    chunk: Option<usize>,
    output: Output,
    out: &mut dyn Write,
) -> anyhow::Result<Summary> {
    session.enable_trace();
    let mut wire = Wire::default();
    let mut closed = None;
    'feeding: for (reply, bytes) in feeds {
        let chunk = chunk.unwrap_or(bytes.len()).max(1);
        for piece in bytes.chunks(chunk) {
            let result = session.data(*reply, piece, false, &mut wire);
            report(session, output, out)?;
            if let Err(err) = result {
                closed = Some(err.to_string());
                break 'feeding;
            }
        }
    }
    Ok(Summary::Stream { to_destination_bytes: wire.upstream, to_source_bytes: wire.downstream, closed })
}

/// Prints the calls, ops and records since the last report.
fn report(session: &mut StreamSession, output: Output, out: &mut dyn Write) -> anyhow::Result<()> {
    for event in session.take_trace() {
        match (output, event) {
            (Output::Json, TraceEvent::Op { reply, op }) => writeln!(out, "{}", op_json(reply, &op))?,
            (Output::Json, TraceEvent::Call { .. }) => {}
            (Output::Text, TraceEvent::Call { reply, end, len }) => {
                let end = if end { ", end of stream" } else { "" };
                writeln!(out, "{} call: {len} bytes buffered{end}", direction(reply))?;
            }
            (Output::Text, TraceEvent::Op { op, .. }) => writeln!(out, "  {}", op_text(&op))?,
        }
    }
    print_records(session.take_records(), output, out)
}

fn print_records(records: Vec<Vec<u8>>, output: Output, out: &mut dyn Write) -> anyhow::Result<()> {
    for record in records {
        let record = String::from_utf8_lossy(&record);
        match output {
            Output::Json => writeln!(out, "{record}")?,
            Output::Text => writeln!(out, "  record {record}")?,
        }
    }
    Ok(())
}
