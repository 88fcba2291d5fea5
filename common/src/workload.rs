//! The `workload:` section of a scenario: what each operation does. One
//! raw (file format) struct and one validated struct per workload kind; the
//! kinds a target supports are listed in `Workload::supports`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::scenario::{Checker, Scalar, TargetKind};
use crate::units::{parse_duration, parse_size};

pub const MAX_VALUE_SIZE: u64 = 64 * 1024 * 1024;
pub const MAX_BATCH_SIZE: u32 = 100_000;
pub const MAX_OBJECTS: u32 = 1_000;
/// Rows of one multi-row INSERT (14 bound parameters each, 65535 at most).
pub const MAX_INSERT_ROWS: u32 = 4_000;

// ------------------------------------------------------------ the file format

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum RawWorkload {
    Kv(RawKeyValueWorkload),
    Mixed(RawKeyValueWorkload),
    Cache(RawKeyValueWorkload),
    Chat(RawChatWorkload),
    Pubsub(RawPubsubWorkload),
    Metrics(RawMetricsWorkload),
    Query(RawQueryWorkload),
    Pool(RawPoolWorkload),
    Records(RawRecordsWorkload),
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPubsubWorkload {
    #[serde(default)]
    channels: Option<u64>,
    #[serde(default)]
    subscribers: Option<u32>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueryWorkload {
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct PubsubWorkload {
    pub channels: u64,
    /// Subscriber connections per agent; each subscribes to every channel
    /// of the run.
    pub subscribers: u32,
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
}

/// The operations of the `query` workload, in order.
pub const QUERY_OPERATIONS: [&str; 3] = ["bucket", "last_point", "range"];

#[derive(Debug, Clone, PartialEq)]
pub struct QueryWorkload {
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
}

#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Kv(KvWorkload),
    Mixed(MixedWorkload),
    Cache(CacheWorkload),
    Chat(ChatWorkload),
    Pubsub(PubsubWorkload),
    Metrics(MetricsWorkload),
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
            Self::Chat(_) => "chat",
            Self::Pubsub(_) => "pubsub",
            Self::Metrics(_) => "metrics",
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
            Self::Pubsub(_) => &["publish", "deliver"],
            Self::Metrics(_) | Self::Records(_) => &["insert"],
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
            Self::Pubsub(w) => w.channels,
            Self::Metrics(w) => w.hosts,
            Self::Query(w) => w.hosts,
            Self::Pool(_) | Self::Records(_) => 0,
        }
    }

    /// The target kinds this workload runs against.
    pub fn supports(&self) -> &'static [TargetKind] {
        use TargetKind::*;
        match self {
            Self::Kv(_) | Self::Mixed(_) | Self::Cache(_) | Self::Chat(_) | Self::Pubsub(_) => &[Kv, Redis],
            Self::Metrics(_) | Self::Pool(_) => &[Postgres, Timescaledb],
            Self::Query(_) => &[Postgres, Timescaledb, Cratedb],
            Self::Records(_) => &[Cratedb],
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

// ------------------------------------------------------------ validation

pub(crate) fn validate(raw: RawWorkload, check: &mut Checker<'_>) -> Workload {
    match raw {
        RawWorkload::Kv(mut raw) => {
            only_for(&mut raw, "kv", check);
            let read_ratio = ratio(raw.read_ratio, 0.9, "workload.read_ratio", check);
            Workload::Kv(KvWorkload { read_ratio, space: keys(raw, false, check) })
        }
        RawWorkload::Mixed(mut raw) => {
            only_for(&mut raw, "mixed", check);
            let weights = weights(raw.weights.take(), &MIXED_OPERATIONS, [30.0, 50.0, 10.0, 5.0, 5.0], check);
            Workload::Mixed(MixedWorkload { weights, space: keys(raw, false, check) })
        }
        RawWorkload::Cache(mut raw) => {
            only_for(&mut raw, "cache", check);
            let ttl = duration(raw.ttl.as_ref(), Duration::from_secs(60), "workload.ttl", check);
            if ttl < Duration::from_millis(1) {
                check.fail("workload.ttl", "must be at least 1ms");
            }
            // The seed's cache test fills the cache before measuring.
            Workload::Cache(CacheWorkload { ttl, space: keys(raw, true, check) })
        }
        RawWorkload::Chat(raw) => {
            let rooms = raw.rooms.unwrap_or(100);
            if rooms == 0 {
                check.fail("workload.rooms", "must be at least 1");
            }
            let history = raw.history.unwrap_or(100);
            if history == 0 {
                check.fail("workload.history", "must be at least 1");
            }
            let page = raw.page.unwrap_or(20);
            if page == 0 || page > history {
                check.fail("workload.page", format!("must be between 1 and history ({history})"));
            }
            Workload::Chat(ChatWorkload {
                rooms,
                history,
                page,
                read_ratio: ratio(raw.read_ratio, 0.2, "workload.read_ratio", check),
                prefix: raw.key_prefix.unwrap_or_else(|| "stampede:chat:".into()),
                value: ValueSpec {
                    size: size(raw.message_size.as_ref(), 128, "workload.message_size", check),
                    format: raw.value_format.unwrap_or_default(),
                    compress: raw.compress.unwrap_or_default(),
                },
                cleanup: raw.cleanup.unwrap_or(true),
            })
        }
        RawWorkload::Pubsub(raw) => {
            let channels = raw.channels.unwrap_or(10);
            if channels == 0 || channels > 10_000 {
                check.fail("workload.channels", "must be between 1 and 10000");
            }
            let subscribers = raw.subscribers.unwrap_or(4);
            if subscribers == 0 || subscribers > 10_000 {
                check.fail("workload.subscribers", "must be between 1 and 10000");
            }
            let message_size = size(raw.message_size.as_ref(), 64, "workload.message_size", check);
            if message_size < 8 {
                check.fail("workload.message_size", "must be at least 8B (messages carry their send time)");
            }
            Workload::Pubsub(PubsubWorkload {
                channels,
                subscribers,
                message_size,
                prefix: raw.key_prefix.unwrap_or_else(|| "stampede:room:".into()),
            })
        }
        RawWorkload::Metrics(raw) => {
            let batch_size = raw.batch_size.unwrap_or(500);
            if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
                check.fail("workload.batch_size", format!("must be between 1 and {MAX_BATCH_SIZE}"));
            }
            let method = raw.method.unwrap_or(InsertMethod::Insert);
            if method == InsertMethod::Insert && batch_size > MAX_INSERT_ROWS {
                check.fail(
                    "workload.batch_size",
                    format!(
                        "a multi-row INSERT binds 14 parameters per row and PostgreSQL allows 65535, so at most \
                         {MAX_INSERT_ROWS} rows; use `method: copy` for larger batches"
                    ),
                );
            }
            Workload::Metrics(MetricsWorkload {
                table: table(raw.table, "stampede_cpu", check),
                hosts: hosts(raw.hosts, check),
                batch_size,
                method,
                keep: raw.keep.unwrap_or(false),
            })
        }
        RawWorkload::Query(raw) => Workload::Query(QueryWorkload {
            table: table(raw.table, "stampede_cpu", check),
            weights: weights(raw.weights, &QUERY_OPERATIONS, [1.0, 1.0, 1.0], check),
            preload_rows: raw.preload_rows.unwrap_or(100_000),
            hosts: hosts(raw.hosts, check),
            keep: raw.keep.unwrap_or(false),
        }),
        RawWorkload::Pool(raw) => {
            let query = raw.query.unwrap_or_else(|| "SELECT 1".into());
            if query.trim().is_empty() {
                check.fail("workload.query", "must not be empty");
            }
            Workload::Pool(PoolWorkload { query })
        }
        RawWorkload::Records(raw) => {
            let batch_size = raw.batch_size.unwrap_or(1000);
            if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
                check.fail("workload.batch_size", format!("must be between 1 and {MAX_BATCH_SIZE}"));
            }
            let objects = raw.objects.unwrap_or(0);
            if objects > MAX_OBJECTS {
                check.fail("workload.objects", format!("must be at most {MAX_OBJECTS}"));
            }
            let shards = raw.shards.unwrap_or(4);
            if shards == 0 {
                check.fail("workload.shards", "must be at least 1");
            }
            Workload::Records(RecordsWorkload {
                table: table(raw.table, "stampede_records", check),
                batch_size,
                batch_interval: duration(raw.batch_interval.as_ref(), Duration::ZERO, "workload.batch_interval", check),
                objects,
                number_of_replicas: raw.number_of_replicas.unwrap_or(0),
                shards,
                keep: raw.keep.unwrap_or(false),
            })
        }
    }
}

