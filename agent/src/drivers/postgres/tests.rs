use super::rows::PG_EPOCH_US;
use super::*;

#[test]
fn the_insert_statement_binds_every_column_of_every_row() {
    let sql = insert_statement("t", 3);
    assert!(sql.starts_with("INSERT INTO t (time, hostname, region, datacenter, usage_user,"));
    assert!(sql.ends_with(&format!("${})", 3 * COLUMNS_PER_ROW)));
    assert_eq!(sql.matches('$').count(), 3 * COLUMNS_PER_ROW);
}

#[test]
fn rows_cycle_through_the_agents_hosts_and_advance_in_time() {
    let text = |times: &str| {
        format!(
            "name: t\nduration: 1s\ntarget:\n  kind: postgres\n  endpoints: [\"h:1\"]\nworkload:\n  kind: metrics\n  \
             hosts: 10\n{times}"
        )
    };
    let part = Part { agent_index: 1, key_start: 4, key_end: 7 };
    let clock = Utc::now();
    // A series from a given time, 30 s per round of hosts.
    let scenario = Scenario::parse(&text("  start: 2026-01-01T00:00:00Z\n  step: 30s\n")).expect("valid");
    let driver = PostgresDriver::new(&scenario, &part);
    let rows: Vec<MetricRow> = (0..6).map(|i| MetricRow::new(&driver.plan, i, clock)).collect();
    let hosts: Vec<u64> = rows.iter().map(|r| r.host).collect();
    assert_eq!(hosts, vec![4, 5, 6, 4, 5, 6]);
    assert_eq!(rows[0].time.to_rfc3339(), "2026-01-01T00:00:00+00:00");
    assert_eq!((rows[3].time - rows[0].time).num_seconds(), 30);
    assert!(rows.iter().all(|r| r.usage.iter().all(|u| (0.0..100.0).contains(u))));
    // A series that starts a day ago, 10 s a round by default.
    let scenario = Scenario::parse(&text("  start: -24h\n")).expect("valid");
    let driver = PostgresDriver::new(&scenario, &part);
    let first = MetricRow::new(&driver.plan, 0, clock).time;
    assert!(((clock - first).num_seconds() - 86_400).abs() <= 2, "{first}");
    assert_eq!((MetricRow::new(&driver.plan, 3, clock).time - first).num_seconds(), 10);
    // By default the clock: the data ends at now.
    let driver = PostgresDriver::new(&Scenario::parse(&text("")).expect("valid"), &part);
    assert_eq!(MetricRow::new(&driver.plan, 1_000_000, clock).time, clock);
}

#[test]
fn row_time_settings_that_make_no_sense_are_refused_with_the_way_out() {
    for (times, needle) in [
        ("  step: 10s\n", "give `start` too"),
        ("  start: yesterday\n", "neither an RFC 3339 time"),
        ("  start: -24x\n", "workload.start"),
        ("  start: -1h\n  step: 0s\n", "more than 0"),
    ] {
        let text = format!(
            "name: t\nduration: 1s\ntarget:\n  kind: postgres\n  endpoints: [\"h:1\"]\nworkload:\n  kind: metrics\n{times}"
        );
        let error = Scenario::parse(&text).expect_err(times).to_string();
        assert!(error.contains(needle), "{times}: {error}");
    }
}

fn scenario_text(endpoint: &str, workload: &str) -> String {
    format!("name: t\nduration: 1s\ntarget:\n  kind: postgres\n  endpoints: [\"{endpoint}\"]\nworkload:\n{workload}")
}

fn scenario(workload: &str) -> Scenario {
    Scenario::parse(&scenario_text("h:1", workload)).expect("valid")
}

