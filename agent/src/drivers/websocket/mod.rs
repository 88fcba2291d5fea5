//! The WebSocket target (`kind: websocket`, tokio-tungstenite): the `chat`
//! workload against `stampede ws-server`'s rooms, and `echo` against any
//! server that sends each frame back.
//!
//! A connection opens its socket, upgrades it and reads the server's hello
//! (`{"type":"hello","node":...}`; an echo server that sends none is named
//! by its endpoint), all timed as the `connect` operation. In `chat`, the
//! load's connections post to rooms and wait for the server's `posted`
//! answer, whose `delivered` (the members it reached, as the server
//! counted) is the fan-out; each agent's members (listeners) join rooms
//! and time every broadcast from the send time it carries (`stamp`).

mod listen;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use stampede_common::scenario::{Workload, redact};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::stamp::Clock;
use super::{BuildError, Connection, Done, Driver, DriverError, DriverSpec, ErrorKind, Listen};
use crate::workloads::{Action, Operation};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opening a socket, its upgrade and the hello take at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an echo server may take to say hello before it is taken to
/// send none.
const HELLO_WAIT: Duration = Duration::from_millis(300);

#[derive(Debug)]
enum Mode {
    Chat { rooms: Vec<String>, members: u32, body: String },
    Echo { frame: Message },
}

#[derive(Debug)]
pub struct Plan {
    mode: Mode,
    path: &'static str,
    agent_index: u32,
    clock: Clock,
    note: String,
}

pub struct WsDriver {
    plan: Arc<Plan>,
}

#[derive(Clone)]
pub struct WsConnection {
    socket: Arc<tokio::sync::Mutex<Socket>>,
    node: Arc<str>,
    shown: Arc<str>,
    connect_us: u64,
    closed: Arc<AtomicBool>,
    plan: Arc<Plan>,
    /// Numbers posts so that each answer is matched to its post.
    next_post: Arc<AtomicU64>,
}

/// `ws://host:port/path` from an endpoint (`host:port` takes `path`).
fn url(endpoint: &str, path: &str) -> String {
    if endpoint.contains("://") { endpoint.to_string() } else { format!("ws://{endpoint}{path}") }
}

/// Opens a socket to `endpoint`, upgrades it and reads the hello: the
/// socket, the node and how long it all took.
pub(crate) async fn open(endpoint: &str, plan: &Plan) -> Result<(Socket, Arc<str>, u64), DriverError> {
    let shown = redact(endpoint);
    let started = Instant::now();
    let address = url(endpoint, plan.path);
    let opening = async {
        // Small buffers (tungstenite's defaults are 128 KiB each way): an
        // agent may hold tens of thousands of mostly idle connections.
        let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
        config.read_buffer_size = 4096;
        config.write_buffer_size = 0;
        let connecting = tokio_tungstenite::connect_async_with_config(address.as_str(), Some(config), true);
        let (mut socket, _) = connecting.await.map_err(|e| {
            use tokio_tungstenite::tungstenite::Error as E;
            let kind = match &e {
                E::Io(_) | E::ConnectionClosed | E::AlreadyClosed => ErrorKind::Connection,
                E::Http(_) | E::HttpFormat(_) | E::Protocol(_) | E::Url(_) => ErrorKind::Protocol,
                _ => ErrorKind::Connection,
            };
            DriverError::new(kind, format!("cannot open a WebSocket to {shown}: {e}"))
        })?;
        let hello = match &plan.mode {
            // An echo server need not say hello.
            Mode::Echo { .. } => tokio::time::timeout(HELLO_WAIT, socket.next()).await.ok().flatten(),
            Mode::Chat { .. } => socket.next().await,
        };
        let node = match hello {
            Some(Ok(Message::Text(text))) => serde_json::from_str::<Value>(text.as_str())
                .ok()
                .filter(|v| v["type"] == "hello")
                .and_then(|v| v["node"].as_str().map(str::to_string))
                .ok_or_else(|| {
                    DriverError::new(
                        ErrorKind::Protocol,
                        format!("{shown}: the first frame is not a hello naming the node: {text}"),
                    )
                })?,
            Some(Ok(other)) if matches!(plan.mode, Mode::Chat { .. }) => {
                return Err(DriverError::new(
                    ErrorKind::Protocol,
                    format!("{shown}: a {other:?} frame instead of the hello"),
                ));
            }
            Some(Err(e)) => return Err(DriverError::new(ErrorKind::Connection, format!("{shown}: {e}"))),
            None if matches!(plan.mode, Mode::Chat { .. }) => {
                return Err(DriverError::new(ErrorKind::Connection, format!("{shown} closed before its hello")));
            }
            _ => shown.clone(),
        };
        Ok::<_, DriverError>((socket, node))
    };
    let (socket, node) = tokio::time::timeout(CONNECT_TIMEOUT, opening).await.map_err(|_| {
        DriverError::new(ErrorKind::Timeout, format!("opening a WebSocket to {shown} took over {CONNECT_TIMEOUT:?}"))
    })??;
    Ok((socket, node.into(), started.elapsed().as_micros() as u64))
}

/// Sends `frame` and reads until `answer` accepts a frame; frames it does
/// not want (broadcasts to a poster that is also a member) are skipped.
async fn exchange<T>(
    socket: &mut Socket,
    shown: &str,
    frame: Message,
    mut answer: impl FnMut(&Message) -> Option<Result<T, DriverError>>,
) -> Result<T, DriverError> {
    socket.send(frame).await.map_err(|e| DriverError::new(ErrorKind::Connection, format!("{shown}: sending: {e}")))?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(_))) | None => {
                return Err(DriverError::new(ErrorKind::Connection, format!("{shown} closed the WebSocket")));
            }
            Some(Ok(message)) => {
                if let Some(result) = answer(&message) {
                    return result;
                }
            }
            Some(Err(e)) => return Err(DriverError::new(ErrorKind::Connection, format!("{shown}: {e}"))),
        }
    }
}

