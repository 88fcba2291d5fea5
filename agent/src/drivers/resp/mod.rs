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

mod wire;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind as RedisErrorKind, RedisError, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::{Connection, Driver, DriverError, ErrorKind};
use crate::workloads::Operation;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RespDriver {
    key_prefix: Arc<[u8]>,
    value: Bytes,
    exclusive: bool,
}

impl RespDriver {
    /// `exclusive`: each connection is used by one slot at a time (the
    /// closed model), so it may own its socket.
    pub fn new(key_prefix: &str, value: Bytes, exclusive: bool) -> Self {
        Self { key_prefix: key_prefix.as_bytes().into(), value, exclusive }
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
    key_prefix: Arc<[u8]>,
    value: Bytes,
    key: Vec<u8>,
}

fn classify(error: &RedisError) -> ErrorKind {
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

fn driver_error(error: &RedisError) -> DriverError {
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

async fn connect_shared(endpoint: &str) -> Result<(Transport, String), DriverError> {
    let client = redis::Client::open(format!("redis://{endpoint}/"))
        .map_err(|e| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{endpoint}`: {e}")))?;
    // The runner applies its own operation timeout; the crate's default
    // 500 ms response timeout would turn slow replies into errors.
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(None).set_connection_timeout(Some(CONNECT_TIMEOUT));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| DriverError::new(classify(&e), format!("cannot connect to {endpoint}: {e}")))?;
    let info: String =
        redis::cmd("INFO").arg("server").query_async(&mut connection).await.map_err(|e| driver_error(&e))?;
    Ok((Transport::Shared(connection), info))
}

async fn connect_exclusive(endpoint: &str) -> Result<(Transport, String), DriverError> {
    let mut stream = TcpStream::connect(endpoint)
        .await
        .map_err(|e| DriverError::new(ErrorKind::Connection, format!("cannot connect to {endpoint}: {e}")))?;
    stream.set_nodelay(true).map_err(|e| io_error(endpoint, &e))?;
    let mut output = Vec::with_capacity(16 * 1024);
    wire::encode_command(&mut output, &[b"INFO", b"server"]);
    stream.write_all(&output).await.map_err(|e| io_error(endpoint, &e))?;
    let mut input = BytesMut::with_capacity(16 * 1024);
    let info = loop {
        match wire::bulk_text(&input) {
            Ok(Some((text, used))) => {
                input.advance(used);
                break text;
            }
            Ok(None) => {}
            Err(reply) => {
                return Err(DriverError::new(ErrorKind::Server, format!("INFO server on {endpoint}: {}", reply.0)));
            }
        }
        if stream.read_buf(&mut input).await.map_err(|e| io_error(endpoint, &e))? == 0 {
            return Err(DriverError::new(ErrorKind::Connection, format!("{endpoint} closed the connection")));
        }
    };
    Ok((Transport::Exclusive(Arc::new(Mutex::new(Owned { stream, output, input }))), info))
}

impl Driver for RespDriver {
    type Connection = RespConnection;

    async fn connect(&self, endpoint: &str) -> Result<RespConnection, DriverError> {
        let attempt =
            async { if self.exclusive { connect_exclusive(endpoint).await } else { connect_shared(endpoint).await } };
        let (transport, info) = tokio::time::timeout(CONNECT_TIMEOUT, attempt)
            .await
            .map_err(|_| DriverError::new(ErrorKind::Timeout, format!("connecting to {endpoint} took over 5s")))??;
        let node = node_from_info(&info).unwrap_or_else(|| endpoint.to_string());
        Ok(RespConnection {
            transport,
            node: node.into(),
            key_prefix: Arc::clone(&self.key_prefix),
            value: self.value.clone(),
            key: Vec::with_capacity(64),
        })
    }
}

impl RespConnection {
    fn key(&mut self, key: u64) -> &[u8] {
        self.key.clear();
        self.key.extend_from_slice(&self.key_prefix);
        wire::push_decimal(&mut self.key, key);
        &self.key
    }

    fn command(&mut self, operation: &Operation) -> redis::Cmd {
        match operation {
            Operation::Get { key } => {
                let mut c = redis::cmd("GET");
                c.arg(self.key(*key));
                c
            }
            Operation::Set { key } => {
                let mut c = redis::cmd("SET");
                c.arg(self.key(*key));
                c.arg(&self.value[..]);
                c
            }
        }
    }

    fn encode(&mut self, operation: &Operation, out: &mut Vec<u8>) {
        match operation {
            Operation::Get { key } => {
                let key = self.key(*key);
                wire::encode_command(out, &[b"GET", key]);
            }
            Operation::Set { key } => {
                self.key(*key);
                wire::encode_command(out, &[b"SET", &self.key, &self.value]);
            }
        }
    }

    /// Writes a batch on an owned socket and scans its replies.
    async fn exchange(
        &mut self,
        owned: &Mutex<Owned>,
        operations: &[Operation],
        results: &mut Vec<Result<(), DriverError>>,
    ) {
        let mut guard = owned.lock().await;
        let owned = &mut *guard;
        owned.output.clear();
        for operation in operations {
            self.encode(operation, &mut owned.output);
        }
        if let Err(error) = owned.stream.write_all(&owned.output).await {
            let error = io_error(&self.node, &error);
            results.extend(operations.iter().map(|_| Err(error.clone())));
            return;
        }
        while results.len() < operations.len() {
            match wire::scan_reply(&owned.input) {
                Ok(Some(reply)) => {
                    results.push(if reply.is_error {
                        let text = String::from_utf8_lossy(&owned.input[1..reply.len.saturating_sub(2)]);
                        Err(DriverError::new(ErrorKind::Server, text.into_owned()))
                    } else {
                        Ok(())
                    });
                    owned.input.advance(reply.len);
                    continue;
                }
                Ok(None) => {}
                Err(malformed) => {
                    let error = DriverError::new(ErrorKind::Protocol, malformed.0);
                    results.extend((results.len()..operations.len()).map(|_| Err(error.clone())));
                    // The stream cannot be resynchronised; a later batch
                    // finds it closed and the slot reconnects.
                    let _ = owned.stream.shutdown().await;
                    return;
                }
            }
            let error = match owned.stream.read_buf(&mut owned.input).await {
                Ok(0) => DriverError::new(ErrorKind::Connection, format!("{} closed the connection", self.node)),
                Ok(_) => continue,
                Err(error) => io_error(&self.node, &error),
            };
            results.extend((results.len()..operations.len()).map(|_| Err(error.clone())));
            return;
        }
    }
}

impl Connection for RespConnection {
    fn node(&self) -> &str {
        &self.node
    }

    async fn execute(&mut self, operation: &Operation) -> Result<(), DriverError> {
        match self.transport.clone() {
            Transport::Shared(mut connection) => {
                let command = self.command(operation);
                match connection.send_packed_command(&command).await {
                    Ok(value) => check(&value),
                    Err(error) => Err(driver_error(&error)),
                }
            }
            Transport::Exclusive(owned) => {
                let mut results = Vec::with_capacity(1);
                self.exchange(&owned, std::slice::from_ref(operation), &mut results).await;
                results.pop().unwrap_or_else(|| Err(DriverError::new(ErrorKind::Protocol, "no reply")))
            }
        }
    }

    async fn execute_batch(&mut self, operations: &[Operation], results: &mut Vec<Result<(), DriverError>>) {
        let mut connection = match self.transport.clone() {
            Transport::Exclusive(owned) => return self.exchange(&owned, operations, results).await,
            Transport::Shared(connection) => connection,
        };
        let mut pipeline = redis::pipe();
        for operation in operations {
            pipeline.add_command(self.command(operation));
        }
        match connection.send_packed_commands(&pipeline, 0, operations.len()).await {
            Ok(values) if values.len() == operations.len() => results.extend(values.iter().map(check)),
            Ok(values) => {
                let error = DriverError::new(
                    ErrorKind::Protocol,
                    format!("{} replies to a pipeline of {}", values.len(), operations.len()),
                );
                results.extend(operations.iter().map(|_| Err(error.clone())));
            }
            Err(error) => {
                let error = driver_error(&error);
                results.extend(operations.iter().map(|_| Err(error.clone())));
            }
        }
    }
}

fn check(value: &Value) -> Result<(), DriverError> {
    match value {
        Value::ServerError(error) => Err(DriverError::new(ErrorKind::Server, format!("{error:?}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
