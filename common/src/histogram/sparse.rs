//! A histogram as its recorded buckets only, read straight from the V2
//! bytes an agent sent.
//!
//! The coordinator adds every series of every report into several merged
//! histograms (the run's, the operation's, the node's, the window's, the
//! interval's). Decoding a report into a dense `Histogram` first allocates
//! and zeroes ~23,000 counts (190 KB at 1 us..1 h, 3 digits), and each
//! `Histogram::add` of it then passes over all of them again, however few
//! buckets the source holds. [`Sparse`] keeps only the `(index, count)`
//! pairs the encoding holds: decoding costs the inflate and one pass over
//! the varints, and an add costs one `record_n` per recorded bucket. The
//! result is the dense sum, count for count (tested below against
//! `Histogram::add`).

use std::io::Read;
use std::sync::OnceLock;

use hdrhistogram::Histogram;

use super::{HistogramError, MAX_LATENCY_US, SIGNIFICANT_DIGITS, decode, new_histogram};

/// HdrHistogram's V2 cookies, each base with the 0x10 word-size bits the
/// crate sets (its serialization module keeps them private).
const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;
/// The V2 header after the cookie: payload length, normalizing offset,
/// digits, lowest and highest value, integer-to-double ratio.
const V2_HEADER: usize = 4 + 4 + 4 + 8 + 8 + 8;

/// Each bucket's highest equivalent value, by index, in the layout of
/// [`new_histogram`]: recording that value lands in that bucket.
fn bucket_values() -> &'static [u64] {
    static VALUES: OnceLock<Vec<u64>> = OnceLock::new();
    VALUES.get_or_init(|| {
        let histogram = new_histogram();
        let buckets = histogram.distinct_values();
        let mut values = Vec::with_capacity(buckets);
        let mut value = 0u64;
        while values.len() < buckets {
            let top = histogram.highest_equivalent(value);
            values.push(top);
            value = top.saturating_add(1);
        }
        values
    })
}

/// The index of the highest bucket a value in range may fall in: the one
/// holding [`MAX_LATENCY_US`] (see [`super::within_range`]).
fn last_index_in_range() -> usize {
    static LAST: OnceLock<usize> = OnceLock::new();
    *LAST.get_or_init(|| bucket_values().partition_point(|v| *v < MAX_LATENCY_US))
}

/// The recorded buckets of one histogram in Stampede's layout, lowest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sparse {
    buckets: Vec<(u32, u64)>,
    len: u64,
}

impl Sparse {
    /// How many values it holds.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many buckets hold a value.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The buckets of a dense histogram (of any layout; values beyond the
    /// hour are refused, as [`super::add_into`] refuses them).
    pub fn of(histogram: &Histogram<u64>) -> Result<Self, HistogramError> {
        if !super::within_range(histogram) {
            return Err(HistogramError::Range);
        }
        let values = bucket_values();
        let mut sparse = Self::default();
        for bucket in histogram.iter_recorded() {
            // The bucket's lowest value, where `Histogram::add` records a
            // bucket of another layout.
            let lowest = histogram.lowest_equivalent(bucket.value_iterated_to());
            let index = values.partition_point(|v| *v < lowest).min(last_index_in_range());
            sparse.push(index, bucket.count_at_value());
        }
        // Buckets of another layout may share one of ours: fold them.
        sparse.buckets.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = earlier.1.saturating_add(later.1);
            }
            same
        });
        Ok(sparse)
    }

    fn push(&mut self, index: usize, count: u64) {
        if count > 0 {
            self.buckets.push((index as u32, count));
            self.len = self.len.saturating_add(count);
        }
    }

    /// Adds every value into `target`, a histogram made by
    /// [`new_histogram`] (or one holding its range).
    pub fn add_to(&self, target: &mut Histogram<u64>) -> Result<(), HistogramError> {
        let values = bucket_values();
        for &(index, count) in &self.buckets {
            target.record_n(values[index as usize], count).map_err(|_| HistogramError::Range)?;
        }
        Ok(())
    }

    /// A dense histogram of the same values.
    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut histogram = new_histogram();
        // Every index is within new_histogram's range (checked on decode).
        let _ = self.add_to(&mut histogram);
        histogram
    }
}