/// The shared conformance checks against a real PostgreSQL: batches of
/// four rows over two hosts written, then read back by a range scan.
#[tokio::test]
async fn the_driver_passes_the_conformance_checks() {
    use crate::drivers::conformance::{self, Operations};
    let server = stampede_tests::Postgres::start();
    let part = Part { agent_index: 0, key_start: 0, key_end: 2 };
    for (method, table) in [("insert", "conf_insert"), ("copy", "conf_copy")] {
        let workload = format!(
            "  kind: metrics\n  table: {table}\n  hosts: 2\n  batch_size: 4\n  method: {method}\n  keep: true\n"
        );
        let driver: PostgresDriver = conformance::build(&scenario_text(&server.url(), &workload), &part);
        let notes = driver.setup(&[server.url()], &part, &Progress::default()).await.expect("setup");
        assert!(notes.iter().any(|n| n.contains("plain table")), "{notes:?}");
        // The range query of the query workload reads the same table.
        let operations = Operations {
            write: Operation { index: 0, action: Action::Insert(0) },
            read: Operation { index: 2, action: Action::Query(QueryKind::Range, 0) },
            check_read: |done| done.rows >= 2,
            missing: Operation { index: 2, action: Action::Query(QueryKind::Range, 999) },
            check_missing: |done| done.rows == 0,
        };
        let url = server.url();
        let terminate = async || {
            let _ = server.psql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'stampede' AND pid <> pg_backend_pid()",
            );
        };
        let lone = part.clone();
        let target = conformance::Target {
            endpoint: url.clone(),
            url: |a| format!("postgres://postgres@{a}/postgres"),
            driver_for: Box::new(move |endpoint| conformance::build(&scenario_text(endpoint, &workload), &lone)),
        };
        conformance::check(&driver, target, operations, terminate).await;
        assert!(server.psql(&format!("SELECT count(*) FROM {table}")).parse::<u64>().expect("count") >= 8);
    }
}

#[tokio::test]
async fn the_pool_workload_opens_and_closes_a_connection_per_operation() {
    let server = stampede_tests::Postgres::start();
    let part = Part { agent_index: 0, key_start: 0, key_end: 0 };
    let driver = PostgresDriver::new(&scenario("  kind: pool\n  query: SELECT 42\n"), &part);
    let mut connection = driver.connect(&server.url()).await.expect("connect");
    assert_eq!(connection.node(), format!("127.0.0.1:{}", server.port));
    for _ in 0..5 {
        connection.execute(&Operation { index: 0, action: Action::Cycle }).await.expect("cycle");
    }
    let bad = PostgresDriver::new(&scenario("  kind: pool\n  query: SELEC 1\n"), &part);
    let mut connection = bad.connect(&server.url()).await.expect("connect");
    let error = connection.execute(&Operation { index: 0, action: Action::Cycle }).await.expect_err("bad SQL");
    assert_eq!(error.kind, ErrorKind::Server, "{error:?}");
}

#[test]
fn endpoints_become_connection_options() {
    assert!(options("127.0.0.1:5432").is_ok());
    assert!(options("postgres://u:p@db:5433/bench").is_ok());
    let error = options("postgres://u:secret@db:notaport/x").expect_err("bad port");
    assert!(!error.message.contains("secret"), "{}", error.message);
}

#[test]
fn binary_copy_data_has_the_documented_layout() {
    let scenario = scenario("  kind: metrics\n  hosts: 2\n  method: copy\n");
    let driver = PostgresDriver::new(&scenario, &Part { agent_index: 0, key_start: 0, key_end: 2 });
    let rows: Vec<MetricRow> = (0..3).map(|i| MetricRow::new(&driver.plan, i, Utc::now())).collect();
    let data = binary_copy(&driver.plan, &rows);
    assert!(data.starts_with(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
    assert!(data.ends_with(&[0xff, 0xff]), "the trailer is a field count of -1");
    // The first row: 14 fields, then an 8-byte timestamp, then `host_0`.
    let row = &data[19..];
    assert_eq!(i16::from_be_bytes([row[0], row[1]]), COLUMNS_PER_ROW as i16);
    assert_eq!(i32::from_be_bytes(row[2..6].try_into().expect("4 bytes")), 8);
    let micros = i64::from_be_bytes(row[6..14].try_into().expect("8 bytes"));
    assert_eq!(micros + PG_EPOCH_US, rows[0].time.timestamp_micros());
    assert_eq!(i32::from_be_bytes(row[14..18].try_into().expect("4 bytes")), 6);
    assert_eq!(&row[18..24], b"host_0");
}
