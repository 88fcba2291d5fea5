//! Run transitions: queued -> preparing -> running -> passed / failed /
//! error / aborted. Each function handles one event for one run.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use stampede_common::Scenario;
use stampede_common::interval::IntervalReport;
use stampede_common::report::RunStatus;
use stampede_common::saturation::rate_beyond_bounds;
use stampede_common::scenario::{TargetKind, redact};

use super::{ActiveRun, AssignmentMessage, ControlError, Engine, FinalReport, Progress, ToAgent, WatchUpdate};
use crate::aggregate::RunAggregate;
use crate::scheduler::plan;
use crate::store::{RunAgent, RunRecord, RunState, StoredInterval};

/// The scenario's passwords leave the disk once its run has ended.
pub(super) fn forget_private(store: &dyn crate::store::RunStore, run_id: &str) {
    if let Err(error) = store.forget_private(run_id) {
        tracing::error!(run = %run_id, %error, "cannot remove the private copy of the scenario");
    }
}

/// How long agents that are alive may take to finish after the grace.
const TEARDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

impl Engine {
    pub(super) fn load_previous_runs(&mut self) {
        let records = match self.store.list() {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "cannot list stored runs");
                return;
            }
        };
        for record in records {
            if record.is_terminal() {
                self.ended.insert(record.run_id.clone(), record);
                continue;
            }
            match self.resume(&record) {
                Ok(run) => {
                    self.active.insert(record.run_id.clone(), run);
                }
                Err(why) => {
                    let mut record = record;
                    record.state = RunState::Error;
                    record.error = Some(format!("{why}; its stored intervals are kept in the data directory"));
                    forget_private(&*self.store, &record.run_id);
                    if let Err(error) = self.store.update(&record) {
                        tracing::error!(run = %record.run_id, %error, "cannot mark interrupted run");
                    }
                    self.ended.insert(record.run_id.clone(), record);
                }
            }
        }
    }

    pub(super) fn submit(&mut self, scenario_yaml: String, agents: u32) -> Result<String, ControlError> {
        let scenario = Scenario::parse(&scenario_yaml).map_err(|e| ControlError::InvalidScenario(e.to_string()))?;
        let agent_count = if agents > 0 { agents } else { scenario.agents };
        if scenario.load.connections < agent_count {
            return Err(ControlError::InvalidScenario(format!(
                "load.connections ({}) is smaller than the number of agents ({agent_count}); every agent needs a connection",
                scenario.load.connections
            )));
        }
        let endpoints = if scenario.target.endpoints.is_empty() {
            match (scenario.target.kind, &self.config.embedded_kv) {
                (TargetKind::Kv, Some(address)) => vec![address.clone()],
                _ => {
                    return Err(ControlError::InvalidScenario(
                        "target.endpoints is empty: the built-in KV server is only embedded by `stampede run`; \
                         list the server's `host:port` (for example of `stampede kv-server`) in target.endpoints"
                            .to_string(),
                    ));
                }
            }
        } else {
            scenario.target.endpoints.clone()
        };
        let run_id = new_run_id(self.now.unix_us);
        let span = super::run_span(&run_id, &scenario);
        let record = RunRecord {
            run_id: run_id.clone(),
            name: scenario.name.clone(),
            target_kind: scenario.target.kind.as_str().to_string(),
            state: RunState::Queued,
            submitted_at_unix_s: self.now.unix_us / 1_000_000,
            agent_count,
            endpoints: endpoints.iter().map(|e| redact(e)).collect(),
            agents: Vec::new(),
            start_at_us: None,
            error: None,
            plans: Vec::new(),
            finals: BTreeMap::new(),
            losses: Vec::new(),
            reports_dropped: Default::default(),
            trace_context: stampede_telemetry::context_of(&span),
            store_failed: false,
            figures: None,
        };
        let shown = scenario.shown_text(&scenario_yaml);
        let private = (shown != scenario_yaml).then_some(scenario_yaml.as_str());
        self.store.create(&record, &shown, private).map_err(|e| ControlError::Store(e.to_string()))?;
        span.in_scope(|| tracing::info!(run = %run_id, name = %scenario.name, agents = agent_count, "run queued"));
        let warmup_intervals = scenario.warmup.as_secs_f64().ceil() as u64;
        let mut aggregate =
            RunAggregate::new(warmup_intervals).naming(scenario.target.nodes.clone()).planned(&scenario.load);
        let (connections, pipeline) = (scenario.load.connections, scenario.load.pipeline);
        if let Some(note) =
            scenario.rate().and_then(|rate| rate_beyond_bounds(rate, agent_count, connections, pipeline))
        {
            span.in_scope(|| tracing::warn!(run = %run_id, "{note}"));
            aggregate.note(note);
        }
        let mut run = ActiveRun::new(record, scenario, scenario_yaml, aggregate, span);
        self.submissions += 1;
        run.submission = self.submissions;
        self.active.insert(run_id.clone(), run);
        Ok(run_id)
    }

    /// Gives queued runs their agents, oldest run first.
    pub(super) fn schedule_queued(&mut self, now: Instant) {
        let mut queued: Vec<(u64, String)> = self
            .active
            .iter()
            .filter(|(_, r)| r.record.state == RunState::Queued)
            .map(|(id, r)| (r.submission, id.clone()))
            .collect();
        queued.sort_unstable();
        for (_, run_id) in queued {
            let idle = self.registry.idle();
            let Some(run) = self.active.get_mut(&run_id) else {
                continue;
            };
            let needed = run.record.agent_count as usize;
            if idle.len() < needed {
                if run.last_wait_notice.is_none_or(|t| now.duration_since(t).as_secs() >= 2) {
                    run.last_wait_notice = Some(now);
                    let message = format!(
                        "waiting for agents: {} of {needed} available ({} connected)",
                        idle.len(),
                        self.registry.connected_count()
                    );
                    notify(run, &message, None, None);
                }
                // Runs start in order: a later run does not overtake this one.
                return;
            }
            let chosen = &idle[..needed];
            let plans = match plan(&run.scenario, chosen, RandomState::new().hash_one(&run_id)) {
                Ok(plans) => plans,
                Err(error) => {
                    let message = error.to_string();
                    self.finish(&run_id, Some((RunStatus::Error, message)));
                    continue;
                }
            };
            run.record.agents = chosen
                .iter()
                .filter_map(|id| self.registry.get(id))
                .map(|a| RunAgent {
                    id: a.hello.agent_id.clone(),
                    host: a.hello.host.clone(),
                    clock_offset_us: a.clock_offset_us,
                    clock_rtt_us: a.clock_rtt_us,
                })
                .collect();
            run.record.state = RunState::Preparing;
            run.prepare_deadline = Some(now + self.config.prepare_timeout);
            for agent_plan in &plans {
                self.registry.set_busy(&agent_plan.agent_id, Some(run_id.clone()));
                let message = AssignmentMessage {
                    run_id: run_id.clone(),
                    scenario_yaml: run.scenario_yaml.clone(),
                    plan: agent_plan.clone(),
                    endpoints: run.endpoints.clone(),
                    first_seq: 0,
                    rejoin: false,
                    trace_context: run.assignment_span(&agent_plan.agent_id, false),
                };
                self.registry.send(&agent_plan.agent_id, ToAgent::Assignment(Box::new(message)));
            }
            run.record.plans.clone_from(&plans);
            run.plans = plans;
            run.span.in_scope(|| tracing::info!(run = %run_id, agents = ?chosen, "run assigned"));
            notify(run, &format!("preparing on {needed} agents"), None, None);
            persist(&*self.store, &run.record);
        }
    }

    pub(super) fn on_ready(&mut self, agent_id: &str, run_id: &str) {
        let Some(run) = self.active.get_mut(run_id) else {
            return;
        };
        if run.record.state == RunState::Running
            && run.plans.iter().any(|p| p.agent_id == agent_id)
            && let Some(start_at_us) = run.record.start_at_us
        {
            // A rejoining agent starts at the run's instant, in the past.
            run.ready.insert(agent_id.to_string());
            self.registry.send(agent_id, ToAgent::Start { run_id: run_id.to_string(), start_at_us });
            return;
        }
        if run.record.state != RunState::Preparing {
            return;
        }
        run.ready.insert(agent_id.to_string());
        if run.ready.len() < run.plans.len() {
            return;
        }
        let start_at_us = self.now.unix_us + self.config.start_delay.as_micros() as i64;
        run.record.start_at_us = Some(start_at_us);
        run.record.state = RunState::Running;
        run.prepare_deadline = None;
        run.end_at = Some(self.now.at + self.config.start_delay + run.scenario.duration);
        for agent_plan in &run.plans {
            self.registry.send(&agent_plan.agent_id, ToAgent::Start { run_id: run_id.to_string(), start_at_us });
        }
        run.span.in_scope(|| tracing::info!(run = %run_id, "run started"));
        notify(run, &format!("starting on {} agents", run.plans.len()), None, None);
        persist(&*self.store, &run.record);
    }

    pub(super) fn on_agent_failed(&mut self, agent_id: &str, run_id: &str, error: &str) {
        if self.active.contains_key(run_id) {
            let message = format!("agent {agent_id} could not run its assignment: {error}");
            tracing::error!(run = %run_id, %message);
            self.finish(run_id, Some((RunStatus::Error, message)));
        }
    }

    pub(super) fn on_report(&mut self, agent_id: &str, report: &IntervalReport) {
        let run_id = report.run_id.clone();
        let Some(run) = self.active.get_mut(&run_id) else {
            // A resend for a run that has ended: its data is already counted,
            // acknowledge so the agent can forget it; unless the run ended
            // because the store refused it, which the agent keeps.
            if self.ended.get(&run_id).is_some_and(|record| !record.store_failed) {
                self.registry.send(agent_id, ToAgent::Ack { run_id, seq: report.seq });
            }
            return;
        };
        if !run.plans.iter().any(|p| p.agent_id == agent_id) {
            tracing::warn!(run = %run_id, agent = %agent_id, "report from an agent outside the run ignored");
            return;
        }
        // Stored first, merged after (see `durability`).
        let checked = match run.aggregate.check(agent_id, report) {
            Ok(Some(checked)) => checked,
            Ok(None) => {
                // Merged, so stored, before: the agent missed the ack.
                self.registry.send(agent_id, ToAgent::Ack { run_id, seq: report.seq });
                return;
            }
            Err(error) => {
                tracing::error!(run = %run_id, %error, "interval report refused");
                run.store_health.corrupt(agent_id, report.seq);
                self.registry.send(agent_id, ToAgent::Ack { run_id, seq: report.seq });
                return;
            }
        };
        let stored = StoredInterval { agent_id: agent_id.to_string(), report: report.clone() };
        if let Err(error) = self.store.append_interval(&run_id, &stored) {
            // Neither merged nor acknowledged: the agent keeps it and sends it again.
            self.store_errors += 1;
            tracing::error!(run = %run_id, %error, "cannot store interval report");
            if let Some(line) =
                run.store_health.refused(self.now.at, &error.to_string(), self.config.store_error_timeout)
            {
                notify(run, &line, None, None);
            }
            return;
        }
        if let Some(line) = run.store_health.accepted(self.now.at) {
            tracing::info!(run = %run_id, "the store takes writes again");
            notify(run, &line, None, None);
        }
        run.aggregate.apply(agent_id, report, checked);
        self.registry.send(agent_id, ToAgent::Ack { run_id: run_id.clone(), seq: report.seq });
        let agent_count = run.plans.len() as u32;
        if let Some(view) = run.aggregate.interval(report.interval)
            && view.agents == agent_count
            && run.last_progress.is_none_or(|last| view.index > last)
        {
            run.last_progress = Some(view.index);
            let progress = Progress {
                elapsed_s: view.index + 1,
                duration_s: run.scenario.duration.as_secs_f64().ceil() as u64,
                throughput: view.ops as f64,
                average_throughput: run.aggregate.average_rate(&run.scenario),
                top_error: run.aggregate.top_error().unwrap_or_default(),
                p99_us: view.p99_us,
                errors: run.aggregate.errors(),
                agents: view.agents,
                warmup: view.warmup,
                saturated_agents: view.saturated_agents,
                operations_done: run.scenario.load.operations.map_or(0, |_| run.aggregate.all_ops()),
                operations_total: run.scenario.load.operations.unwrap_or(0),
            };
            notify(run, "", Some(progress), None);
            self.live_progress(&run_id);
        }
    }

    pub(super) fn on_final(&mut self, agent_id: &str, report: FinalReport) {
        let FinalReport { run_id, seq, interval_reports, reports_dropped, error } = report;
        let run_id = run_id.as_str();
        let Some(run) = self.active.get_mut(run_id) else {
            if self.ended.get(run_id).is_some_and(|record| !record.store_failed) {
                self.registry.send(agent_id, ToAgent::Ack { run_id: run_id.to_string(), seq });
            }
            return;
        };
        // Every interval report the agent announces must be stored first;
        // until then the final report is not acknowledged, and the agent
        // sends it again with the reports it still holds.
        let first = seq.saturating_sub(interval_reports);
        let received =
            run.aggregate.count_merged(agent_id, first..seq) + run.store_health.corrupt_from(agent_id, first..seq);
        if received + reports_dropped < interval_reports {
            tracing::debug!(run = %run_id, agent = %agent_id, received, reports_dropped, interval_reports, "final report before its interval reports are stored");
            return;
        }
        self.registry.send(agent_id, ToAgent::Ack { run_id: run_id.to_string(), seq });
        if let Some(span) = run.assignment_spans.remove(agent_id) {
            span.in_scope(|| tracing::info!(run = %run_id, agent = %agent_id, error = %error, "final report"));
        }
        run.finals.insert(agent_id.to_string(), error.clone());
        run.record.finals.insert(agent_id.to_string(), error);
        // The agent's count can include a report it dropped after this
        // coordinator had stored it (the acknowledgement was lost with a
        // coordinator that died): lost is only what never arrived.
        let reports_dropped = interval_reports.saturating_sub(received).min(reports_dropped);
        if reports_dropped > 0 {
            tracing::warn!(agent = %agent_id, run = %run_id, reports_dropped, "the agent dropped interval reports it could not deliver");
            run.record.reports_dropped.insert(agent_id.to_string(), reports_dropped);
        }
        persist(&*self.store, &run.record);
        if run.all_accounted_for() && run.record.state == RunState::Running {
            let failure = run.final_failure();
            self.finish(run_id, failure);
        }
    }

    pub(super) fn on_agent_lost(&mut self, agent_id: &str) {
        let Some(run_id) = self.registry.get(agent_id).and_then(|a| a.busy_with.clone()) else {
            return;
        };
        let Some(run) = self.active.get(&run_id) else {
            return;
        };
        if run.record.state == RunState::Preparing {
            let message = format!("agent {agent_id} was lost before the run started");
            self.finish(&run_id, Some((RunStatus::Error, message)));
        }
        // While running, the agent may come back and resend; the deadline
        // check decides if it does not.
    }

    pub(super) fn check_deadlines(&mut self, now: Instant) {
        let mut to_finish = Vec::new();
        let timeout = self.config.heartbeat_timeout;
        for (run_id, run) in &mut self.active {
            if run.prepare_deadline.is_some_and(|d| now >= d) {
                let missing: Vec<&str> =
                    run.plans.iter().map(|p| p.agent_id.as_str()).filter(|a| !run.ready.contains(*a)).collect();
                let message = format!("agents {} did not get ready in time", missing.join(", "));
                to_finish.push((run_id.clone(), Some((RunStatus::Error, message))));
            } else if let Some(why) = run.store_health.expired(now, self.config.store_error_timeout) {
                tracing::error!(run = %run_id, "{why}");
                to_finish.push((run_id.clone(), Some((RunStatus::Error, why))));
            } else if run.store_health.in_trouble() {
                // The store decides: it takes the writes again or the run
                // ends when `store_error_timeout` is over.
                continue;
            } else if let Some(end) = run.end_at.map(|end| run.store_health.grace_from(end))
                && now >= end + self.config.finish_grace
            {
                let missing: Vec<String> = run
                    .plans
                    .iter()
                    .map(|p| p.agent_id.clone())
                    .filter(|a| !run.finals.contains_key(a) && !run.is_lost(a))
                    .collect();
                // Agents still heartbeating are tearing down (deleting keys,
                // dropping tables): wait for them, within a limit.
                let alive = missing
                    .iter()
                    .all(|a| self.registry.get(a).is_some_and(|e| now.duration_since(e.last_seen) <= timeout));
                if alive && now < end + self.config.finish_grace + TEARDOWN_LIMIT {
                    if run.last_wait_notice.is_none_or(|t| now.duration_since(t).as_secs() >= 5) {
                        run.last_wait_notice = Some(now);
                        let message = format!("waiting for agents {} to finish their teardown", missing.join(", "));
                        notify(run, &message, None, None);
                    }
                    continue;
                }
                let message = format!(
                    "agents {} did not deliver their final report; their reported intervals are included",
                    missing.join(", ")
                );
                to_finish.push((run_id.clone(), Some((RunStatus::Error, message))));
            }
        }
        for (run_id, failure) in to_finish {
            self.finish(&run_id, failure);
        }
    }

    pub(super) fn cancel(&mut self, run_id: &str) -> Result<RunState, ControlError> {
        if let Some(record) = self.ended.get(run_id) {
            return Ok(record.state);
        }
        if !self.active.contains_key(run_id) {
            return Err(ControlError::NotFound(run_id.to_string()));
        }
        self.finish(run_id, Some((RunStatus::Aborted, "cancelled by a user".to_string())));
        Ok(RunState::Aborted)
    }
}

