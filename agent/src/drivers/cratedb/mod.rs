//! CrateDB over its HTTP endpoint (reqwest), target kind `cratedb`.
//!
//! Requests follow CrateDB's documented `/_sql` format: a JSON body with
//! `stmt` and either `args` (one row) or `bulk_args` (many rows); answers
//! carry `cols`, `rows`, `rowcount` and `duration`, bulk answers a `results`
//! array with one `rowcount` per row (`-2` for a row that failed), and
//! errors an `error` object with `message` and `code`. The node is the
//! `name` that `GET /` returns; HTTP balancers may route each request
//! elsewhere, so the node is sampled once per connection.
//!
//! Endpoints are `host:port` or `http(s)://user:password@host:port`;
//! credentials become basic authentication.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use stampede_common::Scenario;
use stampede_common::scenario::Workload;

use super::{BuildError, Connection, Done, Driver, DriverError, DriverSpec, ErrorKind, Part, Progress};
use crate::workloads::{Action, Operation, QueryKind};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows per bulk request when the query workload preloads its table.
const PRELOAD_CHUNK: u64 = 1000;
const TEARDOWN_GRACE: Duration = Duration::from_secs(2);

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
    seed: u64,
    /// Row ids of this agent start with it, so agents never collide.
    agent: u32,
}

pub struct CrateDriver {
    plan: Arc<Plan>,
}

impl CrateDriver {
    fn new(scenario: &Scenario, part: &Part, seed: u64) -> Self {
        let (table, batch_size, objects, replicas, shards, keep) = match &scenario.workload {
            Workload::Records(w) => (w.table.clone(), w.batch_size, w.objects, w.number_of_replicas, w.shards, w.keep),
            Workload::Query(w) => (w.table.clone(), 0, 0, 0, 4, w.keep),
            _ => (String::new(), 0, 0, 0, 1, true),
        };
        Self {
            plan: Arc::new(Plan {
                workload: scenario.workload.clone(),
                table,
                batch_size,
                objects,
                replicas,
                shards,
                keep,
                seed,
                agent: part.agent_index,
            }),
        }
    }
}

/// Where and how to send requests.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
    credentials: Option<(String, Option<String>)>,
    /// The endpoint without its password, for messages.
    shown: Arc<str>,
}

