//! Merging agents' interval reports: histograms are added (never averaged)
//! per operation, per node, per interval and for the whole run; thresholds
//! are evaluated over the merged result. Pure data in, data out: it neither
//! persists nor touches the network.
//!
//! Merging is idempotent by (agent, sequence): an agent that resends after
//! a reconnect never counts twice.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use stampede_common::Scenario;
use stampede_common::distribution::{self, Distribution, Observations};
use stampede_common::histogram::{self, Dense, HistogramError, LatencySummary, Sparse};
use stampede_common::interval::{Counter, ErrorMessage, IntervalReport, add_error_message};
use stampede_common::report::{
    AgentReport, IntervalSummary, NodeErrorMessage, NodeOperationReport, NodeReport, OperationReport, REPORT_SCHEMA,
    Report, RunStatus, ScenarioInfo, TargetInfo, TimingReport, Totals, Transfer,
};
use stampede_common::scenario::LoadModel;
use stampede_common::threshold::ThresholdResult;

/// Interval histograms kept in full (the newest seconds); older intervals
/// keep only their p99, so memory stays flat however long the run. A report
/// that arrives later still counts in every other figure (totals, windows,
/// histograms), only not in its second's `intervals[].p99_us`.
const INTERVAL_HISTOGRAMS_KEPT: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("report {seq} from agent {agent} has a bad histogram for operation {operation}: {source}")]
    BadHistogram { agent: String, seq: u64, operation: String, source: HistogramError },
}

/// Whether a report was new or already merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    Merged,
    Duplicate,
}

/// A new report's histograms, decoded and checked: what [`RunAggregate::apply`]
/// adds. Made by [`RunAggregate::check`], so a report can be stored between
/// the check and the merge.
pub struct Checked {
    histograms: Vec<(Sparse, Sparse)>,
    timings: Vec<Sparse>,
}

struct OperationAggregate {
    count: u64,
    errors_by_kind: BTreeMap<String, u64>,
    latency: Dense,
    service: Dense,
    /// Per node: the first distinct error messages of each kind.
    messages: BTreeMap<String, Vec<ErrorMessage>>,
    bytes_sent: u64,
    bytes_received: u64,
}

impl Default for OperationAggregate {
    fn default() -> Self {
        Self {
            count: 0,
            errors_by_kind: BTreeMap::new(),
            latency: Dense::new(),
            service: Dense::new(),
            messages: BTreeMap::new(),
            bytes_sent: 0,
            bytes_received: 0,
        }
    }
}

impl OperationAggregate {
    fn errors(&self) -> u64 {
        self.errors_by_kind.values().sum()
    }

    /// Every node's messages, most frequent first.
    fn error_messages(&self) -> Vec<NodeErrorMessage> {
        let mut all: Vec<NodeErrorMessage> = self
            .messages
            .iter()
            .flat_map(|(node, list)| {
                list.iter().map(|m| NodeErrorMessage {
                    node: node.clone(),
                    kind: m.kind.clone(),
                    message: m.message.clone(),
                    count: m.count,
                })
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.message.cmp(&b.message)));
        all
    }
}

#[derive(Default, Clone)]
struct AgentAggregate {
    ops: u64,
    errors: u64,
    late_starts: u64,
    intervals: u64,
    /// Operations and intervals after the warm-up.
    measured_ops: u64,
    measured_intervals: u64,
    /// Its newest interval report, for live views.
    newest: Option<AgentNewest>,
    /// When its load ended before the time limit (a count-limited run's
    /// part done), microseconds from the start instant.
    load_end_us: Option<u64>,
    /// Its operations by operation name, warm-up's included (what a
    /// per-operation count leaves it when it rejoins).
    by_operation: BTreeMap<String, u64>,
}

/// What an agent's newest interval report said of its own load.
#[derive(Default, Clone, Copy)]
struct AgentNewest {
    interval: u64,
    ops: u64,
    cpu_percent: f64,
    rss_bytes: u64,
    schedule_lag_us: u64,
}

struct IntervalAggregate {
    warmup: bool,
    ops: u64,
    errors: u64,
    agents: BTreeSet<String>,
    latency: Option<Dense>,
    frozen_p99: u64,
}

