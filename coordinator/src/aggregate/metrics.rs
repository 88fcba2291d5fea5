//! A running run's figures as Prometheus samples, taken from the merged
//! histograms per (node, operation): buckets are counted in the merged
//! HdrHistogram, never derived from per-agent percentiles.

use std::collections::BTreeMap;

use super::RunAggregate;

/// Upper bounds, in seconds, of the latency histogram's buckets.
pub const LATENCY_BUCKETS_S: [f64; 17] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One (operation, node) of a run, measured part only.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSample {
    pub operation: String,
    pub node: String,
    /// Operations, errors included.
    pub ops: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// (upper bound in seconds, operations at or below it), cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// Operations in the latency histogram.
    pub count: u64,
    /// Sum of their latencies in seconds (from the histogram's mean).
    pub sum_s: f64,
}

impl RunAggregate {
    /// The run's samples, one per (operation, node), in that order.
    pub fn metric_samples(&self) -> Vec<SeriesSample> {
        let mut samples: Vec<SeriesSample> = self
            .node_operations
            .iter()
            .map(|((node, operation), aggregate)| {
                let latency = &aggregate.latency.to_histogram();
                let buckets = LATENCY_BUCKETS_S
                    .iter()
                    .map(|&le| (le, latency.count_between(0, (le * 1e6).round() as u64)))
                    .collect();
                let count = latency.len();
                SeriesSample {
                    operation: operation.to_string(),
                    node: node.to_string(),
                    ops: aggregate.count,
                    errors_by_kind: aggregate.errors_by_kind.clone(),
                    buckets,
                    count,
                    sum_s: if count == 0 { 0.0 } else { latency.mean() * count as f64 / 1e6 },
                }
            })
            .collect();
        samples.sort_by(|a, b| (&a.operation, &a.node).cmp(&(&b.operation, &b.node)));
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_common::histogram;
    use stampede_common::interval::{IntervalReport, OperationStats};

    fn stats(node: &str, latencies_us: &[u64]) -> OperationStats {
        let mut h = histogram::new_histogram();
        for &v in latencies_us {
            h.record(v).expect("record");
        }
        OperationStats {
            operation: "get".into(),
            node: node.into(),
            count: latencies_us.len() as u64,
            errors: Default::default(),
            error_messages: Vec::new(),
            latency: histogram::encode(&h).expect("encode"),
            service: histogram::encode(&h).expect("encode"),
            clamped: 0,
            bytes_sent: 0,
            bytes_received: 0,
        }
    }

    #[test]
    fn buckets_come_from_the_merged_histogram_of_every_agent() {
        let mut aggregate = RunAggregate::new(0);
        let a = IntervalReport {
            run_id: "r".into(),
            seq: 0,
            interval: 0,
            operations: vec![stats("n1", &[80, 90, 3_000])],
            ..Default::default()
        };
        let b = IntervalReport {
            run_id: "r".into(),
            seq: 0,
            interval: 0,
            operations: vec![stats("n1", &[200, 700_000])],
            ..Default::default()
        };
        aggregate.merge("a", &a).expect("merge");
        aggregate.merge("b", &b).expect("merge");
        let samples = aggregate.metric_samples();
        assert_eq!(samples.len(), 1);
        let sample = &samples[0];
        assert_eq!((sample.operation.as_str(), sample.node.as_str(), sample.ops, sample.count), ("get", "n1", 5, 5));
        let at = |le: f64| sample.buckets.iter().find(|(b, _)| *b == le).map(|(_, c)| *c);
        assert_eq!(at(0.00005), Some(0));
        assert_eq!(at(0.0001), Some(2), "80us and 90us from agent a");
        assert_eq!(at(0.00025), Some(3), "and 200us from agent b");
        assert_eq!(at(0.005), Some(4));
        assert_eq!(at(0.5), Some(4));
        assert_eq!(at(1.0), Some(5));
        assert!((sample.sum_s - 0.70337).abs() < 0.001, "{}", sample.sum_s);
    }
}
