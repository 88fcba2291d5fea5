//! Long-running subcommands: coordinator, agent and kv-server. Each stops
//! cleanly on Ctrl-C or SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use stampede_agent::AgentConfig;
use stampede_common::units::parse_duration;
use stampede_coordinator::engine::EngineConfig;
use stampede_coordinator::server::{Coordinator, CoordinatorConfig};

#[derive(Args)]
pub struct CoordinatorArgs {
    /// gRPC address to listen on. Loopback by default; use 0.0.0.0:7700 to accept agents from other hosts.
    #[arg(long, env = "STAMPEDE_LISTEN", default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Directory where runs, intervals and reports are stored (with --results they are kept in PostgreSQL, with --etcd alone in etcd instead).
    #[arg(long, env = "STAMPEDE_DATA_DIR", default_value = "stampede-data")]
    data_dir: PathBuf,
    /// An agent silent for this long is lost.
    #[arg(long, default_value = "5s", value_parser = duration)]
    heartbeat_timeout: Duration,
    /// How long after a run's planned end to wait for agents' final reports.
    #[arg(long, default_value = "10s", value_parser = duration)]
    finish_grace: Duration,
    /// How long the store (data directory, etcd or PostgreSQL) may refuse a
    /// run's writes (a full disk, etcd over its quota) before the run ends in
    /// `error`.
    /// Meanwhile nothing unstored is counted or acknowledged: agents keep it
    /// and send it again, and the run completes if the store recovers in time.
    #[arg(long, default_value = "3m", value_parser = duration)]
    store_error_timeout: Duration,
    #[command(flatten)]
    guard: crate::link::ServerGuard,
    #[command(flatten)]
    etcd: crate::link::EtcdArgs,
    /// With --etcd: the gRPC URL published for agents and clients (default:
    /// http:// or https:// and the listening address, which must then not be 0.0.0.0).
    #[arg(long, env = "STAMPEDE_ADVERTISE", value_name = "URL")]
    advertise: Option<String>,
    /// Serve HTTP here: /metrics (Prometheus; wants the token when one is
    /// set), /healthz and /readyz. Off by default.
    #[arg(long, env = "STAMPEDE_HTTP_LISTEN", value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Keep runs, interval reports and reports in PostgreSQL
    /// (postgres://user:password@host:port/database): for soaks of hours or
    /// days, run history, and several coordinators (with --etcd, which then
    /// keeps only the election and the agents' registrations). Empty: none.
    #[arg(long, env = "STAMPEDE_RESULTS", value_name = "URL", value_parser = results_url)]
    results: Option<String>,
    /// Delete ended runs submitted longer ago than this (e.g. 30d), checked
    /// at start and every hour. Off by default: runs are kept.
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    retention: Option<Duration>,
}

fn results_url(text: &str) -> Result<String, String> {
    if text.is_empty() || text.starts_with("postgres://") || text.starts_with("postgresql://") {
        Ok(text.to_string())
    } else {
        Err("the results store is PostgreSQL: write postgres://user:password@host:port/database".to_string())
    }
}

#[derive(Args)]
pub struct AgentArgs {
    #[command(flatten)]
    link: crate::link::CoordinatorLink,
    /// Agent id (default: host name and process id). Must be unique among agents.
    #[arg(long, env = "STAMPEDE_AGENT_ID")]
    id: Option<String>,
    /// Labels as key=value, repeatable.
    #[arg(long = "label", value_parser = label)]
    labels: Vec<(String, String)>,
    /// Connections this agent is willing to drive.
    #[arg(long, default_value_t = 10_000)]
    capacity: u32,
    /// Reports held for an unreachable coordinator at most (one per second
    /// per run); past it the oldest are dropped, and the report counts them.
    #[arg(long, default_value_t = stampede_agent::DEFAULT_OUTBOX_LIMIT as u64, value_parser = clap::value_parser!(u64).range(1..))]
    outbox_limit: u64,
    /// Serve the gRPC health service here for probes (`stampede.live`:
    /// the process runs; `""`: connected to a coordinator).
    #[arg(long, env = "STAMPEDE_HEALTH_LISTEN", value_name = "ADDR")]
    health_listen: Option<SocketAddr>,
}

