//! `EtcdStore`: the run store of a coordinator that leads through etcd, so
//! that a standby taking over finds every run and every acknowledged
//! interval. Keys, under the configured prefix:
//!
//! | key | value |
//! |---|---|
//! | `records/{run}` | run.json (the record) |
//! | `runs/{run}/scenario`, `runs/{run}/private` | the scenario as shown, and as written while the run needs it |
//! | `runs/{run}/intervals/{seq:020}/{agent}` | one merged interval report |
//! | `runs/{run}/report.json`, `runs/{run}/report.txt` | the final report |
//!
//! Every write is fenced by the leadership: once another coordinator
//! leads, writes fail and nothing more is acknowledged here.
//!
//! The engine calls the store synchronously, so the etcd client lives on a
//! thread of its own with its own runtime; a call sends the operation there
//! and waits for the answer, as a file write would wait for the disk.

use std::path::PathBuf;
use std::sync::mpsc as sync_mpsc;

use stampede_discovery::{DiscoveryError, Etcd, EtcdConfig, Fence};
use tokio::sync::mpsc;

use super::{RunRecord, RunStore, StoreError, StoredInterval};

enum Op {
    Put(String, Vec<u8>),
    Delete(String),
    DeletePrefix(String),
    Compact,
    Get(String),
    GetPrefix(String),
}

enum Answer {
    Done,
    Value(Option<Vec<u8>>),
    Values(Vec<(String, Vec<u8>)>),
}

type Job = (Op, sync_mpsc::Sender<Result<Answer, DiscoveryError>>);

pub struct EtcdStore {
    prefix: String,
    jobs: mpsc::UnboundedSender<Job>,
}

fn safe(run_id: &str) -> String {
    run_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

fn remote(key: &str, message: impl Into<String>) -> StoreError {
    StoreError::Remote { key: key.to_string(), message: message.into() }
}

impl EtcdStore {
    /// Connects (on the store's own thread) and returns once etcd answered.
    /// Writes carry `fence` when given.
    pub fn open(config: EtcdConfig, fence: Option<Fence>) -> Result<Self, StoreError> {
        let prefix = config.prefix.clone();
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = sync_mpsc::channel::<Result<(), StoreError>>();
        std::thread::Builder::new()
            .name("etcd-store".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(StoreError::Io {
                            action: "start a runtime for",
                            path: PathBuf::from("the etcd store"),
                            source: error,
                        }));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let etcd = match Etcd::connect(&config).await {
                        Ok(etcd) => etcd,
                        Err(error) => {
                            let _ = ready_tx.send(Err(remote(&config.prefix, error.to_string())));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while let Some((op, reply)) = queue.recv().await {
                        let answer = match op {
                            Op::Put(key, value) => etcd.put(&key, value, fence.as_ref()).await.map(|()| Answer::Done),
                            Op::Delete(key) => etcd.delete(&key, fence.as_ref()).await.map(|()| Answer::Done),
                            Op::DeletePrefix(prefix) => {
                                etcd.delete_prefix(&prefix, fence.as_ref()).await.map(|()| Answer::Done)
                            }
                            Op::Compact => etcd.compact().await.map(|()| Answer::Done),
                            Op::Get(key) => etcd.get(&key).await.map(Answer::Value),
                            Op::GetPrefix(prefix) => etcd.get_prefix(&prefix).await.map(Answer::Values),
                        };
                        let _ = reply.send(answer);
                    }
                });
            })
            .map_err(|e| StoreError::Io {
                action: "start a thread for",
                path: PathBuf::from("the etcd store"),
                source: e,
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self { prefix, jobs }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(remote(&prefix, "the etcd store's thread stopped")),
        }
    }

    fn call(&self, key: &str, op: Op) -> Result<Answer, StoreError> {
        let (reply, answer) = sync_mpsc::channel();
        self.jobs.send((op, reply)).map_err(|_| remote(key, "the etcd store's thread stopped"))?;
        answer
            .recv()
            .map_err(|_| remote(key, "the etcd store's thread stopped"))?
            .map_err(|error| remote(key, error.to_string()))
    }

    fn put(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<(), StoreError> {
        self.call(key, Op::Put(key.to_string(), value.into())).map(|_| ())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.call(key, Op::Get(key.to_string()))? {
            Answer::Value(value) => Ok(value),
            _ => Ok(None),
        }
    }

    fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self.call(prefix, Op::GetPrefix(prefix.to_string()))? {
            Answer::Values(values) => Ok(values),
            _ => Ok(Vec::new()),
        }
    }

    fn record_key(&self, run_id: &str) -> String {
        format!("{}/records/{}", self.prefix, safe(run_id))
    }

    fn run_key(&self, run_id: &str, part: &str) -> String {
        format!("{}/runs/{}/{part}", self.prefix, safe(run_id))
    }

    fn text(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.get(key)?.map(|bytes| String::from_utf8(bytes).map_err(|_| corrupt(key, "not UTF-8"))).transpose()
    }
}

