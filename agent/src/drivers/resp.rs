//! The RESP driver (redis crate) for the `redis` and `kv` target kinds.
//! The node behind a connection is read from `INFO server`: `node_id` on
//! Stampede's KV server, `run_id` on Redis.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind as RedisErrorKind, RedisError, Value};

use super::{Connection, Driver, DriverError, ErrorKind};
use crate::workloads::Operation;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RespDriver {
    key_prefix: Arc<[u8]>,
    value: Bytes,
}

impl RespDriver {
    pub fn new(key_prefix: &str, value: Bytes) -> Self {
        Self { key_prefix: key_prefix.as_bytes().into(), value }
    }
}

#[derive(Clone)]
pub struct RespConnection {
    connection: MultiplexedConnection,
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

/// Reads the node identity out of an `INFO server` reply.
pub fn node_from_info(info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines().find_map(|line| line.strip_prefix(name).map(|v| v.trim().to_string())).filter(|v| !v.is_empty())
    };
    field("node_id:").or_else(|| field("run_id:").map(|id| format!("redis-{}", &id[..id.len().min(12)])))
}

impl Driver for RespDriver {
    type Connection = RespConnection;

    async fn connect(&self, endpoint: &str) -> Result<RespConnection, DriverError> {
        let client = redis::Client::open(format!("redis://{endpoint}/"))
            .map_err(|e| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{endpoint}`: {e}")))?;
        let mut connection = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| DriverError::new(ErrorKind::Timeout, format!("connecting to {endpoint} took over 5s")))?
            .map_err(|e| DriverError::new(classify(&e), format!("cannot connect to {endpoint}: {e}")))?;
        let info: String =
            redis::cmd("INFO").arg("server").query_async(&mut connection).await.map_err(|e| driver_error(&e))?;
        let node = node_from_info(&info).unwrap_or_else(|| endpoint.to_string());
        Ok(RespConnection {
            connection,
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
        // Decimal digits without a temporary String.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = key;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.key.extend_from_slice(&digits[at..]);
        &self.key
    }
}

impl Connection for RespConnection {
    fn node(&self) -> &str {
        &self.node
    }

    async fn execute(&mut self, operation: &Operation) -> Result<(), DriverError> {
        let command = self.command(operation);
        match self.connection.send_packed_command(&command).await {
            Ok(value) => check(&value),
            Err(error) => Err(driver_error(&error)),
        }
    }

    async fn execute_batch(&mut self, operations: &[Operation], results: &mut Vec<Result<(), DriverError>>) {
        let mut pipeline = redis::pipe();
        for operation in operations {
            pipeline.add_command(self.command(operation));
        }
        match self.connection.send_packed_commands(&pipeline, 0, operations.len()).await {
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

impl RespConnection {
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
}

fn check(value: &Value) -> Result<(), DriverError> {
    match value {
        Value::ServerError(error) => Err(DriverError::new(ErrorKind::Server, format!("{error:?}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_identity_comes_from_info() {
        assert_eq!(node_from_info("# Server\r\nnode_id:kv-2\r\nrun_id:abc\r\n"), Some("kv-2".into()));
        assert_eq!(
            node_from_info("# Server\r\nredis_version:7.0\r\nrun_id:0123456789abcdef\r\n"),
            Some("redis-0123456789ab".into())
        );
        assert_eq!(node_from_info("# Server\r\n"), None);
    }
}
