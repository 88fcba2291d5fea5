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

async fn next(inbox: &mut mpsc::UnboundedReceiver<crate::engine::ToAgent>) -> crate::engine::ToAgent {
    tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await.expect("in time").expect("open")
}

/// Agents as real sessions would be: a heartbeat and an interval report a
/// second each, sent from their own task while the engine runs as it does
/// in the coordinator, on its own task. Returns after the last ones.
async fn agents_talking(
    handle: crate::engine::EngineHandle,
    agents: &'static [&'static str],
    run_id: String,
    seconds: u64,
) {
    for second in 0..seconds {
        if second > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        for agent in agents {
            let heartbeat = Event::AgentHeartbeat { agent_id: agent.to_string(), cpu_percent: 1.0, rss_bytes: 1 };
            handle.send(heartbeat).expect("the engine runs");
            let report = Box::new(report(&run_id, second, second, 100));
            handle.send(Event::AgentReport { agent_id: agent.to_string(), report }).expect("the engine runs");
        }
    }
}

/// A store whose interval writes take seconds (etcd while its write-ahead
/// log takes seconds to sync, as seen in the compose check) holds the
/// engine task up. Messages that arrived meanwhile count from when they
/// arrived, and all of them are handled before the engine judges silence:
/// no agent is called lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_heard_while_slow_store_writes_held_the_engine_up_are_not_lost() {
    use crate::engine::{engine_channel, start_engine_on};
    use crate::store::MemoryStore;

    const AGENTS: &[&str] = &["a1", "a2", "a3"];
    let store = Arc::new(MemoryStore::new());
    let config = EngineConfig { heartbeat_timeout: Duration::from_secs(2), ..config() };
    let (handle, events) = engine_channel();
    let engine = start_engine_on(config, Arc::clone(&store) as Arc<dyn RunStore>, events);
    let mut inboxes = Vec::new();
    for (session, agent) in AGENTS.iter().enumerate() {
        let (outbox, inbox) = mpsc::unbounded_channel();
        handle
            .send(Event::AgentConnected { hello: super::hello(agent), session: session as u64, outbox })
            .expect("send");
        handle.send(Event::AgentClock { agent_id: agent.to_string(), offset_us: 0, rtt_us: 100 }).expect("send");
        inboxes.push(inbox);
    }
    let yaml = super::scenario(3, "").replace("duration: 3s", "duration: 60s");
    let run_id = handle
        .ask(|reply| Event::Submit { scenario_yaml: yaml, agents: 0, reply })
        .await
        .expect("the engine answers")
        .expect("submitted");
    for (agent, inbox) in AGENTS.iter().zip(&mut inboxes) {
        let assigned = next(inbox).await;
        assert!(matches!(assigned, crate::engine::ToAgent::Assignment(_)), "{assigned:?}");
        handle.send(Event::AgentReady { agent_id: agent.to_string(), run_id: run_id.clone() }).expect("send");
    }
    for inbox in &mut inboxes {
        let started = next(inbox).await;
        assert!(matches!(started, crate::engine::ToAgent::Start { .. }), "{started:?}");
    }

    // For 4 s each write takes 1 s: the reports arrive faster than the
    // engine stores them, and between two words of one agent the engine is
    // held up for 3 s by the three agents' reports, longer than the
    // heartbeat timeout.
    store.stall_intervals(Some(Duration::from_secs(1)));
    let talking = tokio::spawn(agents_talking(handle.clone(), AGENTS, run_id.clone(), 6));
    tokio::time::sleep(Duration::from_secs(4)).await;
    store.stall_intervals(None);
    talking.await.expect("the agents talked");
    // The backlog was worked off while the agents went on talking: their
    // last reports are stored within the heartbeat timeout.
    let stored = || store.load_intervals(&run_id).expect("load").len();
    for _ in 0..10 {
        if stored() < 18 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let record = store.list().expect("list").into_iter().find(|r| r.run_id == run_id).expect("stored");
    assert_eq!(record.state, RunState::Running, "{:?}", record.error);
    assert!(record.losses.is_empty(), "{:?}", record.losses);
    assert_eq!(stored(), 18, "every report is stored");
    let listed = handle.ask(|reply| Event::ListAgents { reply }).await.expect("the engine answers");
    assert_eq!(listed.len(), 3);
    engine.abort();
}
