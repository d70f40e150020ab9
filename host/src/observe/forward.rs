//! Serves an agent's API (and so its web UI) on a TCP address by forwarding
//! each connection to the agent's socket, as `kubectl port-forward` does:
//! `porin lab ui` uses it to reach an agent inside the lab's node namespace.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream, UnixStream};

use crate::agent::api::ApiAddress;

/// Accepts on `listen` until the task ends; each connection is relayed to `target`.
pub async fn forward(listener: TcpListener, target: ApiAddress) -> anyhow::Result<()> {
    loop {
        let (client, _) = listener.accept().await.context("accepting a UI connection")?;
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(err) = relay(client, &target).await {
                tracing::debug!("UI connection: {err:#}");
            }
        });
    }
}

async fn relay(mut client: TcpStream, target: &ApiAddress) -> anyhow::Result<()> {
    match target {
        ApiAddress::Unix(path) => {
            let mut agent =
                UnixStream::connect(path).await.with_context(|| format!("connecting to {target}"))?;
            tokio::io::copy_bidirectional(&mut client, &mut agent).await?;
        }
        ApiAddress::Tcp(address) => {
            let mut agent =
                TcpStream::connect(address).await.with_context(|| format!("connecting to {target}"))?;
            tokio::io::copy_bidirectional(&mut client, &mut agent).await?;
        }
    }
    Ok(())
}

/// Binds `listen` (port 0 picks one); the bound address is returned with the listener.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}
