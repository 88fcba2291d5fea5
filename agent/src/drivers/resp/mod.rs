//! The RESP driver for the `redis` and `kv` target kinds. The node behind a
//! connection is read from `INFO server`: `node_id` on Stampede's KV
//! server, `run_id` on Redis.
//!
//! Two transports, chosen by how the runner uses a connection:
//! - shared (open model, several slots on one connection): the redis
//!   crate's multiplexed connection;
//! - exclusive (closed model, one slot writing whole batches): the slot owns
//!   the socket, encodes commands into one buffer and scans replies in place
//!   (`wire`), which avoids the task hand-off and the per-reply allocation
//!   that dominated CPU at high pipeline depth.

mod address;
mod config;
mod encode;
pub mod pubsub;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind as RedisErrorKind, RedisError, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::{BuildError, Connection, Done, Driver, DriverError, DriverSpec, ErrorKind, Listen, Part, Progress};
use crate::workloads::{Action, Operation};
pub(crate) use address::RespAddress;
pub use config::{RespConfig, Subscriptions};
pub(crate) use encode::{Encoder, Phase};

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RespDriver {
    config: Arc<RespConfig>,
}

impl RespDriver {
    pub fn new(config: RespConfig) -> Self {
        Self { config: Arc::new(config) }
    }
}

/// A socket owned by one slot.
struct Owned {
    stream: TcpStream,
    output: Vec<u8>,
    input: BytesMut,
}

#[derive(Clone)]
enum Transport {
    Shared(MultiplexedConnection),
    Exclusive(Arc<Mutex<Owned>>),
}

#[derive(Clone)]
pub struct RespConnection {
    transport: Transport,
    node: Arc<str>,
    encoder: Encoder,
    summaries: Vec<wire::Summary>,
    counts: Vec<u8>,
    /// Per operation of the round: the bytes of its commands, and what
    /// encoding its value took (`codec_in_path`).
    sent: Vec<u32>,
    encoded: Vec<Option<Result<u32, String>>>,
    /// The batch being sent (kept to reuse its allocation).
    plan: Vec<(Action, Phase)>,
}

pub(crate) fn classify(error: &RedisError) -> ErrorKind {
    if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
        ErrorKind::Connection
    } else if matches!(error.kind(), RedisErrorKind::Parse | RedisErrorKind::UnexpectedReturnType) {
        ErrorKind::Protocol
    } else {
        ErrorKind::Server
    }
}

pub(crate) fn driver_error(error: &RedisError) -> DriverError {
    DriverError::new(classify(error), error.to_string())
}

fn io_error(endpoint: &str, error: &std::io::Error) -> DriverError {
    DriverError::new(ErrorKind::Connection, format!("{endpoint}: {error}"))
}

/// Reads the node identity out of an `INFO server` reply.
pub fn node_from_info(info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines().find_map(|line| line.strip_prefix(name).map(|v| v.trim().to_string())).filter(|v| !v.is_empty())
    };
    field("node_id:").or_else(|| field("run_id:").map(|id| format!("redis-{}", &id[..id.len().min(12)])))
}

async fn connect_shared(endpoint: &RespAddress) -> Result<(Transport, String), DriverError> {
    let shown = &endpoint.shown;
    let info = endpoint
        .connection_info()
        .map_err(|e| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{shown}`: {e}")))?;
    let client = redis::Client::open(info)
        .map_err(|e| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{shown}`: {e}")))?;
    // The runner applies its own operation timeout; the crate's default
    // 500 ms response timeout would turn slow replies into errors.
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(None).set_connection_timeout(Some(CONNECT_TIMEOUT));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| DriverError::new(classify(&e), format!("cannot connect to {shown}: {e}")))?;
    let info: String =
        redis::cmd("INFO").arg("server").query_async(&mut connection).await.map_err(|e| driver_error(&e))?;
    Ok((Transport::Shared(connection), info))
}

