//! The `workload:` section of a scenario: what each operation does. One
//! raw (file format) struct and one validated struct per workload kind; the
//! kinds a target supports are listed in `Workload::supports`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::scenario::{Scalar, TargetKind};

pub const MAX_VALUE_SIZE: u64 = 64 * 1024 * 1024;
pub const MAX_BATCH_SIZE: u32 = 100_000;
pub const MAX_OBJECTS: u32 = 1_000;
/// Rows of one multi-row INSERT (14 bound parameters each, 65535 at most).
pub const MAX_INSERT_ROWS: u32 = 4_000;

// ------------------------------------------------------------ the file format

/// The workload as written, by kind. It is read from the section's YAML
/// value by [`RawWorkload::from_value`] rather than by an internally tagged
/// serde enum, which would buffer the section and lose the field and line
/// of an error inside it.
#[derive(Debug)]
pub(crate) enum RawWorkload {
    Kv(RawKeyValueWorkload),
    Mixed(RawKeyValueWorkload),
    Cache(RawKeyValueWorkload),
    Chat(RawChatWorkload),
    Echo(RawEchoWorkload),
    Pubsub(RawPubsubWorkload),
    Request(RawRequestWorkload),
    Metrics(RawMetricsWorkload),
    Write(RawWriteWorkload),
    Query(RawQueryWorkload),
    Pool(RawPoolWorkload),
    Records(RawRecordsWorkload),
}

/// The kinds, as written in `workload.kind`.
pub const WORKLOAD_KINDS: [&str; 12] =
    ["kv", "mixed", "cache", "chat", "echo", "pubsub", "request", "metrics", "write", "query", "pool", "records"];

/// A problem reading the `workload:` section: the field path inside it
/// (empty for the section itself) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawWorkloadError {
    pub field: String,
    pub message: String,
}

fn fields<T: serde::de::DeserializeOwned>(value: serde_yaml::Value) -> Result<T, RawWorkloadError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = crate::scenario::field_of(error.path());
        let (message, _) = crate::scenario::explain_forms(crate::scenario::strip_location(&error.inner().to_string()));
        RawWorkloadError { field, message }
    })
}

impl RawWorkload {
    /// Reads the section: its `kind`, then the fields of that kind.
    pub(crate) fn from_value(value: serde_yaml::Value) -> Result<Self, RawWorkloadError> {
        let serde_yaml::Value::Mapping(mut mapping) = value else {
            return Err(RawWorkloadError {
                field: String::new(),
                message: "must be a mapping with a `kind` and that kind's fields".to_string(),
            });
        };
        let kinds = WORKLOAD_KINDS.map(|k| format!("`{k}`")).join(", ");
        let kind = match mapping.remove("kind") {
            Some(serde_yaml::Value::String(kind)) => kind,
            Some(_) | None => {
                return Err(RawWorkloadError {
                    field: "kind".to_string(),
                    message: format!("missing or not a word; write one of {kinds}"),
                });
            }
        };
        let rest = serde_yaml::Value::Mapping(mapping);
        Ok(match kind.as_str() {
            "kv" => Self::Kv(fields(rest)?),
            "mixed" => Self::Mixed(fields(rest)?),
            "cache" => Self::Cache(fields(rest)?),
            "chat" => Self::Chat(fields(rest)?),
            "echo" => Self::Echo(fields(rest)?),
            "pubsub" => Self::Pubsub(fields(rest)?),
            "request" => Self::Request(fields(rest)?),
            "metrics" => Self::Metrics(fields(rest)?),
            "write" => Self::Write(fields(rest)?),
            "query" => Self::Query(fields(rest)?),
            "pool" => Self::Pool(fields(rest)?),
            "records" => Self::Records(fields(rest)?),
            other => {
                return Err(RawWorkloadError {
                    field: "kind".to_string(),
                    message: format!("unknown variant `{other}`, expected one of {kinds}"),
                });
            }
        })
    }
}

