//! The Stampede agent: a session with the coordinator, the runner (load
//! models and timing), drivers (one file per target kind) and workloads
//! (operation generators).
//!
//! The runner owns timing and drivers only execute; everything measured
//! goes into an outbox that survives reconnects, so a coordinator that goes
//! away loses nothing an agent measured.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod clock;
mod convert;
pub mod drivers;
pub mod health;
pub mod outbox;
pub mod runner;
pub mod session;
pub mod workloads;

use std::collections::BTreeMap;

pub use session::run_agent;

/// How an agent process runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The coordinator's gRPC URL, like `http://10.0.0.5:7700`.
    pub coordinator: String,
    /// Stable for the life of the process, so resent reports merge once.
    pub agent_id: String,
    pub host: String,
    pub labels: BTreeMap<String, String>,
    /// Connections this agent is willing to drive.
    pub capacity: u32,
    /// Token and TLS for the coordinator link.
    pub security: stampede_proto::security::ClientSecurity,
    /// With etcd: register there, and reach whichever coordinator leads
    /// (`coordinator` is then not used).
    pub etcd: Option<stampede_discovery::EtcdConfig>,
    /// Messages held for the coordinator at most (about one interval
    /// report per second per run); past it the oldest reports are dropped
    /// and counted.
    pub outbox_limit: usize,
    /// Where to serve the gRPC health service for probes, if anywhere.
    pub health_listen: Option<std::net::SocketAddr>,
}

/// A day and more of reports for one run while the coordinator is away.
pub const DEFAULT_OUTBOX_LIMIT: usize = 100_000;

impl AgentConfig {
    /// A configuration with this machine's host name and a process-unique id.
    pub fn new(coordinator: impl Into<String>) -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        Self {
            coordinator: coordinator.into(),
            agent_id: format!("{host}-{}", std::process::id()),
            host,
            labels: BTreeMap::new(),
            capacity: 10_000,
            security: Default::default(),
            etcd: None,
            outbox_limit: DEFAULT_OUTBOX_LIMIT,
            health_listen: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("coordinator `{0}`: {1}")]
    BadCoordinatorUrl(String, stampede_proto::security::SecurityError),
    #[error("the coordinator at {0} refused this agent: {1}")]
    Rejected(String, String),
    #[error("{0}")]
    Etcd(#[from] stampede_discovery::DiscoveryError),
    #[error("cannot serve health checks on {0}: {1}")]
    Health(std::net::SocketAddr, std::io::Error),
}
