//! A coordinator, three agent processes and a target process complete a
//! submitted run; the report's totals equal the sum over agents and what the
//! target itself counted.

use std::time::Duration;

use serde_json::Value;
use stampede_tests::cluster::{Coordinator, CoordinatorBuilder, KvServer, KvServerBuilder, agent};
use stampede_tests::{
    Process, RunBuilder, RunOutcome, ScenarioBuilder, command_calls, run_stampede, start_redis, write_file,
};

fn scenario(kind: &str, endpoint: &str, thresholds: &[&str]) -> String {
    let mut scenario = ScenarioBuilder::new(&format!("e2e-{kind}"))
        .warmup("1s")
        .agents(3)
        .target(kind)
        .endpoints(&[endpoint])
        .load("connections: 6")
        .load("pipeline: 2")
        .workload("kind: kv")
        .workload("read_ratio: 0.7")
        .workload("keys: 5000");
    for threshold in thresholds {
        scenario = scenario.threshold(threshold);
    }
    scenario.yaml()
}

struct Cluster {
    _coordinator: Coordinator,
    _agents: Vec<Process>,
    url: String,
    _data: tempfile::TempDir,
}

fn start_cluster(agents: usize) -> Cluster {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().to_string_lossy().into_owned();
    let coordinator = CoordinatorBuilder::new(&data_dir).start();
    let url = coordinator.url.clone();
    let agents = (0..agents).map(|i| agent(&url, &format!("e2e-agent-{i}"), &[])).collect();
    Cluster { _coordinator: coordinator, _agents: agents, url, _data: data }
}

fn check_totals(report: &Value, target: &str) {
    assert_eq!(report["schema"], "stampede.report.v1");
    let agents = report["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 3);
    // Every agent took part, and the totals (warm-up included) add up.
    let agent_ops: u64 = agents.iter().map(|a| a["ops"].as_u64().expect("ops")).sum();
    assert!(agents.iter().all(|a| a["ops"].as_u64().expect("ops") > 0), "{agents:?}");
    let measured = report["totals"]["ops"].as_u64().expect("ops");
    let warmup = report["totals"]["warmup_ops"].as_u64().expect("warmup ops");
    assert!(measured > 0);
    assert_eq!(agent_ops, measured + warmup, "sum over agents equals totals");
    let ops = &report["operations"];
    let get = ops["get"]["count"].as_u64().expect("get count");
    let set = ops["set"]["count"].as_u64().expect("set count");
    assert_eq!(get + set, measured);
    // What the target counted equals what the agents did (each operation is
    // one command; warm-up operations reached the target too).
    let seen = command_calls(target, "get") + command_calls(target, "set");
    assert_eq!(seen, measured + warmup, "target saw exactly the operations reported");
    for key in ["min", "mean", "p50", "p90", "p99", "p999", "max"] {
        assert!(ops["get"]["latency_us"][key].is_number(), "latency_us.{key}");
    }
    assert!(report["totals"]["throughput"].as_f64().expect("throughput") > 0.0);
}

#[test]
fn a_submitted_run_on_three_agent_processes_matches_the_kv_servers_own_count() {
    let KvServer { process: _kv, address: target } = KvServerBuilder::new("kv-e2e").start();
    let cluster = start_cluster(3);
    let RunOutcome { code, report, stdout, stderr } =
        RunBuilder::new(&scenario("kv", &target, &["p99 < 1s", "error_rate < 1%"])).submit_to(&cluster.url).go();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("PASSED"), "{stdout}");
    assert_eq!(report["status"], "passed");
    assert_eq!(report["scenario"]["target"]["kind"], "kv");
    assert_eq!(report["nodes"]["kv-e2e"]["connections"], 6);
    check_totals(&report, &target);

    // The run is listed and its report can be fetched again.
    let run_id = report["run_id"].as_str().expect("run id");
    let (code, stdout, _) = run_stampede(&["runs", "--coordinator", &cluster.url], Duration::from_secs(20));
    assert_eq!(code, 0);
    assert!(stdout.contains(run_id) && stdout.contains("passed"), "{stdout}");
    let (code, stdout, _) =
        run_stampede(&["report", run_id, "--json", "--coordinator", &cluster.url], Duration::from_secs(20));
    assert_eq!(code, 0);
    let again: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(again["totals"], report["totals"]);
    let (code, stdout, _) = run_stampede(&["agents", "--coordinator", &cluster.url], Duration::from_secs(20));
    assert_eq!(code, 0);
    assert_eq!(stdout.matches("e2e-agent-").count(), 3, "{stdout}");
}

#[test]
fn a_submitted_run_against_real_redis_matches_redis_commandstats() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let cluster = start_cluster(3);
    // One threshold that cannot hold: the verdict must be `failed`, exit 1.
    let RunOutcome { code, report, stdout, stderr } =
        RunBuilder::new(&scenario("redis", &target, &["p99 < 1us"])).submit_to(&cluster.url).go();
    assert_eq!(code, 1, "thresholds failed -> exit 1\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("FAIL  p99 < 1us"), "{stdout}");
    assert_eq!(report["status"], "failed");
    assert_eq!(report["thresholds"][0]["passed"], false);
    assert!(report["nodes"].as_object().expect("nodes").keys().all(|n| n.starts_with("redis-")));
    check_totals(&report, &target);
}

#[test]
fn an_unreachable_target_fails_the_run_quickly_naming_the_endpoint() {
    let cluster = start_cluster(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = format!("127.0.0.1:{}", stampede_tests::free_port());
    let path = write_file(dir.path(), "dead.yaml", &scenario("redis", &dead, &["p99 < 1s"]));
    let (code, stdout, stderr) =
        run_stampede(&["submit", &path, "--coordinator", &cluster.url, "--wait"], Duration::from_secs(60));
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("ERROR") && stdout.contains(&dead), "{stdout}");
}
