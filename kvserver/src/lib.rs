//! Stampede's built-in key-value server: a RESP2 server on tokio that
//! `redis-cli`, `redis-benchmark` and Redis client libraries can talk to.
//!
//! It is the embedded default target of `stampede run` and the backend of
//! load-balancer tests, so `INFO server` reports a `node_id` that agents use
//! to tell which node served a connection. Replies are written once per read
//! batch, so pipelined requests cost one write.
#![forbid(unsafe_code)]

pub mod cmd;
pub mod resp;
pub mod stats;
pub mod store;

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cmd::{Command, write_error};
use crate::resp::{parse_request, reply};
use crate::stats::Stats;
use crate::store::Store;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The identity reported as `node_id` in `INFO server`.
    pub node_id: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { node_id: "kv-0".to_string() }
    }
}

/// State shared by all connections of one server.
pub struct Shared {
    pub config: ServerConfig,
    pub store: Store,
    pub stats: Stats,
    pub run_id: String,
    pub port: u16,
    pub started: Instant,
}

/// Grace period for open connections after shutdown is asked.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves connections from `listener` until `shutdown` completes, then stops
/// accepting, lets connections finish the batch they are in, and returns.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let run_id =
        format!("{:016x}{:016x}", RandomState::new().hash_one(std::process::id()), RandomState::new().hash_one(port));
    let shared = Arc::new(Shared {
        config,
        store: Store::default(),
        stats: Stats::default(),
        run_id,
        port,
        started: Instant::now(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let shared = Arc::clone(&shared);
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        if let Err(error) = handle_connection(socket, &shared, stop).await {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        connections.abort_all();
    }
    Ok(())
}

/// Binds `addr` and serves in a background task. Returns the bound address
/// and a sender that stops the server when it is dropped or sent to.
pub async fn spawn(
    addr: SocketAddr,
    config: ServerConfig,
) -> std::io::Result<(SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve(listener, config, async move {
        let _ = rx.await;
    }));
    Ok((local, tx, handle))
}

async fn handle_connection(
    mut socket: TcpStream,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    shared.stats.connected_clients.fetch_add(1, Ordering::Relaxed);
    shared.stats.total_connections.fetch_add(1, Ordering::Relaxed);
    let result = connection_loop(&mut socket, shared, &mut stop).await;
    shared.stats.connected_clients.fetch_sub(1, Ordering::Relaxed);
    result
}

async fn connection_loop(
    socket: &mut TcpStream,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    loop {
        let read = tokio::select! {
            read = socket.read_buf(&mut input) => read?,
            _ = stop.changed() => return Ok(()),
        };
        if read == 0 {
            return Ok(());
        }
        loop {
            match parse_request(&mut input) {
                Ok(Some(args)) if args.is_empty() => {}
                Ok(Some(args)) => match Command::parse(args) {
                    Ok(command) => command.apply(shared, &mut output),
                    Err(error) => write_error(&mut output, &error),
                },
                Ok(None) => break,
                Err(error) => {
                    reply::error(&mut output, &format!("ERR {error}"));
                    socket.write_all(&output).await?;
                    return Ok(());
                }
            }
        }
        if !output.is_empty() {
            socket.write_all(&output).await?;
            output.clear();
        }
    }
}

#[cfg(test)]
mod tests;
