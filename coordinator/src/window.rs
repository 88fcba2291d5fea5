//! The figures of a span of a run, from the report's time windows: each
//! operation's count, errors and exact latency and service-time summary,
//! the windows' histograms merged. `stampede report --window FROM..TO`
//! prints them; the HTML report computes the same figures in the browser
//! for a span dragged on its charts.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use stampede_common::histogram::{self, LatencySummary};
use stampede_common::report::Report;
use stampede_common::units::format_micros;

/// A span of seconds since the start of the run (warm-up included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from_s: u64,
    pub to_s: u64,
}

impl Span {
    /// Parses `FROM..TO`, seconds since the start.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("`{text}` is not a span of seconds: write FROM..TO, e.g. 10..30 (seconds since the start)");
        let (from, to) = text.split_once("..").ok_or_else(bad)?;
        let from_s: u64 = from.trim().parse().map_err(|_| bad())?;
        let to_s: u64 = to.trim().parse().map_err(|_| bad())?;
        if to_s <= from_s {
            return Err(format!("the span {text} ends before it starts: TO must be greater than FROM"));
        }
        Ok(Self { from_s, to_s })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowFigures {
    pub run_id: String,
    /// The span the windows cover: the first one's start to the last one's end.
    pub from_s: u64,
    pub to_s: u64,
    pub windows: usize,
    pub operations: BTreeMap<String, SpanOperation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanOperation {
    pub count: u64,
    pub errors: u64,
    pub throughput: f64,
    pub latency_us: LatencySummary,
    pub service_time_us: LatencySummary,
}

/// The figures of the windows lying wholly within `span`.
pub fn figures(report: &Report, span: Span) -> Result<WindowFigures, String> {
    if report.windows.is_empty() {
        return Err(format!(
            "the report of run {} keeps no time windows (it measured nothing, or an older Stampede wrote it)",
            report.run_id
        ));
    }
    let picked: Vec<_> =
        report.windows.iter().filter(|w| w.start_s >= span.from_s && w.start_s + w.length_s <= span.to_s).collect();
    let (Some(first), Some(last)) = (picked.first(), picked.last()) else {
        let (start, end) = (report.windows[0].start_s, report.windows.last().map_or(0, |w| w.start_s + w.length_s));
        return Err(format!(
            "no window of run {} lies within {}..{}: its windows are {} s long and cover {start}..{end}",
            report.run_id, span.from_s, span.to_s, report.windows[0].length_s
        ));
    };
    let (from_s, to_s) = (first.start_s, last.start_s + last.length_s);
    let seconds: u64 = picked.iter().map(|w| w.length_s).sum();
    let mut operations = BTreeMap::new();
    for name in report.operations.keys() {
        let (mut latency, mut service) = (histogram::new_histogram(), histogram::new_histogram());
        let (mut count, mut errors) = (0, 0);
        for op in picked.iter().filter_map(|w| w.operations.get(name)) {
            count += op.count;
            errors += op.errors;
            for (into, bytes) in [(&mut latency, &op.latency.0), (&mut service, &op.service.0)] {
                let h = histogram::decode(bytes).map_err(|e| format!("a {name} window histogram: {e}"))?;
                histogram::add_into(into, &h).map_err(|e| format!("a {name} window histogram: {e}"))?;
            }
        }
        let throughput = if seconds == 0 { 0.0 } else { count as f64 / seconds as f64 };
        let figures = SpanOperation {
            count,
            errors,
            throughput,
            latency_us: LatencySummary::of(&latency),
            service_time_us: LatencySummary::of(&service),
        };
        operations.insert(name.clone(), figures);
    }
    Ok(WindowFigures { run_id: report.run_id.clone(), from_s, to_s, windows: picked.len(), operations })
}

/// The figures as a table.
pub fn text(f: &WindowFigures, open_model: bool) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_text(&mut out, f, open_model);
    out
}

fn write_text(out: &mut String, f: &WindowFigures, open_model: bool) -> std::fmt::Result {
    let plural = if f.windows == 1 { "" } else { "s" };
    writeln!(
        out,
        "run {}: {} s to {} s ({} window{plural}), the windows' histograms merged",
        f.run_id, f.from_s, f.to_s, f.windows
    )?;
    writeln!(
        out,
        "{:<16} {:<8} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation", "", "count", "ops/s", "errors", "mean", "p50", "p90", "p95", "p99", "p99.9", "p99.99", "max"
    )?;
    for (name, op) in &f.operations {
        let rows: &[(&str, &LatencySummary)] = if open_model {
            &[("latency", &op.latency_us), ("service", &op.service_time_us)]
        } else {
            &[("latency", &op.latency_us)]
        };
        for (i, (kind, l)) in rows.iter().enumerate() {
            let (label, count, rate, errors) = if i == 0 {
                (name.as_str(), op.count.to_string(), format!("{:.1}", op.throughput), op.errors.to_string())
            } else {
                ("", String::new(), String::new(), String::new())
            };
            let us = |v: u64| format_micros(v as f64);
            writeln!(
                out,
                "{label:<16} {kind:<8} {count:>10} {rate:>10} {errors:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                format_micros(l.mean),
                us(l.p50),
                us(l.p90),
                us(l.p95),
                us(l.p99),
                us(l.p999),
                us(l.p9999),
                us(l.max)
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_say_what_is_wrong() {
        assert_eq!(Span::parse("10..30"), Ok(Span { from_s: 10, to_s: 30 }));
        assert!(Span::parse("10-30").unwrap_err().contains("write FROM..TO"));
        assert!(Span::parse("30..10").unwrap_err().contains("ends before it starts"));
        assert!(Span::parse("a..b").unwrap_err().contains("seconds since the start"));
    }
}
