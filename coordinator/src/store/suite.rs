//! The checks every `RunStore` passes (test builds only), called the same
//! way for each: `check(&open)`, where `open` opens the store anew over the
//! same data (a new `FileStore` on the same directory, a new `EtcdStore` on
//! the same etcd, the same `MemoryStore`), as a restarted coordinator would.

use std::collections::BTreeSet;
use std::sync::Arc;

use stampede_common::interval::IntervalReport;

use super::{RunRecord, RunState, RunStore, StoredInterval};

pub fn record(run_id: &str, state: RunState) -> RunRecord {
    RunRecord {
        run_id: run_id.to_string(),
        name: "suite".to_string(),
        target_kind: "kv".to_string(),
        state,
        submitted_at_unix_s: 1_764_000_000,
        agent_count: 2,
        endpoints: vec!["127.0.0.1:6379".to_string()],
        agents: Vec::new(),
        start_at_us: None,
        error: None,
        plans: Vec::new(),
        finals: Default::default(),
        losses: Vec::new(),
        reports_dropped: Default::default(),
        trace_context: Default::default(),
        store_failed: false,
        figures: None,
    }
}

fn interval(agent: &str, seq: u64) -> StoredInterval {
    let report = IntervalReport {
        run_id: "r-suite-1".to_string(),
        seq,
        interval: seq,
        late_starts: seq * 7,
        ..Default::default()
    };
    StoredInterval { agent_id: agent.to_string(), report }
}

/// The distinct (agent, seq) of `intervals`, checking that copies agree.
fn distinct(intervals: &[StoredInterval]) -> BTreeSet<(String, u64)> {
    for stored in intervals {
        assert_eq!(stored, &interval(&stored.agent_id, stored.report.seq), "an interval comes back as it was stored");
    }
    intervals.iter().map(|s| (s.agent_id.clone(), s.report.seq)).collect()
}

pub fn check(open: &dyn Fn() -> Arc<dyn RunStore>) {
    let store = open();
    assert_eq!(store.list().expect("list"), Vec::new(), "a new store holds no run");

    // Create: the record, the scenario as shown and as written.
    let first = record("r-suite-1", RunState::Queued);
    store.create(&first, "pw: ***", Some("pw: hunter2")).expect("create");
    store.create(&record("r-suite-0", RunState::Passed), "name: zero", None).expect("create a second run");
    assert_eq!(store.load_scenario("r-suite-1").expect("scenario"), "pw: hunter2", "as written while it is needed");
    assert_eq!(store.load_scenario("r-suite-0").expect("scenario"), "name: zero");

    // Append, and append again (a resend after a lost acknowledgement).
    for (agent, seq) in [("agent-a", 0), ("agent-a", 1), ("agent-b", 0)] {
        store.append_interval("r-suite-1", &interval(agent, seq)).expect("append");
    }
    store.append_interval("r-suite-1", &interval("agent-a", 1)).expect("appending again is not an error");
    let expected: BTreeSet<(String, u64)> =
        [("agent-a", 0), ("agent-a", 1), ("agent-b", 0)].into_iter().map(|(a, s)| (a.to_string(), s)).collect();
    assert_eq!(distinct(&store.load_intervals("r-suite-1").expect("load")), expected);
    assert!(store.load_intervals("r-suite-0").expect("load").is_empty(), "intervals belong to their run");

    // Update, then reopen: everything is still there.
    let mut running = first.clone();
    running.state = RunState::Running;
    running.start_at_us = Some(1_764_000_001_000_000);
    store.update(&running).expect("update");
    drop(store);
    let store = open();
    let listed = store.list().expect("list after reopening");
    assert_eq!(listed, vec![record("r-suite-0", RunState::Passed), running.clone()], "listed in run id order");
    assert_eq!(distinct(&store.load_intervals("r-suite-1").expect("load after reopening")), expected);
    assert_eq!(store.load_scenario("r-suite-1").expect("scenario"), "pw: hunter2");

    // The report, and the private scenario forgotten once the run ended.
    assert_eq!(store.load_report("r-suite-1").expect("no report yet"), None);
    store.save_report("r-suite-1", "{\"status\":\"passed\"}", "PASSED").expect("save report");
    store.forget_private("r-suite-1").expect("forget");
    store.forget_private("r-suite-1").expect("forgetting twice is fine");
    let mut ended = running;
    ended.state = RunState::Passed;
    store.update(&ended).expect("update");
    drop(store);
    let store = open();
    assert_eq!(
        store.load_report("r-suite-1").expect("report"),
        Some(("{\"status\":\"passed\"}".to_string(), "PASSED".to_string()))
    );
    assert_eq!(store.load_scenario("r-suite-1").expect("scenario"), "pw: ***", "the password is gone");
    assert!(store.list().expect("list").iter().all(|r| r.is_terminal()));

    // What the store holds for a run: something for a run with a report,
    // nothing for one it does not know.
    assert!(store.stored_bytes("r-suite-1").expect("size") > "PASSED".len() as u64);
    assert_eq!(store.stored_bytes("r-unknown").expect("size"), 0);

    // Retention: ended runs submitted before the cut-off go, with all they stored.
    let mut unfinished = record("r-suite-2", RunState::Running);
    unfinished.submitted_at_unix_s = 1;
    store.create(&unfinished, "name: two", None).expect("create a running run");
    assert_eq!(store.prune(1_764_000_000).expect("prune"), 0, "nothing submitted before the cut-off ended");
    assert_eq!(store.prune(1_764_000_001).expect("prune"), 2, "both ended runs go");
    assert_eq!(store.list().expect("list"), vec![unfinished], "a run that has not ended stays");
    assert_eq!(store.load_report("r-suite-1").expect("no report"), None);
    assert!(store.load_intervals("r-suite-1").expect("no intervals").is_empty());
}

