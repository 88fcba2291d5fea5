//! The checks every driver passes (test builds only): connect and learn the
//! node, write then read (each counting its bytes), a read of missing
//! data, a batch, a connection
//! that cannot be opened in time classified as a timeout, a refused one as
//! a connection error, and a fresh connection working after the server
//! dropped the old one.

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use stampede_common::Scenario;

use super::{Connection, Done, Driver, DriverSpec, ErrorKind, Part};
use crate::workloads::Operation;

/// Builds `D` from a scenario the way the runner does, for agent 0 of one
/// with `part`'s key range; every driver's test starts here.
pub fn build<D: Driver>(scenario: &str, part: &Part) -> D {
    let scenario = Scenario::parse(scenario).unwrap_or_else(|e| panic!("invalid test scenario: {e}"));
    let endpoints = scenario.target.endpoints.clone();
    let spec = DriverSpec {
        scenario: &scenario,
        part,
        seed: 7,
        endpoints: &endpoints,
        agent_count: 1,
        clock: super::stamp::Clock::default(),
    };
    D::build(&spec).unwrap_or_else(|e| panic!("the driver refused the test scenario: {e}"))
}

/// The operations a driver is checked with.
pub struct Operations {
    pub write: Operation,
    /// Reads what `write` wrote; `check_read` judges its outcome.
    pub read: Operation,
    pub check_read: fn(&Done) -> bool,
    /// Reads something that does not exist; must succeed.
    pub missing: Operation,
    pub check_missing: fn(&Done) -> bool,
}

/// A TCP server that accepts and reads but never answers.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            held.push(tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            }));
        }
    });
    (address, task)
}

/// Where the checks find the target, and how they build a driver for an
/// endpoint that cannot be reached.
pub struct Target<D> {
    /// The endpoint that serves.
    pub endpoint: String,
    /// Turns a bare `host:port` into the endpoint form the driver takes.
    pub url: fn(&str) -> String,
    /// The driver of the same scenario with only the given endpoint (made
    /// with [`build`]): a driver that knows other endpoints (a cluster's
    /// seeds) would rightly reach the target through them.
    pub driver_for: Box<dyn Fn(&str) -> D>,
}

/// Runs the checks on `driver`, built for `target.endpoint`;
/// `drop_connections` makes the server close every open connection.
pub async fn check<D: Driver>(
    driver: &D,
    target: Target<D>,
    operations: Operations,
    drop_connections: impl AsyncFnOnce(),
) {
    let Target { endpoint, url, driver_for } = target;
    let endpoint = endpoint.as_str();
    let mut connection = driver.connect(endpoint).await.expect("connect");
    assert!(!connection.node().is_empty(), "a connection knows its node");

    let write = connection.execute(&operations.write).await.expect("write");
    let read = connection.execute(&operations.read).await.expect("read");
    assert!((operations.check_read)(&read), "read after write: {read:?}");
    // Every operation counts its bytes: a write sends some, a read of
    // what was written sends its request and receives an answer.
    assert!(write.sent > 0, "a write counts the bytes it sent: {write:?}");
    assert!(read.sent > 0 && read.received > 0, "a read counts both ways: {read:?}");
    let missing = connection.execute(&operations.missing).await.expect("a missing read is not an error");
    assert!((operations.check_missing)(&missing), "missing read: {missing:?}");

    let batch = vec![operations.write, operations.read, operations.missing, operations.read];
    let mut results = Vec::new();
    connection.execute_batch(&batch, &mut results).await;
    assert_eq!(results.len(), batch.len());
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let (silent, server) = silent_server().await;
    let started = Instant::now();
    let silent = url(&silent);
    let error = driver_for(&silent).connect(&silent).await.err().expect("a silent server cannot be connected to");
    assert_eq!(error.kind, ErrorKind::Timeout, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "the connect timeout applies");
    server.abort();

    let closed = url("127.0.0.1:1");
    let refused = driver_for(&closed).connect(&closed).await.err().expect("nothing listens on port 1");
    assert_eq!(refused.kind, ErrorKind::Connection, "{refused:?}");
    assert!(refused.message.contains("127.0.0.1:1"), "the error names the endpoint: {}", refused.message);

    drop_connections().await;
    // The old connection fails (or a stateless driver quietly reconnects);
    // either way a connection opened now works.
    if let Err(error) = connection.execute(&operations.read).await {
        assert!(matches!(error.kind, ErrorKind::Connection | ErrorKind::Server), "{error:?}");
    }
    let mut fresh = driver.connect(endpoint).await.expect("reconnect after the server dropped the connection");
    // A restarted server may have lost what was written before.
    fresh.execute(&operations.write).await.expect("write on the new connection");
    let read = fresh.execute(&operations.read).await.expect("read on the new connection");
    assert!((operations.check_read)(&read), "read after reconnect: {read:?}");
}
