//! The measured part of a run as a bounded series of time windows, each
//! with every operation's merged histograms (latency and service time) and
//! every backend node's (latency): what the report's `windows` key holds, so that a window of any run (and its percentiles, exactly)
//! can be read back, and two runs compared interval by interval.
//!
//! Windows start one second long. When there would be more than
//! [`MAX_WINDOWS`], neighbours are merged in pairs (histograms added, so
//! exactly) and windows become twice as long: a day-long run keeps windows
//! of 512 s, and the report stays a few megabytes. The windows still being
//! filled keep dense counts ([`Dense`]); older ones are kept encoded (a few KB),
//! so memory stays bounded however long the run.

use std::collections::BTreeMap;

use stampede_common::histogram::{self, Dense, Sparse};
use stampede_common::live::{LiveLatency, LiveSeries, LiveWindow, LiveWindows};
use stampede_common::report::{EncodedHistogram, ReportWindow, WindowNode, WindowOperation};

/// The most windows a report keeps.
pub const MAX_WINDOWS: usize = 240;
/// Windows this many seconds behind the newest interval are encoded.
const OPEN_SECONDS: u64 = 3;

/// A series' histograms (latency and service time for an operation,
/// latency for a node), dense while their window is open, encoded after.
enum Histograms {
    Open(Vec<Dense>),
    Sealed(Vec<Vec<u8>>),
}

impl Histograms {
    fn open(&mut self) -> &mut [Dense] {
        if let Self::Sealed(encoded) = self {
            // They were encoded from counts of this layout, so they decode.
            let decode = |bytes: &Vec<u8>| {
                let mut dense = Dense::new();
                if let Ok(sparse) = histogram::decode_sparse(bytes) {
                    dense.add(&sparse);
                }
                dense
            };
            *self = Self::Open(encoded.iter().map(decode).collect());
        }
        match self {
            Self::Open(histograms) => histograms,
            Self::Sealed(_) => unreachable!("opened above"),
        }
    }

    fn seal(&mut self) {
        if let Self::Open(histograms) = self {
            *self = Self::Sealed(
                histograms.iter().map(|h| histogram::encode(&h.to_histogram()).unwrap_or_default()).collect(),
            );
        }
    }

    fn encoded(&self, which: usize) -> EncodedHistogram {
        EncodedHistogram(match self {
            Self::Open(histograms) => {
                histograms.get(which).and_then(|h| histogram::encode(&h.to_histogram()).ok()).unwrap_or_default()
            }
            Self::Sealed(encoded) => encoded.get(which).cloned().unwrap_or_default(),
        })
    }
}

/// One operation's or one node's part of a window.
struct Series {
    count: u64,
    errors: u64,
    histograms: Histograms,
    /// The latency figures, kept when the histograms are sealed so that
    /// live viewers get them without decoding.
    sealed_latency: LiveLatency,
}

impl Series {
    fn new(histograms: usize) -> Self {
        Self {
            count: 0,
            errors: 0,
            histograms: Histograms::Open(vec![Dense::new(); histograms]),
            sealed_latency: LiveLatency::default(),
        }
    }

    fn seal(&mut self) {
        if let Histograms::Open(histograms) = &self.histograms {
            self.sealed_latency = histograms.first().map(|h| LiveLatency::of(&h.to_histogram())).unwrap_or_default();
        }
        self.histograms.seal();
    }

    fn live(&self) -> LiveSeries {
        let latency_us = match &self.histograms {
            Histograms::Open(histograms) => {
                histograms.first().map(|h| LiveLatency::of(&h.to_histogram())).unwrap_or_default()
            }
            Histograms::Sealed(_) => self.sealed_latency,
        };
        LiveSeries { count: self.count, errors: self.errors, latency_us }
    }

    fn add(&mut self, count: u64, errors: u64, histograms: &[&Sparse]) {
        self.count += count;
        self.errors += errors;
        for (into, h) in self.histograms.open().iter_mut().zip(histograms) {
            into.add(h);
        }
    }