#[test]
fn the_memory_store_passes_the_suite() {
    let store = Arc::new(super::MemoryStore::new());
    check(&|| Arc::clone(&store) as Arc<dyn RunStore>);
}

#[test]
fn the_file_store_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    check(&|| Arc::new(super::FileStore::open(dir.path()).expect("open")));
}

fn etcd_config(etcd: &stampede_tests::etcd::Etcd, prefix: &str) -> stampede_discovery::EtcdConfig {
    stampede_discovery::EtcdConfig::parse(&etcd.url, prefix, 5).expect("etcd address")
}

#[test]
fn the_etcd_store_passes_the_suite_against_real_etcd() {
    let etcd = stampede_tests::etcd::Etcd::start();
    let config = etcd_config(&etcd, "/suite");
    check(&|| Arc::new(super::EtcdStore::open(config.clone(), None).expect("open")));
}

/// A leader's store writes only while it leads: once it has resigned and
/// another coordinator won the election, its writes are refused and the new
/// leader's are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_writes_are_refused() {
    let etcd = stampede_tests::etcd::Etcd::start();
    let config = etcd_config(&etcd, "/fencing");
    let client = stampede_discovery::Etcd::connect(&config).await.expect("connect");
    let first = client.campaign("http://first").await.expect("the first coordinator leads");
    let open = |fence| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || super::EtcdStore::open(config, Some(fence)).expect("open"))
    };
    let deposed = open(first.fence.clone()).await.expect("store");
    let mut before = record("r-fence-1", RunState::Running);
    let written = tokio::task::block_in_place(|| deposed.create(&before, "name: fence", None));
    written.expect("the leader writes");
    first.resign().await;
    let second = client.campaign("http://second").await.expect("the second coordinator leads");
    let leader = open(second.fence.clone()).await.expect("store");
    before.state = RunState::Aborted;
    let refused = tokio::task::block_in_place(|| deposed.update(&before)).expect_err("a deposed leader is refused");
    assert!(refused.to_string().contains("leader"), "{refused}");
    let appended = tokio::task::block_in_place(|| deposed.append_interval("r-fence-1", &interval("agent-a", 0)));
    assert!(appended.is_err(), "nor can it store an interval");
    let mut after = record("r-fence-1", RunState::Running);
    after.error = Some("resumed by the second".to_string());
    tokio::task::block_in_place(|| leader.update(&after)).expect("the new leader writes");
    let listed = tokio::task::block_in_place(|| leader.list()).expect("list");
    assert_eq!(listed, vec![after]);
    assert!(tokio::task::block_in_place(|| leader.load_intervals("r-fence-1")).expect("load").is_empty());
}

