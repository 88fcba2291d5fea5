//! A store that refuses writes, with real processes: the coordinator's data
//! directory is a tmpfs of a few megabytes that the test fills up mid-run.
//! Nothing that was not stored is counted or acknowledged: the agent keeps
//! it and sends it again, the coordinator says that the store refuses
//! writes, and once there is room again (even after a coordinator restart
//! meanwhile) the run completes with totals equal to what the KV server
//! itself counted. A store that stays full ends the run in `error`, naming
//! the cause.
//!
//! Skipped with a message when not root, unless STAMPEDE_REQUIRE_NETNS=1.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use stampede_tests::cluster::{AgentBuilder, Coordinator, CoordinatorBuilder, KvServerBuilder};
use stampede_tests::disk::SmallDisk;
use stampede_tests::{
    RunBuilder, RunOutcome, ScenarioBuilder, free_port, get_set_calls, http_get, run_id_in, run_stampede,
    wait_for_report,
};

fn coordinator(data: &Path, listen: &str, store_timeout: &str) -> Coordinator {
    CoordinatorBuilder::new(data).listen(listen).http().args(&["--store-error-timeout", store_timeout]).start()
}

fn scenario(name: &str, endpoint: &str, duration: &str) -> String {
    ScenarioBuilder::new(name)
        .duration(duration)
        .endpoints(&[endpoint])
        .load("connections: 2")
        .load("model: open")
        .load("rate: 400/s")
        .yaml()
}

/// `stampede_store_errors_total` on the coordinator's HTTP port (0 while
/// it does not lead yet).
fn store_errors(coordinator: &Coordinator) -> u64 {
    let (status, body) = http_get(coordinator.http.as_deref().expect("an HTTP port"), "/metrics", None);
    if status == 503 {
        return 0;
    }
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix("stampede_store_errors_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no stampede_store_errors_total in {body}"))
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the coordinator at `url` lists the agent `id`.
fn wait_for_agent(url: &str, id: &str) {
    wait_until(&format!("agent {id} connects to {url}"), Duration::from_secs(30), || {
        run_stampede(&["agents", "--coordinator", url], Duration::from_secs(10)).1.contains(id)
    });
}

/// The interval reports stored for the one run in `data`.
fn stored_intervals(data: &Path) -> usize {
    let Ok(runs) = std::fs::read_dir(data.join("runs")) else { return 0 };
    runs.filter_map(Result::ok)
        .filter_map(|run| std::fs::read_to_string(run.path().join("intervals.jsonl")).ok())
        .map(|text| text.lines().count())
        .sum()
}

fn node_ops(report: &Value) -> u64 {
    report["nodes"].as_object().expect("nodes").values().map(|n| n["ops"].as_u64().unwrap_or(0)).sum()
}

#[test]
fn a_full_disk_holds_the_reports_back_until_there_is_room_even_across_a_restart() {
    let Some(disk) = SmallDisk::mount(4 << 20) else { return };
    let data = disk.path().join("data");
    let kv = KvServerBuilder::new("kv-0").start();
    let listen = format!("127.0.0.1:{}", free_port());
    let first = coordinator(&data, &listen, "60s");
    let url = first.url.clone();
    let _agent = AgentBuilder::new("agent-0").coordinator(&url).start();
    wait_for_agent(&url, "agent-0");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = stampede_tests::write_file(dir.path(), "soak.yaml", &scenario("full-disk", &kv.address, "14s"));
    let (code, stdout, stderr) = run_stampede(&["submit", &path, "--coordinator", &url], Duration::from_secs(30));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let run_id = run_id_in(&stdout);
    wait_until("two intervals are stored", Duration::from_secs(30), || stored_intervals(&data) >= 2);

    disk.fill();
    wait_until("the coordinator reports refused writes", Duration::from_secs(20), || store_errors(&first) > 0);
    // Counted once a write was refused: until then an append can still fit
    // in the unused end of the file's last page.
    let stored_when_full = stored_intervals(&data);

    // The coordinator dies while the disk is full and comes back on it.
    drop(first);
    let second = coordinator(&data, &listen, "60s");
    wait_until("the restarted coordinator meets refused writes", Duration::from_secs(30), || store_errors(&second) > 0);
    assert_eq!(stored_intervals(&data), stored_when_full, "nothing was stored while the disk was full");

    disk.free();
    let report = wait_for_report(&url, &run_id, Duration::from_secs(90));
    assert_eq!(report["status"], "passed", "{report}");
    let served = get_set_calls(&kv.address);
    assert!(served > 0);
    assert_eq!(report["totals"]["warmup_ops"], 0);
    assert_eq!(node_ops(&report), served, "the report's operations equal the KV server's own count");
    let notes: Vec<&str> = report["notes"].as_array().expect("notes").iter().filter_map(Value::as_str).collect();
    assert!(
        notes.iter().any(|n| n.contains("writes refused") && n.contains("No space left on device")),
        "the report says the store refused writes: {notes:?}"
    );
    assert!(stored_intervals(&data) > stored_when_full, "the held reports were stored once there was room");
}

