//! The run so far, for live viewers (the web dashboard):
//! the same merged figures the report is made of, at this moment.

use stampede_common::Scenario;
use stampede_common::live::LiveWindows;
use stampede_common::live::{LiveAgent, LiveInterval, LiveLatency, LiveNode, LiveOperation, LiveStatus, LiveWindow};

use super::RunAggregate;

/// What the aggregator needs to know of the run beyond what it merged.
pub struct LiveContext<'a> {
    pub run_id: &'a str,
    pub scenario: &'a Scenario,
    pub state: &'a str,
    /// Seconds since the start instant (0 before it).
    pub elapsed_s: u64,
    /// The run has ended: its measured time is the planned one, as in the
    /// report.
    pub ended: bool,
    /// (id, host) of each agent of the run.
    pub agents: &'a [(String, String)],
    pub plans: &'a [crate::scheduler::AgentPlan],
    pub message: &'a str,
}

impl RunAggregate {
    /// The run so far. Throughput is over the measured seconds merged so
    /// far; once the run has ended, over the planned measured time, as in
    /// the report, so the two agree.
    /// The most frequent error message so far, as `kind: message xN`.
    pub fn top_error(&self) -> Option<String> {
        self.operations
            .values()
            .flat_map(|op| op.messages.values().flatten())
            .max_by_key(|m| m.count)
            .map(|m| format!("{}: {} x{}", m.kind, m.message, m.count))
    }

    /// Operations per second over the measured seconds merged so far.
    pub fn average_rate(&self, scenario: &Scenario) -> f64 {
        let measured_s = self.measured_seconds(scenario, false);
        if measured_s > 0.0 { self.ops() as f64 / measured_s } else { 0.0 }
    }

    /// The measured seconds so far: up to the newest interval merged,
    /// warm-up excluded; once the run has ended, the planned measured time.
    fn measured_seconds(&self, scenario: &Scenario, ended: bool) -> f64 {
        let duration_s = self.load_seconds(scenario);
        let warmup_s = (self.warmup_intervals as f64).min(duration_s);
        let planned_measured = (duration_s - warmup_s).max(0.0);
        if ended {
            return planned_measured;
        }
        let newest = self.intervals.keys().next_back().copied();
        let seconds = newest.map_or(0, |i| (i + 1).saturating_sub(self.warmup_intervals));
        (seconds as f64).min(planned_measured)
    }

    pub fn live_status(&self, context: &LiveContext<'_>) -> LiveStatus {
        let scenario = context.scenario;
        let duration_s = scenario.duration.as_secs_f64();
        let warmup_s = (self.warmup_intervals as f64).min(duration_s);
        let newest = self.intervals.keys().next_back().copied();
        let measured_s = self.measured_seconds(scenario, context.ended);
        let per_second = |n: u64| if measured_s > 0.0 { n as f64 / measured_s } else { 0.0 };
        let distribution = self.distribution(scenario);
        let thresholds =
            scenario.thresholds.iter().map(|t| t.evaluate(|t| self.observe_threshold(t, &distribution, measured_s)));
        let interval = newest.and_then(|index| self.intervals.get(&index).map(|i| (index, i)));
        let operations = self
            .operations
            .iter()
            .map(|(name, op)| {
                let live = LiveOperation {
                    count: op.count,
                    errors: op.errors(),
                    errors_by_kind: op.errors_by_kind.clone(),
                    throughput: per_second(op.count),
                    latency_us: LiveLatency::of(&op.latency.to_histogram()),
                };
                (name.clone(), live)
            })
            .collect();
        let total = self.ops();
        let nodes = self
            .nodes
            .iter()
            .map(|(name, node)| LiveNode {
                name: name.clone(),
                count: node.ops,
                errors: node.errors,
                share: if total > 0 { node.ops as f64 / total as f64 } else { 0.0 },
                expected_share: distribution.requests.nodes.get(name).map(|n| n.expected_share),
            })
            .collect();
        let agents = context
            .agents
            .iter()
            .map(|(id, host)| {
                let merged = self.agents.get(id).cloned().unwrap_or_default();
                let newest = merged.newest.unwrap_or_default();
                LiveAgent {
                    id: id.clone(),
                    host: host.clone(),
                    planned_rate: context
                        .plans
                        .iter()
                        .find(|p| &p.agent_id == id)
                        .filter(|_| scenario.rate().is_some())
                        .map(|p| p.rate_per_s),
                    achieved_rate: per_second(merged.measured_ops),
                    current_rate: newest.ops as f64,
                    ops: merged.ops,
                    errors: merged.errors,
                    late_starts: merged.late_starts,
                    schedule_lag_us: newest.schedule_lag_us,
                    cpu_percent: newest.cpu_percent,
                    rss_bytes: newest.rss_bytes,
                    saturated_intervals: self.generator.agent(id).saturated_intervals,
                }
            })
            .collect();
        LiveStatus {
            run_id: context.run_id.to_string(),
            name: scenario.name.clone(),
            state: context.state.to_string(),
            elapsed_s: context.elapsed_s,
            duration_s: scenario.duration.as_secs_f64().ceil() as u64,
            warmup_s: warmup_s.ceil() as u64,
            current_rate: interval.map_or(0.0, |(_, i)| i.ops as f64),
            average_rate: per_second(total),
            ops: total,
            errors: self.errors(),
            late_starts: self.late_starts,
            measured_s,
            latency_us: LiveLatency::of(&self.overall.to_histogram()),
            operations,
            thresholds: thresholds.collect(),
            nodes,
            agents,
            interval: interval.map(|(index, i)| LiveInterval {
                index,
                warmup: i.warmup,
                ops: i.ops,
                errors: i.errors,
                latency_us: i.latency.as_ref().map(|h| LiveLatency::of(&h.to_histogram())).unwrap_or_default(),
                saturated_agents: self.generator.saturated_in(index).len() as u32,
            }),
            generator_saturated: self.generator.total(),
            message: context.message.to_string(),
            operations_done: scenario.load.operations.map_or(0, |_| self.all_ops()),
            operations_total: scenario.load.operations.unwrap_or(0),
            duration_given: scenario.duration_given,
        }
    }

    /// Every window so far, for a viewer that has none.
    pub fn live_windows(&self) -> Vec<LiveWindow> {
        self.windows.live()
    }

    /// The windows changed since the last call.
    pub fn take_live_windows(&mut self) -> LiveWindows {
        self.windows.take_live()
    }
}
