//! The agent's session with the coordinator: connect (and reconnect with
//! backoff), say hello, measure the clock offset, then carry out
//! assignments while sending the outbox, heartbeats and acks' effects.
//! Runs outlive sessions: a run keeps going while the coordinator is away,
//! and its reports wait in the outbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede_common::Scenario;
use stampede_discovery::DiscoveryError;
use stampede_proto::v1 as pb;
use stampede_proto::v1::agent_service_client::AgentServiceClient;
use stampede_proto::v1::session_response::Body;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::clock::{PingSample, estimate};
use crate::convert;
use crate::outbox::{Outbox, Outgoing};
use crate::runner::{self, Assignment};
use crate::{AgentConfig, AgentError};

const PINGS: u64 = 8;
/// A message the coordinator has not acknowledged this long after it was
/// sent is sent again (its store may have refused it).
const RESEND_AFTER: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How often an agent waiting for etcd at start says it still waits.
const ETCD_WAIT_REMINDER: Duration = Duration::from_secs(30);
/// How often an agent waiting to reconnect asks etcd whether a new leader
/// has been elected.
const LEADER_POLL: Duration = Duration::from_millis(250);

/// Why one session attempt ended; the agent logs it and tries again.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("no coordinator leads in etcd yet")]
    NoLeader,
    #[error(transparent)]
    Etcd(#[from] DiscoveryError),
    #[error(transparent)]
    Address(#[from] AgentError),
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("{0}")]
    Refused(String),
    #[error("session failed: {0}")]
    Failed(String),
    #[error("the coordinator closed the session")]
    Closed,
    #[error("the coordinator did not answer a clock ping within 2s")]
    PingTimeout,
    #[error("{0}")]
    Protocol(&'static str),
}

struct RunHandle {
    start: Option<oneshot::Sender<Instant>>,
    cancel: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// State that outlives a session.
struct Agent {
    config: AgentConfig,
    outbox: Arc<Outbox>,
    runs: HashMap<String, RunHandle>,
    /// Why the coordinator refused the last session (a wrong or missing
    /// token), which no retry will mend.
    rejected: Option<String>,
    /// Probes see `""` SERVING while a session is up.
    health: Option<tonic_health::server::HealthReporter>,
}

pub use stampede_proto::{LIVENESS_SERVICE, now_unix_us};

/// Serves the gRPC health service on `addr`: `stampede.live` while the
/// process runs (liveness), `""` while connected to a coordinator
/// (readiness).
async fn serve_health(addr: std::net::SocketAddr) -> Result<tonic_health::server::HealthReporter, AgentError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| AgentError::Health(addr, e))?;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status(LIVENESS_SERVICE, tonic_health::ServingStatus::Serving).await;
    reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    tracing::info!(listen = %addr, "serving gRPC health checks");
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        if let Err(error) = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await
        {
            tracing::error!(%error, "the health server stopped");
        }
    });
    Ok(reporter)
}

async fn set_ready(health: Option<&tonic_health::server::HealthReporter>, ready: bool) {
    if let Some(health) = health {
        let status = if ready { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
        health.set_service_status("", status).await;
    }
}

/// How the agent finds the coordinator: a fixed address, or whichever
/// coordinator leads in etcd (asked again before every connection).
enum Finder {
    Fixed(Box<tonic::transport::Endpoint>),
    /// The registration is held so that its lease is kept alive.
    Etcd {
        etcd: Box<stampede_discovery::Etcd>,
        _registration: stampede_discovery::Registration,
    },
}

fn endpoint(config: &AgentConfig, url: &str) -> Result<tonic::transport::Endpoint, AgentError> {
    Ok(config
        .security
        .endpoint(&stampede_common::coordinator_url(url))
        .map_err(|e| AgentError::BadCoordinatorUrl(url.to_string(), e))?
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10)))
}

impl Finder {
    async fn new(config: &AgentConfig) -> Result<Self, AgentError> {
        let Some(etcd_config) = &config.etcd else {
            return Ok(Self::Fixed(Box::new(endpoint(config, &config.coordinator)?)));
        };
        let etcd = stampede_discovery::Etcd::connect(etcd_config).await?;
        let info = serde_json::json!({ "host": config.host, "capacity": config.capacity, "pid": std::process::id() });
        let registration = etcd.register_agent(&config.agent_id, &info.to_string()).await?;
        tracing::info!(key = %etcd_config.agent_key(&config.agent_id), "registered in etcd");
        Ok(Self::Etcd { etcd: Box::new(etcd), _registration: registration })
    }

