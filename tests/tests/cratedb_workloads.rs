//! The CrateDB workloads run by `stampede run` with two in-process agents
//! against the CrateDB STAND-IN (`stampede_tests::cratedb_standin`; CrateDB
//! itself cannot be installed on the test machines): the rows the report
//! says were inserted are the rows the stand-in holds, refused rows are
//! counted as errors, https works with a certificate the client trusts, and
//! behind haproxy (HTTP mode with and without a node header, TCP mode) the
//! report's per-node requests and connections are each node's own counts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use stampede_tests::cratedb_standin::CrateStandIn;
use stampede_tests::{Process, free_port, run_command, run_local, which, write_file};

/// Runs a scenario against `endpoint`; returns (exit code, report or Null, stderr).
fn run(endpoint: &str, workload: &str, env: &[(&str, &str)]) -> (i32, Value, String) {
    let text = format!(
        "name: crate\nduration: 3s\nwarmup: 1s\nagents: 2\ntarget:\n  kind: cratedb\n  endpoints: [\"{endpoint}\"]\n\
         load:\n  connections: 3\nworkload:\n{workload}\n"
    );
    run_scenario(&text, env)
}

/// Runs a scenario text; returns (exit code, report or Null, stderr).
fn run_scenario(text: &str, env: &[(&str, &str)]) -> (i32, Value, String) {
    let run = run_local(text, &[], env, Duration::from_secs(120));
    (run.code, run.report, format!("{}\n{}", run.stdout, run.stderr))
}

fn count(report: &Value, pointer: &str) -> u64 {
    report.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("{pointer} in {report}"))
}

#[test]
fn records_run_inserts_exactly_the_rows_it_reports() {
    let standin = CrateStandIn::start("crate-a", Some(("bench", "s3cret")));
    let endpoint = format!("http://bench:s3cret@{}", standin.address);
    let (code, report, output) =
        run(&endpoint, "  kind: records\n  table: events\n  batch_size: 100\n  objects: 2\n  keep: true", &[]);
    assert_eq!(code, 0, "{output}");
    let rows = count(&report, "/counters/rows");
    let batches = count(&report, "/operations/insert/count") + count(&report, "/totals/warmup_ops");
    assert!(rows > 0);
    assert_eq!(rows, batches * 100, "every batch wrote its 100 rows");
    assert_eq!(standin.row_count("events"), Some(rows as usize), "the stand-in holds exactly the rows reported");
    assert_eq!(standin.column("events", "obj_1").len(), rows as usize, "the extra object columns are filled");
    assert_eq!(standin.rejected.load(std::sync::atomic::Ordering::Relaxed), 0, "no malformed request");
    assert!(!report.to_string().contains("s3cret"), "the password is redacted: {report}");
    let node = &report["nodes"]["crate-a"];
    assert!(node["ops"].as_u64().is_some_and(|n| n > 0), "requests by node name: {}", report["nodes"]);
}

#[test]
fn refused_rows_are_counted_as_errors_and_not_as_written() {
    let standin = CrateStandIn::start("crate-b", None);
    standin.refuse_every_nth_row(10);
    let (code, report, output) = run(
        &standin.address,
        "  kind: records\n  table: refused\n  batch_size: 20\n  keep: true\n  batch_interval: 20ms",
        &[],
    );
    // The default error-rate threshold is not set, so the run passes; the
    // refused rows are in the counters and every batch is a server error.
    assert_eq!(code, 0, "{output}");
    let (rows, failed) = (count(&report, "/counters/rows"), count(&report, "/counters/rows_failed"));
    let batches = count(&report, "/operations/insert/count") + count(&report, "/totals/warmup_ops");
    assert_eq!(rows + failed, batches * 20, "every row offered is written or refused");
    assert_eq!(failed, batches * 2, "one row in ten is refused");
    assert_eq!(standin.row_count("refused"), Some(rows as usize));
    let errors = count(&report, "/operations/insert/errors_by_kind/server");
    assert_eq!(errors, count(&report, "/operations/insert/count"), "each measured batch had refused rows");
}

