//! Two coordinators elect a leader through a real etcd; the leader is
//! killed with SIGKILL mid-run and the standby takes the run over from
//! etcd. Agents registered in etcd follow the new leader and resend what
//! the old one never acknowledged, so the report still equals exactly what
//! each KV server counted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use stampede_tests::cluster::{AgentBuilder, Coordinator, CoordinatorBuilder};
use stampede_tests::etcd::Etcd;
use stampede_tests::{
    Process, free_port, get_set_calls, kv_servers, run_id_in, run_stampede, wait_for_report_via, write_file,
};

/// The status a gRPC health service at `url` gives `service` (`SERVING`,
/// `NOT_SERVING`), or the error code.
fn health(url: &str, service: &str) -> String {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let channel = match tonic::transport::Endpoint::from_shared(url.to_string()).expect("url").connect().await {
            Ok(channel) => channel,
            Err(error) => return format!("cannot connect: {error}"),
        };
        let mut client = HealthClient::new(channel);
        match client.check(HealthCheckRequest { service: service.to_string() }).await {
            Ok(response) => response.into_inner().status().as_str_name().to_string(),
            Err(status) => format!("error {:?}", status.code()),
        }
    })
}

fn wait_for_health(url: &str, service: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = health(url, service);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{url} health `{service}`: {got}, not {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Cluster {
    etcd: Etcd,
    prefix: String,
    /// `--results URL` of every coordinator, when runs are kept in PostgreSQL.
    results: Option<String>,
}

impl Cluster {
    /// `--etcd URL --etcd-prefix P --etcd-lease-ttl 4`
    fn link(&self) -> Vec<String> {
        ["--etcd", &self.etcd.url, "--etcd-prefix", &self.prefix, "--etcd-lease-ttl", "4"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// A coordinator of the cluster on a port of its own, campaigning.
    fn builder(&self, name: &str, data_dir: &str) -> CoordinatorBuilder<'static> {
        let link = self.link();
        let link: Vec<&str> = link.iter().map(String::as_str).collect();
        let builder = CoordinatorBuilder::new(data_dir).name(name).args(&link);
        match &self.results {
            Some(url) => builder.args(&["--results", url]),
            None => builder,
        }
    }

    /// Started once it says "listening on ADDR, campaigning in etcd".
    fn coordinator(&self, name: &str, data_dir: &str) -> Coordinator {
        self.builder(name, data_dir).args(&["--heartbeat-timeout", "3s"]).start()
    }

    /// A coordinator with its stderr in `log`, to read why it stopped.
    fn logged_coordinator(&self, name: &str, data_dir: &str, log: &std::path::Path) -> Coordinator {
        self.builder(name, data_dir).log(log).start()
    }

    /// Waits until `count` coordinators stand in the election.
    fn wait_for_candidates(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.etcd.keys(&format!("{}/leader/", self.prefix)).len() < count {
            assert!(Instant::now() < deadline, "fewer than {count} coordinators campaigned");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Revokes the lease of the candidate at `position` in order of
    /// candidacy (0 leads). Election keys are named after their lease (hex).
    fn revoke_candidacy(&self, position: usize) {
        let (code, stdout, _) =
            self.etcd.etcdctl(&["get", "--prefix", "--sort-by=CREATE", &format!("{}/leader/", self.prefix)]);
        assert_eq!(code, 0);
        // Keys and values alternate.
        let key = stdout.lines().nth(2 * position).expect("the candidate's key").to_string();
        let lease = key.rsplit('/').next().expect("lease id");
        let (code, _, stderr) = self.etcd.etcdctl(&["lease", "revoke", lease]);
        assert_eq!(code, 0, "{stderr}");
    }

    fn stampede(&self, args: &[&str]) -> (i32, String, String) {
        let link = self.link();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(link.iter().map(String::as_str));
        run_stampede(&all, Duration::from_secs(30))
    }

    /// `stampede submit PATH` through etcd, again every 300 ms while it is
    /// refused, for up to 30 s; returns its stdout. `failed` makes the panic
    /// message from the last refusal's output.
    fn submit_retrying(&self, path: &str, failed: impl Fn(&str) -> String) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, stdout, stderr) = self.stampede(&["submit", path]);
            if code == 0 {
                return stdout;
            }
            assert!(Instant::now() < deadline, "{}", failed(&format!("{stdout}{stderr}")));
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The value of the election's leading key: the leader's URL.
    fn leader(&self) -> String {
        let (code, stdout, stderr) = self.etcd.etcdctl(&[
            "get",
            "--prefix",
            "--sort-by=CREATE",
            "--order=ASCEND",
            &format!("{}/leader/", self.prefix),
        ]);
        assert_eq!(code, 0, "{stderr}");
        stdout.lines().nth(1).unwrap_or_default().to_string()
    }

    /// Coordinator a, the leader, and b, its standby, on free ports with
    /// data under `data`; the one at `logged` (0 or 1) writes its stderr to
    /// the returned log. Returns once both stand in the election.
    fn leader_and_standby(&self, data: &std::path::Path, logged: usize) -> ([String; 2], [Process; 2], PathBuf) {
        let log = data.join(if logged == 0 { "a.log" } else { "b.log" });
        let mut urls = Vec::new();
        let mut processes = Vec::new();
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let dir = data.join(name).to_string_lossy().into_owned();
            let process_name = format!("coordinator-{name}");
            let coordinator = match i == logged {
                true => self.logged_coordinator(&process_name, &dir, &log),
                false => self.coordinator(&process_name, &dir),
            };
            urls.push(coordinator.url.clone());
            processes.push(coordinator.process);
            if i == 0 {
                self.wait_for_leader(&urls[0]);
            }
        }
        self.wait_for_candidates(2);
        let urls = urls.try_into().expect("two URLs");
        let processes = processes.try_into().unwrap_or_else(|_| unreachable!("two coordinators"));
        (urls, processes, log)
    }

    fn wait_for_leader(&self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.leader() != url {
            assert!(Instant::now() < deadline, "{url} did not become the leader; etcd names `{}`", self.leader());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn the_standby_takes_over_a_run_when_the_leader_is_killed_and_nothing_is_lost() {
    let cluster =
        Cluster { etcd: Etcd::start(), prefix: format!("/stampede-test-{}", std::process::id()), results: None };
    standby_takes_over(&cluster, None);
}

/// The same with PostgreSQL as the results store: etcd only elects, the
/// standby resumes the run from PostgreSQL.
#[test]
fn the_standby_resumes_a_run_from_postgresql_when_the_leader_is_killed() {
    let postgres = stampede_tests::Postgres::start();
    let cluster = Cluster {
        etcd: Etcd::start(),
        prefix: format!("/stampede-pg-{}", std::process::id()),
        results: Some(postgres.url()),
    };
    standby_takes_over(&cluster, Some(&postgres));
}

/// Kills the leader mid-run; the standby finishes it with nothing lost.
/// With `postgres`, the runs are there and etcd holds none of them.
fn standby_takes_over(cluster: &Cluster, postgres: Option<&stampede_tests::Postgres>) {
    let data = tempfile::tempdir().expect("tempdir");
    let servers = kv_servers(2);
    let dir = |name: &str| data.path().join(name).to_string_lossy().into_owned();
    let leader = cluster.coordinator("coordinator-a", &dir("a"));
    let url_a = leader.url.clone();
    cluster.wait_for_leader(&url_a);
    let standby = cluster.coordinator("coordinator-b", &dir("b"));
    let url_b = standby.url.clone();

    // The standby turns calls away and says why; probes, which need no
    // token, see it alive but not ready, and the leader ready.
    let (code, _, stderr) = run_stampede(&["runs", "--coordinator", &url_b], Duration::from_secs(30));
    assert_ne!(code, 0);
    assert!(stderr.contains("standby"), "{stderr}");
    wait_for_health(&url_a, "", "SERVING");
    assert_eq!(health(&url_b, ""), "NOT_SERVING");
    assert_eq!(health(&url_b, "stampede.live"), "SERVING");
    assert_eq!(health(&url_a, "stampede.v1.ControlService"), "SERVING");

    // Agents register in etcd and find the leader there.
    let link = cluster.link();
    let agent_health = format!("127.0.0.1:{}", free_port());
    let agents: Vec<Process> = (0..2)
        .map(|i| {
            let agent = AgentBuilder::new(&format!("agent-{i}")).args(&link);
            if i == 0 { agent.args(&["--health-listen", agent_health.as_str()]) } else { agent }.start()
        })
        .collect();
    // The agent is ready once it has a session with the leader.
    wait_for_health(&format!("http://{agent_health}"), "", "SERVING");
    assert_eq!(health(&format!("http://{agent_health}"), "stampede.live"), "SERVING");
    let agent_keys = format!("{}/agents/", cluster.prefix);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.etcd.keys(&agent_keys).len() < 2 {
        assert!(Instant::now() < deadline, "agents did not register: {:?}", cluster.etcd.keys(&agent_keys));
        std::thread::sleep(Duration::from_millis(100));
    }
    let endpoints: Vec<String> = servers.iter().map(|(_, a)| format!("\"{a}\"")).collect();
    let scenario = format!(
        "name: failover\nduration: 14s\nagents: 2\ntarget:\n  kind: kv\n  endpoints: [{}]\n\
         load:\n  connections: 2\n  pipeline: 4\nworkload:\n  kind: kv\n  keys: 1000\n\
         on_agent_loss: abort\nthresholds:\n  - error_rate < 50%\n",
        endpoints.join(", ")
    );
    let path = write_file(data.path(), "scenario.yaml", &scenario);
    // The leader may still be opening its doors, or agents connecting.
    let stdout = cluster.submit_retrying(&path, |output| format!("submit through etcd failed: {output}"));
    let run = run_id_in(&stdout);
    let deadline = Instant::now() + Duration::from_secs(30);
    while servers.iter().any(|(_, address)| get_set_calls(address) == 0) {
        assert!(Instant::now() < deadline, "no traffic reached both servers");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let run_keys = cluster.etcd.keys(&format!("{}/runs/{run}/intervals/", cluster.prefix));
    match postgres {
        None => assert!(!run_keys.is_empty(), "the leader keeps the merged intervals in etcd"),
        Some(postgres) => {
            assert!(run_keys.is_empty(), "etcd keeps no intervals: {run_keys:?}");
            let stored = postgres.psql(&format!("SELECT count(*) FROM stampede_intervals WHERE run_id = '{run}'"));
            assert!(stored.trim().parse::<u64>().is_ok_and(|n| n > 0), "the leader keeps them in PostgreSQL: {stored}");
        }
    }
    drop(leader); // SIGKILL, mid-run

    cluster.wait_for_leader(&url_b);
    wait_for_health(&url_b, "", "SERVING");
    let link_args: Vec<&str> = link.iter().map(String::as_str).collect();
    let report = wait_for_report_via(&link_args, &run, Duration::from_secs(90));
    assert_eq!(report["status"], "passed", "{}", report["error"]);
    for (i, (_, address)) in servers.iter().enumerate() {
        let node = format!("kv-{i}");
        assert_eq!(report["totals"]["warmup_ops"], 0, "no warm-up here");
        let reported = report["nodes"][&node]["ops"].as_u64().unwrap_or(0);
        assert_eq!(reported, get_set_calls(address), "{node}: the report equals the server's own count");
    }
    assert_eq!(report["agent_losses"].as_array().map(Vec::len), Some(0), "{}", report["agent_losses"]);
    let intervals = report["intervals"].as_array().expect("intervals");
    assert_eq!(intervals.len(), 14, "every interval is there");
    assert!(intervals.iter().all(|i| i["agents"] == 2), "from both agents: {intervals:?}");
    match postgres {
        // The report is the new leader's, kept in etcd.
        None => assert!(!cluster.etcd.keys(&format!("{}/runs/{run}/report.json", cluster.prefix)).is_empty()),
        Some(postgres) => {
            let kept =
                postgres.psql(&format!("SELECT report_json IS NOT NULL FROM stampede_runs WHERE run_id = '{run}'"));
            assert_eq!(kept.trim(), "t", "the new leader's report is in PostgreSQL");
            let in_etcd = cluster.etcd.keys(&format!("{}/runs/", cluster.prefix));
            assert!(in_etcd.is_empty(), "etcd keeps only the election and registrations: {in_etcd:?}");
            let records = cluster.etcd.keys(&format!("{}/records/", cluster.prefix));
            assert!(records.is_empty(), "{records:?}");
        }
    }
    drop(agents);
    drop(standby);
}

/// Waits for `process` to exit and returns its log; `what` names the failure.
fn wait_for_exit(process: &mut Process, log: &std::path::Path, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while process.is_running() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(log).expect("log")
}

#[test]
fn a_leader_whose_lease_is_revoked_stops_and_the_standby_leads() {
    let cluster =
        Cluster { etcd: Etcd::start(), prefix: format!("/stampede-lease-{}", std::process::id()), results: None };
    let data = tempfile::tempdir().expect("tempdir");
    let ([_, url_b], [mut leader, _standby], log_path) = cluster.leader_and_standby(data.path(), 0);
    cluster.revoke_candidacy(0);
    let log = wait_for_exit(&mut leader, &log_path, "the deposed leader kept running");
    assert!(log.contains("lost the leadership"), "{log}");
    cluster.wait_for_leader(&url_b);
    let (code, stdout, stderr) = cluster.stampede(&["runs"]);
    assert_eq!(code, 0, "the new leader answers through etcd: {stdout}{stderr}");
}

#[test]
fn a_standby_whose_candidacy_lease_is_revoked_stops_and_says_why() {
    let cluster =
        Cluster { etcd: Etcd::start(), prefix: format!("/stampede-standby-{}", std::process::id()), results: None };
    let data = tempfile::tempdir().expect("tempdir");
    let ([url_a, _], [_leader, mut standby], log_path) = cluster.leader_and_standby(data.path(), 1);
    cluster.revoke_candidacy(1);
    let log = wait_for_exit(&mut standby, &log_path, "the standby kept waiting without a candidacy");
    assert!(log.contains("the candidacy's lease lapsed while waiting"), "{log}");
    // The leader is untouched.
    cluster.wait_for_leader(&url_a);
    let (code, stdout, stderr) = cluster.stampede(&["runs"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn an_agent_started_before_etcd_waits_for_it_and_then_takes_part_in_a_run() {
    let data = tempfile::tempdir().expect("tempdir");
    let etcd_port = free_port();
    let prefix = format!("/stampede-early-{}", std::process::id());
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let log_path = data.path().join("agent.log");
    let mut agent = AgentBuilder::new("early")
        .args(&["--etcd", &etcd_url, "--etcd-prefix", &prefix, "--etcd-lease-ttl", "4"])
        .log(&log_path)
        .start();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log().contains("waiting for etcd") {
        assert!(agent.is_running(), "the agent stopped instead of waiting for etcd:\n{}", log());
        assert!(Instant::now() < deadline, "the agent did not say it waits for etcd:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.is_running(), "the agent gave up on etcd:\n{}", log());

    let cluster = Cluster { etcd: Etcd::start_on(etcd_port), prefix, results: None };
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.etcd.keys(&format!("{}/agents/early", cluster.prefix)).is_empty() {
        assert!(Instant::now() < deadline, "the agent did not register once etcd ran:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let coordinator = cluster.coordinator("coordinator", &data.path().join("c").to_string_lossy());
    cluster.wait_for_leader(&coordinator.url);
    let servers = kv_servers(1);
    let scenario = format!(
        "name: early-agent\nduration: 2s\nagents: 1\ntarget:\n  kind: kv\n  endpoints: [\"{}\"]\n\
         load:\n  connections: 1\nworkload:\n  kind: kv\n  keys: 100\n",
        servers[0].1
    );
    let path = write_file(data.path(), "scenario.yaml", &scenario);
    // The agent may still be connecting to the new leader.
    let stdout = cluster.submit_retrying(&path, |output| format!("submit failed: {output}\nagent log:\n{}", log()));
    let link = cluster.link();
    let link_args: Vec<&str> = link.iter().map(String::as_str).collect();
    let report = wait_for_report_via(&link_args, &run_id_in(&stdout), Duration::from_secs(60));
    assert_eq!(report["status"], "passed", "{}", report["error"]);
    assert_eq!(report["nodes"]["kv-0"]["ops"].as_u64().unwrap_or(0), get_set_calls(&servers[0].1));
    assert!(get_set_calls(&servers[0].1) > 0);
}
