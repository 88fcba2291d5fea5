//! `stampede sweep FILE`: the scenario's `sweep:` section run step by step
//! on one in-process coordinator and the same agents: each step is the
//! scenario at one level (its thresholds replaced by the sweep's SLO), the
//! next level comes from `stampede_common::sweep` (a list, or a search to
//! the knee), and the result is a table, the knee, a Universal Scalability
//! Law fit for closed-model concurrency sweeps, and a JSON file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_yaml::Value;
use stampede_common::Scenario;
use stampede_common::histogram;
use stampede_common::scenario::LoadModel;
use stampede_common::sweep::{Dimension, Levels, Sweep, UslFit, littles_law};

pub struct SweepOptions {
    pub agents: Option<u32>,
    pub json: Option<PathBuf>,
    /// The page: latency against throughput, the knee marked.
    pub html: Option<PathBuf>,
    /// A coordinator (and its agents) instead of an in-process one.
    pub remote: Option<crate::link::CoordinatorLink>,
    /// Each step's JSON report goes here (`step-N.json`).
    pub out: Option<PathBuf>,
    pub quiet: bool,
}

/// One step as the sweep reports it.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub step: usize,
    pub level: f64,
    pub run_id: String,
    /// The open model's offered rate.
    pub offered: Option<f64>,
    pub achieved: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    pub mean_us: Option<f64>,
    pub ops: u64,
    pub errors: u64,
    pub passed: bool,
    /// What failed: SLO expressions, or the achieved rate.
    pub failed: Vec<String>,
    /// Requests in flight by Little's law (throughput x mean latency), and
    /// their ratio to the slots (connections x pipeline) the step kept.
    pub little_in_flight: Option<f64>,
    pub little_ratio: Option<f64>,
    pub concurrency: f64,
}

/// The whole sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub schema: &'static str,
    pub scenario: String,
    pub over: &'static str,
    pub slo: Vec<String>,
    pub achieved_at_least: Option<f64>,
    pub steps: Vec<StepResult>,
    /// The highest level that met the SLO, with its figures.
    pub knee: Option<StepResult>,
    pub usl: Option<UslFit>,
}

pub async fn sweep(path: &Path, endpoints: &[String], options: SweepOptions) -> anyhow::Result<u8> {
    let origin = path.display().to_string();
    let text = crate::client::read_scenario(path)?;
    let (scenario, text) = Scenario::with_endpoints(&text, endpoints).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    let Some(sweep) = scenario.sweep.clone() else {
        bail!(
            "{origin} has no `sweep:` section; add one, e.g. `sweep: {{over: load.connections, steps: [1, 4, 16], \
             slo: [\"p99 < 5ms\"]}}` (README, \"Sweeps\"), or run it with `stampede run`"
        );
    };
    let agent_count = agents_needed(&sweep, options.agents.unwrap_or(scenario.agents))
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    if let Some(dir) = &options.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let embed = options.remote.is_none() && crate::local::needs_embedded_kv(&scenario);
    let mut place = crate::local::Place::open(options.remote.as_ref(), embed, agent_count).await?;
    let outcome = run(place.client(), &scenario, &text, agent_count, options.out.as_deref(), options.quiet).await;
    place.close().await;
    let (report, failure) = outcome?;
    print!("{}", render(&report, &sweep));
    if let Some(path) = &options.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("sweep JSON written to {}", path.display());
    }
    if let Some(path) = &options.html {
        std::fs::write(path, page(&report)).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("sweep page written to {}", path.display());
    }
    if let Some(failure) = failure {
        bail!("the sweep stopped at {failure}");
    }
    Ok(report.exit_code())
}

/// The sweep's HTML page.
pub fn page(report: &SweepReport) -> String {
    stampede_coordinator::html::sweep_page(&serde_json::to_value(report).unwrap_or_default())
}

