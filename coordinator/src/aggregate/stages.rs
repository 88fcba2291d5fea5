//! `load.stages` in the merged results: each measured interval belongs to
//! the stage under way at its middle; per stage and operation the counts,
//! errors and latency histogram, for the report's stage table and the
//! `stage(N).` thresholds. Pure, like the rest of the aggregator.

use std::collections::{BTreeMap, BTreeSet};

use stampede_common::histogram;
use stampede_common::report::StageReport;
use stampede_common::stages::Stages;
use stampede_common::threshold::Threshold;

use super::OperationAggregate;

pub(super) struct StageAggregates {
    stages: Stages,
    /// `ops/s` or `connections`.
    unit: &'static str,
    /// (stage, operation) -> its figures.
    operations: BTreeMap<(usize, String), OperationAggregate>,
    /// Each stage's measured intervals.
    intervals: BTreeMap<usize, BTreeSet<u64>>,
}

impl StageAggregates {
    pub fn new(stages: Stages, open: bool) -> Self {
        Self {
            stages,
            unit: if open { "ops/s" } else { "connections" },
            operations: BTreeMap::new(),
            intervals: BTreeMap::new(),
        }
    }

    pub fn stages(&self) -> &Stages {
        &self.stages
    }

    /// Adds one measured interval's figures of one operation.
    pub fn add(
        &mut self,
        interval: u64,
        operation: &str,
        errors: &BTreeMap<String, u64>,
        count: u64,
        latency: &histogram::Sparse,
    ) {
        let stage = self.stages.stage_at(interval as f64 + 0.5);
        self.intervals.entry(stage).or_default().insert(interval);
        let op = self.operations.entry((stage, operation.to_string())).or_default();
        op.count += count;
        for (kind, n) in errors {
            *op.errors_by_kind.entry(kind.clone()).or_default() += n;
        }
        op.latency.add(latency);
    }

    /// One stage's (0-based) count, errors, latency and measured seconds,
    /// of one operation or all.
    fn merged(&self, stage: usize, operation: Option<&str>) -> (OperationAggregate, f64) {
        let mut merged = OperationAggregate::default();
        for ((s, name), op) in &self.operations {
            if *s != stage || operation.is_some_and(|o| o != name) {
                continue;
            }
            merged.count += op.count;
            for (kind, n) in &op.errors_by_kind {
                *merged.errors_by_kind.entry(kind.clone()).or_default() += n;
            }
            merged.latency.absorb(&op.latency);
        }
        let seconds = self.intervals.get(&stage).map_or(0, BTreeSet::len) as f64;
        (merged, seconds)
    }

    /// The value a `stage(N).` threshold looks at.
    pub fn observe(&self, threshold: &Threshold) -> Option<f64> {
        let stage = (threshold.stage? as usize).checked_sub(1)?;
        let (merged, seconds) = self.merged(stage, threshold.operation.as_deref());
        super::observe::observe(
            &threshold.metric,
            merged.count,
            merged.errors(),
            &merged.latency.to_histogram(),
            seconds,
        )
    }

    /// The report's stage table.
    pub fn report(&self) -> Vec<StageReport> {
        self.stages
            .segments()
            .enumerate()
            .map(|(index, (from_s, to_s, planned_from, planned_to))| {
                let (merged, measured_s) = self.merged(index, None);
                let latency = merged.latency.to_histogram();
                let quantile = |q: f64| (!latency.is_empty()).then(|| latency.value_at_quantile(q));
                StageReport {
                    stage: index as u32 + 1,
                    from_s,
                    to_s,
                    planned_from,
                    planned_to,
                    unit: self.unit.to_string(),
                    measured_s,
                    ops: merged.count,
                    errors: merged.errors(),
                    throughput: if measured_s > 0.0 { merged.count as f64 / measured_s } else { 0.0 },
                    p50_us: quantile(0.5),
                    p99_us: quantile(0.99),
                    p999_us: quantile(0.999),
                }
            })
            .collect()
    }
}
