//! Count-limited runs (`load.operations`): `stampede run` with in-process
//! agents against a real `redis-server`; the operations a run makes are
//! counted by Redis itself (`INFO commandstats`), also each operation's
//! when they are counted one by one, and the report's rates are over the
//! time the run really took.

use std::time::{Duration, Instant};

use serde_json::Value;
use stampede_tests::{RunOutcome, command_calls, run_local, start_redis};

/// Runs a mixed get/set scenario against `target` with `load` and the
/// scenario's `duration` line (may be empty).
fn run(target: &str, agents: u32, duration: &str, load: &str) -> (RunOutcome, Duration) {
    let text = format!(
        "name: counted\n{duration}agents: {agents}\ntarget:\n  kind: redis\n  endpoints: [\"{target}\"]\n\
         load:\n{load}\nworkload:\n  kind: mixed\n  keys: 5000\n  weights: {{get: 3, set: 1}}\n"
    );
    let started = Instant::now();
    let outcome = run_local(&text, &[], &[], Duration::from_secs(180));
    (outcome, started.elapsed())
}

fn served(target: &str) -> u64 {
    command_calls(target, "get") + command_calls(target, "set")
}

fn reported(report: &Value) -> u64 {
    let measured = report["operations"]["get"]["count"].as_u64().unwrap_or(0)
        + report["operations"]["set"]["count"].as_u64().unwrap_or(0);
    measured + report["totals"]["warmup_ops"].as_u64().unwrap_or(0)
}

#[test]
fn a_count_not_divisible_by_agents_or_connections_is_made_exactly_as_redis_counts_it() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    // 100,003 over 3 agents and 7 connections (3, 2, 2), pipeline 4: no
    // share is whole.
    let (outcome, took) = run(&target, 3, "", "  connections: 7\n  pipeline: 4\n  operations: 100_003");
    let RunOutcome { code, report, stdout, stderr } = outcome;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(served(&target), 100_003, "Redis served exactly the count");
    assert_eq!(reported(&report), 100_003, "the report counts what Redis served: {}", report["operations"]);
    // Throughput is over the time taken, not the day a run without
    // `duration` may last at most.
    let measured_s = report["duration_s"].as_f64().expect("duration_s");
    assert!(measured_s > 0.0 && measured_s < took.as_secs_f64(), "{measured_s} s of {took:?}");
    let throughput = report["operations"]["get"]["throughput"].as_f64().unwrap_or(0.0)
        + report["operations"]["set"]["throughput"].as_f64().unwrap_or(0.0);
    assert!(
        (throughput * measured_s - 100_003.0).abs() < 2.0,
        "throughput {throughput}/s over {measured_s} s: {}",
        report["operations"]
    );
    assert!(stdout.contains("the run was limited to 100003 operations"), "the report says so: {stdout}");
}

#[test]
fn an_open_model_count_ends_when_it_is_done_and_leaves_no_start_unsent() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    // 3,001 at 2,000/s: done after about 1.5 s of the 60 s allowed.
    let (outcome, took) =
        run(&target, 2, "duration: 60s\n", "  model: open\n  rate: 2000/s\n  connections: 4\n  operations: 3001");
    let RunOutcome { code, report, stdout, stderr } = outcome;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(served(&target), 3001);
    assert_eq!(reported(&report), 3001);
    let measured_s = report["duration_s"].as_f64().expect("duration_s");
    assert!((1.2..3.0).contains(&measured_s), "about 1.5 s of load: {measured_s}");
    assert!(took < Duration::from_secs(40), "the run ended with its count, not at 60 s: {took:?}");
    // The starts planned beyond the count are not starts the target missed.
    assert_eq!(report["totals"]["unsent_starts"].as_u64().unwrap_or(0), 0, "{}", report["totals"]);
}

#[test]
fn with_both_a_duration_and_a_count_whichever_comes_first_ends_the_run() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let (outcome, _) = run(&target, 1, "duration: 2s\n", "  connections: 2\n  operations: 1_000_000_000_000");
    let RunOutcome { code, report, stdout, stderr } = outcome;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let served = served(&target);
    assert!(served > 0 && served < 1_000_000_000_000);
    assert_eq!(reported(&report), served, "the time limit came first");
    assert_eq!(report["duration_s"].as_f64(), Some(2.0), "measured over the whole duration");
}

#[test]
fn a_count_that_makes_no_sense_is_refused_with_what_to_write() {
    for (duration, load, needle) in [
        ("", "  connections: 2", "`load.operations: 1000000`"),
        ("", "  connections: 2\n  operations: 0", "must be at least 1"),
        ("", "  connections: 2\n  operations: 1.5", "not a whole number of operations"),
        ("", "  connections: 2\n  operations: lots", "not a whole number of operations"),
        ("", "  connections: 2\n  operations: 2000000000000000000", "more than"),
    ] {
        let (outcome, _) = run("127.0.0.1:1", 1, duration, load);
        assert_eq!(outcome.code, 2, "{load}: {}", outcome.stderr);
        assert!(outcome.stderr.contains(needle), "{load}: {}", outcome.stderr);
        assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
    }
}

#[test]
fn a_count_per_operation_is_made_exactly_for_each_as_redis_counts_them() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    // The counts replace the workload's 3:1 mix; none is divisible by the
    // 3 agents or 7 connections, and incr is named though the weights
    // leave it out.
    let (outcome, _) = run(
        &target,
        3,
        "",
        "  connections: 7\n  pipeline: 4\n  operations: {get: 20_001, set: 30_002, incr: 5, lpush: 0}",
    );
    let RunOutcome { code, report, stdout, stderr } = outcome;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(report["totals"]["warmup_ops"].as_u64(), Some(0), "no warm-up: every operation is in its row");
    for (command, count) in [("get", 20_001), ("set", 30_002), ("incr", 5), ("lpush", 0)] {
        assert_eq!(command_calls(&target, command), count, "Redis served exactly the count of {command}");
        assert_eq!(report["operations"][command]["count"].as_u64().unwrap_or(0), count, "{}", report["operations"]);
    }
    assert!(stdout.contains("the run was limited to 50008 operations"), "{stdout}");
}
