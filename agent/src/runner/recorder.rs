//! Per-connection recording and the per-interval collection that turns it
//! into an `IntervalReport`. Each connection records into its own
//! `Recorder`; once a second the reporter adds them up per (operation, node)
//! and resets them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use hdrhistogram::Histogram;
use stampede_common::histogram;
use stampede_common::interval::{Counter, ErrorMessage, IntervalReport, OperationStats, Timing, add_error_message};

use crate::drivers::{Done, ErrorKind};

/// Values a connection kept as they are before it needs a histogram.
const FEW: usize = 32;

/// The latencies one connection recorded for one operation in one interval:
/// up to [`FEW`] kept as they are, more in a 1 us..1 h histogram (about
/// 190 KB). A mostly idle connection so holds a few hundred bytes instead of
/// histograms it hardly uses, which is what lets an agent hold tens of
/// thousands of connections; a busy one keeps its histogram from interval
/// to interval.
pub enum Samples {
    /// (value, count) pairs, already clamped to the histogram's range.
    Few(Vec<(u64, u64)>),
    Many(Box<Histogram<u64>>),
}

impl Samples {
    fn new() -> Self {
        Self::Few(Vec::new())
    }

    fn histogram() -> Self {
        Self::Many(Box::new(histogram::new_histogram()))
    }

    /// Records `count` values of `micros`; whether it was clamped.
    fn record_n(&mut self, micros: u64, count: u64) -> bool {
        match self {
            Self::Few(values) if values.len() < FEW => {
                values.push((micros.clamp(1, histogram::MAX_LATENCY_US), count));
                micros > histogram::MAX_LATENCY_US
            }
            Self::Few(values) => {
                let mut many = histogram::new_histogram();
                for (value, n) in values.drain(..) {
                    histogram::record_clamped_n(&mut many, value, n);
                }
                let clamped = histogram::record_clamped_n(&mut many, micros, count);
                *self = Self::Many(Box::new(many));
                clamped
            }
            Self::Many(many) => histogram::record_clamped_n(many, micros, count),
        }
    }

    /// Adds these values to `target`.
    fn add_to(&self, target: &mut Histogram<u64>) {
        match self {
            Self::Few(values) => {
                for (value, n) in values {
                    histogram::record_clamped_n(target, *value, *n);
                }
            }
            // Sparse for a slot of few values, dense otherwise.
            Self::Many(many) => {
                let _ = histogram::add_into(target, many);
            }
        }
    }

