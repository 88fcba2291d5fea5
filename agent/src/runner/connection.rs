//! Drives one connection: `pipeline` slots, each with its own handle and
//! random stream, run concurrently on one task. In the closed model a slot
//! sends its next request when the last one answered; in the open model it
//! takes the next intended start from the arrival queue. A dropped
//! connection is re-opened with backoff until the run ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::recorder::{SharedRecorder, lock};
use stampede_common::interval::Counter;
use stampede_common::scenario::redact;

use crate::backoff::Backoff;
use crate::drivers::{Connection, Done, Driver, DriverError, ErrorKind};
use crate::workloads::{Generator, Operation};

/// A request sent this much after its intended start counts as a late start.
pub const LATE_START: Duration = Duration::from_millis(1);
/// An operation without an answer after this long counts as a timeout.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// What every slot of every connection shares.
pub struct SlotContext {
    pub generator: Generator,
    /// Pause after each operation of a slot (the workload's pacing).
    pub pause: Duration,
    pub end: Instant,
    pub stop: Arc<AtomicBool>,
    pub arrivals: Option<async_channel::Receiver<Instant>>,
    pub seed: u64,
    /// `load.reconnect_every`: requests per connection before it is renewed.
    pub reconnect_every: Option<u64>,
    /// A count-limited run's operations left to this agent.
    pub count: Option<Arc<OperationCount>>,
    /// Closed-model stages: which connections are active when.
    pub ramp: Option<Ramp>,
}

/// The closed model's `load.stages`: the run's active connections ramp;
/// this agent's connections are numbered among all agents' by
/// interleaving (connection k of agent a is `k * agents + a`), and one is
/// active while its number is below the stages' target.
pub struct Ramp {
    pub stages: stampede_common::stages::Stages,
    pub start: Instant,
    pub agent_index: u32,
    pub agent_count: u32,
}

impl Ramp {
    fn active(&self, connection: u64) -> bool {
        let number = connection * u64::from(self.agent_count) + u64::from(self.agent_index);
        let t = Instant::now().saturating_duration_since(self.start).as_secs_f64();
        (number as f64) < self.stages.target_at(t).round()
    }
}

impl SlotContext {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && Instant::now() < self.end
            && self.count.as_ref().is_none_or(|count| !count.is_spent())
    }
}

/// The operations a count-limited run (`load.operations`) leaves this
/// agent, claimed by its slots before they send: every claimed operation is
/// sent, so the agent sends exactly its part. The count is done when every
/// operation has been answered (or failed), not merely claimed: an open
/// model slot claims before it waits for its intended start.
#[derive(Debug)]
pub struct OperationCount {
    /// Not yet claimed (below 0 once slots have asked past the end).
    left: AtomicI64,
    /// `load.operations` per operation: each operation's not yet claimed
    /// (the workload's order). `left` is their sum, claimed first, so an
    /// operation is always left for each one claimed.
    each: Option<Vec<AtomicI64>>,
    /// Not yet recorded.
    unfinished: AtomicI64,
    /// Becomes true when the last operation is recorded.
    done: tokio::sync::watch::Sender<bool>,
}

impl OperationCount {
    pub fn new(operations: u64) -> Arc<Self> {
        Self::build(operations, None)
    }

    /// A count for each operation of the workload (their sum is the whole).
    pub fn per_operation(counts: &[u64]) -> Arc<Self> {
        let each = counts.iter().map(|n| AtomicI64::new((*n).min(i64::MAX as u64) as i64)).collect();
        Self::build(counts.iter().fold(0u64, |sum, n| sum.saturating_add(*n)), Some(each))
    }

    fn build(operations: u64, each: Option<Vec<AtomicI64>>) -> Arc<Self> {
        let operations = operations.min(i64::MAX as u64) as i64;
        Arc::new(Self {
            left: AtomicI64::new(operations),
            each,
            unfinished: AtomicI64::new(operations),
            done: tokio::sync::watch::Sender::new(operations == 0),
        })
    }

