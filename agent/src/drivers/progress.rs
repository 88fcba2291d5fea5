//! How far a driver's setup (table creation, preload) or teardown (key
//! deletion, table drop) has got, for the user's progress bar. The driver
//! updates it as it works; the runner sends what changed to the
//! coordinator a few times per second.

use std::sync::{Arc, Mutex, PoisonError};

/// One phase's state: `done` of `total` units (`total` 0: not known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseState {
    pub phase: String,
    pub unit: &'static str,
    pub done: u64,
    pub total: u64,
}

/// Shared between the driver doing the work and the runner reporting it.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<Option<PhaseState>>>);

impl Progress {
    /// A new phase of `total` units (0 when not known beforehand).
    pub fn begin(&self, phase: &str, unit: &'static str, total: u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(PhaseState { phase: phase.to_string(), unit, done: 0, total });
    }

    /// `units` more are done.
    pub fn advance(&self, units: u64) {
        if let Some(state) = self.0.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            state.done = state.done.saturating_add(units);
            if state.total != 0 {
                state.total = state.total.max(state.done);
            }
        }
    }

    /// The phase now, if one began.
    pub fn snapshot(&self) -> Option<PhaseState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_counts_up_to_its_total() {
        let progress = Progress::default();
        assert_eq!(progress.snapshot(), None);
        progress.advance(5);
        assert_eq!(progress.snapshot(), None, "nothing before a phase begins");
        progress.begin("preload", "keys", 100);
        progress.advance(40);
        let clone = progress.clone();
        clone.advance(60);
        assert_eq!(
            progress.snapshot(),
            Some(PhaseState { phase: "preload".into(), unit: "keys", done: 100, total: 100 })
        );
        progress.begin("drop table", "tables", 0);
        assert_eq!(progress.snapshot().map(|s| (s.done, s.total)), Some((0, 0)));
    }
}
