//! Following a run to its end: the live line or the terminal dashboard
//! while it runs, then its report and the files asked for.

use anyhow::{Context, bail};
use stampede_common::report::Report;
use stampede_proto::v1 as pb;

use crate::client::{Client, Files, explain};
use crate::dashboard::{self, Outcome};
use crate::output::ProgressLine;

/// What is shown while the run runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Nothing until the report.
    Quiet,
    /// One line per second (rewritten in place on a terminal).
    Line,
    /// The terminal dashboard when stdout is a terminal, else the line.
    Dashboard(dashboard::Options),
}

/// Follows a run to its end, prints its report, writes the files and
/// returns the exit code of its status (0 when the user left a watched
/// dashboard before the end: the run goes on).
pub async fn watch(client: &mut Client, run_id: &str, files: Files<'_>, display: Display) -> anyhow::Result<u8> {
    let mut stream = client
        .watch_run(pb::WatchRunRequest { run_id: run_id.to_string() })
        .await
        .map_err(|s| anyhow::anyhow!("cannot watch run {run_id}: {}", explain(&s)))?
        .into_inner();
    let report_json = match display {
        Display::Dashboard(options) if dashboard::available() => {
            match dashboard::show(client.clone(), run_id, stream, options).await? {
                Outcome::Report(json) => json,
                Outcome::Left => {
                    eprintln!(
                        "left the dashboard; run {run_id} goes on (`stampede watch {run_id}` to come back, \
                         `stampede cancel {run_id}` to stop it)"
                    );
                    return Ok(0);
                }
            }
        }
        _ => follow_lines(&mut stream, run_id, display == Display::Quiet).await?,
    };
    let report: Report =
        serde_json::from_str(&report_json).context("the coordinator sent a report that is not valid JSON")?;
    crate::output::print_report(&stampede_coordinator::render::text(&report));
    if let Some(path) = files.json {
        std::fs::write(path, &report_json)
            .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
        eprintln!("JSON report written to {}", path.display());
    }
    if let Some(path) = files.html {
        crate::client::save_html(&report, path)?;
    }
    if let Some(path) = files.hlog {
        crate::client::save_interval_log(client, run_id, path).await?;
    }
    Ok(report.status.exit_code() as u8)
}

/// Waits for a run's report without showing anything; the report and its JSON.
pub async fn wait_for_report(client: &mut Client, run_id: &str) -> anyhow::Result<(Report, String)> {
    let mut stream = client
        .watch_run(pb::WatchRunRequest { run_id: run_id.to_string() })
        .await
        .map_err(|s| anyhow::anyhow!("cannot watch run {run_id}: {}", explain(&s)))?
        .into_inner();
    let json = follow_lines(&mut stream, run_id, true).await?;
    let report = serde_json::from_str(&json).context("the coordinator sent a report that is not valid JSON")?;
    Ok((report, json))
}

/// The progress line until the report arrives; its JSON.
async fn follow_lines(
    stream: &mut tonic::Streaming<pb::WatchRunResponse>,
    run_id: &str,
    quiet: bool,
) -> anyhow::Result<String> {
    let mut progress = ProgressLine::new(quiet);
    while let Some(update) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("lost the coordinator while watching run {run_id}: {}", explain(&s)))?
    {
        if !update.report_json.is_empty() {
            progress.finish();
            return Ok(update.report_json);
        }
        progress.update(&update);
    }
    progress.finish();
    bail!("the coordinator closed the watch of run {run_id} before it ended; `stampede report {run_id}` shows it later")
}
