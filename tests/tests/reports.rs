//! What a user reads after a run, from real processes: the text report's
//! columns, and `stampede report FILE --percentiles`, whose spectrum is
//! read back and compared with the JSON report and with the KV server's
//! own count of the commands it served.

use std::time::Duration;

use stampede_tests::cluster::KvServerBuilder;
use stampede_tests::{RunBuilder, ScenarioBuilder, get_set_calls, run_stampede};

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
                let row = rows.iter().find(|r| r.1 >= q).expect("row");
                let expected = op[summary][key].as_f64().expect("percentile") / 1000.0;
                assert_eq!(row.0, expected, "{name} {title} {key}: {row:?}");
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
