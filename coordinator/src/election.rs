//! Who may lead. A coordinator serves runs only while it leads; the
//! [`Election`] decides when that is and which store the leader keeps its
//! runs in.
//!
//! - [`AlwaysLeader`] (the default): leads at once, for ever, with the
//!   data directory as its store.
//! - [`EtcdElection`] (`--etcd`): campaigns in etcd with the coordinator's
//!   advertised address and waits as a standby until it wins; the leader
//!   keeps its runs in etcd, so whichever coordinator wins next resumes
//!   them. Leadership ends when its lease lapses.
//!
//! With `--results postgres://...` either keeps its runs in PostgreSQL
//! instead; an etcd leader writes there fenced by its term (the etcd
//! revision its leadership began at), and etcd keeps only the election and
//! the agents' registrations.

use std::path::PathBuf;
use std::sync::Arc;

use stampede_discovery::{Etcd, EtcdConfig, Term};

use crate::store::{EtcdStore, FileStore, PostgresStore, RunStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Etcd(#[from] stampede_discovery::DiscoveryError),
}

/// How a coordinator becomes the leader.
pub trait Election: Send {
    /// Describes where this coordinator campaigns, for the log.
    fn describe(&self) -> String;
    /// What callers are told until this coordinator leads.
    fn waiting(&self) -> &'static str;
    /// Waits until this coordinator leads.
    fn lead(&mut self) -> impl Future<Output = Result<Leadership, ElectionError>> + Send;
}

/// A won election: the store to keep runs in, for as long as it lasts.
pub struct Leadership {
    pub store: Arc<dyn RunStore>,
    term: Option<Term>,
}

impl Leadership {
    /// Completes with the reason when the leadership is lost; never for
    /// the always-leader.
    pub async fn lost(&mut self) -> String {
        match self.term.as_mut() {
            Some(term) => (&mut term.lost).await.unwrap_or_else(|_| "the lease keeper stopped".to_string()),
            None => std::future::pending().await,
        }
    }

    /// Steps down at once (on a clean stop), so a standby need not wait for
    /// the lease to lapse.
    pub async fn resign(self) {
        if let Some(term) = self.term {
            term.resign().await;
        }
    }
}

/// The default: one coordinator, always the leader, runs on local disk.
pub struct AlwaysLeader {
    data_dir: PathBuf,
    results: Option<String>,
}

impl AlwaysLeader {
    pub fn new(data_dir: PathBuf, results: Option<String>) -> Self {
        Self { data_dir, results }
    }
}

/// Opens the PostgreSQL results store off the async threads.
async fn open_postgres(url: String, term: Option<i64>) -> Result<PostgresStore, ElectionError> {
    Ok(tokio::task::spawn_blocking(move || PostgresStore::open(&url, term))
        .await
        .map_err(|e| StoreError::Remote { key: "store".to_string(), message: e.to_string() })??)
}

impl Election for AlwaysLeader {
    fn waiting(&self) -> &'static str {
        "this coordinator is still opening its store; try again in a moment"
    }

    fn describe(&self) -> String {
        match &self.results {
            Some(url) => format!("runs in PostgreSQL {}", stampede_common::scenario::redact(url)),
            None => format!("data in {}", self.data_dir.display()),
        }
    }

    async fn lead(&mut self) -> Result<Leadership, ElectionError> {
        let store: Arc<dyn RunStore> = match &self.results {
            Some(url) => Arc::new(open_postgres(url.clone(), None).await?),
            None => Arc::new(FileStore::open(&self.data_dir)?),
        };
        Ok(Leadership { store, term: None })
    }
}

/// Several coordinators, one leader, elected through etcd.
pub struct EtcdElection {
    etcd: Etcd,
    /// The gRPC URL agents and clients use to reach this coordinator.
    advertise: String,
    results: Option<String>,
}

impl EtcdElection {
    pub async fn connect(
        config: &EtcdConfig,
        advertise: String,
        results: Option<String>,
    ) -> Result<Self, ElectionError> {
        Ok(Self { etcd: Etcd::connect(config).await?, advertise, results })
    }
}

impl Election for EtcdElection {
    fn waiting(&self) -> &'static str {
        "this coordinator is a standby and does not lead now; find the leader with --etcd instead of --coordinator"
    }

    fn describe(&self) -> String {
        let config = self.etcd.config();
        let election = format!("etcd {} under {}", config.endpoints.join(","), config.prefix);
        match &self.results {
            Some(url) => {
                format!("elected in {election}, runs in PostgreSQL {}", stampede_common::scenario::redact(url))
            }
            None => format!("runs in {election}"),
        }
    }

    async fn lead(&mut self) -> Result<Leadership, ElectionError> {
        if let Ok(Some(leader)) = self.etcd.leader().await {
            tracing::info!(%leader, "standby: another coordinator leads; this one takes over when it goes");
        }
        let term = self.etcd.campaign(&self.advertise).await?;
        let fence = term.fence.clone();
        let store: Arc<dyn RunStore> = match &self.results {
            Some(url) => Arc::new(open_postgres(url.clone(), Some(fence.term())).await?),
            None => {
                let config = self.etcd.config().clone();
                let store = tokio::task::spawn_blocking(move || EtcdStore::open(config, Some(fence)))
                    .await
                    .map_err(|e| StoreError::Remote { key: "store".to_string(), message: e.to_string() })??;
                Arc::new(store)
            }
        };
        Ok(Leadership { store, term: Some(term) })
    }
}
