//! Threshold expressions such as `p99 < 5ms`, `get.p99.9 <= 2ms`,
//! `error_rate < 1%` or `throughput > 10000/s`, on one backend node
//! (`node(kv-1).p99 < 2ms`, `node(kv-1).share > 20%`) or on the
//! distribution over nodes (`distribution.max_deviation < 5%`), and their
//! verdicts.
//!
//! A threshold is parsed once, when the scenario is validated, and evaluated
//! against merged results through a closure, so this module knows nothing
//! about histograms or runs.

use crate::interval::Counter;
use crate::units::{parse_duration, parse_rate};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency quantile in (0, 1), for example 0.99 for `p99`.
    Quantile(f64),
    Min,
    Max,
    Mean,
    /// Errors divided by operations, as a fraction.
    ErrorRate,
    /// Operations per second over the measured part of the run.
    Throughput,
    /// A node's fraction of the requests (`node(X).share`).
    Share,
    /// `distribution.max_deviation`: the largest share deviation, as a fraction.
    MaxDeviation,
    /// `distribution.p_value` of the chi-square test.
    PValue,
    /// `distribution.chi_square`.
    ChiSquare,
    /// `distribution.max_min_ratio`: most requests over fewest, per node.
    MaxMinRatio,
    /// `generator_saturated`: measured intervals, summed over agents, in
    /// which the generator, not the target, limited the load.
    GeneratorSaturated,
    /// A workload counter over the whole run, warm-up included, as the
    /// report's `counters` (`rows > 50000`, `rows_failed == 0`).
    Counter(Counter),
    /// A workload counter per second over the measured part, as the
    /// report's `counter_rates` (`rows > 50000/s`).
    CounterRate(Counter),
    /// One counter over another, measured part (`delivered / fanout > 99%`).
    CounterRatio(Counter, Counter),
    /// `cache_hit_ratio`: cache hits / (hits + misses), measured part.
    CacheHitRatio,
    /// A count of the report's totals over the measured part: `errors`,
    /// `late_starts`, `unsent_starts`.
    Total(Total),
}

/// The totals a threshold may count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Errors,
    LateStarts,
    UnsentStarts,
}

const TOTALS: [(&str, Total); 3] =
    [("errors", Total::Errors), ("late_starts", Total::LateStarts), ("unsent_starts", Total::UnsentStarts)];

fn counter_named(name: &str) -> Option<Counter> {
    Counter::ALL.into_iter().find(|c| c.as_str() == name.trim())
}

/// The names of the counters, for messages.
fn counter_names() -> String {
    Counter::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

/// The `distribution.` metrics, as written.
const DISTRIBUTION_METRICS: [(&str, Metric); 4] = [
    ("max_deviation", Metric::MaxDeviation),
    ("p_value", Metric::PValue),
    ("chi_square", Metric::ChiSquare),
    ("max_min_ratio", Metric::MaxMinRatio),
];

impl Metric {
    /// The unit of observed values: `us`, `ratio` or `ops/s`.
    pub fn unit(&self) -> &'static str {
        match self {
            Self::ErrorRate | Self::Share | Self::MaxDeviation | Self::CounterRatio(..) | Self::CacheHitRatio => {
                "ratio"
            }
            Self::Throughput => "ops/s",
            Self::CounterRate(_) => "/s",
            Self::PValue
            | Self::ChiSquare
            | Self::MaxMinRatio
            | Self::GeneratorSaturated
            | Self::Counter(_)
            | Self::Total(_) => "number",
            _ => "us",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "min" => Some(Self::Min),
            "max" => Some(Self::Max),
            "mean" => Some(Self::Mean),
            "error_rate" => Some(Self::ErrorRate),
            "throughput" => Some(Self::Throughput),
            _ => {
                let digits = name.strip_prefix('p')?;
                if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    return None;
                }
                let percent: f64 = digits.parse().ok()?;
                (percent > 0.0 && percent < 100.0).then_some(Self::Quantile(percent / 100.0))
            }
        }
    }
}

/// How the observed value is compared with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
}

