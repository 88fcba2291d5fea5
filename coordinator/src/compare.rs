//! `stampede compare BASE CANDIDATE`: per operation and per backend node,
//! throughput, error rate and latency percentiles of two runs, the change in percent and a verdict
//! from a bootstrap over the runs' time windows. Pure: two reports in,
//! rows out.
//!
//! **Method.** Each run's measured part is a series of windows (the
//! report's `windows`: 1 s each, longer for long runs), each with its merged
//! histograms. One bootstrap sample draws as many windows as the run has,
//! with replacement, from each run, adds their histograms and computes the
//! figure; the relative change candidate/base - 1 over [`RESAMPLES`] samples
//! gives a 99% interval (its 0.5th and 99.5th percentiles: with as few
//! windows as a short run has, a 95% bootstrap interval is too narrow). The
//! verdict is *worse* or *better* when that interval lies wholly on one
//! side of zero, the change itself is at least [`MIN_CHANGE`] and each run
//! has at least [`MIN_WINDOWS`] windows; otherwise *no significant change*. Resampling whole windows keeps what happens within
//! a second together (a stall's slow requests stay in one sample), so the
//! interval reflects how much the figure moves from second to second. It
//! cannot see what differs between two runs as a whole (a warmer cache, a
//! noisy neighbour for the whole run); the minimum change guards against
//! flagging such small shifts.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use stampede_common::histogram;
use stampede_common::report::Report;

/// Bootstrap samples per figure.
pub const RESAMPLES: usize = 1000;
/// The smallest change a verdict other than "no significant change" needs.
pub const MIN_CHANGE: f64 = 0.05;
/// The fewest windows each run needs for a verdict.
pub const MIN_WINDOWS: usize = 10;

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    Throughput,
    ErrorRate,
    P50,
    P90,
    P99,
    P999,
}

impl Figure {
    pub const ALL: [Figure; 6] = [Self::Throughput, Self::ErrorRate, Self::P50, Self::P90, Self::P99, Self::P999];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throughput => "throughput",
            Self::ErrorRate => "error_rate",
            Self::P50 => "p50",
            Self::P90 => "p90",
            Self::P99 => "p99",
            Self::P999 => "p99.9",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether a rise is a change for the worse.
    fn higher_is_worse(self) -> bool {
        !matches!(self, Self::Throughput)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Worse,
    NoSignificantChange,
    /// One of the runs has no such figure (an operation only one ran).
    NotComparable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Better => "better",
            Self::Worse => "worse",
            Self::NoSignificantChange => "no significant change",
            Self::NotComparable => "not comparable",
        }
    }
}

/// One figure of one operation in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The operation; `all` in a node's rows.
    pub operation: String,
    /// The backend node whose requests (all operations) the row compares;
    /// absent in an operation's rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub figure: Figure,
    /// In the figure's unit: ops/s, a fraction, or microseconds.
    pub base: Option<f64>,
    pub candidate: Option<f64>,
    /// candidate / base - 1; `None` when a side is missing or base is 0.
    pub change: Option<f64>,
    /// The 99% bootstrap interval of `change`.
    pub interval: Option<(f64, f64)>,
    pub verdict: Verdict,
}

/// Both runs and what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub base: String,
    pub candidate: String,
    pub method: String,
    pub rows: Vec<Row>,
}

/// One run's windows of one operation, decoded; latency buckets are
/// indices into the operation's sorted values, shared by both runs.
#[derive(Default)]
struct Windows {
    seconds: Vec<f64>,
    counts: Vec<u64>,
    errors: Vec<u64>,
    buckets: Vec<Vec<(usize, u64)>>,
}

/// Every figure of some windows, in [`Figure::ALL`] order.
type Figures = [Option<f64>; 6];

/// One window of one operation as the report has it, decoded.
struct RawWindow {
    seconds: f64,
    count: u64,
    errors: u64,
    /// (bucket value, count) of the latency histogram.
    buckets: Vec<(u64, u64)>,
}

/// What rows compare: an operation (over every node), or a node (over
/// every operation).
type Series = (Option<String>, String);

