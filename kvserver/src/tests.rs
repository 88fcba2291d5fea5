//! Server tests over real sockets with the redis crate and raw bytes.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start_with(config: ServerConfig) -> Spawned {
    spawn("127.0.0.1:0".parse().expect("addr"), config).await.expect("bind")
}

async fn start(node: &str) -> Spawned {
    start_with(ServerConfig { node_id: node.to_string(), ..ServerConfig::default() }).await
}

async fn raw(addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket.write_all(input).await.expect("write");
    socket.shutdown().await.expect("half close");
    let mut out = Vec::new();
    let _ = socket.read_to_end(&mut out).await;
    out
}

async fn client(addr: SocketAddr) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

#[tokio::test]
async fn the_redis_crate_works_against_it() {
    let server = start("kv-7").await;
    let mut con = client(server.addr).await;
    let pong: String = redis::cmd("PING").query_async(&mut con).await.expect("ping");
    assert_eq!(pong, "PONG");
    let () = redis::cmd("SET").arg("k").arg("v").query_async(&mut con).await.expect("set");
    let value: String = redis::cmd("GET").arg("k").query_async(&mut con).await.expect("get");
    assert_eq!(value, "v");
    let n: i64 = redis::cmd("INCRBY").arg("n").arg(5).query_async(&mut con).await.expect("incrby");
    assert_eq!(n, 5);
    let len: i64 = redis::cmd("RPUSH").arg("l").arg("a").arg("b").query_async(&mut con).await.expect("rpush");
    assert_eq!(len, 2);
    let items: Vec<String> = redis::cmd("LRANGE").arg("l").arg(0).arg(-1).query_async(&mut con).await.expect("lrange");
    assert_eq!(items, vec!["a", "b"]);
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut con).await.expect("info");
    assert!(info.contains("node_id:kv-7\r\n"), "{info}");
    let error = redis::cmd("NOPE").arg("x").query_async::<String>(&mut con).await.unwrap_err();
    assert!(error.to_string().contains("unknown command"), "{error}");
}

#[tokio::test]
async fn pipelined_requests_get_replies_in_order_and_are_counted() {
    let server = start("kv-0").await;
    let out = raw(
        server.addr,
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n",
    )
    .await;
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.starts_with("+OK\r\n$1\r\n1\r\n+PONG\r\n"), "{text}");
    assert!(text.contains("cmdstat_set:calls=1\r\n"), "{text}");
    assert!(text.contains("cmdstat_get:calls=1\r\n"), "{text}");
}

#[tokio::test]
async fn malformed_input_gets_a_protocol_error_and_other_clients_are_unharmed() {
    let server = start("kv-0").await;
    let mut bystander = client(server.addr).await;
    for hostile in [&b"*1\r\n$99999999999\r\n"[..], b"*-5x\r\n", b"*2\r\n:1\r\n", b"*1\r\n$3\r\nabcdef"] {
        let out = raw(server.addr, hostile).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("-ERR Protocol error") || out.is_empty(), "{hostile:?} -> {text}");
    }
    let pong: String = redis::cmd("PING").query_async(&mut bystander).await.expect("bystander still served");
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn auth_is_required_when_a_password_is_set() {
    let server = start_with(ServerConfig { requirepass: Some("s3cret".into()), ..ServerConfig::default() }).await;
    let out = raw(server.addr, b"GET k\r\nAUTH wrong\r\nAUTH s3cret\r\nGET k\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n$-1\r\n"
    );
}

#[tokio::test]
async fn max_clients_refuses_the_connection_beyond_the_limit() {
    let server = start_with(ServerConfig { max_clients: 1, ..ServerConfig::default() }).await;
    let mut first = client(server.addr).await;
    let _: String = redis::cmd("PING").query_async(&mut first).await.expect("first served");
    let out = raw(server.addr, b"PING\r\n").await;
    assert_eq!(out, b"-ERR max number of clients reached\r\n");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server =
        start_with(ServerConfig { idle_timeout: Some(Duration::from_millis(300)), ..ServerConfig::default() }).await;
    let mut socket = TcpStream::connect(server.addr).await.expect("connect");
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await.expect("closed in time");
    assert_eq!(read.expect("read"), 0);
}

