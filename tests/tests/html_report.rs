//! The HTML report of a real distributed run (a coordinator, two agents,
//! two KV servers), loaded by a real browser (headless chromium): no
//! JavaScript error and no request leaves the page; its figures are the
//! JSON report's and the servers' own counts; every chart drew data; and a
//! span dragged with the mouse gets the same exact percentiles as
//! `stampede report --window`.

use std::time::{Duration, Instant};

use serde_json::Value;
use stampede_tests::browser::{Browser, figure, number};
use stampede_tests::cluster::{CoordinatorBuilder, KvServerBuilder, agent};
use stampede_tests::{RunBuilder, ScenarioBuilder, get_set_calls, run_stampede};

/// Pages are long: a difference is shown around where it starts.
fn same_page(a: &str, b: &str, what: &str) {
    if let Some(at) =
        a.bytes().zip(b.bytes()).position(|(x, y)| x != y).or((a.len() != b.len()).then_some(a.len().min(b.len())))
    {
        let around = |s: &str| s.get(at.saturating_sub(80)..(at + 80).min(s.len())).unwrap_or_default().to_string();
        panic!("{what} differs from the --html file at byte {at}:\n{}\n---\n{}", around(a), around(b));
    }
}

const SUMMARY: [&str; 10] = ["min", "mean", "p50", "p90", "p95", "p99", "p999", "p9999", "max", "count"];

