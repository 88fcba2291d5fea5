//! Operation generators. A workload turns a random stream into operations
//! for one agent's share of the key space; it never touches the network.
//! Drivers turn operations into requests (`drivers`), the runner times them.

pub mod values;

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use rand_distr::{Distribution, Zipf};
use stampede_common::scenario::{KeyDistribution, Workload};

/// What one operation does. Keys, rooms, channels and hosts are numbers in
/// the agent's range; drivers format them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Get(u64),
    Set(u64),
    Incr(u64),
    LPush(u64),
    HSet(u64),
    /// Read-through cache: GET, and on a miss SET with the TTL.
    CacheRead(u64),
    /// LPUSH a message to a room and LTRIM it to its history.
    ChatPost(u64),
    /// LRANGE one page of a room's history.
    ChatHistory(u64),
    Publish(u64),
    /// Send a request to a subject and wait for its reply.
    Request(u64),
    /// Send a frame and wait for it to come back.
    Echo,
    /// Insert batch number `n` of this agent (rows follow from `n`).
    Insert(u64),
    Query(QueryKind, u64),
    /// Open a connection, run the pool query, close it.
    Cycle,
    /// Delete every key a key-value workload writes for this number
    /// (cleanup after the run).
    Delete(u64),
}

/// The queries of the `query` workload, in `QUERY_OPERATIONS` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// Time-bucketed aggregation over the last hour.
    Bucket,
    /// Latest row per host (or per region on CrateDB).
    LastPoint,
    /// Rows of one host in a time range.
    Range,
}

/// One operation; `index` is its position in `Workload::operations()`,
/// under which it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub index: u8,
    pub action: Action,
}

impl Operation {
    pub fn index(&self) -> usize {
        usize::from(self.index)
    }
}

/// Picks numbers from the agent's range, uniformly or Zipf-distributed.
struct Picker {
    start: u64,
    count: u64,
    zipf: Option<Zipf<f64>>,
}

impl Picker {
    /// Over `[start, end)`; an empty range (more agents than keys) falls
    /// back to the whole space of `total`.
    fn new(start: u64, end: u64, total: u64, distribution: KeyDistribution) -> Self {
        let (start, count) = if end > start { (start, end - start) } else { (0, total.max(1)) };
        let zipf = match distribution {
            KeyDistribution::Uniform => None,
            // Validation guarantees a positive exponent and at least one key.
            KeyDistribution::Zipfian { exponent } => Zipf::new(count as f64, exponent).ok(),
        };
        Self { start, count, zipf }
    }

    fn pick(&self, rng: &mut impl Rng) -> u64 {
        let offset = match &self.zipf {
            // Zipf yields ranks 1..=n; rank 1 is the most popular key.
            Some(zipf) => (zipf.sample(rng) as u64).saturating_sub(1).min(self.count - 1),
            None => rng.random_range(0..self.count),
        };
        self.start + offset
    }
}

/// A weighted choice among a workload's operations.
struct Weights {
    cumulative: Vec<f64>,
}

impl Weights {
    fn new(weights: &[f64]) -> Self {
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                sum += w / total;
                sum
            })
            .collect();
        Self { cumulative }
    }

    fn pick(&self, rng: &mut impl Rng) -> u8 {
        let x: f64 = rng.random();
        let last = self.cumulative.len().saturating_sub(1);
        // Operations with weight 0 have an empty interval and are never chosen.
        let index = self.cumulative.iter().position(|c| x < *c).unwrap_or(last);
        index as u8
    }
}

enum Shape {
    Kv { read_ratio: f64 },
    Mixed(Weights),
    Cache,
    Chat { read_ratio: f64 },
    Pubsub,
    Request,
    Echo,
    Batches,
    Query(Weights),
    Pool,
}

/// Produces the operations of one agent. Shared by all its slots.
pub struct Generator {
    shape: Shape,
    picker: Picker,
    next_batch: AtomicU64,
}

impl Generator {
    pub fn new(workload: &Workload, start: u64, end: u64) -> Self {
        let uniform = KeyDistribution::Uniform;
        let total = workload.key_space();
        let (shape, distribution) = match workload {
            Workload::Kv(w) => (Shape::Kv { read_ratio: w.read_ratio }, w.space.distribution),
            Workload::Mixed(w) => (Shape::Mixed(Weights::new(&w.weights)), w.space.distribution),
            Workload::Cache(w) => (Shape::Cache, w.space.distribution),
            Workload::Chat(w) => (Shape::Chat { read_ratio: w.read_ratio }, uniform),
            // Over WebSocket a chat only posts; its members receive.
            Workload::Room(_) => (Shape::Chat { read_ratio: 0.0 }, uniform),
            Workload::Echo(_) => (Shape::Echo, uniform),
            Workload::Pubsub(_) => (Shape::Pubsub, uniform),
            Workload::Request(_) => (Shape::Request, uniform),
            Workload::Metrics(_) | Workload::Records(_) | Workload::Write(_) => (Shape::Batches, uniform),
            Workload::Query(w) => (Shape::Query(Weights::new(&w.weights)), uniform),
            Workload::Pool(_) => (Shape::Pool, uniform),
        };
        Self { shape, picker: Picker::new(start, end, total, distribution), next_batch: AtomicU64::new(0) }
    }

