//! The coordinator's histogram merge, `histogram::add_into` (sparse, only
//! the recorded buckets, for a source of few values; dense otherwise)
//! against `Histogram::add` (every one of the ~23,000 counts), on interval
//! histograms shaped like an agent's: `values` operations a second, most
//! between 100 us and 2 ms, 2% in a tail to 200 ms (and, in the last row,
//! one timeout near 5 s). Both merges must give the same histogram; the
//! ratio is measured in one run. `deploy/bench/histogram_merge.sh` runs it.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use stampede_common::histogram::{self, SPARSE_BELOW, add_dense, add_into, new_histogram};

fn sources(count: usize, values: usize, timeout: bool, seed: u64) -> Vec<hdrhistogram::Histogram<u64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let mut h = new_histogram();
            for _ in 0..values {
                let v = if rng.random_bool(0.02) {
                    rng.random_range(2_000..200_000)
                } else {
                    // Roughly log-uniform between 100 us and 2 ms.
                    (100.0 * 20f64.powf(rng.random::<f64>())) as u64
                };
                histogram::record_clamped(&mut h, v);
            }
            if timeout {
                histogram::record_clamped(&mut h, 5_000_000);
            }
            h
        })
        .collect()
}

type Add =
    fn(&mut hdrhistogram::Histogram<u64>, &hdrhistogram::Histogram<u64>) -> Result<(), histogram::HistogramError>;

/// The fastest of `rounds` rounds, in seconds per add, for each of `adds`:
/// each round merges every source into one histogram with each in turn
/// (interleaved, so that all see the same machine, in a rotating order),
/// and the merged
/// histograms.
fn time(sources: &[hdrhistogram::Histogram<u64>], rounds: usize, adds: &[Add]) -> (Vec<f64>, Vec<Vec<u8>>) {
    let mut targets: Vec<_> = adds.iter().map(|_| new_histogram()).collect();
    let mut best = vec![f64::MAX; adds.len()];
    for round in 0..rounds {
        // Each round in another order: the one after a dense pass finds
        // the caches cold, and each takes that place as often.
        for k in 0..adds.len() {
            let i = (k + round) % adds.len();
            let (add, merged, best) = (adds[i], &mut targets[i], &mut best[i]);
            // A fresh target each time, as a merged interval is: no
            // variant keeps one whose place in memory favours it.
            *merged = new_histogram();
            let started = Instant::now();
            for source in sources {
                add(merged, source).expect("in range");
            }
            *best = best.min(started.elapsed().as_secs_f64() / sources.len() as f64);
        }
    }
    (best, targets.iter().map(|h| histogram::encode(h).expect("encode")).collect())
}

fn main() {
    println!(
        "{:>7} {:>7} {:>7} {:>9} {:>12} {:>15}",
        "values", "timeout", "path", "dense us", "add_into us", "add_into/dense"
    );
    for (values, timeout) in [(20, false), (50, false), (200, false), (1_000, false), (10_000, true)] {
        let sources = sources(200, values, timeout, values as u64);
        let (best, merged) = time(&sources, 30, &[add_dense, add_into]);
        assert_eq!(merged[0], merged[1], "both merges must give the same histogram");
        println!(
            "{values:>7} {:>7} {:>7} {:>9.2} {:>12.2} {:>15.3}",
            if timeout { "5 s" } else { "-" },
            if (values as u64) < SPARSE_BELOW { "sparse" } else { "dense" },
            best[0] * 1e6,
            best[1] * 1e6,
            best[1] / best[0]
        );
    }
    println!(
        "us per add of one interval histogram (fastest of 30 rounds); lower is better; both merges gave the same histogram."
    );
    println!();
    from_the_wire();
}

/// How many merged histograms the coordinator adds one series of a report
/// into: the run's, the operation's (latency and service), the node's,
/// the window's (operation latency and service, node) and the interval's.
const TARGETS: usize = 8;

/// The coordinator's whole path for one series of a report: V2-deflate
/// bytes decoded, then added into [`TARGETS`] merged histograms, three
/// ways: dense (`histogram::decode`, then `add_into` a `Histogram`), sparse
/// (`histogram::decode_sparse`, then `Sparse::add_to` a `Histogram`, one
/// `record_n` per bucket) and by index (`decode_sparse`, then `Dense::add`,
/// what the coordinator does). Fastest of 20 rounds, interleaved; the
/// merged histograms must be equal. The last column is the decode alone.
fn from_the_wire() {
    println!(
        "{:>7} {:>9} {:>9} {:>10} {:>10} {:>13} {:>12} {:>10}",
        "values", "buckets", "dense us", "sparse us", "index us", "sparse/dense", "index/dense", "decode us"
    );
    for (values, timeout) in [(20, false), (200, false), (2_000, false), (10_000, true)] {
        let wire: Vec<Vec<u8>> = sources(100, values, timeout, 7 + values as u64)
            .iter()
            .map(|h| histogram::encode(h).expect("encode"))
            .collect();
        let buckets =
            wire.iter().map(|b| histogram::decode_sparse(b).expect("decode").buckets()).sum::<usize>() / wire.len();
        let mut best = [f64::MAX; 4];
        let mut merged = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..20 {
            for k in 0..4 {
                let which = (k + round) % 4;
                let mut targets: Vec<_> = (0..TARGETS).map(|_| new_histogram()).collect();
                let mut dense: Vec<_> = (0..TARGETS).map(|_| histogram::Dense::new()).collect();
                let mut decoded = 0;
                let started = Instant::now();
                for bytes in &wire {
                    match which {
                        0 => {
                            let h = histogram::decode(bytes).expect("decode");
                            for t in &mut targets {
                                add_into(t, &h).expect("in range");
                            }
                        }
                        1 => {
                            let h = histogram::decode_sparse(bytes).expect("decode");
                            for t in &mut targets {
                                h.add_to(t).expect("in range");
                            }
                        }
                        2 => {
                            let h = histogram::decode_sparse(bytes).expect("decode");
                            for t in &mut dense {
                                t.add(&h);
                            }
                        }
                        _ => decoded += histogram::decode_sparse(bytes).expect("decode").buckets(),
                    }
                }
                best[which] = best[which].min(started.elapsed().as_secs_f64() / wire.len() as f64);
                assert!(which != 3 || decoded == buckets * wire.len() || decoded > 0);
                if which < 2 {
                    merged[which] = targets.iter().map(|h| histogram::encode(h).expect("encode")).collect::<Vec<_>>();
                } else if which == 2 {
                    merged[2] = dense.iter().map(|h| histogram::encode(&h.to_histogram()).expect("encode")).collect();
                }
            }
        }
        assert_eq!(merged[0], merged[1], "the dense and sparse paths must give the same histograms");
        assert_eq!(merged[0], merged[2], "the dense and index paths must give the same histograms");
        println!(
            "{values:>7} {buckets:>9} {:>9.1} {:>10.1} {:>10.1} {:>13.3} {:>12.3} {:>10.1}",
            best[0] * 1e6,
            best[1] * 1e6,
            best[2] * 1e6,
            best[1] / best[0],
            best[2] / best[0],
            best[3] * 1e6
        );
    }
    println!(
        "us per series of a report: decode its bytes, add into {TARGETS} merged histograms (fastest of 20 rounds); same histograms all three ways."
    );
}
