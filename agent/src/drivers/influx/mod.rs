//! The InfluxDB target (`kind: influx`): line protocol writes to `/write`
//! (the `write` workload) and InfluxQL reads from `/query` (the `query`
//! workload), over one HTTP/1.1 socket per connection (`http`). What takes
//! InfluxDB 1.x's `/write`, such as the RusTs time-series database, is
//! written to the same way.
//!
//! A connection's node is its endpoint, or with `target.node_header` the
//! header of that name on each answer (a balancer's or a proxy's). Opening
//! a connection asks `/ping`, so that a server which is not InfluxDB is
//! told apart at once. InfluxDB's error bodies say what went wrong: a field
//! type conflict, a database that does not exist, a request too large are
//! `server` errors with its words; lines it cannot parse are `protocol`
//! errors; a partial write counts its dropped points as refused rows.

mod lines;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;
use stampede_common::scenario::{Precision, Workload};

use super::http::{Body, Endpoint, Link, LinkState};
use super::{BuildError, Connection, Done, Driver, DriverError, DriverSpec, ErrorKind, Part, Progress};
use crate::workloads::{Action, Operation, QueryKind};
pub use lines::Points;

/// How long a setup or teardown statement may take.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Points per request when the `query` workload fills its measurement.
const PRELOAD_BATCH: u32 = 5_000;
/// Fields of the points the `query` workload preloads.
const QUERY_FIELDS: u32 = 4;

#[derive(Debug)]
enum Mode {
    Write { points: Points, batch_size: u32, precision: Precision, gzip: bool, keep: bool },
    Query { measurement: String, hosts: u64, preload_rows: u64, keep: bool },
}

#[derive(Debug)]
struct Plan {
    database: String,
    mode: Mode,
    node_header: Option<String>,
    note: String,
}

pub struct InfluxDriver {
    plan: Arc<Plan>,
}

#[derive(Clone)]
pub struct InfluxConnection {
    link: Arc<tokio::sync::Mutex<Link>>,
    state: Arc<LinkState>,
    shown: Arc<str>,
    node: Arc<str>,
    plan: Arc<Plan>,
}

fn now_ns() -> u64 {
    stampede_proto::now_unix_us().max(0) as u64 * 1_000
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl Plan {
    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        let node_header = spec.scenario.target.node_header.clone();
        let (database, mode, note) = match &spec.scenario.workload {
            Workload::Write(w) => {
                let precision = w.precision;
                let points = Points {
                    measurement: w.measurement.clone(),
                    tags: w.tags.clone(),
                    fields: w.fields,
                    start: spec.part.key_start,
                    count: spec.part.key_end.saturating_sub(spec.part.key_start).max(1),
                    base: now_ns() / (1_000_000_000 / precision.per_second()),
                    step: 1,
                    seed: spec.seed,
                };
                let tags: Vec<String> = w.tags.iter().map(|(k, n)| format!("{k}: {n}")).collect();
                let note = format!(
                    "line protocol into {}.{}: {} series ({}), {} float fields, {} points per request, precision {}{}",
                    w.database,
                    w.measurement,
                    w.series(),
                    tags.join(", "),
                    w.fields,
                    w.batch_size,
                    precision.as_str(),
                    if w.gzip { ", gzip" } else { "" }
                );
                let mode = Mode::Write { points, batch_size: w.batch_size, precision, gzip: w.gzip, keep: w.keep };
                (w.database.clone(), mode, note)
            }
            Workload::Query(w) => {
                let database = w.database.clone().unwrap_or_else(|| "stampede".to_string());
                let note = format!("InfluxQL over {database}.{} ({} hosts)", w.table, w.hosts);
                let mode = Mode::Query {
                    measurement: w.table.clone(),
                    hosts: w.hosts,
                    preload_rows: w.preload_rows,
                    keep: w.keep,
                };
                (database, mode, note)
            }
            other => {
                return Err(BuildError(format!("workload {} does not run against an influx target", other.kind())));
            }
        };
        Ok(Self { database, mode, node_header, note })
    }

    fn measurement(&self) -> &str {
        match &self.mode {
            Mode::Write { points, .. } => &points.measurement,
            Mode::Query { measurement, .. } => measurement,
        }
    }

    fn keep(&self) -> bool {
        match &self.mode {
            Mode::Write { keep, .. } | Mode::Query { keep, .. } => *keep,
        }
    }

    fn write_path(&self, precision: Precision) -> String {
        format!("/write?db={}&precision={}", encode(&self.database), precision.as_str())
    }

    fn query(&self, kind: QueryKind, host: u64) -> String {
        let m = self.measurement();
        match kind {
            QueryKind::Bucket => format!(
                "SELECT mean(usage_0) FROM \"{m}\" WHERE \"host\" = 'host_{host}' AND time > now() - 1h GROUP BY time(1m)"
            ),
            QueryKind::LastPoint => format!("SELECT last(usage_0) FROM \"{m}\" GROUP BY \"host\""),
            QueryKind::Range => {
                format!("SELECT * FROM \"{m}\" WHERE \"host\" = 'host_{host}' AND time > now() - 5m")
            }
        }
    }
}

