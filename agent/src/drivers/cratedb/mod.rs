//! CrateDB over its HTTP endpoint, target kind `cratedb`.
//!
//! Requests follow CrateDB's documented `/_sql` format: a JSON body with
//! `stmt` and either `args` (one row) or `bulk_args` (many rows); answers
//! carry `cols`, `rows`, `rowcount` and `duration`, bulk answers a `results`
//! array with one `rowcount` per row (`-2` for a row that failed), and
//! errors an `error` object with `message` and `code`.
//!
//! Each connection is one HTTP/1.1 socket of its own ([`super::http`]), so
//! the connections a layer-4 balancer sees are the ones counted. The node
//! is the `name` that `GET /` returns on that socket. An HTTP balancer may
//! route each request elsewhere: with `target.node_header` each answer's
//! header names its node; without one, `GET /` samples the node again after
//! a random 8 to 24 requests, and requests count against the last sample.
//!
//! Endpoints are `host:port` or `http(s)://user:password@host:port`;
//! credentials become basic authentication.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use stampede_common::Scenario;
use stampede_common::scenario::Workload;

use super::http::{Endpoint, Link, LinkState};
use super::{BuildError, Connection, Done, Driver, DriverError, DriverSpec, ErrorKind, Part, Progress};
use crate::workloads::{Action, Operation, QueryKind};

/// A set-up or teardown statement (a CREATE, a preload chunk) gets this long.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows per bulk request when the query workload preloads its table.
const PRELOAD_CHUNK: u64 = 1000;
const TEARDOWN_GRACE: Duration = Duration::from_secs(2);
/// Requests between two samples of the node, drawn uniformly (a random gap
/// cannot keep step with a balancer's round robin); 16 on average.
const SAMPLE_GAP: std::ops::RangeInclusive<u32> = 8..=24;

const REGIONS: [&str; 4] = ["us-east", "us-west", "eu-central", "ap-southeast"];
const CATEGORIES: [&str; 5] = ["electronics", "books", "clothing", "home", "sports"];
const EVENTS: [&str; 5] = ["view", "click", "purchase", "cart_add", "cart_remove"];
const SEGMENTS: [&str; 4] = ["premium", "standard", "basic", "trial"];
const BROWSERS: [&str; 4] = ["firefox", "chrome", "safari", "edge"];
const SYSTEMS: [&str; 4] = ["linux", "windows", "macos", "android"];

/// The table and row shape of a run.
struct Plan {
    workload: Workload,
    table: String,
    batch_size: u32,
    objects: u32,
    replicas: u32,
    shards: u32,
    keep: bool,
    /// Drop and create a table that exists with another shape.
    recreate: bool,
    seed: u64,
    /// Row ids of this agent start with it, so agents never collide.
    agent: u32,
    node_header: Option<String>,
}

pub struct CrateDriver {
    plan: Arc<Plan>,
    /// Connections opened so far (each one's sampling stream differs).
    opened: AtomicU64,
}

impl CrateDriver {
    fn new(scenario: &Scenario, part: &Part, seed: u64) -> Self {
        let (table, batch_size, objects, replicas, shards, keep) = match &scenario.workload {
            Workload::Records(w) => (w.table.clone(), w.batch_size, w.objects, w.number_of_replicas, w.shards, w.keep),
            Workload::Query(w) => (w.table.clone(), 0, 0, 0, 4, w.keep),
            _ => (String::new(), 0, 0, 0, 1, true),
        };
        let recreate = matches!(&scenario.workload, Workload::Records(w) if w.recreate);
        Self {
            plan: Arc::new(Plan {
                workload: scenario.workload.clone(),
                table,
                batch_size,
                objects,
                replicas,
                shards,
                keep,
                recreate,
                seed,
                agent: part.agent_index,
                node_header: scenario.target.node_header.clone(),
            }),
            opened: AtomicU64::new(0),
        }
    }

    fn endpoint(&self, endpoint: &str) -> Result<Endpoint, DriverError> {
        Endpoint::parse(endpoint, self.plan.node_header.as_deref())
    }
}

