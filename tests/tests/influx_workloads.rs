//! The influx target against real InfluxDB 1.6 (`influxd` from Debian):
//! line protocol writes counted by InfluxDB's own `count(*)`, per endpoint;
//! gzip and precision; the InfluxQL queries; and what goes wrong (a server
//! that answers 500, one that cannot be reached).

use std::time::Duration;

use serde_json::Value;
use stampede_tests::haproxy::Haproxy;
use stampede_tests::influx::Influx;
use stampede_tests::{RunOutcome, run_local};

fn run(text: &str) -> RunOutcome {
    run_local(text, &[], &[], Duration::from_secs(120))
}

fn scenario(endpoints: &[&str], agents: u32, load: &str, workload: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "name: influx\nduration: 3s\nwarmup: 1s\nagents: {agents}\ntarget:\n  kind: influx\n  endpoints: [{}]\n\
         load:\n{load}\nworkload:\n{workload}\n",
        endpoints.join(", ")
    )
}

fn counter(report: &Value, name: &str) -> u64 {
    report["counters"][name].as_u64().unwrap_or(0)
}

fn count(report: &Value, operation: &str) -> u64 {
    report["operations"][operation]["count"].as_u64().unwrap_or(0)
}

#[test]
fn every_point_written_is_in_influxdbs_count_on_the_endpoint_that_took_it() {
    let servers = [Influx::start(), Influx::start()];
    let endpoints: Vec<&str> = servers.iter().map(|s| s.address.as_str()).collect();
    let text = scenario(
        &endpoints,
        2,
        "  connections: 4",
        "  kind: write\n  measurement: cpu\n  tags: {host: 50, region: 4}\n  fields: 5\n  batch_size: 500\n  keep: true",
    );
    // No warm-up: the node table's requests are then those of the whole run.
    let RunOutcome { code, report, stdout, stderr } = run(&text.replace("warmup: 1s", "warmup: 0s"));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(report["totals"]["errors"], 0, "{}", report["operations"]);
    let rows = counter(&report, "rows");
    assert!(rows >= 10_000, "{rows}");
    assert_eq!(counter(&report, "values"), rows * 5, "values are points x fields");
    assert!(report["counter_rates"]["rows"].as_f64().is_some_and(|r| r > 0.0), "points/s");
    assert!(report["counter_rates"]["values"].as_f64().is_some_and(|r| r > 0.0), "values/s");
    let mut total = 0;
    for server in &servers {
        let counts = server.counts("stampede", "cpu");
        assert_eq!(counts.len(), 5, "five fields: {counts:?}");
        assert!(counts.iter().all(|c| *c == counts[0]), "{counts:?}");
        let requests = report["nodes"][&server.address]["ops"].as_u64().unwrap_or(0);
        assert!(counts[0] > 0, "both endpoints took writes");
        assert_eq!(counts[0], requests * 500, "{}: its count(*) is its requests' points", server.address);
        total += counts[0];
    }
    assert_eq!(total, rows, "InfluxDB's count(*) over both servers equals the report's points");
    assert!(stdout.contains("values"), "the text report gives values: {stdout}");
}

#[test]
fn gzip_and_a_coarse_precision_still_keep_every_point() {
    let server = Influx::start();
    let text = scenario(
        &[&server.address],
        1,
        "  connections: 2",
        "  kind: write\n  database: gz\n  measurement: mem\n  tags: {host: 10}\n  fields: 2\n  batch_size: 200\n  \
         precision: s\n  gzip: true\n  keep: true",
    );
    let RunOutcome { code, report, stdout, stderr } = run(&text);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let rows = counter(&report, "rows");
    assert!(rows > 1_000, "{rows}");
    assert_eq!(server.counts("gz", "mem"), vec![rows, rows], "count(*) of each field equals the points written");
    let notes = report["notes"].to_string();
    assert!(notes.contains("precision s, gzip"), "{notes}");
}