/// What InfluxDB said in an error body (`{"error": "..."}`), or the body.
fn said(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("error").and_then(Value::as_str).map(str::to_string)
}

/// The `dropped=N` of a partial write's error.
fn dropped(message: &str) -> Option<u64> {
    let rest = &message[message.rfind("dropped=")? + "dropped=".len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// An answer that is not a success, by InfluxDB's status and words.
fn refusal(shown: &str, status: u16, body: &[u8]) -> DriverError {
    let Some(message) = said(body) else {
        let text: String = String::from_utf8_lossy(body).chars().take(120).collect();
        return DriverError::new(
            if status >= 500 { ErrorKind::Server } else { ErrorKind::Protocol },
            format!("{shown}: HTTP {status} without InfluxDB's error object: {text}"),
        );
    };
    let hint = match status {
        404 if message.contains("database not found") => " (setup creates it; was it dropped during the run?)",
        401 | 403 => " (give user:password in the endpoint URL)",
        413 => " (lower workload.batch_size)",
        _ => "",
    };
    let kind =
        if status == 400 && message.contains("unable to parse") { ErrorKind::Protocol } else { ErrorKind::Server };
    DriverError::new(kind, format!("{shown}: HTTP {status}: {message}{hint}"))
}

impl InfluxConnection {
    /// Sends one request; the answer, and the node that served it when that
    /// is not the connection's.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<(u16, Bytes, Option<Arc<str>>), DriverError> {
        let mut link = self.link.lock().await;
        let answer = link.send_as(method, path, body).await?;
        let node = match (&self.plan.node_header, answer.node) {
            (None, _) => None,
            (Some(header), None) => {
                return Err(DriverError::new(
                    ErrorKind::Protocol,
                    format!("{}: an answer without the `{header}` header that target.node_header names", self.shown),
                ));
            }
            (Some(_), Some(node)) => (*node != *self.node).then(|| node.into()),
        };
        Ok((answer.status, answer.body, node))
    }

    async fn write(&self, batch: u64) -> Result<Done, DriverError> {
        let Mode::Write { points, batch_size, precision, gzip, .. } = &self.plan.mode else {
            return Err(DriverError::new(ErrorKind::Protocol, "a write on a query connection"));
        };
        let mut text = Vec::with_capacity(*batch_size as usize * 64);
        let n = points.write(batch * u64::from(*batch_size), *batch_size, &mut text);
        let body = if *gzip {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = encoder.write_all(&text);
            let bytes = encoder.finish().map_err(|e| DriverError::new(ErrorKind::Protocol, format!("gzip: {e}")))?;
            Body { bytes: bytes.into(), content_type: "text/plain; charset=utf-8", encoding: Some("gzip") }
        } else {
            Body { bytes: text.into(), content_type: "text/plain; charset=utf-8", encoding: None }
        };
        let sent = body.bytes.len() as u32;
        let (status, answer, node) = self.send(Method::POST, &self.plan.write_path(*precision), Some(body)).await?;
        let received = answer.len() as u32;
        let at = |error: DriverError| match &node {
            Some(node) => error.at(Arc::clone(node)),
            None => error,
        };
        if status == 204 || status == 200 {
            return Ok(Done { rows: n, values: n * points.fields, node, sent, received, ..Done::default() });
        }
        let error = refusal(&self.shown, status, &answer);
        // A partial write kept the points it did not drop.
        if let Some(lost) = dropped(&error.message).filter(|lost| *lost < u64::from(n)) {
            let kept = n - lost as u32;
            return Ok(Done {
                rows: kept,
                rows_failed: lost as u32,
                values: kept * points.fields,
                said: Some(error.message),
                node,
                sent,
                received,
                ..Done::default()
            });
        }
        Err(at(error))
    }

    async fn select(&self, kind: QueryKind, host: u64) -> Result<Done, DriverError> {
        let q = self.plan.query(kind, host);
        let path = format!("/query?db={}&q={}", encode(&self.plan.database), encode(&q));
        let (status, answer, node) = self.send(Method::GET, &path, None).await?;
        let at = |error: DriverError| match &node {
            Some(node) => error.at(Arc::clone(node)),
            None => error,
        };
        if status != 200 {
            return Err(at(refusal(&self.shown, status, &answer)));
        }
        let value: Value = serde_json::from_slice(&answer).map_err(|e| {
            at(DriverError::new(ErrorKind::Protocol, format!("{}: a /query answer that is not JSON: {e}", self.shown)))
        })?;
        let results = value.get("results").and_then(Value::as_array).ok_or_else(|| {
            at(DriverError::new(ErrorKind::Protocol, format!("{}: a /query answer without `results`", self.shown)))
        })?;
        let mut rows = 0u64;
        for result in results {
            if let Some(error) = result.get("error").and_then(Value::as_str) {
                return Err(at(DriverError::new(ErrorKind::Server, format!("{}: {error}", self.shown))));
            }
            for series in result.get("series").and_then(Value::as_array).into_iter().flatten() {
                rows += series.get("values").and_then(Value::as_array).map_or(0, |v| v.len() as u64);
            }
        }
        // A GET has no body: the query travels in the path.
        let sent = path.len() as u32;
        let received = answer.len() as u32;
        Ok(Done { rows: rows.min(u64::from(u32::MAX)) as u32, node, sent, received, ..Done::default() })
    }

    /// Runs an InfluxQL statement that changes something (POST), within
    /// the statement timeout.
    async fn statement(&self, q: &str) -> Result<(), DriverError> {
        let path = format!("/query?db={}&q={}", encode(&self.plan.database), encode(q));
        let sent = tokio::time::timeout(STATEMENT_TIMEOUT, self.send(Method::POST, &path, None)).await;
        let (status, answer, _) = sent.map_err(|_| {
            DriverError::new(
                ErrorKind::Timeout,
                format!("{}: `{q}` had no answer after {STATEMENT_TIMEOUT:?}", self.shown),
            )
        })??;
        if status != 200 {
            return Err(refusal(&self.shown, status, &answer));
        }
        if let Some(error) = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|v| v["results"][0]["error"].as_str().map(str::to_string))
        {
            return Err(DriverError::new(ErrorKind::Server, format!("{}: `{q}`: {error}", self.shown)));
        }
        Ok(())
    }
}