async fn connect_exclusive(endpoint: &RespAddress) -> Result<(Transport, String), DriverError> {
    let shown = &endpoint.shown;
    let mut stream = TcpStream::connect(&endpoint.address)
        .await
        .map_err(|e| DriverError::new(ErrorKind::Connection, format!("cannot connect to {shown}: {e}")))?;
    stream.set_nodelay(true).map_err(|e| io_error(shown, &e))?;
    let mut output = Vec::with_capacity(16 * 1024);
    let auth = endpoint.auth();
    if let Some(command) = &auth {
        wire::encode_command(&mut output, command);
    }
    wire::encode_command(&mut output, &[b"INFO", b"server"]);
    stream.write_all(&output).await.map_err(|e| io_error(shown, &e))?;
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut authenticated = auth.is_none();
    let info = loop {
        if !authenticated && let Ok(Some(reply)) = wire::scan_reply(&input) {
            if reply.is_error {
                let text = String::from_utf8_lossy(&input[..reply.len]).trim().to_string();
                return Err(DriverError::new(ErrorKind::Server, format!("AUTH on {shown} was refused: {text}")));
            }
            input.advance(reply.len);
            authenticated = true;
        }
        if authenticated {
            match wire::bulk_text(&input) {
                Ok(Some((text, used))) => {
                    input.advance(used);
                    break text;
                }
                Ok(None) => {}
                Err(reply) => {
                    return Err(DriverError::new(ErrorKind::Server, format!("INFO server on {shown}: {}", reply.0)));
                }
            }
        }
        if stream.read_buf(&mut input).await.map_err(|e| io_error(shown, &e))? == 0 {
            return Err(DriverError::new(ErrorKind::Connection, format!("{shown} closed the connection")));
        }
    };
    output.clear();
    Ok((Transport::Exclusive(Arc::new(Mutex::new(Owned { stream, output, input }))), info))
}

/// Keys per pipelined request during preload and cleanup.
const BULK_CHUNK: u64 = 1000;

/// How long one chunk of a preload or cleanup may take. These passes run
/// outside the runner's per-operation timeout, so without a bound a request
/// that never gets its answer (a client stuck on a cluster, a server that
/// stopped reading) would hold the agent's setup or teardown for ever.
const BULK_CHUNK_LIMIT: Duration = Duration::from_secs(30);

impl RespDriver {
    /// Runs `action(n)` for every number of the agent's range, in pipelined
    /// chunks, on a connection of its own to each endpoint.
    async fn over_range(
        &self,
        endpoints: &[String],
        part: &Part,
        action: fn(u64) -> Action,
        progress: &Progress,
    ) -> Result<u64, DriverError> {
        let mut written = 0;
        for endpoint in endpoints {
            let mut connection = connect_with(&self.config, endpoint, true).await?;
            written += over_range(&mut connection, part, action, progress).await?;
        }
        Ok(written)
    }
}

/// Runs `action(n)` for every number of the agent's range on `connection`,
/// in batches of `BULK_CHUNK`, each counted on `progress`; returns how many
/// ran.
pub(crate) async fn over_range<C: Connection>(
    connection: &mut C,
    part: &Part,
    action: fn(u64) -> Action,
    progress: &Progress,
) -> Result<u64, DriverError> {
    let mut results = Vec::with_capacity(BULK_CHUNK as usize);
    let mut start = part.key_start;
    while start < part.key_end {
        let end = (start + BULK_CHUNK).min(part.key_end);
        let batch: Vec<Operation> = (start..end).map(|n| Operation { index: 0, action: action(n) }).collect();
        results.clear();
        if tokio::time::timeout(BULK_CHUNK_LIMIT, connection.execute_batch(&batch, &mut results)).await.is_err() {
            return Err(DriverError::new(
                ErrorKind::Timeout,
                format!(
                    "keys {start}..{end} got no complete answer within {}s; the server or cluster stopped answering",
                    BULK_CHUNK_LIMIT.as_secs()
                ),
            ));
        }
        if let Some(Err(error)) = results.iter().find(|r| r.is_err()) {
            return Err(error.clone());
        }
        progress.advance(end - start);
        start = end;
    }
    Ok(part.key_end.saturating_sub(part.key_start))
}

