//! The report of a run. Its JSON form is a public contract (schema
//! `stampede.report.v1`): keys are only ever added, never renamed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::histogram::LatencySummary;
use crate::threshold::ThresholdResult;

pub const REPORT_SCHEMA: &str = "stampede.report.v1";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Ended, and every threshold held.
    Passed,
    /// Ended, and at least one threshold failed.
    Failed,
    /// Could not be carried out (for example the target was unreachable).
    Error,
    /// Cancelled by a user.
    Aborted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Error => "error",
            Self::Aborted => "aborted",
        }
    }

    /// The exit code of `stampede run` and `stampede submit --wait`.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Passed => 0,
            Self::Failed => 1,
            Self::Error | Self::Aborted => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub kind: String,
    pub endpoints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub target: TargetInfo,
    pub workload: String,
    pub load_model: String,
    pub connections: u32,
    pub pipeline: u32,
    pub rate: Option<f64>,
    /// A count-limited run's `load.operations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    pub id: String,
    pub host: String,
    pub ops: u64,
    pub errors: u64,
    pub clock_offset_us: i64,
    pub clock_rtt_us: i64,
    pub late_starts: u64,
    pub intervals: u64,
    /// Interval reports this agent measured but dropped from its full
    /// buffer (it could not deliver them for too long): their operations
    /// are missing from every figure of the report.
    #[serde(default)]
    pub reports_dropped: u64,
    /// The agent's own load: CPU, waiting, lags, and the intervals in which
    /// it, not the target, limited the load.
    #[serde(default)]
    pub generator: GeneratorReport,
    /// The open model's rate asked of this agent (null in the closed model).
    #[serde(default)]
    pub planned_rate: Option<f64>,
    /// Operations per second it measured after the warm-up.
    #[serde(default)]
    pub achieved_rate: f64,
}

/// How loaded an agent was, over the measured intervals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorReport {
    /// Percent of one core: the mean and the highest interval.
    pub cpu_percent_mean: f64,
    pub cpu_percent_max: f64,
    /// The CPU the agent could use (affinity mask, cgroup quota).
    pub cpu_available_percent: f64,
    /// Its threads waited for a CPU, percent of one core, highest interval.
    pub cpu_wait_percent_max: f64,
    /// How late its runtime woke a timer, at most.
    pub runtime_lag_us_max: u64,
    /// The largest delay between an intended start and the send.
    pub schedule_lag_us_max: u64,
    /// Mean share of time its slots spent waiting on the target.
    pub slot_occupancy_mean: f64,
    /// Its resident memory in bytes: the mean and the highest interval.
    #[serde(default)]
    pub rss_bytes_mean: u64,
    #[serde(default)]
    pub rss_bytes_max: u64,
    /// Measured intervals in which the generator limited the load.
    pub saturated_intervals: u64,
    /// Of those, per reason (`rate`, `cpu`, `cpu_wait`, `runtime_lag`,
    /// `idle_slots`; an interval can have several).
    pub reasons: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Operations measured after the warm-up, errors included.
    pub ops: u64,
    pub errors: u64,
    /// Operations per second over the measured part.
    pub throughput: f64,
    /// Requests of the open model that started later than intended
    /// (sent more than 1 ms late, or never sent).
    pub late_starts: u64,
    /// Of `late_starts`: intended starts within the run never sent.
    #[serde(default)]
    pub unsent_starts: u64,
    /// Samples above the histogram range, clamped to it.
    pub clamped: u64,
    /// Operations during the warm-up (not in the figures above).
    pub warmup_ops: u64,
    /// Measured intervals, summed over agents, in which the generator, not
    /// the target, limited the load; above 0, the run's figures are partly
    /// a statement about the generator.
    #[serde(default)]
    pub generator_saturated: u64,
    /// Bytes sent and received by the measured operations.
    #[serde(default)]
    pub transfer: Transfer,
}

/// Bytes that operations sent and received (of those that succeeded), per
/// operation and per second. MB is 10^6 bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Per operation, over the operations that succeeded.
    pub sent_per_op: f64,
    pub received_per_op: f64,
    pub sent_mb_per_s: f64,
    pub received_mb_per_s: f64,
}

impl Transfer {
    /// The figures of `sent` and `received` bytes over `succeeded`
    /// operations in `seconds`.
    pub fn of(sent: u64, received: u64, succeeded: u64, seconds: f64) -> Self {
        let per_op = |bytes: u64| if succeeded > 0 { bytes as f64 / succeeded as f64 } else { 0.0 };
        let per_s = |bytes: u64| if seconds > 0.0 { bytes as f64 / seconds / 1e6 } else { 0.0 };
        Self {
            bytes_sent: sent,
            bytes_received: received,
            sent_per_op: per_op(sent),
            received_per_op: per_op(received),
            sent_mb_per_s: per_s(sent),
            received_mb_per_s: per_s(received),
        }
    }
}

/// A step timed inside the operations (`encode`, `decode` with
/// `codec_in_path`): how often and how long, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingReport {
    pub count: u64,
    pub ns: LatencySummary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationReport {
    pub count: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub throughput: f64,
    /// Latency from the intended start (coordinated omission corrected).
    pub latency_us: LatencySummary,
    /// Time from the real send to the answer.
    pub service_time_us: LatencySummary,
    /// What the target said, per node and error kind: the first distinct
    /// messages (at most 5 per node and kind, each cut to 200 characters),
    /// most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_messages: Vec<NodeErrorMessage>,
    /// Bytes these operations sent and received.
    #[serde(default)]
    pub transfer: Transfer,
}