#[test]
fn a_disk_that_stays_full_ends_the_run_in_error_naming_the_cause() {
    let Some(disk) = SmallDisk::mount(4 << 20) else { return };
    let data = disk.path().join("data");
    let kv = KvServerBuilder::new("kv-0").start();
    let listen = format!("127.0.0.1:{}", free_port());
    let coordinator = coordinator(&data, &listen, "4s");
    let _agent = AgentBuilder::new("agent-0").coordinator(&coordinator.url).start();
    wait_for_agent(&coordinator.url, "agent-0");
    let run = RunBuilder::new(&scenario("stays-full", &kv.address, "30s"))
        .submit_to(&coordinator.url)
        .timeout(Duration::from_secs(120));
    let waiter = std::thread::spawn(move || run.go());
    wait_until("an interval is stored", Duration::from_secs(30), || stored_intervals(&data) >= 1);
    disk.fill();
    let started = Instant::now();
    let RunOutcome { code, report, stdout, stderr } = waiter.join().expect("submit thread");
    assert!(started.elapsed() < Duration::from_secs(25), "the run ended early, after {:?}", started.elapsed());
    assert_ne!(code, 0, "{stdout}{stderr}");
    assert_eq!(report["status"], "error", "{report}\n{stdout}{stderr}");
    let why = report["error"].as_str().expect("why");
    assert!(why.contains("refused writes for 4s") && why.contains("No space left on device"), "{why}");
    assert!(stderr.contains("store: cannot store interval reports"), "the live line said so: {stderr}");
}

/// Puts up to `count` values of 100 KB (an argument's limit is 128 KB)
/// under `/filler/` until etcd refuses one; returns whether it did.
fn fill_etcd(etcd: &stampede_tests::etcd::Etcd, count: usize) -> bool {
    let value = "x".repeat(100 * 1024);
    (0..count).any(|i| {
        let (code, _, stderr) = etcd.etcdctl(&["put", &format!("/filler/{i}"), &value]);
        code != 0 && stderr.contains("database space exceeded")
    })
}

#[test]
fn etcd_over_its_quota_holds_the_reports_back_until_it_has_room_even_across_a_restart() {
    let etcd =
        stampede_tests::etcd::Etcd::start_with(free_port(), &["--quota-backend-bytes", &(8u64 << 20).to_string()]);
    let kv = KvServerBuilder::new("kv-0").start();
    let data = tempfile::tempdir().expect("tempdir");
    let listen = format!("127.0.0.1:{}", free_port());
    let start_coordinator = |name: &str| {
        CoordinatorBuilder::new(data.path().join(name))
            .listen(&listen)
            .http()
            .args(&["--etcd", &etcd.url, "--etcd-prefix", "/quota", "--store-error-timeout", "60s"])
            .start()
    };
    let coordinator = start_coordinator("a");
    let url = coordinator.url.clone();
    let _agent = AgentBuilder::new("agent-0").coordinator(&url).start();
    wait_for_agent(&url, "agent-0");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = stampede_tests::write_file(dir.path(), "quota.yaml", &scenario("etcd-quota", &kv.address, "14s"));
    let (code, stdout, stderr) = run_stampede(&["submit", &path, "--coordinator", &url], Duration::from_secs(30));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let run_id = run_id_in(&stdout);
    let intervals = format!("/quota/runs/{run_id}/intervals/");
    wait_until("two intervals are stored", Duration::from_secs(30), || etcd.keys(&intervals).len() >= 2);

    assert!(fill_etcd(&etcd, 400), "etcd refuses writes once past its quota");
    wait_until("the coordinator reports refused writes", Duration::from_secs(20), || store_errors(&coordinator) > 0);
    std::thread::sleep(Duration::from_secs(2));
    // The leader dies while etcd is full; the agent keeps what was not stored.
    drop(coordinator);

    // Room again, as an operator makes it: delete, compact, defragment,
    // disarm the alarm.
    let (code, _, stderr) = etcd.etcdctl(&["del", "--prefix", "/filler/"]);
    assert_eq!(code, 0, "{stderr}");
    let (_, status, _) = etcd.etcdctl(&["endpoint", "status", "-w", "json"]);
    let revision = serde_json::from_str::<Value>(&status).expect("status")[0]["Status"]["header"]["revision"]
        .as_u64()
        .expect("revision");
    for args in [
        vec!["compact".to_string(), revision.to_string()],
        vec!["defrag".into()],
        vec!["alarm".into(), "disarm".into()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = etcd.etcdctl(&args);
        assert_eq!(code, 0, "etcdctl {args:?}: {stderr}");
    }
    // A new coordinator wins the election and resumes the run from etcd.
    let _coordinator = start_coordinator("b");

    let report = wait_for_report(&url, &run_id, Duration::from_secs(90));
    assert_eq!(report["status"], "passed", "{report}");
    let served = get_set_calls(&kv.address);
    assert!(served > 0);
    assert_eq!(node_ops(&report), served, "the report's operations equal the KV server's own count");
    // (The refusals were the first coordinator's: the one that resumed the
    // run met none, so its report has no note of them.)
    assert!(etcd.keys(&intervals).is_empty(), "once the report is stored its interval keys go");
}
