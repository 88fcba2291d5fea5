//! The agent's one retry policy: wait, then double the wait up to a cap,
//! and start again from the first wait after a success. Sessions (etcd at
//! start, the coordinator) and target connections use it with their own
//! bounds.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first }
    }

    /// For the coordinator and etcd: 200 ms doubling to 5 s.
    pub const fn session() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// For a target connection lost during a run: 100 ms doubling to 2 s,
    /// so a node back from a restart is reached again within 2 s.
    pub const fn target() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(2))
    }

    /// The wait before the next attempt; the one after it is twice as long,
    /// up to the cap.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// After a success: the next wait is the first again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_start_again_after_a_success() {
        let mut backoff = Backoff::session();
        let waits: Vec<u64> = (0..7).map(|_| backoff.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, vec![200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_millis(200));
        let mut target = Backoff::target();
        assert_eq!((0..6).map(|_| target.next_wait().as_millis() as u64).last(), Some(2000));
    }
}
