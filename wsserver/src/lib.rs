//! Stampede's WebSocket server (`stampede ws-server`): chat rooms with
//! broadcast on `/chat` (and `/`), an echo on `/echo`, as the key-value
//! benchmark this project grew from served with `--run-ws-server`.
//!
//! Every frame is JSON text. On connect the server says who it is:
//! `{"type":"hello","node":"ws-0"}`. Then, on `/chat`:
//!
//! - `{"type":"join","room":"R"}` makes the connection a member of room R,
//!   answered with `{"type":"joined","room":"R","members":N}`;
//! - `{"type":"post","room":"R","id":I,"sent":T,"body":"..."}` sends
//!   `{"type":"message","room":"R","sent":T,"body":"..."}` to every member
//!   of R and answers the poster `{"type":"posted","id":I,"delivered":K}`,
//!   K being the members it reached (a member whose queue is full misses
//!   the message, counted as dropped);
//! - `{"type":"stats"}` answers the server's counts (`Stats`).
//!
//! On `/echo` every text or binary frame is sent back as it came. The
//! server's counts are printed when it stops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// Frames a member may have waiting before it misses messages.
const MEMBER_QUEUE: usize = 1024;
/// The largest frame read; a bigger one closes the connection.
const MAX_FRAME: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub node_id: String,
    /// Connections beyond this many are refused (closed at once).
    pub max_clients: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { node_id: "ws-0".to_string(), max_clients: 100_000 }
    }
}

/// What the server did, counted as it went.
#[derive(Debug, Default)]
pub struct Stats {
    /// WebSocket connections accepted (upgrades that completed).
    pub connections: AtomicU64,
    pub open: AtomicU64,
    pub refused: AtomicU64,
    pub joins: AtomicU64,
    pub posts: AtomicU64,
    /// Messages handed to members' queues.
    pub deliveries: AtomicU64,
    /// Messages a member missed because its queue was full.
    pub dropped: AtomicU64,
    pub echoes: AtomicU64,
}

/// The counts at one moment, as `{"type":"stats"}` answers them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub node: String,
    pub connections: u64,
    pub open: u64,
    pub refused: u64,
    pub joins: u64,
    pub posts: u64,
    pub deliveries: u64,
    pub dropped: u64,
    pub echoes: u64,
}

impl Stats {
    pub fn counts(&self, node: &str) -> Counts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            node: node.to_string(),
            connections: get(&self.connections),
            open: get(&self.open),
            refused: get(&self.refused),
            joins: get(&self.joins),
            posts: get(&self.posts),
            deliveries: get(&self.deliveries),
            dropped: get(&self.dropped),
            echoes: get(&self.echoes),
        }
    }
}

impl Counts {
    /// One line for the log when the server stops.
    pub fn summary(&self) -> String {
        format!(
            "ws-server {} served: connections={} joins={} posts={} deliveries={} dropped={} echoes={} refused={}",
            self.node,
            self.connections,
            self.joins,
            self.posts,
            self.deliveries,
            self.dropped,
            self.echoes,
            self.refused
        )
    }
}

type Members = HashMap<u64, mpsc::Sender<Message>, foldhash::fast::RandomState>;

struct Shared {
    config: ServerConfig,
    stats: Stats,
    rooms: Mutex<HashMap<String, Members, foldhash::fast::RandomState>>,
    next_id: AtomicU64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Incoming {
    Join { room: String },
    Post { room: String, id: u64, sent: u64, body: String },
    Stats,
}

/// A running server: its counts, readable while it serves.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    pub fn counts(&self) -> Counts {
        self.shared.stats.counts(&self.shared.config.node_id)
    }
}

/// Serves `listener` until `shutdown` resolves; returns the final counts.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Counts {
    let server = server(config);
    serve_with(listener, server.clone(), shutdown).await;
    server.counts()
}

/// Serves with a server whose counts the caller can read meanwhile.
pub async fn serve_with(listener: TcpListener, server: Server, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&server.shared);
                    connections.spawn(async move { connection(stream, shared).await });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

/// A new server's handle, to serve with [`serve_with`].
pub fn server(config: ServerConfig) -> Server {
    Server {
        shared: Arc::new(Shared {
            config,
            stats: Stats::default(),
            rooms: Mutex::new(HashMap::default()),
            next_id: AtomicU64::new(0),
        }),
    }
}

fn json(value: &serde_json::Value) -> Message {
    Message::text(value.to_string())
}

// tungstenite's handshake callback returns its (large) error response type.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let stats = &shared.stats;
    if stats.open.load(Ordering::Relaxed) >= shared.config.max_clients {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut path = String::new();
    let mut limits = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    limits.max_message_size = Some(MAX_FRAME);
    limits.max_frame_size = Some(MAX_FRAME);
    // Small buffers (tungstenite's defaults are 128 KiB each way): a chat
    // server holds many mostly idle connections.
    limits.read_buffer_size = 4096;
    limits.write_buffer_size = 0;
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_string();
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(limits)).await else {
        return;
    };
    stats.connections.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut frames) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(MEMBER_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let echo = path == "/echo";
    let hello = serde_json::json!({"type": "hello", "node": shared.config.node_id});
    let _ = tx.send(json(&hello)).await;
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(frame)) = frames.next().await {
        match frame {
            Message::Text(_) | Message::Binary(_) if echo => {
                stats.echoes.fetch_add(1, Ordering::Relaxed);
                if tx.send(frame).await.is_err() {
                    break;
                }
            }
            Message::Text(text) => {
                let answer = match serde_json::from_str::<Incoming>(text.as_str()) {
                    Ok(Incoming::Join { room }) => {
                        stats.joins.fetch_add(1, Ordering::Relaxed);
                        let members = {
                            let mut rooms = shared.rooms.lock().unwrap_or_else(PoisonError::into_inner);
                            let members = rooms.entry(room.clone()).or_default();
                            members.insert(id, tx.clone());
                            members.len()
                        };
                        joined.push(room.clone());
                        serde_json::json!({"type": "joined", "room": room, "members": members})
                    }
                    Ok(Incoming::Post { room, id: post, sent, body }) => {
                        stats.posts.fetch_add(1, Ordering::Relaxed);
                        let message =
                            json(&serde_json::json!({"type": "message", "room": room, "sent": sent, "body": body}));
                        let members: Vec<mpsc::Sender<Message>> = {
                            let rooms = shared.rooms.lock().unwrap_or_else(PoisonError::into_inner);
                            rooms.get(&room).map(|m| m.values().cloned().collect()).unwrap_or_default()
                        };
                        let mut delivered = 0u64;
                        for member in members {
                            match member.try_send(message.clone()) {
                                Ok(()) => delivered += 1,
                                Err(mpsc::error::TrySendError::Full(_)) => {
                                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(mpsc::error::TrySendError::Closed(_)) => {}
                            }
                        }
                        stats.deliveries.fetch_add(delivered, Ordering::Relaxed);
                        serde_json::json!({"type": "posted", "id": post, "delivered": delivered})
                    }
                    Ok(Incoming::Stats) => {
                        serde_json::to_value(shared.stats.counts(&shared.config.node_id)).unwrap_or_default()
                    }
                    Err(error) => {
                        serde_json::json!({"type": "error", "message": format!("not a chat command: {error}")})
                    }
                };
                if tx.send(json(&answer)).await.is_err() {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    {
        let mut rooms = shared.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        for room in joined {
            if let Some(members) = rooms.get_mut(&room) {
                members.remove(&id);
                if members.is_empty() {
                    rooms.remove(&room);
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
    stats.open.fetch_sub(1, Ordering::Relaxed);
}
