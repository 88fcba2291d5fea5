//! How big the HTML report of a day-long run is and how long a browser
//! takes to draw it, against a one-minute run's page as the peer. Both
//! reports are made by the coordinator's own aggregator from synthetic
//! interval reports (two operations on each of three nodes, a thousand
//! lognormal latencies per second), then opened in headless
//! chromium, which is timed from navigation until the page says it is
//! drawn. `deploy/bench/report_page.sh` runs it:
//!
//! cargo run --release -p stampede-coordinator --example report_page -- [HOURS]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use stampede_common::histogram;
use stampede_common::interval::{IntervalReport, OperationStats};
use stampede_common::scenario::Scenario;
use stampede_coordinator::aggregate::{ReportContext, RunAggregate};
use stampede_tests::browser::Browser;

const NODES: [&str; 3] = ["crate-a", "crate-b", "crate-c"];

/// The report of a synthetic run of `seconds`.
fn report(seconds: u64) -> stampede_common::report::Report {
    let yaml = format!(
        "name: page-bench\nduration: {seconds}s\nwarmup: 0s\ntarget:\n  kind: kv\n  endpoints: [\"127.0.0.1:7001\"]\n\
         load:\n  model: open\n  rate: 2000/s\n  connections: 6\nworkload:\n  kind: kv\n"
    );
    let scenario = Scenario::parse(&yaml).expect("the bench's scenario");
    let mut aggregate = RunAggregate::new(0);
    let mut rng = SmallRng::seed_from_u64(7);
    let latency = LogNormal::new(6.2, 0.45).expect("lognormal");
    for interval in 0..seconds {
        let mut operations = Vec::new();
        for (op, count, node) in NODES.iter().flat_map(|n| [("get", 300u64, *n), ("set", 34, *n)]) {
            let (mut l, mut s) = (histogram::new_histogram(), histogram::new_histogram());
            for _ in 0..count {
                let service = latency.sample(&mut rng) as u64;
                histogram::record_clamped(&mut s, service);
                // Now and then a request starts late: latency > service.
                let late = if rng.random_bool(0.01) { latency.sample(&mut rng) as u64 * 10 } else { 0 };
                histogram::record_clamped(&mut l, service + late);
            }
            operations.push(OperationStats {
                operation: op.to_string(),
                node: node.to_string(),
                count,
                errors: BTreeMap::new(),
                error_messages: Vec::new(),
                latency: histogram::encode(&l).expect("encode"),
                service: histogram::encode(&s).expect("encode"),
                clamped: 0,
                bytes_sent: 0,
                bytes_received: 0,
            });
        }
        let report = IntervalReport { run_id: "r".into(), seq: interval, interval, operations, ..Default::default() };
        aggregate.merge("agent-1", &report).expect("merge");
    }
    let agents = [("agent-1".to_string(), "bench".to_string(), 0, 100)];
    let none = BTreeMap::new();
    aggregate.report(&ReportContext {
        run_id: "r-page-bench",
        scenario: &scenario,
        endpoints: &[],
        started_at_unix_ms: 0,
        agents: &agents,
        failure: None,
        losses: &[],
        reports_dropped: &none,
        plans: &[],
    })
}

/// Seconds from navigation until the page is drawn, best of three.
fn open_time(browser: &mut Browser, path: &std::path::Path) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        browser.open(&format!("file://{}", path.display()));
        browser
            .wait_for("window.stampedeReport.ready || window.stampedeReport.error !== null", Duration::from_secs(120));
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(browser.eval("window.stampedeReport.error"), serde_json::Value::Null, "{}", path.display());
    }
    best
}

fn main() {
    let hours: u64 = std::env::args().nth(1).and_then(|h| h.parse().ok()).unwrap_or(24);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut browser = Browser::start(1280, 1000);
    let mut measured = Vec::new();
    for (name, seconds) in [("1 minute", 60), (&format!("{hours} h") as &str, hours * 3600)] {
        let started = Instant::now();
        let report = report(seconds);
        let made = started.elapsed().as_secs_f64();
        let page = stampede_coordinator::html::page(&report);
        if let Ok(serde_json::Value::Object(keys)) = serde_json::to_value(&report) {
            let mut sizes: Vec<(usize, String)> =
                keys.iter().map(|(k, v)| (v.to_string().len(), k.clone())).filter(|(n, _)| *n > 10_000).collect();
            sizes.sort_by(|a, b| b.cmp(a));
            let shown: Vec<String> = sizes.iter().map(|(n, k)| format!("{k} {:.2} MB", *n as f64 / 1e6)).collect();
            println!("{name:>9}: the report's largest keys: {}", shown.join(", "));
        }
        let path = dir.path().join(format!("{seconds}.html"));
        if let Ok(keep) = std::env::var("REPORT_PAGE_KEEP") {
            std::fs::write(format!("{keep}-{seconds}.html"), &page).expect("keep the page");
        }
        std::fs::write(&path, &page).expect("write the page");
        let open = open_time(&mut browser, &path);
        println!(
            "{name:>9}: {} windows of {} s, page {:.2} MB, drawn in {:.2} s (report made in {made:.1} s)",
            report.windows.len(),
            report.windows[0].length_s,
            page.len() as f64 / 1e6,
            open
        );
        measured.push((page.len() as f64, open));
    }
    let problems = browser.problems();
    assert!(problems.is_empty(), "{problems:?}");
    let (short, day) = (measured[0], measured[1]);
    println!("day / minute: page size {:.1}x, time to draw {:.2}x", day.0 / short.0, day.1 / short.1);
    println!("targets: page under 10 MB, drawn in under 2 s");
}