#[tokio::test]
async fn subscribers_are_not_closed_for_being_idle() {
    let server =
        start_with(ServerConfig { idle_timeout: Some(Duration::from_millis(200)), ..ServerConfig::default() }).await;
    let mut subscriber = TcpStream::connect(server.addr).await.expect("connect");
    subscriber.write_all(b"SUBSCRIBE quiet\r\n").await.expect("subscribe");
    let mut buf = vec![0u8; 128];
    let _ = subscriber.read(&mut buf).await.expect("confirmation");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(raw(server.addr, b"PUBLISH quiet still-here\r\n").await, b":1\r\n");
    let n = subscriber.read(&mut buf).await.expect("message");
    assert!(buf[..n].ends_with(b"still-here\r\n"), "{:?}", &buf[..n]);
}

#[tokio::test]
async fn published_messages_reach_subscribers() {
    let server = start("kv-0").await;
    let mut subscriber = TcpStream::connect(server.addr).await.expect("connect");
    subscriber.write_all(b"SUBSCRIBE news\r\n").await.expect("subscribe");
    let mut buf = vec![0u8; 256];
    let n = subscriber.read(&mut buf).await.expect("confirmation");
    assert_eq!(&buf[..n], b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    subscriber.write_all(b"GET k\r\n").await.expect("write");
    let n = subscriber.read(&mut buf).await.expect("refusal");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("only (P|S)SUBSCRIBE"), "{:?}", &buf[..n]);
    let out = raw(server.addr, b"PUBLISH news hello\r\nPUBLISH other x\r\n").await;
    assert_eq!(out, b":1\r\n:0\r\n");
    let n = subscriber.read(&mut buf).await.expect("message");
    assert_eq!(&buf[..n], b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let server = start("kv-0").await;
    let addr = server.addr;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"PING\r\n").await.expect("write");
    let mut pong = [0u8; 7];
    idle.read_exact(&mut pong).await.expect("pong");
    server.stop().await.expect("serve");
    let mut buf = [0u8; 1];
    assert_eq!(idle.read(&mut buf).await.expect("read"), 0, "idle connection closed");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_disconnected_and_others_keep_their_messages() {
    let limit = 1024 * 1024;
    let server = start_with(ServerConfig { pubsub_queue_limit: limit, ..ServerConfig::default() }).await;
    let mut confirmation = vec![0u8; 64];
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"SUBSCRIBE firehose\r\n").await.expect("subscribe");
    let _ = slow.read(&mut confirmation).await.expect("confirmation");
    let mut fast = TcpStream::connect(server.addr).await.expect("connect");
    fast.write_all(b"SUBSCRIBE firehose\r\n").await.expect("subscribe");
    let _ = fast.read(&mut confirmation).await.expect("confirmation");
    let message = vec![b'm'; 64 * 1024];
    let frame_len =
        format!("*3\r\n$7\r\nmessage\r\n$8\r\nfirehose\r\n${}\r\n", message.len()).len() + message.len() + 2;
    // The fast subscriber reads everything until the server closes it.
    let reader = tokio::spawn(async move {
        let mut total = 0usize;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match fast.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    });
    let mut publisher = client(server.addr).await;
    let mut published = 0usize;
    let mut dropped_at = None;
    // The slow one's socket buffers take some megabytes before its queue grows.
    for i in 0..600 {
        let received: i64 =
            redis::cmd("PUBLISH").arg("firehose").arg(&message).query_async(&mut publisher).await.expect("publish");
        published += 1;
        if received == 1 {
            dropped_at = Some(i);
            break;
        }
        assert_eq!(received, 2);
    }
    assert!(dropped_at.is_some(), "the slow subscriber was never dropped after {published} messages");
    let subscribers: i64 =
        redis::cmd("PUBLISH").arg("firehose").arg("after").query_async(&mut publisher).await.expect("publish");
    assert_eq!(subscribers, 1, "only the subscriber that reads is still subscribed");
    // The slow subscriber's connection ends: what it still reads is followed by EOF.
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0usize;
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    })
    .await
    .expect("the slow subscriber's connection was closed");
    assert!(drained < published * frame_len, "it got {drained} bytes of {} published", published * frame_len);
    let pong: String = redis::cmd("PING").query_async(&mut publisher).await.expect("ping");
    assert_eq!(pong, "PONG");
    server.stop().await.expect("stop");
    let after_len = "*3\r\n$7\r\nmessage\r\n$8\r\nfirehose\r\n$5\r\nafter\r\n".len();
    let total = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("reader ends").expect("reader");
    assert_eq!(total, published * frame_len + after_len, "the fast subscriber got every message");
}
