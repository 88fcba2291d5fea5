//! PostgreSQL and TimescaleDB (sqlx), target kinds `postgres` and
//! `timescaledb`. The node behind a connection is the server's address and
//! port as the server reports them (`inet_server_addr`, `inet_server_port`).
//!
//! Workloads:
//! - `metrics`: rows in the style of a devops CPU metric (host, region,
//!   datacenter and ten usage figures per timestamp), a batch per operation,
//!   sent as one multi-row `INSERT` with bound parameters or as `COPY`;
//! - `query`: a time-bucketed aggregation, the last point per host, and a
//!   range scan of one host;
//! - `pool`: open a connection, run one query, close it.
//!
//! Agent 0 creates the table before the run (a hypertable when the
//! `timescaledb` extension is there, a plain table otherwise, and the report
//! says which) and drops it afterwards unless `keep: true`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{ConnectOptions as _, Connection as _, Row as _};
use stampede_common::Scenario;
use stampede_common::scenario::{InsertMethod, TargetKind, Workload};
use tokio::sync::Mutex;

use super::{BuildError, Connection, Done, Driver, DriverError, DriverSpec, ErrorKind, Part, Progress};
use crate::workloads::{Action, Operation, QueryKind};
use rows::{MetricRow, binary_copy, insert_statement};

mod rows;
mod timescale;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Seconds between two rows of one host in preloaded data (as in TSBS's
/// devops data).
const ROW_INTERVAL_S: i64 = 10;
/// Rows per preload statement: the progress bar moves after each.
const PRELOAD_CHUNK: u64 = 50_000;
/// How long agent 0 waits after its own end before dropping the table, so
/// that other agents' last batches land first.
const TEARDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long setup's and teardown's statements wait for a lock that another
/// session holds (PostgreSQL's `lock_timeout` on their connection).
const DDL_LOCK_TIMEOUT: &str = "15s";
/// How long dropping the table may take in all, connecting included.
const TEARDOWN_LIMIT: Duration = Duration::from_secs(60);

const REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-central-1", "ap-southeast-1"];
const USAGE: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];
/// Hostnames made ahead of time; an agent with more hosts formats the rest
/// per row.
const MAX_NAMED_HOSTS: u64 = 100_000;
/// Columns bound per row by the multi-row INSERT.
pub const COLUMNS_PER_ROW: usize = 4 + USAGE.len();

/// What every connection of a run shares.
struct Plan {
    kind: TargetKind,
    workload: Workload,
    /// The agent's hosts: `[start, start + count)`.
    host_start: u64,
    host_count: u64,
    /// Where row times come from: the clock, or a series from `base`
    /// with `step` per round of hosts.
    times: PlanTimes,
    /// The full-batch INSERT statement, built once.
    insert_sql: Arc<str>,
    /// `host_<n>` for the agent's hosts, made once (rows borrow them).
    hostnames: Vec<String>,
    /// Region plus zone letter, by `host % 12`.
    datacenters: Vec<String>,
}

/// Row times as the plan makes them.
#[derive(Debug, Clone, Copy)]
enum PlanTimes {
    Clock,
    Series { base: DateTime<Utc>, step: chrono::TimeDelta },
}

impl PlanTimes {
    fn of(workload: &Workload) -> Self {
        use stampede_common::workload::{RowTimes, SeriesStart};
        let Workload::Metrics(w) = workload else { return Self::Clock };
        match w.times {
            RowTimes::Clock => Self::Clock,
            RowTimes::Series { start, step } => {
                let base = match start {
                    SeriesStart::At(ms) => DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now),
                    SeriesStart::Before(ago) => Utc::now() - chrono::TimeDelta::from_std(ago).unwrap_or_default(),
                };
                Self::Series { base, step: chrono::TimeDelta::from_std(step).unwrap_or(chrono::TimeDelta::seconds(10)) }
            }
        }
    }
}

pub struct PostgresDriver {
    plan: Arc<Plan>,
}

fn table_of(workload: &Workload) -> Option<&str> {
    match workload {
        Workload::Metrics(w) => Some(&w.table),
        Workload::Query(w) => Some(&w.table),
        _ => None,
    }
}

fn columns() -> String {
    let mut columns = vec!["time", "hostname", "region", "datacenter"];
    columns.extend(USAGE);
    columns.join(", ")
}

