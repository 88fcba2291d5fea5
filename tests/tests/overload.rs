//! The open model overloaded, with real processes: `stampede run` (its
//! coordinator and agent in one process) against a `stampede kv-server`.
//! An absurd rate ends on time in bounded memory with every intended start
//! accounted for against the server's own count; a sustained overload keeps
//! the agent's resident memory flat (a separate agent process, sampled).

use std::process::Command;
use std::time::{Duration, Instant};

use stampede_tests::cluster::{CoordinatorBuilder, KvServerBuilder, agent};
use stampede_tests::{Process, RunBuilder, ScenarioBuilder, get_set_calls, stampede_bin, write_file};

/// The resident memory of `pid` in KiB (`VmRSS` of /proc), 0 once it is gone.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `scenario` with `stampede run`, sampling its resident memory every
/// 200 ms; returns (exit code, seconds it took, samples in KiB, report).
fn run_sampled(scenario: &str, dir: &std::path::Path) -> (i32, f64, Vec<u64>, serde_json::Value) {
    let path = write_file(dir, "overload.yaml", scenario);
    let json = dir.join("report.json");
    let mut command = Command::new(stampede_bin());
    command.args(["run", &path, "-q", "--json"]).arg(&json);
    let started = Instant::now();
    let mut process = Process::spawn("stampede run", command);
    let mut samples = Vec::new();
    let code = loop {
        if let Some(code) = process.exit_code() {
            break code;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the run did not end within 120 s");
        samples.push(rss_kib(process.pid()));
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = started.elapsed().as_secs_f64();
    let report = std::fs::read_to_string(&json).ok().and_then(|t| serde_json::from_str(&t).ok());
    (code, took, samples, report.unwrap_or_default())
}

fn open_scenario(name: &str, endpoint: &str, rate: &str, duration: &str) -> String {
    ScenarioBuilder::new(name)
        .duration(duration)
        .endpoints(&[endpoint])
        .load("model: open")
        .load(&format!("rate: {rate}"))
        .load("connections: 2")
        .yaml()
}

#[test]
fn a_billion_per_second_ends_on_time_in_bounded_memory_with_every_start_counted() {
    let kv = KvServerBuilder::new("kv-0").start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, took, samples, report) =
        run_sampled(&open_scenario("absurd", &kv.address, "1000000000/s", "3s"), dir.path());
    assert_eq!(code, 0, "{report}");
    // 3 s of load, at most 6 s of drain (the operation timeout and a
    // second), and the start-up of the run.
    assert!(took < 3.0 + 6.0 + 3.0, "the run took {took:.1} s");
    let peak_mib = samples.iter().max().copied().unwrap_or(0) / 1024;
    assert!(peak_mib < 100, "resident memory reached {peak_mib} MiB");
    let served = get_set_calls(&kv.address);
    let totals = &report["totals"];
    let unsent = totals["unsent_starts"].as_u64().expect("unsent_starts");
    let late = totals["late_starts"].as_u64().expect("late_starts");
    assert_eq!(totals["ops"].as_u64(), Some(served), "the report's operations are the server's");
    assert_eq!(served + unsent, 3_000_000_000, "intended starts: 1e9/s x 3 s, each sent or counted as never sent");
    assert!(
        late >= unsent && late - unsent <= served,
        "late {late}: the unsent {unsent} and some of the sent {served}"
    );
    // An impossible rate runs, and the report says so: in its notes, naming
    // the field and the bound, and in every measured interval.
    let notes = report["notes"].as_array().expect("notes");
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .is_some_and(|n| n.contains("load.rate 1000000000/s is beyond") && n.contains("at most 10000000/s"))),
        "{notes:?}"
    );
    let agent = &report["agents"][0];
    assert_eq!(
        agent["generator"]["reasons"]["rate"].as_u64(),
        Some(totals["generator_saturated"].as_u64().unwrap_or(0))
    );
    assert!(totals["generator_saturated"].as_u64() >= Some(2), "{totals}");
    assert_eq!(agent["planned_rate"].as_f64(), Some(1e9));
}

#[test]
fn a_sustained_overload_keeps_the_agents_resident_memory_flat() {
    let kv = KvServerBuilder::new("kv-0").start();
    let data = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorBuilder::new(data.path()).start();
    let mut agent = agent(&coordinator.url, "a1", &[]);
    let (agent_pid, coordinator_pid) = (agent.pid(), coordinator.process.pid());
    // Far beyond what one KV server and two connections do on this machine.
    let scenario = open_scenario("sustained", &kv.address, "1000000/s", "30s");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampling = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                samples.push((rss_kib(agent_pid), rss_kib(coordinator_pid)));
                std::thread::sleep(Duration::from_millis(200));
            }
            samples
        })
    };
    let outcome = RunBuilder::new(&scenario).submit_to(&coordinator.url).go();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampling.join().expect("samples");
    assert!(agent.is_running(), "the agent is still up");
    let report = &outcome.report;
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    let served = get_set_calls(&kv.address);
    let unsent = report["totals"]["unsent_starts"].as_u64().expect("unsent_starts");
    assert!(unsent > 9 * served, "at least 10x overloaded: {served} sent, {unsent} never sent");
    // The report says how far behind the rate it was, per agent.
    let agent_report = &report["agents"][0];
    let achieved = agent_report["achieved_rate"].as_f64().expect("achieved_rate");
    assert_eq!(agent_report["planned_rate"].as_f64(), Some(1e6));
    assert!(achieved > 0.0 && achieved < 1e5, "achieved {achieved}/s of 1000000/s");
    // After the first 5 s the agent's resident memory stays within 10 MiB
    // of what it was; the coordinator's, which keeps the run's time
    // windows (bounded, see aggregate/windows.rs), stays under 150 MiB.
    let agent_rss: Vec<u64> = samples.iter().skip(25).map(|s| s.0).filter(|kib| *kib > 0).collect();
    let (first, peak) = (agent_rss[0], agent_rss.iter().max().copied().unwrap_or(0));
    eprintln!("agent resident memory after the first 5 s: {first} KiB, at most {peak} KiB");
    assert!(peak <= first + 10 * 1024, "the agent's resident memory grew from {first} KiB to {peak} KiB: {samples:?}");
    let coordinator_peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    eprintln!("coordinator resident memory at most {coordinator_peak} KiB");
    assert!(coordinator_peak < 150 * 1024, "the coordinator reached {coordinator_peak} KiB");
}
