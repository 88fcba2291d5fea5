//! The coordinator's HTTP port during a real run: `/metrics` is what
//! `promtool check metrics` accepts, and a real Prometheus server scraping
//! it stores the run's series (asked through Prometheus' HTTP API).

use std::process::Command;
use std::time::{Duration, Instant};

use stampede_tests::cluster::{AgentBuilder, CoordinatorBuilder};
use stampede_tests::{
    Process, free_port, get_set_calls, http_get, kv_servers, run_command, run_id_in, run_stampede, which, write_file,
};

fn program(name: &str) -> std::path::PathBuf {
    which(name)
        .unwrap_or_else(|| panic!("{name} is not installed; deploy/test.sh installs it (apt-get install prometheus)"))
}

#[test]
fn prometheus_scrapes_the_merged_figures_of_a_running_run() {
    let data = tempfile::tempdir().expect("tempdir");
    let token = "metrics-test-token";
    let token_file = write_file(data.path(), "token", token);
    let servers = kv_servers(1);
    let kv_address = servers[0].1.clone();
    let coordinator =
        CoordinatorBuilder::new(data.path().join("data")).http().args(&["--token-file", &token_file]).start();
    let url = coordinator.url.clone();
    let http = coordinator.http.clone().expect("an HTTP port");
    let _agents: Vec<Process> = (0..2)
        .map(|i| {
            AgentBuilder::new(&format!("agent-{i}")).coordinator(&url).args(&["--token-file", &token_file]).start()
        })
        .collect();

    assert_eq!(http_get(&http, "/healthz", None).0, 200);
    // Ready once it leads: the HTTP port is served from the start, the
    // store opens a moment later.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&http, "/readyz", None).0 != 200 {
        assert!(Instant::now() < deadline, "/readyz did not answer 200 within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http_get(&http, "/readyz", None).0, 200);
    let (status, body) = http_get(&http, "/metrics", None);
    assert_eq!(status, 401, "the token is wanted: {body}");
    assert!(body.contains("--token-file"), "{body}");
    assert_eq!(http_get(&http, "/nothing", Some(token)).0, 404);

    // Prometheus scrapes every second with the token.
    let prometheus_port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: stampede\n    \
         authorization:\n      credentials_file: {token_file}\n    static_configs:\n      - targets: ['{http}']\n"
    );
    let config_path = write_file(data.path(), "prometheus.yml", &config);
    let mut check = Command::new(program("promtool"));
    check.args(["check", "config", &config_path]);
    let (code, out, err) = run_command(check, Duration::from_secs(30));
    assert_eq!(code, 0, "{out}{err}");
    let mut command = Command::new(program("prometheus"));
    command
        .arg(format!("--config.file={config_path}"))
        .arg(format!("--storage.tsdb.path={}", data.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"));
    let log = std::fs::File::create(data.path().join("prometheus.log")).expect("log");
    let _prometheus = Process::spawn_with_stderr("prometheus", command, log);

    let scenario = format!(
        "name: observed\nduration: 12s\nagents: 2\ntarget:\n  kind: kv\n  endpoints: [\"{kv_address}\"]\n\
         load:\n  connections: 2\n  pipeline: 4\nworkload:\n  kind: kv\n  keys: 1000\n"
    );
    let path = write_file(data.path(), "scenario.yaml", &scenario);
    let (code, stdout, stderr) =
        run_stampede(&["submit", &path, "--coordinator", &url, "--token-file", &token_file], Duration::from_secs(30));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let run = run_id_in(&stdout);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_set_calls(&kv_address) == 0 {
        assert!(Instant::now() < deadline, "no traffic");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));

    let (status, metrics) = http_get(&http, "/metrics", Some(token));
    assert_eq!(status, 200, "{metrics}");
    for needle in [
        "stampede_leader 1".to_string(),
        "stampede_agents_connected 2".to_string(),
        "stampede_runs{state=\"running\"} 1".to_string(),
        format!("stampede_run_operations_total{{run=\"{run}\",operation=\"get\",node=\"kv-0\"}}"),
        format!("stampede_run_latency_seconds_bucket{{run=\"{run}\",operation=\"set\",node=\"kv-0\",le=\"+Inf\"}}"),
        format!("stampede_run_throughput_ops_per_second{{run=\"{run}\""),
    ] {
        assert!(metrics.contains(&needle), "`{needle}` missing from\n{metrics}");
    }
    let metrics_path = write_file(data.path(), "metrics.txt", &metrics);
    let mut lint = Command::new("sh");
    lint.args(["-c", &format!("{} check metrics < {metrics_path}", program("promtool").display())]);
    let (code, out, err) = run_command(lint, Duration::from_secs(30));
    assert_eq!(code, 0, "promtool check metrics: {out}{err}");
    assert!(out.trim().is_empty() && err.trim().is_empty(), "promtool has remarks: {out}{err}");

    // The Prometheus server has stored the run's series.
    let query = format!("stampede_run_operations_total{{run=\"{run}\"}}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let encoded: String = query
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let (status, body) =
            http_get(&format!("127.0.0.1:{prometheus_port}"), &format!("/api/v1/query?query={encoded}"), None);
        if status == 200 && body.contains("\"node\":\"kv-0\"") && body.contains("\"operation\":\"get\"") {
            break body;
        }
        assert!(Instant::now() < deadline, "Prometheus did not store the run's series: {status} {body}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let parsed: serde_json::Value = serde_json::from_str(&stored).expect("Prometheus answers JSON");
    assert_eq!(parsed["status"], "success");
    let results = parsed["data"]["result"].as_array().expect("results");
    assert!(results.len() >= 2, "get and set on kv-0: {results:?}");
    assert!(
        results.iter().all(|r| r["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v > 0.0)),
        "{results:?}"
    );
}
