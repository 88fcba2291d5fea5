//! Latency histograms and their wire codec.
//!
//! Every histogram in Stampede records microseconds from 1 us to one hour
//! with 3 significant digits. Histograms travel as HdrHistogram V2 + deflate
//! bytes and are *added* on the coordinator, so merged percentiles are exact;
//! percentiles are never averaged.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

mod sparse;
pub use sparse::{Dense, Sparse, decode_sparse};

/// Largest value a histogram holds: one hour in microseconds.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// Errors of the histogram codec.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram bytes are not a valid HdrHistogram V2 encoding: {0}")]
    Decode(String),
    #[error("histogram could not be encoded: {0}")]
    Encode(String),
    #[error("histogram values exceed the supported range (1us to 1h)")]
    Range,
}

/// A new empty latency histogram with Stampede's range and precision.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's preconditions.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS).unwrap_or_else(|_| unreachable_bounds())
}

#[cold]
fn unreachable_bounds() -> Histogram<u64> {
    // new_with_bounds only fails for low < 1, high < 2 * low or sigfig > 5.
    Histogram::new(SIGNIFICANT_DIGITS).unwrap_or_else(|_| std::process::abort())
}

/// Records one value, clamping it into the supported range. Returns true when
/// the value had to be clamped, so the caller can count it.
#[inline]
pub fn record_clamped(histogram: &mut Histogram<u64>, micros: u64) -> bool {
    let clamped = micros.clamp(1, MAX_LATENCY_US);
    // Cannot fail: the value is within the histogram's bounds.
    let _ = histogram.record(clamped);
    clamped != micros && micros > MAX_LATENCY_US
}

/// Records `count` samples of one value, clamping like [`record_clamped`].
#[inline]
pub fn record_clamped_n(histogram: &mut Histogram<u64>, micros: u64, count: u64) -> bool {
    let clamped = micros.clamp(1, MAX_LATENCY_US);
    // Cannot fail: the value is within the histogram's bounds.
    let _ = histogram.record_n(clamped, count);
    micros > MAX_LATENCY_US
}

/// Whether every value of `histogram` is within 1 us..1 h. A value clamped
/// to the hour lands in the hour's bucket, whose highest equivalent value
/// (what `max()` answers) lies a little above the hour: that is in range.
pub fn within_range(histogram: &Histogram<u64>) -> bool {
    histogram.is_empty() || histogram.max() <= histogram.highest_equivalent(MAX_LATENCY_US)
}

/// Encodes a histogram as HdrHistogram V2 + deflate bytes.
pub fn encode(histogram: &Histogram<u64>) -> Result<Vec<u8>, HistogramError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|e| HistogramError::Encode(format!("{e:?}")))?;
    Ok(bytes)
}

/// Decodes V2 (deflated or not) bytes. Empty input is an empty histogram.
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, HistogramError> {
    if bytes.is_empty() {
        return Ok(new_histogram());
    }
    let mut reader = bytes;
    let decoded: Histogram<u64> =
        Deserializer::new().deserialize(&mut reader).map_err(|e| HistogramError::Decode(format!("{e:?}")))?;
    Ok(decoded)
}

/// Adds `source` into `target`; fails only when `source` holds values outside
/// Stampede's range (a foreign or corrupt histogram).
///
/// A source of few values is added sparsely ([`add_sparse`]), the others
/// densely ([`add_dense`]): `Histogram::add` passes over every one of the
/// ~23,000 counts of a 1 us..1 h, 3-digit histogram however few values the
/// source holds (about 20 us here), while hdrhistogram's recorded-value
/// iterator costs more per bucket than the dense pass saves once a source
/// holds a few hundred values (`deploy/bench/histogram_merge.sh`, figures
/// in `deploy/bench/RESULTS.md`). Both give the same histogram, count for
/// count.
pub fn add_into(target: &mut Histogram<u64>, source: &Histogram<u64>) -> Result<(), HistogramError> {
    if source.len() < SPARSE_BELOW { add_sparse(target, source) } else { add_dense(target, source) }
}

/// Sources with fewer values than this are added sparsely.
pub const SPARSE_BELOW: u64 = 64;

/// Adds only `source`'s recorded buckets, each count recorded at the
/// bucket's highest equivalent value (which falls in the same bucket), so
/// the result is the dense sum count for count (min, max and mean too).
pub fn add_sparse(target: &mut Histogram<u64>, source: &Histogram<u64>) -> Result<(), HistogramError> {
    if source.is_empty() {
        return Ok(());
    }
    if !within_range(source) {
        return Err(HistogramError::Range);
    }
    for bucket in source.iter_recorded() {
        target.record_n(bucket.value_iterated_to(), bucket.count_at_value()).map_err(|_| HistogramError::Range)?;
    }
    Ok(())
}

