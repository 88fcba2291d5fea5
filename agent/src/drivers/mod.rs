//! Drivers execute operations against one kind of target; the runner owns
//! all timing. One trait, one file per implementation: `connect` once per
//! connection (learning which backend node answered), `execute` per request.
//!
//! A connection is `Clone` so that each pipeline slot holds its own handle
//! to the same underlying connection.

#[cfg(test)]
mod conformance;
pub mod cratedb;
pub mod postgres;
pub mod redis_cluster;
pub mod resp;

use std::future::Future;
use std::sync::Arc;

use crate::workloads::Operation;

/// What a successful operation produced besides its latency; the runner
/// adds these into the interval's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    /// Rows written (or read, for queries).
    pub rows: u32,
    /// Rows of a bulk request that the target refused.
    pub rows_failed: u32,
    /// `Some(true)` for a cache hit, `Some(false)` for a miss.
    pub hit: Option<bool>,
    /// Subscribers a published message reached, as the server counted them.
    pub fanout: u32,
    /// The node that served this operation when it is not the connection's
    /// (a new connection per operation, or a node sampled per request).
    pub node: Option<Arc<str>>,
}

/// The part of the run one agent does, as drivers need it for setup and
/// teardown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub agent_index: u32,
    pub key_start: u64,
    pub key_end: u64,
}

/// How an operation failed. Counted by kind; never stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Timeout,
    Connection,
    Server,
    Protocol,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 4] = [Self::Timeout, Self::Connection, Self::Server, Self::Protocol];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Server => "server",
            Self::Protocol => "protocol",
        }
    }
}

/// A failed operation or connection attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} error: {message}")]
pub struct DriverError {
    pub kind: ErrorKind,
    pub message: String,
    /// The node the failed operation went to, when it is not the
    /// connection's (as [`Done::node`]).
    pub node: Option<Arc<str>>,
}

impl DriverError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), node: None }
    }

    /// The same error, counted against `node`.
    pub fn at(self, node: Arc<str>) -> Self {
        Self { node: Some(node), ..self }
    }
}

/// A kind of target.
pub trait Driver: Send + Sync + 'static {
    type Connection: Connection;

    /// Opens one connection to `endpoint` and learns the node behind it.
    fn connect(&self, endpoint: &str) -> impl Future<Output = Result<Self::Connection, DriverError>> + Send;

    /// Runs before the agent reports Ready: creates tables, preloads keys.
    /// Returns notes for the report. An error fails the run before it starts.
    fn setup(
        &self,
        endpoints: &[String],
        part: &Part,
    ) -> impl Future<Output = Result<Vec<String>, DriverError>> + Send {
        let _ = (endpoints, part);
        async { Ok(Vec::new()) }
    }

    /// Runs after the measured part: drops tables, deletes keys.
    fn teardown(
        &self,
        endpoints: &[String],
        part: &Part,
    ) -> impl Future<Output = Result<Vec<String>, DriverError>> + Send {
        let _ = (endpoints, part);
        async { Ok(Vec::new()) }
    }
}

/// One open connection (or a slot's handle to it).
pub trait Connection: Clone + Send + Sync + 'static {
    /// The backend node that serves this connection.
    fn node(&self) -> &str;

    /// Every node this connection holds a socket to, when that is more than
    /// [`Connection::node`] (a cluster client); counted as connections.
    fn nodes(&self) -> &[Arc<str>] {
        &[]
    }

    /// Executes one operation.
    fn execute(&mut self, operation: &Operation) -> impl Future<Output = Result<Done, DriverError>> + Send;

    /// Executes a batch written together (the closed model's pipeline),
    /// appending one result per operation to `results`. Drivers whose
    /// protocol pipelines override this; the default runs them in turn.
    fn execute_batch(
        &mut self,
        operations: &[Operation],
        results: &mut Vec<Result<Done, DriverError>>,
    ) -> impl Future<Output = ()> + Send {
        async move {
            for operation in operations {
                let result = self.execute(operation).await;
                results.push(result);
            }
        }
    }
}