    /// Empties them for the next interval; a histogram that held fewer than
    /// [`FEW`] values is let go.
    fn reset(&mut self) {
        match self {
            Self::Few(values) => values.clear(),
            Self::Many(many) if many.len() < FEW as u64 => *self = Self::new(),
            Self::Many(many) => many.reset(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::Few(values) => values.is_empty(),
            Self::Many(many) => many.is_empty(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Self::Many(many) => histogram::encode(many).unwrap_or_default(),
            Self::Few(_) => {
                let mut many = histogram::new_histogram();
                self.add_to(&mut many);
                histogram::encode(&many).unwrap_or_default()
            }
        }
    }

    fn target(&mut self) -> &mut Histogram<u64> {
        if let Self::Few(_) = self {
            let mut many = histogram::new_histogram();
            self.add_to(&mut many);
            *self = Self::Many(Box::new(many));
        }
        match self {
            Self::Many(many) => many,
            Self::Few(_) => unreachable!("made a histogram above"),
        }
    }
}

pub struct OperationRecorder {
    pub count: u64,
    pub errors: [u64; 4],
    /// The first distinct error messages, bounded per kind.
    pub messages: Vec<ErrorMessage>,
    pub latency: Samples,
    pub service: Samples,
    pub clamped: u64,
    /// Bytes sent and received by the operations that succeeded.
    pub sent: u64,
    pub received: u64,
}

impl OperationRecorder {
    fn new() -> Self {
        Self {
            count: 0,
            errors: [0; 4],
            messages: Vec::new(),
            latency: Samples::new(),
            service: Samples::new(),
            clamped: 0,
            sent: 0,
            received: 0,
        }
    }

    /// A recorder that others are added into (the merge of an interval).
    fn merged() -> Self {
        Self { latency: Samples::histogram(), service: Samples::histogram(), ..Self::new() }
    }

    fn reset(&mut self) {
        self.count = 0;
        self.errors = [0; 4];
        self.messages.clear();
        self.latency.reset();
        self.service.reset();
        self.clamped = 0;
        self.sent = 0;
        self.received = 0;
    }
}

/// What one connection measured since the last collection. `operations`
/// belong to the current `node`; when the connection is renewed to another
/// node, they are parked under the old one so that every operation is
/// reported against the node that served it.
pub struct Recorder {
    node: Option<Arc<str>>,
    pub connected: bool,
    /// The nodes the open connection holds sockets to (a cluster client
    /// holds several); empty means the current node.
    pub links: Vec<Arc<str>>,
    pub operations: Vec<OperationRecorder>,
    parked: Vec<(Arc<str>, Vec<OperationRecorder>)>,
    pub late_starts: u64,
    /// Of `late_starts`: intended starts never sent.
    pub unsent_starts: u64,
    pub max_lag_us: u64,
    /// Microseconds the connection's slots spent waiting on the target
    /// (sent to answered, summed over batches).
    pub busy_us: u64,
    pub counters: [u64; Counter::ALL.len()],
    /// Connections opened since the last collection, per node.
    pub opened: BTreeMap<Arc<str>, u64>,
    /// Samples of the node since the last collection, per node found (for
    /// drivers that sample it, [`crate::drivers::Connection::take_sample`]).
    pub samples: BTreeMap<Arc<str>, u64>,
    /// Nanoseconds spent encoding values sent and decoding values read
    /// (`codec_in_path`), in the order of [`TIMINGS`].
    timings: [Samples; 2],
}

/// The steps a driver may time inside an operation ([`Done::encode_ns`],
/// [`Done::decode_ns`]).
pub const TIMINGS: [&str; 2] = ["encode", "decode"];

pub type SharedRecorder = Arc<Mutex<Recorder>>;

impl Recorder {
    pub fn shared(operations: usize) -> SharedRecorder {
        Arc::new(Mutex::new(Self {
            node: None,
            connected: false,
            links: Vec::new(),
            operations: (0..operations).map(|_| OperationRecorder::new()).collect(),
            parked: Vec::new(),
            late_starts: 0,
            unsent_starts: 0,
            max_lag_us: 0,
            busy_us: 0,
            counters: [0; Counter::ALL.len()],
            opened: BTreeMap::new(),
            samples: BTreeMap::new(),
            timings: [Samples::new(), Samples::new()],
        }))
    }

    /// The node operations are recorded against now.
    pub fn node(&self) -> Option<&Arc<str>> {
        self.node.as_ref()
    }

    /// Makes `node` the node of the operations recorded from now on.
    pub fn set_node(&mut self, node: Arc<str>) {
        let old = match self.node.take() {
            Some(current) if current == node => {
                self.node = Some(current);
                return;
            }
            Some(current) => current,
            None => {
                self.node = Some(node);
                return;
            }
        };
        let resumed = match self.parked.iter().position(|(n, _)| *n == node) {
            Some(i) => self.parked.swap_remove(i).1,
            None => (0..self.operations.len()).map(|_| OperationRecorder::new()).collect(),
        };
        let finished = std::mem::replace(&mut self.operations, resumed);
        self.parked.push((old, finished));
        self.node = Some(node);
    }

    /// Adds what a successful operation produced to the counters.
    #[inline]
    pub fn count(&mut self, done: &Done) {
        self.counters[Counter::Rows.index()] += u64::from(done.rows);
        self.counters[Counter::RowsFailed.index()] += u64::from(done.rows_failed);
        self.counters[Counter::Values.index()] += u64::from(done.values);
        match done.hit {
            Some(true) => self.counters[Counter::CacheHits.index()] += 1,
            Some(false) => self.counters[Counter::CacheMisses.index()] += 1,
            None => {}
        }
        self.counters[Counter::Fanout.index()] += u64::from(done.fanout);
        for (samples, ns) in self.timings.iter_mut().zip([done.encode_ns, done.decode_ns]) {
            if let Some(ns) = ns {
                samples.record_n(u64::from(ns), 1);
            }
        }
    }

    /// Adds the bytes a successful operation sent and received to
    /// `operation` at the current node.
    #[inline]
    pub fn transfer(&mut self, operation: usize, done: &Done) {
        let op = &mut self.operations[operation];
        op.sent += u64::from(done.sent);
        op.received += u64::from(done.received);
    }

    /// Records one finished operation.
    #[inline]
    pub fn record(&mut self, operation: usize, latency_us: u64, service_us: u64, error: Option<ErrorKind>) {
        self.record_n(operation, latency_us, service_us, error, 1);
    }

    /// Keeps what the target said about one failed operation (its count is
    /// recorded by [`Recorder::record`]), against the current node.
    #[inline]
    pub fn note_error(&mut self, operation: usize, kind: ErrorKind, message: &str) {
        if message.is_empty() {
            return;
        }
        add_error_message(&mut self.operations[operation].messages, kind.as_str(), message, 1);
    }

    /// Records `n` operations that finished with the same latency and
    /// outcome (a pipelined batch answers together).
    #[inline]
    pub fn record_n(&mut self, operation: usize, latency_us: u64, service_us: u64, error: Option<ErrorKind>, n: u64) {
        let op = &mut self.operations[operation];
        op.count += n;
        if let Some(kind) = error {
            op.errors[kind.index()] += n;
        }
        op.clamped += n * u64::from(op.latency.record_n(latency_us, n));
        op.service.record_n(service_us, n);
    }
}

pub fn lock(recorder: &SharedRecorder) -> std::sync::MutexGuard<'_, Recorder> {
    // Recording never panics while holding the lock; if it ever did, the
    // counters are still plain numbers worth reporting.
    recorder.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds up every connection's recorder per (operation, node), resets them,
/// and builds the report for `interval`; also returns the time the slots
/// spent waiting on the target.
pub fn collect(
    recorders: &[SharedRecorder],
    operation_names: &[&str],
    run_id: &str,
    seq: u64,
    interval: u64,
    warmup: bool,
) -> (IntervalReport, u64) {
    let mut merged: BTreeMap<(usize, Arc<str>), OperationRecorder> = BTreeMap::new();
    let mut connections: BTreeMap<String, u64> = BTreeMap::new();
    let mut late_starts = 0;
    let mut unsent_starts = 0;
    let mut max_lag_us = 0;
    let mut busy_us = 0;
    let mut counters = [0u64; Counter::ALL.len()];
    let mut opened: BTreeMap<String, u64> = BTreeMap::new();
    let mut node_samples: BTreeMap<String, u64> = BTreeMap::new();
    let mut timings: [Option<Samples>; 2] = [None, None];
    for recorder in recorders {
        let mut r = lock(recorder);
        for (merged, samples) in timings.iter_mut().zip(r.timings.iter_mut()) {
            if !samples.is_empty() {
                samples.add_to(merged.get_or_insert_with(Samples::histogram).target());
            }
            samples.reset();
        }
        for (node, n) in std::mem::take(&mut r.opened) {
            *opened.entry(node.to_string()).or_default() += n;
        }
        for (node, n) in std::mem::take(&mut r.samples) {
            *node_samples.entry(node.to_string()).or_default() += n;
        }
        for (total, n) in counters.iter_mut().zip(std::mem::take(&mut r.counters)) {
            *total += n;
        }
        busy_us += std::mem::take(&mut r.busy_us);
        let Some(node) = r.node.clone() else { continue };
        if r.connected {
            for link in if r.links.is_empty() { std::slice::from_ref(&node) } else { &r.links[..] } {
                *connections.entry(link.to_string()).or_default() += 1;
            }
        }
        late_starts += r.late_starts;
        unsent_starts += r.unsent_starts;
        max_lag_us = max_lag_us.max(r.max_lag_us);
        r.late_starts = 0;
        r.unsent_starts = 0;
        r.max_lag_us = 0;
        let r = &mut *r;
        let current = std::iter::once((&node, &mut r.operations));
        for (node, operations) in current.chain(r.parked.iter_mut().map(|(n, ops)| (&*n, ops))) {
            for (index, op) in operations.iter_mut().enumerate() {
                if op.count == 0 {
                    // A connection quiet since a busy interval lets its
                    // histograms go.
                    op.latency.reset();
                    op.service.reset();
                    continue;
                }
                let target = merged.entry((index, Arc::clone(node))).or_insert_with(OperationRecorder::merged);
                target.count += op.count;
                for (t, e) in target.errors.iter_mut().zip(op.errors) {
                    *t += e;
                }
                for m in &op.messages {
                    add_error_message(&mut target.messages, &m.kind, &m.message, m.count);
                }
                op.latency.add_to(target.latency.target());
                op.service.add_to(target.service.target());
                target.clamped += op.clamped;
                target.sent += op.sent;
                target.received += op.received;
                op.reset();
            }
        }
    }
    let operations = merged
        .into_iter()
        .map(|((index, node), op)| OperationStats {
            operation: operation_names.get(index).copied().unwrap_or("unknown").to_string(),
            node: node.to_string(),
            count: op.count,
            errors: ErrorKind::ALL
                .iter()
                .filter(|kind| op.errors[kind.index()] > 0)
                .map(|kind| (kind.as_str().to_string(), op.errors[kind.index()]))
                .collect(),
            error_messages: op.messages,
            latency: op.latency.encode(),
            service: op.service.encode(),
            clamped: op.clamped,
            bytes_sent: op.sent,
            bytes_received: op.received,
        })
        .collect();
    let report = IntervalReport {
        run_id: run_id.to_string(),
        seq,
        interval,
        warmup,
        operations,
        connections,
        late_starts,
        unsent_starts,
        max_schedule_lag_us: max_lag_us,
        counters: Counter::ALL
            .iter()
            .zip(counters)
            .filter(|(_, n)| *n > 0)
            .map(|(counter, n)| (counter.as_str().to_string(), n))
            .collect(),
        opened,
        node_samples,
        timings: TIMINGS
            .iter()
            .zip(timings)
            .filter_map(|(name, samples)| samples.map(|s| Timing { name: name.to_string(), histogram: s.encode() }))
            .collect(),
        ..IntervalReport::default()
    };
    (report, busy_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_values_and_a_histogram_report_the_same_and_idle_ones_let_theirs_go() {
        for n in [1u64, 31, 32, 33, 500] {
            let mut samples = Samples::new();
            let mut direct = histogram::new_histogram();
            for i in 0..n {
                let value = 1 + i * 37 % 5_000;
                samples.record_n(value, 2);
                histogram::record_clamped_n(&mut direct, value, 2);
            }
            assert!(samples.record_n(histogram::MAX_LATENCY_US + 5, 1), "clamped");
            histogram::record_clamped_n(&mut direct, histogram::MAX_LATENCY_US + 5, 1);
            assert_eq!(samples.encode(), histogram::encode(&direct).expect("encode"), "{n} values");
            let mut merged = histogram::new_histogram();
            samples.add_to(&mut merged);
            assert_eq!(merged, direct);
        }
        // A busy interval keeps its histogram; a quiet one after it lets it go.
        let mut samples = Samples::new();
        (0..100).for_each(|v| {
            samples.record_n(v + 1, 1);
        });
        samples.reset();
        assert!(matches!(samples, Samples::Many(_)), "kept for the next busy interval");
        samples.record_n(5, 1);
        samples.reset();
        assert!(matches!(samples, Samples::Few(ref v) if v.is_empty()), "a quiet interval freed it");
    }

    #[test]
    fn operations_stay_with_the_node_that_served_them_when_the_connection_moves() {
        let r = Recorder::shared(1);
        {
            let mut g = lock(&r);
            g.set_node("n1".into());
            g.record_n(0, 100, 100, None, 3);
            g.set_node("n2".into());
            g.record_n(0, 200, 200, None, 5);
            g.set_node("n1".into());
            g.record_n(0, 100, 100, None, 1);
        }
        let (report, _) = collect(&[Arc::clone(&r)], &["get"], "run", 0, 0, false);
        let counts: Vec<(&str, u64)> = report.operations.iter().map(|o| (o.node.as_str(), o.count)).collect();
        assert_eq!(counts, vec![("n1", 4), ("n2", 5)]);
        let (again, _) = collect(&[r], &["get"], "run", 1, 1, false);
        assert!(again.operations.is_empty(), "everything was reset: {:?}", again.operations);
    }

    #[test]
    fn collection_adds_per_node_and_resets() {
        let a = Recorder::shared(2);
        let b = Recorder::shared(2);
        for (r, node) in [(&a, "n1"), (&b, "n1")] {
            let mut g = lock(r);
            g.set_node(node.into());
            g.connected = true;
            g.record(0, 100, 90, None);
            g.record(1, 200, 150, Some(ErrorKind::Timeout));
        }
        let (report, _) = collect(&[a.clone(), b], &["get", "set"], "r", 4, 2, false);
        assert_eq!((report.seq, report.interval), (4, 2));
        assert_eq!(report.connections.get("n1"), Some(&2));
        assert_eq!(report.operations.len(), 2);
        assert_eq!(report.operations[0].operation, "get");
        assert_eq!(report.operations[0].count, 2);
        assert_eq!(report.operations[1].errors.get("timeout"), Some(&2));
        let decoded = histogram::decode(&report.operations[1].latency).expect("decode");
        assert_eq!(decoded.len(), 2);
        assert_eq!(lock(&a).operations[0].count, 0, "reset after collection");
    }
}
