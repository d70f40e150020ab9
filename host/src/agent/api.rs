//! The agent's HTTP API, on a unix socket or a TCP address:
//!
//! * `GET /healthz`: 200 while the agent's loop runs. It is served by the
//!   same single thread as the loop, so an answer means the loop is not stuck.
//! * `GET /readyz`: 200 once the datapath enforces and the last update
//!   applied; 503 with the reason otherwise.
//! * `GET /v1/status`: the [`Status`] as JSON.
//! * `GET /v1/flows`, `GET /metrics` and the web UI at `/`: see
//!   [`crate::observe::api`].

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;

use super::status::Status;
use crate::observe::Observer;
use crate::observe::api::{self as observe_api, Body, response, text};

/// What the API answers from.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub status: watch::Receiver<Status>,
    pub observer: Arc<Observer>,
}

/// Where the API listens: `unix:PATH` or `IP:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAddress {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

pub const DEFAULT_API_ADDRESS: &str = "unix:/run/porin/agent.sock";

impl FromStr for ApiAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<ApiAddress, String> {
        match s.strip_prefix("unix:") {
            Some("") => Err("`unix:` needs a socket path".to_string()),
            Some(path) => Ok(ApiAddress::Unix(PathBuf::from(path))),
            None => {
                s.parse().map(ApiAddress::Tcp).map_err(|_| format!("`{s}` is neither unix:PATH nor IP:PORT"))
            }
        }
    }
}

impl fmt::Display for ApiAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            ApiAddress::Tcp(address) => write!(f, "{address}"),
        }
    }
}

/// The API server, serving on the current tokio runtime until dropped; a
/// unix socket file is removed then.
#[derive(Debug)]
pub struct ApiServer {
    task: tokio::task::JoinHandle<()>,
    socket_file: Option<PathBuf>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(path) = &self.socket_file {
            std::fs::remove_file(path).ok();
        }
    }
}

impl ApiServer {
    /// Binds `address` and serves `state` from a task of the current runtime.
    pub fn start(address: &ApiAddress, state: ApiState) -> anyhow::Result<ApiServer> {
        match address {
            ApiAddress::Unix(path) => {
                let task = spawn_accept_loop(bind_unix(path)?, state);
                Ok(ApiServer { task, socket_file: Some(path.clone()) })
            }
            ApiAddress::Tcp(address) => {
                let listener = std::net::TcpListener::bind(address)
                    .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                    .and_then(TcpListener::from_std)
                    .with_context(|| format!("cannot listen on {address} for the agent API"))?;
                Ok(ApiServer { task: spawn_accept_loop(listener, state), socket_file: None })
            }
        }
    }
}

/// A listening socket of either kind, for one accept loop.
trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_stream(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Accept for UnixListener {
    type Stream = UnixStream;
    async fn accept_stream(&self) -> std::io::Result<UnixStream> {
        Ok(self.accept().await?.0)
    }
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    async fn accept_stream(&self) -> std::io::Result<TcpStream> {
        Ok(self.accept().await?.0)
    }
}

fn spawn_accept_loop(listener: impl Accept, state: ApiState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listener.accept_stream().await {
                Ok(stream) => serve_connection(stream, state.clone()),
                Err(err) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!("agent API: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Binds a unix socket, creating its directory. A socket file left by an
/// agent that died is replaced; one that a live agent answers on is not.
fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another process serves {}; give this agent its own --api", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("cannot remove the stale {}", path.display()))?;
    }
    UnixListener::bind(path).with_context(|| format!("cannot listen on {} for the agent API", path.display()))
}

fn serve_connection<S>(stream: S, state: ApiState)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let (method, uri) = (request.method(), request.uri());
        let response = if observe_api::serves(uri.path()) && matches!(*method, Method::GET | Method::HEAD) {
            observe_api::respond(uri.path(), uri.query().unwrap_or(""), &state.observer)
        } else {
            respond(method, uri.path(), &state.status.borrow())
        };
        async move { Ok::<_, Infallible>(response) }
    });
    tokio::spawn(async move {
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service)
            .await;
        if let Err(err) = served {
            tracing::debug!("agent API connection: {err}");
        }
    });
}

fn respond(method: &Method, path: &str, status: &Status) -> Response<Body> {
    if !matches!(path, "/healthz" | "/readyz" | "/v1/status") && !observe_api::serves(path) {
        let paths = "/healthz, /readyz, /v1/status, /v1/flows, /metrics or / (the web UI)";
        return text(StatusCode::NOT_FOUND, format!("not found: try {paths}\n"));
    }
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_string());
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n".to_string()),
        "/readyz" => match status.not_ready_because() {
            None => text(StatusCode::OK, "ready\n".to_string()),
            Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
        },
        _ => {
            let json = serde_json::to_string(status).expect("the status serializes");
            response(StatusCode::OK, "application/json", json + "\n")
        }
    }
}

#[cfg(test)]
mod tests;
