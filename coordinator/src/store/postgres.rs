//! `PostgresStore` (`--results postgres://...`): runs, interval reports and
//! reports in PostgreSQL, for long soaks, run history and several
//! coordinators sharing one results database.
//!
//! Tables (created when missing):
//! - `stampede_runs`: one row per run: its record (JSON), the scenario as
//!   shown and while needed as written, the report, and the bytes stored
//!   for it;
//! - `stampede_intervals`: one row per (run, agent, sequence): the interval
//!   report as protobuf (its histograms as the agent compressed them), so a
//!   resend is one primary-key conflict and a restarted coordinator merges
//!   exactly what was stored;
//! - `stampede_leader`: the term of the coordinator that may write. Every
//!   write runs in a transaction that reads the term under a share lock and
//!   refuses to write when it is not this store's: a coordinator that won a
//!   later election (a higher etcd revision) raises the term, and from then
//!   on the deposed leader's writes fail.
//!
//! sqlx is async and `RunStore` is called from the engine, so the store
//! runs its own single-threaded runtime on a thread of its own and answers
//! calls through a channel, as the etcd store does.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc as sync_mpsc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row as _, Transaction};
use tokio::sync::mpsc;

use super::{RunRecord, RunStore, StoreError, StoredInterval};

/// How long one call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS stampede_leader (
        id INT PRIMARY KEY CHECK (id = 1),
        term BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS stampede_runs (
        run_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        submitted_at_unix_s BIGINT NOT NULL,
        record TEXT NOT NULL,
        scenario TEXT NOT NULL,
        private_scenario TEXT,
        report_json TEXT,
        report_text TEXT,
        stored_bytes BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS stampede_runs_by_name ON stampede_runs (name, run_id)",
    "CREATE TABLE IF NOT EXISTS stampede_intervals (
        run_id TEXT NOT NULL REFERENCES stampede_runs (run_id) ON DELETE CASCADE,
        agent_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        report BYTEA NOT NULL,
        PRIMARY KEY (run_id, agent_id, seq))",
];

type Job = Box<dyn FnOnce(PgPool) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

pub struct PostgresStore {
    /// The URL with its password hidden, for messages.
    shown: String,
    /// This coordinator's term; `None` writes without a fence (one
    /// coordinator, no election).
    term: Option<i64>,
    jobs: mpsc::UnboundedSender<Job>,
}

fn failed(shown: &str, action: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Remote { key: format!("{shown} ({action})"), message: error.to_string() }
}

impl PostgresStore {
    /// Connects (on the store's own thread), creates the tables when
    /// missing and, with a `term`, claims it: opening fails when a later
    /// term already holds the store.
    pub fn open(url: &str, term: Option<i64>) -> Result<Self, StoreError> {
        let shown = stampede_common::scenario::redact(url);
        let options: PgConnectOptions = url.parse().map_err(|e| {
            failed(&shown, "read the URL", format!("{e}; write postgres://user:password@host:port/database"))
        })?;
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = sync_mpsc::channel::<Result<(), StoreError>>();
        let thread_shown = shown.clone();
        std::thread::Builder::new()
            .name("postgres-store".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(failed(&thread_shown, "start a runtime", error)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let pool = match connect(options, term).await {
                        Ok(pool) => pool,
                        Err(error) => {
                            let _ = ready_tx.send(Err(failed(&thread_shown, "connect", error)));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while let Some(job) = queue.recv().await {
                        job(pool.clone()).await;
                    }
                });
            })
            .map_err(|e| failed(&shown, "start a thread", e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self { shown, term, jobs }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(failed(&shown, "connect", "the store's thread stopped")),
        }
    }

    /// Runs `work` on the store's thread and waits for its answer.
    fn call<T, F, Fut>(&self, action: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(PgPool, Option<i64>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Refusal>> + Send + 'static,
    {
        let (reply, answer) = sync_mpsc::channel();
        let term = self.term;
        let job: Job = Box::new(move |pool| {
            Box::pin(async move {
                let result = match tokio::time::timeout(CALL_TIMEOUT, work(pool, term)).await {
                    Ok(result) => result,
                    Err(_) => Err(Refusal::Failed(format!("no answer within {}s", CALL_TIMEOUT.as_secs()))),
                };
                let _ = reply.send(result);
            })
        });
        let stopped = || failed(&self.shown, action, "the store's thread stopped");
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?.map_err(|refusal| match refusal {
            Refusal::Deposed(holder) => failed(
                &self.shown,
                action,
                format!(
                    "this coordinator no longer leads (its term {} is over; term {holder} holds the results store)",
                    self.term.unwrap_or_default()
                ),
            ),
            Refusal::Failed(message) => failed(&self.shown, action, message),
        })
    }
}

/// The bytes stored for a run: its rows' sizes as PostgreSQL counts them.
impl PostgresStore {
    fn bytes_of(&self, run_id: &str) -> Result<u64, StoreError> {
        let run_id = run_id.to_string();
        self.call("measure a run", move |pool, _| async move {
            let row = sqlx::query(
                "SELECT (SELECT coalesce(sum(pg_column_size(i.*)), 0) FROM stampede_intervals i WHERE i.run_id = $1) \
                 + (SELECT coalesce(sum(pg_column_size(r.*)), 0) FROM stampede_runs r WHERE r.run_id = $1) AS bytes",
            )
            .bind(&run_id)
            .fetch_one(&pool)
            .await?;
            Ok(u64::try_from(row.try_get::<i64, _>("bytes")?).unwrap_or(0))
        })
    }
}

/// Why a call did not do its work.
enum Refusal {
    /// A later term holds the store.
    Deposed(i64),
    Failed(String),
}

impl From<sqlx::Error> for Refusal {
    fn from(error: sqlx::Error) -> Self {
        Self::Failed(error.to_string())
    }
}

async fn connect(options: PgConnectOptions, term: Option<i64>) -> Result<PgPool, String> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| e.to_string())?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&pool).await.map_err(|e| format!("cannot create the tables: {e}"))?;
    }
    if let Some(term) = term {
        let row = sqlx::query(
            "INSERT INTO stampede_leader (id, term) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET term = greatest(stampede_leader.term, excluded.term) RETURNING term",
        )
        .bind(term)
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
        let holder: i64 = row.try_get("term").map_err(|e| e.to_string())?;
        if holder != term {
            return Err(format!("term {holder} holds the results store, later than this coordinator's {term}"));
        }
    }
    Ok(pool)
}

