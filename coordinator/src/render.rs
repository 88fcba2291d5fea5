//! The text form of a report, as `stampede run`, `submit --wait` and
//! `stampede report` print it.

use std::fmt::Write;

use stampede_common::distribution::Distribution;
use stampede_common::interval::Counter;
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
    generator_verdict(out, r)?;
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
    if r.totals.ops == 0 && r.totals.warmup_ops == 0 && r.intervals.is_empty() {
        writeln!(out, "measured nothing: the run ended before any operation was done")?;
        for note in &r.notes {
            writeln!(out, "note: {note}")?;
        }
        return write_agents_and_thresholds(out, r);
    }
    writeln!(
        out,
        "measured {:.1}s after {:.1}s warm-up ({} warm-up operations not counted){}",
        r.duration_s,
        r.warmup_s,
        r.totals.warmup_ops,
        match r.scenario.operations {
            Some(n) => format!("; the run was limited to {n} operations, warm-up's included"),
            None => String::new(),
        }
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<12} {:>11} {:>11} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation", "count", "ops/s", "errors", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"
    )?;
    for (name, op) in &r.operations {
        let l = &op.latency_us;
        writeln!(
            out,
            "{:<12} {:>11} {:>11.1} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            op.count,
            op.throughput,
            op.errors,
            format_micros(l.mean),
            us(l.p50),
            us(l.p90),
            us(l.p95),
            us(l.p99),
            us(l.p999),
            us(l.max)
        )?;
    }
    writeln!(out, "{:<12} {:>11} {:>11.1} {:>8}", "total", r.totals.ops, r.totals.throughput, r.totals.errors)?;
    write_transfer(out, r)?;
    write_timings(out, r)?;
    write_stages(out, r)?;
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
    for (name, op) in &r.operations {
        for m in &op.error_messages {
            writeln!(out, "  {name} at {} ({}, x{}): {}", m.node, m.kind, m.count, m.message)?;
        }
    }
    if r.totals.late_starts > 0 {
        write!(out, "late starts (open model, sent >1ms after their intended time): {}", r.totals.late_starts)?;
        if r.totals.unsent_starts > 0 {
            write!(out, " ({} of them never sent: the load fell behind the rate)", r.totals.unsent_starts)?;
        }
        writeln!(out)?;
        fell_behind(out, r)?;
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
        if let Some(rows) = r.counters.get(Counter::RowsUnconfirmed.as_str()) {
            writeln!(
                out,
                "rows_unconfirmed: {rows} rows of writes that timed out before an answer came may have been \
                 applied: the target may hold up to that many more rows than `rows`"
            )?;
        }
    }
    if let Some(ratio) = r.cache_hit_ratio {
        writeln!(out, "cache hit ratio: {:.1}%", ratio * 100.0)?;
    }
    for note in &r.notes {
        writeln!(out, "note: {note}")?;
    }
    if let Some(d) = &r.distribution {
        distribution(out, r, d)?;
    }
    write_agents_and_thresholds(out, r)
}

/// Bytes per operation and MB/s, when the drivers counted any.
fn write_transfer(out: &mut String, r: &Report) -> std::fmt::Result {
    let total = &r.totals.transfer;
    if total.bytes_sent + total.bytes_received == 0 {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<12} {:>11} {:>11} {:>11} {:>11}   (bytes of the operations that succeeded; MB = 10^6 B)",
        "transfer", "sent B/op", "recv B/op", "sent MB/s", "recv MB/s"
    )?;
    let rows = r.operations.iter().map(|(name, op)| (name.as_str(), &op.transfer));
    for (name, t) in rows.chain(std::iter::once(("total", total))) {
        writeln!(
            out,
            "{:<12} {:>11.1} {:>11.1} {:>11.3} {:>11.3}",
            name, t.sent_per_op, t.received_per_op, t.sent_mb_per_s, t.received_mb_per_s
        )?;
    }
    Ok(())
}

/// Steps timed inside the operations (`codec_in_path`), in nanoseconds.
fn write_timings(out: &mut String, r: &Report) -> std::fmt::Result {
    if r.timings.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<12} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}   (ns per value, inside the latency above)",
        "codec", "count", "mean", "p50", "p99", "p99.9", "max"
    )?;
    for (name, t) in &r.timings {
        let ns = &t.ns;
        writeln!(
            out,
            "{:<12} {:>11} {:>9.0} {:>9} {:>9} {:>9} {:>9}",
            name, t.count, ns.mean, ns.p50, ns.p99, ns.p999, ns.max
        )?;
    }
    Ok(())
}

