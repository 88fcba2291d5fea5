//! `stampede compare` on real runs: the same open-model load against a
//! `stampede kv-server`, once as it is and once while the server is stopped
//! (SIGSTOP) for 40 ms of every 100 ms. The comparison calls the slowed run
//! worse, with the change and its interval, and a `--fail-on` gate fails
//! the command; the server's own count shows both runs were served. The
//! comparison's HTML page is loaded in headless chromium.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stampede_tests::browser::Browser;
use stampede_tests::cluster::KvServerBuilder;
use stampede_tests::{RunBuilder, ScenarioBuilder, get_set_calls, run_stampede};

/// Stops and continues `pid` (40 ms of every 100 ms) until `stop` is set.
fn stop_bursts(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let signal = |name: &str| {
            let _ = Command::new("kill").args([name, &pid.to_string()]).status();
        };
        while !stop.load(Ordering::Relaxed) {
            signal("-STOP");
            std::thread::sleep(Duration::from_millis(40));
            signal("-CONT");
            std::thread::sleep(Duration::from_millis(60));
        }
        signal("-CONT");
    })
}

#[test]
fn a_target_slowed_by_stop_bursts_is_called_worse_and_fails_the_gate() {
    let kv = KvServerBuilder::new("kv-0").start();
    let dir = tempfile::tempdir().expect("tempdir");
    // 15 windows a run: one second a busy machine spoils in the base run
    // (CI saw a base p99 of 5 ms with such a second in 10) does not hide
    // the change.
    let scenario = ScenarioBuilder::new("compare")
        .duration("16s")
        .warmup("1s")
        .endpoints(&[&kv.address])
        .load("model: open")
        .load("rate: 1000/s")
        .load("connections: 8")
        .yaml();
    let run = |name: &str| {
        let outcome = RunBuilder::new(&scenario).files_in(dir.path().join(name), "compare.yaml").go();
        assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
        let served = get_set_calls(&kv.address);
        (dir.path().join(name).join("report.json"), outcome.report, served)
    };
    let (base, base_report, served_base) = run("base");
    let stop = Arc::new(AtomicBool::new(false));
    let bursts = stop_bursts(kv.process.pid(), Arc::clone(&stop));
    let (candidate, candidate_report, served_both) = run("candidate");
    stop.store(true, Ordering::Relaxed);
    bursts.join().expect("bursts");
    let total = |r: &serde_json::Value| {
        r["totals"]["ops"].as_u64().unwrap_or(0) + r["totals"]["warmup_ops"].as_u64().unwrap_or(0)
    };
    assert_eq!(total(&base_report), served_base, "the server's own count");
    assert_eq!(total(&candidate_report), served_both - served_base, "the server's own count");

    let (base, candidate) = (base.to_str().expect("path"), candidate.to_str().expect("path"));
    let (code, stdout, stderr) = run_stampede(&["compare", base, candidate, "--json"], Duration::from_secs(60));
    assert_eq!(code, 0, "no gate, no failure: {stdout}{stderr}");
    let comparison: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    for figure in ["p90", "p99"] {
        let row = comparison["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["operation"] == "get" && r["figure"] == figure)
            .expect("row");
        assert_eq!(row["verdict"], "worse", "{row}");
        let (change, low) = (row["change"].as_f64().expect("change"), row["interval"][0].as_f64().expect("interval"));
        assert!(change > 0.5 && low > 0.0 && low <= change, "{row}");
    }
    // The node's own rows say the same: the one node served every request.
    let node_p99 = comparison["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["node"] == "kv-0" && r["figure"] == "p99")
        .expect("a node row");
    assert_eq!(node_p99["verdict"], "worse", "{node_p99}");

    let page = dir.path().join("compare.html");
    let (code, stdout, stderr) = run_stampede(
        &["compare", base, candidate, "--fail-on", "p99 > +10%", "--html", page.to_str().expect("path")],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    // The page, in a real browser: drawn without a problem, its verdicts the
    // JSON's, both runs on every chart.
    let mut browser = Browser::start(1280, 1000);
    browser.open(&format!("file://{}", page.display()));
    browser.wait_for("window.stampedeReport.ready || window.stampedeReport.error !== null", Duration::from_secs(30));
    assert_eq!(browser.eval("window.stampedeReport.error"), serde_json::Value::Null);
    let worse = comparison["rows"].as_array().expect("rows").iter().filter(|r| r["verdict"] == "worse").count();
    assert_eq!(browser.eval("+document.getElementById('verdict').dataset.worse"), serde_json::json!(worse));
    let shown = browser.eval("document.querySelector('[data-figure=\"verdict.get.p99\"]').dataset.value");
    assert_eq!(shown, "\"worse\"");
    let drawn = browser.eval(
        "Object.entries(window.stampedeReport.charts).map(([name, u]) =>
           [name, u.data.slice(1).map(s => s.filter(v => v !== null && Number.isFinite(v)).length)])",
    );
    let drawn = drawn.as_array().expect("charts");
    assert!(drawn.len() >= 3, "{drawn:?}");
    for chart in drawn {
        let per_run = chart[1].as_array().expect("series");
        assert!(per_run.len() == 2 && per_run.iter().all(|n| n.as_u64() > Some(5)), "both runs drawn: {chart}");
    }
    let problems = browser.problems();
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(stderr.contains("gate tripped: p99 > +10% (get p99 changed +"), "{stderr}");
    assert!(stdout.contains("worse"), "{stdout}");
    // Compared with itself, nothing changes and no gate trips.
    let (code, stdout, stderr) =
        run_stampede(&["compare", base, base, "--fail-on", "p99 > +10%"], Duration::from_secs(60));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("worse") && !stdout.contains("better"), "{stdout}");
    let (code, _, stderr) =
        run_stampede(&["compare", base, candidate, "--fail-on", "p99 up 10%"], Duration::from_secs(60));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--fail-on `p99 up 10%`: write a gate like"), "{stderr}");
}