impl Http {
    fn new(endpoint: &str) -> Result<Self, DriverError> {
        let shown: Arc<str> = stampede_common::scenario::redact(endpoint).into();
        let text = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
        let mut url = url::Url::parse(&text)
            .map_err(|e| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{shown}`: {e}")))?;
        let credentials = (!url.username().is_empty()).then(|| {
            let decode = stampede_common::endpoint::percent_decode;
            (decode(url.username()), url.password().map(decode))
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let base = url.as_str().trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| DriverError::new(ErrorKind::Connection, format!("HTTP client for {shown}: {e}")))?;
        Ok(Self { client, base, credentials, shown })
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, password.as_deref()),
            None => request,
        }
    }

    fn transport_error(&self, error: &reqwest::Error) -> DriverError {
        let kind = if error.is_timeout() {
            ErrorKind::Timeout
        } else if error.is_connect() || error.is_request() {
            ErrorKind::Connection
        } else if error.is_decode() {
            ErrorKind::Protocol
        } else {
            ErrorKind::Connection
        };
        // reqwest's own message leaves the cause (a refused connection, a
        // certificate the system does not trust) to its sources.
        let mut message = format!("{}: {error}", self.shown);
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        if message.contains("certificate") {
            message.push_str(" (the system's CA store decides; for a private CA set SSL_CERT_FILE to its PEM file)");
        }
        DriverError::new(kind, message)
    }

    /// Sends one `/_sql` request and returns the answer's JSON.
    async fn sql(&self, body: &Value) -> Result<Value, DriverError> {
        let request = self.authorize(self.client.post(format!("{}/_sql", self.base)).json(body));
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport_error(&e))?;
        let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
            DriverError::new(
                ErrorKind::Protocol,
                format!("{}: HTTP {status} with a body that is not JSON: {e}", self.shown),
            )
        })?;
        if let Some(error) = answer.get("error") {
            return Err(crate_error(status.as_u16(), error));
        }
        if !status.is_success() {
            return Err(DriverError::new(
                ErrorKind::Server,
                format!("{}: HTTP {status} without an error object", self.shown),
            ));
        }
        Ok(answer)
    }
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

/// The node name from CrateDB's root endpoint (`GET /`), and whether the
/// node says it is healthy (`"ok": true`; an unhealthy one answers 503 and
/// `"ok": false`).
async fn probe(http: &Http) -> Result<(Arc<str>, bool), DriverError> {
    let root = async {
        let response = http
            .authorize(http.client.get(format!("{}/", http.base)))
            .send()
            .await
            .map_err(|e| http.transport_error(&e))?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(|e| {
            DriverError::new(
                ErrorKind::Protocol,
                format!("{}: GET / answered HTTP {status}, not JSON: {e}", http.shown),
            )
        })?;
        if let Some(error) = answer.get("error") {
            return Err(crate_error(status.as_u16(), error));
        }
        Ok::<_, DriverError>((answer, status.as_u16()))
    };
    let (answer, status) = tokio::time::timeout(CONNECT_TIMEOUT, root)
        .await
        .map_err(|_| DriverError::new(ErrorKind::Timeout, format!("connecting to {} took over 5s", http.shown)))??;
    let node = answer.get("name").and_then(Value::as_str).unwrap_or(&http.shown).to_string();
    let healthy = status != 503 && answer.get("ok").and_then(Value::as_bool) != Some(false);
    Ok((node.into(), healthy))
}

/// The error of a node that says it is not healthy.
fn unhealthy(http: &Http, node: &Arc<str>) -> DriverError {
    DriverError::new(
        ErrorKind::Server,
        format!(
            "CrateDB node {node} at {} says it is not healthy (GET / answered HTTP 503, \"ok\": false); \
             see its log and `SELECT * FROM sys.checks WHERE NOT passed`",
            http.shown
        ),
    )
    .at(Arc::clone(node))
}

/// The node requests are counted against, renewed every `SAMPLE_EVERY`.
struct Sampled {
    operations: AtomicU64,
    node: Mutex<Arc<str>>,
}

/// Requests per connection between two `GET /` samples of the node.
const SAMPLE_EVERY: u64 = 32;

#[derive(Clone)]
pub struct CrateConnection {
    http: Http,
    node: Arc<str>,
    sampled: Arc<Sampled>,
    plan: Arc<Plan>,
}

impl Driver for CrateDriver {
    type Connection = CrateConnection;

    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        Ok(Self::new(spec.scenario, spec.part, spec.seed))
    }

    async fn connect(&self, endpoint: &str) -> Result<CrateConnection, DriverError> {
        let http = Http::new(endpoint)?;
        let (node, healthy) = probe(&http).await?;
        if !healthy {
            return Err(unhealthy(&http, &node));
        }
        let sampled = Arc::new(Sampled { operations: AtomicU64::new(0), node: Mutex::new(Arc::clone(&node)) });
        Ok(CrateConnection { http, node, sampled, plan: Arc::clone(&self.plan) })
    }

    async fn setup(&self, endpoints: &[String], part: &Part, progress: &Progress) -> Result<Vec<String>, DriverError> {
        let plan = &self.plan;
        if plan.table.is_empty() || part.agent_index != 0 {
            return Ok(Vec::new());
        }
        progress.begin("table set-up", "steps", 0);
        let http = Http::new(endpoints.first().map(String::as_str).unwrap_or_default())?;
        let mut columns = vec![
            "id TEXT PRIMARY KEY",
            "\"timestamp\" TIMESTAMP WITH TIME ZONE",
            "region TEXT",
            "product_category TEXT",
            "event_type TEXT",
            "user_id INTEGER",
            "user_segment TEXT",
            "amount DOUBLE PRECISION",
            "quantity INTEGER",
            "metadata OBJECT(DYNAMIC)",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        columns.extend((0..plan.objects).map(|i| format!("obj_{i} OBJECT(DYNAMIC)")));
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} ({}) CLUSTERED INTO {} SHARDS WITH (number_of_replicas = {})",
            plan.table,
            columns.join(", "),
            plan.shards,
            plan.replicas
        );
        http.sql(&json!({ "stmt": create })).await?;
        let mut notes = vec![
            format!(
                "table {} with {} shards and {} replicas ({} object columns)",
                plan.table, plan.shards, plan.replicas, plan.objects
            ),
            format!(
                "cratedb nodes are sampled: GET / every {SAMPLE_EVERY} requests per connection names the node \
                 that requests are counted against until the next sample (an HTTP balancer may route each request)"
            ),
        ];
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
        let http = Http::new(endpoints.first().map(String::as_str).unwrap_or_default())?;
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
    async fn insert(&self, batch: u64) -> Result<Done, DriverError> {
        let size = u64::from(self.plan.batch_size);
        let body = insert_body(&self.plan, batch, 0, size, 10_000);
        let answer = self.http.sql(&body).await?;
        let (written, failed) = bulk_counts(&answer, size)?;
        // A request with refused rows counts as a server error (the runner
        // looks at `rows_failed`); its written rows still count.
        Ok(Done { rows: written as u32, rows_failed: failed as u32, ..Done::default() })
    }

    async fn query(&self, kind: QueryKind, user: u64) -> Result<Done, DriverError> {
        let table = &self.plan.table;
        let body = match kind {
            QueryKind::Bucket => json!({ "stmt": format!(
                "SELECT date_trunc('hour', \"timestamp\") AS bucket, count(*), sum(amount) FROM {table} \
                 GROUP BY date_trunc('hour', \"timestamp\") ORDER BY bucket"
            ) }),
            QueryKind::LastPoint => {
                json!({ "stmt": format!("SELECT region, max(\"timestamp\") FROM {table} GROUP BY region ORDER BY region") })
            }
            QueryKind::Range => json!({
                "stmt": format!("SELECT id, amount FROM {table} WHERE user_id = ? ORDER BY \"timestamp\" DESC LIMIT 100"),
                "args": [user + 1],
            }),
        };
        let answer = self.http.sql(&body).await?;
        let rows = answer
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| DriverError::new(ErrorKind::Protocol, "a query answer without `rows`"))?;
        Ok(Done { rows: rows.len() as u32, ..Done::default() })
    }
}

impl Connection for CrateConnection {
    fn node(&self) -> &str {
        &self.node
    }

    async fn execute(&mut self, operation: &Operation) -> Result<Done, DriverError> {
        // An HTTP balancer may send every request elsewhere: sample the node.
        // A node that says it is unhealthy fails the operation, counted
        // against it.
        if self.sampled.operations.fetch_add(1, Ordering::Relaxed) % SAMPLE_EVERY == SAMPLE_EVERY - 1
            && let Ok((node, healthy)) = probe(&self.http).await
        {
            if !healthy {
                return Err(unhealthy(&self.http, &node));
            }
            *self.sampled.node.lock().unwrap_or_else(PoisonError::into_inner) = node;
        }
        let mut done = match operation.action {
            Action::Insert(batch) => self.insert(batch).await,
            Action::Query(kind, user) => self.query(kind, user).await,
            other => Err(DriverError::new(ErrorKind::Protocol, format!("{other:?} is not a CrateDB operation"))),
        }?;
        let node = Arc::clone(&self.sampled.node.lock().unwrap_or_else(PoisonError::into_inner));
        if *node != *self.node {
            done.node = Some(node);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