fn ratio(value: Option<f64>, default: f64, field: &str, check: &mut Checker<'_>) -> f64 {
    let value = value.unwrap_or(default);
    if !(0.0..=1.0).contains(&value) {
        check.fail(field, "must be between 0 and 1");
    }
    value
}

fn duration(value: Option<&Scalar>, default: Duration, field: &str, check: &mut Checker<'_>) -> Duration {
    match value.map(|v| parse_duration(&v.text())) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            check.fail(field, e.0);
            default
        }
    }
}

fn size(value: Option<&Scalar>, default: u64, field: &str, check: &mut Checker<'_>) -> u64 {
    match value.map(|v| parse_size(&v.text())) {
        None => default,
        Some(Ok(size)) if size <= MAX_VALUE_SIZE => size,
        Some(Ok(_)) => {
            check.fail(field, "must be at most 64MiB");
            0
        }
        Some(Err(e)) => {
            check.fail(field, e.0);
            0
        }
    }
}

fn hosts(value: Option<u64>, check: &mut Checker<'_>) -> u64 {
    let hosts = value.unwrap_or(100);
    if hosts == 0 || hosts > 10_000_000 {
        check.fail("workload.hosts", "must be between 1 and 10000000");
    }
    hosts
}

/// A table name: letters, digits and underscores, not starting with a digit
/// (it is written into SQL statements unquoted).
fn table(value: Option<String>, default: &str, check: &mut Checker<'_>) -> String {
    let name = value.unwrap_or_else(|| default.to_string());
    let valid = name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        check.fail(
            "workload.table",
            format!("`{name}` is not a plain table name (letters, digits, `_`, at most 63, not starting with a digit)"),
        );
    }
    name
}

