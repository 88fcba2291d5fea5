//! The web dashboard against a live distributed run: a coordinator with a
//! token, two agents and two KV servers as processes, and two headless
//! chromium browsers. Without the session cookie the event stream is
//! refused; the login form exchanges the token for the cookie; the page
//! changes while the run goes on; a browser that connects mid-run is given
//! the intervals before it came; at the end the page's figures are the JSON
//! report's and each server's own count; no JavaScript error, and no
//! request leaves the coordinator.

use std::time::{Duration, Instant};

use serde_json::Value;
use stampede_tests::browser::{Browser, figure};
use stampede_tests::cluster::{AgentBuilder, CoordinatorBuilder, KvServerBuilder};
use stampede_tests::{RunBuilder, ScenarioBuilder, get_set_calls, http_get, write_file};

const TOKEN: &str = "dashboard-test-token";

/// A raw HTTP request; returns the status and the whole response.
fn request(addr: &str, head: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .expect("send");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    (response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), response)
}

/// Opens the dashboard and logs in with the form, as a user would.
fn logged_in(http: &str) -> Browser {
    let mut browser = Browser::start(1280, 1400);
    browser.allow(&format!("http://{http}/"));
    browser.open(&format!("http://{http}/"));
    assert_eq!(browser.eval("document.getElementById('login') !== null"), Value::Bool(true), "the login form");
    browser.eval(&format!("document.getElementById('token').value = '{TOKEN}'; true"));
    browser.submit("login");
    browser.wait_for("document.body.dataset.ready === 'true'", Duration::from_secs(20));
    browser
}

