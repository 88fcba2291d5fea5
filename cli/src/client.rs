//! Client subcommands: submit (and watch), runs, report, cancel, agents,
//! validate.

use std::path::Path;

use anyhow::{Context, bail};
use stampede_common::Scenario;
use stampede_common::report::Report;
use stampede_common::scenario::ScenarioError;
use stampede_proto::security::{AuthChannel, ClientSecurity};
use stampede_proto::v1 as pb;
use stampede_proto::v1::control_service_client::ControlServiceClient;

use crate::link::CoordinatorLink;

pub type Client = ControlServiceClient<AuthChannel>;

pub async fn connect(link: &CoordinatorLink) -> anyhow::Result<Client> {
    connect_with(&link.coordinator_url().await?, &link.security()?).await
}

pub async fn connect_with(url: &str, security: &ClientSecurity) -> anyhow::Result<Client> {
    let endpoint = security
        .endpoint(&stampede_common::coordinator_url(url))
        .map_err(|e| anyhow::anyhow!("coordinator `{url}`: {e}"))?;
    let channel = endpoint.connect().await.with_context(|| {
        format!("cannot reach the coordinator at {url}; is `stampede coordinator` running there (see --coordinator)?")
    })?;
    Ok(ControlServiceClient::new(security.authorize(channel)).max_decoding_message_size(64 * 1024 * 1024))
}

/// A failed call in words: the status message with the causes beneath it,
/// and what to try when the connection itself failed (TLS mismatch,
/// missing client certificate).
pub fn explain(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    let broken_link = matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled
    ) && (text.contains("transport error") || text.contains("h2 protocol error"));
    if broken_link {
        text.push_str(
            " (the connection to the coordinator failed: a coordinator serving TLS takes https:// with --tls-ca, \
             and --tls-cert/--tls-key if it asks for client certificates; one without TLS takes http://)",
        );
    }
    text
}

/// A scenario file's text with its `${VARIABLES}` replaced from the
/// environment (see `stampede_common::scenario::variables`).
pub fn read_scenario(path: &Path) -> anyhow::Result<String> {
    match read_scenario_text(path)? {
        Ok(text) => Ok(text),
        Err(error) => bail!("{}: {error}", path.display()),
    }
}

fn read_scenario_text(path: &Path) -> anyhow::Result<Result<String, ScenarioError>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read scenario {}", path.display()))?;
    Ok(stampede_common::scenario::variables::expand(&text, |name| std::env::var(name).ok()))
}

pub fn validate(path: &Path) -> anyhow::Result<u8> {
    match read_scenario_text(path)?.and_then(|text| Scenario::parse(&text)) {
        Ok(s) => {
            println!("{}: valid scenario `{}`", path.display(), s.name);
            for (label, value) in describe(&s) {
                println!("  {label:<11} {value}");
            }
            Ok(0)
        }
        Err(error) => {
            eprintln!("{}: invalid scenario", path.display());
            for issue in &error.issues {
                eprintln!("  {}:{issue}", path.display());
            }
            Ok(2)
        }
    }
}

/// What a valid scenario means, line by line, for `stampede validate`.
fn describe(s: &Scenario) -> Vec<(&'static str, String)> {
    use stampede_common::scenario::{Arrival, LoadModel, TargetKind, redact};
    let target = match (s.target.kind, s.target.endpoints.as_slice()) {
        (TargetKind::Kv, []) => "kv: the built-in KV server, started by `stampede run`".to_string(),
        (kind, endpoints) => {
            let shown: Vec<String> = endpoints.iter().map(|e| redact(e)).collect();
            format!("{} at {}", kind.as_str(), shown.join(", "))
        }
    };
    let load = match s.load.model {
        LoadModel::Closed => format!(
            "closed model: {} connections x pipeline {}, each sends again when answered",
            s.load.connections, s.load.pipeline
        ),
        LoadModel::Open { rate, arrival } => format!(
            "open model: {rate} ops/s with {} arrivals over {} connections x pipeline {}",
            match arrival {
                Arrival::Uniform => "uniform",
                Arrival::Poisson => "poisson",
            },
            s.load.connections,
            s.load.pipeline
        ),
    };
    let thresholds = match s.thresholds.as_slice() {
        [] => "none (the run passes unless it fails to run)".to_string(),
        list => list.iter().map(|t| t.expr.as_str()).collect::<Vec<_>>().join("; "),
    };
    vec![
        ("target", target),
        ("workload", format!("{} (operations: {})", s.workload.kind(), s.workload.operations().join(", "))),
        ("load", load),
        ("time", time_line(s)),
        ("thresholds", thresholds),
    ]
}

