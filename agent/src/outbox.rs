//! Everything an agent must tell the coordinator, kept until it is
//! acknowledged. Reports and final reports stay until the coordinator acks
//! their (run, sequence); after a reconnect they are all sent again, and so
//! is one left unacknowledged for long on a live session (the coordinator
//! does not acknowledge what its store refused, nor a final report before
//! the run's interval reports are stored). The
//! buffer is bounded: past the limit the oldest report is dropped and
//! counted, so an agent cut off for days cannot run out of memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stampede_common::interval::IntervalReport;
use tokio::sync::Notify;

/// A message for the coordinator.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Ready {
        run_id: String,
    },
    Failed {
        run_id: String,
        error: String,
    },
    Report(Box<IntervalReport>),
    /// Setup's or teardown's progress; only the newest of a run is kept.
    Phase {
        run_id: String,
        state: crate::drivers::progress::PhaseState,
    },
    /// `reports_dropped`: this run's reports the full buffer let go.
    Final {
        run_id: String,
        seq: u64,
        interval_reports: u64,
        reports_dropped: u64,
        error: String,
    },
}

impl Outgoing {
    /// The (run, sequence) an acknowledgement names, for messages that wait
    /// for one.
    fn ack_key(&self) -> Option<(&str, u64)> {
        match self {
            Self::Report(r) => Some((&r.run_id, r.seq)),
            Self::Final { run_id, seq, .. } => Some((run_id, *seq)),
            Self::Ready { .. } | Self::Failed { .. } | Self::Phase { .. } => None,
        }
    }
}

struct Entry {
    message: Outgoing,
    sent: bool,
    /// When it was last sent.
    sent_at: Option<Instant>,
    /// How often it was sent again because it stayed unacknowledged; each
    /// time the wait before the next doubles (up to 64 times the first).
    resends: u32,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    /// Reports dropped per run.
    dropped: HashMap<String, u64>,
}

pub struct Outbox {
    inner: Mutex<Inner>,
    limit: usize,
    pub notify: Notify,
}

impl Outbox {
    pub fn new(limit: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), limit, notify: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn push(&self, message: Outgoing) {
        {
            let mut inner = self.lock();
            let queued_final = matches!(message, Outgoing::Final { .. });
            // A newer progress replaces one not sent yet (while the
            // coordinator is away they would pile up).
            if let Outgoing::Phase { run_id, .. } = &message {
                inner
                    .entries
                    .retain(|e| !matches!(&e.message, Outgoing::Phase { run_id: r, .. } if r == run_id && !e.sent));
            }
            inner.entries.push_back(Entry { message, sent: false, sent_at: None, resends: 0 });
            let Inner { entries, dropped } = &mut *inner;
            let mut evicted = false;
            while entries.len() > self.limit {
                let Some(position) = entries.iter().position(|e| matches!(e.message, Outgoing::Report(_))) else {
                    break;
                };
                if let Some(Entry { message: Outgoing::Report(report), .. }) = entries.remove(position) {
                    *dropped.entry(report.run_id).or_default() += 1;
                    evicted = true;
                }
            }
            // A final report carries its run's drop count, including drops
            // made after it was queued (it is then sent again). Only a drop
            // or a new final report can change a count.
            if evicted || queued_final {
                for entry in entries.iter_mut() {
                    if let Outgoing::Final { run_id, reports_dropped, .. } = &mut entry.message {
                        let count = dropped.get(run_id.as_str()).copied().unwrap_or(0);
                        if *reports_dropped != count {
                            *reports_dropped = count;
                            entry.sent &= !evicted;
                        }
                    }
                }
            }
        }
        self.notify.notify_one();
    }

    /// Messages not sent on the current session, in order. Those that wait
    /// for no acknowledgement are forgotten once taken.
    pub fn take_unsent(&self) -> Vec<Outgoing> {
        let mut inner = self.lock();
        let taken: Vec<Outgoing> = inner
            .entries
            .iter_mut()
            .filter(|e| !e.sent)
            .map(|e| {
                e.sent = true;
                e.sent_at = Some(Instant::now());
                e.message.clone()
            })
            .collect();
        inner.entries.retain(|e| e.message.ack_key().is_some());
        taken
    }

