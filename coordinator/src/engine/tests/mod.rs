//! The engine driven without sockets: events and ticks at times the test
//! chooses (a fake clock), agents as the queues the engine writes to, and a
//! `MemoryStore`. What the engine decided is read from what it sent the
//! agents, what it stored and the report it wrote.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede_common::histogram;
use stampede_common::interval::{IntervalReport, OperationStats};
use stampede_common::report::Report;
use tokio::sync::{mpsc, oneshot};

use super::{ControlError, Engine, EngineConfig, Event, FinalReport, Now, ToAgent};
use crate::registry::AgentHello;
use crate::store::{MemoryStore, RunRecord, RunState, RunStore};

mod store;

/// 2025-11-25 00:00:00 UTC.
const EPOCH_US: i64 = 1_764_028_800_000_000;

fn config() -> EngineConfig {
    EngineConfig {
        heartbeat_timeout: Duration::from_secs(5),
        start_delay: Duration::from_secs(1),
        prepare_timeout: Duration::from_secs(30),
        finish_grace: Duration::from_secs(10),
        ..EngineConfig::default()
    }
}

/// A scenario for `agents` agents of two connections each.
fn scenario(agents: u32, extra: &str) -> String {
    format!(
        "name: engine\nduration: 3s\nagents: {agents}\ntarget:\n  kind: kv\n  endpoints: [\"127.0.0.1:7001\"]\n\
         load:\n  connections: {}\nworkload:\n  kind: kv\n  keys: 100\n{extra}",
        agents * 2
    )
}

/// `ops` GETs of 100 us each on node `kv-0`.
fn report(run_id: &str, seq: u64, interval: u64, ops: u64) -> IntervalReport {
    let mut latency = histogram::new_histogram();
    histogram::record_clamped_n(&mut latency, 100, ops);
    let bytes = histogram::encode(&latency).expect("encode");
    let stats = OperationStats {
        operation: "get".to_string(),
        node: "kv-0".to_string(),
        count: ops,
        errors: BTreeMap::new(),
        error_messages: Vec::new(),
        latency: bytes.clone(),
        service: bytes,
        clamped: 0,
        bytes_sent: 0,
        bytes_received: 0,
    };
    IntervalReport { run_id: run_id.to_string(), seq, interval, operations: vec![stats], ..IntervalReport::default() }
}

/// What a test agent says when its session opens.
fn hello(agent: &str) -> AgentHello {
    AgentHello {
        agent_id: agent.to_string(),
        host: format!("{agent}.test"),
        labels: BTreeMap::new(),
        capacity: 1,
        version: "test".to_string(),
        active_runs: Vec::new(),
    }
}

struct Harness {
    engine: Engine,
    store: Arc<MemoryStore>,
    now: Now,
    /// What the engine sent each agent, not yet read by the test.
    inboxes: BTreeMap<String, mpsc::UnboundedReceiver<ToAgent>>,
    sessions: u64,
}

impl Harness {
    fn new() -> Self {
        Self::on(Arc::new(MemoryStore::new()), Now { at: Instant::now(), unix_us: EPOCH_US })
    }

    /// An engine started over `store` at `now` (a coordinator restarting).
    fn on(store: Arc<MemoryStore>, now: Now) -> Self {
        Self::configured(store, now, config())
    }

    fn configured(store: Arc<MemoryStore>, now: Now, config: EngineConfig) -> Self {
        let engine = Engine::new(config, Arc::clone(&store) as Arc<dyn RunStore>, now);
        Self { engine, store, now, inboxes: BTreeMap::new(), sessions: 0 }
    }

    fn event(&mut self, event: Event) {
        self.engine.handle(event, self.now);
    }

    /// Moves the clock on by `by`, ticking every 100 ms as the engine task does.
    fn advance(&mut self, by: Duration) {
        let end = self.now.after(by);
        while self.now.at < end.at {
            self.now = self.now.after(Duration::from_millis(100)).min_at(end);
            self.engine.tick(self.now);
        }
    }