#[test]
fn query_run_reads_the_preloaded_table_and_drops_it() {
    let standin = CrateStandIn::start("crate-q", None);
    let (code, report, output) =
        run(&standin.address, "  kind: query\n  table: events_q\n  preload_rows: 3000\n  hosts: 100", &[]);
    assert_eq!(code, 0, "{output}");
    for query in ["bucket", "last_point", "range"] {
        assert!(count(&report, &format!("/operations/{query}/count")) > 0, "{query}: {report}");
    }
    let notes = report["notes"].to_string();
    assert!(notes.contains("3000 rows preloaded into events_q"), "{notes}");
    assert!(!standin.has_table("events_q"), "the table is dropped without keep: true");
}

#[test]
fn https_works_with_a_trusted_certificate_and_fails_clearly_without() {
    let standin = CrateStandIn::start_tls("crate-tls", Some(("bench", "s3cret")));
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = write_file(dir.path(), "ca.pem", standin.certificate_pem.as_deref().expect("pem"));
    let endpoint = format!("https://bench:s3cret@{}", standin.address);
    let workload = "  kind: records\n  table: secure\n  batch_size: 50\n  keep: true";
    let (code, report, output) = run(&endpoint, workload, &[("SSL_CERT_FILE", &pem)]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(standin.row_count("secure"), Some(count(&report, "/counters/rows") as usize));

    // Without the certificate the run stops before measuring and says why.
    let untrusted = CrateStandIn::start_tls("crate-tls", None);
    let endpoint = format!("https://{}", untrusted.address);
    let empty = write_file(dir.path(), "empty.pem", "");
    let (code, _, output) = run(&endpoint, workload, &[("SSL_CERT_FILE", &empty)]);
    assert_ne!(code, 0, "{output}");
    assert!(output.to_lowercase().contains("certificate"), "the cause is named: {output}");
    assert!(output.contains(&untrusted.address), "the endpoint is named: {output}");
    assert!(output.contains("SSL_CERT_FILE"), "the way out is named: {output}");
}

/// How haproxy balances in front of the stand-ins.
#[derive(Clone, Copy, PartialEq)]
enum Balancer {
    /// Layer 7: a server is chosen for every request.
    Http,
    /// Layer 7, and each answer names its server in `X-Served-By`.
    HttpWithHeader,
    /// Layer 4: a server is chosen for every TCP connection.
    Tcp,
}

/// haproxy on loopback, balancing over `servers` (name, address, weight)
/// round robin.
fn balancer(dir: &std::path::Path, mode: Balancer, servers: &[(&str, &str, u32)]) -> (Process, String) {
    assert!(
        which("haproxy").is_some(),
        "haproxy is not installed; deploy/test.sh installs it (apt-get install haproxy)"
    );
    let address = format!("127.0.0.1:{}", free_port());
    // Readiness is polled on a frontend of its own that refuses every
    // connection: a probe through `front` would take a turn of the round
    // robin (and, in TCP mode, a backend connection) from the run.
    let ready = format!("127.0.0.1:{}", free_port());
    let lines: String =
        servers.iter().map(|(name, server, weight)| format!("  server {name} {server} weight {weight}\n")).collect();
    let (layer, header) = match mode {
        Balancer::Http => ("http", ""),
        Balancer::HttpWithHeader => ("http", "  http-response set-header X-Served-By %s\n"),
        Balancer::Tcp => ("tcp", ""),
    };
    let config = format!(
        "global\n  maxconn 200\ndefaults\n  mode {layer}\n  timeout connect 2s\n  timeout client 30s\n  \
         timeout server 30s\nfrontend ready\n  mode tcp\n  bind {ready}\n  tcp-request connection reject\n\
         frontend front\n  bind {address}\n  default_backend back\nbackend back\n  \
         balance roundrobin\n{header}{lines}"
    );
    let path = write_file(dir, "haproxy.cfg", &config);
    let mut check = std::process::Command::new("haproxy");
    check.args(["-c", "-f", &path]);
    let (code, out, err) = run_command(check, Duration::from_secs(20));
    assert_eq!(code, 0, "haproxy rejects its configuration: {out}{err}");
    let mut command = std::process::Command::new("haproxy");
    command.args(["-db", "-f", &path]);
    let process = Process::spawn("haproxy", command);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&ready).is_err() {
        assert!(std::time::Instant::now() < deadline, "haproxy did not listen on {address}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (process, address)
}

/// A records run of `agents` x `connections` through `address`, with the
/// weights 3:1 expected, measured from the first request (no warm-up, so
/// that every request a node served is in the report).
fn balanced_run(address: &str, agents: u32, connections: u32, extra_target: &str) -> (Value, String) {
    let text = format!(
        "name: crate-behind-balancer\nduration: 3s\nwarmup: 0s\nagents: {agents}\n\
         target:\n  kind: cratedb\n  endpoints: [\"{address}\"]\n{extra_target}load:\n  connections: {connections}\n\
         workload:\n  kind: records\n  table: balanced\n  batch_size: 5\n  keep: true\n\
         distribution:\n  expect: {{crate-a: 3, crate-b: 1}}\n  tolerance: 3%\n"
    );
    let (code, report, output) = run_scenario(&text, &[]);
    assert_eq!(code, 0, "{output}");
    (report, output)
}

/// The report's measured requests of one node.
fn node_requests(report: &Value, node: &str) -> u64 {
    report["nodes"][node]["ops"].as_u64().unwrap_or(0)
}

#[test]
fn behind_an_http_balancer_that_names_its_server_every_request_counts_against_it() {
    let a = CrateStandIn::start("crate-a", None);
    let b = a.add_node("crate-b");
    let dir = tempfile::tempdir().expect("tempdir");
    // haproxy's server names are the node names (%s in the header).
    let servers = [("crate-a", a.address.as_str(), 3), ("crate-b", b.address.as_str(), 1)];
    let (_haproxy, address) = balancer(dir.path(), Balancer::HttpWithHeader, &servers);
    let (report, output) = balanced_run(&address, 2, 3, "  node_header: X-Served-By\n");
    let (served_a, served_b) = (a.served.inserts(), b.served.inserts());
    eprintln!("served {served_a} + {served_b}; report {}", report["nodes"]);
    assert!(served_a > 0 && served_b > 0, "haproxy used both nodes: {output}");
    assert_eq!(node_requests(&report, "crate-a"), served_a, "crate-a's own count: {}", report["nodes"]);
    assert_eq!(node_requests(&report, "crate-b"), served_b, "crate-b's own count: {}", report["nodes"]);
    let distribution = &report["distribution"];
    assert!(distribution.get("sampling").is_none(), "nothing is sampled with a node header: {distribution}");
    assert_eq!(distribution["verdict"], "balanced", "{distribution}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("`X-Served-By` header"), "{notes}");
    assert_eq!(a.row_count("balanced"), Some(count(&report, "/counters/rows") as usize), "one table on both nodes");
}

#[test]
fn behind_a_tcp_balancer_requests_and_connections_count_exactly() {
    let a = CrateStandIn::start("crate-a", None);
    let b = a.add_node("crate-b");
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = [("a", a.address.as_str(), 3), ("b", b.address.as_str(), 1)];
    let (_haproxy, address) = balancer(dir.path(), Balancer::Tcp, &servers);
    let (report, output) = balanced_run(&address, 2, 4, "");
    for (name, node) in [("crate-a", &a), ("crate-b", &b)] {
        let served = &node.served;
        eprintln!(
            "{name}: served {} inserts on {} of {} connections; report {}",
            served.inserts(),
            served.insert_connections(),
            served.connections(),
            report["nodes"][name]
        );
        assert_eq!(node_requests(&report, name), served.inserts(), "{name}'s own count of inserts: {output}");
        let opened = report["nodes"][name]["opened"].as_u64().unwrap_or(0);
        assert_eq!(opened, served.insert_connections(), "{name}: the connections that carried its inserts");
    }
    // haproxy's round robin hands out connections in a fixed order, 3 to
    // crate-a for each 1 to crate-b: of the run's four, crate-b has one.
    assert_eq!(b.served.insert_connections(), 1, "crate-b carried one of the run's connections");
    // No socket the report does not count: the stand-ins accepted the
    // run's connections and two more, set-up's and teardown's.
    let opened = count(&report, "/nodes/crate-a/opened") + count(&report, "/nodes/crate-b/opened");
    assert_eq!(opened, 4, "4 connections over 2 agents: {}", report["nodes"]);
    assert_eq!(a.served.connections() + b.served.connections(), opened + 2, "no hidden connections");
}

#[test]
fn behind_an_http_balancer_without_a_header_shares_are_sampled_and_the_interval_holds_the_truth() {
    // haproxy chooses a server for every request (weights 3:1); the node is
    // sampled with `GET /` at random gaps.
    let a = CrateStandIn::start("crate-a", None);
    let b = a.add_node("crate-b");
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = [("a", a.address.as_str(), 3), ("b", b.address.as_str(), 1)];
    let (_haproxy, address) = balancer(dir.path(), Balancer::Http, &servers);
    let (report, output) = balanced_run(&address, 1, 2, "");
    let (served_a, served_b) = (a.served.inserts(), b.served.inserts());
    let truth = served_a as f64 / (served_a + served_b) as f64;
    assert!((truth - 0.75).abs() < 0.01, "haproxy sent 3 of 4 inserts to crate-a: {truth}");
    let sampling = &report["distribution"]["sampling"];
    // Every sample is a `GET /` the node answered.
    assert_eq!(sampling["nodes"]["crate-a"]["samples"].as_u64(), Some(a.served.probes()), "{sampling}");
    assert_eq!(sampling["nodes"]["crate-b"]["samples"].as_u64(), Some(b.served.probes()), "{sampling}");
    let (low, high) = (
        sampling["nodes"]["crate-a"]["low"].as_f64().expect("low"),
        sampling["nodes"]["crate-a"]["high"].as_f64().expect("high"),
    );
    eprintln!("crate-a served {truth:.4}; sampled interval [{low:.4}, {high:.4}] from {}", sampling["samples"]);
    assert!(low <= truth && truth <= high, "the stated interval holds what crate-a served: {sampling}");
    // A sample at most 24 requests after the last on each connection
    // (gaps of 8 to 24): how many there are follows from what was served,
    // however fast the machine was.
    let samples = sampling["samples"].as_u64().expect("samples");
    assert!(samples * 24 + 2 * 24 >= served_a + served_b, "{samples} samples of {} requests", served_a + served_b);
    assert!(samples * 8 <= served_a + served_b + 2 * 8, "{samples} samples of {} requests", served_a + served_b);
    let verdict = report["distribution"]["verdict"].as_str().unwrap_or_default();
    assert!(["balanced", "inconclusive"].contains(&verdict), "a healthy balancer is not blamed: {verdict}");
    assert!(output.contains("shares are sampled:"), "the text report says so: {output}");
    assert!(report["notes"].to_string().contains("cratedb nodes are sampled"), "{}", report["notes"]);
    // Per-second shares come only from intervals with enough samples.
    for interval in report["distribution"]["intervals"].as_array().expect("intervals") {
        let samples = interval["samples"].as_u64().expect("samples per interval");
        let drawn = interval["shares"].as_object().is_some_and(|s| !s.is_empty());
        assert_eq!(drawn, samples >= 30, "{interval}");
    }
}

#[test]
fn what_cratedb_said_reaches_the_report_with_the_stand_ins_count_of_refused_requests() {
    let standin = CrateStandIn::start("crate-e", None);
    let text = format!(
        "name: crate\nduration: 3s\nwarmup: 0s\nagents: 1\ntarget:\n  kind: cratedb\n  endpoints: [\"{}\"]\n\
         load:\n  connections: 2\nworkload:\n  kind: records\n  table: kept\n  batch_size: 20\n  keep: true\n",
        standin.address
    );
    // Another client drops the table once the run is under way: every
    // insert from then on is refused with "Relation 'kept' unknown".
    let served = std::sync::Arc::clone(&standin.served);
    let dropper = {
        let standin_drop = standin.dropper("kept");
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while served.inserts() < 50 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            standin_drop();
        })
    };
    let (code, report, output) = run_scenario(&text, &[]);
    dropper.join().expect("thread");
    assert_eq!(code, 0, "{output}");
    let refused = standin.errors_answered(4041);
    assert!(refused > 10, "{output}");
    let insert = &report["operations"]["insert"];
    // The teardown's REFRESH is refused too, outside the measured requests.
    assert_eq!(
        insert["errors"].as_u64(),
        Some(refused - 1),
        "the report's errors are the inserts the stand-in refused"
    );
    let messages = insert["error_messages"].as_array().expect("error_messages");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["node"], "crate-e");
    assert_eq!(messages[0]["count"].as_u64(), Some(refused - 1));
    let said = messages[0]["message"].as_str().expect("message");
    assert!(said.contains("Relation 'kept' unknown") && said.contains("4041"), "{said}");
    assert!(output.contains(&format!("insert at crate-e (server, x{}): {said}", refused - 1)), "{output}");
    assert!(report["notes"].to_string().contains("teardown failed"), "{}", report["notes"]);
}

