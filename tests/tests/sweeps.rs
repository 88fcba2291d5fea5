//! `stampede sweep` against a real `redis-server`: a findmax-like search
//! over the open model's rate finds a knee between its last passing and
//! first failing step, below what the closed model reaches on the same
//! connections in the same test; a list of connection counts gets its
//! Universal Scalability Law fit; Redis counts every operation every step
//! made; a sweep whose first step fails exits 1; a sweep over agents runs
//! on a coordinator given and its agents; the page shows it all.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use stampede_tests::browser::{Browser, figure, number};
use stampede_tests::cluster::{CoordinatorBuilder, agent};
use stampede_tests::{command_calls, run_command, run_local, stampede_bin, start_redis, write_file};

fn served(target: &str) -> u64 {
    command_calls(target, "get") + command_calls(target, "set")
}

fn sweep(dir: &std::path::Path, text: &str) -> (i32, Value, String) {
    let scenario = write_file(dir, "sweep.yaml", text);
    let json = dir.join("sweep.json");
    let mut command = Command::new(stampede_bin());
    command.args(["sweep", &scenario, "--json"]).arg(&json).arg("--html").arg(dir.join("sweep.html"));
    let (code, stdout, stderr) = run_command(command, Duration::from_secs(600));
    let report = std::fs::read_to_string(&json).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    (code, report, format!("{stdout}\n{stderr}"))
}

/// Every step's operations, warm-up's included.
fn step_ops(report: &Value) -> u64 {
    report["steps"].as_array().map_or(0, |steps| steps.iter().map(|s| s["ops"].as_u64().unwrap_or(0)).sum())
}

/// The sweep's page in a real browser: every step's figures and the knee
/// are the JSON's, both charts drew every step, the knee is marked, and
/// nothing went wrong (no script error, no request left the page).
fn the_page_shows(page: &std::path::Path, report: &Value) {
    let mut browser = Browser::start(1280, 1000);
    browser.open(&format!("file://{}", page.display()));
    browser.wait_for("window.stampedeReport.ready || window.stampedeReport.error !== null", Duration::from_secs(30));
    assert_eq!(browser.eval("window.stampedeReport.error"), Value::Null);
    let cells = browser.figures("#report");
    let steps = report["steps"].as_array().expect("steps");
    for step in steps {
        let n = step["step"].as_u64().expect("step");
        for field in ["level", "achieved", "p50_us", "p99_us", "p999_us", "errors"] {
            assert_eq!(figure(&cells, &format!("step.{n}.{field}")), number(&step[field]), "step {n} {field}");
        }
        assert_eq!(figure(&cells, &format!("step.{n}.passed")), number(&step["passed"]), "step {n}");
    }
    let knee = &report["knee"];
    assert_eq!(figure(&cells, "knee.level"), number(&knee["level"]));
    assert_eq!(figure(&cells, "knee.achieved"), number(&knee["achieved"]));
    assert_eq!(browser.eval("document.getElementById('verdict').dataset.status"), "passed");
    assert_eq!(browser.eval("window.stampedeReport.knee.step"), knee["step"], "the knee is marked");
    let usl = &report["usl"];
    for field in ["sigma", "kappa", "lambda", "r_squared"] {
        assert_eq!(figure(&cells, &format!("usl.{field}")), number(&usl[field]), "usl {field}");
    }
    // Every step is a point of both charts; the knee series has one point.
    let points = browser.eval(
        "(() => { const c = window.stampedeReport.charts; return [c.latency.data[0].length, \
         c.throughput.data[0].length, c.latency.data[4].filter(v => v !== null).length]; })()",
    );
    assert_eq!(points, serde_json::json!([steps.len(), steps.len(), 1]), "points drawn");
    let problems = browser.problems();
    assert!(problems.is_empty(), "{problems:#?}");
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
    the_page_shows(&dir.path().join("sweep.html"), &report);
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

#[test]
fn a_sweep_over_agents_runs_on_a_coordinator_given_and_its_agents() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorBuilder::new(data.path()).start();
    let _agents: Vec<_> = (1..=3).map(|i| agent(&coordinator.url, &format!("remote-{i}"), &[])).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let steps = dir.path().join("steps");
    let scenario = write_file(
        dir.path(),
        "agents.yaml",
        &format!(
            "name: over-agents\nduration: 1s\ntarget:\n  kind: redis\n  endpoints: [\"{target}\"]\nload:\n  \
             connections: 6\nworkload:\n  kind: mixed\n  weights: {{get: 1, set: 1}}\nsweep:\n  over: agents\n  \
             steps: [1, 2, 3]\n  slo: [\"error_rate < 1%\"]\n"
        ),
    );
    let json = dir.path().join("sweep.json");
    let mut command = Command::new(stampede_bin());
    command.args(["sweep", &scenario, "--coordinator", &coordinator.url, "--json"]).arg(&json).arg("--out").arg(&steps);
    let (code, stdout, stderr) = run_command(command, Duration::from_secs(300));
    let output = format!("{stdout}\n{stderr}");
    assert_eq!(code, 0, "{output}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("sweep.json")).expect("json");
    assert_eq!(served(&target), step_ops(&report), "Redis served every step's operations: {output}");
    // Each step ran on as many of the coordinator's agents as its level,
    // and every one of them sent load.
    for n in 1..=3 {
        let step: Value =
            serde_json::from_str(&std::fs::read_to_string(steps.join(format!("step-{n}.json"))).expect("step"))
                .expect("json");
        let agents = step["agents"].as_array().expect("agents");
        assert_eq!(agents.len(), n, "step {n}: {agents:?}");
        assert!(agents.iter().all(|a| a["id"].as_str().is_some_and(|id| id.starts_with("remote-"))), "{agents:?}");
        assert!(agents.iter().all(|a| a["ops"].as_u64().unwrap_or(0) > 0), "{agents:?}");
        assert_eq!(step["scenario"]["connections"], 6 * n, "the scenario's connections are one agent's");
    }
    assert_eq!(report["knee"]["level"], 3.0, "{output}");
    assert!(report["usl"]["lambda"].as_f64().is_some(), "a closed-model sweep over agents is fitted too: {report}");
}
