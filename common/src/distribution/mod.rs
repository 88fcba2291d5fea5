//! How load spread over backend nodes: each node's share of requests and of
//! connections against the expected share (uniform or weighted), Pearson's
//! chi-square with its p-value, the largest deviation, the max/min ratio,
//! the agent x node matrix (source affinity), and findings for nodes that
//! were expected but unseen, unexpected, or whose share changed during the
//! run. Pure: counts in, analysis out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Default largest deviation, in percentage points, for a balanced verdict.
pub const DEFAULT_TOLERANCE_PP: f64 = 5.0;
/// An interval needs this many requests before its shares are judged.
const MIN_INTERVAL_REQUESTS: u64 = 50;
/// A share this far from the node's run-wide share in an interval, in
/// percentage points (or the tolerance if larger), is a change.
const CHANGE_PP: f64 = 10.0;
/// Cramér's V from which agents count as pinned to nodes.
const AFFINITY_V: f64 = 0.7;

/// What the scenario expects.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// Node -> relative weight; `None`: uniform over the nodes seen.
    pub weights: Option<BTreeMap<String, f64>>,
    pub tolerance_pp: f64,
}

impl Default for Expectation {
    fn default() -> Self {
        Self { weights: None, tolerance_pp: DEFAULT_TOLERANCE_PP }
    }
}

/// Counts as merged from every agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    /// Measured requests per agent and node.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Connections opened per agent and node (the whole run).
    pub connections: BTreeMap<String, BTreeMap<String, u64>>,
    /// Measured requests per interval index and node.
    pub intervals: BTreeMap<u64, BTreeMap<String, u64>>,
    /// Samples of the node per node found, when the driver samples the
    /// node instead of knowing it for every request (empty otherwise).
    pub samples: BTreeMap<String, u64>,
    /// The same per interval index.
    pub interval_samples: BTreeMap<u64, BTreeMap<String, u64>>,
}

/// One node's part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeShare {
    pub count: u64,
    /// Fraction of the total, 0..1.
    pub share: f64,
    pub expected_share: f64,
    /// `share - expected_share` in percentage points.
    pub deviation_pp: f64,
}

/// The spread of one kind of count (requests or connections).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub total: u64,
    // With sampled nodes, `chi_square`, `degrees_of_freedom` and `p_value`
    // of `requests` are those of the samples.
    pub nodes: BTreeMap<String, NodeShare>,
    pub chi_square: f64,
    pub degrees_of_freedom: u64,
    /// Probability of a chi-square this large if the shares were as
    /// expected; null with fewer than two expected nodes.
    pub p_value: Option<f64>,
    pub max_deviation_pp: f64,
    /// Largest count over smallest among expected nodes; null when one of
    /// them has none.
    pub max_min_ratio: Option<f64>,
    /// Every deviation within the tolerance and every expected node seen.
    pub balanced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `unseen`, `unexpected`, `affinity` or `share_change`.
    pub kind: String,
    pub message: String,
}

/// Shares in one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalShares {
    pub index: u64,
    pub total: u64,
    /// Per node; from the samples when the node was sampled, and empty
    /// when the interval had too few samples to say.
    pub shares: BTreeMap<String, f64>,
    /// Samples of the node in the interval, when the node was sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<u64>,
}

/// Confidence of the intervals stated for sampled shares.
pub const SAMPLED_CONFIDENCE: f64 = 0.99;
/// The normal quantile of [`SAMPLED_CONFIDENCE`] (two-sided).
const SAMPLED_Z: f64 = 2.575_829;
/// An interval's shares are drawn from samples only when it has this many.
pub const MIN_INTERVAL_SAMPLES: u64 = 30;

/// How sure sampled shares are: the samples, and per node the share of the
/// samples with its Wilson score interval at [`SAMPLED_CONFIDENCE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub samples: u64,
    pub confidence: f64,
    pub nodes: BTreeMap<String, SampledShare>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampledShare {
    pub samples: u64,
    /// Fraction of the samples, 0..1.
    pub share: f64,
    /// The confidence interval of the node's true share.
    pub low: f64,
    pub high: f64,
}

/// The Wilson score interval of a proportion `k / n` at normal quantile `z`.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn sampling(samples: &BTreeMap<String, u64>, expected: &BTreeMap<String, f64>) -> Sampling {
    let total: u64 = samples.values().sum();
    let names: BTreeSet<&String> = samples.keys().chain(expected.keys()).collect();
    let nodes = names
        .into_iter()
        .map(|name| {
            let k = samples.get(name).copied().unwrap_or(0);
            let (low, high) = wilson(k, total, SAMPLED_Z);
            let share = if total > 0 { k as f64 / total as f64 } else { 0.0 };
            (name.clone(), SampledShare { samples: k, share, low, high })
        })
        .collect();
    Sampling { samples: total, confidence: SAMPLED_CONFIDENCE, nodes }
}