/// A merged histogram as a bare array of counts by bucket index, in the
/// layout of [`new_histogram`]: what the coordinator adds every report
/// into. Adding a [`Sparse`] is one addition per recorded bucket (no
/// value-to-index arithmetic, no min/max/total bookkeeping per value, as
/// `record_n` does); the dense `Histogram` is made only when a figure is
/// read ([`Self::to_histogram`]). The counts are allocated on the first
/// value, so an empty one costs nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dense {
    counts: Vec<u64>,
    len: u64,
    /// The lowest and highest index holding a value (meaningful when
    /// `len > 0`), so that reading and absorbing pass over only that span.
    low: usize,
    high: usize,
}

impl Dense {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many values it holds.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn span(&mut self, low: usize, high: usize) {
        if self.counts.is_empty() {
            self.counts = vec![0; bucket_values().len()];
            (self.low, self.high) = (low, high);
        } else {
            self.low = self.low.min(low);
            self.high = self.high.max(high);
        }
    }

    /// Adds every value of `sparse`.
    pub fn add(&mut self, sparse: &Sparse) {
        let (Some(first), Some(last)) = (sparse.buckets.first(), sparse.buckets.last()) else {
            return;
        };
        self.span(first.0 as usize, last.0 as usize);
        for &(index, count) in &sparse.buckets {
            // Every index is within the layout (checked on decode).
            if let Some(slot) = self.counts.get_mut(index as usize) {
                *slot = slot.saturating_add(count);
            }
        }
        self.len = self.len.saturating_add(sparse.len);
    }

    /// Adds every value of another merged histogram.
    pub fn absorb(&mut self, other: &Dense) {
        if other.is_empty() {
            return;
        }
        self.span(other.low, other.high);
        let span = other.low..=other.high;
        for (into, from) in self.counts[span.clone()].iter_mut().zip(&other.counts[span]) {
            *into = into.saturating_add(*from);
        }
        self.len = self.len.saturating_add(other.len);
    }

    /// Adds a dense histogram (of any layout; values beyond the hour are
    /// refused).
    pub fn add_histogram(&mut self, histogram: &Histogram<u64>) -> Result<(), HistogramError> {
        self.add(&Sparse::of(histogram)?);
        Ok(())
    }

    /// The recorded buckets, lowest first.
    pub fn to_sparse(&self) -> Sparse {
        let mut sparse = Sparse::default();
        if !self.is_empty() {
            for (index, &count) in self.counts.iter().enumerate().take(self.high + 1).skip(self.low) {
                sparse.push(index, count);
            }
        }
        sparse
    }

    /// The same values as a `Histogram` of [`new_histogram`]'s layout:
    /// count for count what adding each source into one would give.
    pub fn to_histogram(&self) -> Histogram<u64> {
        self.to_sparse().to_histogram()
    }
}

/// Reads V2 bytes (deflated or not; empty is an empty histogram) into
/// their recorded buckets. Corrupt bytes, a histogram of another precision
/// than Stampede's that cannot be read, and values beyond the hour are
/// errors, as they are for [`decode`] and [`super::add_into`].
pub fn decode_sparse(bytes: &[u8]) -> Result<Sparse, HistogramError> {
    if bytes.is_empty() {
        return Ok(Sparse::default());
    }
    match read_u32(bytes, 0)? {
        V2_COOKIE => decode_plain(bytes, bytes),
        V2_COMPRESSED_COOKIE => {
            let length = read_u32(bytes, 4)? as usize;
            let deflated = bytes.get(8..8usize.saturating_add(length)).ok_or_else(|| short("deflated payload"))?;
            INFLATED.with(|buffer| {
                let mut inflated = buffer.take();
                inflated.clear();
                // The largest V2 encoding of Stampede's layout: every count a
                // 9-byte varint. More than that is not one of ours.
                let limit = (4 + V2_HEADER + bucket_values().len() * 9 + 1) as u64;
                let result = flate2::read::ZlibDecoder::new(deflated)
                    .take(limit)
                    .read_to_end(&mut inflated)
                    .map_err(|e| HistogramError::Decode(format!("inflating: {e}")))
                    .and_then(|n| {
                        if n as u64 >= limit {
                            return Err(HistogramError::Decode("the inflated histogram is too long".into()));
                        }
                        if read_u32(&inflated, 0)? != V2_COOKIE {
                            return Err(HistogramError::Decode("the inflated payload is not V2".into()));
                        }
                        decode_plain(&inflated, bytes)
                    });
                buffer.set(inflated);
                result
            })
        }
        _ => Err(HistogramError::Decode("the cookie is not HdrHistogram V2's".into())),
    }
}

