//! The websocket target against `stampede ws-server` processes: chat rooms
//! through a real haproxy in HTTP mode (the node of each connection from
//! the server's hello, checked against each node's own counts and
//! haproxy's sessions), echo with many mostly idle connections and their
//! connect times, and what goes wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use stampede_tests::haproxy::Haproxy;
use stampede_tests::{Process, RunOutcome, free_port, run_local};

/// The counts a ws-server node printed when it stopped, by node.
fn served(server: &mut Process, nodes: usize) -> BTreeMap<String, BTreeMap<String, u64>> {
    server.terminate(Duration::from_secs(10));
    let mut counts = BTreeMap::new();
    for _ in 0..nodes {
        let line = server.wait_for_line(" served: ", Duration::from_secs(10));
        let (head, fields) = line.split_once(" served: ").expect("summary");
        let node = head.trim_start_matches("ws-server ").to_string();
        let values = fields
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().expect("a count")))
            .collect();
        counts.insert(node, values);
    }
    counts
}

fn ws_servers(nodes: u16) -> (Process, Vec<String>) {
    let base = free_port();
    let mut ports = vec![base];
    // --nodes takes consecutive ports; find a run of free ones.
    while ports.len() < usize::from(nodes) {
        let next = free_port();
        if next == ports[ports.len() - 1] + 1 {
            ports.push(next);
        } else {
            ports = vec![next];
        }
    }
    let base = ports[0].to_string();
    let server = Process::stampede("ws-server", &["ws-server", "--nodes", &nodes.to_string(), "--base-port", &base]);
    let addresses = (0..nodes).map(|_| server.listening_address()).collect();
    (server, addresses)
}

fn scenario(endpoints: &[&str], agents: u32, load: &str, workload: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "name: ws\nduration: 3s\nwarmup: 0s\nagents: {agents}\ntarget:\n  kind: websocket\n  endpoints: [{}]\n\
         load:\n{load}\nworkload:\n{workload}\n",
        endpoints.join(", ")
    )
}

fn node_count(report: &Value, node: &str, operation: &str) -> u64 {
    report["nodes"][node]["operations"][operation]["count"].as_u64().unwrap_or(0)
}

#[test]
fn a_chat_through_haproxy_in_http_mode_matches_each_nodes_own_counts() {
    let (mut server, backends) = ws_servers(2);
    let named: Vec<(String, String)> =
        backends.iter().enumerate().map(|(i, b)| (format!("ws-{i}"), b.clone())).collect();
    let haproxy = Haproxy::http(&named, &[]);
    let text = scenario(
        &[&haproxy.address],
        2,
        "  model: open\n  connections: 6\n  rate: 300/s",
        "  kind: chat\n  rooms: 4\n  members: 3\n  message_size: 256B",
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(120));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(report["totals"]["errors"], 0, "{}", report["operations"]);
    let sessions = haproxy.sessions();
    let counts = served(&mut server, 2);
    let (mut posts, mut deliveries) = (0, 0);
    for (node, count) in &counts {
        eprintln!("{node}: {count:?}; haproxy {:?}; report {}", sessions.get(node), report["nodes"][node]);
        assert_eq!(node_count(&report, node, "post"), count["posts"], "{node}: posts it received");
        assert_eq!(node_count(&report, node, "deliver"), count["deliveries"], "{node}: broadcasts it delivered");
        assert_eq!(sessions.get(node).copied(), Some(count["connections"]), "{node}: haproxy's sessions");
        // Posters and members: every connection the node accepted.
        assert_eq!(report["nodes"][node]["connections"].as_u64(), Some(count["connections"]), "{node}: connections");
        assert!(count["posts"] > 0, "{node} served posters");
        assert_eq!(count["dropped"], 0);
        posts += count["posts"];
        deliveries += count["deliveries"];
    }
    assert_eq!(report["operations"]["post"]["count"].as_u64(), Some(posts));
    assert_eq!(report["counters"]["fanout"].as_u64(), Some(deliveries), "fan-out as the servers counted it");
    assert_eq!(report["counters"]["delivered"].as_u64(), Some(deliveries), "every broadcast reached its members");
    let p99 = report["operations"]["deliver"]["latency_us"]["p99"].as_u64().unwrap_or(0);
    assert!(p99 > 0 && p99 < 1_000_000, "delivery p99 {p99} us");
    assert_eq!(report["operations"]["connect"]["count"].as_u64(), Some(6), "each poster's connect time");
}

#[test]
fn many_mostly_idle_echo_connections_each_time_their_connect() {
    let (mut server, backends) = ws_servers(1);
    let text = scenario(
        &[&backends[0]],
        2,
        "  model: open\n  connections: 2000\n  rate: 100/s",
        "  kind: echo\n  message_size: 512B\n  binary: true",
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(180));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(report["totals"]["errors"], 0, "{}", report["operations"]);
    let counts = served(&mut server, 1);
    let count = &counts["ws-0"];
    assert_eq!(report["operations"]["connect"]["count"].as_u64(), Some(count["connections"]), "{count:?}");
    assert_eq!(count["connections"], 2000);
    assert_eq!(report["operations"]["echo"]["count"].as_u64(), Some(count["echoes"]), "{count:?}");
    let connect = &report["operations"]["connect"]["latency_us"];
    assert!(connect["p50"].as_u64().is_some_and(|p| p > 0), "{connect}");
    assert_eq!(report["nodes"]["ws-0"]["opened"].as_u64(), Some(2000), "{}", report["nodes"]);
}

#[test]
fn a_server_stopped_mid_run_costs_connection_errors_and_the_run_ends_on_time() {
    let (mut server, backends) = ws_servers(1);
    let text = scenario(&[&backends[0]], 1, "  model: open\n  connections: 2\n  rate: 200/s", "  kind: echo")
        .replace("duration: 3s", "duration: 5s");
    let started = std::time::Instant::now();
    let run = std::thread::spawn(move || run_local(&text, &[], &[], Duration::from_secs(120)));
    std::thread::sleep(Duration::from_secs(3));
    server.terminate(Duration::from_secs(10));
    let RunOutcome { code, report, stdout, stderr } = run.join().expect("run");
    assert!(report.is_object(), "a report: stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(code == 0 || code == 1, "{code}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(40), "ended on time: {:?}", started.elapsed());
    let errors = report["operations"]["echo"]["errors_by_kind"]["connection"].as_u64().unwrap_or(0);
    assert!(errors >= 1, "{}", report["operations"]["echo"]);
    assert!(report["operations"]["echo"]["error_messages"].to_string().contains(&backends[0]));
}

#[test]
fn an_unreachable_websocket_server_fails_the_run_with_a_message_naming_it() {
    let text = scenario(&["127.0.0.1:1"], 1, "  connections: 1", "  kind: chat");
    let RunOutcome { code, stdout, stderr, .. } = run_local(&text, &[], &[], Duration::from_secs(60));
    assert_ne!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(said.contains("cannot open a WebSocket to 127.0.0.1:1"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}
