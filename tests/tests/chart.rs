//! The Helm chart without a cluster: `deploy/check_chart.py` lints and
//! renders it with the embedded Helm SDK and validates every option set with
//! `kubernetes-validate --strict`; and the submission Job's own command,
//! taken from the rendered chart, runs here against a real coordinator and
//! agent: its exit code is the verdict and its log carries the JSON report.

use std::process::Command;
use std::time::{Duration, Instant};

use stampede_tests::cluster::{AgentBuilder, CoordinatorBuilder};
use stampede_tests::{free_port, get_set_calls, kv_servers, repo_root, run_command, stampede_bin, write_file};

fn check_chart(args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new("python3");
    command.arg(repo_root().join("deploy/check_chart.py")).args(args).current_dir(repo_root());
    run_command(command, Duration::from_secs(300))
}

#[test]
fn the_chart_lints_renders_and_validates_for_every_option_set() {
    let bin = stampede_bin();
    let (code, stdout, stderr) = check_chart(&["--stampede", &bin.to_string_lossy()]);
    assert_eq!(code, 0, "deploy/check_chart.py failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("helm lint --strict: 1 chart, 0 problems"), "{stdout}");
    for set in [
        "default",
        "daemonset-values.yaml",
        "etcd-ha-values.yaml",
        "job-inline-values.yaml",
        "job-baseline-values.yaml",
        "job-suite-values.yaml",
        "results-postgres-values.yaml",
    ] {
        assert!(stdout.contains(&format!("option set {set}:")), "{set} not checked:\n{stdout}");
    }
    assert_eq!(stdout.matches("manifests valid").count(), 11, "nine option sets and two plain files:\n{stdout}");
    assert_eq!(stdout.matches("refused {").count(), 15, "every bad value set is refused:\n{stdout}");
    assert!(stdout.contains("stampede suite: the Job's suite is valid"), "{stdout}");
    assert!(stdout.contains("chart checks passed"), "{stdout}");
}

/// The Job's container command as the chart renders it.
struct JobCommand {
    command: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn job_command(values: &str) -> JobCommand {
    let (code, stdout, stderr) = check_chart(&["--job-script", values]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().expect("array").iter().map(|s| s.as_str().expect("str").to_string()).collect()
    };
    JobCommand {
        command: strings(&json["command"]),
        args: strings(&json["args"]),
        env: json["env"]
            .as_object()
            .expect("env")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
    }
}

/// Runs the Job's command with the pod's paths replaced by local ones.
fn run_job(job: &JobCommand, overrides: &[(&str, String)]) -> (i32, String, String, Duration) {
    let bin_dir = stampede_bin().parent().expect("bin dir").to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut command = Command::new(&job.command[0]);
    command.args(&job.command[1..]).args(&job.args).env("PATH", path);
    for (key, value) in &job.env {
        command.env(key, value);
    }
    for (key, value) in overrides {
        command.env(key, value);
    }
    let started = Instant::now();
    let (code, stdout, stderr) = run_command(command, Duration::from_secs(120));
    (code, stdout, stderr, started.elapsed())
}

fn json_report(stdout: &str) -> serde_json::Value {
    let (_, rest) =
        stdout.split_once("--- JSON report").unwrap_or_else(|| panic!("no JSON report in the log:\n{stdout}"));
    let json = rest.split_once('\n').map(|(_, j)| j).unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("the log's JSON report does not parse ({e}):\n{json}"))
}

#[test]
fn the_submission_jobs_command_passes_on_the_runs_verdict_and_report() {
    let data = tempfile::tempdir().expect("tempdir");
    let servers = kv_servers(1);
    let kv = servers[0].1.clone();
    let values = write_file(
        data.path(),
        "values.yaml",
        &format!(
            "job:\n  enabled: true\n  agents: 1\n  endpoints: [\"{kv}\"]\n  waitForCoordinatorSeconds: 4\n  \
             scenario: |\n    name: from-values\n    duration: 1s\n    target:\n      kind: kv\n    \
             load:\n      connections: 1\n    workload:\n      kind: kv\n"
        ),
    );
    let job = job_command(&values);
    assert!(job.args.contains(&"--agents=1".to_string()) && job.args.contains(&format!("--endpoint={kv}")));

    let token = write_file(data.path(), "token", "job-test-token");
    let reports = data.path().join("reports");
    std::fs::create_dir_all(&reports).expect("reports dir");
    let passing = write_file(
        data.path(),
        "passing.yaml",
        "name: job-passes\nduration: 2s\nagents: 1\ntarget:\n  kind: kv\n  endpoints: [\"unused:1\"]\n\
         load:\n  connections: 2\nworkload:\n  kind: kv\n  keys: 100\nthresholds:\n  - error_rate < 1%\n",
    );
    let failing = write_file(
        data.path(),
        "failing.yaml",
        "name: job-fails\nduration: 2s\nagents: 1\ntarget:\n  kind: kv\n  endpoints: [\"unused:1\"]\n\
         load:\n  connections: 2\nworkload:\n  kind: kv\n  keys: 100\nthresholds:\n  - get.p50 < 1us\n",
    );
    let grpc = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{grpc}");
    let local = |scenario: &str| {
        vec![
            ("STAMPEDE_COORDINATOR", url.clone()),
            ("STAMPEDE_TOKEN_FILE", token.clone()),
            ("SCENARIO", scenario.to_string()),
            ("REPORT_DIR", reports.to_string_lossy().into_owned()),
        ]
    };

    // No coordinator yet: the Job gives up after waitForCoordinatorSeconds with code 2.
    let (code, stdout, stderr, took) = run_job(&job, &local(&passing));
    assert_eq!(code, 2, "no coordinator: error\n{stdout}\n{stderr}");
    assert!(stderr.contains("the coordinator did not answer within 4s"), "{stderr}");
    assert!(took < Duration::from_secs(30), "gave up after {took:?}");

    let data_dir = data.path().join("data").to_string_lossy().into_owned();
    // The Job was given this address before the coordinator existed.
    let _coordinator = CoordinatorBuilder::new(&data_dir).listen(&grpc).args(&["--token-file", &token]).start();
    let _agent = AgentBuilder::new("job-agent").coordinator(&url).args(&["--token-file", &token]).start();

    let (code, stdout, stderr, _) = run_job(&job, &local(&passing));
    assert_eq!(code, 0, "a passing run: exit 0\n{stdout}\n{stderr}");
    let report = json_report(&stdout);
    assert_eq!(report["status"], "passed", "{report}");
    assert_eq!(report["scenario"]["name"], "job-passes", "{report}");
    assert!(report["totals"]["ops"].as_u64().unwrap_or(0) > 0, "{report}");

    let (code, stdout, stderr, _) = run_job(&job, &local(&failing));
    assert_eq!(code, 1, "a failed threshold: exit 1\n{stdout}\n{stderr}");
    assert_eq!(json_report(&stdout)["status"], "failed");

    let kept = std::fs::read_dir(&reports).expect("reports").count();
    assert_eq!(kept, 2, "both runs' JSON reports stay in REPORT_DIR (the volume)");
}

/// Stops and continues `pid` (30 ms of every 100 ms) while `f` runs.
fn slowed<T>(pid: u32, f: impl FnOnce() -> T) -> T {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let bursts = std::thread::spawn(move || {
        let signal = |name: &str| {
            let _ = Command::new("kill").args([name, &pid.to_string()]).status();
        };
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            signal("-STOP");
            std::thread::sleep(Duration::from_millis(30));
            signal("-CONT");
            std::thread::sleep(Duration::from_millis(70));
        }
        signal("-CONT");
    });
    let result = f();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    bursts.join().expect("bursts");
    result
}

