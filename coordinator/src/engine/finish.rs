//! The end of a run: its report built and stored, its key figures kept
//! with its record, its agents told and freed, its watchers answered; and,
//! long after, its deletion once it is past the retention.

use std::time::{Duration, Instant};

use stampede_common::report::RunStatus;
use stampede_common::threshold::Metric;

use super::lifecycle::{forget_private, notify, persist};
use super::{Engine, ToAgent};
use crate::aggregate::ReportContext;
use crate::render;
use crate::store::RunFigures;

/// How often runs past the retention are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Engine {
    /// Ends a run: writes the report, tells agents and watchers, frees agents.
    pub(super) fn finish(&mut self, run_id: &str, failure: Option<(RunStatus, String)>) {
        let Some(mut run) = self.active.remove(run_id) else {
            return;
        };
        let agents: Vec<(String, String, i64, i64)> = run
            .record
            .agents
            .iter()
            .map(|a| (a.id.clone(), a.host.clone(), a.clock_offset_us, a.clock_rtt_us))
            .collect();
        if let Some(note) = run.store_health.note() {
            run.aggregate.note(note);
        }
        run.record.store_failed = run.store_health.in_trouble();
        let mut report = run.aggregate.report(&ReportContext {
            run_id,
            scenario: &run.scenario,
            endpoints: &run.record.endpoints,
            started_at_unix_ms: run.record.start_at_us.unwrap_or(0) / 1000,
            agents: &agents,
            failure,
            losses: &run.record.losses,
            reports_dropped: &run.record.reports_dropped,
            plans: &run.record.plans,
        });
        report.scenario_yaml = Some(run.scenario.shown_text(&run.scenario_yaml));
        let json = serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        let text = render::text(&report);
        if let Err(error) = self.store.save_report(run_id, &json, &text) {
            tracing::error!(run = %run_id, %error, "cannot store report");
        }
        run.record.state = report.status.into();
        run.record.error = report.error.clone();
        run.record.figures = Some(RunFigures {
            ops: report.totals.ops,
            throughput: report.totals.throughput,
            error_rate: if report.totals.ops == 0 {
                0.0
            } else {
                report.totals.errors as f64 / report.totals.ops as f64
            },
            p99_us: run.aggregate.observe(&Metric::Quantile(0.99), None, report.duration_s),
            duration_s: report.duration_s,
            stored_bytes: self.store.stored_bytes(run_id).ok(),
        });
        persist(&*self.store, &run.record);
        forget_private(&*self.store, run_id);
        for agent_plan in &run.plans {
            if !run.finals.contains_key(&agent_plan.agent_id) {
                let reason = report.error.clone().unwrap_or_default();
                self.registry.send(&agent_plan.agent_id, ToAgent::Cancel { run_id: run_id.to_string(), reason });
            }
            if self.registry.get(&agent_plan.agent_id).and_then(|a| a.busy_with.as_deref()) == Some(run_id) {
                self.registry.set_busy(&agent_plan.agent_id, None);
            }
        }
        run.span.record("status", report.status.as_str());
        run.span.record("ops", report.totals.ops);
        run.span.in_scope(
            || tracing::info!(run = %run_id, status = report.status.as_str(), ops = report.totals.ops, "run ended"),
        );
        let message = report.error.clone().unwrap_or_default();
        self.live_end(&mut run);
        notify(&mut run, &message, None, Some(json));
        self.ended.insert(run_id.to_string(), run.record);
        self.keep_files(run_id, report);
    }

    /// Writes the run's HTML report and interval log into the store, on a
    /// thread of their own: merging a long run's reports must not hold the
    /// engine up.
    fn keep_files(&self, run_id: &str, report: stampede_common::report::Report) {
        if !self.store.keeps_files() {
            return;
        }
        let source = self.interval_log(run_id).ok();
        let store = std::sync::Arc::clone(&self.store);
        let spawned = std::thread::Builder::new().name("stampede-files".into()).spawn(move || {
            if let Err(error) = store.save_page(&report.run_id, &crate::html::page(&report)) {
                tracing::warn!(run = %report.run_id, %error, "cannot keep the run's HTML report");
            }
            let Some(source) = source else { return };
            let kept = source
                .write()
                .and_then(|log| source.store.save_interval_log(&source.run_id, &log).map_err(|e| e.to_string()));
            if let Err(error) = kept {
                tracing::warn!(run = %source.run_id, %error, "cannot keep the run's interval log");
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(run = %run_id, %error, "cannot start writing the run's HTML report and interval log");
        }
    }

    /// Deletes ended runs past the retention, at most once an hour.
    pub(super) fn prune(&mut self, now: Instant) {
        let Some(retention) = self.config.retention else { return };
        if self.last_prune.is_some_and(|last| now.duration_since(last) < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(now);
        let before_unix_s = (self.now.unix_us / 1_000_000).saturating_sub(retention.as_secs() as i64);
        match self.store.prune(before_unix_s) {
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::info!(deleted, "deleted runs past the retention");
                }
                self.ended.retain(|_, record| record.submitted_at_unix_s >= before_unix_s);
            }
            Err(error) => tracing::warn!(%error, "cannot delete runs past the retention"),
        }
    }
}
