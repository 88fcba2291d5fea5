//! `stampede run` as a user runs it: the default quickstart, thresholds and
//! exit codes, bad scenarios.

use std::time::Duration;

use stampede_tests::{run_stampede, write_file};

#[test]
fn stampede_run_with_no_arguments_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("quickstart.json");
    let json_arg = json.to_string_lossy().into_owned();
    let (code, stdout, stderr) = run_stampede(&["run", "--json", &json_arg], Duration::from_secs(120));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("quickstart") && stdout.contains("PASSED"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    assert_eq!(report["agents"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["scenario"]["name"], "quickstart");
    // Live progress went to stderr, one line per interval.
    assert!(stderr.matches("ops/s").count() >= 8, "{stderr}");
}

#[test]
fn an_open_model_run_keeps_its_rate_and_reports_thresholds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "open.yaml",
        "name: open\nduration: 3s\nagents: 2\ntarget:\n  kind: kv\nload:\n  model: open\n  rate: 2000/s\n  \
         connections: 4\nworkload:\n  kind: kv\nthresholds:\n  - throughput > 1800/s\n  - throughput < 2200/s\n  - get.error_rate < 1%\n",
    );
    let json = dir.path().join("open.json");
    let json_arg = json.to_string_lossy().into_owned();
    let (code, stdout, stderr) = run_stampede(&["run", &path, "--json", &json_arg, "-q"], Duration::from_secs(60));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    let ops = report["totals"]["ops"].as_u64().expect("ops");
    assert!((5_400..=6_600).contains(&ops), "about 2000/s for 3s: {ops}");
}

#[test]
fn a_failed_threshold_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "strict.yaml",
        "name: strict\nduration: 2s\nagents: 1\ntarget:\n  kind: kv\nworkload:\n  kind: kv\nthresholds:\n  - max < 1us\n",
    );
    let (code, stdout, _) = run_stampede(&["run", &path, "-q"], Duration::from_secs(60));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAILED") && stdout.contains("FAIL  max < 1us"), "{stdout}");
}

#[test]
fn a_bad_scenario_exits_2_naming_field_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "bad.yaml",
        "name: bad\nduration: 2s\ntarget:\n  kind: kv\nload:\n  connections: 0\nworkload:\n  kind: kv\n",
    );
    let (code, _, stderr) = run_stampede(&["run", &path], Duration::from_secs(30));
    assert_eq!(code, 2);
    assert!(stderr.contains("line 6") && stderr.contains("load.connections"), "{stderr}");
    let (code, _, stderr) = run_stampede(&["validate", &path], Duration::from_secs(30));
    assert_eq!(code, 2);
    assert!(stderr.contains("line 6") && stderr.contains("load.connections"), "{stderr}");
    let (code, _, stderr) = run_stampede(&["run", "/nonexistent/scenario.yaml"], Duration::from_secs(30));
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read scenario"), "{stderr}");
}

#[test]
fn every_example_scenario_validates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).expect("scenarios directory") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let path_arg = path.to_string_lossy().into_owned();
            let (code, stdout, stderr) = run_stampede(&["validate", &path_arg], Duration::from_secs(30));
            assert_eq!(code, 0, "{path_arg}: {stdout}{stderr}");
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn open_model_arrivals_that_could_not_be_sent_are_counted_as_late() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One connection cannot carry 100k/s here, so most arrivals queue.
    let path = write_file(
        dir.path(),
        "overload.yaml",
        "name: overload\nduration: 2s\nagents: 1\ntarget:\n  kind: kv\nload:\n  model: open\n  rate: 100000/s\n  \
         connections: 1\nworkload:\n  kind: kv\n",
    );
    let json = dir.path().join("overload.json");
    let json_arg = json.to_string_lossy().into_owned();
    let (code, stdout, stderr) = run_stampede(&["run", &path, "--json", &json_arg, "-q"], Duration::from_secs(60));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    let sent = report["totals"]["ops"].as_u64().expect("ops");
    let late = report["totals"]["late_starts"].as_u64().expect("late starts");
    assert!(sent < 100_000, "the overload premise holds: {sent}");
    // Every one of the 200k intended starts was either sent or counted late.
    assert!(late + sent >= 199_000, "late {late} + sent {sent} falls short of 200000 arrivals");
    assert!(stdout.contains("late starts"), "{stdout}");
}

#[test]
fn a_run_past_its_timeout_is_cancelled_and_still_reports_what_was_measured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "long.yaml",
        "name: long\nduration: 10m\nagents: 1\ntarget:\n  kind: kv\nload:\n  connections: 1\nworkload:\n  kind: kv\n  keys: 100\n",
    );
    let json = dir.path().join("report.json");
    let json_arg = json.to_string_lossy().to_string();
    let started = std::time::Instant::now();
    let (code, stdout, stderr) =
        run_stampede(&["run", &path, "--timeout", "3s", "--json", &json_arg, "-q"], Duration::from_secs(60));
    assert_eq!(code, 2, "a run cut short is not a verdict: {stdout}{stderr}");
    assert!(stderr.contains("has not ended within --timeout 3s; cancelling it"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(45), "it took {:?}", started.elapsed());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON report")).expect("JSON");
    assert!(report["totals"]["ops"].as_u64().unwrap_or(0) > 0, "what was measured is reported: {report}");

    let (code, _, stderr) = run_stampede(&["run", &path, "--timeout", "3"], Duration::from_secs(30));
    assert_eq!(code, 2);
    assert!(stderr.contains("--timeout") && stderr.contains("has no unit"), "{stderr}");
}