impl Driver for RespDriver {
    type Connection = RespConnection;

    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        RespConfig::build(spec).map(Self::new)
    }

    fn notes(&self) -> Vec<String> {
        self.config.note.iter().cloned().collect()
    }

    async fn listeners(&self, endpoints: &[String]) -> Result<Vec<Box<dyn Listen>>, DriverError> {
        self.config.subscribers(endpoints).await
    }

    async fn connect(&self, endpoint: &str) -> Result<RespConnection, DriverError> {
        connect_with(&self.config, endpoint, self.config.exclusive).await
    }

    async fn setup(&self, endpoints: &[String], part: &Part, progress: &Progress) -> Result<Vec<String>, DriverError> {
        let mut notes = Vec::new();
        if self.config.preload {
            progress.begin("preload", "keys", part.key_end.saturating_sub(part.key_start) * endpoints.len() as u64);
            let keys = self.over_range(endpoints, part, Action::Set, progress).await?;
            tracing::info!(keys, "preloaded the key range");
            notes.push("keys preloaded before the run".to_string());
        }
        Ok(notes)
    }

    async fn teardown(
        &self,
        endpoints: &[String],
        part: &Part,
        progress: &Progress,
    ) -> Result<Vec<String>, DriverError> {
        if !self.config.cleanup {
            return Ok(Vec::new());
        }
        progress.begin("cleanup", "keys", part.key_end.saturating_sub(part.key_start) * endpoints.len() as u64);
        self.over_range(endpoints, part, Action::Delete, progress).await?;
        Ok(vec!["keys deleted after the run".to_string()])
    }
}

async fn connect_with(
    config: &Arc<RespConfig>,
    endpoint: &str,
    exclusive: bool,
) -> Result<RespConnection, DriverError> {
    let endpoint = RespAddress::parse(endpoint);
    let attempt =
        async { if exclusive { connect_exclusive(&endpoint).await } else { connect_shared(&endpoint).await } };
    let (transport, info) = tokio::time::timeout(CONNECT_TIMEOUT, attempt).await.map_err(|_| {
        DriverError::new(ErrorKind::Timeout, format!("connecting to {} took over 5s", endpoint.shown))
    })??;
    let node = node_from_info(&info).unwrap_or_else(|| endpoint.address.clone());
    Ok(RespConnection {
        transport,
        node: node.into(),
        encoder: Encoder::new(config),
        summaries: Vec::new(),
        counts: Vec::new(),
        sent: Vec::new(),
        encoded: Vec::new(),
        plan: Vec::new(),
    })
}

impl RespConnection {
    /// Sends the commands of `plan` in one write and summarizes the replies
    /// into `self.summaries`, with the command count per operation in
    /// `self.counts`.
    async fn round(&mut self, plan: &[(Action, Phase)]) -> Result<(), DriverError> {
        self.summaries.clear();
        self.counts.clear();
        self.sent.clear();
        self.encoded.clear();
        match self.transport.clone() {
            Transport::Exclusive(owned) => {
                let mut guard = owned.lock().await;
                let owned = &mut *guard;
                owned.output.clear();
                let mut total = 0usize;
                for (action, phase) in plan {
                    let output = &mut owned.output;
                    let before = output.len();
                    let n = self.encoder.commands(*action, *phase, &mut |args| wire::encode_command(output, args));
                    self.counts.push(n);
                    self.sent.push((output.len() - before) as u32);
                    self.encoded.push(self.encoder.take_encoded());
                    total += usize::from(n);
                }
                owned.stream.write_all(&owned.output).await.map_err(|e| io_error(&self.node, &e))?;
                while self.summaries.len() < total {
                    match wire::scan_reply(&owned.input) {
                        Ok(Some(reply)) => {
                            let mut summary = wire::summarize(&owned.input, reply);
                            if let Some(body) = wire::bulk_body(&owned.input, reply) {
                                summary.decode(body, self.encoder.codec());
                            }
                            self.summaries.push(summary);
                            owned.input.advance(reply.len);
                            continue;
                        }
                        Ok(None) => {}
                        Err(malformed) => {
                            // The stream cannot be resynchronised; a later
                            // batch finds it closed and the slot reconnects.
                            let _ = owned.stream.shutdown().await;
                            return Err(DriverError::new(ErrorKind::Protocol, malformed.0));
                        }
                    }
                    match owned.stream.read_buf(&mut owned.input).await {
                        Ok(0) => {
                            return Err(DriverError::new(
                                ErrorKind::Connection,
                                format!("{} closed the connection", self.node),
                            ));
                        }
                        Ok(_) => {}
                        Err(error) => return Err(io_error(&self.node, &error)),
                    }
                }
                Ok(())
            }
            Transport::Shared(mut connection) => {
                let mut pipeline = redis::pipe();
                for (action, phase) in plan {
                    let mut bytes = 0;
                    let n = self.encoder.commands(*action, *phase, &mut |args| {
                        bytes += wire::command_len(args);
                        let mut command = redis::Cmd::new();
                        for arg in args {
                            command.arg(*arg);
                        }
                        pipeline.add_command(command);
                    });
                    self.counts.push(n);
                    self.sent.push(bytes as u32);
                    self.encoded.push(self.encoder.take_encoded());
                }
                let total: usize = self.counts.iter().map(|n| usize::from(*n)).sum();
                let values =
                    connection.send_packed_commands(&pipeline, 0, total).await.map_err(|e| driver_error(&e))?;
                if values.len() != total {
                    return Err(DriverError::new(
                        ErrorKind::Protocol,
                        format!("{} replies to a pipeline of {total}", values.len()),
                    ));
                }
                let codec = &mut self.encoder;
                self.summaries.extend(values.iter().map(|value| summarize_value(value, codec.codec())));
                Ok(())
            }
        }
    }