#[test]
fn the_submission_job_fails_on_a_regression_against_its_baseline() {
    let data = tempfile::tempdir().expect("tempdir");
    let servers = kv_servers(1);
    let (kv_pid, kv) = (servers[0].0.pid(), servers[0].1.clone());
    let values = write_file(
        data.path(),
        "values.yaml",
        "job:\n  enabled: true\n  scenario: \"name: x\"\n  baseline:\n    configMap:\n      name: b\n      key: base.json\n    \
         failOn: [\"p90 > +10%\"]\n",
    );
    let job = job_command(&values);
    assert_eq!(
        job.env.iter().find(|(k, _)| k == "BASELINE").map(|(_, v)| v.as_str()),
        Some("/etc/stampede/baseline/base.json")
    );
    let scenario = write_file(
        data.path(),
        "scenario.yaml",
        &format!(
            "name: nightly\nduration: 11s\nwarmup: 1s\ntarget:\n  kind: kv\n  endpoints: [\"{kv}\"]\n\
             load:\n  model: open\n  rate: 1000/s\n  connections: 8\nworkload:\n  kind: kv\n  keys: 100\n"
        ),
    );
    let grpc = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{grpc}");
    let token = write_file(data.path(), "token", "baseline-test-token");
    let _coordinator =
        CoordinatorBuilder::new(data.path().join("data")).listen(&grpc).args(&["--token-file", &token]).start();
    let _agent = AgentBuilder::new("job-agent").coordinator(&url).args(&["--token-file", &token]).start();
    let run = |name: &str, baseline: Option<&std::path::Path>| {
        let reports = data.path().join(name);
        std::fs::create_dir_all(&reports).expect("reports dir");
        let mut env = vec![
            ("STAMPEDE_COORDINATOR", url.clone()),
            ("STAMPEDE_TOKEN_FILE", token.clone()),
            ("SCENARIO", scenario.clone()),
            ("REPORT_DIR", reports.to_string_lossy().into_owned()),
        ];
        env.push(("BASELINE", baseline.map(|b| b.to_string_lossy().into_owned()).unwrap_or_default()));
        let (code, stdout, stderr, _) = run_job(&job, &env);
        let report = std::fs::read_dir(&reports).expect("reports").next().expect("a report").expect("entry").path();
        (code, stdout, stderr, report)
    };
    // A slowed run first, then one at full speed compared with it: better,
    // so the gate holds. The gate is on p90, which the server's pauses (30
    // of every 100 ms) move in every window; a p99 gate also trips on a
    // baseline whose own p99 a busy machine spoiled in a few windows.
    let (code, stdout, stderr, slow) = slowed(kv_pid, || run("slow", None));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stdout.contains("compared with the baseline"), "no baseline given: {stdout}");
    let (code, stdout, stderr, fast) = run("fast", Some(&slow));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("no regression against the baseline"), "{stdout}");
    // A slowed run against the fast one: p99 worse, the Job fails.
    let (code, stdout, stderr, _) = slowed(kv_pid, || run("regressed", Some(&fast)));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("regression against the baseline") && stderr.contains("gate tripped: p90 > +10%"),
        "{stderr}"
    );
    assert!(stdout.contains("worse"), "{stdout}");
}