/// The `distribution` key of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// `uniform` or `weighted`.
    pub expected: String,
    pub tolerance_pp: f64,
    pub requests: Spread,
    pub connections: Spread,
    /// Measured requests per agent and node.
    pub agents: BTreeMap<String, BTreeMap<String, u64>>,
    /// Cramér's V of the agent x node table: 0 when every agent spreads
    /// like the total, 1 when each agent reaches a single node.
    pub affinity: Option<f64>,
    pub intervals: Vec<IntervalShares>,
    /// When the node was sampled: how sure the shares are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Sampling>,
    /// `balanced` or `unbalanced` (by requests), `no data`; with sampled
    /// nodes `inconclusive` when a share's interval straddles the
    /// tolerance band.
    pub verdict: String,
    pub findings: Vec<Finding>,
}

fn totals(by_agent: &BTreeMap<String, BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut sum = BTreeMap::new();
    for nodes in by_agent.values() {
        for (node, n) in nodes {
            *sum.entry(node.clone()).or_default() += n;
        }
    }
    sum
}

/// Share changes listed per node at most; a node that flaps all day gets
/// these and a count of the rest, not one finding per flap.
const MAX_CHANGES_LISTED: usize = 10;

/// Adds a node's share-change findings, at most [`MAX_CHANGES_LISTED`].
fn bounded(findings: &mut Vec<Finding>, node: &str, mut changes: Vec<Finding>) {
    let more = changes.len().saturating_sub(MAX_CHANGES_LISTED);
    changes.truncate(MAX_CHANGES_LISTED);
    findings.extend(changes);
    if more > 0 {
        findings.push(Finding {
            kind: "share_change".into(),
            message: format!(
                "node {node}'s share changed in {more} more spans (the first {MAX_CHANGES_LISTED} are listed)"
            ),
        });
    }
}

/// Expected shares over `seen` nodes (uniform) or the weighted nodes.
fn expected_shares(seen: &BTreeMap<String, u64>, expect: &Expectation) -> BTreeMap<String, f64> {
    match &expect.weights {
        Some(weights) => {
            let sum: f64 = weights.values().sum();
            weights.iter().map(|(node, w)| (node.clone(), if sum > 0.0 { w / sum } else { 0.0 })).collect()
        }
        None => {
            let n = seen.len().max(1) as f64;
            seen.keys().map(|node| (node.clone(), 1.0 / n)).collect()
        }
    }
}

fn spread(counts: &BTreeMap<String, u64>, expect: &Expectation) -> Spread {
    let expected = expected_shares(counts, expect);
    let total: u64 = counts.values().sum();
    let names: BTreeSet<&String> = counts.keys().chain(expected.keys()).collect();
    let mut nodes = BTreeMap::new();
    let mut chi_square = 0.0;
    let mut max_deviation_pp: f64 = 0.0;
    for name in names {
        let count = counts.get(name).copied().unwrap_or(0);
        let share = if total > 0 { count as f64 / total as f64 } else { 0.0 };
        let expected_share = expected.get(name).copied().unwrap_or(0.0);
        let deviation_pp = (share - expected_share) * 100.0;
        max_deviation_pp = max_deviation_pp.max(deviation_pp.abs());
        let e = expected_share * total as f64;
        if e > 0.0 {
            chi_square += (count as f64 - e).powi(2) / e;
        }
        nodes.insert(name.clone(), NodeShare { count, share, expected_share, deviation_pp });
    }
    let expected_nodes: Vec<u64> =
        expected.iter().filter(|(_, s)| **s > 0.0).map(|(n, _)| counts.get(n).copied().unwrap_or(0)).collect();
    let degrees_of_freedom = expected_nodes.len().saturating_sub(1) as u64;
    let p_value =
        (degrees_of_freedom > 0 && total > 0).then(|| chi_square_survival(chi_square, degrees_of_freedom as f64));
    let max_min_ratio = match (expected_nodes.iter().max(), expected_nodes.iter().min()) {
        (Some(&max), Some(&min)) if min > 0 => Some(max as f64 / min as f64),
        _ => None,
    };
    let all_seen = expected.iter().all(|(n, s)| *s == 0.0 || counts.get(n).copied().unwrap_or(0) > 0);
    let balanced = total > 0 && all_seen && max_deviation_pp <= expect.tolerance_pp;
    Spread { total, nodes, chi_square, degrees_of_freedom, p_value, max_deviation_pp, max_min_ratio, balanced }
}