impl InfluxDriver {
    /// Writes the `query` workload's points over the hour before now, every
    /// host in every round, unless the measurement holds points already.
    async fn preload(&self, connection: &InfluxConnection, progress: &Progress) -> Result<String, DriverError> {
        let Mode::Query { measurement, hosts, preload_rows, .. } = &self.plan.mode else { return Ok(String::new()) };
        let shown = &connection.shown;
        let have = connection.select(QueryKind::LastPoint, 0).await?;
        if have.rows > 0 {
            progress.advance(*preload_rows);
            return Ok(format!("{measurement} on {shown} already held points; none preloaded"));
        }
        let rounds = preload_rows.div_ceil(*hosts).max(1);
        let points = Points {
            measurement: measurement.clone(),
            tags: vec![("host".to_string(), *hosts)],
            fields: QUERY_FIELDS,
            start: 0,
            count: *hosts,
            base: now_ns().saturating_sub(3_600_000_000_000),
            step: 3_600_000_000_000 / rounds,
            seed: 11,
        };
        let path = self.plan.write_path(Precision::Ns);
        let mut written = 0u64;
        while written < *preload_rows {
            let n = (preload_rows - written).min(u64::from(PRELOAD_BATCH)) as u32;
            let mut text = Vec::with_capacity(n as usize * 64);
            points.write(written, n, &mut text);
            let body = Body { bytes: text.into(), content_type: "text/plain; charset=utf-8", encoding: None };
            let sent = tokio::time::timeout(STATEMENT_TIMEOUT, connection.send(Method::POST, &path, Some(body))).await;
            let (status, answer, _) = sent.map_err(|_| {
                DriverError::new(ErrorKind::Timeout, format!("{shown}: a preload write had no answer"))
            })??;
            if status != 204 && status != 200 {
                return Err(refusal(shown, status, &answer));
            }
            written += u64::from(n);
            progress.advance(u64::from(n));
        }
        Ok(format!("{written} points preloaded into {measurement} on {shown} over the last hour"))
    }
}

