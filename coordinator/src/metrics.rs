//! The coordinator's Prometheus exposition (text format 0.0.4): what the
//! engine knows now, written out. Pure: the engine fills a
//! [`MetricsSnapshot`], [`render`] writes it.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::aggregate::metrics::SeriesSample;

/// Run states, each always exported (0 when none).
pub const RUN_STATES: [&str; 7] = ["queued", "preparing", "running", "passed", "failed", "error", "aborted"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub leading: bool,
    pub agents_connected: u64,
    pub runs_by_state: BTreeMap<String, u64>,
    /// Writes the store refused since the coordinator started.
    pub store_errors: u64,
    pub runs: Vec<RunMetrics>,
}

/// A running run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    pub run_id: String,
    pub name: String,
    /// Operations per second in the last complete interval.
    pub throughput: f64,
    pub samples: Vec<SeriesSample>,
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Prometheus' spelling of a float (`+Inf`, integers without a fraction).
fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() }
    } else {
        format!("{value}")
    }
}

pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "stampede_leader",
        "gauge",
        "1 while this coordinator leads (always without etcd), 0 as a standby.",
    );
    let _ = writeln!(out, "stampede_leader {}", u8::from(snapshot.leading));
    header(&mut out, "stampede_agents_connected", "gauge", "Agents with a session to this coordinator.");
    let _ = writeln!(out, "stampede_agents_connected {}", snapshot.agents_connected);
    header(&mut out, "stampede_runs", "gauge", "Runs known to this coordinator, by state.");
    for state in RUN_STATES {
        let count = snapshot.runs_by_state.get(state).copied().unwrap_or(0);
        let _ = writeln!(out, "stampede_runs{{state=\"{state}\"}} {count}");
    }
    header(
        &mut out,
        "stampede_store_errors_total",
        "counter",
        "Writes the results store refused (such reports are neither counted nor acknowledged; agents resend them).",
    );
    let _ = writeln!(out, "stampede_store_errors_total {}", snapshot.store_errors);
    if snapshot.runs.is_empty() {
        return out;
    }
    header(
        &mut out,
        "stampede_run_throughput_ops_per_second",
        "gauge",
        "Operations in the last complete second of a running run.",
    );
    for run in &snapshot.runs {
        let _ = writeln!(
            out,
            "stampede_run_throughput_ops_per_second{{run=\"{}\",name=\"{}\"}} {}",
            escape(&run.run_id),
            escape(&run.name),
            number(run.throughput)
        );
    }
    let labels = |run: &RunMetrics, sample: &SeriesSample| {
        format!(
            "run=\"{}\",operation=\"{}\",node=\"{}\"",
            escape(&run.run_id),
            escape(&sample.operation),
            escape(&sample.node)
        )
    };
    header(
        &mut out,
        "stampede_run_operations_total",
        "counter",
        "Operations measured (warm-up excluded), errors included.",
    );
    for run in &snapshot.runs {
        for sample in &run.samples {
            let _ = writeln!(out, "stampede_run_operations_total{{{}}} {}", labels(run, sample), sample.ops);
        }
    }
    header(&mut out, "stampede_run_errors_total", "counter", "Failed operations measured, by kind.");
    for run in &snapshot.runs {
        for sample in &run.samples {
            for (kind, count) in &sample.errors_by_kind {
                let _ = writeln!(
                    out,
                    "stampede_run_errors_total{{{},kind=\"{}\"}} {count}",
                    labels(run, sample),
                    escape(kind)
                );
            }
        }
    }
    header(
        &mut out,
        "stampede_run_latency_seconds",
        "histogram",
        "Latency from the intended start, from the histograms merged over every agent.",
    );
    for run in &snapshot.runs {
        for sample in &run.samples {
            let labels = labels(run, sample);
            for (le, count) in &sample.buckets {
                let _ = writeln!(out, "stampede_run_latency_seconds_bucket{{{labels},le=\"{}\"}} {count}", number(*le));
            }
            let _ = writeln!(out, "stampede_run_latency_seconds_bucket{{{labels},le=\"+Inf\"}} {}", sample.count);
            let _ = writeln!(out, "stampede_run_latency_seconds_sum{{{labels}}} {}", number(sample.sum_s));
            let _ = writeln!(out, "stampede_run_latency_seconds_count{{{labels}}} {}", sample.count);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_declared_and_labels_are_escaped() {
        let sample = SeriesSample {
            operation: "get".into(),
            node: "kv \"0\"".into(),
            ops: 10,
            errors_by_kind: [("timeout".to_string(), 2)].into(),
            buckets: vec![(0.001, 7), (1.0, 8)],
            count: 8,
            sum_s: 0.25,
        };
        let snapshot = MetricsSnapshot {
            leading: true,
            agents_connected: 3,
            runs_by_state: [("running".to_string(), 1), ("passed".to_string(), 4)].into(),
            store_errors: 2,
            runs: vec![RunMetrics {
                run_id: "r-1".into(),
                name: "n".into(),
                throughput: 1234.5,
                samples: vec![sample],
            }],
        };
        let text = render(&snapshot);
        for line in [
            "stampede_leader 1",
            "stampede_agents_connected 3",
            "stampede_store_errors_total 2",
            "stampede_runs{state=\"passed\"} 4",
            "stampede_runs{state=\"aborted\"} 0",
            "stampede_run_throughput_ops_per_second{run=\"r-1\",name=\"n\"} 1234.5",
            "stampede_run_operations_total{run=\"r-1\",operation=\"get\",node=\"kv \\\"0\\\"\"} 10",
            "stampede_run_errors_total{run=\"r-1\",operation=\"get\",node=\"kv \\\"0\\\"\",kind=\"timeout\"} 2",
            "stampede_run_latency_seconds_bucket{run=\"r-1\",operation=\"get\",node=\"kv \\\"0\\\"\",le=\"0.001\"} 7",
            "stampede_run_latency_seconds_bucket{run=\"r-1\",operation=\"get\",node=\"kv \\\"0\\\"\",le=\"+Inf\"} 8",
            "stampede_run_latency_seconds_count{run=\"r-1\",operation=\"get\",node=\"kv \\\"0\\\"\"} 8",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        for family in ["stampede_leader", "stampede_runs", "stampede_run_latency_seconds"] {
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
    }
}
