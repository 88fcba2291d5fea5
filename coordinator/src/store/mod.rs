//! `RunStore`: where runs live so that nothing measured is lost when the
//! coordinator stops. Three implementations pass one suite (`suite.rs`):
//! [`FileStore`] (the default, a data directory), [`EtcdStore`] (for
//! coordinators that lead through etcd) and [`MemoryStore`] (tests).
//! A scenario with passwords is also kept as written while its run may
//! need it, that is until the run ends.

mod etcd;
mod file;
mod memory;
mod postgres;
#[cfg(test)]
mod suite;

pub use etcd::EtcdStore;
pub use file::FileStore;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use stampede_common::interval::IntervalReport;
use stampede_common::report::RunStatus;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("etcd key `{key}`: {message}")]
    Remote { key: String, message: String },
}

/// An agent taking part in a run, as recorded with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunAgent {
    pub id: String,
    pub host: String,
    pub clock_offset_us: i64,
    pub clock_rtt_us: i64,
}

/// Where a run is in its life: `queued -> preparing -> running ->` one of
/// the four ends. Stored and shown by its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Queued,
    Preparing,
    Running,
    Passed,
    Failed,
    Error,
    Aborted,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Preparing => "preparing",
            Self::Running => "running",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Error => "error",
            Self::Aborted => "aborted",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Passed | Self::Failed | Self::Error | Self::Aborted)
    }
}

impl From<RunStatus> for RunState {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Passed => Self::Passed,
            RunStatus::Failed => Self::Failed,
            RunStatus::Error => Self::Error,
            RunStatus::Aborted => Self::Aborted,
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The durable state of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub name: String,
    pub target_kind: String,
    pub state: RunState,
    pub submitted_at_unix_s: i64,
    pub agent_count: u32,
    pub endpoints: Vec<String>,
    pub agents: Vec<RunAgent>,
    pub start_at_us: Option<i64>,
    pub error: Option<String>,
    /// Each agent's part, so that a restarted coordinator can resume.
    #[serde(default)]
    pub plans: Vec<crate::scheduler::AgentPlan>,
    /// Agents that delivered their final report, with its error ("" for none).
    #[serde(default)]
    pub finals: std::collections::BTreeMap<String, String>,
    /// Agents lost during the run.
    #[serde(default)]
    pub losses: Vec<RecordedLoss>,
    /// Interval reports each agent dropped from its full buffer (agents
    /// that dropped none are absent).
    #[serde(default)]
    pub reports_dropped: std::collections::BTreeMap<String, u64>,
    /// The trace context of the run's span, so a coordinator that resumes
    /// the run continues its trace (empty when traces are not exported).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub trace_context: stampede_telemetry::TraceContext,
    /// The run ended because the store refused its writes: agents keep the
    /// reports it did not take, so their resends are not acknowledged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub store_failed: bool,
    /// The report's key figures once the run has ended, for run history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<RunFigures>,
}

/// A finished run's key figures (measured part, all operations).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RunFigures {
    pub ops: u64,
    /// Operations per second.
    pub throughput: f64,
    pub error_rate: f64,
    /// Latency from the intended start; `None` when nothing was measured.
    pub p99_us: Option<f64>,
    pub duration_s: f64,
    /// What the store holds for the run once its report is stored.
    #[serde(default)]
    pub stored_bytes: Option<u64>,
}

/// An agent's absence as the engine saw it (seconds after the start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedLoss {
    pub agent: String,
    pub lost_at_s: f64,
    pub back_at_s: Option<f64>,
}

impl RunRecord {
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}

/// An interval report with the agent that sent it, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredInterval {
    pub agent_id: String,
    pub report: IntervalReport,
}

/// Persistence of runs. Implementations must make `append_interval`
/// durable before returning: the coordinator acknowledges a report to its
/// agent only after it returns.
pub trait RunStore: Send + Sync {
    /// Stores a new run: its scenario as shown (passwords hidden) and, if
    /// that differs, as written (`private`), which `load_scenario` returns
    /// until `forget_private`.
    fn create(&self, record: &RunRecord, scenario_yaml: &str, private: Option<&str>) -> Result<(), StoreError>;
    /// Drops the scenario as written, once the run no longer needs it.
    fn forget_private(&self, run_id: &str) -> Result<(), StoreError>;
    fn update(&self, record: &RunRecord) -> Result<(), StoreError>;
    fn append_interval(&self, run_id: &str, interval: &StoredInterval) -> Result<(), StoreError>;
    fn save_report(&self, run_id: &str, json: &str, text: &str) -> Result<(), StoreError>;
    /// Keeps the run's HdrHistogram interval log beside its report, where
    /// the store has files for people to pick up (`runs/<id>/latency.hlog`);
    /// other stores make it on request from the interval reports.
    fn save_interval_log(&self, _run_id: &str, _log: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Keeps the run's HTML report beside its report where the store has
    /// files (`runs/<id>/report.html`); with other stores `stampede report
    /// RUN --html FILE` makes it from the stored JSON report.
    fn save_page(&self, _run_id: &str, _html: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether [`Self::save_interval_log`] and [`Self::save_page`] keep anything.
    fn keeps_files(&self) -> bool {
        false
    }
    fn list(&self) -> Result<Vec<RunRecord>, StoreError>;
    fn load_scenario(&self, run_id: &str) -> Result<String, StoreError>;
    /// Every stored interval of the run. An interval appended again (a
    /// resend) may come back more than once, always with the same content;
    /// merging is idempotent by (agent, seq).
    fn load_intervals(&self, run_id: &str) -> Result<Vec<StoredInterval>, StoreError>;
    /// The stored report as (json, text), if the run has one.
    fn load_report(&self, run_id: &str) -> Result<Option<(String, String)>, StoreError>;
    /// Deletes the ended runs submitted before `before_unix_s` with all
    /// they stored; returns how many.
    fn prune(&self, before_unix_s: i64) -> Result<u64, StoreError>;
    /// The bytes the store holds for a run (record, scenario, intervals,
    /// report), as near as the store can tell.
    fn stored_bytes(&self, run_id: &str) -> Result<u64, StoreError>;
}