fn corrupt(key: &str, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt { path: PathBuf::from(key), message: message.into() }
}

impl RunStore for EtcdStore {
    fn create(&self, record: &RunRecord, scenario_yaml: &str, private: Option<&str>) -> Result<(), StoreError> {
        self.put(&self.run_key(&record.run_id, "scenario"), scenario_yaml)?;
        if let Some(text) = private {
            self.put(&self.run_key(&record.run_id, "private"), text)?;
        }
        self.update(record)
    }

    fn forget_private(&self, run_id: &str) -> Result<(), StoreError> {
        let key = self.run_key(run_id, "private");
        self.call(&key, Op::Delete(key.clone())).map(|_| ())
    }

    fn update(&self, record: &RunRecord) -> Result<(), StoreError> {
        let key = self.record_key(&record.run_id);
        let json = serde_json::to_vec(record).map_err(|e| corrupt(&key, e.to_string()))?;
        self.put(&key, json)
    }

    fn append_interval(&self, run_id: &str, interval: &StoredInterval) -> Result<(), StoreError> {
        let key = self.run_key(run_id, &format!("intervals/{:020}/{}", interval.report.seq, interval.agent_id));
        let json = serde_json::to_vec(interval).map_err(|e| corrupt(&key, e.to_string()))?;
        self.put(&key, json)
    }

    /// Stores the report, then lets the run's interval reports go (the
    /// report holds what they said) and compacts etcd's history, so that
    /// etcd's size stays flat over many runs.
    fn save_report(&self, run_id: &str, json: &str, text: &str) -> Result<(), StoreError> {
        self.put(&self.run_key(run_id, "report.json"), json)?;
        self.put(&self.run_key(run_id, "report.txt"), text)?;
        let intervals = self.run_key(run_id, "intervals/");
        self.call(&intervals, Op::DeletePrefix(intervals.clone()))?;
        if let Err(error) = self.call(&self.prefix, Op::Compact) {
            tracing::warn!(%error, "cannot compact etcd's history");
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut records = Vec::new();
        for (key, value) in self.get_prefix(&format!("{}/records/", self.prefix))? {
            match serde_json::from_slice(&value) {
                Ok(record) => records.push(record),
                Err(error) => tracing::warn!(%key, %error, "skipping unreadable run"),
            }
        }
        records.sort_by(|a: &RunRecord, b| a.run_id.cmp(&b.run_id));
        Ok(records)
    }

    fn load_scenario(&self, run_id: &str) -> Result<String, StoreError> {
        if let Some(text) = self.text(&self.run_key(run_id, "private"))? {
            return Ok(text);
        }
        let key = self.run_key(run_id, "scenario");
        self.text(&key)?.ok_or_else(|| remote(&key, "no such key"))
    }

    fn load_intervals(&self, run_id: &str) -> Result<Vec<StoredInterval>, StoreError> {
        let prefix = self.run_key(run_id, "intervals/");
        self.get_prefix(&prefix)?
            .into_iter()
            .map(|(key, value)| serde_json::from_slice(&value).map_err(|e| corrupt(&key, e.to_string())))
            .collect()
    }

    fn stored_bytes(&self, run_id: &str) -> Result<u64, StoreError> {
        let values = self.get_prefix(&self.run_key(run_id, ""))?;
        let record = self.get(&self.record_key(run_id))?.map_or(0, |v| v.len());
        Ok((values.iter().map(|(_, v)| v.len()).sum::<usize>() + record) as u64)
    }

    fn prune(&self, before_unix_s: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for record in self.list()? {
            if record.is_terminal() && record.submitted_at_unix_s < before_unix_s {
                let run = self.run_key(&record.run_id, "");
                self.call(&run, Op::DeletePrefix(run.clone()))?;
                let key = self.record_key(&record.run_id);
                self.call(&key, Op::Delete(key.clone()))?;
                deleted += 1;
            }
        }
        if deleted > 0
            && let Err(error) = self.call(&self.prefix, Op::Compact)
        {
            tracing::warn!(%error, "cannot compact etcd's history");
        }
        Ok(deleted)
    }

    fn load_report(&self, run_id: &str) -> Result<Option<(String, String)>, StoreError> {
        let Some(json) = self.text(&self.run_key(run_id, "report.json"))? else { return Ok(None) };
        let text_key = self.run_key(run_id, "report.txt");
        let text = self.text(&text_key)?.ok_or_else(|| remote(&text_key, "no such key"))?;
        Ok(Some((json, text)))
    }
}