/// A link for set-up and teardown statements, which may take long.
struct Statements {
    link: Link,
    shown: Arc<str>,
}

impl Statements {
    async fn open(endpoint: &Endpoint) -> Result<Self, DriverError> {
        Ok(Self { link: endpoint.open().await?, shown: Arc::clone(&endpoint.shown) })
    }

    async fn sql(&mut self, body: &Value) -> Result<Value, DriverError> {
        let answer = tokio::time::timeout(STATEMENT_TIMEOUT, sql(&mut self.link, &self.shown, body)).await;
        let statement = body.get("stmt").and_then(Value::as_str).unwrap_or_default();
        let statement: String = statement.chars().take(60).collect();
        answer
            .map_err(|_| {
                DriverError::new(
                    ErrorKind::Timeout,
                    format!("{}: `{statement}...` had no answer after {STATEMENT_TIMEOUT:?}", self.shown),
                )
            })?
            .map(|(value, ..)| value)
    }
}

/// Sends one `/_sql` request; returns the answer's JSON, the node header's
/// value and the bytes of the request's and the answer's bodies. CrateDB's errors are counted against the node that sent them.
async fn sql(link: &mut Link, shown: &str, body: &Value) -> Result<(Value, Option<String>, [u32; 2]), DriverError> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let sent = bytes.len() as u32;
    let reply = link.send(Method::POST, "/_sql", Some(bytes)).await?;
    let transfer = [sent, reply.body.len() as u32];
    let status = reply.status;
    let at = |error: DriverError| match &reply.node {
        Some(node) => error.at(node.as_str().into()),
        None => error,
    };
    let answer: Value = serde_json::from_slice(&reply.body).map_err(|e| {
        at(DriverError::new(ErrorKind::Protocol, format!("{shown}: HTTP {status} with a body that is not JSON: {e}")))
    })?;
    if let Some(error) = answer.get("error") {
        return Err(at(crate_error(status, error)));
    }
    if !(200..300).contains(&status) {
        return Err(at(DriverError::new(ErrorKind::Server, format!("{shown}: HTTP {status} without an error object"))));
    }
    Ok((answer, reply.node, transfer))
}

/// Maps CrateDB's error object to an error: the code's class names the
/// cause (4000 parse, 4004 or 4041 unknown relation, 4010 or 4011 not
/// allowed, 4091 duplicate key, 5000 internal); the kind is `server` for
/// all of them, and the message keeps the code.
fn crate_error(status: u16, error: &Value) -> DriverError {
    let message = error.get("message").and_then(Value::as_str).unwrap_or("no message");
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    let cause = match code {
        4000..=4003 => "statement rejected",
        4004 | 4041..=4049 => "unknown relation or column",
        4010..=4019 => "not authorized",
        4090..=4099 => "conflict",
        5000..=5999 => "internal server error",
        _ => "error",
    };
    DriverError::new(ErrorKind::Server, format!("CrateDB {cause} (HTTP {status}, code {code}): {message}"))
}

/// What `GET /` said: the node's name (or the node header's value), and
/// whether the node says it is healthy (an unhealthy one answers 503 and
/// `"ok": false`).
struct Probe {
    node: Arc<str>,
    healthy: bool,
}

async fn probe(link: &mut Link, endpoint: &Endpoint) -> Result<Probe, DriverError> {
    let shown = &endpoint.shown;
    let reply = tokio::time::timeout(super::http::CONNECT_TIMEOUT, link.send(Method::GET, "/", None))
        .await
        .map_err(|_| DriverError::new(ErrorKind::Timeout, format!("GET / on {shown} had no answer after 5s")))??;
    let status = reply.status;
    let answer: Value = serde_json::from_slice(&reply.body).map_err(|e| {
        DriverError::new(ErrorKind::Protocol, format!("{shown}: GET / answered HTTP {status}, not JSON: {e}"))
    })?;
    if let Some(error) = answer.get("error") {
        return Err(crate_error(status, error));
    }
    let node = match (endpoint.node_header(), reply.node) {
        (None, _) => answer.get("name").and_then(Value::as_str).unwrap_or(shown).to_string(),
        (Some(_), Some(node)) if !node.is_empty() => node,
        (Some(header), _) => {
            return Err(DriverError::new(
                ErrorKind::Protocol,
                format!(
                    "{shown}: the answer to GET / has no `{header}` header, which target.node_header names; \
                     make the balancer set it (haproxy: `http-response set-header {header} %s` in the backend) \
                     or remove node_header to sample the node with GET /"
                ),
            ));
        }
    };
    let healthy = status != 503 && answer.get("ok").and_then(Value::as_bool) != Some(false);
    Ok(Probe { node: node.into(), healthy })
}