/// The merged state of one run.
pub struct RunAggregate {
    warmup_intervals: u64,
    seen: HashSet<(String, u64)>,
    operations: BTreeMap<String, OperationAggregate>,
    overall: Dense,
    nodes: BTreeMap<String, NodeReport>,
    /// Open connections per (interval, node), summed over agents; a node's
    /// connection count is the largest of these sums.
    node_connections: BTreeMap<(u64, String), u64>,
    agents: BTreeMap<String, AgentAggregate>,
    intervals: BTreeMap<u64, IntervalAggregate>,
    warmup_ops: u64,
    late_starts: u64,
    unsent_starts: u64,
    clamped: u64,
    counters: BTreeMap<String, u64>,
    measured_counters: BTreeMap<String, u64>,
    notes: BTreeSet<String>,
    /// Node identity -> reported name (`target.nodes`).
    node_names: BTreeMap<String, String>,
    /// Measured requests per (node, operation), with their histograms.
    node_operations: BTreeMap<(String, String), OperationAggregate>,
    /// The distribution analysis' inputs.
    observations: Observations,
    generator: generator::GeneratorAggregate,
    windows: windows::Windows,
    /// `load.stages`: figures per stage.
    stages: Option<stages::StageAggregates>,
    /// The open model's constant rate, for each interval's planned rate.
    rate: Option<f64>,
    /// Steps timed inside the operations (nanoseconds), measured part.
    timings: BTreeMap<String, Dense>,
}

/// A one-interval view for live progress.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalView {
    pub index: u64,
    pub warmup: bool,
    pub ops: u64,
    pub p99_us: u64,
    pub agents: u32,
    /// Agents whose generator limited the load in this interval.
    pub saturated_agents: u32,
}

/// What the aggregator needs to know about the run to write its report.
pub use live::LiveContext;

pub struct ReportContext<'a> {
    pub run_id: &'a str,
    pub scenario: &'a Scenario,
    pub endpoints: &'a [String],
    pub started_at_unix_ms: i64,
    /// (id, host, clock offset, clock rtt) of each agent of the run.
    pub agents: &'a [(String, String, i64, i64)],
    /// `None` when the run completed; otherwise how it ended and why.
    pub failure: Option<(RunStatus, String)>,
    /// Agents lost during the run.
    pub losses: &'a [crate::store::RecordedLoss],
    /// Interval reports each agent dropped undelivered.
    pub reports_dropped: &'a BTreeMap<String, u64>,
    /// Each agent's part (its planned rate).
    pub plans: &'a [crate::scheduler::AgentPlan],
}

impl RunAggregate {
    /// `warmup_intervals`: the first intervals that are excluded from results.
    pub fn new(warmup_intervals: u64) -> Self {
        Self {
            warmup_intervals,
            seen: HashSet::new(),
            operations: BTreeMap::new(),
            overall: Dense::new(),
            nodes: BTreeMap::new(),
            node_connections: BTreeMap::new(),
            agents: BTreeMap::new(),
            intervals: BTreeMap::new(),
            warmup_ops: 0,
            late_starts: 0,
            unsent_starts: 0,
            clamped: 0,
            counters: BTreeMap::new(),
            measured_counters: BTreeMap::new(),
            notes: BTreeSet::new(),
            node_names: BTreeMap::new(),
            node_operations: BTreeMap::new(),
            observations: Observations::default(),
            generator: generator::GeneratorAggregate::default(),
            windows: windows::Windows::new(),
            stages: None,
            rate: None,
            timings: BTreeMap::new(),
        }
    }

    /// Knows the run's load plan: its stages (figures per stage, `stage(N).`
    /// thresholds) and what each interval planned.
    pub fn planned(mut self, load: &stampede_common::scenario::Load) -> Self {
        let open = matches!(load.model, stampede_common::scenario::LoadModel::Open { .. });
        self.stages = load.stages.clone().map(|stages| stages::StageAggregates::new(stages, open));
        if let stampede_common::scenario::LoadModel::Open { rate, .. } = load.model {
            self.rate = Some(rate);
        }
        self
    }

    /// The planned rate (open model) and connections (closed-model stages)
    /// of an interval.
    fn planned_in(&self, index: u64) -> (Option<f64>, Option<f64>) {
        let (a, b) = (index as f64, index as f64 + 1.0);
        match (&self.stages, self.rate) {
            (Some(stages), Some(_)) => (Some(stages.stages().mean(a, b)), None),
            (Some(stages), None) => (None, Some(stages.stages().mean(a, b))),
            (None, rate) => (rate, None),
        }
    }

