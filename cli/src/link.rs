//! Options for how a client or agent reaches the coordinator, and how the
//! coordinator guards itself: token and TLS. Shared by every subcommand
//! that talks to a coordinator so that they spell them the same way.

use std::path::PathBuf;

use clap::Args;
use stampede_discovery::{DEFAULT_LEASE_TTL_S, DEFAULT_PREFIX, EtcdConfig};
use stampede_proto::security::{ClientSecurity, ClientTlsFiles, ServerSecurity, Token};

/// Where etcd is, for coordinators that elect a leader there and for agents
/// and clients that find the leader there.
#[derive(Args, Clone, Debug)]
pub struct EtcdArgs {
    /// etcd address(es), comma-separated `host:port` or `http://host:port`.
    /// Coordinators elect a leader and keep runs there; agents and clients
    /// find the leader there (and --coordinator is not used).
    #[arg(long, env = "STAMPEDE_ETCD", value_name = "URL")]
    pub etcd: Option<String>,
    /// Key prefix in etcd; installations sharing one etcd use different ones.
    #[arg(long, env = "STAMPEDE_ETCD_PREFIX", default_value = DEFAULT_PREFIX, value_name = "PREFIX")]
    pub etcd_prefix: String,
    /// Seconds a lease in etcd outlives its holder: how long a dead leader
    /// blocks the standby, and a dead agent stays registered.
    #[arg(long, default_value_t = DEFAULT_LEASE_TTL_S, value_name = "SECONDS")]
    pub etcd_lease_ttl: i64,
}

impl EtcdArgs {
    pub fn config(&self) -> anyhow::Result<Option<EtcdConfig>> {
        self.etcd
            .as_deref()
            .map(|urls| EtcdConfig::parse(urls, &self.etcd_prefix, self.etcd_lease_ttl))
            .transpose()
            .map_err(anyhow::Error::from)
    }
}

#[derive(Args, Clone, Debug)]
pub struct CoordinatorLink {
    /// The coordinator's gRPC address (`host:port` or a URL; `https://` for TLS).
    #[arg(long, env = "STAMPEDE_COORDINATOR", default_value = crate::DEFAULT_COORDINATOR)]
    pub coordinator: String,
    /// File holding the coordinator's token. Without it the STAMPEDE_TOKEN
    /// environment variable is used, if set.
    #[arg(long, env = "STAMPEDE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the coordinator's certificate; connects with TLS.
    #[arg(long, env = "STAMPEDE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for a coordinator that requires one (mutual TLS).
    #[arg(long, env = "STAMPEDE_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Key (PEM) of --tls-cert.
    #[arg(long, env = "STAMPEDE_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

impl CoordinatorLink {
    /// The coordinator to talk to: --coordinator, or with --etcd the
    /// coordinator that leads now.
    pub async fn coordinator_url(&self) -> anyhow::Result<String> {
        let Some(config) = self.etcd.config()? else { return Ok(self.coordinator.clone()) };
        let etcd = stampede_discovery::Etcd::connect(&config).await?;
        etcd.leader().await?.ok_or_else(|| {
            anyhow::anyhow!(
                "no coordinator leads in etcd at {} under {}; start `stampede coordinator --etcd ...`",
                config.endpoints.join(","),
                config.prefix
            )
        })
    }

    pub fn security(&self) -> anyhow::Result<ClientSecurity> {
        Ok(ClientSecurity {
            token: Token::resolve(self.token_file.as_deref()).map_err(anyhow::Error::msg)?,
            tls: ClientTlsFiles { ca: self.tls_ca.clone(), cert: self.tls_cert.clone(), key: self.tls_key.clone() },
        })
    }
}

#[derive(Args, Clone, Debug)]
pub struct ServerGuard {
    /// File holding the token that agents and clients must present. Without
    /// it the STAMPEDE_TOKEN environment variable is used; with neither,
    /// any caller is accepted (keep such a coordinator on loopback).
    #[arg(long, env = "STAMPEDE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Certificate (PEM) to serve TLS with; needs --tls-key.
    #[arg(long, env = "STAMPEDE_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Key (PEM) of --tls-cert.
    #[arg(long, env = "STAMPEDE_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate (PEM) for client certificates: TLS becomes mutual and
    /// callers without a certificate it signed cannot connect.
    #[arg(long, env = "STAMPEDE_TLS_CLIENT_CA", value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServerGuard {
    pub fn security(&self) -> anyhow::Result<ServerSecurity> {
        Ok(ServerSecurity {
            token: Token::resolve(self.token_file.as_deref()).map_err(anyhow::Error::msg)?,
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            client_ca: self.tls_client_ca.clone(),
        })
    }
}

/// `sweep` and `suite` run on an in-process coordinator unless given one:
/// `--coordinator` (or `--etcd`, its leader) and its agents.
#[derive(Args, Clone, Debug)]
pub struct RemoteLink {
    /// Run on this coordinator and its agents (`host:port` or a URL; `https://` for TLS)
    /// instead of an in-process one.
    #[arg(long, value_name = "URL")]
    pub coordinator: Option<String>,
    /// File holding the coordinator's token (else STAMPEDE_TOKEN, if set).
    #[arg(long, env = "STAMPEDE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the coordinator's certificate; connects with TLS.
    #[arg(long, env = "STAMPEDE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for a coordinator that requires one (mutual TLS).
    #[arg(long, env = "STAMPEDE_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Key (PEM) of --tls-cert.
    #[arg(long, env = "STAMPEDE_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// etcd address(es): run on the coordinator that leads there.
    #[arg(long, value_name = "URL", conflicts_with = "coordinator")]
    pub etcd: Option<String>,
    /// Key prefix in etcd.
    #[arg(long, default_value = DEFAULT_PREFIX, value_name = "PREFIX")]
    pub etcd_prefix: String,
}

impl RemoteLink {
    /// The coordinator to use, or None for an in-process one.
    pub fn link(&self) -> Option<CoordinatorLink> {
        if self.coordinator.is_none() && self.etcd.is_none() {
            return None;
        }
        Some(CoordinatorLink {
            coordinator: self.coordinator.clone().unwrap_or_else(|| crate::DEFAULT_COORDINATOR.to_string()),
            token_file: self.token_file.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            etcd: EtcdArgs {
                etcd: self.etcd.clone(),
                etcd_prefix: self.etcd_prefix.clone(),
                etcd_lease_ttl: DEFAULT_LEASE_TTL_S,
            },
        })
    }
}