/// An interval report of about 8 KB, as a 5-operation workload's is.
fn big_interval(run_id: &str, agent: &str, seq: u64) -> StoredInterval {
    let report = IntervalReport {
        run_id: run_id.to_string(),
        seq,
        interval: seq,
        notes: vec![format!("{seq:08}").repeat(1000)],
        ..Default::default()
    };
    StoredInterval { agent_id: agent.to_string(), report }
}

/// Once a run's report is stored its interval keys go and etcd's history
/// is compacted: over 20 runs the database stops growing.
#[test]
fn etcd_stays_flat_over_many_runs() {
    let etcd = stampede_tests::etcd::Etcd::start();
    let store = super::EtcdStore::open(etcd_config(&etcd, "/hygiene"), None).expect("open");
    let mut sizes = Vec::new();
    for run in 0..20 {
        let run_id = format!("r-hygiene-{run:02}");
        store.create(&record(&run_id, RunState::Running), "name: hygiene", None).expect("create");
        for seq in 0..60 {
            store.append_interval(&run_id, &big_interval(&run_id, "agent-a", seq)).expect("append");
        }
        assert_eq!(store.load_intervals(&run_id).expect("load").len(), 60);
        store.save_report(&run_id, "{\"status\":\"passed\"}", "PASSED").expect("report");
        store.update(&record(&run_id, RunState::Passed)).expect("update");
        assert!(store.load_intervals(&run_id).expect("load").is_empty(), "the intervals go with the report");
        assert!(store.load_report(&run_id).expect("report").is_some(), "the report stays");
        sizes.push(etcd.db_size());
    }
    assert_eq!(store.list().expect("list").len(), 20, "every run's record stays");
    // 20 runs wrote 20 x 60 x 8 KB = 9.6 MB; the database reuses the space.
    let (after_five, last) = (sizes[4], sizes[19]);
    assert!(last <= after_five + (1 << 20), "etcd grew from {after_five} to {last} bytes: {sizes:?}");
    assert!(last < 6 << 20, "etcd holds {last} bytes after 20 runs: {sizes:?}");
}

#[test]
fn the_postgres_store_passes_the_suite_against_real_postgresql() {
    let postgres = stampede_tests::Postgres::start();
    let url = postgres.url();
    check(&|| Arc::new(super::PostgresStore::open(&url, Some(1)).expect("open")));
}

/// Two coordinators share one results database: the one with the later
/// term writes, the earlier one is refused, and one cannot come back with
/// an earlier term.
#[test]
fn a_deposed_leaders_writes_to_postgresql_are_refused() {
    let postgres = stampede_tests::Postgres::start();
    let url = postgres.url();
    let first = super::PostgresStore::open(&url, Some(5)).expect("the first leader");
    let mut run = record("r-pg-fence", RunState::Running);
    first.create(&run, "name: fence", None).expect("the leader writes");
    let second = super::PostgresStore::open(&url, Some(7)).expect("a later leader");
    run.state = RunState::Aborted;
    let refused = first.update(&run).expect_err("the deposed leader is refused");
    assert!(refused.to_string().contains("no longer leads") && refused.to_string().contains("term 7"), "{refused}");
    assert!(first.append_interval("r-pg-fence", &interval("agent-a", 0)).is_err(), "nor can it store an interval");
    second.append_interval("r-pg-fence", &interval("agent-a", 0)).expect("the new leader writes");
    assert_eq!(second.list().expect("list"), vec![record("r-pg-fence", RunState::Running)]);
    let late = super::PostgresStore::open(&url, Some(6)).err().expect("an earlier term cannot take over");
    assert!(late.to_string().contains("term 7 holds"), "{late}");
}