/// How long the run lasts, and for a count-limited one how many
/// operations it makes.
fn time_line(s: &Scenario) -> String {
    let agents = s.agents;
    match (s.load.operations, s.duration_given) {
        (None, _) => format!(
            "{:?} in all: {:?} warm-up (reported apart), then {:?} measured, on {agents} agent(s)",
            s.duration,
            s.warmup,
            s.duration.saturating_sub(s.warmup)
        ),
        (Some(n), given) => format!(
            "until {n} operations{} are done (warm-up's included) or {:?} have passed{}; {:?} warm-up (reported \
             apart), on {agents} agent(s)",
            match &s.load.operation_counts {
                Some(counts) => format!(
                    " ({})",
                    s.workload
                        .operations()
                        .iter()
                        .zip(counts)
                        .filter(|(_, n)| **n > 0)
                        .map(|(op, n)| format!("{op} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => String::new(),
            },
            s.duration,
            if given { "" } else { " (the limit without a duration)" },
            s.warmup
        ),
    }
}

/// The files a finished run's report goes to, besides the terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Files<'a> {
    /// The JSON report.
    pub json: Option<&'a Path>,
    /// The HdrHistogram interval log.
    pub hlog: Option<&'a Path>,
    /// The HTML report.
    pub html: Option<&'a Path>,
}

pub async fn submit(
    link: &CoordinatorLink,
    path: &Path,
    agents: Option<u32>,
    endpoints: &[String],
    wait: bool,
    files: Files<'_>,
    display: crate::watching::Display,
) -> anyhow::Result<u8> {
    let text = read_scenario(path)?;
    // Validate locally first: the same code, and errors name the file.
    let (_, text) =
        Scenario::with_endpoints(&text, endpoints).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    let mut client = connect(link).await?;
    let run_id = submit_when_ready(&mut client, text, agents.unwrap_or(0))
        .await
        .map_err(|s| anyhow::anyhow!("the coordinator refused the run: {}", explain(&s)))?;
    if !wait {
        println!("{run_id}");
        return Ok(0);
    }
    eprintln!("submitted run {run_id}");
    crate::watching::watch(&mut client, &run_id, files, display).await
}

/// How long a submission waits for a coordinator that has just started
/// and is still opening its store.
const STORE_OPENING_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Submits a run; a coordinator still opening its store (it answers
/// Unavailable and says so) is asked again for up to [`STORE_OPENING_WAIT`].
pub async fn submit_when_ready(
    client: &mut Client,
    scenario_yaml: String,
    agents: u32,
) -> Result<String, tonic::Status> {
    let deadline = tokio::time::Instant::now() + STORE_OPENING_WAIT;
    loop {
        let request = pb::SubmitRunRequest { scenario_yaml: scenario_yaml.clone(), agents };
        match client.submit_run(request).await {
            Ok(response) => return Ok(response.into_inner().run_id),
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && status.message().contains("still opening its store")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(status) => return Err(status),
        }
    }
}

/// Writes the HTML report of `report` to `path`.
pub fn save_html(report: &Report, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, stampede_coordinator::html::page(report))
        .with_context(|| format!("cannot write the HTML report to {}", path.display()))?;
    eprintln!("HTML report written to {}", path.display());
    Ok(())
}

/// Writes the run's HdrHistogram interval log, as the coordinator merges
/// it from the stored interval reports, to `path`.
pub async fn save_interval_log(client: &mut Client, run_id: &str, path: &Path) -> anyhow::Result<()> {
    let mut stream = client
        .get_interval_log(pb::GetIntervalLogRequest { run_id: run_id.to_string() })
        .await
        .map_err(|s| anyhow::anyhow!("cannot get the interval log of run {run_id}: {}", explain(&s)))?
        .into_inner();
    let mut log = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(|s| {
        anyhow::anyhow!("lost the coordinator while reading the interval log of {run_id}: {}", explain(&s))
    })? {
        log.extend_from_slice(&chunk.data);
    }
    std::fs::write(path, &log).with_context(|| format!("cannot write the interval log to {}", path.display()))?;
    eprintln!("HdrHistogram interval log written to {}", path.display());
    Ok(())
}

pub async fn runs(link: &CoordinatorLink, scenario: Option<&str>) -> anyhow::Result<()> {
    let mut client = connect(link).await?;
    let request = pb::ListRunsRequest { scenario: scenario.unwrap_or_default().to_string() };
    let runs = client.list_runs(request).await.map_err(|s| anyhow::anyhow!("{}", explain(&s)))?.into_inner();
    if let Some(name) = scenario {
        return history(name, &runs.runs);
    }
    if runs.runs.is_empty() {
        println!("no runs yet; `stampede submit SCENARIO` starts one");
        return Ok(());
    }
    println!("{:<28} {:<10} {:<8} name", "run", "state", "target");
    for run in runs.runs {
        println!("{:<28} {:<10} {:<8} {}", run.run_id, run.state, run.target_kind, run.name);
    }
    Ok(())
}

/// Bytes as `812B`, `14.2KB`, `3.1MB`, `2.4GB`.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes}B"),
        1_000..1_000_000 => format!("{:.1}KB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}MB", b / 1e6),
        _ => format!("{:.1}GB", b / 1e9),
    }
}

