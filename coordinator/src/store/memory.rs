//! `MemoryStore`: runs kept in this process only. For tests (the engine's
//! unit tests drive it without a disk), and a reference for what the other
//! stores must do: the store suite runs against it too.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{RunRecord, RunStore, StoreError, StoredInterval};

#[derive(Debug, Default)]
struct StoredRun {
    record: Option<RunRecord>,
    scenario: String,
    private: Option<String>,
    intervals: Vec<StoredInterval>,
    report: Option<(String, String)>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    runs: Mutex<BTreeMap<String, StoredRun>>,
    /// While set, interval writes fail with this message (a full disk, say).
    refusing: Mutex<Option<String>>,
    /// While set, each interval write takes this long (an etcd whose
    /// write-ahead log takes seconds to sync).
    stalling: Mutex<Option<std::time::Duration>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn runs(&self) -> MutexGuard<'_, BTreeMap<String, StoredRun>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes interval writes fail with `message` (`None`: succeed again), as
    /// a store does when its disk or quota is full.
    pub fn refuse_intervals(&self, message: Option<&str>) {
        *self.refusing.lock().unwrap_or_else(PoisonError::into_inner) = message.map(str::to_string);
    }

    /// Makes each interval write block its caller for `by` (`None`: answer
    /// at once again) before it succeeds.
    pub fn stall_intervals(&self, by: Option<std::time::Duration>) {
        *self.stalling.lock().unwrap_or_else(PoisonError::into_inner) = by;
    }
}

fn missing(run_id: &str) -> StoreError {
    StoreError::Remote { key: run_id.to_string(), message: "no such run".to_string() }
}

impl RunStore for MemoryStore {
    fn create(&self, record: &RunRecord, scenario_yaml: &str, private: Option<&str>) -> Result<(), StoreError> {
        let mut runs = self.runs();
        let run = runs.entry(record.run_id.clone()).or_default();
        run.scenario = scenario_yaml.to_string();
        run.private = private.map(str::to_string);
        run.record = Some(record.clone());
        Ok(())
    }

    fn forget_private(&self, run_id: &str) -> Result<(), StoreError> {
        if let Some(run) = self.runs().get_mut(run_id) {
            run.private = None;
        }
        Ok(())
    }

    fn update(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.runs().entry(record.run_id.clone()).or_default().record = Some(record.clone());
        Ok(())
    }

    fn append_interval(&self, run_id: &str, interval: &StoredInterval) -> Result<(), StoreError> {
        let stall = *self.stalling.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(by) = stall {
            std::thread::sleep(by);
        }
        if let Some(message) = self.refusing.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return Err(StoreError::Remote { key: run_id.to_string(), message });
        }
        self.runs().entry(run_id.to_string()).or_default().intervals.push(interval.clone());
        Ok(())
    }

    fn save_report(&self, run_id: &str, json: &str, text: &str) -> Result<(), StoreError> {
        self.runs().entry(run_id.to_string()).or_default().report = Some((json.to_string(), text.to_string()));
        Ok(())
    }

    fn list(&self) -> Result<Vec<RunRecord>, StoreError> {
        Ok(self.runs().values().filter_map(|run| run.record.clone()).collect())
    }

    fn load_scenario(&self, run_id: &str) -> Result<String, StoreError> {
        let runs = self.runs();
        let run = runs.get(run_id).ok_or_else(|| missing(run_id))?;
        Ok(run.private.clone().unwrap_or_else(|| run.scenario.clone()))
    }

    fn load_intervals(&self, run_id: &str) -> Result<Vec<StoredInterval>, StoreError> {
        Ok(self.runs().get(run_id).map(|run| run.intervals.clone()).unwrap_or_default())
    }

    fn load_report(&self, run_id: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self.runs().get(run_id).and_then(|run| run.report.clone()))
    }

    fn stored_bytes(&self, run_id: &str) -> Result<u64, StoreError> {
        let runs = self.runs();
        let Some(run) = runs.get(run_id) else { return Ok(0) };
        let record = run.record.as_ref().and_then(|r| serde_json::to_vec(r).ok()).map_or(0, |v| v.len());
        let intervals: usize = run.intervals.iter().filter_map(|i| serde_json::to_vec(i).ok()).map(|v| v.len()).sum();
        let report = run.report.as_ref().map_or(0, |(json, text)| json.len() + text.len());
        Ok((record + run.scenario.len() + intervals + report) as u64)
    }

    fn prune(&self, before_unix_s: i64) -> Result<u64, StoreError> {
        let mut runs = self.runs();
        let before = runs.len();
        runs.retain(|_, run| {
            run.record.as_ref().is_none_or(|r| !r.is_terminal() || r.submitted_at_unix_s >= before_unix_s)
        });
        Ok((before - runs.len()) as u64)
    }
}
