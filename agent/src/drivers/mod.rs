//! Drivers execute operations against one kind of target; the runner owns
//! all timing. One trait, one file (or folder) per implementation: `build`
//! from the scenario and the agent's part, `connect` once per connection
//! (learning which backend node answered), `execute` per request.
//!
//! [`with_driver`] is the one place that maps a target kind to its driver;
//! the runner is generic over [`Driver`] and names no target. A new target
//! kind is a module here, an arm there, and its scenario section.
//!
//! A connection is `Clone` so that each pipeline slot holds its own handle
//! to the same underlying connection.

#[cfg(test)]
mod conformance;
pub mod cratedb;
pub mod http;
pub mod influx;
pub mod nats;
pub mod postgres;
pub mod progress;
pub mod redis_cluster;
pub mod resp;
pub mod stamp;
pub mod websocket;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use stampede_common::Scenario;
use stampede_common::scenario::TargetKind;

use crate::workloads::Operation;

pub use progress::Progress;
pub use stampede_common::interval::ErrorKind;

/// What every driver is built from: the scenario and this agent's part.
#[derive(Debug, Clone, Copy)]
pub struct DriverSpec<'a> {
    pub scenario: &'a Scenario,
    pub part: &'a Part,
    /// The agent's seed (values, row contents).
    pub seed: u64,
    /// Every endpoint of the target (a cluster's seeds).
    pub endpoints: &'a [String],
    /// How many agents take part in the run.
    pub agent_count: u32,
    /// The coordinator's clock, for send times in messages.
    pub clock: stamp::Clock,
}

/// A scenario that the driver of its target kind cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Something done with a driver, whatever its type: the runner carrying out
/// an assignment, or a test.
pub trait WithDriver: Send {
    type Output: Send;

    fn with<D: Driver>(self, driver: D) -> impl Future<Output = Self::Output> + Send;
}

/// Builds the driver of the scenario's target kind and hands it to `user`.
pub async fn with_driver<W: WithDriver>(spec: &DriverSpec<'_>, user: W) -> Result<W::Output, BuildError> {
    Ok(match spec.scenario.target.kind {
        TargetKind::Kv | TargetKind::Redis => user.with(resp::RespDriver::build(spec)?).await,
        TargetKind::RedisCluster => user.with(redis_cluster::ClusterDriver::build(spec)?).await,
        TargetKind::Postgres | TargetKind::Timescaledb => user.with(postgres::PostgresDriver::build(spec)?).await,
        TargetKind::Cratedb => user.with(cratedb::CrateDriver::build(spec)?).await,
        TargetKind::Nats => user.with(nats::NatsDriver::build(spec)?).await,
        TargetKind::Influx => user.with(influx::InfluxDriver::build(spec)?).await,
        TargetKind::Websocket => user.with(websocket::WsDriver::build(spec)?).await,
    })
}

/// A future that a listener runs on a task of its own.
pub type ListenFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a listener tells of each message: its delivery latency and size,
/// or what went wrong (a slow consumer dropping messages).
pub type Received = Box<dyn FnMut(Result<Heard, DriverError>) + Send>;

/// One message a listener received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// From its send time (on the coordinator's clock) to now.
    pub latency_us: u64,
    /// Bytes it took, counted as the driver counts its operations' bytes.
    pub bytes: u32,
}

/// A connection that receives instead of sending (a pub/sub subscriber, a
/// request responder): opened with the others during prepare, counted as
/// `delivered`, its latency recorded under the workload's last operation.
pub trait Listen: Send {
    /// The node this listener is connected to.
    fn node(&self) -> &str;

    /// Receives until `until` resolves (or the connection ends), calling
    /// `received` for each message and each error.
    fn listen(self: Box<Self>, until: ListenFuture, received: Received) -> ListenFuture;
}

/// What a successful operation produced besides its latency; the runner
/// adds these into the interval's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    /// Rows written (or read, for queries).
    pub rows: u32,
    /// Rows of a bulk request that the target refused.
    pub rows_failed: u32,
    /// Field values written (line protocol points x fields).
    pub values: u32,
    /// What the target said about the rows it refused (`rows_failed`).
    pub said: Option<String>,
    /// `Some(true)` for a cache hit, `Some(false)` for a miss.
    pub hit: Option<bool>,
    /// Subscribers a published message reached, as the server counted them.
    pub fanout: u32,
    /// The node that served this operation when it is not the connection's
    /// (a new connection per operation, or a node sampled per request).
    pub node: Option<Arc<str>>,
    /// Bytes the operation sent and received, as the driver counts them
    /// (its protocol's framing where it writes and reads the wire itself,
    /// the payloads where a client library does; the README says which).
    pub sent: u32,
    pub received: u32,
    /// Nanoseconds spent encoding the value sent and decoding the value
    /// read (`codec_in_path`), part of the operation's latency.
    pub encode_ns: Option<u32>,
    pub decode_ns: Option<u32>,
}

