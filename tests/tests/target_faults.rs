//! The target fails mid-run, with real processes: a KV server (with a
//! password) stopped and started again on the same port while an agent
//! drives it. The run carries on through the gap with connection errors,
//! reconnects, and its successful operations equal what the two lives of
//! the server counted. The password appears in no log.

use std::process::Command;
use std::time::{Duration, Instant};

use stampede_tests::cluster::{AgentBuilder, CoordinatorBuilder, KvServerBuilder};
use stampede_tests::{
    Process, RunBuilder, RunOutcome, ScenarioBuilder, command_calls, free_port, get_set_calls, run_command,
};

const PASSWORD: &str = "kv-pw-8d2f61";

/// A password-protected KV server on a known port, so that it can be
/// restarted where the agent looks for it.
fn kv_server(port: u16) -> Process {
    KvServerBuilder::new("kv-0")
        .listen(&format!("127.0.0.1:{port}"))
        .env("STAMPEDE_KV_PASSWORD", PASSWORD)
        .start()
        .process
}

/// GET and SET calls in a `kv-server ... stopped after N commands (get=.. set=..)` line.
fn calls_in(line: &str, command: &str) -> u64 {
    line.split(['(', ')', ' '])
        .find_map(|word| word.strip_prefix(&format!("{command}=")))
        .map_or(0, |n| n.parse().expect("a count"))
}

#[test]
fn a_target_restarted_mid_run_costs_errors_not_measurements() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let endpoint = format!("redis://:{PASSWORD}@127.0.0.1:{port}");
    let mut first = kv_server(port);

    let coordinator = CoordinatorBuilder::new(dir.path().join("data")).start();
    let url = coordinator.url.clone();
    let _agent = AgentBuilder::new("agent-0")
        .coordinator(&url)
        .env("STAMPEDE_LOG", "debug")
        .log(dir.path().join("agent.log"))
        .start();

    let scenario = ScenarioBuilder::new("restart")
        .duration("10s")
        .endpoints(&[&endpoint])
        .load("connections: 2")
        .load("pipeline: 4")
        .threshold("error_rate < 50%")
        .yaml();
    let run = RunBuilder::new(&scenario)
        .submit_to(&url)
        .args(&["--quiet"])
        .timeout(Duration::from_secs(120))
        .files_in(dir.path(), "restart.yaml");
    let json = dir.path().join("report.json");
    let waiter = std::thread::spawn(move || run.go());

    // Traffic flows, then the server stops (SIGTERM: it answers what it
    // executed, closes, and prints its counts) and comes back 2 s later.
    let deadline = Instant::now() + Duration::from_secs(30);
    while command_calls(&endpoint, "get") == 0 {
        assert!(Instant::now() < deadline, "no traffic reached the server");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let pid = first.pid().to_string();
    let (code, _, stderr) = run_command(
        {
            let mut kill = Command::new("kill");
            kill.args(["-TERM", &pid]);
            kill
        },
        Duration::from_secs(10),
    );
    assert_eq!(code, 0, "{stderr}");
    let stopped = first.wait_for_line("stopped after", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.is_running() {
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let _second = kv_server(port);

    let RunOutcome { code, report, stdout, stderr } = waiter.join().expect("submit thread");
    assert_eq!(code, 0, "the run passes through the restart: {stdout}{stderr}");

    let errors_by_kind = |kind: &str| -> u64 {
        report["operations"]
            .as_object()
            .expect("operations")
            .values()
            .map(|o| o["errors_by_kind"][kind].as_u64().unwrap_or(0))
            .sum()
    };
    assert!(errors_by_kind("connection") > 0, "the gap shows as connection errors: {}", report["operations"]);
    let done = report["totals"]["ops"].as_u64().expect("ops") - report["totals"]["errors"].as_u64().expect("errors");
    let first_life = calls_in(&stopped, "get") + calls_in(&stopped, "set");
    let second_life = get_set_calls(&endpoint);
    assert!(first_life > 0 && second_life > 0, "{stopped}; second life {second_life}");
    assert_eq!(report["totals"]["warmup_ops"], 0);
    assert_eq!(done, first_life + second_life, "every successful operation was served, and only those ({stopped})");
    let intervals = report["intervals"].as_array().expect("intervals");
    assert!(intervals.last().expect("an interval")["ops"].as_u64().unwrap_or(0) > 0, "load resumed after the restart");

    let agent_log = std::fs::read_to_string(dir.path().join("agent.log")).expect("agent log");
    assert!(agent_log.contains("reconnect"), "the agent logged its reconnection: {agent_log}");
    assert!(!agent_log.contains(PASSWORD), "the password is not in the agent's log");
    assert!(!std::fs::read_to_string(&json).expect("report").contains(PASSWORD));
}
