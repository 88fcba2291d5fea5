//! The reports of one assignment: every second the connections' and
//! listeners' recorders become one `IntervalReport` in the outbox; at the
//! end a `FinalReport` says how many were sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede_common::endpoint::{password, percent_decode, redact_text};
use stampede_common::interval::IntervalReport;
use stampede_common::saturation::{self, Signals};
use stampede_common::scenario::LoadModel;

use super::Assignment;
use super::recorder::{SharedRecorder, collect};
use crate::health::{CpuMeter, RuntimeLag};
use crate::outbox::{Outbox, Outgoing};

const INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct Reporter {
    /// The run's endpoints, whose passwords no error message may show.
    endpoints: Vec<String>,
    run_id: String,
    pub operation_names: &'static [&'static str],
    /// One per connection, then one per listener.
    pub recorders: Vec<SharedRecorder>,
    /// Notes for the next report (setup's, teardown's).
    pub notes: Vec<String>,
    start_at: Instant,
    /// The interval under way, counted from the start instant.
    interval: u64,
    warmup_intervals: u64,
    first_seq: u64,
    seq: u64,
    cpu: CpuMeter,
    lag: RuntimeLag,
    /// Dropped with the reporter, which ends the lag probe.
    _probe: tokio::sync::oneshot::Sender<()>,
    /// The open model's rate on this agent.
    rate_per_s: Option<f64>,
    /// The open model's stages, this agent's share: the planned rate of
    /// each interval.
    stages: Option<stampede_common::stages::Stages>,
    slots: u64,
    /// When the interval under way began being recorded.
    since: Instant,
    /// When the load ended before the time limit, for the next report.
    load_end: Option<Instant>,
}

impl Reporter {
    pub fn new(assignment: &Assignment, recorders: Vec<SharedRecorder>, start_at: Instant, notes: Vec<String>) -> Self {
        let scenario = &assignment.scenario;
        let (probe, stopped) = tokio::sync::oneshot::channel::<()>();
        let lag = RuntimeLag::default();
        lag.probe(async move {
            let _ = stopped.await;
        });
        let rate_per_s = match scenario.load.model {
            LoadModel::Open { .. } => Some(assignment.rate_per_s),
            LoadModel::Closed => None,
        };
        Self {
            run_id: assignment.run_id.clone(),
            endpoints: assignment.endpoints.clone(),
            operation_names: scenario.workload.operations(),
            recorders,
            notes,
            start_at,
            // A rejoining agent starts with the interval under way; the ones
            // before were reported by its earlier self, or are missing.
            interval: Instant::now().saturating_duration_since(start_at).as_secs(),
            warmup_intervals: scenario.warmup.as_secs_f64().ceil() as u64,
            first_seq: assignment.first_seq,
            seq: assignment.first_seq,
            cpu: CpuMeter::new(),
            lag,
            _probe: probe,
            rate_per_s,
            stages: match (rate_per_s, &scenario.load.stages) {
                (Some(rate), Some(stages)) if stages.peak() > 0.0 => Some(stages.scaled(rate / stages.peak())),
                _ => None,
            },
            slots: u64::from(assignment.connections) * u64::from(scenario.load.pipeline),
            since: Instant::now().max(start_at),
            load_end: None,
        }
    }

    /// The load ended at `at`, before the time limit (its operations done).
    pub fn load_ended(&mut self, at: Instant) {
        self.load_end = Some(at);
    }

    /// The end of the interval under way, if it ends before `end` (the
    /// last, partial interval is reported after the drain).
    pub fn next_boundary(&self, end: Instant) -> Option<Instant> {
        let boundary = self.start_at + INTERVAL * (self.interval as u32 + 1);
        (boundary < end).then_some(boundary)
    }

    /// Reports the interval under way and moves on to the next.
    pub fn interval(&mut self, outbox: &Outbox) {
        let warmup = self.interval < self.warmup_intervals;
        let (mut report, busy_us) =
            collect(&self.recorders, self.operation_names, &self.run_id, self.seq, self.interval, warmup);
        self.judge(&mut report, busy_us);
        scrub(&mut report, &self.endpoints);
        report.notes = std::mem::take(&mut self.notes);
        if let Some(at) = self.load_end.take() {
            report.load_end_us = at.saturating_duration_since(self.start_at).as_micros().max(1) as u64;
        }
        outbox.push(Outgoing::Report(Box::new(report)));
        self.seq += 1;
        self.interval += 1;
    }