/// The error of a node that says it is not healthy.
fn unhealthy(shown: &str, node: &Arc<str>) -> DriverError {
    DriverError::new(
        ErrorKind::Server,
        format!(
            "CrateDB node {node} at {shown} says it is not healthy (GET / answered HTTP 503, \"ok\": false); \
             see its log and `SELECT * FROM sys.checks WHERE NOT passed`"
        ),
    )
    .at(Arc::clone(node))
}

/// A connection's socket and what it knows of the node behind it.
struct Session {
    link: Link,
    /// The node requests are counted against (the last sample).
    node: Arc<str>,
    /// Requests until the next sample.
    until_sample: u32,
    rng: SmallRng,
}

#[derive(Clone)]
pub struct CrateConnection {
    session: Arc<tokio::sync::Mutex<Session>>,
    state: Arc<LinkState>,
    /// A sample not yet collected by the runner.
    sample: Arc<Mutex<Option<Arc<str>>>>,
    endpoint: Endpoint,
    /// The node found when the connection opened.
    node: Arc<str>,
    plan: Arc<Plan>,
}

impl Driver for CrateDriver {
    type Connection = CrateConnection;

    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        Ok(Self::new(spec.scenario, spec.part, spec.seed))
    }

    fn notes(&self) -> Vec<String> {
        vec![match &self.plan.node_header {
            Some(header) => format!(
                "cratedb: each request is counted against the node its answer's `{header}` header names \
                 (one HTTP/1.1 socket per connection)"
            ),
            None => format!(
                "cratedb nodes are sampled: GET / on the connection's socket every {} to {} requests names the \
                 node that requests count against until the next sample; behind an HTTP balancer that routes \
                 each request, shares are estimates with the confidence interval the distribution states \
                 (set target.node_header to count every request)",
                SAMPLE_GAP.start(),
                SAMPLE_GAP.end()
            ),
        }]
    }

    async fn connect(&self, endpoint: &str) -> Result<CrateConnection, DriverError> {
        let endpoint = self.endpoint(endpoint)?;
        let mut link = endpoint.open().await?;
        let found = probe(&mut link, &endpoint).await?;
        if !found.healthy {
            return Err(unhealthy(&endpoint.shown, &found.node));
        }
        let index = self.opened.fetch_add(1, Ordering::Relaxed);
        let mut rng = SmallRng::seed_from_u64(self.plan.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let until_sample = rng.random_range(SAMPLE_GAP);
        let sampled = self.plan.node_header.is_none().then(|| Arc::clone(&found.node));
        Ok(CrateConnection {
            state: link.state(),
            session: Arc::new(tokio::sync::Mutex::new(Session {
                link,
                node: Arc::clone(&found.node),
                until_sample,
                rng,
            })),
            sample: Arc::new(Mutex::new(sampled)),
            endpoint,
            node: found.node,
            plan: Arc::clone(&self.plan),
        })
    }

    async fn setup(&self, endpoints: &[String], part: &Part, progress: &Progress) -> Result<Vec<String>, DriverError> {
        let plan = &self.plan;
        if plan.table.is_empty() || part.agent_index != 0 {
            return Ok(Vec::new());
        }
        progress.begin("table set-up", "steps", 0);
        let mut http =
            Statements::open(&self.endpoint(endpoints.first().map(String::as_str).unwrap_or_default())?).await?;
        let mut notes = vec![prepare_table(plan, &mut http).await?];
        if let Workload::Query(w) = &plan.workload {
            let _ = http.sql(&json!({ "stmt": format!("REFRESH TABLE {}", plan.table) })).await?;
            let count = http.sql(&json!({ "stmt": format!("SELECT count(*) FROM {}", plan.table) })).await?;
            let rows = count.pointer("/rows/0/0").and_then(Value::as_u64).unwrap_or(0);
            if rows == 0 && w.preload_rows > 0 {
                progress.begin("preload", "rows", w.preload_rows);
                let mut start = 0;
                while start < w.preload_rows {
                    let end = (start + PRELOAD_CHUNK).min(w.preload_rows);
                    let body = insert_body(plan, u64::MAX, start, end - start, w.hosts);
                    let answer = http.sql(&body).await?;
                    let (_, failed) = bulk_counts(&answer, end - start)?;
                    if failed > 0 {
                        return Err(DriverError::new(ErrorKind::Server, format!("{failed} preload rows failed")));
                    }
                    progress.advance(end - start);
                    start = end;
                }
                http.sql(&json!({ "stmt": format!("REFRESH TABLE {}", plan.table) })).await?;
                notes.push(format!("{} rows preloaded into {}", w.preload_rows, plan.table));
            } else {
                notes.push(format!("table {} had {rows} rows before the run", plan.table));
            }
        }
        Ok(notes)
    }

    async fn teardown(
        &self,
        endpoints: &[String],
        part: &Part,
        progress: &Progress,
    ) -> Result<Vec<String>, DriverError> {
        let plan = &self.plan;
        if plan.table.is_empty() || part.agent_index != 0 {
            return Ok(Vec::new());
        }
        progress.begin(if plan.keep { "refresh table" } else { "drop table" }, "tables", 1);
        tokio::time::sleep(TEARDOWN_GRACE).await;
        let mut http =
            Statements::open(&self.endpoint(endpoints.first().map(String::as_str).unwrap_or_default())?).await?;
        if plan.keep {
            // Rows become visible to count(*) after a refresh.
            http.sql(&json!({ "stmt": format!("REFRESH TABLE {}", plan.table) })).await?;
            progress.advance(1);
            return Ok(Vec::new());
        }
        http.sql(&json!({ "stmt": format!("DROP TABLE IF EXISTS {}", plan.table) })).await?;
        progress.advance(1);
        Ok(vec![format!("table {} dropped after the run (keep: true keeps it)", plan.table)])
    }
}