#[test]
fn the_html_report_of_a_distributed_run_draws_every_section_with_the_runs_own_figures() {
    let servers = [KvServerBuilder::new("kv-0").start(), KvServerBuilder::new("kv-1").start()];
    let data = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorBuilder::new(data.path()).start();
    let _agents = [agent(&coordinator.url, "a1", &[]), agent(&coordinator.url, "a2", &[])];
    let dir = tempfile::tempdir().expect("tempdir");
    let html = dir.path().join("report.html");
    let scenario = ScenarioBuilder::new("html")
        .duration("8s")
        .warmup("0s")
        .agents(2)
        .endpoints(&[&servers[0].address, &servers[1].address])
        .load("model: open")
        .load("rate: 2000/s")
        .load("connections: 4")
        .workload("kind: kv")
        .workload("keys: 1000")
        .workload("value_format: json")
        .workload("codec_in_path: true")
        .threshold("p99 < 2s")
        .yaml();
    let outcome = RunBuilder::new(&scenario)
        .submit_to(&coordinator.url)
        .args(&["--html", html.to_str().expect("path")])
        .files_in(dir.path(), "html.yaml")
        .go();
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    let report = &outcome.report;
    let run_id = report["run_id"].as_str().expect("run id");

    // The coordinator keeps the same page with the run, and `stampede
    // report RUN --html` makes it again.
    let page = std::fs::read_to_string(&html).expect("the --html file");
    let kept = data.path().join("runs").join(run_id).join("report.html");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kept.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    same_page(&std::fs::read_to_string(&kept).expect("runs/<id>/report.html"), &page, "runs/<id>/report.html");
    let again = dir.path().join("again.html");
    let (code, stdout, stderr) = run_stampede(
        &["report", run_id, "--html", again.to_str().expect("path"), "--coordinator", &coordinator.url],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    same_page(&std::fs::read_to_string(&again).expect("again"), &page, "stampede report RUN --html");
    assert!(page.contains("default-src 'none'"), "the page forbids every request");

    let mut browser = Browser::start(1280, 1000);
    browser.open(&format!("file://{}", kept.display()));
    browser.wait_for("window.stampedeReport.ready || window.stampedeReport.error !== null", Duration::from_secs(30));
    assert_eq!(browser.eval("window.stampedeReport.error"), Value::Null);

    // The summary: the JSON report's figures, the servers' own counts.
    let cells = browser.figures("#report");
    assert_eq!(browser.eval("document.getElementById('verdict').dataset.status"), "passed");
    assert_eq!(figure(&cells, "threshold.0.passed"), 1.0);
    assert_eq!(figure(&cells, "threshold.0.observed"), number(&report["thresholds"][0]["observed"]));
    for (name, op) in report["operations"].as_object().expect("operations") {
        assert_eq!(figure(&cells, &format!("op.{name}.count")), number(&op["count"]), "{name}");
        assert_eq!(figure(&cells, &format!("op.{name}.errors")), number(&op["errors"]), "{name}");
        for (kind, key) in [("latency", "latency_us"), ("service", "service_time_us")] {
            for field in &SUMMARY[..9] {
                assert_eq!(
                    figure(&cells, &format!("op.{name}.{kind}.{field}")),
                    number(&op[key][field]),
                    "{name} {kind} {field}"
                );
            }
        }
    }
    // Bytes per operation and the codec's times, as the JSON report has them.
    let mut transfers: Vec<(String, &Value)> = report["operations"]
        .as_object()
        .expect("operations")
        .iter()
        .map(|(name, op)| (name.clone(), &op["transfer"]))
        .collect();
    transfers.push(("total".to_string(), &report["totals"]["transfer"]));
    for (name, transfer) in transfers {
        for field in ["sent_per_op", "received_per_op", "sent_mb_per_s", "received_mb_per_s"] {
            assert_eq!(figure(&cells, &format!("transfer.{name}.{field}")), number(&transfer[field]), "{name} {field}");
        }
    }
    assert!(number(&report["totals"]["transfer"]["sent_per_op"]) > 0.0);
    for step in ["encode", "decode"] {
        let timing = &report["timings"][step];
        assert!(number(&timing["count"]) > 0.0, "{step} timed");
        assert_eq!(figure(&cells, &format!("codec.{step}.count")), number(&timing["count"]), "{step}");
        assert_eq!(figure(&cells, &format!("codec.{step}.p99")), number(&timing["ns"]["p99"]), "{step}");
    }
    for (i, server) in servers.iter().enumerate() {
        let node = format!("kv-{i}");
        assert_eq!(
            figure(&cells, &format!("node.{node}.ops")),
            get_set_calls(&server.address) as f64,
            "{node}: its own count"
        );
        for a in ["a1", "a2"] {
            assert_eq!(
                figure(&cells, &format!("matrix.{a}.{node}")),
                number(&report["distribution"]["agents"][a][&node])
            );
        }
    }
    for a in report["agents"].as_array().expect("agents") {
        let id = a["id"].as_str().expect("id");
        assert_eq!(figure(&cells, &format!("agent.{id}.ops")), number(&a["ops"]));
        assert_eq!(figure(&cells, &format!("agent.{id}.late_starts")), number(&a["late_starts"]));
    }
    let scenario_shown = browser.eval("document.getElementById('scenario-yaml').textContent");
    assert!(scenario_shown.as_str().is_some_and(|s| s.contains("name: html")), "{scenario_shown}");

    // Every chart has data in uPlot's own state and pixels on its canvas.
    let drawn = browser.eval(
        "Object.fromEntries(Object.entries(window.stampedeReport.charts).map(([name, u]) => {
           const values = u.data.slice(1).flat().filter(v => v !== null && Number.isFinite(v)).length;
           const c = u.ctx.canvas;
           const pixels = u.ctx.getImageData(0, 0, c.width, c.height).data;
           let inked = 0;
           for (let i = 0; i < pixels.length; i += 4) if (pixels[i + 3] > 0) inked++;
           return [name, [values, inked]];
         }))",
    );
    let drawn = drawn.as_object().expect("charts");
    let names: Vec<&String> = drawn.keys().collect();
    for expected in
        ["throughput", "errors", "latency:get", "latency:set", "spectrum:get", "node-shares", "node-latency"]
    {
        assert!(drawn.contains_key(expected), "no {expected} chart in {names:?}");
    }
    for (name, counts) in drawn {
        assert!(counts[0].as_u64() > Some(5), "{name}: {counts}");
        assert!(counts[1].as_u64() > Some(300), "{name} drew nothing on its canvas: {counts}");
    }

    // A span dragged over the throughput chart: the page's figures are the
    // ones Rust computes for the same windows.
    let over = browser.eval(
        "(() => { const o = document.querySelector('#chart-throughput .u-over');
           o.scrollIntoView({block: 'center'});
           const r = o.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()",
    );
    let rect: Vec<f64> = over.as_array().expect("rect").iter().map(|v| v.as_f64().expect("number")).collect();
    let y = rect[1] + rect[3] / 2.0;
    browser.drag((rect[0] + rect[2] * 0.3, y), rect[0] + rect[2] * 0.75);
    browser.wait_for("document.getElementById('selection-table') !== null", Duration::from_secs(10));
    let span = browser.eval(
        "(() => { const t = document.getElementById('selection-table'); return [+t.dataset.from, +t.dataset.to]; })()",
    );
    let (from, to) = (span[0].as_u64().expect("from"), span[1].as_u64().expect("to"));
    assert!(from >= 1 && to > from + 1 && to <= 8, "the drag selected {from}..{to}");
    let window = browser.figures("#selection-table");
    let json = dir.path().join("report.json");
    let (code, text, stderr) = run_stampede(
        &["report", json.to_str().expect("path"), "--window", &format!("{from}..{to}"), "--json"],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{text}{stderr}");
    let rust: Value = serde_json::from_str(&text).expect("the window's JSON");
    assert_eq!((rust["from_s"].as_u64(), rust["to_s"].as_u64()), (Some(from), Some(to)));
    let mut compared = 0;
    for (name, op) in rust["operations"].as_object().expect("operations") {
        assert_eq!(figure(&window, &format!("window.{name}.count")), number(&op["count"]), "{name}");
        for (kind, key) in [("latency", "latency_us"), ("service", "service_time_us")] {
            for field in &SUMMARY[..9] {
                let page = figure(&window, &format!("window.{name}.{kind}.{field}"));
                assert_eq!(page, number(&op[key][field]), "{name} {kind} {field} over {from}..{to}");
                compared += 1;
            }
        }
        assert!(op["count"].as_u64() < report["operations"][name]["count"].as_u64(), "a part of the run");
    }
    assert_eq!(compared, 2 * 2 * 9);
    // STAMPEDE_SCREENSHOT=FILE keeps a picture of the page (the README's).
    if let Ok(path) = std::env::var("STAMPEDE_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot()).expect("screenshot");
    }
    let problems = browser.problems();
    assert!(problems.is_empty(), "{problems:#?}");
}
