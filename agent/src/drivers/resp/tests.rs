use super::*;
use crate::drivers::conformance::{self, Operations};
use bytes::Bytes;

#[test]
fn node_identity_comes_from_info() {
    assert_eq!(node_from_info("# Server\r\nnode_id:kv-2\r\nrun_id:abc\r\n"), Some("kv-2".into()));
    assert_eq!(
        node_from_info("# Server\r\nredis_version:7.0\r\nrun_id:0123456789abcdef\r\n"),
        Some("redis-0123456789ab".into())
    );
    assert_eq!(node_from_info("# Server\r\n"), None);
}

fn op(index: u8, action: Action) -> Operation {
    Operation { index, action }
}

/// A cache scenario against `endpoint`: the closed model gives each slot
/// its own socket (the exclusive transport), the open model shares one.
fn cache_scenario(endpoint: &str, exclusive: bool) -> String {
    let load = if exclusive { "model: closed" } else { "model: open\n  rate: 100/s" };
    format!(
        "name: t\nduration: 1s\ntarget:\n  kind: kv\n  endpoints: [\"{endpoint}\"]\nload:\n  {load}\n\
         workload:\n  kind: cache\n  key_prefix: \"conf:\"\n  ttl: 60s\n  keys: 1000\n  value_size: 5B\n"
    )
}

/// The shared conformance checks against the real KV server, with cache
/// reads so that a hit and a miss are told apart.
async fn conformance(exclusive: bool) {
    let config = server_config();
    let server = stampede_kvserver::spawn("127.0.0.1:0".parse().expect("addr"), config.clone()).await.expect("kv");
    let addr = server.addr;
    let part = Part { agent_index: 0, key_start: 0, key_end: 1000 };
    let driver: RespDriver = conformance::build(&cache_scenario(&addr.to_string(), exclusive), &part);
    assert_eq!(driver.config.exclusive, exclusive);
    let operations = Operations {
        write: op(1, Action::Set(7)),
        read: op(0, Action::CacheRead(7)),
        check_read: |done| done.hit == Some(true),
        missing: op(0, Action::Get(123_456)),
        check_missing: |done| done.hit.is_none(),
    };
    let restart = async move || {
        server.stop().await.expect("stop");
        // The same port again, as a restarted server would have.
        let again = stampede_kvserver::spawn(addr, config).await.expect("restart");
        std::mem::forget(again);
    };
    let target = conformance::Target {
        endpoint: addr.to_string(),
        url: |a| a.to_string(),
        driver_for: Box::new(move |endpoint| conformance::build(&cache_scenario(endpoint, exclusive), &part)),
    };
    conformance::check(&driver, target, operations, restart).await;
}

fn server_config() -> stampede_kvserver::ServerConfig {
    stampede_kvserver::ServerConfig { node_id: "kv-conf".into(), ..Default::default() }
}

#[tokio::test]
async fn the_exclusive_transport_passes_the_conformance_checks() {
    conformance(true).await;
}

#[tokio::test]
async fn the_shared_transport_passes_the_conformance_checks() {
    conformance(false).await;
}

#[tokio::test]
async fn every_key_value_action_runs_against_the_kv_server() {
    let server = stampede_kvserver::spawn("127.0.0.1:0".parse().expect("addr"), server_config()).await.expect("kv");
    for exclusive in [true, false] {
        let mut config = RespConfig::simple("acts:", Bytes::from_static(b"v"), exclusive);
        config.ttl_ms = 10_000;
        config.history = 3;
        config.page = 2;
        let driver = RespDriver::new(config);
        let mut connection = driver.connect(&server.addr.to_string()).await.expect("connect");
        let actions = [
            Action::Set(1),
            Action::Get(1),
            Action::Incr(1),
            Action::LPush(1),
            Action::HSet(1),
            Action::ChatPost(9),
            Action::ChatPost(9),
            Action::ChatPost(9),
            Action::ChatPost(9),
            Action::ChatHistory(9),
            Action::Publish(2),
        ];
        let batch: Vec<Operation> = actions.iter().map(|a| op(0, *a)).collect();
        let mut results = Vec::new();
        connection.execute_batch(&batch, &mut results).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // A cache read of a new key misses and fills it; the next one hits.
        let key = if exclusive { 77 } else { 78 };
        let miss = connection.execute(&op(0, Action::CacheRead(key))).await.expect("miss");
        let hit = connection.execute(&op(0, Action::CacheRead(key))).await.expect("hit");
        assert_eq!((miss.hit, hit.hit), (Some(false), Some(true)));
        // INCR on a string that is not a number is the server's error.
        let error = connection.execute(&op(0, Action::Incr(1))).await;
        assert!(error.is_ok(), "counters live under their own keys: {error:?}");
    }
    let mut check = RespConfig::simple("acts:", Bytes::from_static(b"v"), true);
    check.history = 3;
    let driver = RespDriver::new(check);
    let connection = driver.connect(&server.addr.to_string()).await.expect("connect");
    // LTRIM kept the room at its history length.
    let key = b"acts:9".to_vec();
    let Transport::Exclusive(owned) = connection.transport.clone() else { panic!("exclusive") };
    let mut owned = owned.lock().await;
    owned.output.clear();
    wire::encode_command(&mut owned.output, &[b"LLEN", &key]);
    let output = owned.output.clone();
    owned.stream.write_all(&output).await.expect("write");
    let mut reply = [0u8; 16];
    let n = owned.stream.read(&mut reply).await.expect("read");
    assert_eq!(&reply[..n], b":3\r\n");
    drop(owned);
    let part = Part { agent_index: 0, key_start: 0, key_end: 10 };
    let _ = driver.teardown(&[server.addr.to_string()], &part, &Progress::default()).await;
    server.stop().await.expect("stop");
}

/// A connection whose requests are never answered.
#[derive(Clone)]
struct Unanswered;

impl Connection for Unanswered {
    fn node(&self) -> &str {
        "silent"
    }

    async fn execute(&mut self, _operation: &Operation) -> Result<Done, DriverError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_preload_chunk_that_is_never_answered_fails_instead_of_waiting_for_ever() {
    let part = Part { agent_index: 0, key_start: 0, key_end: 2500 };
    let error =
        over_range(&mut Unanswered, &part, Action::Set, &Progress::default()).await.expect_err("no answer is an error");
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(error.message.contains("keys 0..1000 got no complete answer within 30s"), "{}", error.message);
}