/// Cramér's V of an agent x node table, when it has at least two of each.
fn cramers_v(table: &BTreeMap<String, BTreeMap<String, u64>>) -> Option<f64> {
    let columns = totals(table);
    let rows: Vec<u64> = table.values().map(|r| r.values().sum()).collect();
    let n: u64 = rows.iter().sum();
    let (r, c) = (rows.iter().filter(|&&x| x > 0).count(), columns.values().filter(|&&x| x > 0).count());
    if r < 2 || c < 2 || n == 0 {
        return None;
    }
    let mut chi = 0.0;
    for (row, row_total) in table.values().zip(&rows) {
        for (node, column_total) in &columns {
            let e = *row_total as f64 * *column_total as f64 / n as f64;
            if e > 0.0 {
                chi += (row.get(node).copied().unwrap_or(0) as f64 - e).powi(2) / e;
            }
        }
    }
    Some((chi / (n as f64 * (r.min(c) - 1) as f64)).sqrt().min(1.0))
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The analysis of a run's counts.
pub fn analyse(observations: &Observations, expect: &Expectation) -> Distribution {
    let request_totals = totals(&observations.requests);
    let mut requests = spread(&request_totals, expect);
    if !observations.samples.is_empty() {
        // Sampled nodes: the samples are the observations, the requests
        // only follow them; chi-square is a test of the samples.
        let of_samples = spread(&observations.samples, expect);
        requests.chi_square = of_samples.chi_square;
        requests.degrees_of_freedom = of_samples.degrees_of_freedom;
        requests.p_value = of_samples.p_value;
    }
    let connections = spread(&totals(&observations.connections), expect);
    let mut findings = Vec::new();
    let sampled = !observations.samples.is_empty();
    if let Some(weights) = &expect.weights {
        for (node, weight) in weights {
            if *weight > 0.0 && request_totals.get(node).copied().unwrap_or(0) == 0 {
                let seen = if sampled { "no sample found it" } else { "served no request" };
                findings.push(Finding {
                    kind: "unseen".into(),
                    message: format!("node {node} was expected (weight {weight}) but {seen}"),
                });
            }
        }
        for (node, n) in &request_totals {
            if !weights.contains_key(node) && *n > 0 {
                findings.push(Finding {
                    kind: "unexpected".into(),
                    message: format!("node {node} served {n} requests but is not among the expected nodes"),
                });
            }
        }
    }
    let affinity = cramers_v(&observations.requests);
    if let Some(v) = affinity.filter(|v| *v >= AFFINITY_V) {
        let pinned: Vec<String> = observations
            .requests
            .iter()
            .filter_map(|(agent, nodes)| {
                let total: u64 = nodes.values().sum();
                let (node, n) = nodes.iter().max_by_key(|(_, n)| **n)?;
                (total > 0).then(|| format!("{agent} -> {node} ({})", percent(*n as f64 / total as f64)))
            })
            .collect();
        let overall =
            if requests.balanced { "although the total looks balanced" } else { "and the total is not balanced" };
        findings.push(Finding {
            kind: "affinity".into(),
            message: format!(
                "source affinity: agents are pinned to nodes (Cramér's V {v:.2}) {overall}: {}",
                pinned.join(", ")
            ),
        });
    }
    let empty = BTreeMap::new();
    let intervals: Vec<IntervalShares> = observations
        .intervals
        .iter()
        .map(|(index, nodes)| {
            let total: u64 = nodes.values().sum();
            // Sampled nodes: shares from the interval's samples, when
            // there are enough of them to mean something.
            let (counts, samples) = match sampled {
                false => (nodes, None),
                true => {
                    let counts = observations.interval_samples.get(index).unwrap_or(&empty);
                    (counts, Some(counts.values().sum::<u64>()))
                }
            };
            let basis: u64 = counts.values().sum();
            let shares = if samples.is_some_and(|n| n < MIN_INTERVAL_SAMPLES) {
                BTreeMap::new()
            } else {
                request_totals
                    .keys()
                    .map(|node| {
                        let n = counts.get(node).copied().unwrap_or(0);
                        (node.clone(), if basis > 0 { n as f64 / basis as f64 } else { 0.0 })
                    })
                    .collect()
            };
            IntervalShares { index: *index, total, shares, samples }
        })
        .collect();
    let limit_pp = CHANGE_PP.max(expect.tolerance_pp);
    let judged: Vec<&IntervalShares> = intervals
        .iter()
        .filter(|i| i.total >= MIN_INTERVAL_REQUESTS && i.samples.is_none_or(|n| n >= MIN_INTERVAL_SAMPLES))
        .collect();
    if sampled {
        let thin: Vec<u64> = intervals.iter().filter_map(|i| i.samples).filter(|n| *n < MIN_INTERVAL_SAMPLES).collect();
        if !thin.is_empty() {
            let most = thin.iter().max().copied().unwrap_or(0);
            findings.push(Finding {
                kind: "sampled".into(),
                message: format!(
                    "{} of {} intervals held fewer than {MIN_INTERVAL_SAMPLES} samples of the node (at most {most}): \
                     their shares are not drawn or judged; set target.node_header to count every request",
                    thin.len(),
                    intervals.len()
                ),
            });
        }
    }
    for node in requests.nodes.iter().filter(|(_, s)| s.count > 0).map(|(node, _)| node) {
        let share_in = |i: &IntervalShares| i.shares.get(node).copied().unwrap_or(0.0);
        // Windows where the node served nothing at all: it left, or had not
        // come yet.
        let mut changes = Vec::new();
        for (first, last) in windows(&judged, |i| share_in(i) == 0.0) {
            let none = if sampled { "was in none of the samples" } else { "served no requests" };
            changes.push(Finding {
                kind: "share_change".into(),
                message: format!(
                    "node {node} {none} in {} (it had {} over the run)",
                    span(first, last),
                    percent(requests.nodes[node].share)
                ),
            });
        }
        // Otherwise, windows where its share is far from its typical one
        // (the median over the intervals in which it served).
        let mut sorted: Vec<f64> = judged.iter().map(|i| share_in(i)).filter(|s| *s > 0.0).collect();
        sorted.sort_by(f64::total_cmp);
        let Some(&typical) = sorted.get(sorted.len() / 2) else {
            bounded(&mut findings, node, changes);
            continue;
        };
        for above in [true, false] {
            let off = |i: &IntervalShares| {
                let share = share_in(i);
                share > 0.0 && (share > typical) == above && ((share - typical) * 100.0).abs() > limit_pp
            };
            for (first, last) in windows(&judged, off) {
                let shares = judged.iter().filter(|i| (first..=last).contains(&i.index)).map(|i| share_in(i));
                let extreme = if above { shares.fold(0.0, f64::max) } else { shares.fold(1.0, f64::min) };
                changes.push(Finding {
                    kind: "share_change".into(),
                    message: format!(
                        "node {node}'s share was {} in {}, against a typical {} per interval",
                        percent(extreme),
                        span(first, last),
                        percent(typical)
                    ),
                });
            }
        }
        bounded(&mut findings, node, changes);
    }
    let sampling = sampled.then(|| sampling(&observations.samples, &expected_shares(&observations.samples, expect)));
    let verdict = match (&sampling, requests.total, requests.balanced) {
        (_, 0, _) => "no data",
        (None, _, true) => "balanced",
        (None, _, false) => "unbalanced",
        (Some(sampling), _, _) => sampled_verdict(sampling, &expected_shares(&observations.samples, expect), expect),
    };
    Distribution {
        expected: if expect.weights.is_some() { "weighted" } else { "uniform" }.into(),
        tolerance_pp: expect.tolerance_pp,
        requests,
        connections,
        agents: observations.requests.clone(),
        affinity,
        intervals,
        sampling,
        verdict: verdict.into(),
        findings,
    }
}

/// With sampled shares: `balanced` when every node's interval lies within
/// its expected share plus or minus the tolerance, `unbalanced` when one
/// lies wholly outside, `inconclusive` otherwise (more samples would say).
fn sampled_verdict(sampling: &Sampling, expected: &BTreeMap<String, f64>, expect: &Expectation) -> &'static str {
    let tolerance = expect.tolerance_pp / 100.0;
    let mut inside = true;
    for (node, share) in &sampling.nodes {
        let e = expected.get(node).copied().unwrap_or(0.0);
        if share.high < e - tolerance || share.low > e + tolerance {
            return "unbalanced";
        }
        inside &= share.low >= e - tolerance && share.high <= e + tolerance;
    }
    if inside { "balanced" } else { "inconclusive" }
}

/// Runs of consecutive intervals for which `test` holds, as (first, last).
fn windows(intervals: &[&IntervalShares], test: impl Fn(&IntervalShares) -> bool) -> Vec<(u64, u64)> {
    let mut found: Vec<(u64, u64)> = Vec::new();
    for interval in intervals.iter().filter(|i| test(i)) {
        match found.last_mut() {
            Some((_, last)) if *last + 1 == interval.index => *last = interval.index,
            _ => found.push((interval.index, interval.index)),
        }
    }
    found
}

fn span(first: u64, last: u64) -> String {
    if first == last { format!("interval {first}") } else { format!("intervals {first}-{last}") }
}

/// P(X >= x) for a chi-square variable with `k` degrees of freedom (the
/// survival function, from `statrs`).
pub fn chi_square_survival(x: f64, k: f64) -> f64 {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    if x <= 0.0 {
        return 1.0;
    }
    ChiSquared::new(k).map_or(f64::NAN, |chi_square| chi_square.sf(x).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests;
