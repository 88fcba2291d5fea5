//! The open model's arrival process: a dedicated thread that releases each
//! request's *intended* start time at that time, with uniform or
//! exponential (Poisson) spacing. A thread with `nanosleep` keeps the
//! schedule to tens of microseconds, where the async timer wheel rounds to
//! milliseconds.
//!
//! The schedule is computed, not materialised: the thread hands intended
//! starts to the slots through a queue that holds at most one per slot, so
//! when the target falls behind the thread waits with the next intended
//! start in hand instead of queueing every missed one, and memory does not
//! grow with the rate or the backlog. A start taken late is measured from
//! its intended time (coordinated omission corrected). The thread stops at
//! the planned end, and counts (without generating them one by one) the
//! intended starts that fell inside the run but were never released: with
//! uniform spacing by arithmetic, with Poisson arrivals by drawing the
//! number of arrivals of the rest of the run from the Poisson distribution,
//! as the process itself would have produced them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp, Poisson};
use stampede_common::scenario::Arrival;
use stampede_common::stages::Stages;

/// What the arrival thread did: the intended starts it released and those
/// due within the run it never released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Released {
    pub released: u64,
    pub never_released: u64,
}

/// Starts the arrival thread for `slots` slots. It releases intended
/// starts until the planned `end` (or `cancel`, or the receiver is closed:
/// close it to end a thread that waits for a free slot); the returned
/// handle ends with it and says how many it released and how many it never
/// did.
/// With `stages` (this agent's share of `load.stages`) the rate follows
/// them instead of `rate_per_s`.
#[allow(clippy::too_many_arguments)]
pub fn start(
    rate_per_s: f64,
    stages: Option<Stages>,
    arrival: Arrival,
    start: Instant,
    end: Instant,
    seed: u64,
    slots: usize,
    cancel: Arc<AtomicBool>,
) -> std::io::Result<(async_channel::Receiver<Instant>, std::thread::JoinHandle<Released>)> {
    let (tx, rx) = async_channel::bounded(slots.max(1));
    let handle = std::thread::Builder::new().name("stampede-arrivals".into()).spawn(move || {
        let mut process = Process::new(rate_per_s, arrival, start, seed);
        if let Some(stages) = stages {
            process = process.staged(stages);
        }
        let mut released = 0;
        'release: while process.next < end && !cancel.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if process.next > now {
                std::thread::sleep(process.next - now);
            }
            // While every slot is busy this waits with the start in hand.
            if tx.send_blocking(process.next).is_err() {
                break 'release;
            }
            released += 1;
            process.advance();
        }
        Released { released, never_released: process.remaining_before(end) }
    })?;
    Ok((rx, handle))
}

/// The arrival process: the next intended start and how to get the one
/// after it.
struct Process {
    arrival: Arrival,
    rate_per_s: f64,
    start: Instant,
    /// Index of `next` (uniform spacing: start + index / rate, so that no
    /// rounding accumulates).
    index: u64,
    next: Instant,
    rng: SmallRng,
    exp: Option<Exp<f64>>,
    /// A rate that follows `load.stages`: `next` is where their integral
    /// reaches `position` (the index, or a sum of unit exponentials).
    stages: Option<(Stages, f64)>,
}

impl Process {
    fn new(rate_per_s: f64, arrival: Arrival, start: Instant, seed: u64) -> Self {
        let rate_per_s = rate_per_s.max(1e-9);
        Self {
            arrival,
            rate_per_s,
            start,
            index: 0,
            next: start,
            rng: SmallRng::seed_from_u64(seed),
            exp: Exp::new(rate_per_s).ok(),
            stages: None,
        }
    }

    /// Follows `stages` (in operations per second) instead of a constant
    /// rate; the first intended start is where their integral reaches 0.
    fn staged(mut self, stages: Stages) -> Self {
        self.exp = Exp::new(1.0).ok();
        self.next = self.at(&stages, 0.0);
        self.stages = Some((stages, 0.0));
        self
    }

    /// When the stages' integral reaches `n`; far past their end when it never does.
    fn at(&self, stages: &Stages, n: f64) -> Instant {
        match stages.time_of(n) {
            Some(t) => self.start + Duration::from_secs_f64(t),
            None => self.start + stages.duration() + Duration::from_secs(3600),
        }
    }

    fn advance(&mut self) {
        if let Some((stages, position)) = self.stages.take() {
            self.index += 1;
            let position = match (self.arrival, &self.exp) {
                (Arrival::Poisson, Some(exp)) => position + exp.sample(&mut self.rng),
                _ => self.index as f64,
            };
            self.next = self.at(&stages, position);
            self.stages = Some((stages, position));
            return;
        }
        self.index += 1;
        self.next = match (self.arrival, &self.exp) {
            (Arrival::Poisson, Some(exp)) => self.next + Duration::from_secs_f64(exp.sample(&mut self.rng)),
            _ => self.start + Duration::from_secs_f64(self.index as f64 / self.rate_per_s),
        };
    }