/// A transaction in which this store's term holds (no fence without a term).
async fn fenced(pool: &PgPool, term: Option<i64>) -> Result<Transaction<'static, Postgres>, Refusal> {
    let mut tx = pool.begin().await?;
    if let Some(term) = term {
        let holder: Option<i64> = sqlx::query_scalar("SELECT term FROM stampede_leader WHERE id = 1 FOR SHARE")
            .fetch_optional(&mut *tx)
            .await?;
        if holder != Some(term) {
            return Err(Refusal::Deposed(holder.unwrap_or_default()));
        }
    }
    Ok(tx)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl RunStore for PostgresStore {
    fn create(&self, record: &RunRecord, scenario_yaml: &str, private: Option<&str>) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| failed(&self.shown, "create a run", e))?;
        let (record, scenario, private) = (record.clone(), scenario_yaml.to_string(), private.map(str::to_string));
        self.call("create a run", move |pool, term| async move {
            let mut tx = fenced(&pool, term).await?;
            sqlx::query(
                "INSERT INTO stampede_runs (run_id, name, state, submitted_at_unix_s, record, scenario, private_scenario) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (run_id) DO UPDATE SET record = excluded.record, state = excluded.state, \
                 scenario = excluded.scenario, private_scenario = excluded.private_scenario",
            )
            .bind(&record.run_id)
            .bind(&record.name)
            .bind(record.state.as_str())
            .bind(record.submitted_at_unix_s)
            .bind(json)
            .bind(scenario)
            .bind(private)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn forget_private(&self, run_id: &str) -> Result<(), StoreError> {
        let run_id = run_id.to_string();
        self.call("forget a private scenario", move |pool, term| async move {
            let mut tx = fenced(&pool, term).await?;
            sqlx::query("UPDATE stampede_runs SET private_scenario = NULL WHERE run_id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn update(&self, record: &RunRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| failed(&self.shown, "update a run", e))?;
        let (run_id, state) = (record.run_id.clone(), record.state.as_str());
        self.call("update a run", move |pool, term| async move {
            let mut tx = fenced(&pool, term).await?;
            let updated = sqlx::query("UPDATE stampede_runs SET record = $2, state = $3 WHERE run_id = $1")
                .bind(&run_id)
                .bind(json)
                .bind(state)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(Refusal::Failed(format!("no run {run_id} to update")));
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn append_interval(&self, run_id: &str, interval: &StoredInterval) -> Result<(), StoreError> {
        let bytes = stampede_proto::interval::encode(&interval.report);
        let (run_id, agent_id, seq) = (run_id.to_string(), interval.agent_id.clone(), to_i64(interval.report.seq));
        self.call("store an interval report", move |pool, term| async move {
            let mut tx = fenced(&pool, term).await?;
            // A resend of a stored report changes nothing.
            sqlx::query(
                "INSERT INTO stampede_intervals (run_id, agent_id, seq, report) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_id, agent_id, seq) DO NOTHING",
            )
            .bind(run_id)
            .bind(agent_id)
            .bind(seq)
            .bind(bytes)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn save_report(&self, run_id: &str, json: &str, text: &str) -> Result<(), StoreError> {
        let (run_id, json, text) = (run_id.to_string(), json.to_string(), text.to_string());
        self.call("store a report", move |pool, term| async move {
            let mut tx = fenced(&pool, term).await?;
            sqlx::query("UPDATE stampede_runs SET report_json = $2, report_text = $3 WHERE run_id = $1")
                .bind(&run_id)
                .bind(json)
                .bind(text)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE stampede_runs SET stored_bytes = \
                 (SELECT coalesce(sum(pg_column_size(i.*)), 0) FROM stampede_intervals i WHERE i.run_id = $1) \
                 + pg_column_size(stampede_runs.*) WHERE run_id = $1",
            )
            .bind(&run_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn list(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.call("list runs", |pool, _| async move {
            let rows = sqlx::query("SELECT run_id, record FROM stampede_runs ORDER BY run_id").fetch_all(&pool).await?;
            let mut records = Vec::with_capacity(rows.len());
            for row in rows {
                let text: String = row.try_get("record")?;
                match serde_json::from_str(&text) {
                    Ok(record) => records.push(record),
                    Err(error) => {
                        let run_id: String = row.try_get("run_id")?;
                        tracing::warn!(run = %run_id, %error, "skipping unreadable run");
                    }
                }
            }
            Ok(records)
        })
    }

    fn load_scenario(&self, run_id: &str) -> Result<String, StoreError> {
        let run_id = run_id.to_string();
        self.call("read a scenario", move |pool, _| async move {
            let row =
                sqlx::query("SELECT coalesce(private_scenario, scenario) AS text FROM stampede_runs WHERE run_id = $1")
                    .bind(&run_id)
                    .fetch_optional(&pool)
                    .await?
                    .ok_or_else(|| Refusal::Failed(format!("no run {run_id}")))?;
            Ok(row.try_get("text")?)
        })
    }

    fn load_intervals(&self, run_id: &str) -> Result<Vec<StoredInterval>, StoreError> {
        let run_id = run_id.to_string();
        self.call("read interval reports", move |pool, _| async move {
            let rows = sqlx::query(
                "SELECT agent_id, seq, report FROM stampede_intervals WHERE run_id = $1 ORDER BY seq, agent_id",
            )
            .bind(&run_id)
            .fetch_all(&pool)
            .await?;
            rows.into_iter()
                .map(|row| {
                    let agent_id: String = row.try_get("agent_id")?;
                    let bytes: Vec<u8> = row.try_get("report")?;
                    let report = stampede_proto::interval::decode(&bytes).map_err(|e| {
                        Refusal::Failed(format!(
                            "interval report {agent_id}/{} is not valid: {e}",
                            row.get::<i64, _>("seq")
                        ))
                    })?;
                    Ok(StoredInterval { agent_id, report })
                })
                .collect()
        })
    }

    fn stored_bytes(&self, run_id: &str) -> Result<u64, StoreError> {
        self.bytes_of(run_id)
    }

    fn prune(&self, before_unix_s: i64) -> Result<u64, StoreError> {
        self.call("delete old runs", move |pool, term| async move {
            let mut tx = fenced(&pool, term).await?;
            let deleted = sqlx::query(
                "DELETE FROM stampede_runs WHERE submitted_at_unix_s < $1 \
                 AND state IN ('passed', 'failed', 'error', 'aborted')",
            )
            .bind(before_unix_s)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(deleted)
        })
    }

    fn load_report(&self, run_id: &str) -> Result<Option<(String, String)>, StoreError> {
        let run_id = run_id.to_string();
        self.call("read a report", move |pool, _| async move {
            let row = sqlx::query("SELECT report_json, report_text FROM stampede_runs WHERE run_id = $1")
                .bind(&run_id)
                .fetch_optional(&pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let json: Option<String> = row.try_get("report_json")?;
            let text: Option<String> = row.try_get("report_text")?;
            Ok(json.zip(text))
        })
    }
}