impl Comparison {
    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Self::Equal => observed == limit,
            Self::Less => observed < limit,
            Self::LessOrEqual => observed <= limit,
            Self::Greater => observed > limit,
            Self::GreaterOrEqual => observed >= limit,
        }
    }
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as the user wrote it.
    pub expr: String,
    /// The operation it applies to; `None` for all operations together.
    pub operation: Option<String>,
    /// The backend node it applies to (`node(NAME).`); `None` for all.
    pub node: Option<String>,
    /// The stage of `load.stages` it applies to, 1 for the first
    /// (`stage(2).p99 < 5ms`); `None` for the whole run.
    pub stage: Option<u32>,
    pub metric: Metric,
    pub comparison: Comparison,
    /// The limit in the metric's unit (microseconds, fraction, ops/s).
    pub limit: f64,
}

/// A threshold expression that cannot be read; the message says what is
/// wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(pub String);

/// The verdict on one threshold.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThresholdResult {
    pub expr: String,
    /// The observed value in `unit`; null when nothing was measured.
    pub observed: Option<f64>,
    pub unit: String,
    pub passed: bool,
}

impl Threshold {
    /// Parses an expression. The error says what is wrong and what is
    /// expected.
    pub fn parse(expr: &str) -> Result<Self, ThresholdError> {
        let text = expr.trim();
        if let Some(rest) = text.strip_prefix("stage(") {
            let (number, rest) = rest.split_once(')').ok_or_else(|| {
                ThresholdError(format!("`{text}`: write a stage threshold like `stage(2).p99 < 5ms`"))
            })?;
            let stage: u32 = number.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ThresholdError(format!("`stage({number})`: stages are numbered from 1, as in `stage(1).p99 < 5ms`"))
            })?;
            let rest = rest
                .strip_prefix('.')
                .ok_or_else(|| ThresholdError(format!("`{text}`: a metric must follow `stage({stage})`")))?;
            let mut threshold = Self::parse_whole_run(rest)?;
            let per_stage = matches!(
                threshold.metric,
                Metric::Quantile(_) | Metric::Min | Metric::Max | Metric::Mean | Metric::ErrorRate | Metric::Throughput
            );
            if !per_stage || threshold.node.is_some() {
                return Err(ThresholdError(format!(
                    "`{text}`: a stage has latency (p50..p99.99, min, max, mean), error_rate and throughput, \
                     optionally of one operation (`stage(2).get.p99`)"
                )));
            }
            threshold.stage = Some(stage);
            threshold.expr = text.to_string();
            return Ok(threshold);
        }
        Self::parse_whole_run(text)
    }

    fn parse_whole_run(expr: &str) -> Result<Self, ThresholdError> {
        let text = expr.trim();
        let (position, symbol, comparison) = [
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("==", Comparison::Equal),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
        ]
        .iter()
        .find_map(|(symbol, comparison)| text.find(symbol).map(|i| (i, *symbol, *comparison)))
        .ok_or_else(|| {
            ThresholdError(format!("`{text}` has no comparison; write it like `p99 < 5ms` or `error_rate < 1%`"))
        })?;
        let left = text[..position].trim();
        let right = text[position + symbol.len()..].trim();
        let whole_run = |metric: Metric| -> Result<Self, ThresholdError> {
            let limit = parse_limit(metric, right)?;
            Ok(Self { expr: text.to_string(), operation: None, node: None, stage: None, metric, comparison, limit })
        };
        if left == "generator_saturated" {
            return whole_run(Metric::GeneratorSaturated);
        }
        if let Some((over, under)) = left.split_once('/') {
            let (over, under) = (counter_named(over), counter_named(under));
            return match (over, under) {
                (Some(over), Some(under)) => whole_run(Metric::CounterRatio(over, under)),
                _ => Err(ThresholdError(format!(
                    "`{left}`: a ratio is one counter over another, like `delivered / fanout > 99%`; the counters \
                     are {}",
                    counter_names()
                ))),
            };
        }
        if left == "cache_hit_ratio" {
            return whole_run(Metric::CacheHitRatio);
        }
        if let Some(counter) = counter_named(left) {
            // `rows > 50000` counts, `rows > 50000/s` is a rate.
            return whole_run(if right.contains('/') {
                Metric::CounterRate(counter)
            } else {
                Metric::Counter(counter)
            });
        }
        if let Some((_, total)) = TOTALS.iter().find(|(name, _)| *name == left) {
            return whole_run(Metric::Total(*total));
        }
        if left.ends_with(".generator_saturated") {
            return Err(ThresholdError(format!(
                "`{left}`: generator_saturated counts whole intervals of an agent; write `generator_saturated == 0`"
            )));
        }
        if comparison == Comparison::Equal {
            return Err(ThresholdError(format!(
                "`{text}`: `==` is for counts such as `generator_saturated == 0` or `errors == 0`; use <, <=, > \
                 or >= for `{left}`"
            )));
        }
        if let Some(name) = left.strip_prefix("distribution.") {
            let metric = DISTRIBUTION_METRICS.iter().find(|(n, _)| *n == name).map(|(_, m)| *m).ok_or_else(|| {
                ThresholdError(format!(
                    "`{name}` is not a distribution metric; use max_deviation, p_value, chi_square or max_min_ratio"
                ))
            })?;
            let limit = parse_limit(metric, right)?;
            return Ok(Self {
                expr: text.to_string(),
                operation: None,
                node: None,
                stage: None,
                metric,
                comparison,
                limit,
            });
        }
        let (node, left) = match left.strip_prefix("node(") {
            None => (None, left),
            Some(rest) => {
                let (name, rest) = rest.split_once(')').ok_or_else(|| {
                    ThresholdError(format!("`{left}`: write a node threshold like `node(kv-1).p99 < 2ms`"))
                })?;
                let rest = rest
                    .strip_prefix('.')
                    .ok_or_else(|| ThresholdError(format!("`{left}`: a metric must follow `node({name})`")))?;
                if name.trim().is_empty() {
                    return Err(ThresholdError(format!("`{left}` names an empty node")));
                }
                (Some(name.trim().to_string()), rest)
            }
        };
        if node.is_some() && left == "share" {
            let limit = parse_limit(Metric::Share, right)?;
            return Ok(Self {
                expr: text.to_string(),
                operation: None,
                node,
                stage: None,
                metric: Metric::Share,
                comparison,
                limit,
            });
        }
        let (operation, metric) = match Metric::parse(left) {
            Some(metric) => (None, metric),
            None => {
                let (operation, metric_name) = left.split_once('.').ok_or_else(|| {
                    ThresholdError(format!(
                        "`{left}` is not a metric; use p50..p99.99, min, max, mean, \
                         error_rate or throughput, optionally after an operation like `get.p99`; a counter ({}), \
                         one counter over another, cache_hit_ratio, errors, late_starts or unsent_starts",
                        counter_names()
                    ))
                })?;
                let metric = Metric::parse(metric_name).ok_or_else(|| {
                    ThresholdError(format!(
                        "`{metric_name}` is not a metric; use p50..p99.99, min, max, mean, \
                         error_rate or throughput"
                    ))
                })?;
                if operation.is_empty() {
                    return Err(ThresholdError(format!("`{left}` names an empty operation")));
                }
                (Some(operation.to_string()), metric)
            }
        };
        let limit = parse_limit(metric, right)?;
        Ok(Self { expr: text.to_string(), operation, node, stage: None, metric, comparison, limit })
    }

    /// Evaluates the threshold; `observe` gives the value of its metric (for
    /// its operation and node), or `None` when nothing was measured. A
    /// threshold on nothing measured fails: silence is not a pass.
    pub fn evaluate(&self, observe: impl Fn(&Threshold) -> Option<f64>) -> ThresholdResult {
        let observed = observe(self);
        ThresholdResult {
            expr: self.expr.clone(),
            observed,
            unit: self.metric.unit().to_string(),
            passed: observed.is_some_and(|value| self.comparison.holds(value, self.limit)),
        }
    }
}

