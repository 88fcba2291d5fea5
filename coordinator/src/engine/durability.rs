//! Keeping what the engine holds and what the store holds in step.
//!
//! An interval report is stored first and merged after: a report whose
//! write failed is neither merged nor acknowledged, so the agent keeps it
//! and sends it again, and a duplicate is acknowledged only because its
//! first copy was stored. An agent's final report is acknowledged only when
//! every interval report it announces is stored (or was refused as
//! corrupt, or dropped by the agent and counted as such), so a run cannot
//! end while an agent still holds data the store did not take.
//!
//! While the store refuses writes the run says so, and after
//! `store_error_timeout` it ends in `error`, naming the store's answer; the
//! agents keep the reports that were not stored.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often the live line repeats that the store still refuses writes.
const NOTICE_EVERY: Duration = Duration::from_secs(5);

/// What the store did with one run's writes.
#[derive(Debug, Default)]
pub(super) struct StoreHealth {
    /// Since when the store refuses this run's writes, with its last answer.
    trouble: Option<(Instant, String)>,
    /// Writes refused over the whole run, and the first refusal's answer.
    refusals: u64,
    first_error: Option<String>,
    /// When the store took writes again after refusing them.
    recovered_at: Option<Instant>,
    last_notice: Option<Instant>,
    /// (agent, sequence) of reports refused as corrupt: acknowledged,
    /// never merged.
    corrupt: BTreeSet<(String, u64)>,
}

impl StoreHealth {
    /// A write was refused; returns the live line to show, when one is due.
    pub(super) fn refused(&mut self, now: Instant, error: &str, timeout: Duration) -> Option<String> {
        self.refusals += 1;
        self.first_error.get_or_insert_with(|| error.to_string());
        let since = self.trouble.as_ref().map_or(now, |(since, _)| *since);
        self.trouble = Some((since, error.to_string()));
        if self.last_notice.is_some_and(|t| now.duration_since(t) < NOTICE_EVERY) {
            return None;
        }
        self.last_notice = Some(now);
        let left = timeout.saturating_sub(now.duration_since(since));
        Some(format!(
            "store: cannot store interval reports ({error}); nothing unstored is counted or acknowledged, \
             the agents keep it; the run ends in error in {}s unless the store takes writes again",
            left.as_secs()
        ))
    }

    /// A write was taken; returns the live line when the store had been
    /// refusing writes until now.
    pub(super) fn accepted(&mut self, now: Instant) -> Option<String> {
        let (since, _) = self.trouble.take()?;
        self.recovered_at = Some(now);
        self.last_notice = None;
        Some(format!(
            "store: writes accepted again after {}s; the reports held meanwhile are being stored",
            now.duration_since(since).as_secs()
        ))
    }

    /// What live viewers are told while the store refuses writes.
    pub(super) fn problem(&self) -> Option<String> {
        let (_, error) = self.trouble.as_ref()?;
        Some(format!("store: cannot store interval reports ({error}); nothing unstored is counted"))
    }

    pub(super) fn in_trouble(&self) -> bool {
        self.trouble.is_some()
    }

    /// Why the run must end now: the store has refused writes for longer
    /// than `timeout`.
    pub(super) fn expired(&self, now: Instant, timeout: Duration) -> Option<String> {
        let (since, error) = self.trouble.as_ref()?;
        (now.duration_since(*since) >= timeout).then(|| {
            format!(
                "the results store refused writes for {}s: {error}; the agents keep the interval reports \
                 it did not take (make room or fix the store, then submit again)",
                timeout.as_secs()
            )
        })
    }

    /// The report's note on refused writes, if there were any.
    pub(super) fn note(&self) -> Option<String> {
        let first = self.first_error.as_ref()?;
        let end = if self.in_trouble() {
            "reports not stored were not counted"
        } else {
            "every interval report counted was stored"
        };
        Some(format!("store: {} writes refused during the run (first: {first}); {end}", self.refusals))
    }

    /// When the finish grace starts: the planned end, or later when the
    /// store took writes again after it (agents then resend what they held).
    pub(super) fn grace_from(&self, end: Instant) -> Instant {
        self.recovered_at.map_or(end, |at| at.max(end))
    }

    pub(super) fn corrupt(&mut self, agent: &str, seq: u64) {
        self.corrupt.insert((agent.to_string(), seq));
    }

    /// How many of the reports `seqs` from `agent` were refused as corrupt.
    pub(super) fn corrupt_from(&self, agent: &str, seqs: std::ops::Range<u64>) -> u64 {
        self.corrupt.range((agent.to_string(), seqs.start)..(agent.to_string(), seqs.end)).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_announced_at_most_every_five_seconds_and_expire_after_the_timeout() {
        let timeout = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut health = StoreHealth::default();
        let first = health.refused(t0, "No space left on device", timeout).expect("announced");
        assert!(first.contains("No space left on device") && first.contains("in 60s"), "{first}");
        assert!(health.refused(t0 + Duration::from_secs(1), "full", timeout).is_none());
        assert!(health.refused(t0 + Duration::from_secs(6), "full", timeout).is_some());
        assert!(health.expired(t0 + Duration::from_secs(59), timeout).is_none());
        let why = health.expired(t0 + Duration::from_secs(60), timeout).expect("expired");
        assert!(why.contains("refused writes for 60s: full"), "{why}");
        assert!(health.note().expect("note").contains("3 writes refused"));
        assert!(health.note().expect("note").contains("not counted"));
    }

    #[test]
    fn a_store_that_recovers_restarts_the_clock_and_the_grace() {
        let timeout = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut health = StoreHealth::default();
        assert!(health.accepted(t0).is_none(), "nothing to say while all is well");
        health.refused(t0, "quota", timeout);
        let back = health.accepted(t0 + Duration::from_secs(50)).expect("announced");
        assert!(back.contains("after 50s"), "{back}");
        assert!(!health.in_trouble());
        assert!(health.expired(t0 + Duration::from_secs(500), timeout).is_none());
        health.refused(t0 + Duration::from_secs(100), "quota", timeout);
        assert!(health.expired(t0 + Duration::from_secs(159), timeout).is_none(), "a new refusal starts anew");
        assert_eq!(health.grace_from(t0), t0 + Duration::from_secs(50));
        assert_eq!(health.grace_from(t0 + Duration::from_secs(70)), t0 + Duration::from_secs(70));
    }
}