/// The agent table, what agents lost or dropped, and the thresholds.
fn write_agents_and_thresholds(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(
        out,
        "{:<20} {:<16} {:>11} {:>8} {:>14} {:>10} {:>13} {:>15} {:>9}",
        "agent", "host", "ops", "errors", "clock offset", "clock rtt", "cpu mean/max", "memory mean/max", "saturated"
    )?;
    for a in &r.agents {
        let g = &a.generator;
        writeln!(
            out,
            "{:<20} {:<16} {:>11} {:>8} {:>12}us {:>8}us {:>13} {:>15} {:>9}",
            a.id,
            a.host,
            a.ops,
            a.errors,
            a.clock_offset_us,
            a.clock_rtt_us,
            format!("{:.0}/{:.0}%", g.cpu_percent_mean, g.cpu_percent_max),
            format!("{}/{}MiB", g.rss_bytes_mean >> 20, g.rss_bytes_max >> 20),
            g.saturated_intervals
        )?;
    }
    for a in r.agents.iter().filter(|a| a.reports_dropped > 0) {
        writeln!(
            out,
            "agent {} dropped {} interval reports it could not deliver in time (its buffer was full, see the agent's \
             --outbox-limit); their operations are missing from this report",
            a.id, a.reports_dropped
        )?;
    }
    for loss in &r.agent_losses {
        let back = loss.back_at_s.map_or("did not come back".to_string(), |at| format!("back at {at:.1}s"));
        let missing = if loss.missing_intervals.is_empty() { "none".to_string() } else { loss.windows() };
        writeln!(
            out,
            "agent lost: {} at {:.1}s, {back}; measured intervals missing: {missing}; shortfall about {} operations \
             ({:.1}% of the offered load)",
            loss.agent,
            loss.lost_at_s,
            loss.shortfall_ops,
            loss.shortfall_share * 100.0
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
                (Some(v), "number") if v.fract() == 0.0 => format!("{v:.0}"),
                (Some(v), "number") => format!("{v:.4}"),
                (Some(v), _) => format!("{v:.1}/s"),
            };
            writeln!(out, "  {}  {:<28} observed {observed}", if t.passed { "PASS" } else { "FAIL" }, t.expr)?;
        }
    }
    Ok(())
}

/// When the generator limited the load: how often, on which agents and
/// why, said at the top because it changes what the figures mean.
fn generator_verdict(out: &mut impl Write, r: &Report) -> std::fmt::Result {
    if r.totals.generator_saturated == 0 {
        return Ok(());
    }
    let measured = r.intervals.iter().filter(|i| !i.warmup).count();
    let agents: Vec<String> = r
        .agents
        .iter()
        .filter(|a| a.generator.saturated_intervals > 0)
        .map(|a| {
            let reasons: Vec<String> = a.generator.reasons.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
            format!("{} in {} of {measured} intervals ({})", a.id, a.generator.saturated_intervals, reasons.join(", "))
        })
        .collect();
    writeln!(
        out,
        "  generator-saturated: the load generator, not the target, limited the load: {}; these figures are a \
         statement about the generator (add agents or CPU, or lower the rate)",
        agents.join("; ")
    )
}

/// The open model's planned against achieved rate, and what held it back.
fn fell_behind(out: &mut impl Write, r: &Report) -> std::fmt::Result {
    let Some(planned) = r.scenario.rate else { return Ok(()) };
    let achieved = r.totals.throughput;
    if planned <= 0.0 || (r.totals.unsent_starts == 0 && achieved >= 0.95 * planned) {
        return Ok(());
    }
    write!(out, "rate: planned {planned:.0}/s, achieved {achieved:.1}/s ({:.1}%)", 100.0 * achieved / planned)?;
    let occupancy = r.agents.iter().map(|a| a.generator.slot_occupancy_mean).fold(0.0, f64::max);
    if r.totals.generator_saturated > 0 {
        writeln!(out, "; the generator held it back (see generator-saturated above)")
    } else if occupancy >= stampede_common::saturation::OCCUPANCY {
        writeln!(
            out,
            "; the slots were busy waiting on the target ({:.0}% of the time): the target, or too few connections \
             for its latency (rate x service time > connections x pipeline), held the load back",
            occupancy * 100.0
        )
    } else {
        writeln!(out)
    }
}

