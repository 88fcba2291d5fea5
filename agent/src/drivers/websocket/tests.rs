use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::drivers::Part;
use crate::drivers::conformance::{self, Operations};

fn scenario(endpoint: &str, workload: &str) -> String {
    format!(
        "name: t\nduration: 1s\ntarget:\n  kind: websocket\n  endpoints: [\"{endpoint}\"]\nload:\n  connections: 1\n\
         workload:\n{workload}"
    )
}

async fn ws_server(addr: SocketAddr, node: &str) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let bound = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = stampede_wsserver::ServerConfig { node_id: node.to_string(), ..Default::default() };
    tokio::spawn(stampede_wsserver::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    (bound, stop)
}

fn op(action: Action) -> Operation {
    Operation { index: 0, action }
}

#[tokio::test]
async fn the_websocket_driver_passes_the_conformance_checks() {
    let (addr, stop) = ws_server("127.0.0.1:0".parse().expect("addr"), "ws-conf").await;
    let part = Part { agent_index: 0, key_start: 0, key_end: 4 };
    let echo = "  kind: echo\n  message_size: 100B\n";
    let driver: WsDriver = conformance::build(&scenario(&addr.to_string(), echo), &part);
    let operations = Operations {
        write: op(Action::Echo),
        read: op(Action::Echo),
        check_read: |done| done.fanout == 0,
        missing: op(Action::Echo),
        check_missing: |done| done.rows == 0,
    };
    let restart = async move || {
        let _ = stop.send(());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, again) = ws_server(addr, "ws-conf").await;
        std::mem::forget(again);
    };
    let target = conformance::Target {
        endpoint: addr.to_string(),
        url: |a| a.to_string(),
        driver_for: Box::new(move |endpoint| conformance::build(&scenario(endpoint, echo), &part)),
    };
    conformance::check(&driver, target, operations, restart).await;
}

#[tokio::test]
async fn a_post_reaches_the_rooms_members_and_the_server_counts_them() {
    let (addr, _stop) = ws_server("127.0.0.1:0".parse().expect("addr"), "ws-room").await;
    let part = Part { agent_index: 0, key_start: 0, key_end: 2 };
    let chat = "  kind: chat\n  rooms: 2\n  members: 3\n  message_size: 200B\n";
    let driver: WsDriver = conformance::build(&scenario(&addr.to_string(), chat), &part);
    let members = driver.listeners(&[addr.to_string()]).await.expect("members");
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m.node() == "ws-room"), "the node from the hello");
    let mut poster = driver.connect(&addr.to_string()).await.expect("connect");
    assert!(poster.connect_us().is_some_and(|us| us > 0));
    // Members 0 and 2 are in room 0, member 1 in room 1.
    let done = poster.execute(&op(Action::ChatPost(0))).await.expect("post");
    assert_eq!(done.fanout, 2);
    let done = poster.execute(&op(Action::ChatPost(1))).await.expect("post");
    assert_eq!(done.fanout, 1);
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for member in members {
        let heard = Arc::clone(&heard);
        let mut stop = stop_rx.clone();
        let until = Box::pin(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        tasks.push(tokio::spawn(member.listen(until, Box::new(move |h| heard.lock().expect("lock").push(h.is_ok())))));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop_tx.send(true);
    for task in tasks {
        task.await.expect("member");
    }
    assert_eq!(heard.lock().expect("lock").iter().filter(|ok| **ok).count(), 3, "three deliveries");
}

#[tokio::test]
async fn a_server_that_does_not_upgrade_is_a_protocol_error_naming_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 2048];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        }
    });
    let part = Part { agent_index: 0, key_start: 0, key_end: 2 };
    let driver: WsDriver = conformance::build(&scenario(&address, "  kind: chat\n"), &part);
    let error = driver.connect(&address).await.err().expect("no upgrade");
    assert_eq!(error.kind, ErrorKind::Protocol, "{error:?}");
    assert!(error.message.contains(&address), "{}", error.message);
}
