//! `stampede suite FILE`: a list of scenarios and sweeps, each with a name
//! and tags, run one after the other on one in-process coordinator and the
//! same agents (or on a coordinator given with `--coordinator`/`--etcd`
//! and its agents); every entry's report goes to `DIR/<entry>/`, and
//! `DIR/summary.{txt,json,html}` puts them side by side. A failed entry does not
//! stop the suite unless `--fail-fast`; the exit code is the worst verdict.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use stampede_common::Scenario;
use stampede_common::units::{format_micros, parse_duration};

pub struct SuiteOptions {
    pub quick: bool,
    pub only: Vec<String>,
    pub out: PathBuf,
    pub fail_fast: bool,
    pub agents: Option<u32>,
    /// A coordinator (and its agents) instead of an in-process one.
    pub remote: Option<crate::link::CoordinatorLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    entries: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    /// A path (relative to the suite file) or the scenario itself.
    scenario: Value,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    agents: Option<u32>,
    #[serde(default)]
    endpoints: Vec<String>,
}

/// An entry ready to run.
struct Entry {
    name: String,
    tags: Vec<String>,
    agents: u32,
    scenario: Scenario,
    text: String,
}

/// One entry's line in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct EntrySummary {
    pub name: String,
    /// `run` or `sweep`.
    pub kind: &'static str,
    pub tags: Vec<String>,
    /// passed, failed, error, or not run (after --fail-fast).
    pub verdict: String,
    pub exit_code: u8,
    /// Operations measured (warm-up excluded); a sweep's knee step's.
    pub ops: Option<u64>,
    pub throughput: Option<f64>,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    pub errors: Option<u64>,
    /// A sweep's knee level.
    pub knee: Option<f64>,
    /// The entry's own page, relative to the summary (`<entry>/report.html`).
    pub page: Option<String>,
    /// The run's id (a sweep's knee step's) on the coordinator.
    pub run_id: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteSummary {
    pub schema: &'static str,
    pub suite: String,
    pub description: Option<String>,
    pub quick: bool,
    pub only: Vec<String>,
    pub entries: Vec<EntrySummary>,
    pub exit_code: u8,
}

/// What `--quick` does to a scenario: every duration and `load.operations`
/// divided by 10, the run's duration kept at 3 s or more (1 s for the
/// warm-up and each stage) unless it was shorter, and the warm-up below the
/// duration.
pub fn quick(text: &str) -> anyhow::Result<String> {
    use std::time::Duration;
    let mut value: Value = serde_yaml::from_str(text).context("not YAML")?;
    let shorter = |v: &mut Value, floor: Duration| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let d = parse_duration(&text).ok()?;
        let short = (d / 10).max(floor).min(d);
        *v = Value::from(format!("{}ms", short.as_millis()));
        Some(short)
    };
    if let Value::Mapping(map) = &mut value {
        let duration = map.get_mut("duration").and_then(|d| shorter(d, Duration::from_secs(3)));
        if let Some(warmup) = map.get_mut("warmup") {
            let short = shorter(warmup, Duration::from_secs(1));
            if let (Some(w), Some(d)) = (short, duration)
                && w >= d
            {
                *warmup = Value::from("0s");
            }
        }
        if let Some(Value::Mapping(load)) = map.get_mut("load") {
            // One count, or one per operation.
            let tenth = |ops: &mut Value, floor: u64| {
                let n = match ops {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.replace(['_', ','], "").parse().ok(),
                    _ => None,
                };
                if let Some(n) = n {
                    *ops = Value::from((n / 10).max(floor.min(n)));
                }
            };
            match load.get_mut("operations") {
                Some(Value::Mapping(each)) => each.values_mut().for_each(|n| tenth(n, 1)),
                Some(ops) => tenth(ops, 1),
                None => {}
            }
            if let Some(Value::Sequence(stages)) = load.get_mut("stages") {
                for stage in stages {
                    if let Some(d) = stage.get_mut("duration") {
                        shorter(d, Duration::from_secs(1));
                    }
                }
            }
        }
    }
    Ok(serde_yaml::to_string(&value)?)
}

