//! The `kv` workload: GET with probability `read_ratio`, SET otherwise, on
//! keys drawn uniformly or from a Zipf distribution over the agent's range.

use rand::Rng;
use rand_distr::{Distribution, Zipf};
use stampede_common::scenario::{KeyDistribution, KvWorkload};

use super::Operation;

pub struct KvGenerator {
    read_ratio: f64,
    key_start: u64,
    key_count: u64,
    zipf: Option<Zipf<f64>>,
}

impl KvGenerator {
    /// A generator over keys `[key_start, key_end)`; an empty range (more
    /// agents than keys) falls back to the whole key space.
    pub fn new(workload: &KvWorkload, key_start: u64, key_end: u64) -> Self {
        let (key_start, key_count) =
            if key_end > key_start { (key_start, key_end - key_start) } else { (0, workload.keys.max(1)) };
        let zipf = match workload.key_distribution {
            KeyDistribution::Uniform => None,
            // Validation guarantees a positive exponent and at least one key.
            KeyDistribution::Zipfian { exponent } => Zipf::new(key_count as f64, exponent).ok(),
        };
        Self { read_ratio: workload.read_ratio, key_start, key_count, zipf }
    }

    pub fn next(&self, rng: &mut impl Rng) -> Operation {
        let offset = match &self.zipf {
            // Zipf yields ranks 1..=n; rank 1 is the most popular key.
            Some(zipf) => (zipf.sample(rng) as u64).saturating_sub(1).min(self.key_count - 1),
            None => rng.random_range(0..self.key_count),
        };
        let key = self.key_start + offset;
        if rng.random_bool(self.read_ratio) { Operation::Get { key } } else { Operation::Set { key } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn workload(read_ratio: f64, distribution: KeyDistribution) -> KvWorkload {
        KvWorkload { read_ratio, keys: 1000, key_distribution: distribution, value_size: 10, key_prefix: "k:".into() }
    }

    #[test]
    fn keys_stay_in_range_and_reads_follow_the_ratio() {
        let generator = KvGenerator::new(&workload(0.9, KeyDistribution::Uniform), 200, 300);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut reads = 0;
        for _ in 0..10_000 {
            let op = generator.next(&mut rng);
            let (Operation::Get { key } | Operation::Set { key }) = op;
            assert!((200..300).contains(&key));
            reads += usize::from(matches!(op, Operation::Get { .. }));
        }
        assert!((8_800..9_200).contains(&reads), "{reads}");
    }

    #[test]
    fn zipfian_keys_favour_the_first_ranks() {
        let generator = KvGenerator::new(&workload(1.0, KeyDistribution::Zipfian { exponent: 1.2 }), 0, 1000);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(2);
        let hot =
            (0..10_000).filter(|_| matches!(generator.next(&mut rng), Operation::Get { key } if key < 10)).count();
        assert!(hot > 5_000, "{hot}");
    }
}