fn raw(report: &Report, what: &str, length_s: u64, count: u64, errors: u64, bytes: &[u8]) -> Result<RawWindow, String> {
    let h = histogram::decode(bytes).map_err(|e| format!("run {}: a window's {what} histogram: {e}", report.run_id))?;
    let buckets: Vec<(u64, u64)> =
        h.iter_recorded().map(|v| (h.highest_equivalent(v.value_iterated_to()), v.count_at_value())).collect();
    Ok(RawWindow { seconds: length_s as f64, count, errors, buckets })
}

fn windows_of(report: &Report) -> Result<BTreeMap<Series, Vec<RawWindow>>, String> {
    if report.windows.is_empty() && report.totals.ops > 0 {
        return Err(format!(
            "the report of run {} has no time windows (it was written by an older Stampede); compare needs them",
            report.run_id
        ));
    }
    let mut by_series: BTreeMap<Series, Vec<_>> = BTreeMap::new();
    for window in &report.windows {
        for (name, op) in &window.operations {
            let w = raw(report, name, window.length_s, op.count, op.errors, &op.latency.0)?;
            by_series.entry((None, name.clone())).or_default().push(w);
        }
        for (node, n) in &window.nodes {
            let w = raw(report, &format!("node {node}"), window.length_s, n.count, n.errors, &n.latency.0)?;
            by_series.entry((Some(node.clone()), "all".to_string())).or_default().push(w);
        }
    }
    Ok(by_series)
}

/// Indexes both runs' windows of one operation over their common values.
fn prepare(
    base: Option<&Vec<RawWindow>>,
    candidate: Option<&Vec<RawWindow>>,
) -> (Vec<u64>, Option<Windows>, Option<Windows>) {
    let mut values: Vec<u64> =
        base.into_iter().chain(candidate).flatten().flat_map(|w| w.buckets.iter().map(|b| b.0)).collect();
    values.sort_unstable();
    values.dedup();
    let index = |raw: &Vec<RawWindow>| {
        let mut windows = Windows::default();
        for RawWindow { seconds, count, errors, buckets } in raw {
            windows.seconds.push(*seconds);
            windows.counts.push(*count);
            windows.errors.push(*errors);
            let indexed = buckets.iter().map(|(v, n)| (values.binary_search(v).unwrap_or(0), *n)).collect();
            windows.buckets.push(indexed);
        }
        windows
    };
    let (b, c) = (base.map(index), candidate.map(index));
    (values, b, c)
}

/// Every figure over some windows (indices into `w`).
fn figures(w: &Windows, values: &[u64], picks: &[usize], merged: &mut Vec<u64>) -> Figures {
    let (mut seconds, mut count, mut errors) = (0.0, 0u64, 0u64);
    merged.clear();
    merged.resize(values.len(), 0);
    let mut total = 0u64;
    for &i in picks {
        seconds += w.seconds[i];
        count += w.counts[i];
        errors += w.errors[i];
        for &(index, n) in &w.buckets[i] {
            merged[index] += n;
            total += n;
        }
    }
    let mut out: Figures = [None; 6];
    out[0] = (seconds > 0.0).then(|| count as f64 / seconds);
    out[1] = (count > 0).then(|| errors as f64 / count as f64);
    if total > 0 {
        // As the report computes percentiles: the first value whose
        // running count reaches ceil(q x total).
        let mut running = 0u64;
        let mut next = 0;
        let quantiles = [0.5, 0.9, 0.99, 0.999];
        for (index, n) in merged.iter().enumerate() {
            running += n;
            while next < quantiles.len() && running >= ((quantiles[next] * total as f64).ceil() as u64).max(1) {
                out[2 + next] = Some(values[index] as f64);
                next += 1;
            }
            if next == quantiles.len() {
                break;
            }
        }
    }
    out
}

fn change(base: Option<f64>, candidate: Option<f64>) -> Option<f64> {
    match (base, candidate) {
        (Some(x), Some(y)) if x > 0.0 => Some(y / x - 1.0),
        (Some(x), Some(y)) if x == 0.0 && y == 0.0 => Some(0.0),
        _ => None,
    }
}

