//! Load-balancer audits across hosts: a coordinator, three agents and a
//! balancer host, each in its own network namespace with its own address
//! (`stampede_tests::netns`). On the balancer host a real haproxy (TCP mode)
//! stands in front of three real KV server processes with node ids kv-0,
//! kv-1 and kv-2. Scenarios renew their connections every few requests
//! (`load.reconnect_every`), so haproxy's per-connection choice is sampled
//! many times, and the report's distribution is checked against haproxy's
//! own per-server session counters.
//!
//! Skipped with a message when not root, unless STAMPEDE_REQUIRE_NETNS=1.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;
use stampede_tests::cluster::{AgentBuilder, Coordinator, CoordinatorBuilder, KvServerBuilder};
use stampede_tests::netns::{Host, Lab};
use stampede_tests::{Process, RunBuilder, RunOutcome, ScenarioBuilder, run_command, which, write_file};

const BACKEND_PORTS: [u16; 3] = [7101, 7102, 7103];
const PG_PORTS: [u16; 2] = [5501, 5502];

struct Audit {
    coordinator_host: Host,
    url: String,
    balancer: Host,
    backends: Vec<Option<Process>>,
    _postgres: Vec<stampede_tests::Postgres>,
    dir: tempfile::TempDir,
    // Dropped last: processes first, then the namespaces.
    _haproxy: Process,
    _agents: Vec<Process>,
    _coordinator: Coordinator,
    _lab: Lab,
}

/// The lab: coordinator, three agents, and haproxy with `balance` and
/// `weights` in front of three KV server processes.
fn build(balance: &str, weights: [u32; 3]) -> Option<Audit> {
    build_with(balance, Some(weights))
}

/// With `kv_weights` `None`: haproxy in front of two PostgreSQL servers
/// (frontend port 5432, servers pg-0 and pg-1) instead of KV servers.
fn build_with(balance: &str, kv_weights: Option<[u32; 3]>) -> Option<Audit> {
    let mut lab = Lab::new()?;
    assert!(
        which("haproxy").is_some(),
        "haproxy is not installed; deploy/test.sh installs it (apt-get install haproxy)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator_host = lab.host("coord");
    let agent_hosts: Vec<Host> = (1..=3).map(|i| lab.host(&format!("agent{i}"))).collect();
    let balancer = lab.host("lb");

    let data = dir.path().join("data").to_string_lossy().into_owned();
    let coordinator = CoordinatorBuilder::new(&data)
        .within(&coordinator_host)
        .listen(&format!("{}:0", coordinator_host.address))
        .start();
    let url = coordinator.url.clone();
    let agents =
        agent_hosts.iter().map(|host| AgentBuilder::new(&host.name).within(host).coordinator(&url).start()).collect();

    let (backends, postgres, servers, port) = match kv_weights {
        Some(weights) => {
            let backends: Vec<Option<Process>> = BACKEND_PORTS
                .iter()
                .enumerate()
                .map(|(i, port)| {
                    // Known ports inside the balancer's own namespace, where
                    // nothing else runs: haproxy's configuration names them.
                    let server = KvServerBuilder::new(&format!("kv-{i}"))
                        .within(&balancer)
                        .listen(&format!("127.0.0.1:{port}"))
                        .start();
                    Some(server.process)
                })
                .collect();
            let servers: Vec<String> = BACKEND_PORTS
                .iter()
                .zip(weights)
                .enumerate()
                .map(|(i, (port, weight))| {
                    format!("  server kv-{i} 127.0.0.1:{port} weight {weight} check inter 200ms fall 1 rise 2\n")
                })
                .collect();
            (backends, Vec::new(), servers, 6379)
        }
        None => {
            let postgres: Vec<stampede_tests::Postgres> =
                PG_PORTS.iter().map(|port| stampede_tests::Postgres::start_in(Some(&balancer), *port)).collect();
            let servers = PG_PORTS
                .iter()
                .enumerate()
                .map(|(i, port)| format!("  server pg-{i} 127.0.0.1:{port} check inter 200ms\n"))
                .collect();
            (Vec::new(), postgres, servers, 5432)
        }
    };
    let socket = dir.path().join("haproxy.sock");
    let config = format!(
        "global\n  maxconn 4000\n  stats socket {} mode 600 level admin\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  retries 2\n  option redispatch\n\
         frontend front\n  bind {}:{port}\n  default_backend back\n\
         backend back\n  balance {balance}\n{}",
        socket.display(),
        balancer.address,
        servers.concat()
    );
    let config_path = write_file(dir.path(), "haproxy.cfg", &config);
    let check = run_command(
        {
            let mut c = std::process::Command::new("haproxy");
            c.args(["-c", "-f", &config_path]);
            c
        },
        Duration::from_secs(20),
    );
    assert_eq!(check.0, 0, "haproxy rejects its configuration: {}{}", check.1, check.2);
    let haproxy = balancer.spawn("haproxy", "haproxy", &["-db", "-f", &config_path]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "haproxy did not open its stats socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Audit {
        coordinator_host,
        url,
        balancer,
        backends,
        _postgres: postgres,
        dir,
        _haproxy: haproxy,
        _agents: agents,
        _coordinator: coordinator,
        _lab: lab,
    })
}

