//! Read-only answers of the engine: run and agent listings and watches.

use std::time::Instant;

use tokio::sync::mpsc;

use super::{ControlError, Engine, WatchUpdate};
use crate::metrics::{MetricsSnapshot, RunMetrics};
use crate::store::{RunRecord, RunState};

/// A run as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub record: RunRecord,
    pub report_json: Option<String>,
    pub report_text: Option<String>,
}

/// What a run's interval log is made from.
pub struct IntervalLogSource {
    pub store: std::sync::Arc<dyn crate::store::RunStore>,
    pub run_id: String,
    pub started_at_unix_ms: i64,
}

impl std::fmt::Debug for IntervalLogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntervalLogSource").field("run_id", &self.run_id).finish_non_exhaustive()
    }
}

impl IntervalLogSource {
    /// Reads the run's scenario and interval reports and writes the log.
    /// Blocking: call it off the async runtime.
    pub fn write(&self) -> Result<String, String> {
        let yaml = self.store.load_scenario(&self.run_id).map_err(|e| e.to_string())?;
        let scenario = stampede_common::Scenario::parse(&yaml).map_err(|e| e.to_string())?;
        let intervals = self.store.load_intervals(&self.run_id).map_err(|e| e.to_string())?;
        if intervals.is_empty() {
            return Err(format!(
                "no interval reports of run {} are stored: it measured nothing, or its store does not keep them \
                 (the etcd store deletes them once the report is written; the file store and a PostgreSQL results \
                 store, --results, keep them)",
                self.run_id
            ));
        }
        let context = crate::hlog::LogContext {
            run_id: &self.run_id,
            started_at_unix_ms: self.started_at_unix_ms,
            warmup_s: scenario.warmup.as_secs_f64().min(scenario.duration.as_secs_f64()),
            node_names: &scenario.target.nodes,
        };
        Ok(crate::hlog::write(&context, &intervals))
    }
}

/// An agent as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    pub agent_id: String,
    pub host: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub capacity: u32,
    pub clock_offset_us: i64,
    pub clock_rtt_us: i64,
    pub connected: bool,
    pub busy_with: Option<String>,
    pub last_seen_ms_ago: u64,
    /// From its last heartbeat.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

const WATCH_BUFFER: usize = 64;

impl Engine {
    pub(super) fn watch(&mut self, run_id: &str) -> Result<mpsc::Receiver<WatchUpdate>, ControlError> {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        if let Some(run) = self.active.get_mut(run_id) {
            let _ = tx.try_send(WatchUpdate {
                run_id: run_id.to_string(),
                state: run.record.state,
                message: String::new(),
                progress: None,
                phase: None,
                report_json: None,
            });
            run.watchers.push(tx);
            return Ok(rx);
        }
        let view = self.get_run(run_id)?;
        let _ = tx.try_send(WatchUpdate {
            run_id: run_id.to_string(),
            state: view.record.state,
            message: view.record.error.clone().unwrap_or_default(),
            progress: None,
            phase: None,
            report_json: view.report_json,
        });
        Ok(rx)
    }

    pub(super) fn get_run(&self, run_id: &str) -> Result<RunView, ControlError> {
        if let Some(run) = self.active.get(run_id) {
            return Ok(RunView { record: run.record.clone(), report_json: None, report_text: None });
        }
        let record = self.ended.get(run_id).ok_or_else(|| ControlError::NotFound(run_id.to_string()))?;
        let report = self.store.load_report(run_id).map_err(|e| ControlError::Store(e.to_string()))?;
        let (report_json, report_text) = report.map_or((None, None), |(json, text)| (Some(json), Some(text)));
        Ok(RunView { record: record.clone(), report_json, report_text })
    }

    /// The store and the run's start, for its interval log; the reading
    /// and merging is left to the caller, off the engine task.
    pub(super) fn interval_log(&self, run_id: &str) -> Result<IntervalLogSource, ControlError> {
        let record = match self.active.get(run_id) {
            Some(run) => &run.record,
            None => self.ended.get(run_id).ok_or_else(|| ControlError::NotFound(run_id.to_string()))?,
        };
        let Some(start_at_us) = record.start_at_us else {
            return Err(ControlError::InvalidScenario(format!(
                "run {run_id} has not started, so it has no interval log"
            )));
        };
        Ok(IntervalLogSource {
            store: std::sync::Arc::clone(&self.store),
            run_id: run_id.to_string(),
            started_at_unix_ms: start_at_us / 1000,
        })
    }

    pub(super) fn list_runs(&self, scenario: Option<&str>) -> Vec<RunView> {
        let mut runs: Vec<RunView> = self
            .ended
            .values()
            .chain(self.active.values().map(|r| &r.record))
            .filter(|record| scenario.is_none_or(|name| record.name == name))
            .map(|record| RunView { record: record.clone(), report_json: None, report_text: None })
            .collect();
        runs.sort_by(|a, b| a.record.run_id.cmp(&b.record.run_id));
        runs
    }

    pub(super) fn list_agents(&self, now: Instant) -> Vec<AgentView> {
        self.registry
            .all()
            .map(|a| AgentView {
                agent_id: a.hello.agent_id.clone(),
                host: a.hello.host.clone(),
                labels: a.hello.labels.clone(),
                capacity: a.hello.capacity,
                clock_offset_us: a.clock_offset_us,
                clock_rtt_us: a.clock_rtt_us,
                connected: a.connected,
                busy_with: a.busy_with.clone(),
                last_seen_ms_ago: now.saturating_duration_since(a.last_seen).as_millis() as u64,
                cpu_percent: a.cpu_percent,
                rss_bytes: a.rss_bytes,
            })
            .collect()
    }

    /// What `/metrics` shows: agents, runs by state, and each running
    /// run's merged figures.
    pub(super) fn metrics(&self) -> MetricsSnapshot {
        let mut runs_by_state = std::collections::BTreeMap::new();
        for record in self.ended.values().chain(self.active.values().map(|r| &r.record)) {
            *runs_by_state.entry(record.state.as_str().to_string()).or_insert(0) += 1;
        }
        let runs = self
            .active
            .values()
            .filter(|run| run.record.state == RunState::Running)
            .map(|run| {
                let elapsed_us = run.record.start_at_us.map_or(0, |start| self.now.unix_us - start);
                let current = u64::try_from(elapsed_us / 1_000_000).unwrap_or(0);
                let throughput = current
                    .checked_sub(1)
                    .and_then(|last| run.aggregate.interval(last))
                    .map_or(0.0, |view| view.ops as f64);
                RunMetrics {
                    run_id: run.record.run_id.clone(),
                    name: run.record.name.clone(),
                    throughput,
                    samples: run.aggregate.metric_samples(),
                }
            })
            .collect();
        MetricsSnapshot {
            leading: true,
            agents_connected: self.registry.connected_count() as u64,
            runs_by_state,
            store_errors: self.store_errors,
            runs,
        }
    }
}