/// The runs of one scenario, oldest first, with their key figures.
fn history(name: &str, runs: &[pb::RunSummary]) -> anyhow::Result<()> {
    if runs.is_empty() {
        bail!("no runs of a scenario named `{name}`; `stampede runs` lists every run with its scenario's name");
    }
    println!(
        "{:<28} {:<9} {:>9} {:>12} {:>10} {:>8} {:>10}",
        "run", "state", "measured", "ops/s", "p99", "errors", "stored"
    );
    for run in runs {
        match &run.figures {
            Some(f) => println!(
                "{:<28} {:<9} {:>8.0}s {:>12.0} {:>10} {:>7.2}% {:>10}",
                run.run_id,
                run.state,
                f.duration_s,
                f.throughput,
                f.p99_us.map_or_else(|| "-".to_string(), stampede_common::units::format_micros),
                f.error_rate * 100.0,
                f.stored_bytes.map_or_else(|| "-".to_string(), size)
            ),
            None => println!(
                "{:<28} {:<9} {:>9} {:>12} {:>10} {:>8} {:>10}",
                run.run_id, run.state, "-", "-", "-", "-", "-"
            ),
        }
    }
    Ok(())
}

/// What `stampede report` prints (or writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Text,
    Json,
    Percentiles,
    /// The HTML report, into this file.
    Html(std::path::PathBuf),
    /// The figures of a span, as text or JSON.
    Window {
        span: stampede_coordinator::window::Span,
        json: bool,
    },
}

pub async fn report(link: &CoordinatorLink, run_id: &str, shown: Shown, hlog: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = hlog {
        if run_id.ends_with(".json") || Path::new(run_id).is_file() {
            bail!(
                "--hlog needs the run's id and its coordinator: the interval log is made from the stored interval reports"
            );
        }
        let mut client = connect(link).await?;
        return save_interval_log(&mut client, run_id, path).await;
    }
    let loaded = load_report(link, run_id).await?;
    match shown {
        Shown::Json => println!("{}", loaded.json),
        Shown::Text => crate::output::print_report(&loaded.text),
        Shown::Percentiles => {
            print!("{}", stampede_coordinator::spectrum::text(&loaded.report).map_err(|e| anyhow::anyhow!(e))?);
        }
        Shown::Html(path) => save_html(&loaded.report, &path)?,
        Shown::Window { span, json } => {
            let figures =
                stampede_coordinator::window::figures(&loaded.report, span).map_err(|e| anyhow::anyhow!(e))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                let open = loaded.report.scenario.rate.is_some();
                print!("{}", stampede_coordinator::window::text(&figures, open));
            }
        }
    }
    Ok(())
}

/// A report as `stampede report` and `compare` read it.
struct Loaded {
    /// The JSON as stored or written.
    json: String,
    /// The text report: the coordinator's, or rendered from a file.
    text: String,
    report: Report,
}

/// A report from a file, or the stored report of a run id.
async fn load_report(link: &CoordinatorLink, which: &str) -> anyhow::Result<Loaded> {
    let (json, text) = if Path::new(which).is_file() {
        (std::fs::read_to_string(which).with_context(|| format!("cannot read the report file {which}"))?, None)
    } else if which.ends_with(".json") {
        bail!("there is no report file {which}; give a JSON report (`stampede run --json FILE`) or a run id");
    } else {
        let (json, text) = fetch_report(link, which).await?;
        (json, Some(text))
    };
    let report: Report = serde_json::from_str(&json)
        .with_context(|| format!("{which} is not a Stampede JSON report (stampede run --json FILE writes one)"))?;
    let text = text.unwrap_or_else(|| stampede_coordinator::render::text(&report));
    Ok(Loaded { json, text, report })
}

/// The baseline that `compare last-passed` means.
const LAST_PASSED: &str = "last-passed";