/// One error message of one operation at one node, and how often it came.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeErrorMessage {
    pub node: String,
    pub kind: String,
    pub message: String,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub ops: u64,
    pub errors: u64,
    /// Most connections open to the node at once (summed over agents).
    pub connections: u64,
    /// Connections opened to the node over the run.
    #[serde(default)]
    pub opened: u64,
    /// Bytes the measured operations sent to and received from the node.
    #[serde(default)]
    pub bytes_sent: u64,
    #[serde(default)]
    pub bytes_received: u64,
    /// Per operation: count, errors and latency, merged over agents.
    #[serde(default)]
    pub operations: BTreeMap<String, NodeOperationReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeOperationReport {
    pub count: u64,
    pub errors: u64,
    pub latency_us: LatencySummary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalSummary {
    pub index: u64,
    pub warmup: bool,
    pub ops: u64,
    pub errors: u64,
    pub p99_us: u64,
    pub agents: u32,
    /// Agents whose generator limited the load in this interval.
    #[serde(default)]
    pub saturated_agents: Vec<String>,
    /// The open model's planned operations per second in this interval
    /// (the rate, or the stages' mean over the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_rate: Option<f64>,
    /// Closed-model stages: the planned active connections (the interval's mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_connections: Option<f64>,
}

/// One stage of `load.stages`: what was planned and what was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// 1 for the first, as `stage(N).` thresholds count.
    pub stage: u32,
    /// Seconds since the start.
    pub from_s: f64,
    pub to_s: f64,
    /// The planned target at its start and end (ops/s, or connections).
    pub planned_from: f64,
    pub planned_to: f64,
    /// `ops/s` (open model) or `connections` (closed model).
    pub unit: String,
    /// Measured seconds in the stage (its intervals after the warm-up).
    pub measured_s: f64,
    pub ops: u64,
    pub errors: u64,
    pub throughput: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub run_id: String,
    pub scenario: ScenarioInfo,
    pub status: RunStatus,
    /// Why the run ended in `error` or `aborted`.
    pub error: Option<String>,
    pub started_at_unix_ms: i64,
    /// Measured seconds (warm-up excluded).
    pub duration_s: f64,
    pub warmup_s: f64,
    pub agents: Vec<AgentReport>,
    pub totals: Totals,
    pub operations: BTreeMap<String, OperationReport>,
    pub nodes: BTreeMap<String, NodeReport>,
    pub intervals: Vec<IntervalSummary>,
    pub thresholds: Vec<ThresholdResult>,
    /// Workload counters over the whole run, warm-up included (`rows`
    /// written, `rows_failed`, `cache_hits`, `cache_misses`, `published`,
    /// `delivered`, ...).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// The same counters per second over the measured part.
    #[serde(default)]
    pub counter_rates: BTreeMap<String, f64>,
    /// Cache hits / (hits + misses) over the measured part (`cache` workload).
    #[serde(default)]
    pub cache_hit_ratio: Option<f64>,
    /// Steps timed inside the operations (`codec_in_path`'s `encode` and
    /// `decode`), in nanoseconds, over the measured part.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timings: BTreeMap<String, TimingReport>,
    /// Facts about the target that agents reported, each once.
    #[serde(default)]
    pub notes: Vec<String>,
    /// How requests and connections spread over the backend nodes.
    #[serde(default)]
    pub distribution: Option<crate::distribution::Distribution>,
    /// Agents lost during the run: when, the intervals they missed and the
    /// operations that were not done because of it.
    #[serde(default)]
    pub agent_losses: Vec<crate::loss::AgentLoss>,
    /// `load.stages`, planned against measured, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageReport>,
    /// The merged histograms behind the figures (measured part), for
    /// percentile spectra and comparing runs; null in reports written
    /// before they were kept.
    #[serde(default)]
    pub histograms: Option<ReportHistograms>,
    /// The measured part in time windows (1 s, or longer for long runs,
    /// at most 240 windows), each with every operation's merged histograms.
    #[serde(default)]
    pub windows: Vec<ReportWindow>,
    /// The scenario as run, passwords hidden; null in reports written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_yaml: Option<String>,
}

/// One time window of the measured part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportWindow {
    /// Its first second, counted from the start (warm-up included).
    pub start_s: u64,
    pub length_s: u64,
    pub operations: BTreeMap<String, WindowOperation>,
    /// Per backend node: its requests and their latency (all operations).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, WindowNode>,
}

/// One backend node in one time window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowNode {
    pub count: u64,
    pub errors: u64,
    pub latency: EncodedHistogram,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowOperation {
    pub count: u64,
    pub errors: u64,
    pub latency: EncodedHistogram,
    pub service: EncodedHistogram,
}

/// Merged histograms, each HdrHistogram V2 + deflate in base64 (1 us to
/// 1 h, 3 significant digits), readable by HdrHistogram's libraries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportHistograms {
    /// Per operation: latency from the intended start, and service time.
    pub operations: BTreeMap<String, OperationHistograms>,
    /// Per node, per operation: latency.
    pub nodes: BTreeMap<String, BTreeMap<String, EncodedHistogram>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationHistograms {
    pub latency: EncodedHistogram,
    pub service: EncodedHistogram,
}

/// One histogram's V2 + deflate bytes (base64 in JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncodedHistogram(#[serde(with = "crate::interval::base64_bytes")] pub Vec<u8>);
