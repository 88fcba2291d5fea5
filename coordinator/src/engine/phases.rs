//! Setup's and teardown's progress (preload, table creation, cleanup,
//! table drop) from the agents to the run's watchers, for their progress
//! bars: each agent's newest state, summed over the agents in the same
//! phase.

use std::collections::BTreeMap;

use super::lifecycle::send_update;
use super::{ActiveRun, Engine, WatchUpdate};

/// One phase: `done` of `total` units (`total` 0: not known) over
/// `agents` agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseProgress {
    pub name: String,
    pub unit: String,
    pub done: u64,
    pub total: u64,
    pub agents: u32,
}

impl Engine {
    /// An agent of the run says how far its setup or teardown has got.
    pub(super) fn on_phase(&mut self, agent_id: &str, run_id: &str, phase: PhaseProgress) {
        let Some(run) = self.active.get_mut(run_id) else { return };
        if !run.plans.iter().any(|p| p.agent_id == agent_id) {
            return;
        }
        let name = phase.name.clone();
        run.phases.insert(agent_id.to_string(), phase);
        let merged = merge(&run.phases, &name);
        send_phase(run, merged);
    }
}

/// The agents in phase `name`, summed; the total is unknown (0) when one
/// of them does not know its own.
fn merge(phases: &BTreeMap<String, PhaseProgress>, name: &str) -> PhaseProgress {
    let mut merged = PhaseProgress { name: name.to_string(), unit: String::new(), done: 0, total: 0, agents: 0 };
    let mut known = true;
    for phase in phases.values().filter(|p| p.name == name) {
        merged.unit.clone_from(&phase.unit);
        merged.done += phase.done;
        merged.total += phase.total;
        merged.agents += 1;
        known &= phase.total > 0;
    }
    if !known {
        merged.total = 0;
    }
    merged
}

fn send_phase(run: &mut ActiveRun, phase: PhaseProgress) {
    let update = WatchUpdate {
        run_id: run.record.run_id.clone(),
        state: run.record.state,
        message: String::new(),
        progress: None,
        phase: Some(phase),
        report_json: None,
    };
    send_update(run, &update);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(name: &str, done: u64, total: u64) -> PhaseProgress {
        PhaseProgress { name: name.into(), unit: "keys".into(), done, total, agents: 1 }
    }

    #[test]
    fn agents_in_the_same_phase_are_summed() {
        let mut phases = BTreeMap::new();
        phases.insert("a1".to_string(), phase("preload", 40, 100));
        phases.insert("a2".to_string(), phase("preload", 100, 100));
        phases.insert("a3".to_string(), phase("cleanup", 5, 100));
        assert_eq!(
            merge(&phases, "preload"),
            PhaseProgress { name: "preload".into(), unit: "keys".into(), done: 140, total: 200, agents: 2 }
        );
        phases.insert("a2".to_string(), phase("preload", 7, 0));
        assert_eq!(merge(&phases, "preload").total, 0, "one agent does not know its total");
        assert_eq!(merge(&phases, "cleanup").agents, 1);
    }
}
