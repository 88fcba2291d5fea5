//! The engine and its store: what is not stored is neither counted nor
//! acknowledged, a store that keeps refusing ends the run, and the
//! retention deletes old runs.

use std::sync::Arc;
use std::time::Duration;

use stampede_common::report::RunStatus;
use tokio::sync::mpsc;

use super::{Harness, config, report};
use crate::engine::{EngineConfig, Event, FinalReport};
use crate::store::{RunState, RunStore};

impl Harness {
    /// A final report announcing `interval_reports` interval reports.
    fn send_final_after(&mut self, agent: &str, run_id: &str, interval_reports: u64) {
        self.event(Event::AgentFinal {
            agent_id: agent.to_string(),
            report: FinalReport {
                run_id: run_id.to_string(),
                seq: interval_reports,
                interval_reports,
                reports_dropped: 0,
                error: String::new(),
            },
        });
    }

    /// Moves the clock on by `by` with `agents` heartbeating every second.
    fn live(&mut self, agents: &[&str], by: Duration) {
        let mut left = by;
        while !left.is_zero() {
            let step = left.min(Duration::from_secs(1));
            self.heartbeat(agents);
            self.advance(step);
            left -= step;
        }
    }

    fn watch(&mut self, run_id: &str) -> mpsc::Receiver<crate::engine::WatchUpdate> {
        self.ask(|reply| Event::Watch { run_id: run_id.to_string(), reply }).expect("a run to watch")
    }
}

#[test]
fn a_report_the_store_refuses_is_neither_counted_nor_acknowledged_until_it_is_stored() {
    let mut h = Harness::new();
    let run_id = h.start_run(&["a1"], "");
    let mut updates = h.watch(&run_id);
    h.advance(Duration::from_secs(1));
    h.send_report("a1", report(&run_id, 0, 0, 100));
    assert_eq!(h.acks("a1"), vec![0]);

    h.store.refuse_intervals(Some("No space left on device"));
    h.send_report("a1", report(&run_id, 1, 1, 110));
    h.send_report("a1", report(&run_id, 1, 1, 110));
    assert!(h.acks("a1").is_empty(), "a report that was not stored is not acknowledged, nor its resend");
    let said: Vec<String> = std::iter::from_fn(|| updates.try_recv().ok()).map(|u| u.message).collect();
    assert!(said.iter().any(|m| m.starts_with("store: ") && m.contains("No space left on device")), "{said:?}");
    let metrics = h.ask(|reply| Event::Metrics { reply });
    assert_eq!(metrics.store_errors, 2);

    // The final report waits for the interval report the store has not taken.
    h.live(&["a1"], Duration::from_secs(3));
    h.send_final_after("a1", &run_id, 2);
    assert!(h.acks("a1").is_empty(), "the final report waits for its interval reports");
    h.live(&["a1"], Duration::from_secs(30));
    assert_eq!(h.record(&run_id).state, RunState::Running, "the store decides, not the finish grace");

    // The store takes writes again: the resends are stored, counted, acked.
    h.store.refuse_intervals(None);
    h.send_report("a1", report(&run_id, 1, 1, 110));
    assert_eq!(h.acks("a1"), vec![1]);
    h.send_final_after("a1", &run_id, 2);
    assert_eq!(h.acks("a1"), vec![2]);
    let report = h.stored_report(&run_id);
    assert_eq!(report.status, RunStatus::Passed, "{:?}", report.error);
    assert_eq!(report.totals.ops + report.totals.warmup_ops, 210, "each report counted once");
    assert!(
        report.notes.iter().any(|n| n.contains("2 writes refused") && n.contains("was stored")),
        "{:?}",
        report.notes
    );
    assert_eq!(h.store.load_intervals(&run_id).expect("intervals").len(), 2);
}

#[test]
fn a_store_that_keeps_refusing_ends_the_run_in_error_and_agents_keep_their_reports() {
    let mut h = Harness::new();
    let run_id = h.start_run(&["a1"], "");
    h.advance(Duration::from_secs(1));
    h.store.refuse_intervals(Some("etcdserver: mvcc: database space exceeded"));
    h.send_report("a1", report(&run_id, 0, 0, 100));
    h.live(&["a1"], config().store_error_timeout - Duration::from_secs(1));
    assert_eq!(h.record(&run_id).state, RunState::Running);
    h.live(&["a1"], Duration::from_secs(2));
    let record = h.record(&run_id);
    assert_eq!(record.state, RunState::Error);
    let why = record.error.expect("why");
    assert!(why.contains("refused writes for 180s") && why.contains("database space exceeded"), "{why}");
    assert!(record.store_failed);
    // What the store did not take is not acknowledged after the end either.
    h.messages("a1");
    h.send_report("a1", report(&run_id, 0, 0, 100));
    h.send_final_after("a1", &run_id, 1);
    assert!(h.acks("a1").is_empty(), "the agent keeps what was never stored");
}

#[test]
fn ended_runs_past_the_retention_are_deleted_and_running_ones_kept() {
    let mut h = Harness::new();
    let old = h.start_run(&["a1"], "");
    h.advance(Duration::from_secs(1));
    h.send_report("a1", report(&old, 0, 0, 100));
    h.send_final_after("a1", &old, 1);
    assert_eq!(h.record(&old).state, RunState::Passed);
    let store = Arc::clone(&h.store);
    let day = Duration::from_secs(86_400);
    let retention = EngineConfig { retention: Some(30 * day), ..config() };
    // 29 days later the run is kept; 31 days later it is gone.
    let mut h = Harness::configured(Arc::clone(&store), h.now.after(29 * day), retention.clone());
    h.advance(Duration::from_millis(100));
    assert_eq!(store.list().expect("list").len(), 1);
    let running = h.start_run(&["a2"], "");
    let mut h = Harness::configured(Arc::clone(&store), h.now.after(2 * day), retention);
    h.advance(Duration::from_millis(100));
    let left: Vec<String> = store.list().expect("list").into_iter().map(|r| r.run_id).collect();
    assert_eq!(left, vec![running.clone()], "the ended run went; the one still running stays");
    let listed = h.ask(|reply| Event::ListRuns { scenario: None, reply });
    assert!(listed.iter().all(|run| run.record.run_id != old), "nor does the coordinator list it");
}
