use super::*;

#[test]
fn node_identity_comes_from_info() {
    assert_eq!(node_from_info("# Server\r\nnode_id:kv-2\r\nrun_id:abc\r\n"), Some("kv-2".into()));
    assert_eq!(
        node_from_info("# Server\r\nredis_version:7.0\r\nrun_id:0123456789abcdef\r\n"),
        Some("redis-0123456789ab".into())
    );
    assert_eq!(node_from_info("# Server\r\n"), None);
}

/// The conformance checks every transport must pass, against the real KV
/// server: connect and learn the node, write then read, a pipelined batch,
/// a refused connection and a dropped connection, both classified as
/// connection errors.
async fn conformance(exclusive: bool) {
    let server = stampede_kvserver::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        stampede_kvserver::ServerConfig { node_id: "kv-conf".into(), ..Default::default() },
    )
    .await
    .expect("kv server");
    let addr = server.addr;
    let driver = RespDriver::new("conf:", Bytes::from_static(b"value"), exclusive);
    let mut connection = driver.connect(&addr.to_string()).await.expect("connect");
    assert_eq!(connection.node(), "kv-conf");
    connection.execute(&Operation::Set { key: 7 }).await.expect("set");
    connection.execute(&Operation::Get { key: 7 }).await.expect("get");
    let mut results = Vec::new();
    let batch: Vec<Operation> =
        (0..32).map(|k| if k % 2 == 0 { Operation::Set { key: k } } else { Operation::Get { key: k } }).collect();
    connection.execute_batch(&batch, &mut results).await;
    assert_eq!(results.len(), 32);
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let refused = driver.connect("127.0.0.1:1").await.err().expect("nothing listens on port 1");
    assert_eq!(refused.kind, ErrorKind::Connection);
    assert!(refused.message.contains("127.0.0.1:1"), "{}", refused.message);

    server.stop().await.expect("stop");
    let error = connection.execute(&Operation::Get { key: 7 }).await.expect_err("server is gone");
    assert_eq!(error.kind, ErrorKind::Connection, "{error:?}");
}

#[tokio::test]
async fn the_exclusive_transport_passes_the_conformance_checks() {
    conformance(true).await;
}

#[tokio::test]
async fn the_shared_transport_passes_the_conformance_checks() {
    conformance(false).await;
}