    /// As [`Finder::new`], but waits for etcd while it cannot be reached or
    /// refuses the registration: an agent started before etcd (a pod
    /// scheduled first, a host rebooted) joins once etcd answers instead of
    /// exiting. Errors in the configuration itself still end the agent.
    async fn patiently(config: &AgentConfig) -> Result<Self, AgentError> {
        let mut backoff = Backoff::session();
        let mut announced = tokio::time::Instant::now();
        let mut waiting = false;
        loop {
            match Self::new(config).await {
                Err(AgentError::Etcd(error @ (DiscoveryError::Unreachable { .. } | DiscoveryError::Etcd { .. }))) => {
                    // Said at once, then every 30 s while it lasts.
                    if !waiting || announced.elapsed() >= ETCD_WAIT_REMINDER {
                        tracing::warn!(%error, "waiting for etcd; retrying");
                        announced = tokio::time::Instant::now();
                        waiting = true;
                    }
                    tokio::time::sleep(backoff.next_wait()).await;
                }
                Ok(finder) => {
                    if waiting {
                        tracing::info!("etcd answers; registered");
                    }
                    return Ok(finder);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Completes when etcd names a leader other than `last` (the one the
    /// last attempt found, None when none led): a failover, so waiting out
    /// the backoff would only keep the agent away from the new leader.
    /// Never completes for a fixed coordinator.
    async fn leader_changed(&self, last: Option<&str>) {
        let Self::Etcd { etcd, .. } = self else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(LEADER_POLL).await;
            if let Ok(Some(url)) = etcd.leader().await
                && Some(url.as_str()) != last
            {
                return;
            }
        }
    }

    /// The coordinator to try now, as (shown address, endpoint).
    async fn find(&self, config: &AgentConfig) -> Result<(String, tonic::transport::Endpoint), SessionError> {
        match self {
            Self::Fixed(endpoint) => Ok((config.coordinator.clone(), (**endpoint).clone())),
            Self::Etcd { etcd, .. } => match etcd.leader().await? {
                Some(url) => Ok((url.clone(), endpoint(config, &url)?)),
                None => Err(SessionError::NoLeader),
            },
        }
    }
}

/// Runs the agent until `shutdown` completes.
pub async fn run_agent(config: AgentConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
    // Health first: alive (and not ready) while etcd is awaited.
    let health = match config.health_listen {
        Some(addr) => Some(serve_health(addr).await?),
        None => None,
    };
    tokio::pin!(shutdown);
    let finder = tokio::select! {
        finder = Finder::patiently(&config) => finder?,
        () = &mut shutdown => return Ok(()),
    };
    let outbox = Arc::new(Outbox::new(config.outbox_limit));
    let mut agent = Agent { config, outbox, runs: HashMap::new(), rejected: None, health };
    let mut backoff = Backoff::session();
    let mut announced_wait = false;
    let mut coordinator = agent.config.coordinator.clone();
    loop {
        // The leader this attempt finds (None if etcd names none).
        let mut found: Option<String> = None;
        let attempt = async {
            let (shown, endpoint) = finder.find(&agent.config).await?;
            coordinator = shown;
            found = Some(coordinator.clone());
            let channel = endpoint.connect().await?;
            let span = tracing::info_span!(
                parent: None,
                "agent session",
                agent = %agent.config.agent_id,
                host = %agent.config.host,
                coordinator = %coordinator
            );
            agent.session(channel, &coordinator).instrument(span).await
        };
        let result = tokio::select! {
            result = attempt => result,
            () = &mut shutdown => return Ok(()),
        };
        agent.runs.retain(|_, run| !run.task.is_finished());
        set_ready(agent.health.as_ref(), false).await;
        match result {
            Ok(()) => {
                backoff.reset();
                announced_wait = false;
                tracing::warn!(%coordinator, "session ended; reconnecting");
            }
            Err(error) => {
                if let Some(reason) = agent.rejected.take() {
                    // With nothing measured waiting to be sent, stop and say
                    // why; otherwise keep the measurements and keep trying.
                    if agent.runs.is_empty() && agent.outbox.pending() == 0 {
                        return Err(AgentError::Rejected(coordinator, reason));
                    }
                    tracing::error!(%coordinator, %reason, "the coordinator refuses this agent; retrying to deliver the reports held");
                } else if !announced_wait {
                    tracing::warn!(%coordinator, %error, "cannot reach the coordinator; retrying");
                    announced_wait = true;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_wait()) => {}
            () = finder.leader_changed(found.as_deref()) => {
                tracing::info!("etcd names a new leader; connecting now");
                backoff.reset();
                continue;
            }
            () = &mut shutdown => return Ok(()),
        }
    }
}

impl Agent {
    /// One session; returns when the stream ends (Ok) or fails to open (Err).
    async fn session(&mut self, channel: tonic::transport::Channel, coordinator: &str) -> Result<(), SessionError> {
        let mut client = AgentServiceClient::new(self.config.security.authorize(channel))
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024);
        let (tx, rx) = mpsc::channel::<pb::SessionRequest>(1024);
        let hello = pb::Hello {
            agent_id: self.config.agent_id.clone(),
            host: self.config.host.clone(),
            labels: self.config.labels.clone().into_iter().collect(),
            capacity: self.config.capacity,
            version: env!("CARGO_PKG_VERSION").to_string(),
            active_runs: self.runs.keys().cloned().collect(),
        };
        send(&tx, pb::session_request::Body::Hello(hello)).await?;
        let mut inbound = match client.session(ReceiverStream::new(rx)).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                self.rejected = Some(status.message().to_string());
                return Err(SessionError::Refused(status.message().to_string()));
            }
            Err(status) => return Err(SessionError::Refused(status.message().to_string())),
        };
        let welcome = next(&mut inbound).await?;
        let heartbeat = match welcome {
            Some(Body::Welcome(w)) => Duration::from_millis(w.heartbeat_interval_ms.clamp(100, 60_000)),
            _ => return Err(SessionError::Protocol("the coordinator did not answer hello with welcome")),
        };
        let offset_us = self.measure_clock(&tx, &mut inbound).await?;
        tracing::info!(%coordinator, offset_us, "connected to coordinator");
        set_ready(self.health.as_ref(), true).await;
        self.outbox.resend_all();
        let mut ticker = tokio::time::interval(heartbeat);
        let mut cpu = crate::health::CpuMeter::new();
        loop {
            for message in self.outbox.take_unsent() {
                send(&tx, convert::outgoing(message)).await?;
            }
            tokio::select! {
                message = next(&mut inbound) => match message? {
                    Some(body) => self.handle(body, offset_us),
                    None => return Ok(()),
                },
                () = self.outbox.notify.notified() => {}
                _ = ticker.tick() => {
                    let beat = pb::Heartbeat {
                        cpu_percent: cpu.sample().cpu_percent,
                        rss_bytes: crate::health::resident_bytes().unwrap_or(0),
                    };
                    send(&tx, pb::session_request::Body::Heartbeat(beat)).await?;
                    let resent = self.outbox.resend_overdue(RESEND_AFTER);
                    if resent > 0 {
                        tracing::debug!(resent, "sending again what the coordinator did not acknowledge");
                    }
                }
            }
        }
    }

    async fn measure_clock(
        &self,
        tx: &mpsc::Sender<pb::SessionRequest>,
        inbound: &mut Streaming<pb::SessionResponse>,
    ) -> Result<i64, SessionError> {
        let mut samples = Vec::new();
        for seq in 0..PINGS {
            let sent_us = now_unix_us();
            send(tx, pb::session_request::Body::Ping(pb::Ping { seq, agent_time_us: sent_us })).await?;
            let answer =
                tokio::time::timeout(PING_TIMEOUT, next(inbound)).await.map_err(|_| SessionError::PingTimeout)??;
            match answer {
                Some(Body::Pong(pong)) if pong.seq == seq => samples.push(PingSample {
                    sent_us: pong.agent_time_us,
                    coordinator_us: pong.coordinator_time_us,
                    received_us: now_unix_us(),
                }),
                Some(_) => return Err(SessionError::Protocol("unexpected message during clock measurement")),
                None => return Err(SessionError::Closed),
            }
        }
        let (offset_us, rtt_us) = estimate(&samples).ok_or(SessionError::Protocol("no usable clock sample"))?;
        send(tx, pb::session_request::Body::ClockSync(pb::ClockSync { offset_us, rtt_us })).await?;
        Ok(offset_us)
    }

    fn handle(&mut self, body: Body, offset_us: i64) {
        match body {
            Body::Assignment(a) => self.accept(a, offset_us),
            Body::Start(start) => {
                // The coordinator's instant, moved onto this agent's clock.
                let local_unix_us = start.start_at_us - offset_us;
                let from_now = local_unix_us - now_unix_us();
                let now = Instant::now();
                let at = if from_now >= 0 {
                    now + Duration::from_micros(from_now as u64)
                } else {
                    now.checked_sub(Duration::from_micros(from_now.unsigned_abs())).unwrap_or(now)
                };
                if let Some(run) = self.runs.get_mut(&start.run_id)
                    && let Some(tx) = run.start.take()
                {
                    let _ = tx.send(at);
                }
            }
            Body::Ack(ack) => self.outbox.ack(&ack.run_id, ack.seq),
            Body::Cancel(cancel) => {
                if let Some(run) = self.runs.get(&cancel.run_id) {
                    tracing::info!(run = %cancel.run_id, reason = %cancel.reason, "run cancelled by the coordinator");
                    let _ = run.cancel.send(true);
                }
            }
            Body::Welcome(_) | Body::Pong(_) => {}
        }
    }

    fn accept(&mut self, a: pb::Assignment, clock_offset_us: i64) {
        let run_id = a.run_id.clone();
        if self.runs.contains_key(&run_id) {
            return;
        }
        self.runs.retain(|_, run| !run.task.is_finished());
        let scenario = match Scenario::parse(&a.scenario_yaml) {
            Ok(scenario) => scenario,
            Err(error) => {
                self.outbox.push(Outgoing::Failed { run_id, error: error.to_string() });
                return;
            }
        };
        // The assignment's span joins the run's trace on the coordinator.
        let span = tracing::info_span!(
            parent: None,
            "assignment",
            run_id = %run_id,
            agent = %self.config.agent_id,
            agent_index = a.agent_index,
            connections = a.connections,
            rejoin = a.rejoin
        );
        stampede_telemetry::continue_trace(&span, &a.trace_context.into_iter().collect());
        span.in_scope(
            || tracing::info!(run = %run_id, connections = a.connections, rate = a.rate_per_s, "assignment received"),
        );
        let assignment = Assignment {
            run_id: run_id.clone(),
            scenario,
            agent_index: a.agent_index,
            agent_count: a.agent_count,
            connections: a.connections,
            rate_per_s: a.rate_per_s,
            key_start: a.key_start,
            key_end: a.key_end,
            seed: a.seed,
            operations: a.operations,
            operation_counts: (!a.operation_counts.is_empty()).then_some(a.operation_counts),
            endpoints: a.endpoints,
            first_seq: a.first_seq,
            rejoin: a.rejoin,
            clock_offset_us,
        };
        let (start_tx, start_rx) = oneshot::channel();
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let task =
            tokio::spawn(runner::run(assignment, Arc::clone(&self.outbox), start_rx, cancel_rx).instrument(span));
        self.runs.insert(run_id, RunHandle { start: Some(start_tx), cancel: cancel_tx, task });
    }
}

async fn send(tx: &mpsc::Sender<pb::SessionRequest>, body: pb::session_request::Body) -> Result<(), SessionError> {
    tx.send(pb::SessionRequest { body: Some(body) }).await.map_err(|_| SessionError::Closed)
}

async fn next(inbound: &mut Streaming<pb::SessionResponse>) -> Result<Option<Body>, SessionError> {
    loop {
        match inbound.message().await {
            Ok(Some(pb::SessionResponse { body: Some(body) })) => return Ok(Some(body)),
            Ok(Some(pb::SessionResponse { body: None })) => continue,
            Ok(None) => return Ok(None),
            Err(status) => return Err(SessionError::Failed(status.message().to_string())),
        }
    }
}