/// Reads the suite and every entry's scenario; refuses the suite, naming
/// each problem, before anything runs.
fn load(path: &Path, options: &SuiteOptions) -> anyhow::Result<(SuiteFile, Vec<Entry>)> {
    let shown = path.display();
    // Variables (`${REDIS_ENDPOINT:-...}`) in the suite file too.
    let text = crate::client::read_scenario(path).with_context(|| format!("the suite {shown}"))?;
    let suite: SuiteFile = serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for raw in &suite.entries {
        if raw.name.is_empty() || !raw.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            problems.push(format!("entry `{}`: a name is letters, digits, - _ and . (it names a folder)", raw.name));
            continue;
        }
        if !names.insert(raw.name.clone()) {
            problems.push(format!("entry `{}` appears twice; names must differ", raw.name));
            continue;
        }
        if !options.only.is_empty() && !raw.tags.iter().any(|t| options.only.contains(t)) {
            continue;
        }
        let (text, origin) = match &raw.scenario {
            Value::String(file) => {
                let file = base.join(file);
                match crate::client::read_scenario(&file) {
                    Ok(text) => (text, file.display().to_string()),
                    Err(e) => {
                        problems.push(format!("entry `{}`: {e:#}", raw.name));
                        continue;
                    }
                }
            }
            inline @ Value::Mapping(_) => {
                // `<<: *anchor` merges, so entries can share a scenario.
                let mut inline = inline.clone();
                if let Err(e) = inline.apply_merge() {
                    problems.push(format!("entry `{}` (inline): {e}", raw.name));
                    continue;
                }
                (serde_yaml::to_string(&inline)?, "inline".to_string())
            }
            _ => {
                problems.push(format!("entry `{}`: `scenario` is a file path or the scenario itself", raw.name));
                continue;
            }
        };
        let text = if options.quick { quick(&text).with_context(|| format!("entry `{}`", raw.name))? } else { text };
        match Scenario::with_endpoints(&text, &raw.endpoints) {
            Ok((scenario, text)) => {
                let agents = options.agents.or(raw.agents).unwrap_or(scenario.agents);
                let agents = match &scenario.sweep {
                    Some(sweep) => match crate::sweep::agents_needed(sweep, agents) {
                        Ok(n) => n,
                        Err(e) => {
                            problems.push(format!("entry `{}` ({origin}): {e}", raw.name));
                            continue;
                        }
                    },
                    None => agents,
                };
                entries.push(Entry { name: raw.name.clone(), tags: raw.tags.clone(), agents, scenario, text });
            }
            Err(e) => problems.push(format!("entry `{}` ({origin}): {e}", raw.name)),
        }
    }
    if !problems.is_empty() {
        bail!("{shown} cannot run:\n  {}", problems.join("\n  "));
    }
    if entries.is_empty() {
        bail!(
            "{shown}: no entry {}",
            if options.only.is_empty() {
                "(add some under `entries:`)".to_string()
            } else {
                format!("has any of the tags {}", options.only.join(", "))
            }
        );
    }
    Ok((suite, entries))
}

pub async fn suite(path: &Path, options: SuiteOptions) -> anyhow::Result<u8> {
    let (suite, entries) = load(path, &options)?;
    let out = &options.out;
    let agents = entries.iter().map(|e| e.agents).max().unwrap_or(1);
    let embed = options.remote.is_none() && entries.iter().any(|e| crate::local::needs_embedded_kv(&e.scenario));
    let mut place = crate::local::Place::open(options.remote.as_ref(), embed, agents).await?;
    if let Err(e) = std::fs::create_dir_all(out) {
        place.close().await;
        bail!("cannot create {}: {e}", out.display());
    }
    let total = entries.len();
    let mut summaries: Vec<EntrySummary> = Vec::new();
    let mut stop = false;
    for (index, entry) in entries.iter().enumerate() {
        if stop {
            summaries.push(not_run(entry));
            continue;
        }
        eprintln!("[{}/{total}] {} ...", index + 1, entry.name);
        let dir = out.join(&entry.name);
        let summary = match std::fs::create_dir_all(&dir) {
            Ok(()) => run_entry(place.client(), entry, &dir).await,
            Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", dir.display())),
        }
        .unwrap_or_else(|error| EntrySummary {
            verdict: "error".to_string(),
            exit_code: 2,
            note: Some(format!("{error:#}")),
            ..not_run(entry)
        });
        eprintln!("[{}/{total}] {}: {}", index + 1, entry.name, line_of(&summary));
        stop = options.fail_fast && summary.exit_code != 0;
        summaries.push(summary);
    }
    place.close().await;
    let exit_code = summaries.iter().map(|s| s.exit_code).max().unwrap_or(0);
    let summary = SuiteSummary {
        schema: "stampede.suite.v1",
        suite: suite.name,
        description: suite.description,
        quick: options.quick,
        only: options.only.clone(),
        entries: summaries,
        exit_code,
    };
    let text = render(&summary);
    print!("{text}");
    std::fs::write(out.join("summary.txt"), &text).context("cannot write summary.txt")?;
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)
        .context("cannot write summary.json")?;
    let page = stampede_coordinator::html::suite_page(&serde_json::to_value(&summary)?);
    std::fs::write(out.join("summary.html"), page).context("cannot write summary.html")?;
    eprintln!("results in {}", out.display());
    Ok(exit_code)
}

