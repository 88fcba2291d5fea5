//! The NATS target against real `nats-server` processes: publish/subscribe
//! over a three-server cluster, JetStream, request/reply, and what goes
//! wrong. Every figure is checked against the servers' own accounts (their
//! per-connection message counts, the stream's message count).

use std::time::Duration;

use serde_json::Value;
use stampede_tests::nats::{NatsServer, Served};
use stampede_tests::{RunOutcome, run_local};

fn run(text: &str) -> RunOutcome {
    run_local(text, &[], &[], Duration::from_secs(120))
}

fn scenario(endpoints: &[&str], agents: u32, load: &str, workload: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "name: nats\nduration: 3s\nwarmup: 0s\nagents: {agents}\ntarget:\n  kind: nats\n  endpoints: [{}]\n\
         load:\n{load}\nworkload:\n{workload}\n",
        endpoints.join(", ")
    )
}

fn node_count(report: &Value, node: &str, operation: &str) -> u64 {
    report["nodes"][node]["operations"][operation]["count"].as_u64().unwrap_or(0)
}

fn count(report: &Value, operation: &str) -> u64 {
    report["operations"][operation]["count"].as_u64().unwrap_or(0)
}

fn counter(report: &Value, name: &str) -> u64 {
    report["counters"][name].as_u64().unwrap_or(0)
}

#[test]
fn a_pubsub_run_over_a_three_server_cluster_matches_each_servers_own_counts() {
    let cluster = NatsServer::cluster();
    let endpoints: Vec<&str> = cluster.iter().map(|s| s.address.as_str()).collect();
    let text = scenario(
        &endpoints,
        2,
        "  model: open\n  connections: 6\n  rate: 400/s",
        "  kind: pubsub\n  subjects: 4\n  subscribers: 2\n  message_size: 100B\n  key_prefix: \"bench.\"",
    );
    let RunOutcome { code, report, stdout, stderr } = run(&text);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let published = count(&report, "publish");
    assert!(published > 800, "{published}");
    assert_eq!(report["totals"]["errors"], 0, "{}", report["errors"]);
    // Two agents with two subscribers each, every one on every subject.
    assert_eq!(counter(&report, "fanout"), published * 4, "four deliveries expected per message");
    assert_eq!(counter(&report, "delivered"), published * 4, "every message reached every subscriber");
    let (mut all_in, mut all_out) = (0, 0);
    for server in &cluster {
        let Served { in_msgs, out_msgs, in_bytes, out_bytes, .. } = server.served();
        let name = &server.name;
        eprintln!("{name}: in {in_msgs} out {out_msgs}; report {}", report["nodes"][name]);
        // Payload bytes, as NATS counts them: publishes in, deliveries out.
        assert_eq!(report["nodes"][name]["bytes_sent"], in_bytes, "{name}: payload bytes it received");
        assert_eq!(report["nodes"][name]["bytes_received"], out_bytes, "{name}: payload bytes it delivered");
        assert_eq!(in_bytes, in_msgs * 100, "{name}: 100-byte messages");
        assert_eq!(node_count(&report, name, "publish"), in_msgs, "{name}: publishes it received from clients");
        assert_eq!(node_count(&report, name, "deliver"), out_msgs, "{name}: deliveries it made to subscribers");
        assert!(in_msgs > 0, "{name} served publishers");
        assert_eq!(server.slow_consumers(), 0);
        all_in += in_msgs;
        all_out += out_msgs;
    }
    assert_eq!(all_in, published);
    assert_eq!(all_out, published * 4);
    let p99 = report["operations"]["deliver"]["latency_us"]["p99"].as_u64().expect("p99");
    assert!(p99 > 0 && p99 < 1_000_000, "delivery p99 {p99} us");
}

#[test]
fn jetstream_publishes_are_acknowledged_and_the_stream_holds_every_one() {
    let server = NatsServer::start("js", true);
    let text = scenario(
        &[&server.address],
        2,
        "  connections: 2\n  pipeline: 4",
        "  kind: pubsub\n  subjects: 3\n  subscribers: 1\n  jetstream: true\n  key_prefix: \"orders.\"",
    );
    let RunOutcome { code, report, stdout, stderr } = run(&text);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let published = count(&report, "publish");
    assert!(published > 100, "{published}");
    assert_eq!(report["totals"]["errors"], 0, "{}", report["errors"]);
    assert_eq!(server.stream_messages("ORDERS"), published, "the stream stored every acknowledged publish");
    assert_eq!(counter(&report, "delivered"), published * 2, "core subscribers got them too");
    let notes = report["notes"].to_string();
    assert!(notes.contains("JetStream stream ORDERS"), "{notes}");
}