#[derive(Args)]
pub struct KvServerArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "STAMPEDE_KV_LISTEN", default_value = "127.0.0.1:6380", conflicts_with = "nodes")]
    listen: SocketAddr,
    /// Node id reported in `INFO server`; agents attribute requests to it.
    #[arg(long, default_value = "kv-0", conflicts_with = "nodes")]
    node_id: String,
    /// Start N nodes in this process, with node ids kv-0..kv-N-1, on ports base-port..base-port+N-1.
    #[arg(long, requires = "base_port")]
    nodes: Option<u16>,
    /// First port for --nodes.
    #[arg(long)]
    base_port: Option<u16>,
    /// Host to bind with --nodes.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Clients must AUTH with this password (read from the environment rather than the command line when you can).
    #[arg(long, env = "STAMPEDE_KV_PASSWORD", hide_env_values = true)]
    requirepass: Option<String>,
    /// Writes get an OOM error above this much data (e.g. 512MiB); 0 is no limit.
    #[arg(long, default_value = "0", value_parser = size)]
    maxmemory: u64,
    /// Connections beyond this many are refused.
    #[arg(long, default_value_t = 10_000)]
    max_clients: u64,
    /// Close connections idle this long; 0s never.
    #[arg(long, default_value = "300s", value_parser = duration)]
    idle_timeout: Duration,
    /// Threads serving connections. 1 (the default) is one event loop, as
    /// Redis has: the least CPU per request, and no thread hand-offs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// After each request keep polling the sockets this long (e.g. 50us)
    /// instead of sleeping until the next one: answers sooner and spares the
    /// clients the cost of waking the server, at the price of a busy core
    /// while traffic lasts (an idle server still sleeps). 0s (the default)
    /// sleeps at once, which leaves the core to load generators sharing the
    /// host.
    #[arg(long, default_value = "0s", value_parser = duration)]
    busy_poll: Duration,
    /// A subscriber whose queue of undelivered messages would pass this
    /// size is disconnected (as Redis's pub/sub output buffer limit); 0 is
    /// no limit.
    #[arg(long, default_value = "32MiB", value_parser = size)]
    pubsub_queue_limit: u64,
}

#[derive(clap::Args, Debug)]
pub struct WsServerArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "STAMPEDE_WS_LISTEN", default_value = "127.0.0.1:8765", conflicts_with = "nodes")]
    listen: SocketAddr,
    /// Node id sent in the hello of every connection; agents attribute what it served to it.
    #[arg(long, default_value = "ws-0", conflicts_with = "nodes")]
    node_id: String,
    /// Start N nodes in this process, with node ids ws-0..ws-N-1, on ports base-port..base-port+N-1.
    #[arg(long, requires = "base_port")]
    nodes: Option<u16>,
    /// First port for --nodes.
    #[arg(long)]
    base_port: Option<u16>,
    /// Host to bind with --nodes.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Connections beyond this many are closed at once (counted as refused).
    #[arg(long, default_value_t = 100_000)]
    max_clients: u64,
}

/// The nodes a built-in server starts: one on `--listen` named `--node-id`,
/// or `--nodes N` named PREFIX-0.. on consecutive ports from `--base-port`.
struct Nodes<'a> {
    listen: SocketAddr,
    node_id: &'a str,
    count: Option<u16>,
    base_port: Option<u16>,
}

impl Nodes<'_> {
    /// Binds every node's port before any is announced: a node that cannot
    /// listen stops the start without announcing nodes that then go away.
    async fn bind(
        &self,
        host: std::net::IpAddr,
        prefix: &str,
    ) -> anyhow::Result<Vec<(tokio::net::TcpListener, String)>> {
        let nodes: Vec<(SocketAddr, String)> = match (self.count, self.base_port) {
            (Some(0), _) => anyhow::bail!("--nodes must be at least 1"),
            (Some(count), Some(base)) => {
                if u32::from(base) + u32::from(count) - 1 > u32::from(u16::MAX) {
                    anyhow::bail!("--base-port {base} with --nodes {count} runs past port 65535");
                }
                (0..count).map(|i| (SocketAddr::new(host, base + i), format!("{prefix}-{i}"))).collect()
            }
            _ => vec![(self.listen, self.node_id.to_string())],
        };
        let mut listeners = Vec::with_capacity(nodes.len());
        for (addr, node_id) in nodes {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}; is the port in use?"))?;
            listeners.push((listener, node_id));
        }
        Ok(listeners)
    }
}