    /// Executes a batch: one round for every operation, and a second for
    /// the cache reads that missed.
    async fn exchange(&mut self, operations: &[Operation], results: &mut Vec<Result<Done, DriverError>>) {
        let mut plan = std::mem::take(&mut self.plan);
        plan.clear();
        plan.extend(operations.iter().map(|op| (op.action, Phase::Main)));
        let sent = self.round(&plan).await;
        self.plan = plan;
        if let Err(error) = sent {
            // The operations whose replies all arrived before the failure
            // (a server closing mid-batch) were done; the rest failed.
            let mut at = 0;
            for (i, operation) in operations.iter().enumerate() {
                let end = self.counts.get(i).map_or(usize::MAX, |n| at + usize::from(*n));
                results.push(match self.summaries.get(at..end) {
                    Some(replies) => outcome(&self.sent, &self.encoded, i, operation.action, replies),
                    None => Err(error.clone()),
                });
                at = end.min(self.summaries.len() + 1);
            }
            return;
        }
        let first = results.len();
        let mut at = 0;
        for (i, operation) in operations.iter().enumerate() {
            let n = usize::from(self.counts[i]);
            let replies = &self.summaries[at..at + n];
            at += n;
            results.push(outcome(&self.sent, &self.encoded, i, operation.action, replies));
        }
        let misses: Vec<usize> =
            (0..operations.len()).filter(|i| matches!(results[first + i], Ok(Done { hit: Some(false), .. }))).collect();
        if misses.is_empty() {
            return;
        }
        let fill: Vec<(Action, Phase)> = misses.iter().map(|i| (operations[*i].action, Phase::Fill)).collect();
        let outcome = self.round(&fill).await;
        for (j, i) in misses.iter().enumerate() {
            let failed = match &outcome {
                Err(error) => Some(error.clone()),
                Ok(()) => {
                    self.summaries.get(j).and_then(|s| s.error.clone()).map(|e| DriverError::new(ErrorKind::Server, e))
                }
            };
            match (failed, &mut results[first + i]) {
                (Some(error), result) => *result = Err(error),
                (None, Ok(done)) => {
                    // The fill's bytes are the read's too.
                    done.sent += self.sent.get(j).copied().unwrap_or(0);
                    done.received += self.summaries.get(j).map_or(0, |s| s.bytes);
                }
                (None, Err(_)) => {}
            }
        }
    }
}

