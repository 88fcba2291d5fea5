//! Optional busy polling (`kv-server --busy-poll WINDOW`).
//!
//! Normally the event loop sleeps in `epoll_wait` whenever no connection is
//! ready, and every request that arrives then has to wake it: the client's
//! `write` pays for waking the server's thread (an inter-processor
//! interrupt, which is a VM exit on a virtual machine), and the server's
//! core goes idle and comes back. With busy polling, after each batch of
//! requests the loop keeps polling the sockets without sleeping (`epoll_wait`
//! with a zero timeout) until `WINDOW` has passed with no request; then it
//! sleeps as before. A server with no traffic uses no CPU; a server with
//! steady traffic uses a whole core and answers sooner.
//!
//! The spinning is a task that yields to the scheduler in a loop: while a
//! task has yielded, the runtime polls its I/O driver without blocking
//! before running the task again. Connections count their batches, and wake
//! the task when it has gone to sleep.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// The batches the connections served, and the sleeping spinner's bell.
#[derive(Default)]
pub struct Activity {
    batches: AtomicU64,
    asleep: AtomicBool,
    wake: Notify,
}

impl Activity {
    /// Called by a connection after every batch of requests it read.
    pub fn record(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::AcqRel) {
            // A stored permit if the spinner is not waiting yet: no wake-up is lost.
            self.wake.notify_one();
        }
    }

    /// Batches recorded so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Whether the spinner is asleep (waiting for the next batch).
    pub fn asleep(&self) -> bool {
        self.asleep.load(Ordering::Acquire)
    }
}

/// Runs for ever: sleeps until a batch is recorded, then keeps the event
/// loop polling until `window` passes without one.
pub async fn spin(activity: &Activity, window: Duration) {
    loop {
        activity.asleep.store(true, Ordering::Release);
        activity.wake.notified().await;
        let mut seen = activity.batches();
        let mut quiet_since = Instant::now();
        loop {
            tokio::task::yield_now().await;
            let now = activity.batches();
            if now != seen {
                seen = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= window {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn until_asleep(activity: &Activity) {
        while !activity.asleep() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn spins_after_a_batch_and_sleeps_after_a_quiet_window() {
        let activity = Arc::new(Activity::default());
        let spinner = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { spin(&activity, Duration::from_millis(20)).await }
        });
        until_asleep(&activity).await;

        activity.record();
        assert!(!activity.asleep(), "a batch wakes the spinner");
        let woken = Instant::now();
        // Batches every 5 ms keep it spinning past its 20 ms window.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(!activity.asleep(), "the spinner slept while batches kept coming");
            activity.record();
        }
        until_asleep(&activity).await;
        assert!(woken.elapsed() >= Duration::from_millis(40 + 20), "slept after {:?}", woken.elapsed());

        // Asleep, it wakes again for the next batch.
        activity.record();
        tokio::task::yield_now().await;
        assert!(!activity.asleep());
        until_asleep(&activity).await;
        spinner.abort();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_recorded_before_the_spinner_waits_is_not_lost() {
        let activity = Activity::default();
        // As if the spinner had just declared itself asleep but not yet waited.
        activity.asleep.store(true, Ordering::Release);
        activity.record();
        tokio::time::timeout(Duration::from_secs(1), activity.wake.notified())
            .await
            .expect("the recorded batch left a wake-up for the spinner");
    }
}