    /// The next operation, chosen by the workload's mix.
    pub fn next(&self, rng: &mut impl Rng) -> Operation {
        let index = match &self.shape {
            Shape::Kv { read_ratio } => u8::from(!rng.random_bool(*read_ratio)),
            Shape::Chat { read_ratio } => u8::from(rng.random_bool(*read_ratio)),
            Shape::Mixed(weights) | Shape::Query(weights) => weights.pick(rng),
            Shape::Cache | Shape::Pubsub | Shape::Request | Shape::Echo | Shape::Batches | Shape::Pool => 0,
        };
        self.next_of(index, rng)
    }

    /// The next operation of kind `index` (its position in
    /// `Workload::operations()`): what a per-operation count chose.
    pub fn next_of(&self, index: u8, rng: &mut impl Rng) -> Operation {
        let action = match &self.shape {
            Shape::Kv { .. } => {
                let key = self.picker.pick(rng);
                if index == 0 { Action::Get(key) } else { Action::Set(key) }
            }
            Shape::Mixed(_) => {
                let key = self.picker.pick(rng);
                match index {
                    0 => Action::Set(key),
                    1 => Action::Get(key),
                    2 => Action::Incr(key),
                    3 => Action::LPush(key),
                    _ => Action::HSet(key),
                }
            }
            Shape::Cache => Action::CacheRead(self.picker.pick(rng)),
            Shape::Chat { .. } => {
                let room = self.picker.pick(rng);
                if index == 1 { Action::ChatHistory(room) } else { Action::ChatPost(room) }
            }
            Shape::Pubsub => Action::Publish(self.picker.pick(rng)),
            Shape::Request => Action::Request(self.picker.pick(rng)),
            Shape::Echo => Action::Echo,
            Shape::Batches => Action::Insert(self.next_batch.fetch_add(1, Ordering::Relaxed)),
            Shape::Query(_) => {
                let kind = match index {
                    0 => QueryKind::Bucket,
                    1 => QueryKind::LastPoint,
                    _ => QueryKind::Range,
                };
                Action::Query(kind, self.picker.pick(rng))
            }
            Shape::Pool => Action::Cycle,
        };
        let index = match &self.shape {
            Shape::Kv { .. } | Shape::Chat { .. } => index.min(1),
            Shape::Mixed(_) => index.min(4),
            Shape::Query(_) => index.min(2),
            _ => 0,
        };
        Operation { index, action }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use stampede_common::Scenario;

    fn workload(text: &str) -> Workload {
        let scenario = format!(
            "name: t\nduration: 1s\ntarget:\n  kind: redis\n  endpoints: [\"h:1\"]\nworkload:\n  keys: 1000\n{text}"
        );
        Scenario::parse(&scenario).expect("valid").workload
    }

    #[test]
    fn keys_stay_in_range_and_reads_follow_the_ratio() {
        let generator = Generator::new(&workload("  kind: kv\n  read_ratio: 0.9\n"), 200, 300);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut reads = 0;
        for _ in 0..10_000 {
            let op = generator.next(&mut rng);
            let (Action::Get(key) | Action::Set(key)) = op.action else { panic!("{op:?}") };
            assert!((200..300).contains(&key));
            reads += usize::from(op.index == 0);
        }
        assert!((8_800..9_200).contains(&reads), "{reads}");
    }

    #[test]
    fn zipfian_keys_favour_the_first_ranks() {
        let w = workload("  kind: kv\n  read_ratio: 1\n  key_distribution: zipfian\n  zipf_exponent: 1.2\n");
        let generator = Generator::new(&w, 0, 1000);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(2);
        let hot = (0..10_000).filter(|_| matches!(generator.next(&mut rng).action, Action::Get(k) if k < 10)).count();
        assert!(hot > 5_000, "{hot}");
    }

    #[test]
    fn mixed_weights_are_followed_and_zero_weights_never_chosen() {
        let w = workload("  kind: mixed\n  weights: {set: 1, get: 3, incr: 0, lpush: 0, hset: 0}\n");
        let generator = Generator::new(&w, 0, 1000);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut counts = [0usize; 5];
        for _ in 0..20_000 {
            let op = generator.next(&mut rng);
            counts[op.index()] += 1;
            let expected = match op.index {
                0 => matches!(op.action, Action::Set(_)),
                1 => matches!(op.action, Action::Get(_)),
                _ => false,
            };
            assert!(expected, "{op:?}");
        }
        assert!((4_500..5_500).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn batches_are_numbered_once_across_slots() {
        let w = Scenario::parse(
            "name: t\nduration: 1s\ntarget:\n  kind: postgres\n  endpoints: [\"h:1\"]\nworkload:\n  kind: metrics\n",
        )
        .expect("valid")
        .workload;
        let generator = Generator::new(&w, 0, 100);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(4);
        let numbers: Vec<Action> = (0..3).map(|_| generator.next(&mut rng).action).collect();
        assert_eq!(numbers, vec![Action::Insert(0), Action::Insert(1), Action::Insert(2)]);
    }
}