impl Driver for InfluxDriver {
    type Connection = InfluxConnection;

    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        Ok(Self { plan: Arc::new(Plan::build(spec)?) })
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![self.plan.note.clone()];
        if let Some(header) = &self.plan.node_header {
            notes.push(format!("node of each request: its answer's {header} header"));
        }
        notes
    }

    async fn connect(&self, endpoint: &str) -> Result<InfluxConnection, DriverError> {
        let target = Endpoint::parse(endpoint, self.plan.node_header.as_deref())?;
        let mut link = target.open().await?;
        let shown = Arc::clone(&target.shown);
        let ping =
            tokio::time::timeout(super::http::CONNECT_TIMEOUT, link.send(Method::GET, "/ping", None)).await.map_err(
                |_| DriverError::new(ErrorKind::Timeout, format!("{shown}: /ping had no answer within 5s")),
            )??;
        if ping.status != 204 {
            return Err(DriverError::new(
                ErrorKind::Protocol,
                format!(
                    "{shown}: /ping answered HTTP {}, not InfluxDB's 204; is this an InfluxDB 1.x endpoint?",
                    ping.status
                ),
            ));
        }
        let node: Arc<str> = match (&self.plan.node_header, ping.node) {
            (Some(_), Some(node)) if !node.is_empty() => node.into(),
            (Some(header), _) => {
                return Err(DriverError::new(
                    ErrorKind::Protocol,
                    format!("{shown}: /ping answered without the `{header}` header that target.node_header names"),
                ));
            }
            (None, _) => Arc::clone(&shown),
        };
        let state = link.state();
        Ok(InfluxConnection {
            link: Arc::new(tokio::sync::Mutex::new(link)),
            state,
            shown,
            node,
            plan: Arc::clone(&self.plan),
        })
    }

    /// Creates the database through every endpoint (separate servers each
    /// need it; creating one that exists changes nothing), and for the
    /// `query` workload agent 0 fills each endpoint's measurement when it
    /// is empty.
    async fn setup(&self, endpoints: &[String], part: &Part, progress: &Progress) -> Result<Vec<String>, DriverError> {
        let database = &self.plan.database;
        let mut notes = vec![format!("database {database} (created when missing)")];
        let preload = match &self.plan.mode {
            Mode::Query { preload_rows, .. } if part.agent_index == 0 && *preload_rows > 0 => Some(*preload_rows),
            _ => None,
        };
        if let Some(rows) = preload {
            progress.begin("preload", "points", rows * endpoints.len() as u64);
        }
        for endpoint in endpoints {
            let connection = self.connect(endpoint).await?;
            connection.statement(&format!("CREATE DATABASE \"{database}\"")).await?;
            if preload.is_some() {
                notes.push(self.preload(&connection, progress).await?);
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
        let _ = progress;
        if part.agent_index != 0 || self.plan.keep() {
            return Ok(Vec::new());
        }
        let measurement = self.plan.measurement();
        for endpoint in endpoints {
            let connection = self.connect(endpoint).await?;
            connection.statement(&format!("DROP MEASUREMENT \"{measurement}\"")).await?;
        }
        Ok(vec![format!("measurement {measurement} dropped after the run (keep: true keeps it)")])
    }
}

impl Connection for InfluxConnection {
    fn node(&self) -> &str {
        &self.node
    }

    fn is_closed(&self) -> bool {
        self.state.is_closed()
    }

    fn rows_of(&self, operation: &Operation) -> u32 {
        match (&self.plan.mode, operation.action) {
            (Mode::Write { batch_size, .. }, Action::Insert(_)) => *batch_size,
            _ => 0,
        }
    }

    async fn execute(&mut self, operation: &Operation) -> Result<Done, DriverError> {
        match operation.action {
            Action::Insert(batch) => self.write(batch).await,
            Action::Query(kind, host) => self.select(kind, host).await,
            other => Err(DriverError::new(
                ErrorKind::Protocol,
                format!("{other:?} is not an operation of the influx driver"),
            )),
        }
    }
}
