//! `stampede sweep` against a real `redis-server`: a findmax-like search
//! over the open model's rate finds a knee between its last passing and
//! first failing step, below what the closed model reaches on the same
//! connections in the same test; a list of connection counts gets its
//! Universal Scalability Law fit; Redis counts every operation every step
//! made; and a sweep whose first step fails exits 1.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use stampede_tests::{command_calls, run_command, run_local, stampede_bin, start_redis, write_file};

fn served(target: &str) -> u64 {
    command_calls(target, "get") + command_calls(target, "set")
}

fn sweep(dir: &std::path::Path, text: &str) -> (i32, Value, String) {
    let scenario = write_file(dir, "sweep.yaml", text);
    let json = dir.join("sweep.json");
    let mut command = Command::new(stampede_bin());
    command.args(["sweep", &scenario, "--json"]).arg(&json);
    let (code, stdout, stderr) = run_command(command, Duration::from_secs(600));
    let report = std::fs::read_to_string(&json).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    (code, report, format!("{stdout}\n{stderr}"))
}

/// Every step's operations, warm-up's included.
fn step_ops(report: &Value) -> u64 {
    report["steps"].as_array().map_or(0, |steps| steps.iter().map(|s| s["ops"].as_u64().unwrap_or(0)).sum())
}

#[test]
fn a_rate_search_finds_a_knee_between_its_last_pass_and_first_failure_below_the_closed_loop_maximum() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let body = format!(
        "duration: 2s\nagents: 1\ntarget:\n  kind: redis\n  endpoints: [\"{target}\"]\nworkload:\n  kind: mixed\n  \
         weights: {{get: 1, set: 1}}\n"
    );
    // The closed model on 4 connections: the most these connections carry.
    let closed =
        run_local(&format!("name: closed-max\n{body}load:\n  connections: 4\n"), &[], &[], Duration::from_secs(60));
    assert_eq!(closed.code, 0, "{}\n{}", closed.stdout, closed.stderr);
    let maximum = closed.report["totals"]["throughput"].as_f64().expect("throughput");
    let before = served(&target);
    // The open model on the same 4 connections: a step passes while it
    // achieves 90% of what it offers.
    let start = (maximum / 16.0).floor().max(100.0);
    let (code, report, output) = sweep(
        dir.path(),
        &format!(
            "name: rate-search\n{body}load:\n  model: open\n  connections: 4\nsweep:\n  over: load.rate\n  \
             search: {{start: {start}/s, factor: 2, resolution: 10%, max_steps: 14}}\n  achieved: 90%\n  \
             slo: [\"error_rate < 1%\"]\n"
        ),
    );
    assert_eq!(code, 0, "a knee was found: {output}");
    assert_eq!(served(&target) - before, step_ops(&report), "Redis served every step's operations: {output}");
    let steps = report["steps"].as_array().expect("steps");
    let knee = report["knee"]["level"].as_f64().expect("knee");
    let passes: Vec<f64> = steps.iter().filter(|s| s["passed"] == true).filter_map(|s| s["level"].as_f64()).collect();
    let failures: Vec<f64> =
        steps.iter().filter(|s| s["passed"] == false).filter_map(|s| s["level"].as_f64()).collect();
    assert_eq!(passes.iter().copied().fold(0.0, f64::max), knee, "the knee is the highest pass");
    let first_failure = failures.iter().copied().filter(|f| *f > knee).fold(f64::MAX, f64::min);
    assert!(first_failure < f64::MAX, "the search found where it fails: {output}");
    assert!(first_failure - knee <= knee * 0.1 + 1e-9, "bisected to 10%: {knee} .. {first_failure}: {output}");
    // In the open model 4 connections carry at most what the closed model
    // keeps them busy with (10% for the noise of two runs).
    let achieved = report["knee"]["achieved"].as_f64().expect("achieved");
    assert!(achieved <= maximum * 1.1, "knee {achieved}/s against the closed-loop {maximum}/s: {output}");
    assert!(output.contains("knee: load.rate"), "{output}");
}

#[test]
fn a_connection_sweep_gets_a_usl_fit_and_a_failing_first_step_exits_1() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let body = format!(
        "duration: 1s\nagents: 2\ntarget:\n  kind: redis\n  endpoints: [\"{target}\"]\nworkload:\n  kind: mixed\n  \
         weights: {{get: 1, set: 1}}\n"
    );
    let (code, report, output) = sweep(
        dir.path(),
        &format!(
            "name: conns\n{body}sweep:\n  over: load.connections\n  steps: [1, 2, 4, 8]\n  slo: [\"error_rate < 1%\"]\n"
        ),
    );
    assert_eq!(code, 0, "{output}");
    assert_eq!(served(&target), step_ops(&report), "{output}");
    let steps = report["steps"].as_array().expect("steps");
    let concurrency: Vec<f64> = steps.iter().filter_map(|s| s["concurrency"].as_f64()).collect();
    assert_eq!(concurrency, [1.0, 2.0, 4.0, 8.0]);
    let usl = &report["usl"];
    assert!(usl["lambda"].as_f64().is_some_and(|l| l > 0.0), "{usl}");
    assert!(usl["r_squared"].as_f64().is_some(), "{usl}");
    // Little's law: a closed model keeps every slot waiting on Redis.
    for step in steps {
        let ratio = step["little_ratio"].as_f64().expect("little");
        assert!((0.5..1.2).contains(&ratio), "in flight by Little's law over slots: {step}");
    }
    assert!(output.contains("USL fit"), "{output}");
    // An SLO no step can meet: exit 1, no knee.
    let (code, report, output) = sweep(
        dir.path(),
        &format!("name: never\n{body}sweep:\n  over: load.connections\n  steps: [1, 2]\n  slo: [\"p99 < 1us\"]\n"),
    );
    assert_eq!(code, 1, "{output}");
    assert!(report["knee"].is_null(), "{report}");
    assert!(output.contains("even the first step failed"), "{output}");
}

#[test]
fn a_sweep_that_cannot_run_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, said) in [
        ("name: s\nduration: 1s\ntarget:\n  kind: kv\nworkload:\n  kind: kv\n", "has no `sweep:` section"),
        (
            "name: s\nduration: 1s\ntarget:\n  kind: kv\nworkload:\n  kind: kv\nsweep:\n  over: load.rate\n  steps: [1]\n  slo: [\"p99 < 1ms\"]\n",
            "model: open",
        ),
    ] {
        let (code, _, output) = sweep(dir.path(), text);
        assert_eq!(code, 2, "{output}");
        assert!(output.contains(said), "{output}");
    }
    // `run` does not run a sweep by accident.
    let scenario = write_file(
        dir.path(),
        "s.yaml",
        "name: s\nduration: 1s\ntarget:\n  kind: kv\nworkload:\n  kind: kv\nsweep:\n  over: connections\n  steps: [1]\n  slo: [\"p99 < 1s\"]\n",
    );
    let mut command = Command::new(stampede_bin());
    command.args(["run", &scenario]);
    let (code, _, stderr) = run_command(command, Duration::from_secs(60));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("stampede sweep"), "{stderr}");
}
