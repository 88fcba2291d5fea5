//! The merged histograms of the measured part, encoded for the report's
//! `histograms` key: what percentile spectra and `compare` read.

use stampede_common::histogram;
use stampede_common::report::{EncodedHistogram, OperationHistograms, ReportHistograms};

use super::RunAggregate;

fn encoded(h: &histogram::Dense) -> EncodedHistogram {
    // Encoding into memory fails only for a histogram the codec cannot
    // represent, which the merge never builds; an empty one stands in.
    EncodedHistogram(histogram::encode(&h.to_histogram()).unwrap_or_default())
}

impl RunAggregate {
    pub(super) fn encoded_histograms(&self) -> ReportHistograms {
        let mut histograms = ReportHistograms::default();
        for (name, op) in &self.operations {
            histograms.operations.insert(
                name.clone(),
                OperationHistograms { latency: encoded(&op.latency), service: encoded(&op.service) },
            );
        }
        for ((node, op), agg) in &self.node_operations {
            histograms.nodes.entry(node.clone()).or_default().insert(op.clone(), encoded(&agg.latency));
        }
        histograms
    }
}
