//! Generator saturation, with real processes: `stampede run` against a
//! `stampede kv-server` pinned to CPU 0, once on its own and once pinned
//! (`taskset`) to CPU 1 beside three busy loops pinned there too. The same
//! open-model load passes `generator_saturated == 0` on its own and is
//! flagged, with its reasons, when the generator gets a quarter of a core;
//! the report's operations are the server's own count in both.

use std::process::Command;
use std::time::Duration;

use stampede_tests::cluster::KvServerBuilder;
use stampede_tests::{Process, ScenarioBuilder, get_set_calls, run_command, stampede_bin, write_file};

/// The CPU the generator is pinned to, and the busy loops share.
const GENERATOR_CPU: &str = "1";

/// Runs `stampede run`, pinned to [`GENERATOR_CPU`] or not; returns its
/// exit code, text output and JSON report.
fn generator_run(dir: &std::path::Path, name: &str, scenario: &str, pinned: bool) -> (i32, String, serde_json::Value) {
    let path = write_file(dir, &format!("{name}.yaml"), scenario);
    let json = dir.join(format!("{name}.json"));
    let mut command = Command::new(if pinned { "taskset" } else { "env" });
    if pinned {
        command.args(["-c", GENERATOR_CPU]);
    }
    command.arg(stampede_bin()).args(["run", &path, "--json"]).arg(&json);
    let (code, stdout, stderr) = run_command(command, Duration::from_secs(90));
    let report = std::fs::read_to_string(&json).ok().and_then(|t| serde_json::from_str(&t).ok());
    (code, format!("{stdout}\n{stderr}"), report.unwrap_or_default())
}

/// A process that burns [`GENERATOR_CPU`] until it is dropped.
fn busy_loop() -> Process {
    let mut command = Command::new("taskset");
    command.args(["-c", GENERATOR_CPU, "sh", "-c", "while :; do :; done"]);
    Process::spawn("busy loop", command)
}

#[test]
fn a_starved_generator_is_flagged_and_the_same_load_alone_is_not() {
    let kv = KvServerBuilder::new("kv-0").start();
    // The server keeps to the other CPU, so that the busy loops starve only
    // the generator.
    let pinned = Command::new("taskset").args(["-a", "-c", "-p", "0", &kv.process.pid().to_string()]).output();
    assert!(pinned.is_ok_and(|o| o.status.success()), "cannot pin the kv server to CPU 0");
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = ScenarioBuilder::new("pinned")
        .duration("8s")
        .warmup("1s")
        .endpoints(&[&kv.address])
        .load("model: open")
        .load("rate: 500/s")
        .load("connections: 4")
        .threshold("generator_saturated == 0")
        .yaml();

    // Alone means alone: other tests (or builds) on this machine can starve
    // the generator too, and then it is flagged rightly. A run flagged for
    // that is run again, at most three times in all.
    let mut attempts = 0;
    let (code, output, alone, served_alone) = loop {
        attempts += 1;
        let served_before = get_set_calls(&kv.address);
        let (code, output, alone) = generator_run(dir.path(), "alone", &scenario, false);
        let served = get_set_calls(&kv.address) - served_before;
        if code == 0 || attempts == 3 {
            break (code, output, alone, served);
        }
        eprintln!("attempt {attempts}: the machine was busy and the generator was flagged; running again:\n{output}");
    };
    assert_eq!(code, 0, "alone, the generator keeps up: {output}");
    assert_eq!(alone["totals"]["generator_saturated"].as_u64(), Some(0), "{output}");
    assert_eq!(
        alone["totals"]["ops"].as_u64().map(|ops| ops + alone["totals"]["warmup_ops"].as_u64().unwrap_or(0)),
        Some(served_alone)
    );
    let agent = &alone["agents"][0];
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    assert_eq!(agent["generator"]["cpu_available_percent"].as_f64(), Some(cpus * 100.0), "{agent}");
    assert_eq!(agent["planned_rate"].as_f64(), Some(500.0));

    let served_before_starved = get_set_calls(&kv.address);
    let hogs: Vec<Process> = (0..3).map(|_| busy_loop()).collect();
    let (code, output, starved) = generator_run(dir.path(), "starved", &scenario, true);
    drop(hogs);
    let served_starved = get_set_calls(&kv.address) - served_before_starved;
    assert_eq!(code, 1, "the threshold fails when the generator is starved: {output}");
    let totals = &starved["totals"];
    assert_eq!(
        totals["ops"].as_u64().map(|ops| ops + totals["warmup_ops"].as_u64().unwrap_or(0)),
        Some(served_starved),
        "the report's operations are the server's"
    );
    let flagged = totals["generator_saturated"].as_u64().unwrap_or(0);
    assert!(flagged >= 4, "most of the 7 measured intervals are flagged: {flagged}\n{output}");
    let generator = &starved["agents"][0]["generator"];
    assert_eq!(generator["cpu_available_percent"].as_f64(), Some(100.0), "taskset leaves one CPU: {generator}");
    let reasons = generator["reasons"].as_object().expect("reasons");
    assert!(
        reasons.contains_key("cpu_wait") || reasons.contains_key("idle_slots"),
        "starved of CPU, not the target's doing: {generator}"
    );
    let marked = starved["intervals"].as_array().expect("intervals").iter();
    assert!(marked.filter(|i| !i["saturated_agents"].as_array().is_none_or(Vec::is_empty)).count() as u64 == flagged);
    assert!(output.contains("generator-saturated: the load generator, not the target, limited the load"), "{output}");
    assert!(output.contains("FAIL  generator_saturated == 0"), "{output}");
}
