//! Run history with PostgreSQL as the results store: `stampede runs
//! --scenario NAME` lists the past runs of one scenario with their key
//! figures, also after the coordinator was replaced by a new one on the
//! same database, and each run's throughput is what the KV server counted.

use std::time::Duration;

use stampede_tests::cluster::{AgentBuilder, CoordinatorBuilder, KvServerBuilder};
use stampede_tests::{Postgres, RunBuilder, ScenarioBuilder, get_set_calls, run_stampede};

fn scenario(name: &str, endpoint: &str, threshold: &str) -> String {
    ScenarioBuilder::new(name).endpoints(&[endpoint]).load("connections: 2").threshold(threshold).yaml()
}

#[test]
fn the_runs_of_a_scenario_are_listed_with_their_figures_from_postgresql() {
    let postgres = Postgres::start();
    let kv = KvServerBuilder::new("kv-0").start();
    let data = tempfile::tempdir().expect("tempdir");
    let first = CoordinatorBuilder::new(data.path().join("a")).args(&["--results", &postgres.url()]).start();
    first.wait_until_leading();
    let _agent = AgentBuilder::new("agent-0").coordinator(&first.url).start();

    // Two runs of `history` (one passes, one fails its threshold) and one
    // of another scenario; the server's own count says what each did.
    let mut served = Vec::new();
    for (name, threshold, code) in
        [("history", "error_rate < 1%", 0), ("history", "p50 < 1us", 1), ("other", "error_rate < 1%", 0)]
    {
        let before = get_set_calls(&kv.address);
        let outcome = RunBuilder::new(&scenario(name, &kv.address, threshold)).submit_to(&first.url).go();
        assert_eq!(outcome.code, code, "{name}: {}{}", outcome.stdout, outcome.stderr);
        served.push(get_set_calls(&kv.address) - before);
    }
    drop(first);

    // A new coordinator on the same database, with a data directory of its own.
    let second = CoordinatorBuilder::new(data.path().join("b")).args(&["--results", &postgres.url()]).start();
    second.wait_until_leading();
    let (code, stdout, stderr) =
        run_stampede(&["runs", "--scenario", "history", "--coordinator", &second.url], Duration::from_secs(20));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let rows: Vec<Vec<&str>> = stdout.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "the two runs of `history`, not the other one:\n{stdout}");
    assert_eq!((rows[0][1], rows[1][1]), ("passed", "failed"), "in the order they ran:\n{stdout}");
    for (row, served) in rows.iter().zip(&served) {
        let measured: f64 = row[2].trim_end_matches('s').parse().expect("measured seconds");
        let throughput: f64 = row[3].parse().expect("ops/s");
        let expected = (*served as f64 / measured).round();
        assert!((throughput - expected).abs() <= 1.0, "ops/s {throughput}, the server counted {served} in {measured}s");
        assert_eq!(row[5], "0.00%", "no errors:\n{stdout}");
        assert!(row[6].ends_with("KB"), "what PostgreSQL holds for a 3 s run:\n{stdout}");
    }

    // `compare last-passed`: the newest passed run of the candidate's
    // scenario is the baseline; the failed run is not.
    let (code, stdout, stderr) = run_stampede(
        &["compare", "last-passed", rows[1][0], "--json", "--coordinator", &second.url],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let comparison: serde_json::Value = serde_json::from_str(&stdout).expect("the comparison's JSON");
    assert_eq!((comparison["base"].as_str(), comparison["candidate"].as_str()), (Some(rows[0][0]), Some(rows[1][0])));
    assert!(stderr.contains(&format!("baseline: {}", rows[0][0])), "{stderr}");
    // The only passed run has no other passed run to compare with.
    let (code, _, stderr) =
        run_stampede(&["compare", "last-passed", rows[0][0], "--coordinator", &second.url], Duration::from_secs(30));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no passed run of scenario `history` other than"), "{stderr}");

    let (code, _, stderr) =
        run_stampede(&["runs", "--scenario", "nothing-like-it", "--coordinator", &second.url], Duration::from_secs(20));
    assert_ne!(code, 0);
    assert!(stderr.contains("no runs of a scenario named `nothing-like-it`"), "{stderr}");
}
