//! Stampede's built-in key-value server: a RESP2 server on tokio that
//! `redis-cli`, `redis-benchmark` and Redis client libraries talk to, with
//! strings, lists, hashes, expiry and pub/sub.
//!
//! It is the embedded default target of `stampede run` and the backend of
//! load-balancer tests, so `INFO server` reports a `node_id` that agents use
//! to tell which node served a connection. Replies are written once per read
//! batch, so pipelined requests cost one write.
#![forbid(unsafe_code)]

pub mod broker;
pub mod busy_poll;
pub mod cmd;
pub mod connection;
pub mod resp;
pub mod stats;
pub mod store;

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::stats::Stats;
use crate::store::Store;

/// How the server runs; the `kv-server` flags fill it.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The identity reported as `node_id` in `INFO server`.
    pub node_id: String,
    /// Clients must `AUTH` with this password first.
    pub requirepass: Option<String>,
    /// Bytes of keys and values above which writes get an OOM error; 0 is
    /// no limit.
    pub maxmemory: u64,
    /// Connections beyond this are refused with an error.
    pub max_clients: u64,
    /// Connections silent this long are closed; `None` never.
    pub idle_timeout: Option<Duration>,
    /// Keep polling the sockets this long after the last request instead of
    /// sleeping (see [`busy_poll`]); `None` sleeps at once.
    pub busy_poll: Option<Duration>,
    /// Bytes of messages a subscriber's queue may hold before the
    /// subscriber is disconnected (see [`broker`]); 0 is no limit.
    pub pubsub_queue_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            node_id: "kv-0".to_string(),
            requirepass: None,
            maxmemory: 0,
            max_clients: 10_000,
            idle_timeout: Some(Duration::from_secs(300)),
            busy_poll: None,
            pubsub_queue_limit: broker::DEFAULT_QUEUE_LIMIT,
        }
    }
}

impl ServerConfig {
    /// The settings `CONFIG GET` shows.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("save", String::new()),
            ("appendonly", "no".into()),
            ("databases", "1".into()),
            ("maxmemory", self.maxmemory.to_string()),
            ("maxmemory-policy", "noeviction".into()),
            ("maxclients", self.max_clients.to_string()),
            ("timeout", self.idle_timeout.map_or(0, |t| t.as_secs()).to_string()),
            ("requirepass", if self.requirepass.is_some() { "********".into() } else { String::new() }),
            ("proto-max-bulk-len", resp::MAX_BULK_LEN.to_string()),
            ("client-output-buffer-limit", format!("normal 0 0 0 pubsub {} 0 0", self.pubsub_queue_limit)),
        ]
    }
}

/// State shared by all connections of one server.
pub struct Shared {
    pub config: ServerConfig,
    pub store: Store,
    pub stats: Stats,
    pub broker: Broker,
    pub run_id: String,
    pub port: u16,
    pub started: Instant,
    pub next_client_id: AtomicU64,
    /// Batches served, for the busy-polling task; `None` without one.
    pub activity: Option<busy_poll::Activity>,
}

impl Shared {
    pub fn new(config: ServerConfig, port: u16) -> Self {
        let run_id = format!(
            "{:016x}{:016x}{:08x}",
            RandomState::new().hash_one(std::process::id()),
            RandomState::new().hash_one(port),
            RandomState::new().hash_one(Instant::now()) as u32
        );
        Self {
            store: Store::default(),
            stats: Stats::default(),
            broker: Broker::new(config.pubsub_queue_limit),
            run_id,
            port,
            started: Instant::now(),
            next_client_id: AtomicU64::new(1),
            activity: config.busy_poll.map(|_| busy_poll::Activity::default()),
            config,
        }
    }

    pub fn over_memory_limit(&self) -> bool {
        self.config.maxmemory > 0 && self.store.used_memory() > self.config.maxmemory
    }
}

/// Grace period for open connections after shutdown is asked.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How often expired keys are swept.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// What a node did, returned when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalStats {
    pub node_id: String,
    pub total_commands: u64,
    /// Calls per command, as `INFO commandstats` counts them.
    pub calls: Vec<(&'static str, u64)>,
}

impl std::fmt::Display for FinalStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kv-server {} stopped after {} commands", self.node_id, self.total_commands)?;
        let calls: Vec<String> = self.calls.iter().map(|(name, n)| format!("{name}={n}")).collect();
        if !calls.is_empty() {
            write!(f, " ({})", calls.join(" "))?;
        }
        Ok(())
    }
}

/// Serves connections from `listener` until `shutdown` completes, then stops
/// accepting, lets connections finish the batch they are in (every command
/// executed has its reply sent), and returns what the node did.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<FinalStats> {
    let port = listener.local_addr()?.port();
    let shared = Arc::new(Shared::new(config, port));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    tokio::pin!(shutdown);
    // Aborted when this function returns or its future is dropped.
    let spinner = shared.config.busy_poll.map(|window| {
        let shared = Arc::clone(&shared);
        AbortOnDrop(tokio::spawn(async move {
            if let Some(activity) = &shared.activity {
                busy_poll::spin(activity, window).await;
            }
        }))
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut socket, peer)) => {
                    let stats = &shared.stats;
                    if stats.connected_clients.load(Ordering::Relaxed) >= shared.config.max_clients {
                        stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
                        });
                        continue;
                    }
                    stats.connected_clients.fetch_add(1, Ordering::Relaxed);
                    stats.total_connections.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::clone(&shared);
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        if let Err(error) = connection::handle(socket, &shared, stop).await {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                        shared.stats.connected_clients.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = sweep.tick() => {
                shared.store.sweep_expired();
            }
            () = &mut shutdown => break,
        }
    }
    drop(spinner);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        connections.abort_all();
    }
    let stats = &shared.stats;
    Ok(FinalStats {
        node_id: shared.config.node_id.clone(),
        total_commands: stats.total_commands(),
        calls: stats.command_calls(),
    })
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running server started by [`spawn`].
pub struct Spawned {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<FinalStats>>,
}

impl Spawned {
    /// Stops the server and waits until it has closed its connections.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_or(Ok(()), |result| result.map(drop))
    }
}

/// Binds `addr` and serves in a background task.
pub async fn spawn(addr: SocketAddr, config: ServerConfig) -> std::io::Result<Spawned> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, config, async move {
        let _ = rx.await;
    }));
    Ok(Spawned { addr: local, stop: Some(tx), task })
}

#[cfg(test)]
mod tests;