    /// An agent opens a session and its clock is measured.
    fn connect(&mut self, agent: &str) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.sessions += 1;
        self.event(Event::AgentConnected { hello: hello(agent), session: self.sessions, outbox: tx });
        self.event(Event::AgentClock { agent_id: agent.to_string(), offset_us: 0, rtt_us: 100 });
        self.inboxes.insert(agent.to_string(), rx);
    }

    fn heartbeat(&mut self, agents: &[&str]) {
        for agent in agents {
            self.event(Event::AgentHeartbeat { agent_id: agent.to_string(), cpu_percent: 1.0, rss_bytes: 1 << 20 });
        }
    }

    fn ask<T>(&mut self, build: impl FnOnce(oneshot::Sender<T>) -> Event) -> T {
        let (tx, mut rx) = oneshot::channel();
        self.event(build(tx));
        rx.try_recv().expect("the engine answers at once")
    }

    fn submit(&mut self, yaml: &str) -> Result<String, ControlError> {
        self.ask(|reply| Event::Submit { scenario_yaml: yaml.to_string(), agents: 0, reply })
    }

    fn messages(&mut self, agent: &str) -> Vec<ToAgent> {
        let inbox = self.inboxes.get_mut(agent).expect("a connected agent");
        std::iter::from_fn(|| inbox.try_recv().ok()).collect()
    }

    fn send_report(&mut self, agent: &str, report: IntervalReport) {
        self.event(Event::AgentReport { agent_id: agent.to_string(), report: Box::new(report) });
    }

    fn send_final(&mut self, agent: &str, run_id: &str, seq: u64, error: &str) {
        self.event(Event::AgentFinal {
            agent_id: agent.to_string(),
            report: FinalReport {
                run_id: run_id.to_string(),
                seq,
                interval_reports: 0,
                reports_dropped: 0,
                error: error.to_string(),
            },
        });
    }

    fn record(&self, run_id: &str) -> RunRecord {
        let records = self.store.list().expect("list");
        records.into_iter().find(|r| r.run_id == run_id).expect("the run is stored")
    }

    fn stored_report(&self, run_id: &str) -> Report {
        let (json, _) = self.store.load_report(run_id).expect("load").expect("a report is stored");
        serde_json::from_str(&json).expect("the stored report parses")
    }

    /// Submits a run over `agents`, gets every agent ready and returns the
    /// run id once the engine has sent Start.
    fn start_run(&mut self, agents: &[&str], extra: &str) -> String {
        self.start_run_with(agents, &scenario(agents.len() as u32, extra))
    }

    /// [`Self::start_run`] of a scenario of its own.
    fn start_run_with(&mut self, agents: &[&str], yaml: &str) -> String {
        for agent in agents {
            self.connect(agent);
        }
        let run_id = self.submit(yaml).expect("submitted");
        assert_eq!(self.record(&run_id).state, RunState::Queued);
        self.advance(Duration::from_millis(100));
        assert_eq!(self.record(&run_id).state, RunState::Preparing);
        for agent in agents {
            let assigned = self.messages(agent);
            assert!(
                matches!(assigned.as_slice(), [ToAgent::Assignment(a)] if a.run_id == run_id && a.first_seq == 0),
                "{agent}: {assigned:?}"
            );
            self.event(Event::AgentReady { agent_id: agent.to_string(), run_id: run_id.clone() });
        }
        let expected_start = self.now.unix_us + 1_000_000;
        for agent in agents {
            let started = self.messages(agent);
            assert_eq!(
                started,
                vec![ToAgent::Start { run_id: run_id.clone(), start_at_us: expected_start }],
                "{agent}: Start, one start delay ahead"
            );
        }
        assert_eq!(self.record(&run_id).state, RunState::Running);
        run_id
    }

    fn acks(&mut self, agent: &str) -> Vec<u64> {
        self.messages(agent)
            .into_iter()
            .filter_map(|m| match m {
                ToAgent::Ack { seq, .. } => Some(seq),
                _ => None,
            })
            .collect()
    }
}

impl Now {
    /// The earlier of the two.
    fn min_at(self, other: Now) -> Now {
        if self.at <= other.at { self } else { other }
    }
}

