use std::time::Duration;

use stampede_tests::nats::NatsServer;

use super::*;
use crate::drivers::conformance::{self, Operations};

fn op(action: Action) -> Operation {
    Operation { index: 0, action }
}

/// A request workload with one responder per agent over four subjects.
fn request_scenario(endpoint: &str) -> String {
    format!(
        "name: t\nduration: 1s\ntarget:\n  kind: nats\n  endpoints: [\"{endpoint}\"]\nload:\n  connections: 1\n\
         workload:\n  kind: request\n  subjects: 4\n  responders: 1\n  message_size: 32B\n"
    )
}

#[test]
fn stream_names_are_made_from_the_prefix() {
    assert_eq!(stream_name("stampede:room:"), "STAMPEDE_ROOM");
    assert_eq!(stream_name("bench.orders."), "BENCH_ORDERS");
    assert_eq!(stream_name("..."), "STAMPEDE");
}

/// The shared checks against a real nats-server: a publish is the write, a
/// request answered by the driver's own responder the read, and a publish
/// to a subject nobody takes the read of nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_driver_passes_the_conformance_checks() {
    let mut server = NatsServer::start("conf", false);
    let part = Part { agent_index: 0, key_start: 0, key_end: 4 };
    let driver: NatsDriver = conformance::build(&request_scenario(&server.address), &part);
    let mut responders = driver.listeners(std::slice::from_ref(&server.address)).await.expect("responders");
    assert_eq!(responders.len(), 1);
    assert_eq!(responders[0].node(), "conf", "the node is the server's name from INFO");
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&answered);
    let listening = responders.remove(0).listen(
        Box::pin(std::future::pending()),
        Box::new(move |heard| {
            if heard.is_ok() {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }),
    );
    let responder = tokio::spawn(listening);
    let operations = Operations {
        write: op(Action::Publish(1)),
        read: op(Action::Request(1)),
        check_read: |done| done.rows == 0,
        missing: op(Action::Publish(99)),
        check_missing: |done| done.fanout == 0,
    };
    let address = server.address.clone();
    let restart = async move || {
        tokio::task::spawn_blocking(move || {
            server.restart();
            // The responder finds the server again by itself.
            server.wait_for_subscribed(1, Duration::from_secs(20));
            std::mem::forget(server);
        })
        .await
        .expect("restart");
    };
    let target = conformance::Target {
        endpoint: address,
        url: |a| a.to_string(),
        driver_for: Box::new(move |endpoint| conformance::build(&request_scenario(endpoint), &part)),
    };
    conformance::check(&driver, target, operations, restart).await;
    assert!(answered.load(std::sync::atomic::Ordering::Relaxed) >= 4, "the responder answered every request");
    responder.abort();
}

#[tokio::test]
async fn a_server_that_does_not_speak_nats_is_an_error_naming_it() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(b"+OK hello, this is not NATS\r\n").await;
        }
    });
    let part = Part { agent_index: 0, key_start: 0, key_end: 4 };
    let driver: NatsDriver = conformance::build(&request_scenario(&address), &part);
    let started = std::time::Instant::now();
    let error = driver.connect(&address).await.err().expect("not a NATS server");
    assert!(error.message.contains(&address), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "no hang: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_answers_is_a_server_error_that_says_so() {
    let server = NatsServer::start("lonely", false);
    let part = Part { agent_index: 0, key_start: 0, key_end: 4 };
    let driver: NatsDriver = conformance::build(&request_scenario(&server.address), &part);
    let mut connection = driver.connect(&server.address).await.expect("connect");
    let error = connection.execute(&op(Action::Request(2))).await.expect_err("no responders");
    assert_eq!(error.kind, ErrorKind::Server, "{error:?}");
    assert!(error.message.contains("no responders on stampede.rpc.2"), "{}", error.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_servers_max_payload_is_refused_at_connect() {
    let server = NatsServer::start("small", false);
    let part = Part { agent_index: 0, key_start: 0, key_end: 4 };
    let scenario = request_scenario(&server.address).replace("32B", "2MiB");
    let driver: NatsDriver = conformance::build(&scenario, &part);
    let error = driver.connect(&server.address).await.err().expect("2 MiB is over NATS's 1 MiB default");
    assert_eq!(error.kind, ErrorKind::Server);
    assert!(error.message.contains("max_payload") && error.message.contains(&server.address), "{}", error.message);
}
