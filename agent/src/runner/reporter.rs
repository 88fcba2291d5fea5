//! The reports of one assignment: every second the connections' and
//! listeners' recorders become one `IntervalReport` in the outbox; at the
//! end a `FinalReport` says how many were sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Assignment;
use super::recorder::{SharedRecorder, collect};
use crate::health::CpuMeter;
use crate::outbox::{Outbox, Outgoing};

const INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct Reporter {
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
}

impl Reporter {
    pub fn new(assignment: &Assignment, recorders: Vec<SharedRecorder>, start_at: Instant, notes: Vec<String>) -> Self {
        let scenario = &assignment.scenario;
        Self {
            run_id: assignment.run_id.clone(),
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
        }
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
        let mut report = collect(&self.recorders, self.operation_names, &self.run_id, self.seq, self.interval, warmup);
        report.cpu_percent = self.cpu.percent_since_last();
        report.notes = std::mem::take(&mut self.notes);
        outbox.push(Outgoing::Report(Box::new(report)));
        self.seq += 1;
        self.interval += 1;
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
