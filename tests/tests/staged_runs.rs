//! `load.stages` with `stampede run` against a real `redis-server`: the
//! open model's rate ramps as planned (each interval's operations against
//! the rate the stages give for it, worked out here from the scenario),
//! Redis served every operation the report counts, per-stage thresholds
//! grade their stage, and the closed model's connections ramp.

use std::time::Duration;

use serde_json::Value;
use stampede_tests::{RunOutcome, command_calls, run_local, start_redis};

fn served(target: &str) -> u64 {
    command_calls(target, "get") + command_calls(target, "set")
}

/// The planned operations in interval [i, i+1) of: 2 s at 500/s, a ramp to
/// 1500/s over 2 s, 2 s at 1500/s.
fn planned(i: u64) -> f64 {
    let rate = |t: f64| {
        if t < 2.0 {
            500.0
        } else if t < 4.0 {
            500.0 + 500.0 * (t - 2.0)
        } else {
            1500.0
        }
    };
    // The rate is linear within each interval: the mean is at the middle.
    rate(i as f64 + 0.5)
}

#[test]
fn an_open_model_ramp_is_followed_interval_by_interval_and_graded_per_stage() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let text = format!(
        "name: ramp\nagents: 2\ntarget:\n  kind: redis\n  endpoints: [\"{target}\"]\nload:\n  model: open\n  \
         connections: 4\n  rate: 500/s\n  stages:\n    - {{duration: 2s, rate: 500/s}}\n    - {{duration: 2s, rate: 1500/s}}\n    \
         - {{duration: 2s, rate: 1500/s}}\nworkload:\n  kind: mixed\n  weights: {{get: 1, set: 1}}\n\
         thresholds:\n  - stage(1).throughput > 400/s\n  - stage(3).get.throughput > 100000/s\n"
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(120));
    // The second threshold asks for far more than stage 3 offers.
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let ops = report["totals"]["ops"].as_u64().expect("ops");
    assert_eq!(served(&target), ops, "Redis served what the report counts");
    // 1000 + 2000 + 3000 planned starts.
    assert!((5_900..=6_000).contains(&ops), "{ops}");
    let intervals = report["intervals"].as_array().expect("intervals");
    for interval in intervals {
        let index = interval["index"].as_u64().expect("index");
        if index >= 6 {
            continue;
        }
        let plan = planned(index);
        let stated = interval["planned_rate"].as_f64().expect("planned_rate");
        assert!((stated - plan).abs() < 1e-6, "interval {index}: the report plans {stated}, the stages {plan}");
        let achieved = interval["ops"].as_f64().expect("ops");
        assert!((achieved - plan).abs() <= plan * 0.05, "interval {index}: {achieved} ops against {plan} planned");
    }
    let stages = report["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 3);
    assert_eq!((stages[1]["planned_from"].as_f64(), stages[1]["planned_to"].as_f64()), (Some(500.0), Some(1500.0)));
    let stage_ops: u64 = stages.iter().map(|s| s["ops"].as_u64().unwrap_or(0)).sum();
    assert_eq!(stage_ops, ops, "every measured operation is in one stage");
    let thresholds = report["thresholds"].as_array().expect("thresholds");
    assert_eq!(thresholds[0]["passed"], true, "{thresholds:?}");
    let third = stages[2]["throughput"].as_f64().expect("throughput");
    assert!((1_400.0..1_600.0).contains(&third), "{third}");
    assert_eq!(thresholds[1]["passed"], false);
    let observed = thresholds[1]["observed"].as_f64().expect("observed");
    assert!(observed > 0.0 && observed < third, "stage 3's gets alone: {observed}");
    assert!(stdout.contains("500 -> 1500/s"), "the text report has the stage table: {stdout}");
}

#[test]
fn closed_model_stages_ramp_the_active_connections() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let text = format!(
        "name: ramp-closed\nagents: 2\ntarget:\n  kind: redis\n  endpoints: [\"{target}\"]\nload:\n  stages:\n    \
         - {{duration: 2s, connections: 1}}\n    - {{duration: 2s, connections: 4}}\nworkload:\n  kind: mixed\n  \
         weights: {{get: 1, set: 1}}\n"
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(120));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(served(&target), report["totals"]["ops"].as_u64().expect("ops"));
    let stages: Vec<&Value> = report["stages"].as_array().expect("stages").iter().collect();
    assert_eq!(stages[0]["unit"], "connections");
    assert_eq!((stages[1]["planned_from"].as_f64(), stages[1]["planned_to"].as_f64()), (Some(1.0), Some(4.0)));
    // The most connections a stage wants are opened, over both agents.
    assert_eq!(report["scenario"]["connections"], 4);
    let planned: Vec<f64> = report["intervals"]
        .as_array()
        .expect("intervals")
        .iter()
        .filter_map(|i| i["planned_connections"].as_f64())
        .collect();
    assert_eq!(&planned[..4], &[1.0, 1.0, 1.75, 3.25]);
    assert!(stages.iter().all(|s| s["ops"].as_u64().unwrap_or(0) > 0), "{stages:?}");
}
