//! What thresholds look at: a metric over all operations, one operation or
//! one node, and the distribution figures.

use hdrhistogram::Histogram;
use stampede_common::distribution::Distribution;
use stampede_common::interval::Counter;
use stampede_common::threshold::{Metric, Threshold, Total};

use super::{OperationAggregate, RunAggregate};

impl RunAggregate {
    /// The value a threshold looks at, or `None` when nothing was measured;
    /// `distribution` is the run's analysis, made once per report.
    pub fn observe_threshold(
        &self,
        threshold: &Threshold,
        distribution: &Distribution,
        measured_s: f64,
    ) -> Option<f64> {
        if threshold.stage.is_some() {
            return self.stages.as_ref()?.observe(threshold);
        }
        match (threshold.metric, threshold.node.as_deref()) {
            (Metric::MaxDeviation, _) => Some(distribution.requests.max_deviation_pp / 100.0),
            (Metric::PValue, _) => distribution.requests.p_value,
            (Metric::ChiSquare, _) => Some(distribution.requests.chi_square),
            (Metric::MaxMinRatio, _) => distribution.requests.max_min_ratio,
            (Metric::GeneratorSaturated, _) => Some(self.generator.total() as f64),
            (Metric::Counter(counter), _) => self.counter_value(&self.counters, counter),
            (Metric::CounterRate(counter), _) => self
                .counter_value(&self.measured_counters, counter)
                .and_then(|n| (measured_s > 0.0).then(|| n / measured_s)),
            (Metric::CounterRatio(over, under), _) => {
                let under = self.counter_value(&self.measured_counters, under)?;
                let over = self.counter_value(&self.measured_counters, over)?;
                (under > 0.0).then(|| over / under)
            }
            (Metric::CacheHitRatio, _) => {
                let hits = self.counter_value(&self.measured_counters, Counter::CacheHits)?;
                let misses = self.counter_value(&self.measured_counters, Counter::CacheMisses)?;
                (hits + misses > 0.0).then(|| hits / (hits + misses))
            }
            (Metric::Total(total), _) => (self.all_ops() > 0).then(|| match total {
                Total::Errors => self.errors() as f64,
                Total::LateStarts => self.late_starts as f64,
                Total::UnsentStarts => self.unsent_starts as f64,
            }),
            (Metric::Share, Some(node)) => {
                let total = self.ops();
                (total > 0).then(|| self.nodes.get(node).map_or(0, |n| n.ops) as f64 / total as f64)
            }
            (metric, Some(node)) => {
                // One node: its operations' histograms, added.
                let mut merged = OperationAggregate::default();
                for ((name, op), agg) in &self.node_operations {
                    if name != node || threshold.operation.as_deref().is_some_and(|o| o != op) {
                        continue;
                    }
                    merged.count += agg.count;
                    for (kind, n) in &agg.errors_by_kind {
                        *merged.errors_by_kind.entry(kind.clone()).or_default() += n;
                    }
                    merged.latency.absorb(&agg.latency);
                }
                observe(&metric, merged.count, merged.errors(), &merged.latency.to_histogram(), measured_s)
            }
            (metric, None) => self.observe(&metric, threshold.operation.as_deref(), measured_s),
        }
    }

    /// A counter of `counters`: 0 when the run did something but never
    /// counted it, `None` when it did nothing at all (silence is no pass).
    fn counter_value(&self, counters: &std::collections::BTreeMap<String, u64>, counter: Counter) -> Option<f64> {
        match counters.get(counter.as_str()) {
            Some(n) => Some(*n as f64),
            None => (self.all_ops() > 0).then_some(0.0),
        }
    }

    /// The value of a metric over all operations or one, or `None` when
    /// nothing was measured.
    pub fn observe(&self, metric: &Metric, operation: Option<&str>, measured_s: f64) -> Option<f64> {
        let (count, errors, latency) = match operation {
            None => (self.ops(), self.errors(), &self.overall),
            Some(name) => {
                let op = self.operations.get(name)?;
                (op.count, op.errors(), &op.latency)
            }
        };
        observe(metric, count, errors, &latency.to_histogram(), measured_s)
    }
}

/// A metric's value from a count, its errors and its latency histogram.
pub(super) fn observe(
    metric: &Metric,
    count: u64,
    errors: u64,
    latency: &Histogram<u64>,
    measured_s: f64,
) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let value_of = |f: fn(&Histogram<u64>) -> f64| (!latency.is_empty()).then(|| f(latency));
    match metric {
        Metric::ErrorRate => Some(errors as f64 / count as f64),
        Metric::Throughput => (measured_s > 0.0).then(|| count as f64 / measured_s),
        Metric::Min => value_of(|h| h.min() as f64),
        Metric::Max => value_of(|h| h.max() as f64),
        Metric::Mean => value_of(Histogram::mean),
        Metric::Quantile(q) => (!latency.is_empty()).then(|| latency.value_at_quantile(*q) as f64),
        // Node and distribution metrics are observed by `observe_threshold`.
        Metric::Share
        | Metric::MaxDeviation
        | Metric::PValue
        | Metric::ChiSquare
        | Metric::MaxMinRatio
        | Metric::GeneratorSaturated
        | Metric::Counter(_)
        | Metric::CounterRate(_)
        | Metric::CounterRatio(..)
        | Metric::CacheHitRatio
        | Metric::Total(_) => None,
    }
}
