//! What a user reads after a run, from real processes: the text report's
//! columns; `stampede report FILE --percentiles`, whose spectrum is read
//! back and compared with the JSON report and with the KV server's own
//! count of the commands it served; and the HdrHistogram interval log of a
//! distributed run, decoded by HdrHistogram's Python library.

use std::process::Command;
use std::time::Duration;

use stampede_tests::cluster::{CoordinatorBuilder, KvServerBuilder, agent};
use stampede_tests::{RunBuilder, ScenarioBuilder, get_set_calls, repo_root, run_command, run_stampede};

/// The rows of one table of a spectrum: (value ms, percentile, total count).
fn spectrum_rows(text: &str, title: &str) -> Vec<(f64, f64, u64)> {
    text.lines()
        .skip_while(|l| !l.starts_with(title))
        .skip(1)
        .take_while(|l| !l.starts_with("#[Max"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_percentile_spectrum_agrees_with_the_report_and_the_server() {
    let kv = KvServerBuilder::new("kv-0").start();
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = ScenarioBuilder::new("spectrum")
        .duration("3s")
        .endpoints(&[&kv.address])
        .load("model: open")
        .load("rate: 2000/s")
        .load("connections: 2")
        .yaml();
    let outcome = RunBuilder::new(&scenario).files_in(dir.path(), "spectrum.yaml").go();
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    // The text report has the columns the tools it replaces printed.
    let header = outcome.stdout.lines().find(|l| l.starts_with("operation")).expect("operation table");
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, ["operation", "count", "ops/s", "errors", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"]);

    let file = dir.path().join("report.json");
    let (code, text, stderr) =
        run_stampede(&["report", file.to_str().expect("path"), "--percentiles"], Duration::from_secs(20));
    assert_eq!(code, 0, "{text}{stderr}");
    let report = &outcome.report;
    let mut counted = 0;
    for (name, op) in report["operations"].as_object().expect("operations") {
        for (title, summary) in [("latency from the intended start", "latency_us"), ("service time", "service_time_us")]
        {
            let rows = spectrum_rows(&text, &format!("{name}: {title}"));
            assert!(rows.len() > 10, "{name} {title}: {rows:?}\n{text}");
            let last = rows.last().expect("rows");
            assert_eq!(last.1, 1.0, "the spectrum ends at 100%");
            assert_eq!(Some(last.2), op["count"].as_u64(), "{name}: every operation is in the spectrum");
            assert_eq!(last.0, op[summary]["max"].as_f64().expect("max") / 1000.0, "{name} {title}: max");
            // 50% and 90% are rows of the spectrum; 99% falls between two.
            for (q, key) in [(0.5, "p50"), (0.9, "p90")] {
                let at = rows.iter().position(|r| r.1 >= q).expect("row");
                let row = rows[at];
                let expected = op[summary][key].as_f64().expect("percentile") / 1000.0;
                // The row's tick is a sum of float increments: when exactly
                // q of the operations lie at or below a value, the tick may
                // sit a hair above q and the row land on the next value,
                // where value_at_quantile (a ceiling of q x count) stays.
                let before = if at > 0 { rows[at - 1].0 } else { row.0 };
                let exact_boundary = (last.2 as f64 * q).fract() == 0.0;
                assert!(
                    row.0 == expected || (exact_boundary && before <= expected && expected <= row.0),
                    "{name} {title} {key}: {expected} against {row:?}"
                );
            }
            let p99 = op[summary]["p99"].as_f64().expect("p99") / 1000.0;
            let below = rows.iter().rev().find(|r| r.1 <= 0.99).expect("row below 99%");
            let above = rows.iter().find(|r| r.1 >= 0.99).expect("row above 99%");
            assert!(below.0 <= p99 && p99 <= above.0, "{name} {title}: p99 {p99} between {below:?} and {above:?}");
        }
        counted += op["count"].as_u64().expect("count");
    }
    // No warm-up: the spectrum holds what the server served.
    assert_eq!(counted, get_set_calls(&kv.address));
    let (code, _, stderr) = run_stampede(&["report", "no-such-run.json", "--percentiles"], Duration::from_secs(20));
    assert!(code != 0 && stderr.contains("there is no report file no-such-run.json"), "{stderr}");
}

/// The value at quantile `q` of `[value, count]` buckets, as the report
/// computes it (the first value whose running count reaches ceil(q x total)).
fn value_at(buckets: &[(u64, u64)], q: f64) -> u64 {
    let total: u64 = buckets.iter().map(|b| b.1).sum();
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut running = 0;
    for (value, count) in buckets {
        running += count;
        if running >= rank {
            return *value;
        }
    }
    buckets.last().map_or(0, |b| b.0)
}

fn pairs(value: &serde_json::Value) -> Vec<(u64, u64)> {
    let rows = value.as_array().expect("buckets");
    rows.iter().map(|b| (b[0].as_u64().expect("value"), b[1].as_u64().expect("count"))).collect()
}

#[test]
fn the_interval_log_of_a_distributed_run_is_read_by_hdrhistograms_own_library() {
    let kv = KvServerBuilder::new("kv-0").start();
    let data = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorBuilder::new(data.path()).start();
    let _agents = [agent(&coordinator.url, "a1", &[]), agent(&coordinator.url, "a2", &[])];
    let dir = tempfile::tempdir().expect("tempdir");
    let hlog = dir.path().join("run.hlog");
    let scenario = ScenarioBuilder::new("hlog")
        .duration("4s")
        .warmup("1s")
        .agents(2)
        .endpoints(&[&kv.address])
        .load("model: open")
        .load("rate: 1500/s")
        .load("connections: 4")
        .yaml();
    let outcome = RunBuilder::new(&scenario)
        .submit_to(&coordinator.url)
        .args(&["--hlog", hlog.to_str().expect("path")])
        .files_in(dir.path(), "hlog.yaml")
        .go();
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    let report = &outcome.report;
    let log = std::fs::read_to_string(&hlog).expect("the interval log");
    assert!(log.starts_with("#[Histogram log format version 1.3]"), "{log}");

    let mut python = Command::new("python3");
    python.arg(repo_root().join("tests/scripts/read_hlog.py")).arg(&hlog).arg(dir.path().join("report.json"));
    let (code, stdout, stderr) = run_command(python, Duration::from_secs(60));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let read: serde_json::Value = serde_json::from_str(&stdout).expect("the reader's JSON");
    // Three measured seconds, two operations, latency and service time.
    assert_eq!(read["intervals"].as_u64(), Some(3 * 2 * 2), "{stdout}");
    let mut measured = 0;
    for (name, op) in report["operations"].as_object().expect("operations") {
        for (kind, summary) in [("latency", "latency_us"), ("service", "service_time_us")] {
            let from_log = pairs(&read["log"][name][kind]);
            // Bucket for bucket what the report merged, both decoded by
            // the other library.
            assert_eq!(from_log, pairs(&read["report"][name][kind]), "{name} {kind}");
            let count: u64 = from_log.iter().map(|b| b.1).sum();
            assert_eq!(Some(count), op["count"].as_u64(), "{name} {kind}");
            for (q, key) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (1.0, "max")] {
                assert_eq!(Some(value_at(&from_log, q)), op[summary][key].as_u64(), "{name} {kind} {key}");
            }
        }
        measured += op["count"].as_u64().expect("count");
    }
    let warmup = report["totals"]["warmup_ops"].as_u64().expect("warmup_ops");
    assert_eq!(measured + warmup, get_set_calls(&kv.address), "the server's own count");

    // The coordinator keeps the same log with the run, and gives it again.
    let run_id = report["run_id"].as_str().expect("run id");
    let again = dir.path().join("again.hlog");
    let (code, stdout, stderr) = run_stampede(
        &["report", run_id, "--hlog", again.to_str().expect("path"), "--coordinator", &coordinator.url],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(std::fs::read_to_string(&again).expect("again"), log);
    let kept = data.path().join("runs").join(run_id).join("latency.hlog");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !kept.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::read_to_string(&kept).expect("runs/<id>/latency.hlog"), log);
}