/// `Histogram::add`: every count of `source`, visited densely.
pub fn add_dense(target: &mut Histogram<u64>, source: &Histogram<u64>) -> Result<(), HistogramError> {
    if source.is_empty() {
        return Ok(());
    }
    if !within_range(source) {
        return Err(HistogramError::Range);
    }
    target.add(source).map_err(|_| HistogramError::Range)
}

/// The summary figures the report shows for one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    /// Added after the first reports: 0 in reports written before it.
    #[serde(default)]
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl LatencySummary {
    /// Summarises a histogram; all zero when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            min: histogram.min(),
            mean: (histogram.mean() * 10.0).round() / 10.0,
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p95: histogram.value_at_quantile(0.95),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            p9999: histogram.value_at_quantile(0.9999),
            max: histogram.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn encode_then_decode_keeps_every_count() {
        let mut h = new_histogram();
        for v in [1, 5, 100, 2500, 1_000_000] {
            h.record(v).expect("in range");
        }
        let back = decode(&encode(&h).expect("encode")).expect("decode");
        assert_eq!(back, h);
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        assert!(decode(b"definitely not a histogram").is_err());
        let mut bytes = encode(&new_histogram()).expect("encode");
        bytes.truncate(bytes.len() / 2);
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn out_of_range_values_are_clamped_and_reported() {
        let mut h = new_histogram();
        assert!(record_clamped(&mut h, MAX_LATENCY_US * 10));
        assert!(!record_clamped(&mut h, 0));
        assert!(!record_clamped(&mut h, 10));
        assert_eq!(h.len(), 3);
        assert!(h.max() >= MAX_LATENCY_US);
        // A clamped value is in range: it merges.
        assert!(within_range(&h));
        let mut merged = new_histogram();
        add_into(&mut merged, &h).expect("a clamped value merges");
        add_dense(&mut merged, &h).expect("densely too");
        assert_eq!((merged.len(), merged.max()), (6, h.max()));
        let mut beyond = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US * 4, 3).expect("bounds");
        beyond.record(MAX_LATENCY_US * 3).expect("record");
        assert!(!within_range(&beyond), "beyond the hour");
        assert!(add_sparse(&mut merged, &beyond).is_err() && add_dense(&mut merged, &beyond).is_err(), "is refused");
    }

    #[test]
    fn merged_agent_histograms_equal_one_histogram_of_all_samples() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut all = new_histogram();
        let mut merged = new_histogram();
        for _agent in 0..5 {
            let mut part = new_histogram();
            for _ in 0..20_000 {
                let v =
                    if rng.random_bool(0.01) { rng.random_range(10_000..2_000_000) } else { rng.random_range(20..900) };
                record_clamped(&mut part, v);
                record_clamped(&mut all, v);
            }
            let wire = encode(&part).expect("encode");
            add_into(&mut merged, &decode(&wire).expect("decode")).expect("add");
        }
        assert_eq!(merged.len(), all.len());
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(merged.value_at_quantile(q), all.value_at_quantile(q), "q={q}");
        }
        assert_eq!(LatencySummary::of(&merged), LatencySummary::of(&all));
    }

    proptest::proptest! {
        #[test]
        fn the_sparse_merge_equals_the_dense_one_count_for_count(
            parts in proptest::collection::vec(
                proptest::collection::vec((0u64..MAX_LATENCY_US * 2, 1u64..1_000), 0..200),
                1..6,
            ),
        ) {
            let (mut sparse, mut dense) = (new_histogram(), new_histogram());
            // Both start from something, as a merged interval does.
            record_clamped(&mut sparse, 250);
            record_clamped(&mut dense, 250);
            for values in parts {
                let mut part = new_histogram();
                for (v, n) in values {
                    record_clamped_n(&mut part, v, n);
                }
                add_sparse(&mut sparse, &part).expect("sparse");
                add_dense(&mut dense, &part).expect("dense");
            }
            proptest::prop_assert_eq!(encode(&sparse).expect("encode"), encode(&dense).expect("encode"));
            proptest::prop_assert_eq!((sparse.len(), sparse.min_nz(), sparse.max()), (dense.len(), dense.min_nz(), dense.max()));
            proptest::prop_assert_eq!(sparse.mean().to_bits(), dense.mean().to_bits());
            proptest::prop_assert_eq!(LatencySummary::of(&sparse), LatencySummary::of(&dense));
        }
    }
}
