use std::time::Duration;

use stampede_tests::influx::Influx;

use super::*;
use crate::drivers::conformance::{self, Operations};

fn op(action: Action) -> Operation {
    Operation { index: 0, action }
}

fn write_scenario(endpoint: &str, extra: &str) -> String {
    format!(
        "name: t\nduration: 1s\ntarget:\n  kind: influx\n  endpoints: [\"{endpoint}\"]\nload:\n  connections: 1\n\
         workload:\n  kind: write\n  database: conf\n  measurement: conf\n  tags: {{host: 4, region: 2}}\n  \
         fields: 3\n  batch_size: 50\n{extra}"
    )
}

#[test]
fn a_partial_writes_dropped_points_are_read_from_its_message() {
    let message = "partial write: field type conflict: input field \"usage_0\" on measurement \"cpu\" is type float, \
                   already exists as type integer dropped=37";
    assert_eq!(dropped(message), Some(37));
    assert_eq!(dropped("unable to parse 'x': missing fields"), None);
    let error = refusal("h:1", 400, br#"{"error":"unable to parse 'cpu x': invalid field format"}"#);
    assert_eq!(error.kind, ErrorKind::Protocol);
    let error = refusal("h:1", 404, br#"{"error":"database not found: \"nope\""}"#);
    assert_eq!(error.kind, ErrorKind::Server);
    assert!(error.message.contains("database not found") && error.message.contains("setup creates it"), "{error:?}");
    let error = refusal("h:1", 502, b"<html>bad gateway</html>");
    assert_eq!(error.kind, ErrorKind::Server);
    assert!(error.message.contains("without InfluxDB's error object"), "{error:?}");
}

/// The shared checks against a real influxd: a batch written, then the
/// newest point per host read, then a range of a host that has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_influx_driver_passes_the_conformance_checks() {
    let mut server = Influx::start();
    let part = Part { agent_index: 0, key_start: 0, key_end: 8 };
    let driver: InfluxDriver = conformance::build(&write_scenario(&server.address, ""), &part);
    driver.setup(std::slice::from_ref(&server.address), &part, &Progress::default()).await.expect("setup");
    let operations = Operations {
        write: op(Action::Insert(0)),
        read: op(Action::Query(QueryKind::LastPoint, 0)),
        check_read: |done| done.rows >= 1,
        missing: op(Action::Query(QueryKind::Range, 999)),
        check_missing: |done| done.rows == 0,
    };
    let address = server.address.clone();
    let restart = async move || {
        tokio::task::spawn_blocking(move || {
            server.restart();
            std::mem::forget(server);
        })
        .await
        .expect("restart");
    };
    let target = conformance::Target {
        endpoint: address,
        url: |a| a.to_string(),
        driver_for: Box::new(move |endpoint| conformance::build(&write_scenario(endpoint, ""), &part)),
    };
    conformance::check(&driver, target, operations, restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_written_are_counted_by_influxdb_and_a_type_conflict_says_so() {
    let server = Influx::start();
    let part = Part { agent_index: 0, key_start: 0, key_end: 8 };
    let driver: InfluxDriver = conformance::build(&write_scenario(&server.address, "  gzip: true\n"), &part);
    driver.setup(std::slice::from_ref(&server.address), &part, &Progress::default()).await.expect("setup");
    let mut connection = driver.connect(&server.address).await.expect("connect");
    let mut rows = 0;
    for batch in 0..5 {
        let done = connection.execute(&op(Action::Insert(batch))).await.expect("write");
        assert_eq!(done.values, done.rows * 3);
        rows += u64::from(done.rows);
    }
    assert_eq!(rows, 250);
    let counts = tokio::task::spawn_blocking(move || (server.counts("conf", "conf"), server)).await.expect("count");
    assert_eq!(counts.0, vec![250, 250, 250], "InfluxDB's count(*) of each field");
    let server = counts.1;
    // usage_0 as an integer in another measurement's place: every point of
    // the next batch conflicts.
    let other: InfluxDriver = conformance::build(
        &write_scenario(&server.address, "").replace("measurement: conf", "measurement: typed"),
        &part,
    );
    // Without a time the point is now, in the shard the run writes to.
    let (status, body) = server.write("conf", "typed,host=host_0,region=region_0 usage_0=1i");
    assert_eq!(status, 204, "{body}");
    let mut connection = other.connect(&server.address).await.expect("connect");
    let error = connection.execute(&op(Action::Insert(0))).await.expect_err("a field type conflict");
    assert_eq!(error.kind, ErrorKind::Server);
    assert!(error.message.contains("field type conflict"), "{}", error.message);
    assert!(error.message.contains(&server.address), "names the endpoint: {}", error.message);
}

#[tokio::test]
async fn a_server_that_is_not_influxdb_is_told_apart_at_connect() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        }
    });
    let part = Part { agent_index: 0, key_start: 0, key_end: 8 };
    let driver: InfluxDriver = conformance::build(&write_scenario(&address, ""), &part);
    let started = std::time::Instant::now();
    let error = driver.connect(&address).await.err().expect("not InfluxDB");
    assert_eq!(error.kind, ErrorKind::Protocol);
    assert!(error.message.contains(&address) && error.message.contains("/ping"), "{}", error.message);
    assert!(started.elapsed() < Duration::from_secs(10));
}