impl Audit {
    /// Submits a scenario from the coordinator's host and waits for the
    /// report; returns (exit code, report, output).
    fn submit(&self, name: &str, seconds: u32, extra: &str) -> (i32, Value, String) {
        let mut text = ScenarioBuilder::new(name)
            .duration(&format!("{seconds}s"))
            .warmup("1s")
            .agents(3)
            .endpoints(&[format!("{}:6379", self.balancer.address)])
            .load("connections: 6")
            .load("reconnect_every: 40")
            .yaml();
        text.push_str(extra);
        self.submit_text(name, &text)
    }

    fn submit_text(&self, name: &str, text: &str) -> (i32, Value, String) {
        let RunOutcome { code, report, stdout, stderr } = RunBuilder::new(text)
            .submit_to(&self.url)
            .within(&self.coordinator_host)
            .args(&["-q"])
            .timeout(Duration::from_secs(180))
            .files_in(self.dir.path(), &format!("{name}.yaml"))
            .go();
        (code, report, format!("{stdout}\n{stderr}"))
    }

    /// haproxy's sessions per server (`stot` of `show stat`).
    fn haproxy_sessions(&self) -> BTreeMap<String, u64> {
        let socket = self.dir.path().join("haproxy.sock");
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("haproxy stats socket");
        stream.write_all(b"show stat\n").expect("ask");
        let mut csv = String::new();
        stream.read_to_string(&mut csv).expect("read stats");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().expect("header").trim_start_matches("# ").split(',').collect();
        let column = |name: &str| header.iter().position(|h| *h == name).expect("column");
        let (proxy, server, sessions) = (column("pxname"), column("svname"), column("stot"));
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > sessions && f[proxy] == "back" && f[server] != "BACKEND")
            .map(|f| (f[server].to_string(), f[sessions].parse().expect("stot")))
            .collect()
    }
}

fn share(report: &Value, level: &str, node: &str) -> f64 {
    report["distribution"][level]["nodes"][node]["share"].as_f64().unwrap_or(0.0)
}

#[test]
fn round_robin_is_balanced_by_requests_and_by_connections() {
    let Some(audit) = build("roundrobin", [1, 1, 1]) else { return };
    let (code, report, output) =
        audit.submit("rr", 4, "distribution:\n  expect: uniform\nthresholds:\n  - distribution.max_deviation < 5%\n");
    assert_eq!(code, 0, "{output}");
    let d = &report["distribution"];
    assert_eq!(d["verdict"], "balanced", "{d}");
    assert_eq!(d["connections"]["balanced"], true, "{d}");
    assert!(d["connections"]["total"].as_u64().expect("connections") > 100, "many connections sampled: {d}");
    for node in ["kv-0", "kv-1", "kv-2"] {
        assert!((share(&report, "requests", node) - 1.0 / 3.0).abs() < 0.05, "{node}: {d}");
    }
    assert!(output.contains("distribution over nodes (expected uniform"), "the text report has the table: {output}");
}

#[test]
fn weighted_shares_match_haproxys_counters_and_reject_a_uniform_expectation() {
    let Some(audit) = build("roundrobin", [3, 1, 1]) else { return };
    let (code, report, output) =
        audit.submit("weighted", 4, "distribution:\n  expect: {kv-0: 3, kv-1: 1, kv-2: 1}\n  tolerance: 2%\n");
    assert_eq!(code, 0, "{output}");
    assert_eq!(report["distribution"]["verdict"], "balanced", "{}", report["distribution"]);
    // haproxy's own session counts are the ground truth for connections.
    let sessions = audit.haproxy_sessions();
    let total: u64 = sessions.values().sum();
    assert!(total > 100, "{sessions:?}");
    for (node, n) in &sessions {
        let theirs = *n as f64 / total as f64;
        let ours = share(&report, "connections", node);
        assert!((ours - theirs).abs() < 0.01, "{node}: report {ours:.4}, haproxy {theirs:.4} ({sessions:?})");
    }
    assert!((share(&report, "requests", "kv-0") - 0.6).abs() < 0.02, "{}", report["distribution"]);

    // The same balancer judged against a uniform expectation: unbalanced.
    let (code, report, output) = audit.submit(
        "uniform",
        3,
        "distribution:\n  expect: uniform\nthresholds:\n  - distribution.max_deviation < 5%\n",
    );
    assert_eq!(code, 1, "the threshold fails: {output}");
    let d = &report["distribution"];
    assert_eq!(d["verdict"], "unbalanced", "{d}");
    assert!(d["requests"]["max_deviation_pp"].as_f64().expect("deviation") > 20.0, "{d}");
    assert!(d["requests"]["p_value"].as_f64().expect("p") < 1e-6, "{d}");
}

