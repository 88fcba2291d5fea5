//! Security with real processes: the coordinator's bearer token (agents
//! and clients without it are refused), mutual TLS, and passwords and
//! tokens kept out of logs, stored scenarios and reports.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use stampede_tests::cluster::{AgentBuilder, Coordinator, CoordinatorBuilder, KvServerBuilder};
use stampede_tests::{
    Process, RunBuilder, RunOutcome, ScenarioBuilder, certificates, free_port, get_set_calls, run_command,
    run_stampede, stampede_bin, which, write_file,
};

const TOKEN: &str = "tok-5f1c2a9e77d04b1b";

fn coordinator(data: &Path, extra: &[&str]) -> Coordinator {
    CoordinatorBuilder::new(data).args(extra).start()
}

fn kv_server() -> (Process, String) {
    let kv = KvServerBuilder::new("kv-0").start();
    (kv.process, kv.address)
}

#[test]
fn callers_without_the_token_are_refused_and_the_token_lets_them_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = write_file(dir.path(), "token", &format!("{TOKEN}\n"));
    let coordinator = coordinator(&dir.path().join("data"), &["--token-file", &token_file]);
    let url = coordinator.url.clone();

    let (code, _, stderr) = run_stampede(&["runs", "--coordinator", &url], Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("requires a token") && stderr.contains("--token-file"), "{stderr}");

    let mut wrong = Command::new(stampede_bin());
    wrong.args(["runs", "--coordinator", &url]).env("STAMPEDE_TOKEN", "not-the-token");
    let (code, _, stderr) = run_command(wrong, Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not accepted"), "{stderr}");

    let (code, stdout, stderr) =
        run_stampede(&["runs", "--coordinator", &url, "--token-file", &token_file], Duration::from_secs(20));
    assert_eq!(code, 0, "{stdout}{stderr}");

    // An agent without the token stops and says why instead of retrying forever.
    let (code, stdout, stderr) =
        run_stampede(&["agent", "--coordinator", &url, "--id", "intruder"], Duration::from_secs(30));
    assert_ne!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("refused this agent") && stderr.contains("requires a token"), "{stderr}");

    let _agent = AgentBuilder::new("trusted").coordinator(&url).env("STAMPEDE_TOKEN", TOKEN).start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, stdout, stderr) =
            run_stampede(&["agents", "--coordinator", &url, "--token-file", &token_file], Duration::from_secs(20));
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(!stdout.contains("intruder"), "a refused agent is never registered: {stdout}");
        if stdout.contains("trusted") {
            break;
        }
        assert!(Instant::now() < deadline, "the agent with the token did not register: {stdout}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn mutual_tls_runs_a_scenario_and_refuses_callers_without_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    certificates(dir.path());
    let file = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let token_file = write_file(dir.path(), "token", TOKEN);
    let coordinator = CoordinatorBuilder::new(dir.path().join("data")).http().args(&[
        "--token-file",
        &token_file,
        "--tls-cert",
        &file("server.pem"),
        "--tls-key",
        &file("server.key"),
        "--tls-client-ca",
        &file("ca.pem"),
    ]);
    let coordinator = coordinator.start();
    let listen = coordinator.address.clone();
    let url = format!("https://{listen}");
    let http = coordinator.http.clone().expect("an HTTP port");
    let client_tls = ["--tls-ca", &file("ca.pem"), "--tls-cert", &file("client.pem"), "--tls-key", &file("client.key")];
    let (_kv, kv) = kv_server();
    let _agent =
        AgentBuilder::new("tls-agent").coordinator(&url).args(&["--token-file", &token_file]).args(&client_tls).start();

    let scenario = write_file(
        dir.path(),
        "tls.yaml",
        &format!(
            "name: tls\nduration: 2s\nagents: 1\ntarget:\n  kind: kv\n  endpoints: [\"{kv}\"]\nload:\n  connections: 1\n\
             workload:\n  kind: kv\n  keys: 100\n"
        ),
    );
    let mut submit = vec!["submit", &scenario, "--wait", "--quiet", "--coordinator", &url, "--token-file", &token_file];
    submit.extend_from_slice(&client_tls);
    let (code, stdout, stderr) = run_stampede(&submit, Duration::from_secs(90));
    assert_eq!(code, 0, "a run over mutual TLS passes: {stdout}{stderr}");
    assert!(stdout.contains("PASSED"), "{stdout}");

    // Without a client certificate the handshake fails; plain HTTP/2 gets
    // nowhere either.
    let runs = ["runs", "--coordinator", &url, "--token-file", &token_file, "--tls-ca", &file("ca.pem")];
    let (code, stdout, stderr) = run_stampede(&runs, Duration::from_secs(20));
    assert_eq!(code, 2, "no client certificate: {stdout}{stderr}");
    assert!(stderr.contains("--tls-cert"), "the error says what to try: {stderr}");
    let plain = format!("http://{listen}");
    let (code, stdout, stderr) =
        run_stampede(&["runs", "--coordinator", &plain, "--token-file", &token_file], Duration::from_secs(20));
    assert_eq!(code, 2, "plain HTTP/2 to a TLS port: {stdout}{stderr}");
    assert!(stderr.contains("https://"), "the error says what to try: {stderr}");
    // With everything, the listing works and shows the run.
    let mut runs = vec!["runs", "--coordinator", &url, "--token-file", &token_file];
    runs.extend_from_slice(&client_tls);
    let (code, stdout, stderr) = run_stampede(&runs, Duration::from_secs(20));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("tls"), "{stdout}");

    // The HTTP port speaks TLS with the same certificate and also wants a
    // client certificate (curl is a real, independent TLS client).
    let metrics_url = format!("https://{http}/metrics");
    let curl = |args: &[&str]| {
        let mut command = std::process::Command::new("curl");
        command.args(["-sS", "--max-time", "10", "--cacert", &file("ca.pem")]).args(args).arg(&metrics_url);
        stampede_tests::run_command(command, Duration::from_secs(20))
    };
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let (code, body, err) = curl(&["--cert", &file("client.pem"), "--key", &file("client.key"), "-H", &bearer]);
    assert_eq!(code, 0, "{err}");
    assert!(body.contains("stampede_runs{state=\"passed\"} 1"), "{body}");
    let (code, _, _) = curl(&["-H", &bearer]);
    assert_ne!(code, 0, "no client certificate, no metrics");
    let (code, body, _) = curl(&["--cert", &file("client.pem"), "--key", &file("client.key")]);
    assert_eq!(code, 0);
    assert!(body.contains("requires a token"), "no token, no metrics: {body}");
    let mut plain = std::process::Command::new("curl");
    plain.args(["-sS", "--max-time", "5", &format!("http://{http}/metrics")]);
    let (_, body, _) = stampede_tests::run_command(plain, Duration::from_secs(20));
    assert!(!body.contains("stampede_"), "plain HTTP gets nothing: {body}");
}