    /// Adds the agent's own figures to the report and judges whether the
    /// generator limited the load.
    fn judge(&mut self, report: &mut IntervalReport, busy_us: u64) {
        let now = Instant::now();
        let seconds = now.saturating_duration_since(self.since).as_secs_f64();
        self.since = now;
        let cpu = self.cpu.sample();
        report.cpu_percent = cpu.cpu_percent;
        report.cpu_available_percent = cpu.available_percent;
        report.cpu_wait_percent = cpu.wait_percent;
        report.runtime_lag_us = self.lag.take_us();
        report.rss_bytes = crate::health::resident_bytes().unwrap_or(0);
        report.slot_occupancy =
            if seconds > 0.0 { busy_us as f64 / 1e6 / (seconds * self.slots.max(1) as f64) } else { 0.0 };
        let (ops, errors) = report.operations.iter().fold((0, 0), |(o, e), s| (o + s.count, e + s.error_count()));
        let start = self.interval as f64;
        let rate_per_s = match &self.stages {
            Some(stages) => Some(stages.mean(start, start + 1.0)),
            None => self.rate_per_s,
        };
        let signals = Signals {
            rate_per_s,
            slots: self.slots,
            seconds,
            late_sent: report.late_starts.saturating_sub(report.unsent_starts),
            ops,
            errors,
            cpu_percent: cpu.cpu_percent,
            cpu_available_percent: cpu.available_percent,
            cpu_wait_percent: cpu.wait_percent,
            runtime_lag_us: report.runtime_lag_us,
            slot_occupancy: report.slot_occupancy,
        };
        report.saturation = saturation::judge(&signals).into_iter().map(|r| r.as_str().to_string()).collect();
    }

    /// The final report: how many interval reports there were, and how many
    /// the outbox had to drop.
    pub fn finish(self, outbox: &Arc<Outbox>, cancelled: bool) {
        let run_id = self.run_id;
        let error = if cancelled { "cancelled".to_string() } else { String::new() };
        let reports_dropped = outbox.dropped(&run_id);
        if reports_dropped > 0 {
            tracing::warn!(run = %run_id, reports_dropped, "the report buffer was full while the coordinator was away; the oldest reports were dropped");
        }
        let (seq, interval_reports) = (self.seq, self.seq - self.first_seq);
        outbox.push(Outgoing::Final { run_id: run_id.clone(), seq, interval_reports, reports_dropped, error });
        tracing::info!(run = %run_id, intervals = seq, "assignment finished");
    }
}

/// The error messages of `report` with the endpoints' passwords hidden,
/// also a password cut short where a message was cut.
fn scrub(report: &mut IntervalReport, endpoints: &[String]) {
    // As written in the endpoint, and as the driver sent it (decoded).
    let mut secrets: Vec<String> = Vec::new();
    for written in endpoints.iter().filter_map(|e| password(e)) {
        secrets.push(written.to_string());
        secrets.push(percent_decode(written));
    }
    secrets.retain(|s| s.len() >= 3 && s != "***");
    if secrets.is_empty() {
        return;
    }
    for m in report.operations.iter_mut().flat_map(|op| op.error_messages.iter_mut()) {
        m.message = redact_text(&m.message, endpoints);
        for secret in &secrets {
            if m.message.contains(secret.as_str()) {
                m.message = m.message.replace(secret.as_str(), "***");
            }
        }
        for secret in &secrets {
            let cut = (3..secret.len()).rev().filter_map(|len| secret.get(..len)).find(|p| m.message.ends_with(p));
            if let Some(prefix) = cut {
                m.message.truncate(m.message.len() - prefix.len());
                m.message.push_str("***");
            }
        }
    }
}

#[cfg(test)]
mod scrub_tests {
    use super::*;
    use stampede_common::interval::{ErrorMessage, OperationStats};

    #[test]
    fn error_messages_never_show_a_password() {
        let endpoints =
            vec!["redis://bench:s3cret-pass@db:6379".to_string(), "http://u:a%2Bb%40cd@crate:4200".to_string()];
        let message = |text: &str| ErrorMessage { kind: "connection".into(), message: text.into(), count: 1 };
        let mut report = IntervalReport {
            operations: vec![OperationStats {
                error_messages: vec![
                    message("cannot connect to redis://bench:s3cret-pass@db:6379: refused"),
                    message("AUTH s3cret-pass failed"),
                    message("a message cut inside the password: s3cret-p"),
                    message("basic auth u:a+b@cd refused"),
                ],
                ..OperationStats::default()
            }],
            ..IntervalReport::default()
        };
        scrub(&mut report, &endpoints);
        let shown: Vec<&str> = report.operations[0].error_messages.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(
            shown,
            [
                "cannot connect to redis://bench:***@db:6379: refused",
                "AUTH *** failed",
                "a message cut inside the password: ***",
                "basic auth u:*** refused"
            ]
        );
    }
}