#[test]
fn the_queries_read_what_setup_preloaded_and_the_measurement_is_dropped_after() {
    let server = Influx::start();
    let text = scenario(
        &[&server.address],
        2,
        "  connections: 2",
        "  kind: query\n  table: q_cpu\n  hosts: 20\n  preload_rows: 4000",
    );
    let RunOutcome { code, report, stdout, stderr } = run(&text);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(report["totals"]["errors"], 0, "{}", report["operations"]);
    for operation in ["bucket", "last_point", "range"] {
        assert!(count(&report, operation) > 0, "{operation} ran: {}", report["operations"]);
    }
    assert!(counter(&report, "rows") > 0, "the queries read rows");
    let notes = report["notes"].to_string();
    assert!(notes.contains(&format!("4000 points preloaded into q_cpu on {}", server.address)), "{notes}");
    assert!(notes.contains("measurement q_cpu dropped after the run"), "{notes}");
    assert!(server.counts("stampede", "q_cpu").is_empty(), "dropped");
}

#[test]
fn an_influxdb_that_answers_500_gives_server_errors_naming_the_endpoint() {
    // A write cache of 1 KiB: InfluxDB refuses the writes with HTTP 500.
    let server = Influx::start_with("  cache-max-memory-size = 1024");
    let text = scenario(&[&server.address], 1, "  connections: 1", "  kind: write\n  batch_size: 100");
    let RunOutcome { code, report, stdout, stderr } = run(&text);
    assert!(report.is_object(), "a report: stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(code == 0 || code == 1, "{code}: {stderr}");
    let write = &report["operations"]["write"];
    let errors = write["errors_by_kind"]["server"].as_u64().unwrap_or(0);
    assert!(errors > 0, "{write}");
    let messages = write["error_messages"].to_string();
    assert!(messages.contains(&format!("{}: HTTP 500", server.address)), "{messages}");
    assert!(messages.contains("cache-max-memory-size"), "InfluxDB's own words: {messages}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unreachable_influxdb_fails_the_run_with_a_message_naming_it() {
    let text = scenario(&["127.0.0.1:1"], 1, "  connections: 1", "  kind: write");
    let RunOutcome { code, stdout, stderr, .. } = run(&text);
    assert_ne!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(said.contains("127.0.0.1:1"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn behind_a_balancer_the_header_it_sets_names_the_server_that_took_each_write() {
    let servers = [Influx::start(), Influx::start()];
    for server in &servers {
        // Setup creates the database through the balancer, so on one
        // server only; the other gets it here.
        server.query("stampede", "CREATE DATABASE stampede");
    }
    let named: Vec<(String, String)> =
        servers.iter().enumerate().map(|(i, s)| (format!("influx-{i}"), s.address.clone())).collect();
    let haproxy = Haproxy::http(&named, &["http-response set-header X-Served-By %s"]);
    let text = scenario(
        &[&haproxy.address],
        2,
        "  connections: 4",
        "  kind: write\n  measurement: lb\n  tags: {host: 20}\n  fields: 2\n  batch_size: 200\n  keep: true",
    )
    .replace("warmup: 1s", "warmup: 0s")
    .replace("  kind: influx\n", "  kind: influx\n  node_header: X-Served-By\n");
    let RunOutcome { code, report, stdout, stderr } = run(&text);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(report["totals"]["errors"], 0, "{}", report["operations"]);
    let requests = haproxy.per_server("req_tot");
    let mut total = 0;
    for (i, server) in servers.iter().enumerate() {
        let node = format!("influx-{i}");
        let writes = report["nodes"][&node]["ops"].as_u64().unwrap_or(0);
        let points = server.counts("stampede", "lb").first().copied().unwrap_or(0);
        eprintln!("{node}: report {writes} writes, count(*) {points}, haproxy {:?} requests", requests.get(&node));
        assert!(writes > 0, "{node} took writes: {}", report["nodes"]);
        assert_eq!(points, writes * 200, "{node}: its count(*) is the writes the report names it for");
        // haproxy also passed the connections' /ping and setup's statement.
        let passed = requests.get(&node).copied().unwrap_or(0);
        assert!(passed >= writes && passed <= writes + 8, "{node}: haproxy passed {passed} requests");
        total += points;
    }
    assert_eq!(total, counter(&report, "rows"), "every point the report counts, on the server it names");
    assert!(report["nodes"].get(&haproxy.address).is_none(), "no write left under the balancer's address");
}