    /// Reports nodes under these names (identity -> name) instead of their
    /// identities.
    pub fn naming(mut self, names: BTreeMap<String, String>) -> Self {
        self.node_names = names;
        self
    }

    fn name_of(&self, identity: &str) -> String {
        name_of(&self.node_names, identity)
    }

    /// Merges one report. A report with a corrupt histogram is refused whole,
    /// so nothing of it is counted.
    pub fn merge(&mut self, agent: &str, report: &IntervalReport) -> Result<MergeOutcome, AggregateError> {
        match self.check(agent, report)? {
            None => Ok(MergeOutcome::Duplicate),
            Some(checked) => {
                self.apply(agent, report, checked);
                Ok(MergeOutcome::Merged)
            }
        }
    }

    /// Adds a note of the coordinator's own to the report.
    pub fn note(&mut self, note: String) {
        self.notes.insert(note);
    }

    /// Whether the report from `agent` with sequence `seq` was merged.
    pub fn contains(&self, agent: &str, seq: u64) -> bool {
        self.seen.contains(&(agent.to_string(), seq))
    }

    /// How many of the reports `seqs` from `agent` were merged.
    pub fn count_merged(&self, agent: &str, seqs: std::ops::Range<u64>) -> u64 {
        seqs.filter(|seq| self.contains(agent, *seq)).count() as u64
    }

    /// Checks a report without merging it: `None` for a duplicate of one
    /// merged before, an error for a corrupt histogram (nothing of the
    /// report may be counted), otherwise what [`Self::apply`] adds.
    pub fn check(&self, agent: &str, report: &IntervalReport) -> Result<Option<Checked>, AggregateError> {
        if self.contains(agent, report.seq) {
            return Ok(None);
        }
        let mut decoded = Vec::with_capacity(report.operations.len());
        for stats in &report.operations {
            let bad = |source| AggregateError::BadHistogram {
                agent: agent.to_string(),
                seq: report.seq,
                operation: stats.operation.clone(),
                source,
            };
            // Only the recorded buckets: a report's histograms are added
            // into several merged ones, and a dense copy of each would cost
            // a pass over all its ~23,000 counts every time (sparse.rs).
            let latency = histogram::decode_sparse(&stats.latency).map_err(bad)?;
            let service = histogram::decode_sparse(&stats.service).map_err(bad)?;
            decoded.push((latency, service));
        }
        let mut timings = Vec::with_capacity(report.timings.len());
        for timing in &report.timings {
            let bad = |source| AggregateError::BadHistogram {
                agent: agent.to_string(),
                seq: report.seq,
                operation: timing.name.clone(),
                source,
            };
            timings.push(histogram::decode_sparse(&timing.histogram).map_err(bad)?);
        }
        Ok(Some(Checked { histograms: decoded, timings }))
    }

