//! The open model's arrival process: a dedicated thread that releases each
//! request's *intended* start time at that time, with uniform or
//! exponential (Poisson) spacing. A thread with `nanosleep` keeps the
//! schedule to tens of microseconds, where the async timer wheel rounds to
//! milliseconds. Slots take arrivals from a shared queue; an arrival that
//! waits in the queue is measured from its intended time (coordinated
//! omission corrected), never dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp};
use stampede_common::scenario::Arrival;

/// Starts the arrival thread. It releases every arrival due before `end`
/// (so that the ones no slot could send can be counted afterwards) unless
/// `cancel` is set; the returned handle ends with it.
pub fn start(
    rate_per_s: f64,
    arrival: Arrival,
    start: Instant,
    end: Instant,
    seed: u64,
    cancel: Arc<AtomicBool>,
) -> std::io::Result<(async_channel::Receiver<Instant>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = async_channel::unbounded();
    let handle = std::thread::Builder::new().name("stampede-arrivals".into()).spawn(move || {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mean_gap = 1.0 / rate_per_s.max(1e-9);
        let exp = Exp::new(rate_per_s.max(1e-9)).ok();
        let mut next = start;
        while next < end && !cancel.load(Ordering::Relaxed) {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            if tx.send_blocking(next).is_err() {
                return;
            }
            let gap = match (arrival, &exp) {
                (Arrival::Poisson, Some(exp)) => exp.sample(&mut rng),
                _ => mean_gap,
            };
            next += Duration::from_secs_f64(gap);
        }
    })?;
    Ok((rx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_the_expected_number_of_arrivals_in_order() {
        let start_at = Instant::now();
        let end = start_at + Duration::from_millis(200);
        let cancel = Arc::new(AtomicBool::new(false));
        let (rx, _thread) = start(1000.0, Arrival::Uniform, start_at, end, 1, cancel).expect("thread");
        let mut times = Vec::new();
        while let Ok(t) = rx.recv_blocking() {
            times.push(t);
        }
        assert_eq!(times.len(), 200);
        assert!(times.windows(2).all(|w| w[1] > w[0]));
        assert_eq!(times[1] - times[0], Duration::from_millis(1));
    }

    #[test]
    fn poisson_arrivals_average_the_rate() {
        let start_at = Instant::now() - Duration::from_secs(10);
        let end = start_at + Duration::from_secs(10);
        let cancel = Arc::new(AtomicBool::new(false));
        let (rx, _thread) = start(500.0, Arrival::Poisson, start_at, end, 7, cancel).expect("thread");
        let mut count = 0;
        while rx.recv_blocking().is_ok() {
            count += 1;
        }
        assert!((4_600..5_400).contains(&count), "{count}");
    }
}
