//! Counters behind `INFO`: connections and calls per command. They let a
//! test compare what a benchmark says it did with what the server saw.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cmd::CommandName;

#[derive(Default)]
pub struct Stats {
    pub connected_clients: AtomicU64,
    pub total_connections: AtomicU64,
    calls: [AtomicU64; CommandName::COUNT],
}

impl Stats {
    pub fn count(&self, name: CommandName) {
        self.calls[name as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn calls(&self, name: CommandName) -> u64 {
        self.calls[name as usize].load(Ordering::Relaxed)
    }

    pub fn total_commands(&self) -> u64 {
        self.calls.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}