    /// Merges a report [`Self::check`] accepted.
    pub fn apply(&mut self, agent: &str, report: &IntervalReport, checked: Checked) {
        if !self.seen.insert((agent.to_string(), report.seq)) {
            return;
        }
        let decoded = checked.histograms;
        let warmup = report.interval < self.warmup_intervals;
        let interval = self.intervals.entry(report.interval).or_insert_with(|| IntervalAggregate {
            warmup,
            ops: 0,
            errors: 0,
            agents: BTreeSet::new(),
            latency: Some(Dense::new()),
            frozen_p99: 0,
        });
        interval.agents.insert(agent.to_string());
        let agent_entry = self.agents.entry(agent.to_string()).or_default();
        agent_entry.intervals += 1;
        agent_entry.measured_intervals += u64::from(!warmup);
        agent_entry.late_starts += report.late_starts;
        if report.load_end_us > 0 {
            agent_entry.load_end_us = Some(report.load_end_us);
        }
        if agent_entry.newest.is_none_or(|n| n.interval <= report.interval) {
            agent_entry.newest = Some(AgentNewest {
                interval: report.interval,
                ops: report.operations.iter().map(|s| s.count).sum(),
                cpu_percent: report.cpu_percent,
                rss_bytes: report.rss_bytes,
                schedule_lag_us: report.max_schedule_lag_us,
            });
        }
        for (stats, (latency, service)) in report.operations.iter().zip(decoded) {
            let errors = stats.error_count();
            interval.ops += stats.count;
            interval.errors += errors;
            if let Some(h) = interval.latency.as_mut() {
                h.add(&latency);
            }
            agent_entry.ops += stats.count;
            match agent_entry.by_operation.get_mut(&stats.operation) {
                Some(n) => *n += stats.count,
                None => {
                    agent_entry.by_operation.insert(stats.operation.clone(), stats.count);
                }
            }
            agent_entry.errors += errors;
            if !warmup {
                agent_entry.measured_ops += stats.count;
            }
            if warmup {
                self.warmup_ops += stats.count;
                continue;
            }
            let op = self.operations.entry(stats.operation.clone()).or_default();
            op.count += stats.count;
            op.bytes_sent += stats.bytes_sent;
            op.bytes_received += stats.bytes_received;
            for (kind, n) in &stats.errors {
                *op.errors_by_kind.entry(kind.clone()).or_default() += n;
            }
            op.latency.add(&latency);
            op.service.add(&service);
            self.overall.add(&latency);
            if let Some(stages) = self.stages.as_mut() {
                stages.add(report.interval, &stats.operation, &stats.errors, stats.count, &latency);
            }
            let name = name_of(&self.node_names, &stats.node);
            if !stats.error_messages.is_empty() {
                let list = op.messages.entry(name.clone()).or_default();
                for m in &stats.error_messages {
                    add_error_message(list, &m.kind, &m.message, m.count);
                }
            }
            self.windows.add(report.interval, (&stats.operation, &name), stats.count, errors, (&latency, &service));
            let node_op = self.node_operations.entry((name.clone(), stats.operation.clone())).or_default();
            node_op.count += stats.count;
            for (kind, n) in &stats.errors {
                *node_op.errors_by_kind.entry(kind.clone()).or_default() += n;
            }
            node_op.latency.add(&latency);
            *self.observations.requests.entry(agent.to_string()).or_default().entry(name.clone()).or_default() +=
                stats.count;
            *self.observations.intervals.entry(report.interval).or_default().entry(name.clone()).or_default() +=
                stats.count;
            let node = self.nodes.entry(name).or_default();
            node.ops += stats.count;
            node.errors += errors;
            node.bytes_sent += stats.bytes_sent;
            node.bytes_received += stats.bytes_received;
            self.clamped += stats.clamped;
        }
        if !warmup {
            for (timing, histogram) in report.timings.iter().zip(checked.timings) {
                match self.timings.get_mut(&timing.name) {
                    Some(merged) => merged.add(&histogram),
                    None => {
                        let mut merged = Dense::new();
                        merged.add(&histogram);
                        self.timings.insert(timing.name.clone(), merged);
                    }
                }
            }
            self.late_starts += report.late_starts;
            self.unsent_starts += report.unsent_starts;
            self.generator.add(agent, report);
        }
        for (name, value) in &report.counters {
            *self.counters.entry(name.clone()).or_default() += value;
            if !warmup {
                *self.measured_counters.entry(name.clone()).or_default() += value;
            }
        }
        self.notes.extend(report.notes.iter().cloned());
        if !warmup {
            for (identity, n) in &report.node_samples {
                let name = self.name_of(identity);
                *self.observations.samples.entry(name.clone()).or_default() += n;
                *self.observations.interval_samples.entry(report.interval).or_default().entry(name).or_default() += n;
            }
        }
        for (identity, opened) in &report.opened {
            let name = self.name_of(identity);
            *self.observations.connections.entry(agent.to_string()).or_default().entry(name.clone()).or_default() +=
                opened;
            self.nodes.entry(name).or_default().opened += opened;
        }
        for (identity, connections) in &report.connections {
            let node = &self.name_of(identity);
            let sum = self.node_connections.entry((report.interval, node.clone())).or_default();
            *sum += connections;
            let total = *sum;
            let entry = self.nodes.entry(node.clone()).or_default();
            entry.connections = entry.connections.max(total);
        }
        self.compact_intervals();
    }

    fn compact_intervals(&mut self) {
        let full = self.intervals.values().filter(|i| i.latency.is_some()).count();
        if full <= INTERVAL_HISTOGRAMS_KEPT {
            return;
        }
        let excess = full - INTERVAL_HISTOGRAMS_KEPT;
        for interval in self.intervals.values_mut().filter(|i| i.latency.is_some()).take(excess) {
            if let Some(h) = interval.latency.take() {
                interval.frozen_p99 = if h.is_empty() { 0 } else { h.to_histogram().value_at_quantile(0.99) };
            }
        }
    }