/// `stampede ws-server`: chat rooms on /chat, an echo on /echo; the counts
/// of each node are printed when it stops.
pub async fn ws_server(args: WsServerArgs) -> anyhow::Result<()> {
    let nodes = Nodes { listen: args.listen, node_id: &args.node_id, count: args.nodes, base_port: args.base_port };
    let listeners = nodes.bind(args.host, "ws").await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for (listener, node_id) in listeners {
        let bound = listener.local_addr()?;
        println!("ws-server {node_id} listening on {bound} (chat on ws://{bound}/chat, echo on ws://{bound}/echo)");
        let config = stampede_wsserver::ServerConfig { node_id, max_clients: args.max_clients };
        let mut stop = stop_rx.clone();
        servers.spawn(stampede_wsserver::serve(listener, config, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    while let Some(result) = servers.join_next().await {
        let counts = result.context("a ws-server node panicked")?;
        println!("{}", counts.summary());
    }
    Ok(())
}

fn size(text: &str) -> Result<u64, String> {
    stampede_common::units::parse_size(text).map_err(|e| e.0)
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.0)
}

fn label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not key=value"))
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

pub async fn coordinator(args: CoordinatorArgs) -> anyhow::Result<()> {
    let config = CoordinatorConfig {
        data_dir: args.data_dir.clone(),
        engine: EngineConfig {
            heartbeat_timeout: args.heartbeat_timeout,
            finish_grace: args.finish_grace,
            store_error_timeout: args.store_error_timeout,
            retention: args.retention,
            ..EngineConfig::default()
        },
        heartbeat_interval: Duration::from_secs(1),
        security: args.guard.security()?,
        etcd: args.etcd.config()?,
        advertise: args.advertise.clone(),
        http_listen: args.http_listen,
        results: args.results.clone().filter(|url| !url.is_empty()),
        http_token: None,
    };
    if config.etcd.is_some() && config.advertise.is_none() && args.listen.ip().is_unspecified() {
        anyhow::bail!(
            "--listen {} cannot be published in etcd as the leader's address; give --advertise http://HOST:PORT",
            args.listen
        );
    }
    if config.security.token.is_none() && !args.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %args.listen,
            "no token: anyone who can reach this address can submit runs and send reports; set --token-file or STAMPEDE_TOKEN"
        );
    }
    let coordinator = Coordinator::bind(args.listen, config).await.with_context(|| match args.http_listen {
        None => format!("cannot listen on {}; is another coordinator running there?", args.listen),
        Some(http) => {
            format!("cannot listen on {} (gRPC) or {http} (HTTP); is another coordinator running there?", args.listen)
        }
    })?;
    if let Some(http) = coordinator.http_addr() {
        println!("coordinator serving HTTP on {http} (/metrics, /healthz, /readyz)");
    }
    let addr = coordinator.local_addr()?;
    match &args.etcd.etcd {
        None => println!("coordinator listening on {addr} (data in {})", args.data_dir.display()),
        Some(etcd) => println!(
            "coordinator listening on {addr}, campaigning in etcd {etcd} under {} as {}",
            args.etcd.etcd_prefix,
            coordinator.advertised_url()?
        ),
    }
    coordinator.serve(shutdown_signal()).await.context("coordinator failed")?;
    Ok(())
}

pub async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let mut config = AgentConfig::new(args.link.coordinator.clone());
    config.security = args.link.security()?;
    config.etcd = args.link.etcd.config()?;
    if let Some(id) = args.id {
        config.agent_id = id;
    }
    config.labels = args.labels.into_iter().collect::<BTreeMap<_, _>>();
    config.capacity = args.capacity;
    config.outbox_limit = usize::try_from(args.outbox_limit).unwrap_or(usize::MAX);
    config.health_listen = args.health_listen;
    match &config.etcd {
        None => println!("agent {} connecting to {}", config.agent_id, config.coordinator),
        Some(etcd) => println!(
            "agent {} registering in etcd {} and connecting to the leader",
            config.agent_id,
            etcd.endpoints.join(",")
        ),
    }
    stampede_agent::run_agent(config, shutdown_signal()).await?;
    Ok(())
}

pub async fn kv_server(args: KvServerArgs) -> anyhow::Result<()> {
    let config = stampede_kvserver::ServerConfig {
        node_id: args.node_id.clone(),
        requirepass: args.requirepass.clone(),
        maxmemory: args.maxmemory,
        max_clients: args.max_clients,
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        busy_poll: (!args.busy_poll.is_zero()).then_some(args.busy_poll),
        pubsub_queue_limit: usize::try_from(args.pubsub_queue_limit).unwrap_or(usize::MAX),
    };
    let nodes = Nodes { listen: args.listen, node_id: &args.node_id, count: args.nodes, base_port: args.base_port };
    let listeners = nodes.bind(args.host, "kv").await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for (listener, node_id) in listeners {
        let bound = listener.local_addr()?;
        println!("kv-server {node_id} listening on {bound}");
        let node_config = stampede_kvserver::ServerConfig { node_id, ..config.clone() };
        let mut stop = stop_rx.clone();
        servers.spawn(stampede_kvserver::serve(listener, node_config, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    while let Some(result) = servers.join_next().await {
        let stats = result.context("a kv-server node panicked")??;
        println!("{stats}");
    }
    Ok(())
}