impl Plan {
    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        let (mode, path, note) = match &spec.scenario.workload {
            Workload::Room(w) => {
                // The body is text after the JSON around it.
                let body = "x".repeat(w.message_size.saturating_sub(80).max(1) as usize);
                let note = format!(
                    "chat over {} rooms, {} members per agent, posts of about {} bytes",
                    w.rooms, w.members, w.message_size
                );
                let rooms = (0..w.rooms).map(|r| format!("{}{r}", w.prefix)).collect();
                (Mode::Chat { rooms, members: w.members, body }, "/chat", note)
            }
            Workload::Echo(w) => {
                let size = w.message_size as usize;
                let frame = if w.binary { Message::binary(vec![0x5a; size]) } else { Message::text("e".repeat(size)) };
                let kind = if w.binary { "binary" } else { "text" };
                (Mode::Echo { frame }, "/echo", format!("echo of {size}-byte {kind} frames"))
            }
            other => {
                return Err(BuildError(format!("workload {} does not run against a websocket target", other.kind())));
            }
        };
        Ok(Self { mode, path, agent_index: spec.part.agent_index, clock: spec.clock, note })
    }
}

impl Driver for WsDriver {
    type Connection = WsConnection;

    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        Ok(Self { plan: Arc::new(Plan::build(spec)?) })
    }

    fn notes(&self) -> Vec<String> {
        vec![self.plan.note.clone()]
    }

    fn connect_operation(&self) -> Option<usize> {
        Some(1)
    }

    async fn listeners(&self, endpoints: &[String]) -> Result<Vec<Box<dyn Listen>>, DriverError> {
        listen::open_all(&self.plan, endpoints).await
    }

    async fn connect(&self, endpoint: &str) -> Result<WsConnection, DriverError> {
        let (socket, node, connect_us) = open(endpoint, &self.plan).await?;
        Ok(WsConnection {
            socket: Arc::new(tokio::sync::Mutex::new(socket)),
            node,
            shown: redact(endpoint).into(),
            connect_us,
            closed: Arc::new(AtomicBool::new(false)),
            plan: Arc::clone(&self.plan),
            next_post: Arc::new(AtomicU64::new(0)),
        })
    }
}

impl WsConnection {
    async fn post(&self, room: u64) -> Result<Done, DriverError> {
        let Mode::Chat { rooms, body, .. } = &self.plan.mode else {
            return Err(DriverError::new(ErrorKind::Protocol, "a post on an echo connection"));
        };
        let room = &rooms[(room % rooms.len().max(1) as u64) as usize];
        let id = self.next_post.fetch_add(1, Ordering::Relaxed);
        let sent = self.plan.clock.now_us();
        let frame = Message::text(
            serde_json::json!({"type": "post", "room": room, "id": id, "sent": sent, "body": body}).to_string(),
        );
        let shown = &self.shown;
        let sent = frame.len() as u32;
        let mut socket = self.socket.lock().await;
        exchange(&mut socket, shown, frame, |message| {
            let Message::Text(text) = message else { return None };
            let received = text.len() as u32;
            let value: Value = match serde_json::from_str(text.as_str()) {
                Ok(value) => value,
                Err(e) => return Some(Err(DriverError::new(ErrorKind::Protocol, format!("{shown}: not JSON: {e}")))),
            };
            match value["type"].as_str() {
                Some("posted") if value["id"] == id => {
                    let delivered = value["delivered"].as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
                    Some(Ok(Done { fanout: delivered, sent, received, ..Done::default() }))
                }
                Some("error") => Some(Err(DriverError::new(
                    ErrorKind::Server,
                    format!("{shown}: {}", value["message"].as_str().unwrap_or("an error without a message")),
                ))),
                _ => None,
            }
        })
        .await
    }

    async fn echo(&self) -> Result<Done, DriverError> {
        let Mode::Echo { frame } = &self.plan.mode else {
            return Err(DriverError::new(ErrorKind::Protocol, "an echo on a chat connection"));
        };
        let shown = &self.shown;
        let mut socket = self.socket.lock().await;
        exchange(&mut socket, shown, frame.clone(), |message| match message {
            Message::Text(_) | Message::Binary(_) if message == frame => {
                Some(Ok(Done { sent: frame.len() as u32, received: message.len() as u32, ..Done::default() }))
            }
            Message::Text(_) | Message::Binary(_) => Some(Err(DriverError::new(
                ErrorKind::Protocol,
                format!(
                    "{shown}: the echo differs from the frame sent ({} bytes back of {})",
                    message.len(),
                    frame.len()
                ),
            ))),
            _ => None,
        })
        .await
    }
}

impl Connection for WsConnection {
    fn node(&self) -> &str {
        &self.node
    }

    fn connect_us(&self) -> Option<u64> {
        Some(self.connect_us)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    async fn execute(&mut self, operation: &Operation) -> Result<Done, DriverError> {
        let result = match operation.action {
            Action::ChatPost(room) => self.post(room).await,
            Action::Echo => self.echo().await,
            other => Err(DriverError::new(
                ErrorKind::Protocol,
                format!("{other:?} is not an operation of the websocket driver"),
            )),
        };
        if let Err(error) = &result
            && error.kind == ErrorKind::Connection
        {
            self.closed.store(true, Ordering::Relaxed);
        }
        result
    }
}
