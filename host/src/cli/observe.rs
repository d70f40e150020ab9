//! `porin observe`: flows from an agent's API, filtered like `hubble
//! observe`. The filters are checked here (so mistakes are reported before
//! connecting) and again by the agent.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::agent::api::{ApiAddress, DEFAULT_API_ADDRESS};
use crate::flow::{FlowQuery, Timestamp};
use crate::observe::format::{self, Line, Output, Palette};

/// Which flows, and how to print them.
#[derive(Debug, Clone, Args)]
pub struct ObserveFilters {
    /// Flows from or to pods in NAMESPACE.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Vec<String>,
    /// Flows from or to [NAMESPACE/]POD (a name prefix).
    #[arg(long, value_name = "[NAMESPACE/]POD")]
    pub pod: Vec<String>,
    /// Flows from [NAMESPACE/]POD.
    #[arg(long, value_name = "[NAMESPACE/]POD")]
    pub from_pod: Vec<String>,
    /// Flows to [NAMESPACE/]POD.
    #[arg(long, value_name = "[NAMESPACE/]POD")]
    pub to_pod: Vec<String>,
    /// Flows from or to endpoints with the label KEY[=VALUE].
    #[arg(short = 'l', long, value_name = "KEY[=VALUE]")]
    pub label: Vec<String>,
    /// FORWARDED, DROPPED, ERROR or REDIRECTED.
    #[arg(long, value_name = "VERDICT")]
    pub verdict: Vec<String>,
    /// tcp, udp, icmp, or an L7 protocol (http, dns, kafka, a filter's name).
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Vec<String>,
    /// Flows from or to PORT.
    #[arg(long, value_name = "PORT")]
    pub port: Vec<String>,
    #[arg(long, value_name = "METHOD")]
    pub http_method: Vec<String>,
    /// A regular expression on the request path.
    #[arg(long, value_name = "REGEX")]
    pub http_path: Vec<String>,
    /// A status code (404) or a prefix (5+).
    #[arg(long, value_name = "CODE")]
    pub http_status: Vec<String>,
    /// A regular expression on the DNS query name.
    #[arg(long, value_name = "REGEX")]
    pub dns_query: Vec<String>,
    /// Flows since an RFC 3339 time or a duration ago (30s, 5m, 2h, 1d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Start with the last N matching flows [default: 20, or none with --follow].
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Keep printing new flows as they happen.
    #[arg(short = 'f', long)]
    pub follow: bool,
    #[arg(short = 'o', long, value_enum, default_value = "compact")]
    pub output: Output,
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// On a terminal only.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct ObserveArgs {
    /// The agent's API: unix:PATH or IP:PORT.
    #[arg(long, value_name = "ADDR", env = "PORIN_SERVER", default_value = DEFAULT_API_ADDRESS)]
    pub server: ApiAddress,
    #[command(flatten)]
    pub filters: ObserveFilters,
}

/// How many flows `porin observe` shows without --last or --follow (as hubble).
const DEFAULT_LAST: usize = 20;

impl ObserveFilters {
    /// The API's query parameters.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let repeated: [(&'static str, &Vec<String>); 12] = [
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("from_pod", &self.from_pod),
            ("to_pod", &self.to_pod),
            ("label", &self.label),
            ("verdict", &self.verdict),
            ("protocol", &self.protocol),
            ("port", &self.port),
            ("http_method", &self.http_method),
            ("http_path", &self.http_path),
            ("http_status", &self.http_status),
            ("dns_query", &self.dns_query),
        ];
        let mut pairs: Vec<(&'static str, String)> = repeated
            .into_iter()
            .flat_map(|(name, values)| values.iter().map(move |v| (name, v.clone())))
            .collect();
        pairs.extend(self.since.iter().map(|since| ("since", since.clone())));
        let last = match (self.last, self.follow, &self.since) {
            (Some(last), _, _) => Some(last),
            (None, false, None) => Some(DEFAULT_LAST),
            (None, _, _) => None,
        };
        pairs.extend(last.map(|last| ("last", last.to_string())));
        if self.follow {
            pairs.push(("follow", "true".to_string()));
        }
        pairs
    }

    /// `/v1/flows?...`, after checking the filters.
    pub fn request_path(&self) -> anyhow::Result<String> {
        let pairs = self.pairs();
        FlowQuery::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_str())), Timestamp::now())
            .map_err(|err| anyhow::anyhow!("bad filter: {err}"))?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &pairs {
            query.append_pair(name, value);
        }
        Ok(format!("/v1/flows?{}", query.finish()))
    }
}