#[test]
fn a_run_goes_from_submission_through_its_intervals_to_its_report() {
    let mut h = Harness::new();
    let run_id = h.start_run(&["a1", "a2"], "");
    assert!(run_id.starts_with("r-20251125-000000-"), "{run_id}");
    h.advance(Duration::from_secs(1));
    // a1 in order, with a resend of seq 1; a2 out of order.
    for (seq, ops) in [(0, 100), (1, 110), (1, 110), (2, 120)] {
        h.send_report("a1", report(&run_id, seq, seq, ops));
    }
    for (seq, ops) in [(1, 210), (0, 200), (2, 220)] {
        h.send_report("a2", report(&run_id, seq, seq, ops));
    }
    assert_eq!(h.acks("a1"), vec![0, 1, 1, 2], "a duplicate is acknowledged again");
    assert_eq!(h.acks("a2"), vec![1, 0, 2]);
    let stored = h.store.load_intervals(&run_id).expect("load");
    assert_eq!(stored.len(), 6, "each report stored once, the duplicate not again");
    h.advance(Duration::from_secs(3));
    h.heartbeat(&["a1", "a2"]);
    h.send_final("a1", &run_id, 3, "");
    assert_eq!(h.record(&run_id).state, RunState::Running, "waiting for a2");
    h.send_final("a2", &run_id, 3, "");
    let record = h.record(&run_id);
    assert_eq!(record.state, RunState::Passed);
    let report = h.stored_report(&run_id);
    assert_eq!(report.totals.ops, 100 + 110 + 120 + 200 + 210 + 220, "the duplicate is counted once");
    assert_eq!(report.intervals.len(), 3);
    assert_eq!(h.acks("a1"), vec![3], "the final report is acknowledged");
    // The agents are free for the next run.
    let next = h.submit(&scenario(2, "")).expect("submitted");
    h.advance(Duration::from_millis(100));
    assert_eq!(h.record(&next).state, RunState::Preparing);
}

#[test]
fn a_report_the_agent_dropped_after_it_was_stored_is_not_counted_as_lost() {
    let mut h = Harness::new();
    let run_id = h.start_run(&["a1"], "");
    h.advance(Duration::from_secs(1));
    // Stored, but the acknowledgements never reached the agent (the
    // coordinator that stored them died): the agent later dropped seq 0
    // and 1 from its full buffer and counts both.
    h.send_report("a1", report(&run_id, 0, 0, 100));
    h.send_report("a1", report(&run_id, 1, 1, 100));
    h.send_report("a1", report(&run_id, 3, 3, 100));
    h.advance(Duration::from_secs(3));
    h.heartbeat(&["a1"]);
    h.event(Event::AgentFinal {
        agent_id: "a1".to_string(),
        report: FinalReport {
            run_id: run_id.clone(),
            seq: 4,
            interval_reports: 4,
            reports_dropped: 3,
            error: String::new(),
        },
    });
    let record = h.record(&run_id);
    assert_eq!(record.state, RunState::Passed);
    assert_eq!(record.reports_dropped.get("a1"), Some(&1), "only seq 2 never arrived");
    let report = h.stored_report(&run_id);
    assert_eq!(report.agents[0].intervals + report.agents[0].reports_dropped, 4);
}

#[test]
fn a_run_waits_for_enough_agents_and_runs_start_in_order() {
    let mut h = Harness::new();
    h.connect("a1");
    let first = h.submit(&scenario(2, "")).expect("submitted");
    let second = h.submit(&scenario(1, "")).expect("submitted");
    h.advance(Duration::from_secs(1));
    assert_eq!(h.record(&first).state, RunState::Queued, "one of two agents");
    assert_eq!(h.record(&second).state, RunState::Queued, "a later run does not overtake");
    h.connect("a2");
    h.advance(Duration::from_millis(100));
    assert_eq!(h.record(&first).state, RunState::Preparing);
    assert_eq!(h.record(&second).state, RunState::Queued, "no agent is idle");
}

#[test]
fn an_invalid_scenario_is_refused_at_submission() {
    let mut h = Harness::new();
    let error = h.submit("name: x\n").expect_err("invalid");
    assert!(matches!(error, ControlError::InvalidScenario(_)), "{error:?}");
    // More agents asked for at submission than the scenario has connections.
    let yaml = scenario(1, "");
    let error = h
        .ask(|reply| Event::Submit { scenario_yaml: yaml, agents: 3, reply })
        .expect_err("three agents for two connections");
    assert!(error.to_string().contains("every agent needs a connection"), "{error}");
    assert!(h.store.list().expect("list").is_empty());
}

/// Two agents run; a2 goes silent after its first interval.
fn lose_a2(policy: &str) -> (Harness, String) {
    let mut h = Harness::new();
    let run_id = h.start_run(&["a1", "a2"], &format!("on_agent_loss: {policy}\n"));
    h.advance(Duration::from_secs(1));
    h.send_report("a1", report(&run_id, 0, 0, 100));
    h.send_report("a2", report(&run_id, 0, 0, 100));
    for _ in 0..6 {
        h.advance(Duration::from_secs(1));
        h.heartbeat(&["a1"]);
    }
    (h, run_id)
}