/// Every file under `dir`, as text.
fn all_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read dir").map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn passwords_and_tokens_never_reach_logs_stored_scenarios_or_reports() {
    let Some(redis_server) = which("redis-server") else {
        panic!("redis-server is not installed; deploy/test.sh installs it (apt-get install redis-server)")
    };
    const PASSWORD: &str = "pw-3c9e41d6b2";
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let redis = Process::start(
        "redis-server",
        &redis_server,
        &["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", PASSWORD],
    );
    redis.wait_for_line("Ready to accept connections", Duration::from_secs(20));
    let endpoint = format!("redis://:{PASSWORD}@127.0.0.1:{port}");

    let data = dir.path().join("data");
    let coordinator = CoordinatorBuilder::new(&data)
        .env("STAMPEDE_TOKEN", TOKEN)
        .env("STAMPEDE_LOG", "debug")
        .log(dir.path().join("coordinator.log"))
        .start();
    let url = coordinator.url.clone();
    let _agents: Vec<Process> = (0..2)
        .map(|i| {
            AgentBuilder::new(&format!("agent-{i}"))
                .coordinator(&url)
                .env("STAMPEDE_TOKEN", TOKEN)
                .env("STAMPEDE_LOG", "debug")
                .log(dir.path().join(format!("agent-{i}.log")))
                .start()
        })
        .collect();

    let text = ScenarioBuilder::new("secret")
        .agents(2)
        .target("redis")
        .endpoints(&[&endpoint])
        .load("connections: 4")
        .load("pipeline: 4")
        .yaml();
    let RunOutcome { code, report, stdout, stderr } = RunBuilder::new(&text)
        .submit_to(&url)
        .env("STAMPEDE_TOKEN", TOKEN)
        .env("STAMPEDE_LOG", "debug")
        .files_in(dir.path(), "secret.yaml")
        .go();
    let scenario = dir.path().join("secret.yaml");
    assert_eq!(code, 0, "the run with a password passes: {stdout}{stderr}");

    // The report equals what Redis itself counted.
    let node_ops: u64 =
        report["nodes"].as_object().expect("nodes").values().map(|n| n["ops"].as_u64().unwrap_or(0)).sum();
    let served = get_set_calls(&endpoint);
    assert_eq!(report["totals"]["warmup_ops"], 0);
    assert_eq!(node_ops, served, "the report's operations equal Redis's INFO commandstats");
    assert!(served > 0);

    // Give the processes a moment to write their last log lines.
    std::thread::sleep(Duration::from_millis(500));
    let mut files = Vec::new();
    all_files(dir.path(), &mut files);
    files.push(("submit output".into(), format!("{stdout}{stderr}")));
    let scenario_name = Path::new(&scenario).display().to_string();
    let mut checked = 0;
    for (name, text) in &files {
        if name == &scenario_name || name.ends_with("/token") {
            continue;
        }
        assert!(!text.contains(PASSWORD), "the password is in {name}");
        assert!(!text.contains(TOKEN), "the token is in {name}");
        checked += 1;
    }
    let stored: Vec<&String> = files.iter().filter(|(n, _)| n.ends_with("scenario.yaml")).map(|(_, t)| t).collect();
    assert_eq!(stored.len(), 1, "one stored scenario: {:?}", files.iter().map(|f| &f.0).collect::<Vec<_>>());
    assert!(stored[0].contains(&format!("redis://:***@127.0.0.1:{port}")), "{}", stored[0]);
    assert!(
        !files.iter().any(|(n, _)| n.ends_with("scenario.private.yaml")),
        "the private copy is gone once the run has ended"
    );
    let coordinator_log = &files.iter().find(|(n, _)| n.ends_with("coordinator.log")).expect("log").1;
    assert!(coordinator_log.contains("run ended"), "the log was written: {coordinator_log}");
    assert!(checked >= 6, "{checked} files checked");
}