#[test]
fn a_kept_table_of_another_shape_is_refused_naming_the_difference_or_recreated() {
    let standin = CrateStandIn::start("crate-k", None);
    let scenario = |objects: u32, shards: u32, extra: &str| {
        format!(
            "name: crate\nduration: 1s\nwarmup: 0s\nagents: 1\ntarget:\n  kind: cratedb\n  endpoints: [\"{}\"]\n\
             load:\n  connections: 1\nworkload:\n  kind: records\n  table: shaped\n  batch_size: 10\n  \
             objects: {objects}\n  shards: {shards}\n  keep: true\n{extra}",
            standin.address
        )
    };
    let (code, report, output) = run_scenario(&scenario(2, 4, ""), &[]);
    assert_eq!(code, 0, "{output}");
    assert!(report["notes"].to_string().contains("table shaped created with 4 shards"), "{}", report["notes"]);
    let rows = standin.row_count("shaped").expect("the kept table");
    // The same shape again: kept, and the note says what it is.
    let (code, report, output) = run_scenario(&scenario(2, 4, ""), &[]);
    assert_eq!(code, 0, "{output}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("table shaped kept as it was: 4 shards, 0 replicas, 12 columns (2 object columns"),
        "{notes}"
    );
    let rows = standin.row_count("shaped").filter(|n| *n > rows).expect("more rows");

    // Five object columns and 3 shards asked of a table with two and 4:
    // refused before anything is written, naming each difference.
    let (code, _, output) = run_scenario(&scenario(5, 3, ""), &[]);
    assert_eq!(code, 2, "{output}");
    for needle in [
        "table shaped exists and is not what the scenario asks",
        "lacks columns obj_2, obj_3, obj_4",
        "it has 4 shards, not 3",
        "recreate: true",
    ] {
        assert!(output.contains(needle), "{needle}: {output}");
    }
    assert_eq!(standin.row_count("shaped"), Some(rows), "nothing was written");
    let (columns, shards, _) = standin.table_shape("shaped").expect("shape");
    assert_eq!((columns.len(), shards), (12, 4), "the table is as it was");

    // With recreate: true it is dropped and created as asked.
    let (code, report, output) = run_scenario(&scenario(5, 3, "  recreate: true\n"), &[]);
    assert_eq!(code, 0, "{output}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("table shaped dropped and created again with 3 shards"), "{notes}");
    let (columns, shards, _) = standin.table_shape("shaped").expect("shape");
    assert_eq!((columns.len(), shards), (15, 3), "{columns:?}");
    assert_eq!(standin.row_count("shaped"), Some(count(&report, "/counters/rows") as usize), "only this run's rows");
}

#[test]
fn a_password_with_plus_percent_at_and_colon_reaches_cratedb_as_written() {
    let standin = CrateStandIn::start("crate-p", Some(("bench", "p+a%b@c:d")));
    // RFC 3986: `%`, `@` and `:` percent-encoded, `+` as it is.
    let endpoint = format!("http://bench:p+a%25b%40c%3Ad@{}", standin.address);
    let (code, report, output) =
        run(&endpoint, "  kind: records\n  table: secret\n  batch_size: 10\n  keep: true", &[]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(count(&report, "/totals/errors"), 0, "{output}");
    let rows = count(&report, "/counters/rows");
    assert!(rows > 0);
    assert_eq!(standin.row_count("secret"), Some(rows as usize), "the stand-in let every batch in");
    assert!(!report.to_string().contains("p+a") && !output.contains("p+a"), "the password is not shown");
}

#[test]
fn a_node_that_says_it_is_unhealthy_fails_the_preparation_or_counts_errors_mid_run() {
    let standin = CrateStandIn::start("crate-u", None);
    standin.unhealthy.store(true, Ordering::Relaxed);
    let (code, _, output) = run(&standin.address, "  kind: records\n  table: sick\n  batch_size: 10", &[]);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("CrateDB node crate-u") && output.contains("not healthy"), "{output}");
    assert!(standin.unhealthy_answers.load(Ordering::Relaxed) > 0);

    // Healthy when the run starts, unhealthy once it is under way: each
    // sample of the node that finds it unhealthy is an error against it.
    standin.unhealthy.store(false, Ordering::Relaxed);
    let answers_before = standin.unhealthy_answers.load(Ordering::Relaxed);
    let (flag, requests) = (std::sync::Arc::clone(&standin.unhealthy), std::sync::Arc::clone(&standin.sql_requests));
    let requests_before = requests.load(Ordering::Relaxed);
    let sicken = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while requests.load(Ordering::Relaxed) < requests_before + 200 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        flag.store(true, Ordering::Relaxed);
    });
    let text = format!(
        "name: crate\nduration: 3s\nwarmup: 0s\nagents: 1\ntarget:\n  kind: cratedb\n  endpoints: [\"{}\"]\n\
         load:\n  connections: 2\nworkload:\n  kind: records\n  table: sick\n  batch_size: 10\n  keep: true\n",
        standin.address
    );
    let (code, report, output) = run_scenario(&text, &[]);
    sicken.join().expect("thread");
    assert_eq!(code, 0, "{output}");
    let answered = standin.unhealthy_answers.load(Ordering::Relaxed) - answers_before;
    let errors = count(&report, "/operations/insert/errors");
    assert!(answered > 0, "{output}");
    assert_eq!(errors, answered, "an error for each unhealthy answer the stand-in gave");
    let said = report["operations"]["insert"]["error_messages"][0]["message"].as_str().unwrap_or_default();
    assert!(said.contains("not healthy"), "{said}");
}