    fn absorb(&mut self, mut other: Series) {
        self.count += other.count;
        self.errors += other.errors;
        for (into, h) in self.histograms.open().iter_mut().zip(other.histograms.open().iter()) {
            into.absorb(h);
        }
    }
}

#[derive(Default)]
struct Window {
    operations: BTreeMap<String, Series>,
    nodes: BTreeMap<String, Series>,
}

impl Window {
    fn series(&mut self) -> impl Iterator<Item = &mut Series> {
        self.operations.values_mut().chain(self.nodes.values_mut())
    }
}

#[derive(Default)]
pub(super) struct Windows {
    /// Seconds per window: 1, 2, 4, ...
    length: u64,
    /// Window index (first interval / length) -> window.
    windows: BTreeMap<u64, Window>,
    newest_interval: u64,
    /// Windows changed since [`Windows::take_live`] last ran, and whether
    /// they were merged into longer ones meanwhile.
    changed: std::collections::BTreeSet<u64>,
    coarsened: bool,
}

impl Windows {
    pub fn new() -> Self {
        Self { length: 1, ..Self::default() }
    }

    /// Adds one measured operation of one report, served by `node`.
    pub fn add(
        &mut self,
        interval: u64,
        (operation, node): (&str, &str),
        count: u64,
        errors: u64,
        h: (&Sparse, &Sparse),
    ) {
        let index = interval / self.length;
        self.changed.insert(index);
        let window = self.windows.entry(index).or_default();
        let op = window.operations.entry(operation.to_string()).or_insert_with(|| Series::new(2));
        op.add(count, errors, &[h.0, h.1]);
        let node = window.nodes.entry(node.to_string()).or_insert_with(|| Series::new(1));
        node.add(count, errors, &[h.0]);
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
            for series in window.series() {
                series.seal();
            }
        }
    }

    /// Doubles the window length, merging neighbours exactly.
    fn coarsen(&mut self) {
        self.length *= 2;
        self.coarsened = true;
        self.changed.clear();
        let old = std::mem::take(&mut self.windows);
        for (index, window) in old {
            let merged = self.windows.entry(index / 2).or_default();
            for (into, from) in [(&mut merged.operations, window.operations), (&mut merged.nodes, window.nodes)] {
                for (name, series) in from {
                    match into.get_mut(&name) {
                        None => {
                            into.insert(name, series);
                        }
                        Some(existing) => existing.absorb(series),
                    }
                }
            }
        }
        self.seal_old();
    }

    /// Every window as live viewers see it, oldest first.
    pub fn live(&self) -> Vec<LiveWindow> {
        self.windows.iter().map(|(index, window)| self.live_window(*index, window)).collect()
    }

    /// What changed since the last call: the changed windows, or all of
    /// them (`reset`) when windows were merged into longer ones.
    pub fn take_live(&mut self) -> LiveWindows {
        let changed = std::mem::take(&mut self.changed);
        if std::mem::take(&mut self.coarsened) {
            return LiveWindows { reset: true, windows: self.live() };
        }
        let windows =
            changed.into_iter().filter_map(|i| self.windows.get(&i).map(|w| self.live_window(i, w))).collect();
        LiveWindows { reset: false, windows }
    }

    fn live_window(&self, index: u64, window: &Window) -> LiveWindow {
        LiveWindow {
            start_s: index * self.length,
            length_s: self.length,
            operations: window.operations.iter().map(|(name, s)| (name.clone(), s.live())).collect(),
            nodes: window.nodes.iter().map(|(name, s)| (name.clone(), s.live())).collect(),
        }
    }

    /// The windows for the report, oldest first.
    pub fn report(&self) -> Vec<ReportWindow> {
        self.windows
            .iter()
            .map(|(index, window)| ReportWindow {
                start_s: index * self.length,
                length_s: self.length,
                operations: window
                    .operations
                    .iter()
                    .map(|(name, op)| {
                        let window = WindowOperation {
                            count: op.count,
                            errors: op.errors,
                            latency: op.histograms.encoded(0),
                            service: op.histograms.encoded(1),
                        };
                        (name.clone(), window)
                    })
                    .collect(),
                nodes: window
                    .nodes
                    .iter()
                    .map(|(name, node)| {
                        let window =
                            WindowNode { count: node.count, errors: node.errors, latency: node.histograms.encoded(0) };
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

    fn one(value: u64) -> Sparse {
        let mut h = histogram::new_histogram();
        histogram::record_clamped(&mut h, value);
        Sparse::of(&h).expect("in range")
    }

    fn top(value: u64) -> u64 {
        histogram::new_histogram().highest_equivalent(value)
    }

    #[test]
    fn a_long_run_keeps_a_bounded_number_of_exact_windows() {
        let mut windows = Windows::new();
        let seconds = 1000u64;
        for interval in 0..seconds {
            let h = one(interval + 1);
            windows.add(interval, ("get", "kv-0"), 1, u64::from(interval % 10 == 0), (&h, &h));
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
            assert_eq!(window.nodes["kv-0"].count, op.count);
            assert_eq!((h.min(), h.max()), (window.start_s + 1, h.highest_equivalent(window.start_s + 8)));
            count += op.count;
            histogram::add_into(&mut all, &h).expect("add");
        }
        assert_eq!((count, all.len()), (seconds, seconds));
        assert_eq!(all.value_at_quantile(0.5), top(500));
    }

    #[test]
    fn live_viewers_get_the_windows_that_changed_and_all_of_them_when_they_grow_longer() {
        let mut windows = Windows::new();
        for interval in 0..5 {
            let h = one(100 + interval);
            windows.add(interval, ("get", "kv-0"), 1, 0, (&h, &h));
        }
        let first = windows.take_live();
        assert!(!first.reset);
        assert_eq!(first.windows.len(), 5);
        // Sealed windows keep their figures without being decoded.
        assert_eq!(first.windows[0].operations["get"].latency_us.max, top(100));
        let h = one(7);
        windows.add(5, ("get", "kv-1"), 1, 1, (&h, &h));
        let next = windows.take_live();
        assert_eq!((next.reset, next.windows.len(), next.windows[0].start_s), (false, 1, 5));
        assert_eq!(next.windows[0].nodes["kv-1"].errors, 1);
        assert!(windows.take_live().windows.is_empty(), "nothing changed since");
        for interval in 6..(MAX_WINDOWS as u64 + 10) {
            windows.add(interval, ("get", "kv-0"), 1, 0, (&h, &h));
        }
        let grown = windows.take_live();
        assert!(grown.reset);
        assert_eq!(grown.windows.len(), windows.live().len());
        assert_eq!(grown.windows[0].length_s, 2);
        assert_eq!(grown.windows.iter().map(|w| w.operations["get"].count).sum::<u64>(), MAX_WINDOWS as u64 + 10);
    }

    #[test]
    fn a_late_report_for_a_sealed_window_still_counts() {
        let mut windows = Windows::new();
        for interval in 0..30 {
            let h = one(100);
            windows.add(interval, ("get", "kv-0"), 1, 0, (&h, &h));
        }
        let late = one(5000);
        windows.add(2, ("get", "kv-1"), 1, 0, (&late, &late));
        let report = windows.report();
        let h = histogram::decode(&report[2].operations["get"].latency.0).expect("decode");
        assert_eq!((report[2].operations["get"].count, h.len(), h.max()), (2, 2, top(5000)));
        // Per node too: the late report was kv-1's.
        let node = &report[2].nodes["kv-1"];
        let h = histogram::decode(&node.latency.0).expect("decode");
        assert_eq!((node.count, h.len(), h.max()), (1, 1, top(5000)));
        assert_eq!(report[2].nodes["kv-0"].count, 1);
    }
}