#[test]
fn a_lost_agent_aborts_the_run_by_default() {
    let (h, run_id) = lose_a2("abort");
    let record = h.record(&run_id);
    assert_eq!(record.state, RunState::Aborted);
    assert_eq!(record.losses.len(), 1);
    assert_eq!(record.losses[0].agent, "a2");
    assert!(record.error.as_deref().is_some_and(|e| e.contains("agent a2 lost")), "{:?}", record.error);
    let report = h.stored_report(&run_id);
    assert_eq!(report.totals.ops, 200, "what the lost agent reported is kept");
}

#[test]
fn continue_and_tolerate_carry_on_and_an_agent_that_comes_back_is_marked_back() {
    for policy in ["continue", "{tolerate: 50%}"] {
        let (mut h, run_id) = lose_a2(policy);
        let record = h.record(&run_id);
        assert_eq!(record.state, RunState::Running, "{policy}");
        assert_eq!(record.losses.len(), 1, "{policy}");
        assert!(record.losses[0].back_at_s.is_none());
        // a2 was only cut off: it is heard again on its session.
        h.heartbeat(&["a2"]);
        let back = h.record(&run_id).losses[0].back_at_s.expect("back");
        assert!((back - 6.0).abs() < 0.5, "{policy}: back at {back}s after the start");
        h.send_final("a1", &run_id, 1, "");
        h.send_final("a2", &run_id, 1, "");
        assert_eq!(h.record(&run_id).state, RunState::Passed, "{policy}");
    }
}

#[test]
fn a_loss_beyond_the_tolerated_share_aborts() {
    let (h, run_id) = lose_a2("{tolerate: 30%}");
    let record = h.record(&run_id);
    assert_eq!(record.state, RunState::Aborted);
    assert!(record.error.as_deref().is_some_and(|e| e.contains("50% of the load")), "{:?}", record.error);
}

#[test]
fn a_restarted_agent_rejoins_with_its_assignment_numbered_after_its_reports() {
    let (mut h, run_id) = lose_a2("continue");
    h.messages("a2");
    h.connect("a2");
    let rejoin = h.messages("a2");
    assert!(matches!(rejoin.as_slice(), [ToAgent::Assignment(a)] if a.rejoin && a.first_seq == 1), "{rejoin:?}");
    h.event(Event::AgentReady { agent_id: "a2".to_string(), run_id: run_id.clone() });
    let start = h.messages("a2");
    assert!(matches!(start.as_slice(), [ToAgent::Start { start_at_us, .. }] if *start_at_us < h.now.unix_us));
}

#[test]
fn a_restarted_agent_of_a_counted_run_gets_what_its_earlier_self_had_not_reported() {
    // 1,001 GETs and 51 SETs over a1 and a2 (2 connections each): a2's
    // part is 500 and 25; it reported 100 GETs before it was lost.
    let mut h = Harness::new();
    let text = scenario(2, "on_agent_loss: continue\n")
        .replace("duration: 3s\n", "duration: 30s\n")
        .replace("  connections: 4\n", "  connections: 4\n  operations: {get: 1_001, set: 51}\n");
    let run_id = h.start_run_with(&["a1", "a2"], &text);
    let part = |messages: Vec<ToAgent>| {
        messages.into_iter().find_map(|m| match m {
            ToAgent::Assignment(a) => Some((a.plan.operations, a.plan.operation_counts.clone(), a.rejoin)),
            _ => None,
        })
    };
    h.advance(Duration::from_secs(1));
    h.send_report("a1", report(&run_id, 0, 0, 100));
    h.send_report("a2", report(&run_id, 0, 0, 100));
    for _ in 0..6 {
        h.advance(Duration::from_secs(1));
        h.heartbeat(&["a1"]);
    }
    h.messages("a2");
    h.connect("a2");
    assert_eq!(part(h.messages("a2")), Some((Some(425), Some(vec![400, 25]), true)));
}

#[test]
fn a_coordinator_restarted_mid_run_resumes_it_from_the_store() {
    let mut h = Harness::new();
    let run_id = h.start_run(&["a1", "a2"], "");
    h.advance(Duration::from_secs(1));
    h.send_report("a1", report(&run_id, 0, 0, 100));
    h.send_report("a2", report(&run_id, 0, 0, 200));
    let queued = h.submit(&scenario(5, "")).expect("a run still queued");
    // The coordinator stops; a new one starts on the same store 2 s later.
    let store = Arc::clone(&h.store);
    let mut h = Harness::on(store, h.now.after(Duration::from_secs(2)));
    assert_eq!(h.record(&queued).state, RunState::Error, "a queued run cannot be resumed");
    assert_eq!(h.record(&run_id).state, RunState::Running);
    h.connect("a1");
    h.connect("a2");
    // The agents carried on: they resend what was not acknowledged and
    // deliver their finals to the new coordinator.
    h.send_report("a1", report(&run_id, 0, 0, 100));
    h.send_report("a1", report(&run_id, 1, 1, 110));
    h.send_report("a2", report(&run_id, 1, 1, 210));
    h.send_final("a1", &run_id, 2, "");
    h.send_final("a2", &run_id, 2, "");
    assert_eq!(h.record(&run_id).state, RunState::Passed);
    assert_eq!(h.stored_report(&run_id).totals.ops, 100 + 200 + 110 + 210, "stored and resent, each once");
}