#[test]
fn requests_are_answered_by_the_agents_responders() {
    let server = NatsServer::start("rpc", false);
    let text = scenario(
        &[&server.address],
        2,
        "  connections: 2\n  pipeline: 2",
        "  kind: request\n  subjects: 5\n  responders: 2\n  message_size: 64B",
    );
    let RunOutcome { code, report, stdout, stderr } = run(&text);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let requests = count(&report, "request");
    assert!(requests > 100, "{requests}");
    assert_eq!(report["totals"]["errors"], 0, "{}", report["errors"]);
    assert_eq!(count(&report, "respond"), requests, "a responder took every request");
    // Each request reaches the server once from the requester and its reply
    // once from the responder; the server then sends each on once.
    let Served { in_msgs, out_msgs, .. } = server.served();
    assert_eq!(in_msgs, requests * 2, "requests and replies the server received");
    assert_eq!(out_msgs, requests * 2, "requests and replies the server delivered");
    assert!(report["operations"]["request"]["latency_us"]["p50"].as_u64().is_some_and(|p| p > 0));
}

#[test]
fn an_unreachable_server_fails_the_run_with_a_message_naming_it() {
    let text = scenario(&["127.0.0.1:1"], 1, "  connections: 1", "  kind: pubsub\n  subscribers: 1");
    let RunOutcome { code, stdout, stderr, .. } = run(&text);
    assert_ne!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(said.contains("NATS server 127.0.0.1:1"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn requests_nobody_answers_are_server_errors_that_say_so() {
    let server = NatsServer::start("empty", false);
    let text = scenario(&[&server.address], 1, "  connections: 1", "  kind: request\n  responders: 0");
    let RunOutcome { code, report, stdout, stderr } = run(&text);
    assert!(report.is_object(), "a report: stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(code == 0 || code == 1, "{code}");
    let request = &report["operations"]["request"];
    let errors = request["errors_by_kind"]["server"].as_u64().unwrap_or(0);
    assert!(errors > 0 && errors == count(&report, "request"), "{request}");
    let messages = request["error_messages"].to_string();
    assert!(messages.contains("NATS server empty: no responders on stampede.rpc."), "{messages}");
}

#[test]
fn a_server_restarted_mid_run_is_seen_in_latency_and_connections_and_the_run_still_ends_on_time() {
    let mut server = NatsServer::start("flaky", false);
    let text = scenario(&[&server.address], 1, "  model: open\n  connections: 2\n  rate: 200/s", "  kind: request")
        // Five seconds after the restart: under a loaded machine a client's
        // reconnection can take a few.
        .replace("duration: 3s", "duration: 8s");
    let started = std::time::Instant::now();
    let run = std::thread::spawn(move || run(&text));
    std::thread::sleep(Duration::from_secs(3));
    server.restart();
    let RunOutcome { code, report, stdout, stderr } = run.join().expect("run");
    assert!(report.is_object(), "a report: stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(code == 0 || code == 1, "{code}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(40), "ended on time: {:?}", started.elapsed());
    let requests = count(&report, "request");
    let answered = count(&report, "respond");
    assert!(requests > 400 && answered > 0, "{requests} {answered}");
    // The open model's requests waited out the restart, and that wait is
    // in their latency; the responders saw the connection go.
    let p999 = report["operations"]["request"]["latency_us"]["p999"].as_u64().unwrap_or(0);
    assert!(p999 > 50_000, "the stall is in the latency: {}", report["operations"]["request"]);
    let lost = report["operations"]["respond"]["errors_by_kind"]["connection"].as_u64().unwrap_or(0);
    assert!(lost >= 1, "{}", report["operations"]["respond"]);
    // Both request connections were opened again after the restart.
    let opened = report["nodes"]["flaky"]["opened"].as_u64().unwrap_or(0);
    assert!(opened >= 4, "{}", report["nodes"]["flaky"]);
    // After the restart the servers' counts start again: what it served
    // then was answered.
    let Served { in_msgs, .. } = server.served();
    assert!(in_msgs > 0, "the restarted server served requests");
}

#[test]
fn subscribers_the_server_drops_as_slow_consumers_are_errors_it_counted_too() {
    // 2 KiB of pending output per client at most: fast publishers overrun
    // the subscribers' share, and the server closes them.
    let server =
        NatsServer::start_configured("slow", "max_payload: 1024\nmax_pending: 2048\nwrite_deadline: \"50ms\"\n");
    let text = scenario(
        &[&server.address],
        1,
        "  connections: 4\n  pipeline: 16",
        "  kind: pubsub\n  subjects: 1\n  subscribers: 2\n  message_size: 1000B",
    );
    let RunOutcome { code, report, stdout, stderr } = run(&text);
    assert!(code == 0 || code == 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let deliver = &report["operations"]["deliver"];
    let lost = deliver["errors_by_kind"]["connection"].as_u64().unwrap_or(0);
    let slow = server.slow_consumers();
    assert!(slow > 0, "the server saw slow consumers");
    assert_eq!(lost, slow, "every subscriber the server dropped is an error of deliver: {deliver}");
    assert!(deliver["error_messages"].to_string().contains("slow_consumers"), "{deliver}");
}