thread_local! {
    /// The inflated bytes of the last histogram decoded on this thread,
    /// kept so that decoding allocates only the buckets it returns.
    static INFLATED: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

fn short(what: &str) -> HistogramError {
    HistogramError::Decode(format!("the histogram bytes end inside the {what}"))
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, HistogramError> {
    let b = bytes.get(at..at + 4).ok_or_else(|| short("header"))?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(bytes: &[u8], at: usize) -> Result<u64, HistogramError> {
    let b = bytes.get(at..at + 8).ok_or_else(|| short("header"))?;
    Ok(u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

/// `plain` starts with the V2 cookie; `original` is what was sent, read by
/// hdrhistogram's own decoder when its layout is not Stampede's.
fn decode_plain(plain: &[u8], original: &[u8]) -> Result<Sparse, HistogramError> {
    let payload_length = read_u32(plain, 4)? as usize;
    let normalizing_offset = read_u32(plain, 8)?;
    let digits = read_u32(plain, 12)?;
    let lowest = read_u64(plain, 16)?;
    let ratio = f64::from_bits(read_u64(plain, 32)?);
    if normalizing_offset != 0 || ratio != 1.0 {
        return Err(HistogramError::Decode("the histogram uses V2 features Stampede does not".into()));
    }
    if digits != u32::from(SIGNIFICANT_DIGITS) || lowest != 1 {
        // Not an agent's layout: the buckets do not line up with ours.
        return Sparse::of(&decode(original)?);
    }
    let start = 4 + V2_HEADER;
    let payload = plain.get(start..start.saturating_add(payload_length)).ok_or_else(|| short("counts"))?;
    let last = last_index_in_range();
    // Each bucket takes at least one byte, so this is the most there are:
    // one allocation, no regrowing.
    let mut buckets = Vec::with_capacity(payload.len().min(last + 1));
    let mut len = 0u64;
    let (mut at, mut index) = (0usize, 0usize);
    while let Some(&first) = payload.get(at) {
        // Most counts fit one byte: read those without the general loop.
        let raw = if first < 0x80 {
            at += 1;
            u64::from(first)
        } else {
            let (raw, used) = varint(&payload[at..]).ok_or_else(|| short("counts"))?;
            at += used;
            raw
        };
        // ZigZag: a negative number is a run of empty buckets.
        let number = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
        if number < 0 {
            index = index.saturating_add(number.unsigned_abs() as usize);
            continue;
        }
        if number > 0 {
            if index > last {
                return Err(HistogramError::Range);
            }
            buckets.push((index as u32, number as u64));
            len = len.saturating_add(number as u64);
        }
        index += 1;
    }
    Ok(Sparse { buckets, len })
}

/// One LEB128 varint as HdrHistogram writes it: at most 9 bytes, the
/// ninth with all 8 bits.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        if i == 8 {
            return Some((value | (u64::from(b) << 56), 9));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{add_dense, encode, record_clamped_n};
    use super::*;

    #[test]
    fn each_bucket_value_lands_in_its_own_bucket() {
        let values = bucket_values();
        assert_eq!(values.len(), new_histogram().distinct_values());
        assert!(values.windows(2).all(|w| w[0] < w[1]));
        for index in (0..values.len()).step_by(97).chain([values.len() - 1, last_index_in_range()]) {
            let mut h = new_histogram();
            h.record(values[index]).expect("in range");
            let (at, bucket) = h.iter_all().enumerate().find(|(_, b)| b.count_at_value() > 0).expect("recorded");
            assert_eq!((at, bucket.value_iterated_to()), (index, values[index]));
        }
        assert_eq!(values[last_index_in_range()], new_histogram().highest_equivalent(MAX_LATENCY_US));
    }

    #[test]
    fn other_layouts_and_bad_bytes_are_read_or_refused_never_a_panic() {
        let mut coarse = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 2).expect("bounds");
        coarse.record_n(1234, 3).expect("record");
        coarse.record_n(5, 2).expect("record");
        let sparse = decode_sparse(&encode(&coarse).expect("encode")).expect("another precision is read");
        let mut dense = new_histogram();
        add_dense(&mut dense, &coarse).expect("add");
        assert_eq!(encode(&sparse.to_histogram()).expect("encode"), encode(&dense).expect("encode"));
        assert_eq!(sparse.len(), 5);
        let mut beyond = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US * 4, 3).expect("bounds");
        beyond.record(MAX_LATENCY_US * 3).expect("record");
        assert!(matches!(decode_sparse(&encode(&beyond).expect("encode")), Err(HistogramError::Range)));
        let good = encode(&dense).expect("encode");
        for cut in 0..good.len() {
            assert!(decode_sparse(&good[..cut]).is_err() || cut == 0, "cut at {cut}");
        }
        assert!(decode_sparse(b"definitely not a histogram").is_err());
    }

    #[test]
    fn dense_sums_equal_histogram_sums() {
        let mut parts = Vec::new();
        for seed in 0..6u64 {
            let mut h = new_histogram();
            for i in 0..(200 * seed + 1) {
                record_clamped_n(&mut h, (i * 7919 + seed * 104_729) % (MAX_LATENCY_US / (seed + 1)) + 1, 1 + i % 3);
            }
            parts.push(h);
        }
        let (mut dense, mut other, mut sum) = (Dense::new(), Dense::new(), new_histogram());
        assert!(dense.is_empty() && dense.to_histogram().is_empty());
        for (i, part) in parts.iter().enumerate() {
            let sparse = decode_sparse(&encode(part).expect("encode")).expect("decode");
            if i % 2 == 0 {
                dense.add(&sparse)
            } else {
                other.add_histogram(part).expect("in range")
            }
            add_dense(&mut sum, part).expect("add");
        }
        dense.absorb(&other);
        dense.absorb(&Dense::new());
        assert_eq!(dense.len(), sum.len());
        let merged = dense.to_histogram();
        assert_eq!(encode(&merged).expect("encode"), encode(&sum).expect("encode"));
        assert_eq!(
            (merged.min_nz(), merged.max(), merged.mean().to_bits()),
            (sum.min_nz(), sum.max(), sum.mean().to_bits())
        );
        assert_eq!(dense.to_sparse(), Sparse::of(&sum).expect("of"));
    }

    proptest::proptest! {
        #[test]
        fn adding_the_sparse_buckets_equals_adding_the_histogram(
            parts in proptest::collection::vec(
                proptest::collection::vec((0u64..MAX_LATENCY_US * 2, 1u64..100_000), 0..300),
                1..5,
            ),
            plain in proptest::bool::ANY,
        ) {
            let (mut sparse_sum, mut dense_sum) = (new_histogram(), new_histogram());
            record_clamped_n(&mut sparse_sum, 250, 1);
            record_clamped_n(&mut dense_sum, 250, 1);
            for values in parts {
                let mut part = new_histogram();
                for (v, n) in values {
                    record_clamped_n(&mut part, v, n);
                }
                let bytes = if plain {
                    let mut bytes = Vec::new();
                    hdrhistogram::serialization::Serializer::serialize(
                        &mut hdrhistogram::serialization::V2Serializer::new(), &part, &mut bytes,
                    ).expect("encode");
                    bytes
                } else {
                    encode(&part).expect("encode")
                };
                let sparse = decode_sparse(&bytes).expect("decode");
                proptest::prop_assert_eq!(sparse.len(), part.len());
                proptest::prop_assert_eq!(&sparse, &Sparse::of(&part).expect("of"));
                sparse.add_to(&mut sparse_sum).expect("sparse");
                add_dense(&mut dense_sum, &part).expect("dense");
            }
            proptest::prop_assert_eq!(encode(&sparse_sum).expect("encode"), encode(&dense_sum).expect("encode"));
            proptest::prop_assert_eq!((sparse_sum.len(), sparse_sum.min_nz(), sparse_sum.max()), (dense_sum.len(), dense_sum.min_nz(), dense_sum.max()));
            proptest::prop_assert_eq!(sparse_sum.mean().to_bits(), dense_sum.mean().to_bits());
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200), cookie in 0u8..3) {
            let mut bytes = bytes;
            if cookie > 0 && bytes.len() >= 4 {
                let c = if cookie == 1 { V2_COOKIE } else { V2_COMPRESSED_COOKIE };
                bytes[..4].copy_from_slice(&c.to_be_bytes());
            }
            let _ = decode_sparse(&bytes);
        }
    }
}