/// The table's columns: name, as created, as `information_schema` names
/// its type.
fn table_columns(plan: &Plan) -> Vec<(String, String, &'static str)> {
    let fixed = [
        ("id", "TEXT PRIMARY KEY", "text"),
        ("timestamp", "TIMESTAMP WITH TIME ZONE", "timestamp with time zone"),
        ("region", "TEXT", "text"),
        ("product_category", "TEXT", "text"),
        ("event_type", "TEXT", "text"),
        ("user_id", "INTEGER", "integer"),
        ("user_segment", "TEXT", "text"),
        ("amount", "DOUBLE PRECISION", "double precision"),
        ("quantity", "INTEGER", "integer"),
        ("metadata", "OBJECT(DYNAMIC)", "object"),
    ];
    let mut columns: Vec<(String, String, &'static str)> =
        fixed.iter().map(|(name, ddl, info)| ((*name).to_string(), (*ddl).to_string(), *info)).collect();
    columns.extend((0..plan.objects).map(|i| (format!("obj_{i}"), "OBJECT(DYNAMIC)".to_string(), "object")));
    columns
}

/// A table as CrateDB describes it.
struct Shape {
    /// Top-level columns and their types, in order.
    columns: Vec<(String, String)>,
    shards: u64,
    replicas: String,
}

impl Shape {
    fn describe(&self) -> String {
        let objects = self.columns.iter().filter(|(name, _)| name.starts_with("obj_")).count();
        format!(
            "{} shards, {} replicas, {} columns ({objects} object columns obj_N)",
            self.shards,
            self.replicas,
            self.columns.len()
        )
    }
}

/// The table's shape from `information_schema`, or `None` if it does not
/// exist. Sub-columns of objects (`metadata['browser']`) are left out.
async fn describe_table(plan: &Plan, http: &mut Statements) -> Result<Option<Shape>, DriverError> {
    let tables = http
        .sql(&json!({
            "stmt": "SELECT number_of_shards, number_of_replicas FROM information_schema.tables \
                     WHERE table_schema = CURRENT_SCHEMA AND table_name = ?",
            "args": [plan.table],
        }))
        .await?;
    let Some(row) = tables.pointer("/rows/0") else { return Ok(None) };
    let shards = row.get(0).and_then(Value::as_u64).unwrap_or(0);
    let replicas = match row.get(1) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let answer = http
        .sql(&json!({
            "stmt": "SELECT column_name, data_type FROM information_schema.columns \
                     WHERE table_schema = CURRENT_SCHEMA AND table_name = ? ORDER BY ordinal_position",
            "args": [plan.table],
        }))
        .await?;
    let columns = answer
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .filter_map(|row| Some((row.get(0)?.as_str()?.to_string(), row.get(1)?.as_str()?.to_lowercase())))
                .filter(|(name, _)| !name.contains('['))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Shape { columns, shards, replicas }))
}