#[test]
fn an_insert_that_times_out_is_a_timeout_a_new_counted_connection_and_rows_that_may_have_been_applied() {
    let standin = CrateStandIn::start("crate-t", None);
    let served = std::sync::Arc::clone(&standin.served);
    // After 100 inserts the node holds one for 6 s (the client gives up at
    // 5 s), then applies it.
    let stall = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while served.inserts() < 100 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        served.stall_inserts.store(1, Ordering::Relaxed);
    });
    let text = format!(
        "name: crate-stall\nduration: 9s\nwarmup: 0s\nagents: 1\ntarget:\n  kind: cratedb\n  endpoints: [\"{}\"]\n\
         load:\n  connections: 1\nworkload:\n  kind: records\n  table: stalled\n  batch_size: 10\n  keep: true\n",
        standin.address
    );
    let (code, report, output) = run_scenario(&text, &[]);
    stall.join().expect("thread");
    assert_eq!(code, 0, "{output}");
    assert_eq!(count(&report, "/operations/insert/errors_by_kind/timeout"), 1, "{output}");
    // The abandoned request's socket is not used again: a new connection,
    // counted, carried the rest.
    assert_eq!(count(&report, "/nodes/crate-t/opened"), 2, "{}", report["nodes"]);
    assert_eq!(standin.served.insert_connections(), 2);
    assert_eq!(
        count(&report, "/nodes/crate-t/ops"),
        standin.served.inserts(),
        "every insert the node answered or applied"
    );
    // The timed-out insert was applied all the same: the report says so.
    let (rows, unconfirmed) = (count(&report, "/counters/rows"), count(&report, "/counters/rows_unconfirmed"));
    assert_eq!(unconfirmed, 10, "{}", report["counters"]);
    assert_eq!(standin.row_count("stalled"), Some((rows + unconfirmed) as usize), "the node holds them");
    assert!(output.contains("may have been applied"), "{output}");
}