/// The agents a sweep needs: the most a sweep over agents names, else
/// `agents`.
pub fn agents_needed(sweep: &Sweep, agents: u32) -> Result<u32, String> {
    let count = match (sweep.over, &sweep.levels) {
        (Dimension::Agents, Levels::Steps(levels)) => levels.iter().copied().fold(1.0, f64::max) as u32,
        (Dimension::Agents, Levels::Search { max: Some(max), .. }) => *max as u32,
        (Dimension::Agents, Levels::Search { max: None, .. }) => {
            return Err("a search over agents needs `sweep.search.max`: the agents this machine starts".to_string());
        }
        _ => agents,
    };
    if count == 0 { Err("--agents must be at least 1".to_string()) } else { Ok(count) }
}

impl SweepReport {
    /// 0 when a knee was found, 1 when even the first step failed.
    pub fn exit_code(&self) -> u8 {
        if self.knee.is_some() { 0 } else { 1 }
    }
}

/// Runs every step of `scenario`'s sweep on `client`'s coordinator; the
/// sweep so far, and why it stopped early if it did.
pub async fn run(
    client: &mut crate::client::Client,
    scenario: &Scenario,
    text: &str,
    agent_count: u32,
    out: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<(SweepReport, Option<String>)> {
    let Some(sweep) = scenario.sweep.clone() else { bail!("the scenario has no `sweep:` section") };
    let mut base: Value = serde_yaml::from_str(text).context("the scenario is not YAML")?;
    let Value::Mapping(map) = &mut base else { bail!("a scenario is a mapping") };
    map.remove("sweep");
    map.insert("thresholds".into(), Value::Sequence(sweep.slo.iter().map(|t| Value::from(t.expr.clone())).collect()));
    let mut steps: Vec<StepResult> = Vec::new();
    let mut failure = None;
    while let Some(level) = sweep.next(&steps.iter().map(|s| (s.level, s.passed)).collect::<Vec<_>>()) {
        let step = steps.len() + 1;
        match run_step(client, &base, &sweep, PerAgent::of(scenario), level, agent_count, step, out).await {
            Ok(result) => {
                if !quiet {
                    eprintln!("{}", progress_line(&sweep, &result));
                }
                steps.push(result);
            }
            Err(error) => {
                failure =
                    Some(format!("step {step} ({} {}): {error:#}", sweep.over.as_str(), shown(sweep.over, level)));
                break;
            }
        }
    }
    let knee = steps.iter().filter(|s| s.passed).max_by(|a, b| a.level.total_cmp(&b.level)).cloned();
    let closed = matches!(scenario.load.model, LoadModel::Closed);
    let usl = (closed && matches!(sweep.over, Dimension::Connections | Dimension::Pipeline | Dimension::Agents))
        .then(|| UslFit::fit(&steps.iter().map(|s| (s.concurrency, s.achieved)).collect::<Vec<_>>()))
        .flatten();
    let report = SweepReport {
        schema: "stampede.sweep.v1",
        scenario: scenario.name.clone(),
        over: sweep.over.as_str(),
        slo: sweep.slo.iter().map(|t| t.expr.clone()).collect(),
        achieved_at_least: sweep.achieved,
        steps,
        knee,
        usl,
    };
    Ok((report, failure))
}

/// A level as the scenario writes it.
fn shown(over: Dimension, level: f64) -> String {
    if over == Dimension::Rate { format!("{level:.0}/s") } else { format!("{level:.0}") }
}

/// A sweep over agents scales the load with them: the scenario's
/// connections, open-model rate and operation count are one agent's.
#[derive(Debug, Clone, Copy)]
struct PerAgent {
    connections: u32,
    rate: Option<f64>,
    operations: Option<u64>,
}

impl PerAgent {
    fn of(scenario: &Scenario) -> Self {
        Self { connections: scenario.load.connections, rate: scenario.rate(), operations: scenario.load.operations }
    }
}

/// The scenario at `level`.
fn at_level(base: &Value, over: Dimension, per_agent: PerAgent, level: f64, agent_count: u32) -> (String, u32) {
    let mut value = base.clone();
    let mut agents = agent_count;
    if let Value::Mapping(map) = &mut value {
        if over == Dimension::Agents {
            agents = level as u32;
            map.insert("agents".into(), Value::from(agents));
            let load = map.entry("load".into()).or_insert_with(|| Value::Mapping(Default::default()));
            if let Value::Mapping(load) = load {
                let n = u64::from(agents);
                load.insert("connections".into(), Value::from(u64::from(per_agent.connections) * n));
                if let Some(rate) = per_agent.rate {
                    load.insert("rate".into(), Value::from(format!("{}/s", rate * n as f64)));
                }
                if let Some(operations) = per_agent.operations {
                    load.insert("operations".into(), Value::from(operations.saturating_mul(n)));
                }
            }
        } else {
            let load = map.entry("load".into()).or_insert_with(|| Value::Mapping(Default::default()));
            if let Value::Mapping(load) = load {
                let (key, v) = match over {
                    Dimension::Connections => ("connections", Value::from(level as u64)),
                    Dimension::Pipeline => ("pipeline", Value::from(level as u64)),
                    _ => ("rate", Value::from(format!("{level}/s"))),
                };
                load.insert(key.into(), v);
                // Fewer connections than agents cannot be split: use fewer agents.
                if over == Dimension::Connections {
                    agents = agents.min(level as u32).max(1);
                }
            }
            map.insert("agents".into(), Value::from(agents));
        }
    }
    (serde_yaml::to_string(&value).unwrap_or_default(), agents)
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    client: &mut crate::client::Client,
    base: &Value,
    sweep: &Sweep,
    per_agent: PerAgent,
    level: f64,
    agent_count: u32,
    step: usize,
    out: Option<&Path>,
) -> anyhow::Result<StepResult> {
    let (text, agents) = at_level(base, sweep.over, per_agent, level, agent_count);
    let scenario = Scenario::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let run_id = crate::client::submit_when_ready(client, text, agents)
        .await
        .map_err(|s| anyhow::anyhow!("{}", crate::client::explain(&s)))?;
    let (report, json) = crate::watching::wait_for_report(client, &run_id).await?;
    if let Some(dir) = out {
        let path = dir.join(format!("step-{step}.json"));
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if report.status.exit_code() == 2 {
        bail!("run {run_id} ended in error: {}", report.error.clone().unwrap_or_default());
    }
    let latency = merged_latency(&report);
    let filled = !latency.is_empty();
    let quantile = |q: f64| filled.then(|| latency.value_at_quantile(q));
    let mean_us = filled.then(|| latency.mean());
    let mut failed: Vec<String> = report.thresholds.iter().filter(|t| !t.passed).map(|t| t.expr.clone()).collect();
    let offered = scenario.rate();
    let achieved = report.totals.throughput;
    if let (Some(at_least), Some(offered)) = (sweep.achieved, offered)
        && achieved < at_least * offered
    {
        failed.push(format!("achieved {achieved:.0}/s < {:.0}% of {offered:.0}/s", at_least * 100.0));
    }
    let concurrency = f64::from(scenario.load.connections) * f64::from(scenario.load.pipeline);
    let (little_in_flight, little_ratio) = match mean_us {
        Some(mean) => {
            let (implied, ratio) = littles_law(achieved, mean, concurrency);
            (Some(implied), Some(ratio))
        }
        None => (None, None),
    };
    Ok(StepResult {
        step,
        level,
        run_id,
        offered,
        achieved,
        p50_us: quantile(0.5),
        p99_us: quantile(0.99),
        p999_us: quantile(0.999),
        mean_us,
        ops: report.totals.ops,
        errors: report.totals.errors,
        passed: failed.is_empty() && report.totals.ops > 0,
        failed,
        little_in_flight,
        little_ratio,
        concurrency,
    })
}

/// Every operation's latency (from the intended start) of a report, merged.
pub fn merged_latency(report: &stampede_common::report::Report) -> hdrhistogram::Histogram<u64> {
    let mut latency = histogram::new_histogram();
    if let Some(histograms) = &report.histograms {
        for op in histograms.operations.values() {
            if let Ok(h) = histogram::decode(&op.latency.0) {
                let _ = histogram::add_into(&mut latency, &h);
            }
        }
    }
    latency
}

fn micros(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |v| stampede_common::units::format_micros(v as f64))
}

fn progress_line(sweep: &Sweep, s: &StepResult) -> String {
    format!(
        "step {}: {} {}: {:.0} ops/s, p99 {}, errors {}: {}",
        s.step,
        sweep.over.as_str(),
        shown(sweep.over, s.level),
        s.achieved,
        micros(s.p99_us),
        s.errors,
        if s.passed { "meets the SLO".to_string() } else { format!("fails ({})", s.failed.join("; ")) }
    )
}

/// The text table, the knee and the fit.
pub fn render(report: &SweepReport, sweep: &Sweep) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "sweep of \"{}\" over {}; SLO: {}", report.scenario, report.over, report.slo.join(", "));
    if let Some(a) = report.achieved_at_least {
        let _ = writeln!(out, "  and the achieved rate at least {:.0}% of the offered", a * 100.0);
    }
    let _ = writeln!(
        out,
        "{:>4} {:>12} {:>12} {:>12} {:>9} {:>9} {:>9} {:>8} {:>11}  verdict",
        "step", "level", "offered", "achieved", "p50", "p99", "p99.9", "errors", "in flight"
    );
    for s in &report.steps {
        let _ = writeln!(
            out,
            "{:>4} {:>12} {:>12} {:>12.0} {:>9} {:>9} {:>9} {:>8} {:>11}  {}",
            s.step,
            shown(sweep.over, s.level),
            s.offered.map_or("-".to_string(), |o| format!("{o:.0}/s")),
            s.achieved,
            micros(s.p50_us),
            micros(s.p99_us),
            micros(s.p999_us),
            s.errors,
            match (s.little_in_flight, s.little_ratio) {
                (Some(n), Some(r)) => format!("{n:.1} ({:.0}%)", r * 100.0),
                _ => "-".to_string(),
            },
            if s.passed { "pass".to_string() } else { format!("FAIL: {}", s.failed.join("; ")) }
        );
    }
    match &report.knee {
        Some(k) => {
            let first_failure = report.steps.iter().filter(|s| !s.passed && s.level > k.level).map(|s| s.level);
            let above = first_failure.fold(None, |a: Option<f64>, l| Some(a.map_or(l, |a| a.min(l))));
            let _ = writeln!(
                out,
                "knee: {} {} ({:.0} ops/s, p99 {}){}",
                report.over,
                shown(sweep.over, k.level),
                k.achieved,
                micros(k.p99_us),
                above.map_or(String::new(), |f| format!("; the SLO failed at {}", shown(sweep.over, f)))
            );
        }
        None => {
            let _ = writeln!(out, "knee: none; even the first step failed the SLO");
        }
    }
    if let Some(usl) = &report.usl {
        let _ = writeln!(
            out,
            "USL fit over concurrency (connections x pipeline): sigma {:.4}, kappa {:.6}, lambda {:.1} ops/s per unit, \
             R^2 {:.3}{}",
            usl.sigma,
            usl.kappa,
            usl.lambda,
            usl.r_squared,
            match (usl.peak_concurrency, usl.peak_throughput) {
                (Some(n), Some(x)) => format!("; predicted peak {x:.0} ops/s at concurrency {n:.1}"),
                _ => "; no peak predicted (no coherency cost measured)".to_string(),
            }
        );
    }
    out
}