    /// The interval's merged figures, for live progress.
    pub fn interval(&self, index: u64) -> Option<IntervalView> {
        self.intervals.get(&index).map(|i| IntervalView {
            index,
            warmup: i.warmup,
            ops: i.ops,
            p99_us: interval_p99(i),
            agents: i.agents.len() as u32,
            saturated_agents: self.generator.saturated_in(index).len() as u32,
        })
    }

    /// Errors measured so far (warm-up excluded).
    pub fn errors(&self) -> u64 {
        self.operations.values().map(OperationAggregate::errors).sum()
    }

    /// Operations measured so far (warm-up excluded).
    pub fn ops(&self) -> u64 {
        self.operations.values().map(|o| o.count).sum()
    }

    /// Operations merged from `agent` so far, warm-up's included.
    pub fn agent_ops(&self, agent: &str) -> u64 {
        self.agents.get(agent).map_or(0, |a| a.ops)
    }

    /// Operations of `operation` merged from `agent` so far, warm-up's included.
    pub fn agent_operation_ops(&self, agent: &str, operation: &str) -> u64 {
        self.agents.get(agent).and_then(|a| a.by_operation.get(operation)).copied().unwrap_or(0)
    }

    /// Operations so far, warm-up's included.
    pub fn all_ops(&self) -> u64 {
        self.ops() + self.warmup_ops
    }

    /// Writes the report: merged figures, per-agent figures and verdicts.
    /// How long the load lasted: until the last agent's load ended when
    /// every agent's ended before the time limit (a count-limited run),
    /// otherwise the time limit.
    pub fn load_seconds(&self, scenario: &Scenario) -> f64 {
        let limit = scenario.duration.as_secs_f64();
        let ends: Option<Vec<u64>> = self.agents.values().map(|a| a.load_end_us).collect();
        match ends {
            Some(ends) if !ends.is_empty() => (ends.iter().max().copied().unwrap_or(0) as f64 / 1e6).min(limit),
            _ => limit,
        }
    }

