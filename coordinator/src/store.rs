//! `RunStore`: where runs live so that nothing measured is lost when the
//! coordinator stops. The default is a data directory with one folder per
//! run: `scenario.yaml` (passwords hidden), `run.json` (state),
//! `intervals.jsonl` (every merged report, appended as it arrives),
//! `report.json` and `report.txt`. A scenario with passwords is also kept
//! as written in `scenario.private.yaml` (readable by its owner only) while
//! its run may need it, that is until the run ends.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stampede_common::interval::IntervalReport;
use stampede_common::report::RunStatus;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("etcd key `{key}`: {message}")]
    Remote { key: String, message: String },
}

/// An agent taking part in a run, as recorded with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunAgent {
    pub id: String,
    pub host: String,
    pub clock_offset_us: i64,
    pub clock_rtt_us: i64,
}

/// Where a run is in its life: `queued -> preparing -> running ->` one of
/// the four ends. Stored and shown by its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Queued,
    Preparing,
    Running,
    Passed,
    Failed,
    Error,
    Aborted,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Preparing => "preparing",
            Self::Running => "running",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Error => "error",
            Self::Aborted => "aborted",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Passed | Self::Failed | Self::Error | Self::Aborted)
    }
}

impl From<RunStatus> for RunState {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Passed => Self::Passed,
            RunStatus::Failed => Self::Failed,
            RunStatus::Error => Self::Error,
            RunStatus::Aborted => Self::Aborted,
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The durable state of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub name: String,
    pub target_kind: String,
    pub state: RunState,
    pub submitted_at_unix_s: i64,
    pub agent_count: u32,
    pub endpoints: Vec<String>,
    pub agents: Vec<RunAgent>,
    pub start_at_us: Option<i64>,
    pub error: Option<String>,
    /// Each agent's part, so that a restarted coordinator can resume.
    #[serde(default)]
    pub plans: Vec<crate::scheduler::AgentPlan>,
    /// Agents that delivered their final report, with its error ("" for none).
    #[serde(default)]
    pub finals: std::collections::BTreeMap<String, String>,
    /// Agents lost during the run.
    #[serde(default)]
    pub losses: Vec<RecordedLoss>,
    /// Interval reports each agent dropped from its full buffer (agents
    /// that dropped none are absent).
    #[serde(default)]
    pub reports_dropped: std::collections::BTreeMap<String, u64>,
    /// The trace context of the run's span, so a coordinator that resumes
    /// the run continues its trace (empty when traces are not exported).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub trace_context: stampede_telemetry::TraceContext,
}

/// An agent's absence as the engine saw it (seconds after the start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedLoss {
    pub agent: String,
    pub lost_at_s: f64,
    pub back_at_s: Option<f64>,
}

impl RunRecord {
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}

/// An interval report with the agent that sent it, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredInterval {
    pub agent_id: String,
    pub report: IntervalReport,
}

/// Persistence of runs. Implementations must make `append_interval`
/// durable before returning: the coordinator acknowledges a report to its
/// agent only after it returns.
pub trait RunStore: Send + Sync {
    /// Stores a new run: its scenario as shown (passwords hidden) and, if
    /// that differs, as written (`private`), which `load_scenario` returns
    /// until `forget_private`.
    fn create(&self, record: &RunRecord, scenario_yaml: &str, private: Option<&str>) -> Result<(), StoreError>;
    /// Drops the scenario as written, once the run no longer needs it.
    fn forget_private(&self, run_id: &str) -> Result<(), StoreError>;
    fn update(&self, record: &RunRecord) -> Result<(), StoreError>;
    fn append_interval(&self, run_id: &str, interval: &StoredInterval) -> Result<(), StoreError>;
    fn save_report(&self, run_id: &str, json: &str, text: &str) -> Result<(), StoreError>;
    fn list(&self) -> Result<Vec<RunRecord>, StoreError>;
    fn load_scenario(&self, run_id: &str) -> Result<String, StoreError>;
    fn load_intervals(&self, run_id: &str) -> Result<Vec<StoredInterval>, StoreError>;
    /// The stored report as (json, text), if the run has one.
    fn load_report(&self, run_id: &str) -> Result<Option<(String, String)>, StoreError>;
}

const PRIVATE_SCENARIO: &str = "scenario.private.yaml";

/// The default store: a directory on local disk.
pub struct FileStore {
    root: PathBuf,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { action, path: path.to_path_buf(), source }
}

impl FileStore {
    /// Opens (and creates) `root/runs`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let runs = root.join("runs");
        fs::create_dir_all(&runs).map_err(io("create", &runs))?;
        Ok(Self { root: runs })
    }

    fn run_dir(&self, run_id: &str) -> PathBuf {
        // Run ids are generated by the coordinator; keep only safe characters
        // so that an id given by a client cannot leave the data directory.
        let safe: String = run_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        self.root.join(safe)
    }

    fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
        fs::rename(&tmp, path).map_err(io("rename into", path))
    }
}

impl RunStore for FileStore {
    fn create(&self, record: &RunRecord, scenario_yaml: &str, private: Option<&str>) -> Result<(), StoreError> {
        let dir = self.run_dir(&record.run_id);
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        Self::write_atomically(&dir.join("scenario.yaml"), scenario_yaml.as_bytes())?;
        if let Some(text) = private {
            let path = dir.join(PRIVATE_SCENARIO);
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(io("create", &path))?;
            file.write_all(text.as_bytes()).map_err(io("write", &path))?;
        }
        self.update(record)
    }

