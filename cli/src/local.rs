//! `stampede run`: the distributed flow on one machine. An in-process
//! coordinator on a loopback port, N in-process agents that talk to it over
//! real gRPC, and the built-in KV server when the target names no endpoint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use stampede_agent::AgentConfig;
use stampede_common::Scenario;
use stampede_common::scenario::TargetKind;
use stampede_coordinator::engine::EngineConfig;
use stampede_coordinator::server::{Coordinator, CoordinatorConfig};
use stampede_proto::security::{ClientSecurity, ServerSecurity, Token};
use stampede_proto::v1 as pb;
use tokio::sync::watch;

const QUICKSTART: &str = include_str!("../../scenarios/quickstart.yaml");

/// A temporary data directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What `stampede run` was given besides the scenario and its endpoints.
pub struct RunOptions {
    pub agents: Option<u32>,
    pub json: Option<PathBuf>,
    pub hlog: Option<PathBuf>,
    /// Where the HTML report goes.
    pub html: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    /// The progress line, the terminal dashboard or nothing.
    pub display: crate::watching::Display,
    /// `None`: the scenario's duration plus [`TIMEOUT_MARGIN`]; zero: none.
    pub timeout: Option<Duration>,
    /// Where to serve the live dashboard, if anywhere.
    pub dashboard: Option<Dashboard>,
}

/// `--dashboard-listen` and the token its page asks for.
pub struct Dashboard {
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
}

impl Dashboard {
    /// The token the dashboard asks for: the user's, or none on loopback.
    fn check(&self) -> anyhow::Result<stampede_proto::security::TokenCheck> {
        let token = Token::resolve(self.token_file.as_deref())?;
        if token.is_none() && !self.listen.ip().is_loopback() {
            anyhow::bail!(
                "--dashboard-listen {} is reachable from other hosts: give the token its page asks for with \
                 --token-file FILE or STAMPEDE_TOKEN, or listen on 127.0.0.1",
                self.listen
            );
        }
        Ok(stampede_proto::security::TokenCheck::new(token))
    }
}

/// What the default `--timeout` allows beyond the scenario's duration:
/// preload, setup, cleanup and the report.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(600);
/// How long a run cancelled by `--timeout` has to send its report.
const CANCEL_GRACE: Duration = Duration::from_secs(30);

pub async fn run(path: Option<&Path>, endpoints: &[String], options: RunOptions) -> anyhow::Result<u8> {
    let RunOptions { agents, json, hlog, html, data_dir, display, timeout, dashboard } = options;
    let quiet = display == crate::watching::Display::Quiet;
    let http_token = dashboard.as_ref().map(Dashboard::check).transpose()?;
    let files = crate::client::Files { json: json.as_deref(), hlog: hlog.as_deref(), html: html.as_deref() };
    let (text, origin) = match path {
        Some(path) => (crate::client::read_scenario(path)?, path.display().to_string()),
        None => (QUICKSTART.to_string(), "built-in quickstart".to_string()),
    };
    let (scenario, text) = Scenario::with_endpoints(&text, endpoints).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    let agent_count = agents.unwrap_or(scenario.agents);
    let limit = match timeout {
        None => Some(scenario.duration + TIMEOUT_MARGIN),
        Some(zero) if zero.is_zero() => None,
        Some(limit) => Some(limit),
    };
    if agent_count == 0 {
        anyhow::bail!("--agents must be at least 1");
    }
    if scenario.sweep.is_some() {
        anyhow::bail!("{origin} has a `sweep:` section: run it with `stampede sweep {origin}`");
    }
    let mut cluster =
        Cluster::start(needs_embedded_kv(&scenario), agent_count, data_dir, dashboard.as_ref(), http_token).await?;
    let client = &mut cluster.client;
    let run_id = crate::client::submit_when_ready(client, text, agent_count)
        .await
        .map_err(|s| anyhow::anyhow!("{origin}: {}", crate::client::explain(&s)))?;
    if !quiet {
        eprintln!("run {run_id}: {} on {agent_count} in-process agent(s), {origin}", scenario.name);
    }
    // Ctrl-C cancels the run; the report of what was measured still prints.
    let mut cancel_client = client.clone();
    let cancel_id = run_id.clone();
    let canceller = tokio::spawn(async move {
        crate::daemons::shutdown_signal().await;
        eprintln!("\ncancelling run {cancel_id}");
        let _ = cancel_client.cancel_run(pb::CancelRunRequest { run_id: cancel_id }).await;
    });
    let code = watch_within(client, &run_id, files, display, limit).await;
    canceller.abort();
    cluster.stop().await;
    code
}

/// Whether `scenario` runs against the built-in KV server.
pub fn needs_embedded_kv(scenario: &Scenario) -> bool {
    scenario.target.kind == TargetKind::Kv && scenario.target.endpoints.is_empty()
}

/// An in-process coordinator on a loopback port with its agents (and the
/// built-in KV server when the scenario's `kv` target names no endpoint),
/// talking real gRPC: what `run` and `sweep` submit their runs to.
pub struct Cluster {
    pub client: crate::client::Client,
    stop_tx: watch::Sender<bool>,
    coordinator_task: tokio::task::JoinHandle<Result<(), stampede_coordinator::server::ServeError>>,
    _cleanup: Option<TempDir>,
}