/// The node table with bars, the statistics, the agent x node matrix and
/// the findings.
fn distribution(out: &mut impl Write, r: &Report, d: &Distribution) -> std::fmt::Result {
    const BAR: f64 = 30.0;
    writeln!(out)?;
    writeln!(
        out,
        "distribution over nodes (expected {}, tolerance {:.1} pp): {}",
        d.expected,
        d.tolerance_pp,
        d.verdict.to_uppercase()
    )?;
    writeln!(
        out,
        "{:<20} {:>10} {:>7} {:>8} {:>7} {:>7} {:>6} {:>6}  share",
        "node", "requests", "share", "expected", "dev pp", "errors", "conns", "opened"
    )?;
    for (node, share) in &d.requests.nodes {
        let report = r.nodes.get(node);
        let bar = "#".repeat((share.share * BAR).round() as usize);
        writeln!(
            out,
            "{node:<20} {:>10} {:>6.1}% {:>7.1}% {:>+7.1} {:>7} {:>6} {:>6}  {bar}",
            share.count,
            share.share * 100.0,
            share.expected_share * 100.0,
            share.deviation_pp,
            report.map_or(0, |n| n.errors),
            report.map_or(0, |n| n.connections),
            report.map_or(0, |n| n.opened),
        )?;
    }
    let requests = if d.sampling.is_some() { "requests (chi-square of the samples)" } else { "requests" };
    for (label, spread) in [(requests, &d.requests), ("connections opened", &d.connections)] {
        if spread.total == 0 {
            continue;
        }
        let p = spread.p_value.map_or("n/a".to_string(), |p| format!("{p:.3}"));
        let ratio = spread.max_min_ratio.map_or("n/a".to_string(), |x| format!("{x:.2}"));
        writeln!(
            out,
            "{label}: {} in all, chi-square {:.2} ({} dof), p = {p}, largest deviation {:.1} pp, max/min {ratio}{}",
            spread.total,
            spread.chi_square,
            spread.degrees_of_freedom,
            spread.max_deviation_pp,
            if spread.balanced { "" } else { " (outside the expectation)" }
        )?;
    }
    if d.agents.len() > 1 {
        let nodes: Vec<&String> = d.requests.nodes.keys().collect();
        write!(out, "{:<20}", "agent x node")?;
        for node in &nodes {
            write!(out, " {:>12}", truncate(node, 12))?;
        }
        writeln!(out)?;
        for (agent, counts) in &d.agents {
            write!(out, "{:<20}", truncate(agent, 20))?;
            for node in &nodes {
                write!(out, " {:>12}", counts.get(*node).copied().unwrap_or(0))?;
            }
            writeln!(out)?;
        }
        if let Some(v) = d.affinity {
            writeln!(out, "source affinity (Cramér's V, 0 none .. 1 pinned): {v:.2}")?;
        }
    }
    if let Some(sampling) = &d.sampling {
        writeln!(
            out,
            "shares are sampled: {} samples of the node; {:.0}% confidence intervals of each node's true share:",
            sampling.samples,
            sampling.confidence * 100.0
        )?;
        for (node, share) in &sampling.nodes {
            writeln!(
                out,
                "  {node:<20} {:>7} samples {:>6.1}%  [{:.1}%, {:.1}%]",
                share.samples,
                share.share * 100.0,
                share.low * 100.0,
                share.high * 100.0
            )?;
        }
    }
    for finding in &d.findings {
        writeln!(out, "finding: {}", finding.message)?;
    }
    Ok(())
}

fn truncate(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// `load.stages`: planned against measured, one line per stage.
fn write_stages(out: &mut impl std::fmt::Write, r: &Report) -> std::fmt::Result {
    if r.stages.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<6} {:>15} {:>25} {:>12} {:>11} {:>9} {:>9} {:>9} {:>8}",
        "stage", "time", "planned", "ops", "ops/s", "p50", "p99", "p99.9", "errors"
    )?;
    for stage in &r.stages {
        let planned = if stage.unit == "ops/s" {
            format!("{:.0} -> {:.0}/s", stage.planned_from, stage.planned_to)
        } else {
            format!("{:.0} -> {:.0} connections", stage.planned_from, stage.planned_to)
        };
        let us = |v: Option<u64>| v.map_or("-".to_string(), |v| format_micros(v as f64));
        writeln!(
            out,
            "{:<6} {:>15} {:>25} {:>12} {:>11.1} {:>9} {:>9} {:>9} {:>8}",
            stage.stage,
            format!("{:.0}s-{:.0}s", stage.from_s, stage.to_s),
            planned,
            stage.ops,
            stage.throughput,
            us(stage.p50_us),
            us(stage.p99_us),
            us(stage.p999_us),
            stage.errors
        )?;
    }
    Ok(())
}