/// The Job in `mode: suite` and `mode: sweep`, its command taken from the
/// rendered chart, against a real coordinator (with a token) and agent: the
/// suite's and the sweep's verdicts are the Job's exit code, their JSON is
/// in the log, their results stay in REPORT_DIR, and the KV server counted
/// every operation their reports count.
#[test]
fn the_job_runs_a_suite_or_a_sweep_on_the_releases_coordinator() {
    let data = tempfile::tempdir().expect("tempdir");
    let servers = kv_servers(1);
    let kv = servers[0].1.clone();
    let token = write_file(data.path(), "token", "job-suite-token");
    let grpc = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{grpc}");
    let data_dir = data.path().join("data").to_string_lossy().into_owned();
    let _coordinator = CoordinatorBuilder::new(&data_dir).listen(&grpc).args(&["--token-file", &token]).start();
    let _agent = AgentBuilder::new("job-agent").coordinator(&url).args(&["--token-file", &token]).start();
    let reports = data.path().join("reports");
    std::fs::create_dir_all(&reports).expect("reports dir");
    let local = |scenario: &str| {
        vec![
            ("STAMPEDE_COORDINATOR", url.clone()),
            ("STAMPEDE_TOKEN_FILE", token.clone()),
            ("SCENARIO", scenario.to_string()),
            ("REPORT_DIR", reports.to_string_lossy().into_owned()),
            ("KV_ENDPOINT", kv.clone()),
        ]
    };
    let entry = |name: &str, thresholds: &str| {
        format!(
            "  - name: {name}\n    tags: [smoke]\n    scenario:\n      name: {name}\n      duration: 20s\n      \
             target: {{kind: kv, endpoints: [\"${{KV_ENDPOINT}}\"]}}\n      workload: {{kind: kv, keys: 100}}\n      \
             thresholds: [\"{thresholds}\"]\n"
        )
    };
    // A suite whose second entry fails its thresholds: the Job exits 1, and
    // with --quick each entry runs 2 s instead of 20 s.
    let suite = format!(
        "name: job-suite\nentries:\n{}{}  - name: not-smoke\n    tags: [slow]\n    scenario: {{name: x, duration: 1s, \
         target: {{kind: kv, endpoints: [\"127.0.0.1:1\"]}}, workload: {{kind: kv}}}}\n",
        entry("passes", "error_rate < 1%"),
        entry("fails", "get.p50 < 1us")
    );
    let values = write_file(
        data.path(),
        "suite-values.yaml",
        "job:\n  enabled: true\n  mode: suite\n  agents: 1\n  suite:\n    quick: true\n    only: [smoke]\n  \
         scenario: \"name: x\"\n",
    );
    let job = job_command(&values);
    let file = write_file(data.path(), "suite.yaml", &suite);
    let before = get_set_calls(&kv);
    let (code, stdout, stderr, _) = run_job(&job, &local(&file));
    assert_eq!(code, 1, "the worst verdict is a failed threshold\n{stdout}\n{stderr}");
    let summary = json_report(&stdout);
    let names: Vec<&str> =
        summary["entries"].as_array().expect("entries").iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["passes", "fails"], "only the smoke entries: {summary}");
    let results = reports.join(
        std::fs::read_dir(&reports).expect("reports").next().expect("a suite folder").expect("entry").file_name(),
    );
    let mut ops = 0;
    for name in names {
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(results.join(name).join("report.json")).expect("report"))
                .expect("json");
        assert!(report["duration_s"].as_f64().is_some_and(|d| d < 5.0), "--quick: {report}");
        ops += report["totals"]["ops"].as_u64().unwrap_or(0) + report["totals"]["warmup_ops"].as_u64().unwrap_or(0);
    }
    assert!(results.join("summary.html").is_file() && results.join("summary.txt").is_file());
    assert_eq!(get_set_calls(&kv) - before, ops, "the KV server's own count");

    // A sweep: a knee found, exit 0; the sweep's JSON in the log, its page
    // and steps beside it.
    let values = write_file(
        data.path(),
        "sweep-values.yaml",
        &format!(
            "job:\n  enabled: true\n  mode: sweep\n  agents: 1\n  endpoints: [\"{kv}\"]\n  scenario: \"name: x\"\n"
        ),
    );
    let job = job_command(&values);
    assert!(job.args.contains(&format!("--endpoint={kv}")), "{:?}", job.args);
    let sweep = write_file(
        data.path(),
        "sweep.yaml",
        "name: job-sweep\nduration: 1s\ntarget:\n  kind: kv\n  endpoints: [\"replaced:1\"]\nworkload:\n  kind: kv\n  \
         keys: 100\nsweep:\n  over: load.connections\n  steps: [1, 2]\n  slo: [\"error_rate < 1%\"]\n",
    );
    let before = get_set_calls(&kv);
    let (code, stdout, stderr, _) = run_job(&job, &local(&sweep));
    assert_eq!(code, 0, "a knee: exit 0\n{stdout}\n{stderr}");
    let report = json_report(&stdout);
    assert_eq!(report["knee"]["level"], 2.0, "{report}");
    let steps: u64 = report["steps"].as_array().expect("steps").iter().map(|s| s["ops"].as_u64().unwrap_or(0)).sum();
    assert_eq!(get_set_calls(&kv) - before, steps, "the KV server's own count");
    let pages = std::fs::read_dir(&reports).expect("reports").filter_map(Result::ok);
    assert!(pages.into_iter().any(|e| e.file_name().to_string_lossy().ends_with(".html")), "the sweep's page");
}