impl PostgresDriver {
    fn new(scenario: &Scenario, part: &Part) -> Self {
        let (host_start, host_count) = match part.key_end.checked_sub(part.key_start) {
            Some(count) if count > 0 => (part.key_start, count),
            _ => (0, scenario.workload.key_space().max(1)),
        };
        let insert_sql = match &scenario.workload {
            Workload::Metrics(w) => insert_statement(&w.table, w.batch_size as usize).into(),
            _ => "".into(),
        };
        Self {
            plan: Arc::new(Plan {
                kind: scenario.target.kind,
                workload: scenario.workload.clone(),
                host_start,
                host_count,
                times: PlanTimes::of(&scenario.workload),
                insert_sql,
                hostnames: (host_start..host_start + host_count.min(MAX_NAMED_HOSTS))
                    .map(|h| format!("host_{h}"))
                    .collect(),
                datacenters: (0..12u64)
                    .map(|h| format!("{}{}", REGIONS[(h % 4) as usize], ["a", "b", "c"][(h % 3) as usize]))
                    .collect(),
            }),
        }
    }
}

/// Classifies an sqlx error by kind.
fn classify(error: &sqlx::Error) -> ErrorKind {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            ErrorKind::Connection
        }
        sqlx::Error::PoolTimedOut => ErrorKind::Timeout,
        sqlx::Error::Protocol(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => ErrorKind::Protocol,
        _ => ErrorKind::Server,
    }
}

fn driver_error(context: &str, error: &sqlx::Error) -> DriverError {
    DriverError::new(classify(error), format!("{context}: {error}"))
}