impl Cluster {
    /// `embed_kv`: start the built-in KV server for `kv` targets that name
    /// no endpoint ([`needs_embedded_kv`]).
    pub async fn start(
        embed_kv: bool,
        agent_count: u32,
        data_dir: Option<PathBuf>,
        dashboard: Option<&Dashboard>,
        http_token: Option<stampede_proto::security::TokenCheck>,
    ) -> anyhow::Result<Self> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let mut embedded_kv = None;
        if embed_kv {
            let listener =
                tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot start the built-in KV server")?;
            let addr = listener.local_addr()?;
            let config = stampede_kvserver::ServerConfig { node_id: "kv-0".to_string(), ..Default::default() };
            tokio::spawn(stampede_kvserver::serve(listener, config, stopped(stop_rx.clone())));
            embedded_kv = Some(addr.to_string());
        }

        let (data_dir, cleanup) = match data_dir {
            Some(dir) => (dir, None),
            None => {
                let dir = std::env::temp_dir().join(format!("stampede-run-{}", std::process::id()));
                (dir.clone(), Some(TempDir(dir)))
            }
        };
        let token = Token::random();
        let client_security = ClientSecurity { token: Some(token.clone()), ..ClientSecurity::default() };
        let config = CoordinatorConfig {
            data_dir,
            engine: EngineConfig { embedded_kv, coordinator_id: "local".to_string(), ..EngineConfig::default() },
            heartbeat_interval: Duration::from_secs(1),
            // A fresh token: other users of this machine cannot reach the
            // in-process coordinator's loopback port to submit or report.
            security: ServerSecurity { token: Some(token.clone()), ..ServerSecurity::default() },
            etcd: None,
            advertise: None,
            http_listen: dashboard.map(|d| d.listen),
            results: None,
            http_token,
        };
        let loopback: SocketAddr = "127.0.0.1:0".parse()?;
        let coordinator =
            Coordinator::bind(loopback, config).await.context("cannot start the in-process coordinator")?;
        let url = format!("http://{}", coordinator.local_addr()?);
        if let Some(http) = coordinator.http_addr() {
            // Printed even with --quiet: it is what the user asked for.
            eprintln!("dashboard: http://{http}/");
        }
        let coordinator_task = tokio::spawn(coordinator.serve(stopped(stop_rx.clone())));

        for index in 1..=agent_count {
            let mut config = AgentConfig::new(url.clone());
            config.agent_id = format!("local-{index}");
            config.security = client_security.clone();
            tokio::spawn(stampede_agent::run_agent(config, stopped(stop_rx.clone())));
        }
        let client = crate::client::connect_with(&url, &client_security).await?;
        Ok(Self { client, stop_tx, coordinator_task, _cleanup: cleanup })
    }

    /// Stops the agents, the KV server and the coordinator.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.coordinator_task).await;
    }
}

/// Follows the run as [`crate::client::watch`] does; past `limit` cancels
/// it and waits [`CANCEL_GRACE`] for the report of what was measured.
async fn watch_within(
    client: &mut crate::client::Client,
    run_id: &str,
    files: crate::client::Files<'_>,
    display: crate::watching::Display,
    limit: Option<Duration>,
) -> anyhow::Result<u8> {
    let mut canceller = client.clone();
    let watching = crate::watching::watch(client, run_id, files, display);
    tokio::pin!(watching);
    let Some(limit) = limit else { return watching.await };
    tokio::select! {
        code = &mut watching => return code,
        () = tokio::time::sleep(limit) => {}
    }
    let shown = format!("{limit:?}");
    eprintln!("\nrun {run_id} has not ended within --timeout {shown}; cancelling it");
    if let Err(status) = canceller.cancel_run(pb::CancelRunRequest { run_id: run_id.to_string() }).await {
        eprintln!("cannot cancel run {run_id}: {}", crate::client::explain(&status));
    }
    match tokio::time::timeout(CANCEL_GRACE, &mut watching).await {
        // A run that ended anyway keeps its verdict; a cancelled one is an error (2).
        Ok(code) => code,
        Err(_) => anyhow::bail!(
            "run {run_id} did not end within --timeout {shown}, nor within {}s of being cancelled; \
             no report (a target or agent may be hanging: run again with --log info)",
            CANCEL_GRACE.as_secs()
        ),
    }
}

/// Where `sweep` and `suite` run their runs: an in-process [`Cluster`], or
/// a coordinator given with `--coordinator`/`--etcd` and its own agents.
pub enum Place {
    Local(Cluster),
    Remote(crate::client::Client),
}

impl Place {
    pub async fn open(
        remote: Option<&crate::link::CoordinatorLink>,
        embed_kv: bool,
        agents: u32,
    ) -> anyhow::Result<Self> {
        match remote {
            Some(link) => Ok(Self::Remote(crate::client::connect(link).await?)),
            None => Ok(Self::Local(Cluster::start(embed_kv, agents, None, None, None).await?)),
        }
    }

    pub fn client(&mut self) -> &mut crate::client::Client {
        match self {
            Self::Local(cluster) => &mut cluster.client,
            Self::Remote(client) => client,
        }
    }

    pub async fn close(self) {
        if let Self::Local(cluster) = self {
            cluster.stop().await;
        }
    }
}