    /// The intended starts from `next` (included) to `end` (excluded).
    fn remaining_before(&mut self, end: Instant) -> u64 {
        if self.next >= end {
            return 0;
        }
        if let Some((stages, _)) = &self.stages {
            let seconds = |at: Instant| at.saturating_duration_since(self.start).as_secs_f64();
            return match self.arrival {
                Arrival::Poisson => {
                    let lambda = stages.cumulative(seconds(end)) - stages.cumulative(seconds(self.next));
                    let further = Poisson::new(lambda.max(1e-12)).map_or(0.0, |p| p.sample(&mut self.rng));
                    1 + further as u64
                }
                // Positions i with time_of(i) < end: ceil(cumulative(end)).
                Arrival::Uniform => (stages.cumulative(seconds(end)).ceil() as u64).saturating_sub(self.index),
            };
        }
        match (self.arrival, &self.exp) {
            (Arrival::Poisson, Some(_)) => {
                // `next` is one arrival; the rest of the window holds a
                // Poisson-distributed number of further ones.
                let lambda = (end - self.next).as_secs_f64() * self.rate_per_s;
                let further = Poisson::new(lambda).map_or(0.0, |p| p.sample(&mut self.rng));
                1 + further as u64
            }
            _ => {
                // Indexes i with i / rate < duration: ceil(duration * rate).
                let total = ((end - self.start).as_secs_f64() * self.rate_per_s).ceil() as u64;
                total.saturating_sub(self.index)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(rx: &async_channel::Receiver<Instant>) -> Vec<Instant> {
        let mut times = Vec::new();
        while let Ok(t) = rx.recv_blocking() {
            times.push(t);
        }
        times
    }

    #[test]
    fn releases_the_expected_number_of_arrivals_in_order() {
        let start_at = Instant::now();
        let end = start_at + Duration::from_millis(200);
        let cancel = Arc::new(AtomicBool::new(false));
        let (rx, thread) = start(1000.0, None, Arrival::Uniform, start_at, end, 1, 4, cancel).expect("thread");
        let times = collect(&rx);
        let done = thread.join().expect("thread");
        assert_eq!(times.len() as u64 + done.never_released, 200, "{done:?}");
        assert_eq!(done.released, times.len() as u64);
        assert!(times.windows(2).all(|w| w[1] > w[0]));
        assert_eq!(times[1] - times[0], Duration::from_millis(1));
    }

    #[test]
    fn poisson_arrivals_average_the_rate() {
        let start_at = Instant::now() - Duration::from_secs(10);
        let end = start_at + Duration::from_secs(10);
        let cancel = Arc::new(AtomicBool::new(false));
        let (rx, thread) = start(500.0, None, Arrival::Poisson, start_at, end, 7, 1, cancel).expect("thread");
        // The run is over before it starts: nothing is released, and the
        // missed arrivals are counted.
        let count = collect(&rx).len() as u64 + thread.join().expect("thread").never_released;
        assert!((4_600..5_400).contains(&count), "{count}");
    }

    #[test]
    fn an_absurd_rate_ends_on_time_with_every_intended_start_counted() {
        let start_at = Instant::now();
        let end = start_at + Duration::from_millis(300);
        let cancel = Arc::new(AtomicBool::new(false));
        let (rx, thread) = start(1e9, None, Arrival::Uniform, start_at, end, 3, 8, cancel).expect("thread");
        // Slots that take one start every millisecond: far behind.
        let mut taken = 0u64;
        while let Ok(at) = rx.recv_blocking() {
            assert!(at < end);
            taken += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        let done = thread.join().expect("thread");
        assert!(Instant::now() < end + Duration::from_millis(100), "the thread stopped at the end");
        assert_eq!(done.released, taken);
        assert_eq!(done.released + done.never_released, 300_000_000, "1e9/s for 0.3 s, exactly");
    }

    #[test]
    fn staged_arrivals_follow_the_ramp() {
        use stampede_common::stages::Stage;
        // 1 s at 1000/s, then a ramp to 3000/s over 1 s: 1000 + 2000 starts.
        let stages = Stages {
            start: 1000.0,
            stages: vec![
                Stage { duration: Duration::from_secs(1), target: 1000.0 },
                Stage { duration: Duration::from_secs(1), target: 3000.0 },
            ],
        };
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            // All in the past: nothing released, everything counted.
            let start_at = Instant::now() - Duration::from_secs(10);
            let end = start_at + Duration::from_secs(2);
            let mut process = Process::new(3000.0, arrival, start_at, 5).staged(stages.clone());
            let total = process.remaining_before(end);
            assert!((2_850..3_150).contains(&total), "{arrival:?}: {total}");
            // Released one by one: the first second holds a third of them.
            let mut process = Process::new(3000.0, arrival, start_at, 5).staged(stages.clone());
            let (mut first, mut all) = (0u64, 0u64);
            while process.next < end {
                first += u64::from(process.next < start_at + Duration::from_secs(1));
                all += 1;
                process.advance();
            }
            assert!((2_850..3_150).contains(&all), "{arrival:?}: {all}");
            assert!((900..1_100).contains(&first), "{arrival:?}: {first} in the first second");
            if arrival == Arrival::Uniform {
                assert_eq!(all, 3000);
                assert_eq!(first, 1000);
            }
        }
    }

    #[test]
    fn the_rest_of_a_poisson_run_is_drawn_around_its_mean() {
        let start_at = Instant::now();
        let mut process = Process::new(1e6, Arrival::Poisson, start_at, 11);
        let remaining = process.remaining_before(start_at + Duration::from_secs(2));
        assert!((1_990_000..2_010_000).contains(&remaining), "{remaining}");
    }
}