/// Connection options from `host:port` (user `postgres`, database
/// `postgres`) or a `postgres://` URL.
fn options(endpoint: &str) -> Result<PgConnectOptions, DriverError> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("postgres://postgres@{endpoint}/postgres")
    };
    let redacted = stampede_common::scenario::redact(&url);
    // sqlx would log each statement slower than 1 s at warn, whole: a
    // 1,000-row INSERT is a 100 KB line on stderr. How slow statements are
    // is what the report measures.
    PgConnectOptions::from_str(&url)
        .map(|o| o.application_name("stampede").disable_statement_logging())
        .map_err(|e| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{redacted}`: {e}")))
}

async fn open(endpoint: &str) -> Result<sqlx::PgConnection, DriverError> {
    let options = options(endpoint)?;
    let redacted = stampede_common::scenario::redact(endpoint);
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(driver_error(&format!("cannot connect to {redacted}"), &error)),
        Err(_) => Err(DriverError::new(ErrorKind::Timeout, format!("connecting to {redacted} took over 5s"))),
    }
}

/// The node behind a connection: the server's address and port as the
/// server sees them (behind a balancer, the backend's).
async fn identity(connection: &mut sqlx::PgConnection) -> Result<Arc<str>, DriverError> {
    let row = sqlx::query("SELECT coalesce(host(inet_server_addr()), 'local'), coalesce(inet_server_port(), 0)")
        .fetch_one(connection)
        .await
        .map_err(|e| driver_error("reading the server address", &e))?;
    let address: String = row.try_get(0).unwrap_or_default();
    let port: i32 = row.try_get(1).unwrap_or_default();
    Ok(format!("{address}:{port}").into())
}

/// Runs one statement built here from validated names (table names are
/// plain identifiers, checked when the scenario is parsed).
async fn run(connection: &mut sqlx::PgConnection, sql: String, context: &str) -> Result<u64, DriverError> {
    sqlx::query(&sql).execute(connection).await.map(|done| done.rows_affected()).map_err(|e| driver_error(context, &e))
}

/// A connection for setup and teardown: waiting for another session's lock
/// ends after [`DDL_LOCK_TIMEOUT`] with an error instead of never.
async fn open_for_ddl(endpoint: &str) -> Result<sqlx::PgConnection, DriverError> {
    let mut connection = open(endpoint).await?;
    run(&mut connection, format!("SET lock_timeout = '{DDL_LOCK_TIMEOUT}'"), "setting lock_timeout").await?;
    Ok(connection)
}

/// Says what to do when a statement gave up waiting for a lock on `table`.
fn explain_lock_wait(mut error: DriverError, table: &str) -> DriverError {
    if error.message.contains("lock timeout") {
        error.message.push_str(&format!(
            " (another session held a lock on {table} for over {DDL_LOCK_TIMEOUT}; \
             end that session, or handle {table} by hand)"
        ));
    }
    error
}

#[derive(Clone)]
pub struct PgConnection {
    connection: Arc<Mutex<sqlx::PgConnection>>,
    endpoint: Arc<str>,
    node: Arc<str>,
    plan: Arc<Plan>,
    /// The timescaledb extension is on in this database: queries use
    /// `time_bucket`.
    timescale: bool,
}

impl Driver for PostgresDriver {
    type Connection = PgConnection;

    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        Ok(Self::new(spec.scenario, spec.part))
    }

    async fn connect(&self, endpoint: &str) -> Result<PgConnection, DriverError> {
        let mut connection = open(endpoint).await?;
        let node = identity(&mut connection).await?;
        let timescale = self.plan.kind == TargetKind::Timescaledb
            && matches!(self.plan.workload, Workload::Query(_))
            && timescale::version(&mut connection).await?.is_some();
        Ok(PgConnection {
            connection: Arc::new(Mutex::new(connection)),
            endpoint: endpoint.into(),
            node,
            plan: Arc::clone(&self.plan),
            timescale,
        })
    }

    async fn setup(&self, endpoints: &[String], part: &Part, progress: &Progress) -> Result<Vec<String>, DriverError> {
        let Some(table) = table_of(&self.plan.workload) else { return Ok(Vec::new()) };
        if part.agent_index != 0 {
            return Ok(Vec::new());
        }
        progress.begin("table set-up", "steps", 0);
        let endpoint = endpoints.first().map(String::as_str).unwrap_or_default();
        let mut connection = open_for_ddl(endpoint).await?;
        let mut notes = Vec::new();
        // The cluster's system identifier tells apart servers that share an
        // address behind a proxy (replicas share their primary's). Reading
        // it may need privileges; without them the note is left out.
        let system: Option<i64> = sqlx::query_scalar("SELECT system_identifier FROM pg_control_system()")
            .fetch_optional(&mut connection)
            .await
            .ok()
            .flatten();
        if let Some(system) = system {
            let node = identity(&mut connection).await?;
            notes.push(format!("node {node}: PostgreSQL system identifier {system}"));
        }
        let mut usage_columns: Vec<String> = USAGE.iter().map(|c| format!("{c} DOUBLE PRECISION")).collect();
        usage_columns.insert(
            0,
            "time TIMESTAMPTZ NOT NULL, hostname TEXT NOT NULL, region TEXT NOT NULL, datacenter TEXT NOT NULL".into(),
        );
        let create = format!("CREATE TABLE IF NOT EXISTS {table} ({})", usage_columns.join(", "));
        run(&mut connection, create, &format!("creating table {table}"))
            .await
            .map_err(|e| explain_lock_wait(e, table))?;
        let timescale = match self.plan.kind {
            TargetKind::Timescaledb => timescale::enable(&mut connection, endpoint).await?,
            _ => timescale::Timescale::Plain("a postgres target".into()),
        };
        match timescale {
            timescale::Timescale::Active(version) => {
                let hypertable = format!("SELECT create_hypertable('{table}', 'time', if_not_exists => TRUE)");
                run(&mut connection, hypertable, &format!("making {table} a hypertable")).await?;
                notes.push(format!("table {table} is a hypertable (timescaledb {version})"));
            }
            timescale::Timescale::Plain(why) => notes.push(format!("table {table} is a plain table ({why})")),
        }
        let index = format!("CREATE INDEX IF NOT EXISTS {table}_host_time ON {table} (hostname, time DESC)");
        run(&mut connection, index, "creating the index").await.map_err(|e| explain_lock_wait(e, table))?;
        if let Workload::Query(w) = &self.plan.workload {
            let count = format!("SELECT count(*) FROM {table}");
            let rows: i64 = sqlx::query_scalar(&count)
                .fetch_one(&mut connection)
                .await
                .map_err(|e| driver_error("counting rows", &e))?;
            if rows == 0 && w.preload_rows > 0 {
                // In chunks, so that the progress bar moves; each row
                // depends on its number only, so the chunks make the same
                // rows as one statement would.
                progress.begin("preload", "rows", w.preload_rows);
                let mut first = 0;
                while first < w.preload_rows {
                    let last = (first + PRELOAD_CHUNK).min(w.preload_rows) - 1;
                    let preload = format!(
                        "INSERT INTO {table} ({}) SELECT now() - (i / {hosts}) * interval '{ROW_INTERVAL_S} seconds', \
                         'host_' || (i % {hosts}), 'region_' || (i % 4), 'dc_' || (i % 12), {} \
                         FROM generate_series({first}, {last}) AS i",
                        columns(),
                        USAGE
                            .iter()
                            .enumerate()
                            .map(|(n, _)| format!("((i * {}) % 10000) / 100.0", 7 + n))
                            .collect::<Vec<_>>()
                            .join(", "),
                        hosts = w.hosts,
                    );
                    run(&mut connection, preload, "preloading rows").await?;
                    progress.advance(last + 1 - first);
                    first = last + 1;
                }
                notes.push(format!("{} rows preloaded into {table}", w.preload_rows));
            } else {
                notes.push(format!("table {table} had {rows} rows before the run"));
            }
            run(&mut connection, format!("ANALYZE {table}"), "ANALYZE").await?;
        }
        let _ = connection.close().await;
        Ok(notes)
    }

    async fn teardown(
        &self,
        endpoints: &[String],
        part: &Part,
        progress: &Progress,
    ) -> Result<Vec<String>, DriverError> {
        let keep = match &self.plan.workload {
            Workload::Metrics(w) => w.keep,
            Workload::Query(w) => w.keep,
            _ => true,
        };
        let Some(table) = table_of(&self.plan.workload) else { return Ok(Vec::new()) };
        if keep || part.agent_index != 0 {
            return Ok(Vec::new());
        }
        progress.begin("drop table", "tables", 1);
        tokio::time::sleep(TEARDOWN_GRACE).await;
        let drop = async {
            let mut connection = open_for_ddl(endpoints.first().map(String::as_str).unwrap_or_default()).await?;
            run(&mut connection, format!("DROP TABLE IF EXISTS {table}"), &format!("dropping {table}"))
                .await
                .map_err(|e| explain_lock_wait(e, table))?;
            let _ = connection.close().await;
            Ok::<_, DriverError>(())
        };
        match tokio::time::timeout(TEARDOWN_LIMIT, drop).await {
            Ok(dropped) => {
                dropped?;
                progress.advance(1);
            }
            Err(_) => {
                return Err(DriverError::new(
                    ErrorKind::Timeout,
                    format!("dropping {table} got no answer within {}s; drop it by hand", TEARDOWN_LIMIT.as_secs()),
                ));
            }
        }
        Ok(vec![format!("table {table} dropped after the run (keep: true keeps it)")])
    }
}

impl PgConnection {
    async fn insert(&self, batch: u64) -> Result<Done, DriverError> {
        let Workload::Metrics(w) = &self.plan.workload else { return Err(unsupported("insert")) };
        let size = w.batch_size as usize;
        let first = batch * size as u64;
        // On the clock, a batch's rows end at now, a microsecond apart.
        let now = Utc::now();
        let rows: Vec<MetricRow> = (0..size as u64)
            .map(|i| {
                let clock = now - chrono::TimeDelta::microseconds((size as u64 - 1 - i) as i64);
                MetricRow::new(&self.plan, first + i, clock)
            })
            .collect();
        let mut connection = self.connection.lock().await;
        let sent;
        let written = match w.method {
            InsertMethod::Insert => {
                let plan = &*self.plan;
                let mut query = sqlx::query(&plan.insert_sql);
                // The statement and its parameters as PostgreSQL's binary
                // format carries them (8-byte timestamps and floats).
                sent = plan.insert_sql.len()
                    + rows
                        .iter()
                        .map(|row| {
                            8 + row.hostname(plan).len()
                                + row.region().len()
                                + row.datacenter(plan).len()
                                + 8 * row.usage.len()
                        })
                        .sum::<usize>();
                for row in &rows {
                    query = query.bind(row.time).bind(row.hostname(plan)).bind(row.region()).bind(row.datacenter(plan));
                    for value in row.usage {
                        query = query.bind(value);
                    }
                }
                query.execute(&mut *connection).await.map_err(|e| driver_error("insert", &e))?.rows_affected()
            }
            InsertMethod::Copy => {
                let data = binary_copy(&self.plan, &rows);
                sent = data.len();
                let statement = format!("COPY {} ({}) FROM STDIN (FORMAT binary)", w.table, columns());
                let mut copy = connection.copy_in_raw(&statement).await.map_err(|e| driver_error("COPY", &e))?;
                if let Err(error) = copy.send(data.as_slice()).await {
                    let _ = copy.abort("send failed").await;
                    return Err(driver_error("COPY", &error));
                }
                copy.finish().await.map_err(|e| driver_error("COPY", &e))?
            }
        };
        Ok(Done { rows: written.min(u64::from(u32::MAX)) as u32, sent: sent as u32, ..Done::default() })
    }

    async fn query(&self, kind: QueryKind, host: u64) -> Result<Done, DriverError> {
        let table = table_of(&self.plan.workload).ok_or_else(|| unsupported("query"))?;
        let sql = match kind {
            // TSBS's cpu-max-all shape over the last hour, per minute:
            // TimescaleDB's time_bucket on a hypertable, date_trunc else.
            QueryKind::Bucket => format!(
                "SELECT {} AS bucket, avg(usage_user), max(usage_system) FROM {table} \
                 WHERE time > now() - interval '1 hour' GROUP BY bucket ORDER BY bucket",
                if self.timescale { "time_bucket('1 minute', time)" } else { "date_trunc('minute', time)" }
            ),
            QueryKind::LastPoint => format!(
                "SELECT DISTINCT ON (hostname) hostname, time, usage_user FROM {table} ORDER BY hostname, time DESC"
            ),
            QueryKind::Range => format!(
                "SELECT time, usage_user, usage_system FROM {table} WHERE hostname = $1 \
                 AND time > now() - interval '1 hour' ORDER BY time DESC LIMIT 100"
            ),
        };
        let mut query = sqlx::query(&sql);
        if kind == QueryKind::Range {
            query = query.bind(format!("host_{host}"));
        }
        let mut connection = self.connection.lock().await;
        let rows: Vec<PgRow> = query.fetch_all(&mut *connection).await.map_err(|e| driver_error("query", &e))?;
        let sent = sql.len() + if kind == QueryKind::Range { format!("host_{host}").len() } else { 0 };
        Ok(Done { rows: rows.len() as u32, sent: sent as u32, received: row_bytes(&rows), ..Done::default() })
    }

    async fn cycle(&self) -> Result<Done, DriverError> {
        let Workload::Pool(w) = &self.plan.workload else { return Err(unsupported("cycle")) };
        let mut connection = open(&self.endpoint).await?;
        // The pool query is the user's own SQL from the scenario; each new
        // connection also asks which node it reached (one more query), so
        // that a balancer's choice per connection is attributed.
        let result = run(&mut connection, w.query.clone(), "pool query").await;
        let node = identity(&mut connection).await;
        let closed = connection.close().await.map_err(|e| driver_error("closing", &e));
        result?;
        let node = node?;
        closed?;
        // The pool query's text; its answer is not read back.
        Ok(Done { node: Some(node), sent: w.query.len() as u32, ..Done::default() })
    }
}

/// The bytes of the values in `rows`, as the server sent them.
fn row_bytes(rows: &[PgRow]) -> u32 {
    use sqlx::{Row, ValueRef};
    let mut bytes = 0usize;
    for row in rows {
        for i in 0..row.len() {
            if let Ok(value) = row.try_get_raw(i)
                && !value.is_null()
            {
                bytes += value.as_bytes().map_or(0, <[u8]>::len);
            }
        }
    }
    bytes.min(u32::MAX as usize) as u32
}

fn unsupported(what: &str) -> DriverError {
    DriverError::new(ErrorKind::Protocol, format!("{what} is not an operation of this workload"))
}

impl Connection for PgConnection {
    fn node(&self) -> &str {
        &self.node
    }

    fn rows_of(&self, operation: &Operation) -> u32 {
        match (&self.plan.workload, operation.action) {
            (Workload::Metrics(w), Action::Insert(_)) => w.batch_size,
            _ => 0,
        }
    }

    async fn execute(&mut self, operation: &Operation) -> Result<Done, DriverError> {
        match operation.action {
            Action::Insert(batch) => self.insert(batch).await,
            Action::Query(kind, host) => self.query(kind, host).await,
            Action::Cycle => self.cycle().await,
            other => Err(unsupported(&format!("{other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests;
