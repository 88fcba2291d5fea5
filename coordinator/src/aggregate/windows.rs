//! The measured part of a run as a bounded series of time windows, each
//! with every operation's merged histograms: what the report's `windows`
//! key holds, so that a window of any run (and its percentiles, exactly)
//! can be read back, and two runs compared interval by interval.
//!
//! Windows start one second long. When there would be more than
//! [`MAX_WINDOWS`], neighbours are merged in pairs (histograms added, so
//! exactly) and windows become twice as long: a day-long run keeps windows
//! of 512 s, and the report stays a few megabytes. The windows still being
//! filled keep dense histograms; older ones are kept encoded (a few KB),
//! so memory stays bounded however long the run.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use stampede_common::histogram;
use stampede_common::report::{EncodedHistogram, ReportWindow, WindowOperation};

/// The most windows a report keeps.
pub const MAX_WINDOWS: usize = 240;
/// Windows this many seconds behind the newest interval are encoded.
const OPEN_SECONDS: u64 = 3;

enum Histograms {
    Open { latency: Histogram<u64>, service: Histogram<u64> },
    Sealed { latency: Vec<u8>, service: Vec<u8> },
}

impl Histograms {
    fn open(&mut self) -> (&mut Histogram<u64>, &mut Histogram<u64>) {
        if let Self::Sealed { latency, service } = self {
            let decode = |bytes: &[u8]| histogram::decode(bytes).unwrap_or_else(|_| histogram::new_histogram());
            *self = Self::Open { latency: decode(latency), service: decode(service) };
        }
        match self {
            Self::Open { latency, service } => (latency, service),
            Self::Sealed { .. } => unreachable!("opened above"),
        }
    }

    fn seal(&mut self) {
        if let Self::Open { latency, service } = self {
            let encode = |h: &Histogram<u64>| histogram::encode(h).unwrap_or_default();
            *self = Self::Sealed { latency: encode(latency), service: encode(service) };
        }
    }

    fn encoded(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Self::Open { latency, service } => {
                (histogram::encode(latency).unwrap_or_default(), histogram::encode(service).unwrap_or_default())
            }
            Self::Sealed { latency, service } => (latency.clone(), service.clone()),
        }
    }
}

struct OperationWindow {
    count: u64,
    errors: u64,
    histograms: Histograms,
}

impl OperationWindow {
    fn new() -> Self {
        let histograms = Histograms::Open { latency: histogram::new_histogram(), service: histogram::new_histogram() };
        Self { count: 0, errors: 0, histograms }
    }

    fn add(&mut self, count: u64, errors: u64, latency: &Histogram<u64>, service: &Histogram<u64>) {
        self.count += count;
        self.errors += errors;
        let (l, s) = self.histograms.open();
        // Ranges were checked when the report was, so adding cannot fail.
        let _ = histogram::add_into(l, latency);
        let _ = histogram::add_into(s, service);
    }
}

#[derive(Default)]
pub(super) struct Windows {
    /// Seconds per window: 1, 2, 4, ...
    length: u64,
    /// Window index (first interval / length) -> operation -> window.
    windows: BTreeMap<u64, BTreeMap<String, OperationWindow>>,
    newest_interval: u64,
}

impl Windows {
    pub fn new() -> Self {
        Self { length: 1, ..Self::default() }
    }

    /// Adds one measured operation of one report.
    pub fn add(
        &mut self,
        interval: u64,
        operation: &str,
        count: u64,
        errors: u64,
        h: (&Histogram<u64>, &Histogram<u64>),
    ) {
        let window = self.windows.entry(interval / self.length).or_default();
        window.entry(operation.to_string()).or_insert_with(OperationWindow::new).add(count, errors, h.0, h.1);
        if interval > self.newest_interval {
            self.newest_interval = interval;
            self.seal_old();
        }
        while self.windows.len() > MAX_WINDOWS {
            self.coarsen();
        }
    }

    fn seal_old(&mut self) {
        let open_from = self.newest_interval.saturating_sub(OPEN_SECONDS) / self.length;
        for window in self.windows.range_mut(..open_from).map(|(_, w)| w) {
            for op in window.values_mut() {
                op.histograms.seal();
            }
        }
    }

    /// Doubles the window length, merging neighbours exactly.
    fn coarsen(&mut self) {
        self.length *= 2;
        let old = std::mem::take(&mut self.windows);
        for (index, operations) in old {
            let merged = self.windows.entry(index / 2).or_default();
            for (name, op) in operations {
                match merged.get_mut(&name) {
                    None => {
                        merged.insert(name, op);
                    }
                    Some(into) => {
                        let mut op = op;
                        let (latency, service) = op.histograms.open();
                        into.add(op.count, op.errors, latency, service);
                    }
                }
            }
        }
        self.seal_old();
    }

    /// The windows for the report, oldest first.
    pub fn report(&self) -> Vec<ReportWindow> {
        self.windows
            .iter()
            .map(|(index, operations)| ReportWindow {
                start_s: index * self.length,
                length_s: self.length,
                operations: operations
                    .iter()
                    .map(|(name, op)| {
                        let (latency, service) = op.histograms.encoded();
                        let window = WindowOperation {
                            count: op.count,
                            errors: op.errors,
                            latency: EncodedHistogram(latency),
                            service: EncodedHistogram(service),
                        };
                        (name.clone(), window)
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: u64) -> Histogram<u64> {
        let mut h = histogram::new_histogram();
        histogram::record_clamped(&mut h, value);
        h
    }

    #[test]
    fn a_long_run_keeps_a_bounded_number_of_exact_windows() {
        let mut windows = Windows::new();
        let seconds = 1000u64;
        for interval in 0..seconds {
            let h = one(interval + 1);
            windows.add(interval, "get", 1, u64::from(interval % 10 == 0), (&h, &h));
        }
        let report = windows.report();
        assert!(report.len() <= MAX_WINDOWS, "{}", report.len());
        assert_eq!(report[0].length_s, 8, "1000 s in windows of 8 s: 125 windows");
        assert_eq!(report.len(), 125);
        let mut all = histogram::new_histogram();
        let mut count = 0;
        for (i, window) in report.iter().enumerate() {
            assert_eq!(window.start_s, i as u64 * 8);
            let op = &window.operations["get"];
            let h = histogram::decode(&op.latency.0).expect("decode");
            // Each window holds exactly its seconds' samples.
            assert_eq!(h.len(), op.count);
            assert_eq!((h.min(), h.max()), (window.start_s + 1, h.highest_equivalent(window.start_s + 8)));
            count += op.count;
            histogram::add_into(&mut all, &h).expect("add");
        }
        assert_eq!((count, all.len()), (seconds, seconds));
        assert_eq!(all.value_at_quantile(0.5), one(500).max());
    }

    #[test]
    fn a_late_report_for_a_sealed_window_still_counts() {
        let mut windows = Windows::new();
        for interval in 0..30 {
            let h = one(100);
            windows.add(interval, "get", 1, 0, (&h, &h));
        }
        let late = one(5000);
        windows.add(2, "get", 1, 0, (&late, &late));
        let report = windows.report();
        let h = histogram::decode(&report[2].operations["get"].latency.0).expect("decode");
        assert_eq!((report[2].operations["get"].count, h.len(), h.max()), (2, 2, late.max()));
    }
}