/// The part of the run one agent does, as drivers need it for setup and
/// teardown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub agent_index: u32,
    pub key_start: u64,
    pub key_end: u64,
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
pub trait Driver: Send + Sync + Sized + 'static {
    type Connection: Connection;

    /// Builds the driver for one agent's part of a run; refuses a workload
    /// this target cannot run.
    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError>;

    /// Facts about the driver's configuration for the report (the values
    /// it writes), sent once with the first report.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Listeners the workload needs beside its connections (pub/sub
    /// subscribers), opened during prepare; none by default.
    fn listeners(
        &self,
        endpoints: &[String],
    ) -> impl Future<Output = Result<Vec<Box<dyn Listen>>, DriverError>> + Send {
        let _ = endpoints;
        async { Ok(Vec::new()) }
    }

    /// The operation under which the runner records how long each
    /// connection took to open (`Connection::connect_us`), for workloads
    /// that have one (`connect`); none by default.
    fn connect_operation(&self) -> Option<usize> {
        None
    }

    /// Opens one connection to `endpoint` and learns the node behind it.
    fn connect(&self, endpoint: &str) -> impl Future<Output = Result<Self::Connection, DriverError>> + Send;

    /// Runs before the agent reports Ready: creates tables, preloads keys,
    /// telling `progress` how far it got. Returns notes for the report. An
    /// error fails the run before it starts.
    fn setup(
        &self,
        endpoints: &[String],
        part: &Part,
        progress: &Progress,
    ) -> impl Future<Output = Result<Vec<String>, DriverError>> + Send {
        let _ = (endpoints, part, progress);
        async { Ok(Vec::new()) }
    }

    /// Runs after the measured part: drops tables, deletes keys, telling
    /// `progress` how far it got.
    fn teardown(
        &self,
        endpoints: &[String],
        part: &Part,
        progress: &Progress,
    ) -> impl Future<Output = Result<Vec<String>, DriverError>> + Send {
        let _ = (endpoints, part, progress);
        async { Ok(Vec::new()) }
    }
}

/// One open connection (or a slot's handle to it).
pub trait Connection: Clone + Send + Sync + 'static {
    /// The backend node that serves this connection.
    fn node(&self) -> &str;

    /// How long opening this connection took, in microseconds, for drivers
    /// whose workload times it (`Driver::connect_operation`).
    fn connect_us(&self) -> Option<u64> {
        None
    }

    /// Every node this connection holds a socket to, when that is more than
    /// [`Connection::node`] (a cluster client); counted as connections.
    fn nodes(&self) -> &[Arc<str>] {
        &[]
    }

    /// Whether this connection can carry no more requests (the server
    /// closed it, or a request on it was abandoned half way); the runner
    /// then opens a new one, counted as any other. `false` by default.
    fn is_closed(&self) -> bool {
        false
    }

    /// The node a sample found since the last call, for drivers that
    /// sample the node instead of knowing it for every request (an HTTP
    /// balancer may route each request elsewhere); counted so that the
    /// report can say how sure its shares are. `None` by default.
    fn take_sample(&self) -> Option<Arc<str>> {
        None
    }

    /// Rows `operation` writes, for writes whose answer never came (the
    /// runner's timeout): the target may have applied them, and the report
    /// says so. 0 by default.
    fn rows_of(&self, operation: &Operation) -> u32 {
        let _ = operation;
        0
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers the type of the driver it was given.
    struct TypeOf;

    impl WithDriver for TypeOf {
        type Output = &'static str;

        async fn with<D: Driver>(self, _driver: D) -> &'static str {
            std::any::type_name::<D>()
        }
    }

    #[tokio::test]
    async fn every_target_kind_gets_its_own_driver() {
        let cases = [
            ("kv", "  kind: kv\n", "RespDriver"),
            ("redis", "  kind: cache\n", "RespDriver"),
            ("redis_cluster", "  kind: mixed\n", "ClusterDriver"),
            ("postgres", "  kind: metrics\n", "PostgresDriver"),
            ("timescaledb", "  kind: query\n", "PostgresDriver"),
            ("cratedb", "  kind: records\n", "CrateDriver"),
            ("nats", "  kind: pubsub\n", "NatsDriver"),
            ("nats", "  kind: request\n", "NatsDriver"),
            ("influx", "  kind: write\n", "InfluxDriver"),
            ("influx", "  kind: query\n", "InfluxDriver"),
            ("websocket", "  kind: chat\n", "WsDriver"),
            ("websocket", "  kind: echo\n", "WsDriver"),
        ];
        let part = Part { agent_index: 0, key_start: 0, key_end: 10 };
        for (kind, workload, driver) in cases {
            let text = format!(
                "name: t\nduration: 1s\ntarget:\n  kind: {kind}\n  endpoints: [\"127.0.0.1:1\"]\nworkload:\n{workload}"
            );
            let scenario = Scenario::parse(&text).unwrap_or_else(|e| panic!("{kind}: {e}"));
            let spec = DriverSpec {
                scenario: &scenario,
                part: &part,
                seed: 1,
                endpoints: &scenario.target.endpoints,
                agent_count: 1,
                clock: stamp::Clock::default(),
            };
            let built = with_driver(&spec, TypeOf).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(built.ends_with(driver), "{kind} built {built}");
        }
    }
}
