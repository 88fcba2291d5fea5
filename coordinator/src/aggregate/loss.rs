//! What the merged reports say about agents that were lost: the measured
//! intervals each did not report and the operations it would have done.

use stampede_common::loss::AgentLoss;

use super::RunAggregate;
use crate::store::RecordedLoss;

impl RunAggregate {
    /// An agent's operations per measured interval it reported.
    fn mean_rate(&self, agent: &str) -> Option<f64> {
        let a = self.agents.get(agent)?;
        (a.measured_intervals > 0).then(|| a.measured_ops as f64 / a.measured_intervals as f64)
    }

    /// The sequence number after every report merged from `agent`.
    pub fn next_seq(&self, agent: &str) -> u64 {
        self.seen.iter().filter(|(a, _)| a == agent).map(|(_, seq)| seq + 1).max().unwrap_or(0)
    }

    /// One entry per lost agent. `planned_intervals` is the run's length in
    /// intervals; intervals after the last one anybody reported (an aborted
    /// run) are not counted as missing.
    pub fn losses(&self, recorded: &[RecordedLoss], planned_intervals: u64) -> Vec<AgentLoss> {
        let last = self.intervals.keys().next_back().map_or(0, |i| i + 1).min(planned_intervals);
        let measured = self.warmup_intervals..last;
        let total_ops = self.ops();
        let mut agents: Vec<&str> = recorded.iter().map(|l| l.agent.as_str()).collect();
        agents.dedup();
        let mut losses = Vec::new();
        for agent in agents {
            let missing: Vec<u64> = measured
                .clone()
                .filter(|i| self.intervals.get(i).is_none_or(|interval| !interval.agents.contains(agent)))
                .collect();
            let mean = self.mean_rate(agent).unwrap_or_else(|| {
                // It reported no measured interval: take the others' mean.
                let others: Vec<f64> =
                    self.agents.keys().filter(|a| *a != agent).filter_map(|a| self.mean_rate(a)).collect();
                if others.is_empty() { 0.0 } else { others.iter().sum::<f64>() / others.len() as f64 }
            });
            let shortfall = (mean * missing.len() as f64).round() as u64;
            let offered = total_ops + shortfall;
            for loss in recorded.iter().filter(|l| l.agent == agent) {
                losses.push(AgentLoss {
                    agent: agent.to_string(),
                    lost_at_s: loss.lost_at_s,
                    back_at_s: loss.back_at_s,
                    missing_intervals: missing.clone(),
                    shortfall_ops: shortfall,
                    shortfall_share: if offered > 0 { shortfall as f64 / offered as f64 } else { 0.0 },
                });
            }
        }
        losses
    }
}