#[test]
fn source_hashing_pins_each_agent_to_one_node() {
    let Some(audit) = build("source", [1, 1, 1]) else { return };
    let (code, report, output) = audit.submit("source", 3, "");
    assert_eq!(code, 0, "{output}");
    let d = &report["distribution"];
    let agents = d["agents"].as_object().expect("agent x node matrix");
    assert_eq!(agents.len(), 3, "{d}");
    for (agent, nodes) in agents {
        let served: Vec<&String> =
            nodes.as_object().expect("nodes").iter().filter(|(_, n)| n.as_u64() > Some(0)).map(|(k, _)| k).collect();
        assert_eq!(served.len(), 1, "{agent} reaches one node only: {nodes}");
    }
    let findings = d["findings"].to_string();
    assert!(findings.contains("source affinity"), "{d}");
    assert!(d["affinity"].as_f64().expect("Cramér's V") > 0.99, "{d}");
}

#[test]
fn a_backend_stopped_mid_run_leaves_the_distribution_and_the_run_completes() {
    let Some(mut audit) = build("roundrobin", [1, 1, 1]) else { return };
    let backend = audit.backends[2].take().expect("kv-2");
    let stopper = std::thread::spawn(move || {
        // The run prepares, starts about a second later and warms up for a
        // second; kv-2 stops in the middle of the measured part.
        std::thread::sleep(Duration::from_secs(5));
        drop(backend);
    });
    let (code, report, output) = audit.submit("stop", 8, "");
    stopper.join().expect("stopper");
    assert!(code == 0 || code == 1, "the run completes: {output}");
    assert_eq!(report["status"], "passed", "{output}");
    let d = &report["distribution"];
    let intervals = d["intervals"].as_array().expect("intervals");
    let last = intervals.iter().rev().find(|i| i["total"].as_u64() > Some(0)).expect("a last interval");
    assert_eq!(last["shares"]["kv-2"].as_f64(), Some(0.0), "kv-2 served nothing at the end: {d}");
    let first = &intervals[0];
    assert!(first["shares"]["kv-2"].as_f64().expect("share") > 0.2, "kv-2 served at first: {d}");
    assert!(d["findings"].to_string().contains("node kv-2 served no requests in interval"), "{}", d["findings"]);
    let errors = report["totals"]["errors"].as_u64().expect("errors");
    assert!(errors > 0, "the cut connections are errors: {}", report["operations"]);
}

#[test]
fn connection_churn_through_haproxy_spreads_over_two_postgresql_servers() {
    let Some(audit) = build_with("roundrobin", None) else { return };
    let text = format!(
        "name: pg-pool\nduration: 4s\nwarmup: 1s\nagents: 3\ntarget:\n  kind: postgres\n  \
         endpoints: [\"postgres://postgres@{}:5432/postgres\"]\n  nodes: {{\"127.0.0.1:5501\": pg-0, \"127.0.0.1:5502\": pg-1}}\n\
         load:\n  connections: 3\nworkload:\n  kind: pool\ndistribution:\n  expect: uniform\n",
        audit.balancer.address
    );
    let (code, report, output) = audit.submit_text("pg-pool", &text);
    assert_eq!(code, 0, "{output}");
    let d = &report["distribution"];
    assert_eq!(d["verdict"], "balanced", "{d}");
    let cycles = report["operations"]["cycle"]["count"].as_u64().expect("cycles");
    assert!(cycles > 50, "{cycles}");
    for node in ["pg-0", "pg-1"] {
        assert!((share(&report, "requests", node) - 0.5).abs() < 0.05, "{node}: {d}");
        assert!(report["nodes"][node]["operations"]["cycle"]["latency_us"]["p99"].as_u64() > Some(0), "{node}");
    }
    // Each cycle was one haproxy session, as were the run's long-lived connections.
    let sessions = audit.haproxy_sessions();
    let total: u64 = sessions.values().sum();
    assert!(total >= cycles, "{sessions:?} against {cycles} cycles");
}