#[test]
fn the_dashboard_follows_a_distributed_run_live_and_ends_on_the_reports_figures() {
    let servers = [KvServerBuilder::new("kv-0").start(), KvServerBuilder::new("kv-1").start()];
    let data = tempfile::tempdir().expect("tempdir");
    let token_file = write_file(data.path(), "token", TOKEN);
    let coordinator =
        CoordinatorBuilder::new(data.path().join("data")).http().args(&["--token-file", &token_file]).start();
    let http = coordinator.http.clone().expect("an HTTP port");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&http, "/readyz", None).0 != 200 {
        assert!(Instant::now() < deadline, "the coordinator did not lead within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _agents: Vec<_> = ["a1", "a2"]
        .iter()
        .map(|id| AgentBuilder::new(id).coordinator(&coordinator.url).args(&["--token-file", &token_file]).start())
        .collect();

    // Without the cookie: the page is the login form, the stream is refused,
    // and a wrong token gets no cookie.
    let (status, body) = http_get(&http, "/events", None);
    assert_eq!(status, 401, "{body}");
    let (status, page) = http_get(&http, "/", None);
    assert_eq!(status, 200);
    assert!(page.contains("id=\"login\"") && !page.contains(TOKEN), "{page}");
    let (status, response) =
        request(&http, "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded", "token=wrong");
    assert_eq!(status, 401, "{response}");
    assert!(!response.to_ascii_lowercase().contains("set-cookie"), "{response}");

    let mut first = logged_in(&http);

    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = ScenarioBuilder::new("live")
        .duration("14s")
        .warmup("0s")
        .agents(2)
        .endpoints(&[&servers[0].address, &servers[1].address])
        .load("model: open")
        .load("rate: 1000/s")
        .load("connections: 4")
        .threshold("p99 < 2s")
        .threshold("error_rate < 1%")
        .yaml();
    let url = coordinator.url.clone();
    let token = token_file.clone();
    let run_dir = dir.path().to_path_buf();
    let run = std::thread::spawn(move || {
        RunBuilder::new(&scenario)
            .submit_to(&url)
            .args(&["--token-file", &token_file])
            .files_in(run_dir, "live.yaml")
            .go()
    });

    // The first browser finds the running run by itself and follows it.
    first.wait_for(
        "window.stampedeDashboard.status !== null && window.stampedeDashboard.status.ops > 0",
        Duration::from_secs(30),
    );
    let before = figure(&first.figures("#run"), "total.ops");
    std::thread::sleep(Duration::from_secs(3));
    let after = first.figures("#run");
    assert!(figure(&after, "total.ops") > before, "the page changed: {before} then {:?}", after.get("total.ops"));

    // A browser that comes mid-run gets the run's history at once.
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    let mut late = logged_in(&http);
    late.wait_for("window.stampedeDashboard.status !== null", Duration::from_secs(20));
    let history = late.eval(
        "(() => { const w = [...window.stampedeDashboard.windows.values()]; \
           return [w.length, Math.min(...w.map(x => x.start_s)), window.stampedeDashboard.status.elapsed_s]; })()",
    );
    let (windows, oldest, elapsed) =
        (history[0].as_u64().unwrap_or(0), history[1].as_u64().unwrap_or(99), history[2].as_u64().unwrap_or(0));
    assert!(elapsed >= 6 && windows + 2 >= elapsed && oldest == 0, "history {history} after {:?}", started.elapsed());

    let outcome = run.join().expect("the run");
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    let report = &outcome.report;
    for browser in [&mut first, &mut late] {
        browser.wait_for("document.body.dataset.ended === 'true'", Duration::from_secs(20));
        let cells = browser.figures("#run");
        assert_eq!(figure(&cells, "total.ops"), report["totals"]["ops"].as_f64().expect("ops"));
        assert_eq!(figure(&cells, "total.errors"), report["totals"]["errors"].as_f64().expect("errors"));
        for (name, op) in report["operations"].as_object().expect("operations") {
            assert_eq!(figure(&cells, &format!("op.{name}.count")), op["count"].as_f64().expect("count"), "{name}");
            assert_eq!(figure(&cells, &format!("op.{name}.errors")), op["errors"].as_f64().expect("errors"));
            assert_eq!(
                figure(&cells, &format!("op.{name}.p99")),
                op["latency_us"]["p99"].as_f64().expect("p99"),
                "{name} p99"
            );
        }
        for (i, t) in report["thresholds"].as_array().expect("thresholds").iter().enumerate() {
            assert_eq!(figure(&cells, &format!("threshold.{i}.passed")), if t["passed"] == true { 1.0 } else { 0.0 });
            assert_eq!(figure(&cells, &format!("threshold.{i}.observed")), t["observed"].as_f64().expect("observed"));
        }
        for (i, server) in servers.iter().enumerate() {
            assert_eq!(
                figure(&cells, &format!("node.kv-{i}.count")),
                get_set_calls(&server.address) as f64,
                "kv-{i}: its own count"
            );
        }
        for a in report["agents"].as_array().expect("agents") {
            let id = a["id"].as_str().expect("id");
            assert_eq!(figure(&cells, &format!("agent.{id}.ops")), a["ops"].as_f64().expect("ops"), "{id}");
        }
        let state = browser.eval("document.getElementById('run-state').textContent");
        assert_eq!(state, "passed");
        // Every chart holds data.
        let charts = browser.eval(
            "Object.entries(window.stampedeDashboard.charts).map(([id, c]) => \
               [id, c.plot.data.slice(1).flat().filter(v => v !== null && Number.isFinite(v)).length])",
        );
        for chart in charts.as_array().expect("charts") {
            assert!(chart[1].as_u64() > Some(5), "{chart}");
        }
        assert_eq!(charts.as_array().map(Vec::len), Some(4), "{charts}");
        let problems = browser.problems();
        assert!(problems.is_empty(), "{problems:?}");
    }
    if let Ok(path) = std::env::var("STAMPEDE_SCREENSHOT") {
        std::fs::write(path, first.screenshot()).expect("screenshot");
    }

    // A count-limited run without `duration`: the page shows its
    // operations done of its count, not the day it may last at most, and
    // ends on the servers' own count of them.
    let counted = ScenarioBuilder::new("counted")
        .warmup("0s")
        .agents(2)
        .endpoints(&[&servers[0].address, &servers[1].address])
        .load("model: open")
        .load("rate: 1000/s")
        .load("connections: 4")
        .load("operations: 6_001")
        .yaml()
        .replace("duration: 3s\n", "");
    let file = write_file(dir.path(), "counted.yaml", &counted);
    let before: u64 = servers.iter().map(|s| get_set_calls(&s.address)).sum();
    let (code, stdout, stderr) = stampede_tests::run_stampede(
        &["submit", &file, "--coordinator", &coordinator.url, "--token-file", &token],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let counted_id = stdout.trim().to_string();
    late.open(&format!("http://{http}/?run={counted_id}"));
    late.wait_for(
        "document.getElementById('run-progress') !== null && +document.getElementById('run-progress').dataset.done > 0",
        Duration::from_secs(30),
    );
    let line = late.eval("document.getElementById('run-progress').textContent");
    let line = line.as_str().expect("text");
    assert!(line.contains("of 6001 operations") && !line.contains("86400"), "{line}");
    late.wait_for("document.body.dataset.ended === 'true'", Duration::from_secs(30));
    let served: u64 = servers.iter().map(|s| get_set_calls(&s.address)).sum::<u64>() - before;
    assert_eq!(served, 6_001, "the servers' own count");
    assert_eq!(figure(&late.figures("#run"), "total.ops"), 6_001.0, "the page's count at the end");
    let width = late.eval("document.querySelector('#run-head .gauge-fill').style.width");
    assert_eq!(width, "100%", "the gauge is full");
    let problems = late.problems();
    assert!(problems.is_empty(), "{problems:?}");

    // The finished run links its HTML report, served by the coordinator.
    let run_id = report["run_id"].as_str().expect("run id");
    let link = first.eval("document.getElementById('report-link').href");
    assert_eq!(link, format!("http://{http}/runs/{run_id}/report.html"));
    first.open(link.as_str().expect("link"));
    first.wait_for("window.stampedeReport.ready || window.stampedeReport.error !== null", Duration::from_secs(30));
    assert_eq!(first.eval("window.stampedeReport.error"), Value::Null);
    let problems = first.problems();
    assert!(problems.is_empty(), "{problems:?}");
}