/// How an existing table differs from what the plan asks, one phrase per
/// difference.
fn differences(plan: &Plan, shape: &Shape) -> Vec<String> {
    let asked = table_columns(plan);
    let mut found = Vec::new();
    let missing: Vec<&str> = asked
        .iter()
        .filter(|(name, _, _)| !shape.columns.iter().any(|(n, _)| n == name))
        .map(|(name, _, _)| name.as_str())
        .collect();
    if !missing.is_empty() {
        found.push(format!("it lacks column{} {}", if missing.len() == 1 { "" } else { "s" }, missing.join(", ")));
    }
    let extra: Vec<&str> = shape
        .columns
        .iter()
        .filter(|(name, _)| !asked.iter().any(|(n, _, _)| n == name))
        .map(|(name, _)| name.as_str())
        .collect();
    if !extra.is_empty() {
        found.push(format!(
            "it has column{} {} that the scenario does not write",
            if extra.len() == 1 { "" } else { "s" },
            extra.join(", ")
        ));
    }
    for (name, _, info) in &asked {
        if let Some((_, kind)) = shape.columns.iter().find(|(n, _)| n == name)
            && kind != info
        {
            found.push(format!("column {name} is {kind}, not {info}"));
        }
    }
    if shape.shards != u64::from(plan.shards) {
        found.push(format!("it has {} shards, not {}", shape.shards, plan.shards));
    }
    if shape.replicas != plan.replicas.to_string() {
        found.push(format!("it has {} replicas, not {}", shape.replicas, plan.replicas));
    }
    found
}

/// Creates the table, or checks the one that exists against the plan:
/// refused on a difference, or dropped and created again with `recreate:
/// true`. Returns the note that describes the table as it is.
async fn prepare_table(plan: &Plan, http: &mut Statements) -> Result<String, DriverError> {
    let mut recreated = None;
    if let Some(shape) = describe_table(plan, http).await? {
        let found = differences(plan, &shape);
        if found.is_empty() {
            return Ok(format!("table {} kept as it was: {}", plan.table, shape.describe()));
        }
        if !plan.recreate {
            let recreate = if matches!(plan.workload, Workload::Records(_)) {
                "set `recreate: true` to drop it and create it as asked, "
            } else {
                ""
            };
            return Err(DriverError::new(
                ErrorKind::Server,
                format!(
                    "table {} exists and is not what the scenario asks: {}; {recreate}drop it, or name another \
                     `table:` (nothing was written)",
                    plan.table,
                    found.join("; ")
                ),
            ));
        }
        http.sql(&json!({ "stmt": format!("DROP TABLE IF EXISTS {}", plan.table) })).await?;
        recreated = Some(found.join("; "));
    }
    let columns = table_columns(plan);
    let definitions: Vec<String> = columns
        .iter()
        .map(|(name, ddl, _)| if name == "timestamp" { format!("\"{name}\" {ddl}") } else { format!("{name} {ddl}") })
        .collect();
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {} ({}) CLUSTERED INTO {} SHARDS WITH (number_of_replicas = {})",
        plan.table,
        definitions.join(", "),
        plan.shards,
        plan.replicas
    );
    http.sql(&json!({ "stmt": create })).await?;
    let shape = format!("{} shards and {} replicas ({} object columns)", plan.shards, plan.replicas, plan.objects);
    Ok(match recreated {
        Some(why) => format!("table {} dropped and created again with {shape} (recreate: true; {why})", plan.table),
        None => format!("table {} created with {shape}", plan.table),
    })
}