/// The newest passed run of the candidate's scenario on the coordinator,
/// other than the candidate itself (run ids sort by their start).
async fn last_passed(link: &CoordinatorLink, candidate: &Report) -> anyhow::Result<String> {
    let name = &candidate.scenario.name;
    let mut client = connect(link).await?;
    let runs = client
        .list_runs(pb::ListRunsRequest { scenario: name.clone() })
        .await
        .map_err(|s| anyhow::anyhow!("{}", explain(&s)))?
        .into_inner();
    runs.runs
        .into_iter()
        .filter(|run| run.state == "passed" && run.run_id != candidate.run_id)
        .map(|run| run.run_id)
        .max()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no passed run of scenario `{name}` other than {} on this coordinator: run it once to make a \
                 baseline, or give a run id or a JSON report as the baseline",
                candidate.run_id
            )
        })
}

/// `stampede compare`: 0, or 1 when a gate trips.
pub async fn compare(
    link: &CoordinatorLink,
    base: &str,
    candidate: &str,
    json: bool,
    fail_on: &[String],
    html: Option<&Path>,
) -> anyhow::Result<u8> {
    let gates: Vec<stampede_coordinator::compare::Gate> = fail_on
        .iter()
        .map(|g| stampede_coordinator::compare::Gate::parse(g).map_err(|e| anyhow::anyhow!("--fail-on {e}")))
        .collect::<anyhow::Result<_>>()?;
    let candidate_report = load_report(link, candidate).await?.report;
    let base_report = if base == LAST_PASSED {
        let run_id = last_passed(link, &candidate_report).await?;
        eprintln!("baseline: {run_id}, the newest passed run of `{}`", candidate_report.scenario.name);
        load_report(link, &run_id).await?.report
    } else {
        load_report(link, base).await?.report
    };
    let comparison = stampede_coordinator::compare::compare(&base_report, &candidate_report, 0x5eed)
        .map_err(|e| anyhow::anyhow!(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        print!("{}", stampede_coordinator::compare::text(&comparison));
    }
    if let Some(path) = html {
        let page = stampede_coordinator::html::comparison_page(&base_report, &candidate_report, &comparison);
        std::fs::write(path, page)
            .with_context(|| format!("cannot write the comparison page to {}", path.display()))?;
        eprintln!("HTML comparison written to {}", path.display());
    }
    let mut tripped = false;
    for gate in &gates {
        for row in gate.tripped(&comparison) {
            tripped = true;
            eprintln!(
                "gate tripped: {} ({} {} changed {:+.1}%, {})",
                gate.expr,
                row.operation,
                row.figure.as_str(),
                row.change.unwrap_or(0.0) * 100.0,
                row.verdict.as_str()
            );
        }
    }
    Ok(u8::from(tripped))
}

/// A stored run's JSON and text report, from the coordinator.
async fn fetch_report(link: &CoordinatorLink, run_id: &str) -> anyhow::Result<(String, String)> {
    let mut client = connect(link).await?;
    let response = client
        .get_run(pb::GetRunRequest { run_id: run_id.to_string() })
        .await
        .map_err(|s| anyhow::anyhow!("{}", explain(&s)))?
        .into_inner();
    if response.report_json.is_empty() {
        let state = response.run.map(|r| r.state).unwrap_or_default();
        bail!(
            "run {run_id} has no report yet (it is {state}); `stampede submit --wait` or a later `stampede report` shows it"
        );
    }
    Ok((response.report_json, response.report_text))
}

pub async fn cancel(link: &CoordinatorLink, run_id: &str) -> anyhow::Result<()> {
    let mut client = connect(link).await?;
    let response = client
        .cancel_run(pb::CancelRunRequest { run_id: run_id.to_string() })
        .await
        .map_err(|s| anyhow::anyhow!("{}", explain(&s)))?
        .into_inner();
    println!("run {run_id} is {}", response.state);
    Ok(())
}

pub async fn agents(link: &CoordinatorLink) -> anyhow::Result<()> {
    let mut client = connect(link).await?;
    let agents = client
        .list_agents(pb::ListAgentsRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("{}", explain(&s)))?
        .into_inner();
    if agents.agents.is_empty() {
        println!("no agents; start one with `stampede agent --coordinator URL`");
        return Ok(());
    }
    println!(
        "{:<24} {:<16} {:<10} {:>12} {:>10} {:>6} {:>9} run",
        "agent", "host", "state", "clock offset", "rtt", "cpu", "memory"
    );
    for a in agents.agents {
        let state = if a.connected { "connected" } else { "lost" };
        println!(
            "{:<24} {:<16} {:<10} {:>10}us {:>8}us {:>5.0}% {:>6}MiB {}",
            a.agent_id,
            a.host,
            state,
            a.clock_offset_us,
            a.clock_rtt_us,
            a.cpu_percent,
            a.rss_bytes >> 20,
            a.busy_with
        );
    }
    Ok(())
}
