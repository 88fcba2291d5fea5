//! The text form of a report, as `stampede run`, `submit --wait` and
//! `stampede report` print it.

use std::fmt::Write;

use stampede_common::report::Report;
use stampede_common::units::format_micros;

fn us(value: u64) -> String {
    format_micros(value as f64)
}

/// Renders the report for a terminal.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, r: &Report) -> std::fmt::Result {
    let s = &r.scenario;
    writeln!(out, "run {} \"{}\": {}", r.run_id, s.name, r.status.as_str().to_uppercase())?;
    if let Some(error) = &r.error {
        writeln!(out, "  reason: {error}")?;
    }
    let model = match s.rate {
        Some(rate) => format!("open model at {rate:.0}/s"),
        None => "closed model".to_string(),
    };
    writeln!(
        out,
        "target {} [{}], workload {}, {model}, {} connections x pipeline {}, {} agents",
        s.target.kind,
        s.target.endpoints.join(", "),
        s.workload,
        s.connections,
        s.pipeline,
        r.agents.len()
    )?;
    writeln!(
        out,
        "measured {:.1}s after {:.1}s warm-up ({} warm-up operations not counted)",
        r.duration_s, r.warmup_s, r.totals.warmup_ops
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<12} {:>11} {:>11} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation", "count", "ops/s", "errors", "p50", "p90", "p99", "p99.9", "max"
    )?;
    for (name, op) in &r.operations {
        let l = &op.latency_us;
        writeln!(
            out,
            "{:<12} {:>11} {:>11.1} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            op.count,
            op.throughput,
            op.errors,
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.p999),
            us(l.max)
        )?;
    }
    writeln!(out, "{:<12} {:>11} {:>11.1} {:>8}", "total", r.totals.ops, r.totals.throughput, r.totals.errors)?;
    let with_errors: Vec<String> = r
        .operations
        .iter()
        .filter(|(_, op)| op.errors > 0)
        .map(|(name, op)| {
            let kinds: Vec<String> = op.errors_by_kind.iter().map(|(k, n)| format!("{k}={n}")).collect();
            format!("{name}: {}", kinds.join(" "))
        })
        .collect();
    if !with_errors.is_empty() {
        writeln!(out, "errors by kind: {}", with_errors.join("; "))?;
    }
    if r.totals.late_starts > 0 {
        writeln!(out, "late starts (open model, sent >1ms after their intended time): {}", r.totals.late_starts)?;
    }
    if r.totals.clamped > 0 {
        writeln!(out, "samples above 1h clamped: {}", r.totals.clamped)?;
    }
    if !r.counters.is_empty() {
        let counters: Vec<String> = r
            .counters
            .iter()
            .map(|(name, n)| match r.counter_rates.get(name) {
                Some(rate) => format!("{name} {n} ({rate:.1}/s)"),
                None => format!("{name} {n}"),
            })
            .collect();
        writeln!(out, "counters (whole run; rates over the measured part): {}", counters.join(", "))?;
    }
    if let Some(ratio) = r.cache_hit_ratio {
        writeln!(out, "cache hit ratio: {:.1}%", ratio * 100.0)?;
    }
    for note in &r.notes {
        writeln!(out, "note: {note}")?;
    }
    if !r.nodes.is_empty() {
        writeln!(out)?;
        writeln!(out, "{:<20} {:>11} {:>8} {:>8} {:>12}", "node", "ops", "share", "errors", "connections")?;
        let total = r.totals.ops.max(1) as f64;
        for (node, n) in &r.nodes {
            let share = 100.0 * n.ops as f64 / total;
            writeln!(out, "{node:<20} {:>11} {:>7.1}% {:>8} {:>12}", n.ops, share, n.errors, n.connections)?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<20} {:<16} {:>11} {:>8} {:>14} {:>10}",
        "agent", "host", "ops", "errors", "clock offset", "clock rtt"
    )?;
    for a in &r.agents {
        writeln!(
            out,
            "{:<20} {:<16} {:>11} {:>8} {:>12}us {:>8}us",
            a.id, a.host, a.ops, a.errors, a.clock_offset_us, a.clock_rtt_us
        )?;
    }
    if !r.thresholds.is_empty() {
        writeln!(out)?;
        writeln!(out, "thresholds:")?;
        for t in &r.thresholds {
            let observed = match (t.observed, t.unit.as_str()) {
                (None, _) => "nothing measured".to_string(),
                (Some(v), "us") => format_micros(v),
                (Some(v), "ratio") => format!("{:.3}%", v * 100.0),
                (Some(v), _) => format!("{v:.1}/s"),
            };
            writeln!(out, "  {}  {:<28} observed {observed}", if t.passed { "PASS" } else { "FAIL" }, t.expr)?;
        }
    }
    Ok(())
}