/// The INSERT of `count` generated records, starting at row `first` of
/// batch stream `batch`, as a bulk request.
fn insert_body(plan: &Plan, batch: u64, first: u64, count: u64, users: u64) -> Value {
    let mut columns: Vec<String> = [
        "id",
        "\"timestamp\"",
        "region",
        "product_category",
        "event_type",
        "user_id",
        "user_segment",
        "amount",
        "quantity",
        "metadata",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    columns.extend((0..plan.objects).map(|i| format!("obj_{i}")));
    let marks = vec!["?"; columns.len()].join(", ");
    let statement = format!("INSERT INTO {} ({}) VALUES ({marks})", plan.table, columns.join(", "));
    let mut rng = SmallRng::seed_from_u64(plan.seed ^ batch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ first);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let rows: Vec<Value> = (first..first + count)
        .map(|row| {
            let mut values = vec![
                json!(format!("{:08x}-{}-{batch}-{row}", plan.seed as u32, plan.agent)),
                json!(now_ms - rng.random_range(0..3_600_000)),
                json!(REGIONS[rng.random_range(0..REGIONS.len())]),
                json!(CATEGORIES[rng.random_range(0..CATEGORIES.len())]),
                json!(EVENTS[rng.random_range(0..EVENTS.len())]),
                json!(rng.random_range(0..users.max(1)) + 1),
                json!(SEGMENTS[rng.random_range(0..SEGMENTS.len())]),
                json!((rng.random_range(100..100_000) as f64) / 100.0),
                json!(rng.random_range(1..=100)),
                json!({
                    "browser": BROWSERS[rng.random_range(0..BROWSERS.len())],
                    "os": SYSTEMS[rng.random_range(0..SYSTEMS.len())],
                    "session_id": format!("{:016x}", rng.random::<u64>()),
                }),
            ];
            values.extend((0..plan.objects).map(|i| json!({ "index": i, "value": rng.random_range(0..1000) })));
            Value::Array(values)
        })
        .collect();
    json!({ "stmt": statement, "bulk_args": rows })
}

/// Rows written and rows refused in a bulk answer of `expected` rows.
fn bulk_counts(answer: &Value, expected: u64) -> Result<(u64, u64), DriverError> {
    let results = answer
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| DriverError::new(ErrorKind::Protocol, "a bulk answer without `results`"))?;
    if results.len() as u64 != expected {
        return Err(DriverError::new(
            ErrorKind::Protocol,
            format!("{} bulk results for {expected} rows", results.len()),
        ));
    }
    let mut written = 0;
    let mut failed = 0;
    for result in results {
        match result.get("rowcount").and_then(Value::as_i64) {
            Some(n) if n >= 0 => written += n as u64,
            Some(_) => failed += 1,
            None => return Err(DriverError::new(ErrorKind::Protocol, "a bulk result without `rowcount`")),
        }
    }
    Ok((written, failed))
}

