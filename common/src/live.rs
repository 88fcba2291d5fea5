//! What a run looks like while it runs: the figures the web dashboard
//! shows, pushed once per second by the coordinator.
//!
//! Two shapes: a [`LiveWindow`] is one time window of the run (the same
//! windows as the report's `windows`, each operation's and node's figures
//! from its merged histogram), and a [`LiveStatus`] is the run so far
//! (totals, thresholds so far, nodes, agents). Every figure comes from the
//! merged histograms, so the last status of a run and its report agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::threshold::ThresholdResult;

/// The latency figures of one histogram, in microseconds; all zero when it
/// holds no value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveLatency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LiveLatency {
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// One operation's or one node's part of a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveSeries {
    pub count: u64,
    pub errors: u64,
    pub latency_us: LiveLatency,
}

/// One window of the measured part of the run: `length_s` seconds from
/// `start_s` (seconds since the start, warm-up included). A window is sent
/// again while reports for it still arrive; the newer copy replaces the
/// older one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveWindow {
    pub start_s: u64,
    pub length_s: u64,
    pub operations: BTreeMap<String, LiveSeries>,
    pub nodes: BTreeMap<String, LiveSeries>,
}

/// The windows that changed since the last update. With `reset` the
/// windows became longer (neighbours were merged) and these replace every
/// window the viewer holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveWindows {
    pub reset: bool,
    pub windows: Vec<LiveWindow>,
}

/// One operation so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveOperation {
    pub count: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Operations per second over the measured time so far.
    pub throughput: f64,
    pub latency_us: LiveLatency,
}

/// One backend node so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveNode {
    pub name: String,
    pub count: u64,
    pub errors: u64,
    /// Of all requests measured so far.
    pub share: f64,
    /// The share the distribution section expects, if it names one.
    pub expected_share: Option<f64>,
}

/// One agent so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveAgent {
    pub id: String,
    pub host: String,
    /// Operations per second the agent was given (open model).
    pub planned_rate: Option<f64>,
    /// Operations per second it achieved over the measured time so far.
    pub achieved_rate: f64,
    /// Operations per second in its newest interval.
    pub current_rate: f64,
    pub ops: u64,
    pub errors: u64,
    pub late_starts: u64,
    /// From its newest interval report.
    pub schedule_lag_us: u64,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    /// Measured intervals in which its generator limited the load.
    pub saturated_intervals: u64,
}

/// The newest complete interval over all operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveInterval {
    pub index: u64,
    pub warmup: bool,
    pub ops: u64,
    pub errors: u64,
    pub latency_us: LiveLatency,
    pub saturated_agents: u32,
}

/// A run so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveStatus {
    pub run_id: String,
    pub name: String,
    /// `queued`, `preparing`, `running`, or how it ended.
    pub state: String,
    /// Seconds since the start instant, and the planned duration.
    pub elapsed_s: u64,
    pub duration_s: u64,
    pub warmup_s: u64,
    /// Operations per second: the newest interval, and the measured time
    /// so far.
    pub current_rate: f64,
    pub average_rate: f64,
    /// Measured so far (warm-up excluded).
    pub ops: u64,
    pub errors: u64,
    pub late_starts: u64,
    pub measured_s: f64,
    pub latency_us: LiveLatency,
    pub operations: BTreeMap<String, LiveOperation>,
    /// Each threshold against the figures so far.
    pub thresholds: Vec<ThresholdResult>,
    pub nodes: Vec<LiveNode>,
    pub agents: Vec<LiveAgent>,
    pub interval: Option<LiveInterval>,
    /// Agent-intervals in which the generator limited the load.
    pub generator_saturated: u64,
    /// What the run waits for or what is wrong (a store refusing writes).
    pub message: String,
    /// A count-limited run (`load.operations`): operations so far, warm-up's
    /// included, and its count; both 0 for a run limited by time only.
    #[serde(default)]
    pub operations_done: u64,
    #[serde(default)]
    pub operations_total: u64,
    /// Whether the scenario gave `duration` (a count-limited run without
    /// one has a day at most, not a planned length).
    #[serde(default = "yes")]
    pub duration_given: bool,
}

fn yes() -> bool {
    true
}
