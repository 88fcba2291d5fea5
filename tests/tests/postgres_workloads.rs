//! The PostgreSQL workloads run by `stampede run` with two in-process
//! agents against a real PostgreSQL server: the rows the report says were
//! inserted are the rows in the table.

use std::time::Duration;

use serde_json::Value;
use stampede_tests::{Postgres, RunOutcome, run_local};

fn run(server: &Postgres, connections: u32, workload: &str) -> Value {
    let text = format!(
        "name: pg\nduration: 3s\nwarmup: 1s\nagents: 2\ntarget:\n  kind: postgres\n  endpoints: [\"{}\"]\n\
         load:\n  connections: {connections}\nworkload:\n{workload}\nthresholds:\n  - error_rate < 0.1%\n",
        server.url()
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(120));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(report.is_object(), "a report: {report}");
    report
}

fn notes(report: &Value) -> Vec<String> {
    report["notes"].as_array().expect("notes").iter().filter_map(|n| n.as_str().map(String::from)).collect()
}

#[test]
fn metrics_runs_insert_exactly_the_rows_they_report() {
    let server = Postgres::start();
    for method in ["insert", "copy"] {
        let table = format!("cpu_{method}");
        let report = run(
            &server,
            4,
            &format!(
                "  kind: metrics\n  table: {table}\n  hosts: 50\n  batch_size: 200\n  method: {method}\n  keep: true"
            ),
        );
        let rows = report["counters"]["rows"].as_u64().expect("rows counter");
        let batches = report["operations"]["insert"]["count"].as_u64().expect("insert count")
            + report["totals"]["warmup_ops"].as_u64().expect("warm-up");
        assert!(rows > 0);
        assert_eq!(rows, batches * 200, "{method}: every batch wrote 200 rows");
        let in_table: u64 = server.psql(&format!("SELECT count(*) FROM {table}")).parse().expect("count");
        assert_eq!(in_table, rows, "{method}: SELECT count(*) equals the rows reported");
        assert!(report["counter_rates"]["rows"].as_f64().expect("rows/s") > 0.0);
        assert!(notes(&report).iter().any(|n| n.contains(&format!("table {table} is a plain table"))), "{report}");
        let system = server.psql("SELECT system_identifier FROM pg_control_system()");
        let expected = format!("node 127.0.0.1:{}: PostgreSQL system identifier {system}", server.port);
        assert!(notes(&report).contains(&expected), "{expected} in {:?}", notes(&report));
        let hosts: u64 = server.psql(&format!("SELECT count(DISTINCT hostname) FROM {table}")).parse().expect("hosts");
        assert_eq!(hosts, 50, "the two agents cover all hosts");
    }
    // Without keep, the table is dropped after the run.
    run(&server, 2, "  kind: metrics\n  table: cpu_dropped\n  batch_size: 10");
    assert_eq!(server.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'cpu_dropped'"), "0");
}

#[test]
fn query_and_pool_runs_complete_with_a_histogram_per_query() {
    let server = Postgres::start();
    let report = run(&server, 2, "  kind: query\n  table: cpu_q\n  preload_rows: 20000\n  hosts: 20");
    for query in ["bucket", "last_point", "range"] {
        assert!(report["operations"][query]["count"].as_u64().expect("count") > 0, "{query}");
        assert!(report["operations"][query]["latency_us"]["p99"].as_u64().expect("p99") > 0, "{query}");
    }
    assert!(notes(&report).iter().any(|n| n.contains("20000 rows preloaded")), "{report}");
    assert!(report["counters"]["rows"].as_u64().expect("rows read") > 0);
    let report = run(&server, 2, "  kind: pool");
    assert!(report["operations"]["cycle"]["count"].as_u64().expect("cycles") > 10);
    let node = format!("127.0.0.1:{}", server.port);
    assert!(report["nodes"][&node]["ops"].as_u64().is_some(), "{}", report["nodes"]);
}

#[test]
fn a_drop_blocked_by_another_sessions_lock_gives_up_with_a_note_and_the_run_keeps_its_verdict() {
    let server = Postgres::start();
    let (report, elapsed) = std::thread::scope(|scope| {
        // Another session waits for the run's table, then holds a lock on it
        // that conflicts with DROP TABLE (not with the inserts) for a minute.
        let holder = scope.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while server.psql("SELECT to_regclass('cpu_locked') IS NOT NULL") != "t" {
                assert!(std::time::Instant::now() < deadline, "the run never created its table");
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut psql = std::process::Command::new(stampede_tests::postgres_program("psql"));
            psql.args(["-h", "127.0.0.1", "-p", &server.port.to_string(), "-U", "postgres", "-d", "postgres"]);
            psql.args(["-c", "BEGIN; LOCK TABLE cpu_locked IN ACCESS SHARE MODE; SELECT pg_sleep(60); COMMIT;"]);
            stampede_tests::Process::spawn("lock-holder", psql)
        });
        let started = std::time::Instant::now();
        let report = run(&server, 2, "  kind: metrics\n  table: cpu_locked\n  batch_size: 10");
        let elapsed = started.elapsed();
        drop(holder.join().expect("lock holder"));
        (report, elapsed)
    });
    assert!(elapsed < Duration::from_secs(50), "teardown took {elapsed:?}");
    let note = notes(&report)
        .into_iter()
        .find(|n| n.starts_with("teardown failed"))
        .unwrap_or_else(|| panic!("no teardown note in {:?}", notes(&report)));
    assert!(note.contains("lock timeout") && note.contains("another session held a lock on cpu_locked"), "{note}");
    assert_eq!(server.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'cpu_locked'"), "1");
}

#[test]
fn what_postgresql_said_reaches_the_report_with_its_own_count_of_failed_transactions() {
    let server = Postgres::start();
    // A kept table without the columns the workload writes: every insert is
    // refused.
    server.psql("CREATE TABLE cpu_old (time TIMESTAMPTZ NOT NULL, hostname TEXT NOT NULL)");
    let rolled_back = || -> u64 {
        server.psql("SELECT pg_stat_force_next_flush()");
        server.psql("SELECT xact_rollback FROM pg_stat_database WHERE datname = 'postgres'").parse().expect("number")
    };
    let before = rolled_back();
    let text = format!(
        "name: refused\nduration: 2s\nwarmup: 0s\nagents: 1\ntarget:\n  kind: postgres\n  endpoints: [\"{}\"]\n\
         load:\n  connections: 2\nworkload:\n  kind: metrics\n  table: cpu_old\n  batch_size: 10\n  keep: true\n",
        server.url()
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(120));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The agents' sessions have closed, so their counts are in the statistics.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let insert = &report["operations"]["insert"];
    let errors = insert["errors"].as_u64().expect("errors");
    while rolled_back() - before < errors && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(errors > 10, "{report}");
    assert_eq!(rolled_back() - before, errors, "the report's errors are PostgreSQL's own failed transactions");
    assert_eq!(server.psql("SELECT count(*) FROM cpu_old"), "0");
    let messages = insert["error_messages"].as_array().expect("error_messages");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["count"].as_u64(), Some(errors));
    let said = messages[0]["message"].as_str().expect("message");
    assert!(said.contains("does not exist") && said.contains("cpu_old"), "{said}");
    assert!(stdout.contains(&format!("x{errors}): {said}")), "the text report:\n{stdout}");
}

#[test]
fn slow_statements_are_measured_not_logged_whole() {
    let server = Postgres::start();
    let text = format!(
        "name: slow\nduration: 3s\nwarmup: 0s\nagents: 1\ntarget:\n  kind: postgres\n  endpoints: [\"{}\"]\n\
         load:\n  connections: 1\nworkload:\n  kind: pool\n  query: \"SELECT pg_sleep(1.2), repeat('long statement text ', 500)\"\n",
        server.url()
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(120));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let p50 = report["operations"]["cycle"]["latency_us"]["p50"].as_f64().expect("p50");
    assert!(p50 >= 1_200_000.0, "the statements took their 1.2 s: {p50}");
    assert!(!stderr.contains("long statement text"), "a statement was logged:\n{stderr}");
}
