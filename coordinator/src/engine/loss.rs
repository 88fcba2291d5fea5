//! Agents lost and found during a run, and runs resumed after a restart.
//!
//! An agent of a running run is lost when it has been silent (no heartbeat,
//! report or session) for longer than the heartbeat timeout, connected or
//! not. The scenario's `on_agent_loss` decides whether the run goes on. An
//! agent that comes back while the run is going rejoins it: one that kept
//! its assignment (a cut link) resends what it measured; one that restarted
//! gets its assignment again and takes up the intervals still to come.

use std::time::{Duration, Instant};

use stampede_common::Scenario;
use stampede_common::report::RunStatus;

use super::lifecycle::{notify, persist};
use super::{ActiveRun, AssignmentMessage, Engine, ToAgent};
use crate::aggregate::RunAggregate;
use crate::store::{RecordedLoss, RunRecord, RunState};

/// How long a resumed run waits for its agents to reconnect before their
/// silence counts as loss, in heartbeat timeouts.
const RESUME_GRACE_TIMEOUTS: u32 = 3;

/// Seconds since the run's start instant.
fn run_seconds(record: &RunRecord, now_unix_us: i64) -> f64 {
    record.start_at_us.map_or(0.0, |start| (now_unix_us - start) as f64 / 1e6)
}

/// Ends the open loss of `agent_id` in `run`, if it has one.
fn mark_back(store: &dyn crate::store::RunStore, now_unix_us: i64, run: &mut ActiveRun, agent_id: &str) {
    let at = run_seconds(&run.record, now_unix_us);
    let run_id = &run.record.run_id;
    if let Some(loss) = run.record.losses.iter_mut().find(|l| l.agent == agent_id && l.back_at_s.is_none()) {
        loss.back_at_s = Some(at);
        tracing::info!(run = %run_id, agent = %agent_id, at_s = at, "lost agent is back");
        notify(run, &format!("agent {agent_id} is back at {at:.1}s"), None, None);
        persist(store, &run.record);
    }
}

impl ActiveRun {
    pub(super) fn is_lost(&self, agent_id: &str) -> bool {
        self.record.losses.iter().any(|l| l.agent == agent_id && l.back_at_s.is_none())
    }

    /// The planned load (connections) of the agents lost now, as a share.
    fn lost_share(&self) -> f64 {
        let total: u64 = self.plans.iter().map(|p| u64::from(p.connections)).sum();
        let lost: u64 = self.plans.iter().filter(|p| self.is_lost(&p.agent_id)).map(|p| u64::from(p.connections)).sum();
        if total == 0 { 0.0 } else { lost as f64 / total as f64 }
    }

    /// How the run ended by its agents' final reports: an error when any
    /// of them failed.
    pub(super) fn final_failure(&self) -> Option<(RunStatus, String)> {
        let failures: Vec<String> =
            self.finals.iter().filter(|(_, e)| !e.is_empty()).map(|(agent, e)| format!("agent {agent}: {e}")).collect();
        (!failures.is_empty()).then(|| (RunStatus::Error, failures.join("; ")))
    }

    /// Every agent has delivered its final report or is lost.
    pub(super) fn all_accounted_for(&self) -> bool {
        self.plans.iter().all(|p| self.finals.contains_key(&p.agent_id) || self.is_lost(&p.agent_id))
    }
}

impl Engine {
    /// Declares silent agents of running runs lost and applies each run's
    /// policy; finishes runs that have nothing left to wait for.
    pub(super) fn check_agent_losses(&mut self, now: Instant) {
        let timeout = self.config.heartbeat_timeout;
        let mut to_finish = Vec::new();
        for (run_id, run) in &mut self.active {
            if run.record.state != RunState::Running || run.loss_checks_from.is_some_and(|from| now < from) {
                continue;
            }
            let silent: Vec<String> = run
                .plans
                .iter()
                .map(|p| p.agent_id.clone())
                .filter(|id| !run.finals.contains_key(id) && !run.is_lost(id))
                .filter(|id| self.registry.get(id).is_none_or(|a| now.duration_since(a.last_seen) > timeout))
                .collect();
            if silent.is_empty() {
                if run.all_accounted_for() && !run.plans.is_empty() {
                    to_finish.push((run_id.clone(), run.final_failure()));
                }
                continue;
            }
            let at = run_seconds(&run.record, self.now.unix_us);
            for agent in &silent {
                tracing::warn!(run = %run_id, %agent, at_s = at, "agent lost (no heartbeat)");
                run.record.losses.push(RecordedLoss { agent: agent.clone(), lost_at_s: at, back_at_s: None });
            }
            let policy = run.scenario.on_agent_loss;
            let share = run.lost_share();
            let message = format!(
                "agent {} lost at {at:.1}s (silent for over {}s); lost agents hold {:.0}% of the load; on_agent_loss: {}",
                silent.join(", "),
                timeout.as_secs_f64(),
                share * 100.0,
                policy.describe()
            );
            persist(&*self.store, &run.record);
            if policy.continues(share) {
                notify(run, &format!("{message}; continuing"), None, None);
                if run.all_accounted_for() {
                    to_finish.push((run_id.clone(), run.final_failure()));
                }
            } else {
                to_finish.push((run_id.clone(), Some((RunStatus::Aborted, message))));
            }
        }
        for (run_id, failure) in to_finish {
            self.finish(&run_id, failure);
        }
    }