fn parse_limit(metric: Metric, text: &str) -> Result<f64, ThresholdError> {
    match metric {
        Metric::CounterRatio(..) => {
            let (number, scale) = match text.strip_suffix('%') {
                Some(number) => (number.trim(), 0.01),
                None => (text, 1.0),
            };
            match number.parse::<f64>() {
                Ok(value) if value.is_finite() && value >= 0.0 => Ok(value * scale),
                _ => Err(ThresholdError(format!("`{text}` is not a ratio; write it like `99%` or `0.99`"))),
            }
        }
        Metric::CounterRate(_) => parse_rate(text).map_err(|e| ThresholdError(e.0)),
        Metric::ErrorRate | Metric::Share | Metric::MaxDeviation | Metric::CacheHitRatio => {
            let (number, scale) = match text.strip_suffix('%') {
                Some(number) => (number.trim(), 0.01),
                None => (text, 1.0),
            };
            let value: f64 = number
                .parse()
                .map_err(|_| ThresholdError(format!("`{text}` is not an error rate; write it like `1%` or `0.01`")))?;
            let fraction = value * scale;
            if !(0.0..=1.0).contains(&fraction) {
                return Err(ThresholdError(format!("`{text}` must be between 0% and 100%")));
            }
            Ok(fraction)
        }
        Metric::PValue
        | Metric::ChiSquare
        | Metric::MaxMinRatio
        | Metric::GeneratorSaturated
        | Metric::Counter(_)
        | Metric::Total(_) => {
            let value: f64 = text.parse().map_err(|_| ThresholdError(format!("`{text}` is not a number")))?;
            if !value.is_finite() || value < 0.0 {
                return Err(ThresholdError(format!("`{text}` must be a number of 0 or more")));
            }
            Ok(value)
        }
        Metric::Throughput => {
            if text.contains('/') {
                parse_rate(text).map_err(|e| ThresholdError(e.0))
            } else {
                text.parse()
                    .map_err(|_| ThresholdError(format!("`{text}` is not a throughput; write it like `10000/s`")))
            }
        }
        _ => {
            let duration = parse_duration(text).map_err(|e| ThresholdError(format!("latency limit {}", e.0)))?;
            Ok(duration.as_secs_f64() * 1e6)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let t = Threshold::parse("p99 < 5ms").expect("valid");
        assert_eq!((t.operation.as_deref(), t.metric, t.limit), (None, Metric::Quantile(0.99), 5000.0));
        let t = Threshold::parse("get.p99.9 <= 2ms").expect("valid");
        assert_eq!(t.operation.as_deref(), Some("get"));
        assert!(matches!(t.metric, Metric::Quantile(q) if (q - 0.999).abs() < 1e-12));
        assert_eq!(t.comparison, Comparison::LessOrEqual);
        let t = Threshold::parse("error_rate < 1%").expect("valid");
        assert!((t.limit - 0.01).abs() < 1e-12);
        let t = Threshold::parse("throughput >= 20000/s").expect("valid");
        assert_eq!((t.comparison, t.limit), (Comparison::GreaterOrEqual, 20000.0));
        assert_eq!(Threshold::parse("set.max < 1s").expect("valid").limit, 1e6);
    }

    #[test]
    fn parses_node_and_distribution_thresholds() {
        let t = Threshold::parse("node(kv-1).p99 < 2ms").expect("valid");
        assert_eq!((t.node.as_deref(), t.operation.as_deref(), t.limit), (Some("kv-1"), None, 2000.0));
        let t = Threshold::parse("node(10.0.0.7:6379).get.error_rate < 1%").expect("valid");
        assert_eq!((t.node.as_deref(), t.operation.as_deref()), (Some("10.0.0.7:6379"), Some("get")));
        let t = Threshold::parse("node(kv-0).share > 20%").expect("valid");
        assert_eq!((t.metric, t.limit), (Metric::Share, 0.2));
        let t = Threshold::parse("distribution.max_deviation < 5%").expect("valid");
        assert_eq!((t.metric, t.limit, t.metric.unit()), (Metric::MaxDeviation, 0.05, "ratio"));
        let t = Threshold::parse("distribution.p_value > 0.01").expect("valid");
        assert_eq!((t.metric, t.limit, t.metric.unit()), (Metric::PValue, 0.01, "number"));
        assert!(Threshold::parse("distribution.spread < 1").unwrap_err().0.contains("max_deviation"));
        assert!(Threshold::parse("node(kv-1 < 2ms").unwrap_err().0.contains("node(kv-1).p99"));
        assert!(Threshold::parse("node().p99 < 2ms").unwrap_err().0.contains("empty node"));
        assert!(Threshold::parse("share > 20%").unwrap_err().0.contains("not a metric"));
    }

    #[test]
    fn generator_saturation_is_a_count_compared_exactly() {
        let t = Threshold::parse("generator_saturated == 0").expect("valid");
        assert_eq!(
            (t.metric, t.comparison, t.limit, t.metric.unit()),
            (Metric::GeneratorSaturated, Comparison::Equal, 0.0, "number")
        );
        assert!(t.evaluate(|_| Some(0.0)).passed);
        assert!(!t.evaluate(|_| Some(1.0)).passed);
        assert!(Threshold::parse("generator_saturated <= 3").expect("valid").evaluate(|_| Some(3.0)).passed);
        assert!(Threshold::parse("get.generator_saturated == 0").unwrap_err().0.contains("whole intervals"));
        assert!(Threshold::parse("p99 == 5ms").unwrap_err().0.contains("`==` is for counts"));
    }

    #[test]
    fn counters_rates_ratios_and_totals_are_thresholds_too() {
        let t = Threshold::parse("rows > 50000").expect("valid");
        assert_eq!((t.metric, t.limit, t.metric.unit()), (Metric::Counter(Counter::Rows), 50000.0, "number"));
        let t = Threshold::parse("rows > 50000/s").expect("valid");
        assert_eq!((t.metric, t.limit, t.metric.unit()), (Metric::CounterRate(Counter::Rows), 50000.0, "/s"));
        let t = Threshold::parse("rows_failed == 0").expect("valid");
        assert_eq!((t.metric, t.comparison), (Metric::Counter(Counter::RowsFailed), Comparison::Equal));
        let t = Threshold::parse("delivered / fanout > 99%").expect("valid");
        assert_eq!(t.metric, Metric::CounterRatio(Counter::Delivered, Counter::Fanout));
        assert!((t.limit - 0.99).abs() < 1e-12);
        let t = Threshold::parse("cache_hit_ratio > 90%").expect("valid");
        assert_eq!((t.metric, t.limit), (Metric::CacheHitRatio, 0.9));
        let t = Threshold::parse("errors == 0").expect("valid");
        assert_eq!(t.metric, Metric::Total(Total::Errors));
        assert_eq!(Threshold::parse("unsent_starts <= 10").expect("valid").metric, Metric::Total(Total::UnsentStarts));
        assert!(Threshold::parse("delivered / sent > 1").unwrap_err().0.contains("fanout"));
        assert!(Threshold::parse("rows > lots").unwrap_err().0.contains("not a number"));
        assert!(Threshold::parse("cache_hit_ratio > 190%").unwrap_err().0.contains("between"));
    }

    #[test]
    fn a_threshold_may_apply_to_one_stage() {
        let t = Threshold::parse("stage(2).p99 < 5ms").expect("valid");
        assert_eq!(
            (t.stage, t.metric, t.limit, t.expr.as_str()),
            (Some(2), Metric::Quantile(0.99), 5000.0, "stage(2).p99 < 5ms")
        );
        let t = Threshold::parse("stage(1).get.throughput > 100/s").expect("valid");
        assert_eq!((t.stage, t.operation.as_deref(), t.metric), (Some(1), Some("get"), Metric::Throughput));
        assert!(Threshold::parse("stage(0).p99 < 5ms").unwrap_err().0.contains("numbered from 1"));
        assert!(Threshold::parse("stage(2).rows > 5").unwrap_err().0.contains("a stage has latency"));
        assert!(Threshold::parse("stage(2) p99 < 5ms").unwrap_err().0.contains("a metric must follow"));
    }

    #[test]
    fn rejects_with_a_reason() {
        assert!(Threshold::parse("p99 5ms").unwrap_err().0.contains("no comparison"));
        assert!(Threshold::parse("p100 < 5ms").unwrap_err().0.contains("not a metric"));
        assert!(Threshold::parse("latency < 5ms").unwrap_err().0.contains("not a metric"));
        assert!(Threshold::parse("p99 < 5").unwrap_err().0.contains("no unit"));
        assert!(Threshold::parse("error_rate < 150%").unwrap_err().0.contains("between"));
    }

    #[test]
    fn evaluates_and_fails_on_missing_data() {
        let t = Threshold::parse("p99 < 5ms").expect("valid");
        assert!(t.evaluate(|_| Some(4999.0)).passed);
        assert!(!t.evaluate(|_| Some(5000.0)).passed);
        let missing = t.evaluate(|_| None);
        assert!(!missing.passed);
        assert_eq!(missing.observed, None);
    }
}
