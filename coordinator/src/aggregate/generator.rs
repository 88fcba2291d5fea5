//! The agents' own load, merged per agent and per interval: CPU, waiting
//! for a CPU, runtime and schedule lag, slot occupancy, and the intervals
//! in which an agent judged that it, not the target, limited the load
//! (`stampede_common::saturation`). Measured intervals only.

use std::collections::{BTreeMap, BTreeSet};

use stampede_common::interval::IntervalReport;
use stampede_common::report::GeneratorReport;

#[derive(Default, Clone)]
struct AgentLoad {
    intervals: u64,
    cpu_sum: f64,
    occupancy_sum: f64,
    rss_sum: u128,
    report: GeneratorReport,
}

#[derive(Default)]
pub(super) struct GeneratorAggregate {
    agents: BTreeMap<String, AgentLoad>,
    /// Interval index -> agents saturated in it.
    saturated: BTreeMap<u64, BTreeSet<String>>,
    /// Agent-intervals saturated, summed.
    total: u64,
}

impl GeneratorAggregate {
    /// Adds one measured interval report of `agent`.
    pub fn add(&mut self, agent: &str, report: &IntervalReport) {
        let load = self.agents.entry(agent.to_string()).or_default();
        load.intervals += 1;
        load.cpu_sum += report.cpu_percent;
        load.occupancy_sum += report.slot_occupancy;
        load.rss_sum += u128::from(report.rss_bytes);
        let g = &mut load.report;
        g.rss_bytes_max = g.rss_bytes_max.max(report.rss_bytes);
        g.cpu_percent_max = g.cpu_percent_max.max(report.cpu_percent);
        g.cpu_available_percent = g.cpu_available_percent.max(report.cpu_available_percent);
        g.cpu_wait_percent_max = g.cpu_wait_percent_max.max(report.cpu_wait_percent);
        g.runtime_lag_us_max = g.runtime_lag_us_max.max(report.runtime_lag_us);
        g.schedule_lag_us_max = g.schedule_lag_us_max.max(report.max_schedule_lag_us);
        if report.saturation.is_empty() {
            return;
        }
        g.saturated_intervals += 1;
        for reason in &report.saturation {
            *g.reasons.entry(reason.clone()).or_default() += 1;
        }
        self.saturated.entry(report.interval).or_default().insert(agent.to_string());
        self.total += 1;
    }

    pub fn agent(&self, agent: &str) -> GeneratorReport {
        let Some(load) = self.agents.get(agent) else { return GeneratorReport::default() };
        let n = load.intervals.max(1) as f64;
        GeneratorReport {
            cpu_percent_mean: load.cpu_sum / n,
            slot_occupancy_mean: load.occupancy_sum / n,
            rss_bytes_mean: u64::try_from(load.rss_sum / u128::from(load.intervals.max(1))).unwrap_or(u64::MAX),
            ..load.report.clone()
        }
    }

    /// The agents saturated in interval `index`, by id.
    pub fn saturated_in(&self, index: u64) -> Vec<String> {
        self.saturated.get(&index).map(|agents| agents.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}