    pub fn report(&self, context: &ReportContext<'_>) -> Report {
        let scenario = context.scenario;
        let load_s = self.load_seconds(scenario);
        let warmup_s = (self.warmup_intervals as f64).min(load_s);
        let measured_s = (load_s - warmup_s).max(0.0);
        let distribution = self.distribution(scenario);
        let thresholds: Vec<ThresholdResult> = scenario
            .thresholds
            .iter()
            .map(|t| t.evaluate(|t| self.observe_threshold(t, &distribution, measured_s)))
            .collect();
        let status = match &context.failure {
            Some((status, _)) => *status,
            None if thresholds.iter().all(|t| t.passed) => RunStatus::Passed,
            None => RunStatus::Failed,
        };
        let per_second = |count: u64| {
            if measured_s > 0.0 { count as f64 / measured_s } else { 0.0 }
        };
        let operations = self
            .operations
            .iter()
            .map(|(name, op)| {
                let report = OperationReport {
                    count: op.count,
                    errors: op.errors(),
                    errors_by_kind: op.errors_by_kind.clone(),
                    throughput: per_second(op.count),
                    latency_us: LatencySummary::of(&op.latency.to_histogram()),
                    service_time_us: LatencySummary::of(&op.service.to_histogram()),
                    error_messages: op.error_messages(),
                    transfer: Transfer::of(op.bytes_sent, op.bytes_received, op.count - op.errors(), measured_s),
                };
                (name.clone(), report)
            })
            .collect();
        let agents = context
            .agents
            .iter()
            .map(|(id, host, offset, rtt)| {
                let merged = self.agents.get(id).cloned().unwrap_or_default();
                let plan = context.plans.iter().find(|p| &p.agent_id == id);
                AgentReport {
                    id: id.clone(),
                    host: host.clone(),
                    ops: merged.ops,
                    errors: merged.errors,
                    clock_offset_us: *offset,
                    clock_rtt_us: *rtt,
                    late_starts: merged.late_starts,
                    intervals: merged.intervals,
                    reports_dropped: context.reports_dropped.get(id).copied().unwrap_or(0),
                    generator: self.generator.agent(id),
                    planned_rate: plan.filter(|_| scenario.rate().is_some()).map(|p| p.rate_per_s),
                    achieved_rate: per_second(merged.measured_ops),
                }
            })
            .collect();
        let (load_model, rate) = match scenario.load.model {
            LoadModel::Closed => ("closed", None),
            LoadModel::Open { rate, .. } => ("open", Some(rate)),
        };
        Report {
            schema: REPORT_SCHEMA.to_string(),
            run_id: context.run_id.to_string(),
            scenario: ScenarioInfo {
                name: scenario.name.clone(),
                target: TargetInfo {
                    kind: scenario.target.kind.as_str().to_string(),
                    endpoints: context.endpoints.iter().map(|e| stampede_common::scenario::redact(e)).collect(),
                },
                workload: scenario.workload.kind().to_string(),
                load_model: load_model.to_string(),
                connections: scenario.load.connections,
                pipeline: scenario.load.pipeline,
                rate,
                operations: scenario.load.operations,
            },
            status,
            error: context.failure.as_ref().map(|(_, message)| message.clone()),
            started_at_unix_ms: context.started_at_unix_ms,
            duration_s: measured_s,
            warmup_s,
            agents,
            totals: Totals {
                ops: self.ops(),
                errors: self.errors(),
                throughput: per_second(self.ops()),
                late_starts: self.late_starts,
                unsent_starts: self.unsent_starts,
                clamped: self.clamped,
                warmup_ops: self.warmup_ops,
                generator_saturated: self.generator.total(),
                transfer: Transfer::of(
                    self.operations.values().map(|op| op.bytes_sent).sum(),
                    self.operations.values().map(|op| op.bytes_received).sum(),
                    self.ops() - self.errors(),
                    measured_s,
                ),
            },
            operations,
            nodes: self
                .nodes
                .iter()
                .map(|(name, node)| {
                    let mut node = node.clone();
                    node.operations = self
                        .node_operations
                        .range((name.clone(), String::new())..)
                        .take_while(|((n, _), _)| n == name)
                        .map(|((_, op), agg)| {
                            let report = NodeOperationReport {
                                count: agg.count,
                                errors: agg.errors(),
                                latency_us: LatencySummary::of(&agg.latency.to_histogram()),
                            };
                            (op.clone(), report)
                        })
                        .collect();
                    (name.clone(), node)
                })
                .collect(),
            intervals: self
                .intervals
                .iter()
                .map(|(index, i)| {
                    let (planned_rate, planned_connections) = self.planned_in(*index);
                    IntervalSummary {
                        index: *index,
                        warmup: i.warmup,
                        ops: i.ops,
                        errors: i.errors,
                        p99_us: interval_p99(i),
                        agents: i.agents.len() as u32,
                        saturated_agents: self.generator.saturated_in(*index),
                        planned_rate,
                        planned_connections,
                    }
                })
                .collect(),
            thresholds,
            counters: self.counters.clone(),
            counter_rates: self.measured_counters.iter().map(|(name, n)| (name.clone(), per_second(*n))).collect(),
            cache_hit_ratio: {
                let hits = self.measured_counters.get(Counter::CacheHits.as_str()).copied().unwrap_or(0);
                let misses = self.measured_counters.get(Counter::CacheMisses.as_str()).copied().unwrap_or(0);
                (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64)
            },
            timings: self
                .timings
                .iter()
                .map(|(name, h)| {
                    (name.clone(), TimingReport { count: h.len(), ns: LatencySummary::of(&h.to_histogram()) })
                })
                .collect(),
            notes: self.notes.iter().cloned().collect(),
            distribution: (!self.nodes.is_empty()).then_some(distribution),
            agent_losses: self.losses(context.losses, scenario.duration.as_secs_f64().ceil() as u64),
            stages: self.stages.as_ref().map(stages::StageAggregates::report).unwrap_or_default(),
            histograms: Some(self.encoded_histograms()),
            windows: self.windows.report(),
            scenario_yaml: None,
        }
    }

    /// The distribution analysis of what was merged so far.
    pub fn distribution(&self, scenario: &Scenario) -> Distribution {
        distribution::analyse(&self.observations, &scenario.distribution)
    }
}

fn name_of(names: &BTreeMap<String, String>, identity: &str) -> String {
    names.get(identity).cloned().unwrap_or_else(|| identity.to_string())
}

fn interval_p99(interval: &IntervalAggregate) -> u64 {
    match &interval.latency {
        Some(h) if !h.is_empty() => h.to_histogram().value_at_quantile(0.99),
        Some(_) => 0,
        None => interval.frozen_p99,
    }
}

mod encoded;
mod generator;
mod live;
mod observe;
mod stages;
mod windows;

pub mod metrics;

mod loss;

#[cfg(test)]
mod tests;
