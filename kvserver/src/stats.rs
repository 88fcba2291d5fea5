//! Counters behind `INFO`: connections and calls per command. They let a
//! test compare what a benchmark says it did with what the server saw.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cmd::SPECS;

pub struct Stats {
    pub connected_clients: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    calls: Vec<AtomicU64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            connected_clients: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            calls: SPECS.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Stats {
    /// Counts one call of `SPECS[index]`.
    #[inline]
    pub fn count(&self, index: usize) {
        self.calls[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn calls(&self, index: usize) -> u64 {
        self.calls[index].load(Ordering::Relaxed)
    }

    pub fn total_commands(&self) -> u64 {
        self.calls.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The commands called at least once, with their calls (lower case, as
    /// `INFO commandstats` names them).
    pub fn command_calls(&self) -> Vec<(&'static str, u64)> {
        SPECS
            .iter()
            .zip(&self.calls)
            .map(|(s, c)| (s.name, c.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}