/// Sends an update to every watcher of the run, dropping those that left.
pub(super) fn notify(run: &mut ActiveRun, message: &str, progress: Option<Progress>, report_json: Option<String>) {
    let update = WatchUpdate {
        run_id: run.record.run_id.clone(),
        state: run.record.state,
        message: message.to_string(),
        progress,
        phase: None,
        report_json,
    };
    send_update(run, &update);
}

pub(super) fn send_update(run: &mut ActiveRun, update: &WatchUpdate) {
    run.watchers.retain(|w| match w.try_send(update.clone()) {
        Ok(()) => true,
        // A slow watcher misses a progress line but never the end.
        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => true,
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
    });
}

pub(super) fn persist(store: &dyn crate::store::RunStore, record: &RunRecord) {
    if let Err(error) = store.update(record) {
        tracing::error!(run = %record.run_id, %error, "cannot store run state");
    }
}

/// A sortable, readable run id: `r-20261121-214700-3fa2` (UTC).
fn new_run_id(now_unix_us: i64) -> String {
    let time = chrono::DateTime::from_timestamp_micros(now_unix_us).unwrap_or_default();
    let suffix = RandomState::new().hash_one(now_unix_us) & 0xffff;
    format!("r-{}-{suffix:04x}", time.format("%Y%m%d-%H%M%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_the_utc_date_and_time() {
        assert!(new_run_id(0).starts_with("r-19700101-000000-"));
        // 2025-11-21 21:47:00 UTC
        assert!(new_run_id(1_763_761_620_000_000).starts_with("r-20251121-214700-"));
        // 2000-02-29 12:00:00 UTC
        assert!(new_run_id(951_825_600_000_000).starts_with("r-20000229-120000-"));
        assert_eq!(new_run_id(0).len(), "r-19700101-000000-0000".len());
    }
}