#[test]
fn cancelling_aborts_the_run_and_tells_its_agents() {
    let mut h = Harness::new();
    let run_id = h.start_run(&["a1"], "");
    let state = h.ask(|reply| Event::CancelRun { run_id: run_id.clone(), reply }).expect("cancelled");
    assert_eq!(state, RunState::Aborted);
    assert_eq!(h.record(&run_id).state, RunState::Aborted);
    assert!(
        h.messages("a1").iter().any(|m| matches!(m, ToAgent::Cancel { run_id: r, .. } if *r == run_id)),
        "the agent is told"
    );
    let again = h.ask(|reply| Event::CancelRun { run_id: run_id.clone(), reply }).expect("an ended run");
    assert_eq!(again, RunState::Aborted, "cancelling again answers its state");
    let missing = h.ask(|reply| Event::CancelRun { run_id: "r-none".to_string(), reply });
    assert!(matches!(missing, Err(ControlError::NotFound(_))));
}

/// a1 delivers its final report at the planned end; a2 never does.
fn a2_never_finishes(policy: &str) -> (Harness, String) {
    let mut h = Harness::new();
    let run_id = h.start_run(&["a1", "a2"], &format!("on_agent_loss: {policy}\n"));
    h.advance(Duration::from_secs(1));
    h.send_report("a1", report(&run_id, 0, 0, 100));
    h.send_report("a2", report(&run_id, 0, 0, 100));
    for _ in 0..3 {
        h.advance(Duration::from_secs(1));
        h.heartbeat(&["a1", "a2"]);
    }
    h.send_final("a1", &run_id, 1, "");
    (h, run_id)
}

#[test]
fn a_final_report_that_never_comes_ends_the_run_after_the_grace_and_the_teardown_limit() {
    let (mut h, run_id) = a2_never_finishes("abort");
    // a2 is alive past the grace (10 s after the planned end): its
    // teardown is awaited, within the teardown limit (600 s).
    for _ in 0..15 {
        h.advance(Duration::from_secs(1));
        h.heartbeat(&["a2"]);
    }
    assert_eq!(h.record(&run_id).state, RunState::Running, "a2 is alive: its teardown is awaited");
    for _ in 0..600 {
        h.advance(Duration::from_secs(1));
        h.heartbeat(&["a2"]);
    }
    let record = h.record(&run_id);
    assert_eq!(record.state, RunState::Error);
    assert!(record.error.as_deref().is_some_and(|e| e.contains("a2 did not deliver")), "{:?}", record.error);
    assert_eq!(h.stored_report(&run_id).totals.ops, 200, "its reported intervals are included");
}

#[test]
fn an_agent_silent_after_the_end_is_lost_under_the_runs_policy() {
    let (mut h, run_id) = a2_never_finishes("continue");
    h.advance(Duration::from_secs(6));
    let record = h.record(&run_id);
    assert_eq!(record.state, RunState::Passed, "continue: the run ends without it");
    assert_eq!(record.losses.len(), 1);
    let (mut h, run_id) = a2_never_finishes("abort");
    h.advance(Duration::from_secs(6));
    assert_eq!(h.record(&run_id).state, RunState::Aborted);
}

#[test]
fn agents_that_do_not_get_ready_in_time_fail_the_run() {
    let mut h = Harness::new();
    h.connect("a1");
    h.connect("a2");
    let run_id = h.submit(&scenario(2, "")).expect("submitted");
    h.advance(Duration::from_millis(100));
    h.event(Event::AgentReady { agent_id: "a1".to_string(), run_id: run_id.clone() });
    h.heartbeat(&["a1", "a2"]);
    for _ in 0..31 {
        h.advance(Duration::from_secs(1));
        h.heartbeat(&["a1", "a2"]);
    }
    let record = h.record(&run_id);
    assert_eq!(record.state, RunState::Error);
    assert!(record.error.as_deref().is_some_and(|e| e.contains("a2 did not get ready")), "{:?}", record.error);
}