/// Compares every operation the two runs share (and lists those only one
/// ran as not comparable). `seed` makes the bootstrap reproducible.
pub fn compare(base: &Report, candidate: &Report, seed: u64) -> Result<Comparison, String> {
    let (base_windows, candidate_windows) = (windows_of(base)?, windows_of(candidate)?);
    // Operations first, then nodes.
    let mut names: Vec<&Series> = base_windows.keys().chain(candidate_windows.keys()).collect();
    names.sort_by_key(|(node, op)| (node.is_some(), node.clone(), op.clone()));
    names.dedup();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut merged = Vec::new();
    let mut rows = Vec::new();
    for name in names {
        let (values, b, c) = prepare(base_windows.get(name), candidate_windows.get(name));
        let all = |w: &Windows| (0..w.counts.len()).collect::<Vec<_>>();
        let base_figures = b.as_ref().map(|w| figures(w, &values, &all(w), &mut merged));
        let candidate_figures = c.as_ref().map(|w| figures(w, &values, &all(w), &mut merged));
        let intervals = match (&b, &c) {
            (Some(b), Some(c)) => bootstrap(b, c, &values, &mut rng, &mut merged),
            _ => [None; 6],
        };
        let enough = |w: &Option<Windows>| w.as_ref().is_some_and(|w| w.counts.len() >= MIN_WINDOWS);
        let judged = enough(&b) && enough(&c);
        for (i, figure) in Figure::ALL.into_iter().enumerate() {
            let base_value = base_figures.and_then(|f| f[i]);
            let candidate_value = candidate_figures.and_then(|f| f[i]);
            let change = change(base_value, candidate_value);
            let interval = intervals[i].filter(|_| change.is_some());
            rows.push(Row {
                operation: name.1.clone(),
                node: name.0.clone(),
                figure,
                base: base_value,
                candidate: candidate_value,
                change,
                interval,
                verdict: if judged || interval.is_none() {
                    verdict(figure, change, interval)
                } else {
                    Verdict::NoSignificantChange
                },
            });
        }
    }
    Ok(Comparison {
        base: base.run_id.clone(),
        candidate: candidate.run_id.clone(),
        method: format!(
            "bootstrap over the runs' time windows ({RESAMPLES} resamples, 99% interval of the relative change); \
             a verdict needs the interval on one side of zero, a change of at least {:.0}% and {MIN_WINDOWS} \
             windows in each run",
            MIN_CHANGE * 100.0
        ),
        rows,
    })
}

/// The 99% interval of each figure's relative change.
fn bootstrap(
    base: &Windows,
    candidate: &Windows,
    values: &[u64],
    rng: &mut SmallRng,
    merged: &mut Vec<u64>,
) -> [Option<(f64, f64)>; 6] {
    let mut changes: [Vec<f64>; 6] = Default::default();
    let mut picks = Vec::new();
    for _ in 0..RESAMPLES {
        let (nb, nc) = (base.counts.len(), candidate.counts.len());
        picks.clear();
        picks.extend((0..nb).map(|_| rng.random_range(0..nb)));
        let b = figures(base, values, &picks, merged);
        picks.clear();
        picks.extend((0..nc).map(|_| rng.random_range(0..nc)));
        let c = figures(candidate, values, &picks, merged);
        for i in 0..6 {
            if let Some(x) = change(b[i], c[i]) {
                changes[i].push(x);
            }
        }
    }
    changes.map(|mut changes| {
        if changes.len() < RESAMPLES / 2 {
            return None;
        }
        changes.sort_by(f64::total_cmp);
        let at = |q: f64| changes[((q * (changes.len() - 1) as f64).round() as usize).min(changes.len() - 1)];
        Some((at(0.005), at(0.995)))
    })
}

fn verdict(figure: Figure, change: Option<f64>, interval: Option<(f64, f64)>) -> Verdict {
    let (Some(change), Some((low, high))) = (change, interval) else { return Verdict::NotComparable };
    let up = low > 0.0 && change >= MIN_CHANGE;
    let down = high < 0.0 && change <= -MIN_CHANGE;
    match (up, down, figure.higher_is_worse()) {
        (true, _, true) | (_, true, false) => Verdict::Worse,
        (true, _, false) | (_, true, true) => Verdict::Better,
        _ => Verdict::NoSignificantChange,
    }
}