    /// Forgets an acknowledged message.
    pub fn ack(&self, run_id: &str, seq: u64) {
        self.lock().entries.retain(|e| e.message.ack_key() != Some((run_id, seq)));
    }

    /// After a reconnect: everything still held is sent again.
    pub fn resend_all(&self) {
        for entry in &mut self.lock().entries {
            entry.sent = false;
        }
        self.notify.notify_one();
    }

    /// Sends again what was sent `after` ago or longer and is still not
    /// acknowledged (the wait doubling with each resend of the same
    /// message, so a coordinator that keeps refusing is not flooded);
    /// returns how many.
    pub fn resend_overdue(&self, after: Duration) -> usize {
        let now = Instant::now();
        let mut count = 0;
        for entry in &mut self.lock().entries {
            let wait = after * (1u32 << entry.resends.min(6));
            if entry.sent && entry.sent_at.is_some_and(|at| now.duration_since(at) >= wait) {
                entry.sent = false;
                entry.resends += 1;
                count += 1;
            }
        }
        if count > 0 {
            self.notify.notify_one();
        }
        count
    }

    pub fn pending(&self) -> usize {
        self.lock().entries.len()
    }

    /// Reports of `run_id` dropped because the buffer was full.
    pub fn dropped(&self, run_id: &str) -> u64 {
        self.lock().dropped.get(run_id).copied().unwrap_or(0)
    }

    /// Whether anything of this run still waits for an acknowledgement.
    pub fn holds_run(&self, run_id: &str) -> bool {
        self.lock().entries.iter().any(|e| e.message.ack_key().is_some_and(|(r, _)| r == run_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seq: u64) -> Outgoing {
        Outgoing::Report(Box::new(IntervalReport { run_id: "r".into(), seq, ..Default::default() }))
    }

    #[test]
    fn reports_left_unacknowledged_on_a_live_session_are_sent_again() {
        let outbox = Outbox::new(100);
        outbox.push(report(0));
        outbox.push(report(1));
        assert_eq!(outbox.take_unsent().len(), 2);
        outbox.ack("r", 0);
        assert_eq!(outbox.resend_overdue(Duration::from_secs(60)), 0, "not overdue yet");
        assert!(outbox.take_unsent().is_empty());
        let after = Duration::from_millis(100);
        std::thread::sleep(after);
        assert_eq!(outbox.resend_overdue(after), 1);
        assert_eq!(outbox.take_unsent(), vec![report(1)]);
        // The second resend waits twice as long.
        std::thread::sleep(after + Duration::from_millis(20));
        assert_eq!(outbox.resend_overdue(after), 0, "not after 120 ms again");
        std::thread::sleep(after);
        assert_eq!(outbox.resend_overdue(after), 1, "after 200 ms");
    }

    #[test]
    fn unacknowledged_reports_are_sent_again_after_reconnect() {
        let outbox = Outbox::new(100);
        outbox.push(Outgoing::Ready { run_id: "r".into() });
        outbox.push(report(0));
        outbox.push(report(1));
        assert_eq!(outbox.take_unsent().len(), 3);
        assert!(outbox.take_unsent().is_empty());
        outbox.ack("r", 0);
        outbox.resend_all();
        assert_eq!(outbox.take_unsent(), vec![report(1)]);
        outbox.ack("r", 1);
        assert_eq!(outbox.pending(), 0);
        assert!(!outbox.holds_run("r"));
    }

    #[test]
    fn overflow_drops_the_oldest_report_and_counts_it_per_run() {
        let outbox = Outbox::new(2);
        for seq in 0..5 {
            outbox.push(report(seq));
        }
        assert_eq!(outbox.dropped("r"), 3);
        assert_eq!(outbox.dropped("other"), 0);
        // A final report is never the one dropped: the oldest report goes,
        // and the final report counts it too.
        let last = |dropped| Outgoing::Final {
            run_id: "r".into(),
            seq: 5,
            interval_reports: 5,
            reports_dropped: dropped,
            error: String::new(),
        };
        outbox.push(last(3));
        assert_eq!(outbox.dropped("r"), 4);
        assert_eq!(outbox.take_unsent(), vec![report(4), last(4)]);
        // A drop after the final report was sent updates it and sends it again.
        outbox.push(report(6));
        assert_eq!(outbox.take_unsent(), vec![last(5), report(6)]);
    }
}