    /// An agent whose clock is measured (a new session): if it belongs to a
    /// running run it has not finished, it rejoins it. Runs it still drives
    /// that ended while it was not heard (aborted when it was judged lost,
    /// say) are cancelled: it missed the cancel, and their load must not
    /// run on beside its next run's.
    pub(super) fn on_agent_back(&mut self, agent_id: &str) {
        let Some(entry) = self.registry.get(agent_id) else { return };
        let kept: Vec<String> = entry.hello.active_runs.clone();
        for run_id in &kept {
            if let Some(record) = self.ended.get(run_id) {
                let reason = format!("the run ended ({}) while this agent was not heard", record.state);
                tracing::info!(run = %run_id, agent = %agent_id, "cancelling an ended run the agent still runs");
                self.registry.send(agent_id, ToAgent::Cancel { run_id: run_id.clone(), reason });
            }
        }
        let run_ids: Vec<String> = self
            .active
            .iter()
            .filter(|(_, r)| r.record.state == RunState::Running && r.plans.iter().any(|p| p.agent_id == agent_id))
            .filter(|(_, r)| !r.finals.contains_key(agent_id))
            .map(|(id, _)| id.clone())
            .collect();
        for run_id in run_ids {
            let Some(run) = self.active.get_mut(&run_id) else { continue };
            self.registry.set_busy(agent_id, Some(run_id.clone()));
            mark_back(&*self.store, self.now.unix_us, run, agent_id);
            if kept.contains(&run_id) {
                continue;
            }
            // It restarted: give it its part again, numbered after every
            // report of its earlier self.
            let Some(mut plan) = run.plans.iter().find(|p| p.agent_id == agent_id).cloned() else { continue };
            // A count-limited run: what its earlier self had not reported.
            plan.operations = plan.operations.map(|n| n.saturating_sub(run.aggregate.agent_ops(agent_id)));
            if let Some(counts) = &mut plan.operation_counts {
                let names = run.scenario.workload.operations();
                for (count, name) in counts.iter_mut().zip(names) {
                    *count = count.saturating_sub(run.aggregate.agent_operation_ops(agent_id, name));
                }
                plan.operations = Some(counts.iter().sum());
            }
            run.ready.remove(agent_id);
            let message = AssignmentMessage {
                run_id: run_id.clone(),
                scenario_yaml: run.scenario_yaml.clone(),
                plan,
                endpoints: run.endpoints.clone(),
                first_seq: run.aggregate.next_seq(agent_id),
                rejoin: true,
                trace_context: run.assignment_span(agent_id, true),
            };
            tracing::info!(run = %run_id, agent = %agent_id, "agent rejoins the run with its assignment");
            self.registry.send(agent_id, ToAgent::Assignment(Box::new(message)));
        }
    }

    /// An agent heard on the session it already had (a link that was cut
    /// and came back before either end gave the session up): it kept its
    /// assignment, so a loss of it only ends.
    pub(super) fn on_agent_heard(&mut self, agent_id: &str) {
        for run in self.active.values_mut() {
            if run.is_lost(agent_id) {
                mark_back(&*self.store, self.now.unix_us, run, agent_id);
            }
        }
    }

    /// A run a previous coordinator left `running`, taken up again: its
    /// stored intervals merged, its agents (which carried on) awaited. Runs
    /// left in another unfinished state cannot be resumed; the error says why.
    pub(super) fn resume(&self, record: &RunRecord) -> Result<ActiveRun, ResumeError> {
        let was = record.state;
        let Some(start_us) = record.start_at_us.filter(|_| was == RunState::Running && !record.plans.is_empty()) else {
            return Err(ResumeError::Unfinished(was));
        };
        let yaml = self.store.load_scenario(&record.run_id)?;
        let scenario = Scenario::parse(&yaml)?;
        let intervals = self.store.load_intervals(&record.run_id)?;
        let mut aggregate = RunAggregate::new(scenario.warmup.as_secs_f64().ceil() as u64)
            .naming(scenario.target.nodes.clone())
            .planned(&scenario.load);
        for stored in &intervals {
            if let Err(error) = aggregate.merge(&stored.agent_id, &stored.report) {
                tracing::warn!(run = %record.run_id, %error, "stored interval not merged");
            }
        }
        let end_us = start_us + scenario.duration.as_micros() as i64;
        let now = self.now.at;
        tracing::info!(run = %record.run_id, intervals = intervals.len(), "resuming the run after a restart");
        // The resumed run's span continues the trace its submission began.
        let span = super::run_span(&record.run_id, &scenario);
        stampede_telemetry::continue_trace(&span, &record.trace_context);
        span.record("resumed", true);
        let mut run = ActiveRun::new(record.clone(), scenario, yaml, aggregate, span);
        run.plans = record.plans.clone();
        run.finals = record.finals.clone();
        run.ready = run.plans.iter().map(|p| p.agent_id.clone()).collect();
        run.end_at = Some(now + Duration::from_micros((end_us - self.now.unix_us).max(0) as u64));
        run.loss_checks_from = Some(now + self.config.heartbeat_timeout * RESUME_GRACE_TIMEOUTS);
        Ok(run)
    }
}

/// Why a run a previous coordinator left unfinished cannot be taken up.
#[derive(Debug, thiserror::Error)]
pub(super) enum ResumeError {
    #[error("the coordinator restarted while the run was {0}")]
    Unfinished(RunState),
    #[error("cannot resume: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot resume: {0}")]
    Scenario(#[from] stampede_common::scenario::ScenarioError),
}