/// The comparison as a table for a terminal.
pub fn text(c: &Comparison) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "compare {} (base) with {} (candidate)", c.base, c.candidate);
    let _ = writeln!(
        out,
        "{:<16} {:<10} {:>12} {:>12} {:>9} {:>19}  verdict",
        "operation", "figure", "base", "candidate", "change", "99% interval"
    );
    for (i, row) in c.rows.iter().enumerate() {
        if row.node.is_some() && c.rows.get(i.wrapping_sub(1)).is_none_or(|r| r.node.is_none()) {
            let _ = writeln!(out, "per backend node (its requests of every operation):");
        }
        let shown = |v: Option<f64>| match (v, row.figure) {
            (None, _) => "-".to_string(),
            (Some(v), Figure::Throughput) => format!("{v:.1}/s"),
            (Some(v), Figure::ErrorRate) => format!("{:.3}%", v * 100.0),
            (Some(v), _) => stampede_common::units::format_micros(v),
        };
        let change = row.change.map_or("-".to_string(), |c| format!("{:+.1}%", c * 100.0));
        let interval =
            row.interval.map_or("-".to_string(), |(l, h)| format!("[{:+.1}%, {:+.1}%]", l * 100.0, h * 100.0));
        let series = row.node.as_ref().map_or_else(|| row.operation.clone(), |node| format!("node {node}"));
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:>12} {:>12} {:>9} {:>19}  {}",
            series,
            row.figure.as_str(),
            shown(row.base),
            shown(row.candidate),
            change,
            interval,
            row.verdict.as_str()
        );
    }
    let _ = writeln!(out, "method: {}", c.method);
    out
}

/// A `--fail-on` gate: `p99 > +10%`, `get.p99.9 > +20%`, `throughput < -5%`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub expr: String,
    pub operation: Option<String>,
    pub figure: Figure,
    /// `true` for `>`: trips on a rise beyond `limit`; `false` for `<`.
    pub above: bool,
    /// A fraction: 0.10 for `+10%`.
    pub limit: f64,
}

impl Gate {
    pub fn parse(expr: &str) -> Result<Self, String> {
        let text = expr.trim();
        let (position, above) = match (text.find('>'), text.find('<')) {
            (Some(i), None) => (i, true),
            (None, Some(i)) => (i, false),
            _ => return Err(format!("`{text}`: write a gate like `p99 > +10%` or `throughput < -5%`")),
        };
        let left = text[..position].trim();
        let right = text[position + 1..].trim();
        let (operation, name) = match Figure::parse(left) {
            Some(_) => (None, left),
            None => match left.split_once('.') {
                Some((op, name)) if Figure::parse(name).is_some() && !op.is_empty() => (Some(op.to_string()), name),
                _ => {
                    return Err(format!(
                        "`{left}` is not a figure; use throughput, error_rate, p50, p90, p99 or p99.9, \
                         optionally after an operation like `get.p99`"
                    ));
                }
            },
        };
        let figure = Figure::parse(name).ok_or_else(|| format!("`{name}` is not a figure"))?;
        let percent = right
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite())
            .ok_or_else(|| format!("`{right}` is not a change; write it in percent like `+10%` or `-5%`"))?;
        Ok(Self { expr: text.to_string(), operation, figure, above, limit: percent / 100.0 })
    }

    /// The rows this gate trips on: a significant change (not "no
    /// significant change") beyond its limit.
    pub fn tripped<'a>(&self, comparison: &'a Comparison) -> Vec<&'a Row> {
        comparison
            .rows
            .iter()
            .filter(|row| row.figure == self.figure && row.node.is_none())
            .filter(|row| self.operation.as_ref().is_none_or(|op| *op == row.operation))
            .filter(|row| matches!(row.verdict, Verdict::Better | Verdict::Worse))
            .filter(|row| row.change.is_some_and(|c| if self.above { c > self.limit } else { c < self.limit }))
            .collect()
    }
}

#[cfg(test)]
mod tests;