fn weights<const N: usize>(
    raw: Option<BTreeMap<String, f64>>,
    names: &[&str; N],
    default: [f64; N],
    check: &mut Checker<'_>,
) -> [f64; N] {
    let Some(raw) = raw else { return default };
    let mut weights = [0.0; N];
    for (name, weight) in raw {
        match names.iter().position(|n| *n == name) {
            Some(i) if weight >= 0.0 && weight.is_finite() => weights[i] = weight,
            Some(_) => check.fail(&format!("workload.weights.{name}"), "must be a number of at least 0"),
            None => check.fail(
                &format!("workload.weights.{name}"),
                format!("unknown operation `{name}`; the operations are {}", names.join(", ")),
            ),
        }
    }
    if weights.iter().sum::<f64>() <= 0.0 {
        check.fail("workload.weights", "at least one weight must be more than 0");
    }
    weights
}

/// Rejects the fields of the other key-value workloads.
fn only_for(raw: &mut RawKeyValueWorkload, kind: &str, check: &mut Checker<'_>) {
    let owners = [
        ("read_ratio", "kv", raw.read_ratio.is_some()),
        ("weights", "mixed", raw.weights.is_some()),
        ("ttl", "cache", raw.ttl.is_some()),
    ];
    for (field, owner, present) in owners {
        if present && owner != kind {
            check.fail(&format!("workload.{field}"), format!("is only used with `kind: {owner}`, not `kind: {kind}`"));
        }
    }
}

fn keys(raw: RawKeyValueWorkload, preload_default: bool, check: &mut Checker<'_>) -> KeySpace {
    let keys = raw.keys.unwrap_or(100_000);
    if keys == 0 {
        check.fail("workload.keys", "must be at least 1");
    }
    let distribution = match raw.key_distribution.unwrap_or(KeyDistributionKind::Uniform) {
        KeyDistributionKind::Uniform => {
            if raw.zipf_exponent.is_some() {
                check.fail("workload.zipf_exponent", "is only used with `key_distribution: zipfian`");
            }
            KeyDistribution::Uniform
        }
        KeyDistributionKind::Zipfian => {
            let exponent = raw.zipf_exponent.unwrap_or(0.99);
            if !(exponent > 0.0 && exponent <= 10.0) {
                check.fail("workload.zipf_exponent", "must be more than 0 and at most 10");
            }
            KeyDistribution::Zipfian { exponent }
        }
    };
    KeySpace {
        keys,
        distribution,
        prefix: raw.key_prefix.unwrap_or_else(|| "stampede:".to_string()),
        value: ValueSpec {
            size: size(raw.value_size.as_ref(), 100, "workload.value_size", check),
            format: raw.value_format.unwrap_or_default(),
            compress: raw.compress.unwrap_or_default(),
        },
        preload: raw.preload.unwrap_or(preload_default),
        cleanup: raw.cleanup.unwrap_or(false),
    }
}