    fn forget_private(&self, run_id: &str) -> Result<(), StoreError> {
        let path = self.run_dir(run_id).join(PRIVATE_SCENARIO);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    fn update(&self, record: &RunRecord) -> Result<(), StoreError> {
        let path = self.run_dir(&record.run_id).join("run.json");
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| StoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
        Self::write_atomically(&path, &json)
    }

    fn append_interval(&self, run_id: &str, interval: &StoredInterval) -> Result<(), StoreError> {
        let path = self.run_dir(run_id).join("intervals.jsonl");
        let mut line = serde_json::to_vec(interval)
            .map_err(|e| StoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
        line.push(b'\n');
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(io("open", &path))?;
        file.write_all(&line).map_err(io("append to", &path))
    }

    fn save_report(&self, run_id: &str, json: &str, text: &str) -> Result<(), StoreError> {
        let dir = self.run_dir(run_id);
        Self::write_atomically(&dir.join("report.json"), json.as_bytes())?;
        Self::write_atomically(&dir.join("report.txt"), text.as_bytes())
    }

    fn list(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut records = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io("list", &self.root))? {
            let path = entry.map_err(io("list", &self.root))?.path().join("run.json");
            let Ok(bytes) = fs::read(&path) else { continue };
            match serde_json::from_slice(&bytes) {
                Ok(record) => records.push(record),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping unreadable run")
                }
            }
        }
        records.sort_by(|a: &RunRecord, b| a.run_id.cmp(&b.run_id));
        Ok(records)
    }

    fn load_scenario(&self, run_id: &str) -> Result<String, StoreError> {
        let dir = self.run_dir(run_id);
        match fs::read_to_string(dir.join(PRIVATE_SCENARIO)) {
            Ok(text) => Ok(text),
            Err(_) => {
                let path = dir.join("scenario.yaml");
                fs::read_to_string(&path).map_err(io("read", &path))
            }
        }
    }

    fn load_intervals(&self, run_id: &str) -> Result<Vec<StoredInterval>, StoreError> {
        let path = self.run_dir(run_id).join("intervals.jsonl");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &path)(e)),
        };
        let mut intervals = Vec::new();
        for (number, line) in text.lines().enumerate() {
            match serde_json::from_str(line) {
                Ok(interval) => intervals.push(interval),
                // A crash can cut the last line short; everything before it counts.
                Err(_) if number + 1 == text.lines().count() => break,
                Err(e) => {
                    return Err(StoreError::Corrupt { path, message: format!("line {}: {e}", number + 1) });
                }
            }
        }
        Ok(intervals)
    }

    fn load_report(&self, run_id: &str) -> Result<Option<(String, String)>, StoreError> {
        let dir = self.run_dir(run_id);
        let json_path = dir.join("report.json");
        let json = match fs::read_to_string(&json_path) {
            Ok(json) => json,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &json_path)(e)),
        };
        let text_path = dir.join("report.txt");
        let text = fs::read_to_string(&text_path).map_err(io("read", &text_path))?;
        Ok(Some((json, text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> RunRecord {
        RunRecord {
            run_id: id.into(),
            name: "n".into(),
            target_kind: "kv".into(),
            state: RunState::Queued,
            submitted_at_unix_s: 1,
            agent_count: 1,
            endpoints: vec![],
            agents: vec![],
            start_at_us: None,
            error: None,
            plans: vec![],
            finals: Default::default(),
            losses: vec![],
            reports_dropped: Default::default(),
            trace_context: Default::default(),
        }
    }

    #[test]
    fn runs_survive_reopening_and_a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        store.create(&record("r1"), "name: x", None).expect("create");
        let interval = StoredInterval { agent_id: "a".into(), report: IntervalReport { seq: 3, ..Default::default() } };
        store.append_interval("r1", &interval).expect("append");
        store.append_interval("r1", &interval).expect("append");
        let path = dir.path().join("runs/r1/intervals.jsonl");
        let mut torn = fs::read(&path).expect("read");
        torn.extend_from_slice(b"{\"agent_id\":\"a\",\"rep");
        fs::write(&path, torn).expect("write");
        let reopened = FileStore::open(dir.path()).expect("open");
        assert_eq!(reopened.list().expect("list"), vec![record("r1")]);
        assert_eq!(reopened.load_intervals("r1").expect("load").len(), 2);
        assert_eq!(reopened.load_scenario("r1").expect("scenario"), "name: x");
        assert_eq!(reopened.load_report("r1").expect("report"), None);
        reopened.save_report("r1", "{}", "text").expect("save");
        assert_eq!(reopened.load_report("r1").expect("report"), Some(("{}".into(), "text".into())));
    }

    #[test]
    fn the_scenario_as_written_is_private_and_dropped_when_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        store.create(&record("r2"), "pw: ***", Some("pw: hunter2")).expect("create");
        let private = dir.path().join("runs/r2/scenario.private.yaml");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&private).expect("private file").permissions().mode();
            assert_eq!(mode & 0o077, 0, "only its owner may read it: {mode:o}");
        }
        assert_eq!(store.load_scenario("r2").expect("load"), "pw: hunter2");
        store.forget_private("r2").expect("forget");
        store.forget_private("r2").expect("forgetting twice is fine");
        assert!(!private.exists());
        assert_eq!(store.load_scenario("r2").expect("load"), "pw: ***");
    }

    #[test]
    fn a_hostile_run_id_stays_inside_the_data_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        assert!(store.run_dir("../../etc/passwd").starts_with(dir.path().join("runs")));
    }
}