pub(super) fn run(args: ObserveArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    observe(&args.server, &args.filters, out)
}

/// Prints the flows `filters` select from the agent at `server`.
pub(super) fn observe(
    server: &ApiAddress,
    filters: &ObserveFilters,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let path = filters.request_path()?;
    let palette = Palette::new(match filters.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let streamed = runtime.block_on(async {
        let mut printer = Printer { out, output: filters.output, palette, header: false };
        match server {
            ApiAddress::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket).await.with_context(|| {
                    format!("cannot reach the agent at {server} (is it running? --server or PORIN_SERVER pick another)")
                })?;
                stream_flows(stream, &path, &mut printer).await
            }
            ApiAddress::Tcp(address) => {
                let stream = tokio::net::TcpStream::connect(address)
                    .await
                    .with_context(|| format!("cannot reach the agent at {server}"))?;
                stream_flows(stream, &path, &mut printer).await
            }
        }
    });
    match streamed {
        // The reader went away (`porin observe | head`): done.
        Err(err)
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {}
        other => other?,
    }
    Ok(ExitCode::SUCCESS)
}

struct Printer<'a> {
    out: &'a mut dyn Write,
    output: Output,
    palette: Palette,
    header: bool,
}

impl Printer<'_> {
    fn line(&mut self, line: &str) -> anyhow::Result<()> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let text = match self.output {
            Output::Json => line.to_string(),
            Output::Compact | Output::Table => {
                let parsed: Line = serde_json::from_str(line)
                    .with_context(|| format!("the agent sent a line that is not a flow: {line}"))?;
                match (parsed.flow, parsed.lost_events) {
                    (Some(flow), _) if self.output == Output::Table => {
                        if !self.header {
                            self.header = true;
                            writeln!(self.out, "{}", format::table_header())?;
                        }
                        format::table(&flow, self.palette)
                    }
                    (Some(flow), _) => format::compact(&flow, self.palette),
                    (None, Some(lost)) => format::lost(&lost),
                    (None, None) => return Ok(()),
                }
            }
        };
        writeln!(self.out, "{text}")?;
        Ok(())
    }
}

async fn stream_flows<S>(stream: S, path: &str, printer: &mut Printer<'_>) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("the agent's API did not answer HTTP")?;
    let connection = tokio::spawn(connection);
    let request = Request::get(path).header(hyper::header::HOST, "porin-agent").body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await.context("the agent's API did not answer")?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        bail!("the agent refused: {}", String::from_utf8_lossy(&text).trim());
    }
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the flow stream broke")?;
        let Some(data) = frame.data_ref() else { continue };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            printer.line(&String::from_utf8_lossy(&line))?;
        }
        printer.out.flush()?;
    }
    connection.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        filters: ObserveFilters,
    }

    fn path(args: &[&str]) -> anyhow::Result<String> {
        Cli::try_parse_from(std::iter::once("observe").chain(args.iter().copied()))?.filters.request_path()
    }

    #[test]
    fn flags_become_the_apis_filters() {
        assert_eq!(path(&[]).unwrap(), "/v1/flows?last=20");
        assert_eq!(path(&["-f"]).unwrap(), "/v1/flows?follow=true");
        assert_eq!(
            path(&["-n", "backend", "--to-pod", "backend/api", "--verdict", "DROPPED", "--last", "5"])
                .unwrap(),
            "/v1/flows?namespace=backend&to_pod=backend%2Fapi&verdict=DROPPED&last=5"
        );
        assert_eq!(
            path(&["--http-path", "^/v1/.*", "--http-status", "5+", "--since", "5m"]).unwrap(),
            "/v1/flows?http_path=%5E%2Fv1%2F.*&http_status=5%2B&since=5m"
        );
    }

    #[test]
    fn bad_filters_fail_before_connecting() {
        let err = path(&["--verdict", "ALLOWED"]).unwrap_err().to_string();
        assert!(err.contains("bad filter") && err.contains("verdict"), "{err}");
        assert!(path(&["--http-status", "2x"]).is_err());
    }
}