fn not_run(entry: &Entry) -> EntrySummary {
    EntrySummary {
        name: entry.name.clone(),
        kind: if entry.scenario.sweep.is_some() { "sweep" } else { "run" },
        tags: entry.tags.clone(),
        verdict: "not run".to_string(),
        exit_code: 0,
        ops: None,
        throughput: None,
        p50_us: None,
        p99_us: None,
        p999_us: None,
        errors: None,
        knee: None,
        page: None,
        run_id: None,
        note: Some("--fail-fast: an entry before it did not pass".to_string()),
    }
}

async fn run_entry(client: &mut crate::client::Client, entry: &Entry, dir: &Path) -> anyhow::Result<EntrySummary> {
    if let Some(sweep) = &entry.scenario.sweep {
        let (report, failure) =
            crate::sweep::run(client, &entry.scenario, &entry.text, entry.agents, Some(dir), true).await?;
        std::fs::write(dir.join("sweep.txt"), crate::sweep::render(&report, sweep))?;
        std::fs::write(dir.join("sweep.json"), serde_json::to_string_pretty(&report)?)?;
        std::fs::write(dir.join("sweep.html"), crate::sweep::page(&report))?;
        let exit_code = if failure.is_some() { 2 } else { report.exit_code() };
        let knee = report.knee.clone();
        return Ok(EntrySummary {
            name: entry.name.clone(),
            kind: "sweep",
            tags: entry.tags.clone(),
            verdict: match exit_code {
                0 => "passed".to_string(),
                1 => "failed".to_string(),
                _ => "error".to_string(),
            },
            exit_code,
            ops: knee.as_ref().map(|k| k.ops),
            throughput: knee.as_ref().map(|k| k.achieved),
            p50_us: knee.as_ref().and_then(|k| k.p50_us),
            p99_us: knee.as_ref().and_then(|k| k.p99_us),
            p999_us: knee.as_ref().and_then(|k| k.p999_us),
            errors: knee.as_ref().map(|k| k.errors),
            page: Some(format!("{}/sweep.html", entry.name)),
            run_id: knee.as_ref().map(|k| k.run_id.clone()),
            knee: knee.map(|k| k.level),
            note: failure,
        });
    }
    let run_id = crate::client::submit_when_ready(client, entry.text.clone(), entry.agents)
        .await
        .map_err(|s| anyhow::anyhow!("{}", crate::client::explain(&s)))?;
    let (report, json) = crate::watching::wait_for_report(client, &run_id).await?;
    std::fs::write(dir.join("report.json"), &json)?;
    std::fs::write(dir.join("report.txt"), stampede_coordinator::render::text(&report))?;
    std::fs::write(dir.join("report.html"), stampede_coordinator::html::page(&report))?;
    let latency = crate::sweep::merged_latency(&report);
    let quantile = |q: f64| (!latency.is_empty()).then(|| latency.value_at_quantile(q));
    Ok(EntrySummary {
        name: entry.name.clone(),
        kind: "run",
        tags: entry.tags.clone(),
        verdict: report.status.as_str().to_string(),
        exit_code: report.status.exit_code() as u8,
        ops: Some(report.totals.ops),
        throughput: Some(report.totals.throughput),
        p50_us: quantile(0.5),
        p99_us: quantile(0.99),
        p999_us: quantile(0.999),
        errors: Some(report.totals.errors),
        knee: None,
        page: Some(format!("{}/report.html", entry.name)),
        run_id: Some(run_id.clone()),
        note: report.error.clone(),
    })
}