/// The key-value workloads (`kv`, `mixed`, `cache`) share one field list;
/// a field that belongs to another of them is rejected by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeyValueWorkload {
    #[serde(default)]
    read_ratio: Option<f64>,
    #[serde(default)]
    weights: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    ttl: Option<Scalar>,
    #[serde(default)]
    keys: Option<u64>,
    #[serde(default)]
    key_distribution: Option<KeyDistributionKind>,
    #[serde(default)]
    zipf_exponent: Option<f64>,
    #[serde(default)]
    value_size: Option<Scalar>,
    #[serde(default)]
    key_prefix: Option<String>,
    #[serde(default)]
    value_format: Option<ValueFormat>,
    #[serde(default)]
    compress: Option<Compression>,
    #[serde(default)]
    preload: Option<bool>,
    #[serde(default)]
    cleanup: Option<bool>,
    #[serde(default)]
    pub(crate) codec_in_path: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChatWorkload {
    #[serde(default)]
    rooms: Option<u64>,
    #[serde(default)]
    history: Option<u32>,
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    read_ratio: Option<f64>,
    #[serde(default)]
    message_size: Option<Scalar>,
    #[serde(default)]
    key_prefix: Option<String>,
    #[serde(default)]
    value_format: Option<ValueFormat>,
    #[serde(default)]
    compress: Option<Compression>,
    #[serde(default)]
    cleanup: Option<bool>,
    #[serde(default)]
    members: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEchoWorkload {
    #[serde(default)]
    message_size: Option<Scalar>,
    #[serde(default)]
    binary: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPubsubWorkload {
    /// Channels (Redis) or subjects (NATS): the same thing.
    #[serde(default, alias = "subjects")]
    channels: Option<u64>,
    #[serde(default)]
    subscribers: Option<u32>,
    #[serde(default)]
    message_size: Option<Scalar>,
    #[serde(default)]
    key_prefix: Option<String>,
    #[serde(default)]
    pub(crate) jetstream: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequestWorkload {
    #[serde(default)]
    subjects: Option<u64>,
    #[serde(default)]
    responders: Option<u32>,
    #[serde(default)]
    message_size: Option<Scalar>,
    #[serde(default)]
    key_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetricsWorkload {
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    hosts: Option<u64>,
    #[serde(default)]
    batch_size: Option<u32>,
    #[serde(default)]
    method: Option<InsertMethod>,
    #[serde(default)]
    keep: Option<bool>,
    #[serde(default)]
    start: Option<Scalar>,
    #[serde(default)]
    step: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWriteWorkload {
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    measurement: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, u64>>,
    #[serde(default)]
    fields: Option<u32>,
    #[serde(default)]
    batch_size: Option<u32>,
    #[serde(default)]
    precision: Option<Precision>,
    #[serde(default)]
    gzip: Option<bool>,
    #[serde(default)]
    keep: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueryWorkload {
    #[serde(default)]
    pub(crate) database: Option<String>,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    weights: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    preload_rows: Option<u64>,
    #[serde(default)]
    hosts: Option<u64>,
    #[serde(default)]
    keep: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoolWorkload {
    #[serde(default)]
    query: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRecordsWorkload {
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    batch_size: Option<u32>,
    #[serde(default)]
    batch_interval: Option<Scalar>,
    #[serde(default)]
    objects: Option<u32>,
    #[serde(default)]
    number_of_replicas: Option<u32>,
    #[serde(default)]
    shards: Option<u32>,
    #[serde(default)]
    keep: Option<bool>,
    #[serde(default)]
    recreate: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyDistributionKind {
    Uniform,
    Zipfian,
}

// ------------------------------------------------------------ validated model

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDistribution {
    Uniform,
    Zipfian { exponent: f64 },
}

/// How stored values are encoded (the seed's serialization comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueFormat {
    /// Random bytes of `value_size`.
    #[default]
    Raw,
    /// A record with a `value_size` text field, as JSON.
    Json,
    /// The same record as a protobuf message.
    Protobuf,
    /// The record in bitcode's compact binary form.
    Bitcode,
    /// The record as MessagePack (a map of named fields).
    Msgpack,
    /// The record as an rkyv archive, read in place without copying.
    Rkyv,
    /// The record as a FlatBuffers table, read in place without copying.
    Flatbuffers,
}

impl ValueFormat {
    pub const ALL: [ValueFormat; 7] =
        [Self::Raw, Self::Json, Self::Protobuf, Self::Bitcode, Self::Msgpack, Self::Rkyv, Self::Flatbuffers];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Json => "json",
            Self::Protobuf => "protobuf",
            Self::Bitcode => "bitcode",
            Self::Msgpack => "msgpack",
            Self::Rkyv => "rkyv",
            Self::Flatbuffers => "flatbuffers",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Zstd,
}

/// Values written by a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSpec {
    pub size: u64,
    pub format: ValueFormat,
    pub compress: Compression,
}

/// Key space shared by the key-value workloads.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpace {
    pub keys: u64,
    pub distribution: KeyDistribution,
    pub prefix: String,
    pub value: ValueSpec,
    /// Write every key of the agent's range before measuring.
    pub preload: bool,
    /// Delete the agent's keys after the run.
    pub cleanup: bool,
    /// Encode each value as it is sent and decode each value read, timing
    /// both (`encode`, `decode`), instead of sending a pool encoded before
    /// the run.
    pub codec_in_path: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KvWorkload {
    pub read_ratio: f64,
    pub space: KeySpace,
}

/// The commands of the `mixed` workload, in the order of its operations.
pub const MIXED_OPERATIONS: [&str; 5] = ["set", "get", "incr", "lpush", "hset"];

#[derive(Debug, Clone, PartialEq)]
pub struct MixedWorkload {
    /// Relative weights in `MIXED_OPERATIONS` order.
    pub weights: [f64; 5],
    pub space: KeySpace,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheWorkload {
    pub ttl: Duration,
    pub space: KeySpace,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatWorkload {
    pub rooms: u64,
    /// Messages kept per room (`LTRIM`).
    pub history: u32,
    /// Messages read per history request (`LRANGE`).
    pub page: u32,
    pub read_ratio: f64,
    pub prefix: String,
    pub value: ValueSpec,
    pub cleanup: bool,
    /// Members per agent of a WebSocket chat (given only for one).
    pub members: Option<u32>,
}

/// Chat over WebSocket: each agent's `members` connections join the rooms
/// and time every broadcast they receive; the load's connections post.
/// Made from a `chat` workload when the target is `websocket`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomWorkload {
    pub rooms: u64,
    /// Member connections per agent; member m of agent a joins room
    /// (a x members + m) mod rooms.
    pub members: u32,
    pub message_size: u64,
    pub prefix: String,
}

/// Frames sent to a WebSocket server that sends each back.
#[derive(Debug, Clone, PartialEq)]
pub struct EchoWorkload {
    pub message_size: u64,
    /// Binary frames instead of text.
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PubsubWorkload {
    pub channels: u64,
    /// Subscriber connections per agent; each subscribes to every channel
    /// of the run.
    pub subscribers: u32,
    pub message_size: u64,
    pub prefix: String,
    /// Publish through JetStream and time each publish to its
    /// acknowledgement (NATS only); the stream is made during setup.
    pub jetstream: bool,
}

/// Request/reply (NATS): each request goes to one of `subjects` and waits
/// for its reply; each agent starts `responders` that answer every subject
/// in one queue group (0: a service already answers them).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestWorkload {
    pub subjects: u64,
    pub responders: u32,
    pub message_size: u64,
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsertMethod {
    /// Multi-row `INSERT ... VALUES (...), (...)` with bound parameters.
    Insert,
    /// `COPY ... FROM STDIN`.
    Copy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsWorkload {
    pub table: String,
    pub hosts: u64,
    pub batch_size: u32,
    pub method: InsertMethod,
    pub keep: bool,
    /// Where the rows' times come from.
    pub times: RowTimes,
}

/// The timestamps of generated rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowTimes {
    /// The clock when the batch is made: the data ends at now, as it does
    /// in production (the default).
    Clock,
    /// A series: row `n` is at `start + (n / hosts) * step`, every host
    /// once per step (TSBS's devops data).
    Series { start: SeriesStart, step: Duration },
}

/// Where a series of row times begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesStart {
    /// Milliseconds since the Unix epoch.
    At(i64),
    /// This long before the agent starts.
    Before(Duration),
}

/// The timestamp precision of line protocol points (InfluxDB's `precision`
/// parameter of `/write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ns => "ns",
            Self::Us => "u",
            Self::Ms => "ms",
            Self::S => "s",
        }
    }

    /// Units of this precision in one second.
    pub fn per_second(self) -> u64 {
        match self {
            Self::Ns => 1_000_000_000,
            Self::Us => 1_000_000,
            Self::Ms => 1_000,
            Self::S => 1,
        }
    }
}

/// Points in InfluxDB line protocol (`write`), with the series model of
/// inch and TSBS: every combination of the tags' values is a series.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteWorkload {
    pub database: String,
    pub measurement: String,
    /// Tag keys with how many values each takes (`host: 100`), in key order.
    pub tags: Vec<(String, u64)>,
    /// Float fields per point (`usage_0`, `usage_1`, ...).
    pub fields: u32,
    pub batch_size: u32,
    pub precision: Precision,
    pub gzip: bool,
    /// Keep the measurement after the run (otherwise agent 0 drops it).
    pub keep: bool,
}

impl WriteWorkload {
    /// Series: the product of the tags' cardinalities.
    pub fn series(&self) -> u64 {
        self.tags.iter().map(|(_, n)| *n).product::<u64>().max(1)
    }
}

/// The operations of the `query` workload, in order.
pub const QUERY_OPERATIONS: [&str; 3] = ["bucket", "last_point", "range"];

#[derive(Debug, Clone, PartialEq)]
pub struct QueryWorkload {
    /// The InfluxDB database (`influx` targets only; `stampede` when not given).
    pub database: Option<String>,
    pub table: String,
    pub weights: [f64; 3],
    /// Rows written during setup when the table is empty.
    pub preload_rows: u64,
    pub hosts: u64,
    pub keep: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolWorkload {
    pub query: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordsWorkload {
    pub table: String,
    pub batch_size: u32,
    /// Pause after each batch, per connection.
    pub batch_interval: Duration,
    /// Extra `OBJECT(DYNAMIC)` columns.
    pub objects: u32,
    pub number_of_replicas: u32,
    pub shards: u32,
    pub keep: bool,
    /// Drop and create a table that exists with another shape than asked
    /// (otherwise such a table fails the run before it starts).
    pub recreate: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Kv(KvWorkload),
    Mixed(MixedWorkload),
    Cache(CacheWorkload),
    Chat(ChatWorkload),
    Room(RoomWorkload),
    Echo(EchoWorkload),
    Pubsub(PubsubWorkload),
    Request(RequestWorkload),
    Metrics(MetricsWorkload),
    Write(WriteWorkload),
    Query(QueryWorkload),
    Pool(PoolWorkload),
    Records(RecordsWorkload),
}

impl Workload {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kv(_) => "kv",
            Self::Mixed(_) => "mixed",
            Self::Cache(_) => "cache",
            Self::Chat(_) | Self::Room(_) => "chat",
            Self::Echo(_) => "echo",
            Self::Pubsub(_) => "pubsub",
            Self::Request(_) => "request",
            Self::Metrics(_) => "metrics",
            Self::Write(_) => "write",
            Self::Query(_) => "query",
            Self::Pool(_) => "pool",
            Self::Records(_) => "records",
        }
    }

    /// The operations this workload produces, as named in reports.
    pub fn operations(&self) -> &'static [&'static str] {
        match self {
            Self::Kv(_) => &["get", "set"],
            Self::Mixed(_) => &MIXED_OPERATIONS,
            Self::Cache(_) => &["read"],
            Self::Chat(_) => &["post", "history"],
            // A listener's deliveries are recorded as the last operation.
            Self::Room(_) => &["post", "connect", "deliver"],
            Self::Echo(_) => &["echo", "connect"],
            Self::Pubsub(_) => &["publish", "deliver"],
            Self::Request(_) => &["request", "respond"],
            Self::Metrics(_) | Self::Records(_) => &["insert"],
            Self::Write(_) => &["write"],
            Self::Query(_) => &QUERY_OPERATIONS,
            Self::Pool(_) => &["cycle"],
        }
    }

    /// Size of the space that the scheduler splits over agents (keys,
    /// rooms, channels or hosts).
    pub fn key_space(&self) -> u64 {
        match self {
            Self::Kv(w) => w.space.keys,
            Self::Mixed(w) => w.space.keys,
            Self::Cache(w) => w.space.keys,
            Self::Chat(w) => w.rooms,
            Self::Room(w) => w.rooms,
            Self::Echo(_) => 0,
            Self::Pubsub(w) => w.channels,
            Self::Request(w) => w.subjects,
            Self::Metrics(w) => w.hosts,
            Self::Write(w) => w.series(),
            Self::Query(w) => w.hosts,
            Self::Pool(_) | Self::Records(_) => 0,
        }
    }

    /// The target kinds this workload runs against.
    pub fn supports(&self) -> &'static [TargetKind] {
        use TargetKind::*;
        match self {
            Self::Kv(_) | Self::Mixed(_) | Self::Cache(_) | Self::Chat(_) => &[Kv, Redis, RedisCluster],
            // PUBLISH on a cluster node counts only that node's subscribers.
            Self::Pubsub(_) => &[Kv, Redis, Nats],
            Self::Request(_) => &[Nats],
            Self::Room(_) | Self::Echo(_) => &[Websocket],
            Self::Metrics(_) | Self::Pool(_) => &[Postgres, Timescaledb],
            Self::Query(_) => &[Postgres, Timescaledb, Cratedb, Influx],
            Self::Write(_) => &[Influx],
            Self::Records(_) => &[Cratedb],
        }
    }

    /// The pause a connection makes after each operation, which the runner
    /// applies whatever the target (the `records` workload's
    /// `batch_interval`); zero for workloads without one.
    pub fn pacing(&self) -> Duration {
        match self {
            Self::Records(w) => w.batch_interval,
            _ => Duration::ZERO,
        }
    }

    /// The key-value space, for workloads that have one.
    pub fn key_value_space(&self) -> Option<&KeySpace> {
        match self {
            Self::Kv(w) => Some(&w.space),
            Self::Mixed(w) => Some(&w.space),
            Self::Cache(w) => Some(&w.space),
            _ => None,
        }
    }
}

mod validate;
pub(crate) use validate::validate;