impl CrateConnection {
    /// The statement an operation sends.
    fn statement(&self, operation: &Operation) -> Result<(Value, u64), DriverError> {
        let table = &self.plan.table;
        Ok(match operation.action {
            Action::Insert(batch) => {
                let size = u64::from(self.plan.batch_size);
                (insert_body(&self.plan, batch, 0, size, 10_000), size)
            }
            Action::Query(QueryKind::Bucket, _) => (
                json!({ "stmt": format!(
                    "SELECT date_trunc('hour', \"timestamp\") AS bucket, count(*), sum(amount) FROM {table} \
                     GROUP BY date_trunc('hour', \"timestamp\") ORDER BY bucket"
                ) }),
                0,
            ),
            // The newest row per region: its time, id and amount (max_by,
            // CrateDB 5.2 and later).
            Action::Query(QueryKind::LastPoint, _) => (
                json!({ "stmt": format!(
                    "SELECT region, max(\"timestamp\"), max_by(id, \"timestamp\"), max_by(amount, \"timestamp\") \
                     FROM {table} GROUP BY region ORDER BY region"
                ) }),
                0,
            ),
            Action::Query(QueryKind::Range, user) => (
                json!({
                    "stmt": format!("SELECT id, amount FROM {table} WHERE user_id = ? ORDER BY \"timestamp\" DESC LIMIT 100"),
                    "args": [user + 1],
                }),
                0,
            ),
            other => {
                return Err(DriverError::new(ErrorKind::Protocol, format!("{other:?} is not a CrateDB operation")));
            }
        })
    }

    /// Samples the node again when its gap is over (without a node header).
    async fn sample(&self, session: &mut Session) -> Result<(), DriverError> {
        session.until_sample = session.until_sample.saturating_sub(1);
        if self.plan.node_header.is_some() || session.until_sample > 0 {
            return Ok(());
        }
        session.until_sample = session.rng.random_range(SAMPLE_GAP);
        let found = probe(&mut session.link, &self.endpoint).await?;
        *self.sample.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&found.node));
        session.node = Arc::clone(&found.node);
        if !found.healthy {
            return Err(unhealthy(&self.endpoint.shown, &found.node));
        }
        Ok(())
    }
}

impl Connection for CrateConnection {
    fn node(&self) -> &str {
        &self.node
    }

    fn is_closed(&self) -> bool {
        self.state.is_closed()
    }

    fn rows_of(&self, operation: &Operation) -> u32 {
        if matches!(operation.action, Action::Insert(_)) { self.plan.batch_size } else { 0 }
    }

    fn take_sample(&self) -> Option<Arc<str>> {
        self.sample.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    async fn execute(&mut self, operation: &Operation) -> Result<Done, DriverError> {
        let (body, size) = self.statement(operation)?;
        let mut session = self.session.lock().await;
        self.sample(&mut session).await?;
        let here = |node: Option<String>, session: &Session| -> Option<Arc<str>> {
            let node: Arc<str> = node.map_or_else(|| Arc::clone(&session.node), Into::into);
            (node != self.node).then_some(node)
        };
        let (answer, served_by, [sent, received]) = match sql(&mut session.link, &self.endpoint.shown, &body).await {
            Ok(answered) => answered,
            Err(error) if error.node.is_some() => return Err(error),
            Err(error) => {
                return Err(match here(None, &session) {
                    Some(node) => error.at(node),
                    None => error,
                });
            }
        };
        if self.plan.node_header.is_some() && served_by.as_deref().is_none_or(str::is_empty) {
            let header = self.plan.node_header.as_deref().unwrap_or_default();
            return Err(DriverError::new(
                ErrorKind::Protocol,
                format!(
                    "{}: an answer without the `{header}` header that target.node_header names",
                    self.endpoint.shown
                ),
            ));
        }
        let node = here(served_by, &session);
        let mut done = if matches!(operation.action, Action::Insert(_)) {
            let (written, failed) = bulk_counts(&answer, size)?;
            // A request with refused rows counts as a server error (the
            // runner looks at `rows_failed`); its written rows still count.
            Done { rows: written as u32, rows_failed: failed as u32, ..Done::default() }
        } else {
            let rows = answer
                .get("rows")
                .and_then(Value::as_array)
                .ok_or_else(|| DriverError::new(ErrorKind::Protocol, "a query answer without `rows`"))?;
            Done { rows: rows.len() as u32, ..Done::default() }
        };
        done.node = node;
        (done.sent, done.received) = (sent, received);
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