fn line_of(s: &EntrySummary) -> String {
    let mut line = s.verdict.to_uppercase();
    if let Some(x) = s.throughput {
        line.push_str(&format!(", {x:.0} ops/s"));
    }
    if let Some(p) = s.p99_us {
        line.push_str(&format!(", p99 {}", format_micros(p as f64)));
    }
    if let Some(k) = s.knee {
        line.push_str(&format!(", knee at {k}"));
    }
    if let Some(note) = &s.note {
        line.push_str(&format!(" ({note})"));
    }
    line
}

/// Every entry side by side.
fn render(summary: &SuiteSummary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "suite \"{}\"{}{}",
        summary.suite,
        if summary.quick { " (--quick: durations and counts / 10, runs of 3 s at least)" } else { "" },
        if summary.only.is_empty() { String::new() } else { format!(", only {}", summary.only.join(", ")) }
    );
    let _ = writeln!(
        out,
        "{:<24} {:<6} {:<8} {:>12} {:>10} {:>8} {:>10}  tags",
        "entry", "kind", "verdict", "ops/s", "p99", "errors", "knee"
    );
    for s in &summary.entries {
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:<8} {:>12} {:>10} {:>8} {:>10}  {}",
            s.name,
            s.kind,
            s.verdict,
            s.throughput.map_or("-".to_string(), |x| format!("{x:.0}")),
            s.p99_us.map_or("-".to_string(), |p| format_micros(p as f64)),
            s.errors.map_or("-".to_string(), |e| e.to_string()),
            s.knee.map_or("-".to_string(), |k| format!("{k}")),
            s.tags.join(",")
        );
        if let Some(note) = s.note.as_ref().filter(|_| s.exit_code == 2) {
            let _ = writeln!(out, "  {}: {note}", s.name);
        }
    }
    let worst = match summary.exit_code {
        0 => "every entry passed",
        1 => "an entry failed its thresholds",
        _ => "an entry ended in error",
    };
    let _ = writeln!(out, "verdict: {worst} (exit {})", summary.exit_code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_divides_durations_and_counts_by_ten_within_bounds() {
        let text = "name: q\nduration: 60s\nwarmup: 5s\nload:\n  operations: 1_000_000\n  stages:\n    - {duration: 2m, rate: 5/s}\n    - {duration: 3s, rate: 5/s}\n";
        let q: Value = serde_yaml::from_str(&quick(text).expect("quick")).expect("yaml");
        assert_eq!(q["duration"], "6000ms");
        assert_eq!(q["warmup"], "1000ms");
        let ten: Value = serde_yaml::from_str(&quick("duration: 10s\nwarmup: 1s\n").expect("quick")).expect("yaml");
        assert_eq!((ten["duration"].as_str(), ten["warmup"].as_str()), (Some("3000ms"), Some("1000ms")));
        assert_eq!(q["load"]["operations"], 100_000);
        let each: Value =
            serde_yaml::from_str(&quick("load:\n  operations: {get: 95, set: 0, incr: 5}\n").expect("quick"))
                .expect("yaml");
        assert_eq!(
            each["load"]["operations"],
            serde_yaml::from_str::<Value>("{get: 9, set: 0, incr: 1}").expect("yaml")
        );
        assert_eq!(q["load"]["stages"][0]["duration"], "12000ms");
        assert_eq!(q["load"]["stages"][1]["duration"], "1000ms", "at least a second");
        let short: Value = serde_yaml::from_str(&quick("duration: 2s\nwarmup: 1s\n").expect("quick")).expect("yaml");
        assert_eq!(
            (short["duration"].as_str(), short["warmup"].as_str()),
            (Some("2000ms"), Some("1000ms")),
            "short runs stay"
        );
    }
}