    /// Whether each operation has its own count ([`Self::pick`] chooses).
    pub fn per_operation_counts(&self) -> bool {
        self.each.is_some()
    }

    /// For one claimed operation of a per-operation count: which operation
    /// it is, drawn with weights of what each has left (so the mix keeps
    /// the counts' proportions and all end together), and taken from that
    /// operation's count. A claim from the whole leaves one somewhere, so
    /// the loop ends; a draw that lost a race gives its unit back.
    pub fn pick(&self, rng: &mut impl rand::Rng) -> u8 {
        let Some(each) = &self.each else { return 0 };
        // A workload has at most a handful of operations: no allocation
        // on the request path.
        let (mut small, mut large) = ([0i64; MAX_COUNTED_OPERATIONS], Vec::new());
        let left: &mut [i64] = if each.len() <= MAX_COUNTED_OPERATIONS {
            &mut small[..each.len()]
        } else {
            large.resize(each.len(), 0);
            &mut large
        };
        loop {
            for (l, n) in left.iter_mut().zip(each) {
                *l = n.load(Ordering::Relaxed).max(0);
            }
            let total: i64 = left.iter().sum();
            if total == 0 {
                // Every unit left is held for a moment by a draw that lost
                // a race: it gives it back.
                std::hint::spin_loop();
                continue;
            }
            let mut x = rng.random_range(0..total);
            let index = left
                .iter()
                .position(|n| {
                    x -= n;
                    x < 0
                })
                .unwrap_or(0);
            if each[index].fetch_sub(1, Ordering::AcqRel) > 0 {
                return index as u8;
            }
            each[index].fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Claims up to `wanted` operations; returns how many it got (0 when
    /// none are left).
    pub fn claim(&self, wanted: usize) -> usize {
        let wanted = wanted as i64;
        // Each slot subtracts at most once more after the count is spent,
        // so the counter stays far from overflow.
        let before = self.left.fetch_sub(wanted, Ordering::Relaxed);
        before.clamp(0, wanted) as usize
    }

    /// `n` claimed operations were recorded; the last ones wake
    /// [`Self::done`].
    pub fn finished(&self, n: usize) {
        let n = n as i64;
        if self.unfinished.fetch_sub(n, Ordering::AcqRel) == n {
            self.done.send_replace(true);
        }
    }

    fn is_spent(&self) -> bool {
        self.left.load(Ordering::Relaxed) <= 0
    }

    /// Resolves once every operation has been recorded.
    pub async fn done(&self) {
        let _ = self.done.subscribe().wait_for(|done| *done).await;
    }
}

/// Operations a per-operation count draws among without allocating
/// (`mixed`, the most, has five).
const MAX_COUNTED_OPERATIONS: usize = 8;

enum SlotEnd {
    Finished,
    ConnectionLost,
    /// The connection can carry no more requests (the server closed it
    /// between requests, or a timed-out request was abandoned on it).
    Closed,
    /// The connection served its `reconnect_every` requests.
    Renew,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// How far a slot's timeout deadline may lag behind the exact one. The
/// deadline is pushed forward at most this often instead of arming a timer
/// per operation (a timer per operation was the largest single cost at
/// high pipeline depths); an operation times out 5.0 to 5.25 s after it
/// was sent.
const TIMEOUT_SLACK: Duration = Duration::from_millis(250);

/// One slot's loop. `batch` operations are written together and the next
/// batch goes when all have answered (the closed model's pipeline); open
/// model slots use batches of one.
async fn run_slot<C: Connection>(
    mut connection: C,
    context: &SlotContext,
    recorder: &SharedRecorder,
    seed: u64,
    batch: usize,
    budget: Option<&AtomicI64>,
    connection_index: u64,
) -> SlotEnd {
    let mut rng = SmallRng::seed_from_u64(seed);
    let deadline = tokio::time::sleep(OPERATION_TIMEOUT + TIMEOUT_SLACK);
    tokio::pin!(deadline);
    let mut operations = Vec::with_capacity(batch);
    let mut results = Vec::with_capacity(batch);
    while context.running() {
        // Closed-model stages: wait while this connection is not active.
        if let Some(ramp) = &context.ramp
            && !ramp.active(connection_index)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // The connection's remaining requests before it is renewed, shared
        // by its slots.
        if let Some(budget) = budget
            && budget.fetch_sub(batch as i64, Ordering::Relaxed) <= 0
        {
            return SlotEnd::Renew;
        }
        // A count-limited run: this batch's operations, fewer for the last.
        let batch = match &context.count {
            None => batch,
            Some(count) => match count.claim(batch) {
                0 => return SlotEnd::Finished,
                claimed => claimed,
            },
        };
        let intended = match &context.arrivals {
            None => None,
            Some(arrivals) => match arrivals.recv().await {
                Ok(at) => Some(at),
                Err(_) => return SlotEnd::Finished,
            },
        };
        operations.clear();
        results.clear();
        match context.count.as_deref().filter(|count| count.per_operation_counts()) {
            Some(count) => operations.extend((0..batch).map(|_| {
                let index = count.pick(&mut rng);
                context.generator.next_of(index, &mut rng)
            })),
            None => operations.extend((0..batch).map(|_| context.generator.next(&mut rng))),
        }
        let sent = Instant::now();
        let exact = sent + OPERATION_TIMEOUT;
        if deadline.deadline().into_std() < exact {
            deadline.as_mut().reset((exact + TIMEOUT_SLACK).into());
        }
        let finished = if operations.len() == 1 {
            tokio::select! {
                biased;
                result = connection.execute(&operations[0]) => { results.push(result); true }
                () = &mut deadline => false,
            }
        } else {
            tokio::select! {
                biased;
                () = connection.execute_batch(&operations, &mut results) => true,
                () = &mut deadline => false,
            }
        };
        let times = BatchTimes { intended: intended.unwrap_or(sent), sent, done: Instant::now() };
        let lost = record_batch(recorder, &operations, &results, finished, &times);
        if let Some(count) = &context.count {
            count.finished(operations.len());
        }
        if !finished {
            // Writes without an answer may still have been applied.
            let rows: u64 = operations[results.len().min(operations.len())..]
                .iter()
                .map(|operation| u64::from(connection.rows_of(operation)))
                .sum();
            lock(recorder).counters[Counter::RowsUnconfirmed.index()] += rows;
        }
        if let Some(node) = connection.take_sample() {
            *lock(recorder).samples.entry(node).or_default() += 1;
        }
        if lost {
            return SlotEnd::ConnectionLost;
        }
        if connection.is_closed() {
            return SlotEnd::Closed;
        }
        if !context.pause.is_zero() {
            tokio::time::sleep(context.pause).await;
        }
    }
    SlotEnd::Finished
}

/// When a batch was due, sent and answered.
struct BatchTimes {
    intended: Instant,
    sent: Instant,
    done: Instant,
}

/// Operations of a batch with the same operation and outcome, recorded
/// together (they share their latency).
#[derive(Clone, Copy)]
struct Group {
    operation: usize,
    error: Option<ErrorKind>,
    count: u64,
}

/// Records a batch's outcomes (a missing result is a timeout, or a protocol
/// error if the batch finished) and its start lag; returns whether the
/// connection was lost.
#[inline]
fn record_batch(
    recorder: &SharedRecorder,
    operations: &[Operation],
    results: &[Result<Done, DriverError>],
    finished: bool,
    times: &BatchTimes,
) -> bool {
    const GROUPS: usize = 4;
    let (latency, service) = (micros(times.done - times.intended), micros(times.done - times.sent));
    let mut groups = [Group { operation: 0, error: None, count: 0 }; GROUPS];
    let mut group_count = 0;
    let mut lost = false;
    let mut r = lock(recorder);
    for (index, operation) in operations.iter().enumerate() {
        let error = match results.get(index) {
            Some(Ok(done)) => {
                r.count(done);
                // A bulk request with refused rows is an error.
                (done.rows_failed > 0).then_some(ErrorKind::Server)
            }
            Some(Err(error)) => Some(error.kind),
            None if finished => Some(ErrorKind::Protocol),
            None => Some(ErrorKind::Timeout),
        };
        lost |= error == Some(ErrorKind::Connection);
        let served_by = match results.get(index) {
            Some(Ok(Done { node, .. }) | Err(DriverError { node, .. })) => node.as_ref(),
            None => None,
        };
        let said = match results.get(index) {
            Some(Err(failed)) => failed.message.as_str(),
            Some(Ok(Done { said: Some(said), .. })) => said.as_str(),
            _ => "",
        };
        if let Some(node) = served_by {
            // Served by another node than the connection's (a new
            // connection per operation, a sampled node, or a cluster's
            // node for the key).
            let home = r.node().cloned();
            r.set_node(Arc::clone(node));
            r.record(operation.index(), latency, service, error);
            if let Some(Ok(done)) = results.get(index) {
                r.transfer(operation.index(), done);
            }
            if let Some(kind) = error {
                r.note_error(operation.index(), kind, said);
            }
            if let Some(home) = home {
                r.set_node(home);
            }
            continue;
        }
        let operation = operation.index();
        if let Some(Ok(done)) = results.get(index) {
            r.transfer(operation, done);
        }
        if let Some(kind) = error {
            r.note_error(operation, kind, said);
        }
        match groups[..group_count].iter_mut().find(|g| g.operation == operation && g.error == error) {
            Some(group) => group.count += 1,
            None if group_count < GROUPS => {
                groups[group_count] = Group { operation, error, count: 1 };
                group_count += 1;
            }
            None => r.record(operation, latency, service, error),
        }
    }
    for group in &groups[..group_count] {
        r.record_n(group.operation, latency, service, group.error, group.count);
    }
    let lag = times.sent.saturating_duration_since(times.intended);
    if lag > LATE_START {
        r.late_starts += 1;
    }
    r.max_lag_us = r.max_lag_us.max(micros(lag));
    r.busy_us += service;
    lost
}

/// Runs one connection's slots until the run ends, reconnecting when the
/// connection is lost.
pub async fn drive<D: Driver>(
    driver: Arc<D>,
    endpoint: String,
    first: D::Connection,
    pipeline: u32,
    context: Arc<SlotContext>,
    recorder: SharedRecorder,
    connection_index: u64,
) {
    let mut connection = Some(first);
    let mut backoff = Backoff::target();
    let mut generation = 0u64;
    while context.running() {
        let current = match connection.take() {
            Some(c) => c,
            None => match reconnect(&*driver, &endpoint, &context, &mut backoff).await {
                Some(c) => c,
                None => break,
            },
        };
        {
            let mut r = lock(&recorder);
            let node: Arc<str> = current.node().into();
            r.links = if current.nodes().is_empty() { vec![Arc::clone(&node)] } else { current.nodes().to_vec() };
            let r = &mut *r;
            for link in &r.links {
                *r.opened.entry(Arc::clone(link)).or_default() += 1;
            }
            r.set_node(node);
            r.connected = true;
            if let (Some(operation), Some(us)) = (driver.connect_operation(), current.connect_us()) {
                r.record(operation, us, us, None);
            }
            if let Some(sampled) = current.take_sample() {
                *r.samples.entry(sampled).or_default() += 1;
            }
        }
        let budget = context.reconnect_every.map(|n| AtomicI64::new(n.min(i64::MAX as u64) as i64));
        // Closed model: one slot writes `pipeline` requests at a time.
        // Open model: `pipeline` independent slots, one request each.
        let (slot_count, batch) = if context.arrivals.is_some() { (pipeline, 1) } else { (1, pipeline as usize) };
        let slots = (0..slot_count).map(|slot| {
            let seed = context.seed ^ (connection_index << 20) ^ (generation << 40) ^ u64::from(slot);
            let seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            run_slot(current.clone(), &context, &recorder, seed, batch, budget.as_ref(), connection_index)
        });
        // FuturesUnordered polls only the slots that were woken; join_all
        // would poll every slot on every wake-up.
        let mut slots: FuturesUnordered<_> = slots.collect();
        let (mut lost, mut renew) = (false, false);
        while let Some(end) = slots.next().await {
            lost |= matches!(end, SlotEnd::ConnectionLost);
            renew |= matches!(end, SlotEnd::Renew | SlotEnd::Closed);
        }
        lock(&recorder).connected = false;
        generation += 1;
        // Close this connection before the next one opens (a new source port).
        drop(current);
        if lost {
            tracing::warn!(endpoint = %redact(&endpoint), "connection lost; reconnecting");
        } else if !renew {
            break;
        }
    }
}

async fn reconnect<D: Driver>(
    driver: &D,
    endpoint: &str,
    context: &SlotContext,
    backoff: &mut Backoff,
) -> Option<D::Connection> {
    while context.running() {
        match driver.connect(endpoint).await {
            Ok(connection) => {
                backoff.reset();
                return Some(connection);
            }
            Err(DriverError { message, .. }) => {
                tracing::debug!(endpoint = %redact(endpoint), %message, "reconnect failed");
                tokio::time::sleep(backoff.next_wait()).await;
            }
        }
    }
    None
}

#[cfg(test)]
mod ramp_tests {
    use super::*;
    use stampede_common::stages::{Stage, Stages};

    #[test]
    fn connections_become_active_in_their_interleaved_order_as_the_target_grows() {
        // 1 connection, then a ramp to 5 over 4 s, over 2 agents (3 + 2 connections).
        let stages = Stages {
            start: 1.0,
            stages: vec![
                Stage { duration: Duration::from_secs(2), target: 1.0 },
                Stage { duration: Duration::from_secs(4), target: 5.0 },
            ],
        };
        let active_at = |seconds: f64, agent_index: u32, connection: u64| {
            let start = Instant::now() - Duration::from_secs_f64(seconds);
            Ramp { stages: stages.clone(), start, agent_index, agent_count: 2 }.active(connection)
        };
        // Numbers: agent 0 has 0, 2, 4; agent 1 has 1, 3.
        assert!(active_at(1.0, 0, 0));
        assert!(!active_at(1.0, 1, 0), "one connection: agent 0's first");
        // At 4 s the target is 3: numbers 0, 1, 2.
        assert!(active_at(4.1, 1, 0) && active_at(4.1, 0, 1));
        assert!(!active_at(4.1, 1, 1));
        // Past the end the last target holds: all five.
        assert!(active_at(9.0, 0, 2) && active_at(9.0, 1, 1));
    }
}

#[cfg(test)]
mod count_tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_count_per_operation_is_taken_exactly_by_racing_slots_in_the_counts_proportions() {
        let counts = [7_001u64, 20_003, 0, 1];
        let count = OperationCount::per_operation(&counts);
        let taken: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let count = &count;
                    scope.spawn(move || {
                        let mut rng = SmallRng::seed_from_u64(t);
                        let mut mine = vec![0u64; counts.len()];
                        let mut early = vec![0u64; counts.len()];
                        loop {
                            let claimed = count.claim(3);
                            if claimed == 0 {
                                break;
                            }
                            for _ in 0..claimed {
                                let index = usize::from(count.pick(&mut rng));
                                mine[index] += 1;
                                if mine.iter().sum::<u64>() <= 2_000 {
                                    early[index] += 1;
                                }
                            }
                        }
                        mine.extend(early);
                        mine
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("thread")).collect()
        });
        let total: Vec<u64> = (0..counts.len()).map(|i| taken.iter().map(|t| t[i]).sum()).collect();
        assert_eq!(total, counts, "every operation's count exactly");
        // From the start the mix follows the counts (7,001 : 20,003), not
        // one operation after the other.
        let early_get: u64 = taken.iter().map(|t| t[counts.len()]).sum();
        let early_all: u64 = taken.iter().map(|t| t[counts.len()..].iter().sum::<u64>()).sum();
        let share = early_get as f64 / early_all as f64;
        assert!((0.2..0.32).contains(&share), "{share} of the first operations, 0.26 expected");
    }
}
