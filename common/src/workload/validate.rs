//! Checking a raw `workload:` section and turning it into a `Workload`:
//! defaults, limits, and a message naming each bad field.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::scenario::{Checker, Scalar};
use crate::units::{parse_duration, parse_size};

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
                members: raw.members,
            })
        }
        RawWorkload::Echo(raw) => {
            let message_size = size(raw.message_size.as_ref(), 64, "workload.message_size", check);
            if message_size == 0 || message_size > 16 << 20 {
                check.fail("workload.message_size", "must be between 1B and 16MiB (a WebSocket frame)");
            }
            Workload::Echo(EchoWorkload { message_size, binary: raw.binary.unwrap_or(false) })
        }
        RawWorkload::Pubsub(raw) => {
            let channels = raw.channels.unwrap_or(10);
            if channels == 0 || channels > 10_000 {
                check.fail("workload.channels", "must be between 1 and 10000");
            }
            let subscribers = raw.subscribers.unwrap_or(4);
            if subscribers > 10_000 {
                check.fail("workload.subscribers", "must be at most 10000 per agent (0: publish only)");
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
                jetstream: raw.jetstream.unwrap_or(false),
            })
        }
        RawWorkload::Request(raw) => {
            let subjects = raw.subjects.unwrap_or(10);
            if subjects == 0 || subjects > 10_000 {
                check.fail("workload.subjects", "must be between 1 and 10000");
            }
            let responders = raw.responders.unwrap_or(2);
            if responders > 1_000 {
                check.fail("workload.responders", "must be at most 1000 per agent (0: a service already answers)");
            }
            let message_size = size(raw.message_size.as_ref(), 64, "workload.message_size", check);
            if message_size < 8 {
                check.fail("workload.message_size", "must be at least 8B (requests carry their send time)");
            }
            Workload::Request(RequestWorkload {
                subjects,
                responders,
                message_size,
                prefix: raw.key_prefix.unwrap_or_else(|| "stampede.rpc.".into()),
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
                times: row_times(raw.start.as_ref(), raw.step.as_ref(), check),
            })
        }
        RawWorkload::Write(raw) => {
            let batch_size = raw.batch_size.unwrap_or(1000);
            if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
                check.fail("workload.batch_size", format!("must be between 1 and {MAX_BATCH_SIZE}"));
            }
            let fields = raw.fields.unwrap_or(4);
            if fields == 0 || fields > 100 {
                check.fail("workload.fields", "must be between 1 and 100 (float fields per point)");
            }
            let tags: Vec<(String, u64)> =
                raw.tags.unwrap_or_else(|| BTreeMap::from([("host".to_string(), 100)])).into_iter().collect();
            for (key, values) in &tags {
                if !influx_name(key) {
                    check.fail("workload.tags", format!("`{key}` is not a tag key (letters, digits, `_` and `-`)"));
                }
                if *values == 0 {
                    check.fail("workload.tags", format!("`{key}` needs at least 1 value"));
                }
            }
            let series = tags.iter().try_fold(1u64, |product, (_, n)| product.checked_mul(*n));
            if series.is_none_or(|s| s > 10_000_000) {
                check.fail(
                    "workload.tags",
                    "the tags' cardinalities multiply to more than 10000000 series; lower one of them",
                );
            }
            let measurement = raw.measurement.unwrap_or_else(|| "cpu".to_string());
            if !influx_name(&measurement) {
                check.fail(
                    "workload.measurement",
                    format!("`{measurement}` is not a measurement name (letters, digits, `_` and `-`)"),
                );
            }
            Workload::Write(WriteWorkload {
                database: database(raw.database, check),
                measurement,
                tags,
                fields,
                batch_size,
                precision: raw.precision.unwrap_or_default(),
                gzip: raw.gzip.unwrap_or(false),
                keep: raw.keep.unwrap_or(false),
            })
        }
        RawWorkload::Query(raw) => Workload::Query(QueryWorkload {
            database: raw.database.map(|name| database(Some(name), check)),
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
                table: crate_table(raw.table, "stampede_records", check),
                batch_size,
                batch_interval: duration(raw.batch_interval.as_ref(), Duration::ZERO, "workload.batch_interval", check),
                objects,
                number_of_replicas: raw.number_of_replicas.unwrap_or(0),
                shards,
                keep: raw.keep.unwrap_or(false),
                recreate: raw.recreate.unwrap_or(false),
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

/// `start` (an RFC 3339 time, or `-24h`: that long before the run) and
/// `step` (default 10s) make a series; without `start`, rows take the clock.
fn row_times(start: Option<&Scalar>, step: Option<&Scalar>, check: &mut Checker<'_>) -> RowTimes {
    let Some(start) = start else {
        if step.is_some() {
            check.fail("workload.step", "is the time between rounds of a series; give `start` too (e.g. start: -24h)");
        }
        return RowTimes::Clock;
    };
    let step = duration(step, Duration::from_secs(10), "workload.step", check);
    if step.is_zero() {
        check.fail("workload.step", "must be more than 0");
    }
    let text = start.text();
    let start = if let Some(ago) = text.strip_prefix('-') {
        match parse_duration(ago) {
            Ok(d) if d <= Duration::from_secs(100 * 365 * 86_400) => SeriesStart::Before(d),
            Ok(_) => {
                check.fail("workload.start", "reaches back more than 100 years");
                SeriesStart::Before(Duration::ZERO)
            }
            Err(e) => {
                check.fail("workload.start", format!("`{text}`: {}", e.0));
                SeriesStart::Before(Duration::ZERO)
            }
        }
    } else {
        match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(at) => SeriesStart::At(at.timestamp_millis()),
            Err(e) => {
                check.fail(
                    "workload.start",
                    format!(
                        "`{text}` is neither an RFC 3339 time (2026-01-01T00:00:00Z) nor `-<duration>` (-24h): {e}"
                    ),
                );
                SeriesStart::Before(Duration::ZERO)
            }
        }
    };
    RowTimes::Series { start, step }
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

/// A measurement, tag key or database name written into line protocol and
/// InfluxQL unquoted: letters, digits, `_` and `-`, not starting with `-`.
fn influx_name(name: &str) -> bool {
    name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn database(value: Option<String>, check: &mut Checker<'_>) -> String {
    let name = value.unwrap_or_else(|| "stampede".to_string());
    if !influx_name(&name) {
        check.fail("workload.database", format!("`{name}` is not a database name (letters, digits, `_` and `-`)"));
    }
    name
}

fn hosts(value: Option<u64>, check: &mut Checker<'_>) -> u64 {
    let hosts = value.unwrap_or(100);
    if hosts == 0 || hosts > 10_000_000 {
        check.fail("workload.hosts", "must be between 1 and 10000000");
    }
    hosts
}

/// Words PostgreSQL reserves (its SQL key words appendix, "reserved" and not
/// usable as a table name); CrateDB reserves them too. A table name is
/// written into statements unquoted, so none of them can be one.
const RESERVED: [&str; 77] = [
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

/// A CrateDB table name: [`table`]'s rules, and not starting with `_`
/// (CrateDB keeps those names for its own tables and refuses them).
fn crate_table(value: Option<String>, default: &str, check: &mut Checker<'_>) -> String {
    let name = table(value, default, check);
    if name.starts_with('_') {
        check.fail(
            "workload.table",
            format!("`{name}`: CrateDB refuses table names that start with `_`; start it with a letter"),
        );
    }
    name
}

/// A table name: letters, digits and underscores, not starting with a digit
/// (it is written into SQL statements unquoted), and no reserved word.
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
    } else if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        check.fail(
            "workload.table",
            format!(
                "`{name}` is a reserved word in SQL, which PostgreSQL and CrateDB refuse as a table name; \
                 choose another, e.g. `{name}_events`"
            ),
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
        // The seed's format comparison is a GET/SET one.
        ("codec_in_path", "kv", raw.codec_in_path.is_some()),
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
        codec_in_path: raw.codec_in_path.unwrap_or(false),
    }
}