/// The outcome of the `i`th operation of a round from its replies, with
/// the bytes of its commands and the time encoding its value took.
fn outcome(
    sent: &[u32],
    encoded: &[Option<Result<u32, String>>],
    i: usize,
    action: Action,
    replies: &[wire::Summary],
) -> Result<Done, DriverError> {
    let encode_ns = match encoded.get(i) {
        Some(Some(Err(message))) => return Err(DriverError::new(ErrorKind::Protocol, message.clone())),
        Some(Some(Ok(ns))) => Some(*ns),
        _ => None,
    };
    let done = interpret(action, replies)?;
    Ok(Done { sent: sent.get(i).copied().unwrap_or(0), encode_ns, ..done })
}

/// Summarizes a reply the redis crate parsed, decoding a bulk string with
/// `codec` when there is one.
pub(crate) fn summarize_value(value: &Value, codec: Option<&mut crate::workloads::values::Codec>) -> wire::Summary {
    let bytes = value_len(value).min(u32::MAX as usize) as u32;
    let mut summary = match value {
        Value::ServerError(error) => wire::Summary { error: Some(format!("{error:?}")), ..wire::Summary::default() },
        Value::Nil => wire::Summary { nil: true, ..wire::Summary::default() },
        Value::Int(n) => wire::Summary { integer: Some(*n), ..wire::Summary::default() },
        _ => wire::Summary::default(),
    };
    summary.bytes = bytes;
    if let Value::BulkString(body) = value {
        summary.decode(body, codec);
    }
    summary
}

/// The bytes a RESP2 reply that the redis crate parsed into `value` took
/// on the wire (the crate speaks RESP2 unless told otherwise).
pub(crate) fn value_len(value: &Value) -> usize {
    let digits = |n: usize| itoa::Buffer::new().format(n).len();
    match value {
        Value::Nil => 5,
        Value::Okay => 5,
        Value::Int(n) => 1 + itoa::Buffer::new().format(*n).len() + 2,
        Value::BulkString(body) => 1 + digits(body.len()) + 2 + body.len() + 2,
        Value::SimpleString(text) => 1 + text.len() + 2,
        Value::Array(items) => 1 + digits(items.len()) + 2 + items.iter().map(value_len).sum::<usize>(),
        Value::ServerError(error) => 1 + error.code().len() + error.details().map_or(0, |d| 1 + d.len()) + 2,
        // RESP3 types do not come on a RESP2 connection.
        _ => 0,
    }
}

/// The outcome of one operation from its replies.
pub(crate) fn interpret(action: Action, replies: &[wire::Summary]) -> Result<Done, DriverError> {
    if replies.is_empty() {
        return Err(DriverError::new(
            ErrorKind::Protocol,
            format!("{action:?} is not an operation of the RESP driver"),
        ));
    }
    if let Some(error) = replies.iter().find_map(|r| r.error.as_ref()) {
        return Err(DriverError::new(ErrorKind::Server, error.clone()));
    }
    if let Some(error) = replies.iter().find_map(|r| r.undecodable.as_ref()) {
        return Err(DriverError::new(ErrorKind::Protocol, error.clone()));
    }
    let received = replies.iter().map(|r| r.bytes).sum();
    let decode_ns = replies.iter().find_map(|r| r.decode_ns);
    let done = match action {
        Action::CacheRead(_) => Done { hit: Some(!replies[0].nil), ..Done::default() },
        Action::Publish(_) => {
            Done { fanout: replies[0].integer.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32, ..Done::default() }
        }
        _ => Done::default(),
    };
    Ok(Done { received, decode_ns, ..done })
}

impl Connection for RespConnection {
    fn node(&self) -> &str {
        &self.node
    }

    async fn execute(&mut self, operation: &Operation) -> Result<Done, DriverError> {
        let mut results = Vec::with_capacity(1);
        self.exchange(std::slice::from_ref(operation), &mut results).await;
        results.pop().unwrap_or_else(|| Err(DriverError::new(ErrorKind::Protocol, "no reply")))
    }

    async fn execute_batch(&mut self, operations: &[Operation], results: &mut Vec<Result<Done, DriverError>>) {
        self.exchange(operations, results).await;
    }
}

#[cfg(test)]
mod tests;
