//! Server tests over real sockets with the redis crate and raw bytes.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(
    node: &str,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    spawn("127.0.0.1:0".parse().expect("addr"), ServerConfig { node_id: node.to_string() }).await.expect("bind")
}

async fn raw(addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket.write_all(input).await.expect("write");
    socket.shutdown().await.expect("half close");
    let mut out = Vec::new();
    socket.read_to_end(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn commands_answer_like_redis() {
    let (addr, _stop, _task) = start("kv-7").await;
    let client = redis::Client::open(format!("redis://{addr}")).expect("url");
    let mut con = client.get_multiplexed_async_connection().await.expect("connect");
    let pong: String = redis::cmd("PING").query_async(&mut con).await.expect("ping");
    assert_eq!(pong, "PONG");
    let echoed: String = redis::cmd("ECHO").arg("hi").query_async(&mut con).await.expect("echo");
    assert_eq!(echoed, "hi");
    let missing: Option<String> = redis::cmd("GET").arg("k").query_async(&mut con).await.expect("get");
    assert_eq!(missing, None);
    let () = redis::cmd("SET").arg("k").arg("v").query_async(&mut con).await.expect("set");
    let value: String = redis::cmd("GET").arg("k").query_async(&mut con).await.expect("get");
    assert_eq!(value, "v");
    let removed: i64 = redis::cmd("DEL").arg("k").arg("other").query_async(&mut con).await.expect("del");
    assert_eq!(removed, 1);
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut con).await.expect("info");
    assert!(info.contains("node_id:kv-7\r\n"), "{info}");
    let error = redis::cmd("GET").query_async::<String>(&mut con).await.unwrap_err();
    assert!(error.to_string().contains("wrong number of arguments"), "{error}");
    let error = redis::cmd("NOPE").arg("x").query_async::<String>(&mut con).await.unwrap_err();
    assert!(error.to_string().contains("unknown command"), "{error}");
}

#[tokio::test]
async fn pipelined_requests_get_replies_in_order_and_are_counted() {
    let (addr, _stop, _task) = start("kv-0").await;
    let out = raw(addr, b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n").await;
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.starts_with("+OK\r\n$1\r\n1\r\n+PONG\r\n"), "{text}");
    assert!(text.contains("cmdstat_set:calls=1\r\n"), "{text}");
    assert!(text.contains("cmdstat_get:calls=1\r\n"), "{text}");
}

#[tokio::test]
async fn malformed_input_gets_a_protocol_error_and_other_clients_are_unharmed() {
    let (addr, _stop, _task) = start("kv-0").await;
    let out = raw(addr, b"*1\r\n$99999999999\r\n").await;
    assert!(String::from_utf8_lossy(&out).starts_with("-ERR Protocol error"), "{out:?}");
    let out = raw(addr, b"PING\r\n").await;
    assert_eq!(out, b"+PONG\r\n");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let (addr, stop, task) = start("kv-0").await;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"PING\r\n").await.expect("write");
    let mut pong = [0u8; 7];
    idle.read_exact(&mut pong).await.expect("pong");
    stop.send(()).expect("stop");
    task.await.expect("join").expect("serve");
    let mut buf = [0u8; 1];
    assert_eq!(idle.read(&mut buf).await.expect("read"), 0, "idle connection closed");
    assert!(TcpStream::connect(addr).await.is_err());
}
