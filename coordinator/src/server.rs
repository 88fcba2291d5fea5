//! Wires engine, store and gRPC services into a running coordinator.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stampede_discovery::EtcdConfig;
use stampede_proto::security::{ServerSecurity, TokenCheck};
use stampede_proto::v1::agent_service_server::AgentServiceServer;
use stampede_proto::v1::control_service_server::ControlServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::ServerTlsConfig;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::MAX_MESSAGE_BYTES;
use crate::api::agent_service::AgentService;
use crate::api::control_service::ControlService;
use crate::api::http::{HttpState, serve_http};
use crate::election::{AlwaysLeader, Election, ElectionError, EtcdElection};
use crate::engine::{EngineConfig, EngineHandle, engine_channel, start_engine_on};
use crate::store::StoreError;

/// Everything a coordinator process needs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub data_dir: PathBuf,
    pub engine: EngineConfig,
    /// How often agents send heartbeats.
    pub heartbeat_interval: Duration,
    /// Token and TLS; the default is neither.
    pub security: ServerSecurity,
    /// With etcd: campaign for leadership there and keep runs there.
    pub etcd: Option<EtcdConfig>,
    /// The gRPC URL published in etcd for agents and clients; by default
    /// `http(s)://` and the listening address.
    pub advertise: Option<String>,
    /// Where to serve HTTP (`/metrics`, `/healthz`, `/readyz`), if anywhere.
    pub http_listen: Option<SocketAddr>,
    /// `postgres://...`: keep runs, interval reports and reports in
    /// PostgreSQL instead of the data directory or etcd.
    pub results: Option<String>,
    /// The token the HTTP port (metrics, dashboard) asks for, when it is not
    /// the gRPC one (`stampede run` keeps a random token for gRPC and takes
    /// the user's, or none on loopback, for its dashboard).
    pub http_token: Option<TokenCheck>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the data directory: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the listening address: {0}")]
    Io(#[from] std::io::Error),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Security(#[from] stampede_proto::security::SecurityError),
    #[error("{0}")]
    Election(#[from] ElectionError),
    #[error("the gRPC server stopped: {0}")]
    Stopped(String),
    #[error("lost the leadership: {0}; stopping so that a restart rejoins as a standby")]
    LostLeadership(String),
}

/// A coordinator bound to a socket, ready to serve.
pub struct Coordinator {
    listener: TcpListener,
    http_tls: Option<tokio_rustls::TlsAcceptor>,
    http_listener: Option<TcpListener>,
    config: CoordinatorConfig,
    tls: Option<ServerTlsConfig>,
}

impl Coordinator {
    /// Reads the TLS files and binds the gRPC listener (use port 0 for any
    /// free port).
    pub async fn bind(addr: SocketAddr, config: CoordinatorConfig) -> Result<Self, ServeError> {
        let tls = config.security.tls().map_err(ServeError::Security)?;
        let listener = TcpListener::bind(addr).await?;
        let http_listener = match config.http_listen {
            Some(http) => Some(TcpListener::bind(http).await?),
            None => None,
        };
        let http_tls = match &http_listener {
            Some(_) => config.security.rustls().map_err(ServeError::Security)?.map(tokio_rustls::TlsAcceptor::from),
            None => None,
        };
        Ok(Self { listener, http_listener, http_tls, config, tls })
    }

    /// The bound HTTP address, if HTTP is served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The URL this coordinator publishes as the leader's address.
    pub fn advertised_url(&self) -> std::io::Result<String> {
        if let Some(url) = &self.config.advertise {
            return Ok(url.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(format!("{scheme}://{}", self.local_addr()?))
    }

    /// Serves until `shutdown` completes (or, with etcd, the leadership is
    /// lost). Without etcd this coordinator leads at once; with it, it
    /// answers every call with `Unavailable` as a standby until it wins.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        match self.config.etcd.clone() {
            None => {
                let election = AlwaysLeader::new(self.config.data_dir.clone(), self.config.results.clone());
                self.serve_as(election, shutdown).await
            }
            Some(etcd) => {
                let election =
                    EtcdElection::connect(&etcd, self.advertised_url()?, self.config.results.clone()).await?;
                self.serve_as(election, shutdown).await
            }
        }
    }

    async fn serve_as(
        self,
        mut election: impl Election,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let (engine, events) = engine_channel();
        let health = HealthReporter::new();
        let health_service = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(health.clone()),
        );
        health.set_service_status(LIVENESS_SERVICE, ServingStatus::Serving).await;
        set_ready(&health, false).await;
        let gate = Gate {
            check: self.config.security.token_check(),
            leading: Arc::new(AtomicBool::new(false)),
            waiting: election.waiting(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(listener) = self.http_listener {
            let state = HttpState {
                engine: engine.clone(),
                leading: gate.leading.clone(),
                check: self.config.http_token.clone().unwrap_or_else(|| gate.check.clone()),
                tls: self.http_tls,
                sessions: Default::default(),
            };
            tokio::spawn(serve_http(listener, state, async {
                let _ = http_stopped.await;
            }));
        }
        let services = Services { engine, gate: gate.clone(), health: health_service };
        let mut grpc = tokio::spawn(serve_grpc(self.listener, services, self.config.clone(), self.tls, async {
            let _ = stopped.await;
        }));
        tracing::info!(store = %election.describe(), "campaigning for leadership");
        tokio::pin!(shutdown);
        let grpc_ended = |joined: Result<Result<(), ServeError>, tokio::task::JoinError>| match joined {
            Ok(result) => result,
            Err(error) => Err(ServeError::Stopped(error.to_string())),
        };
        let mut leadership = tokio::select! {
            won = election.lead() => won?,
            () = &mut shutdown => {
                let _ = stop.send(());
                return grpc_ended(grpc.await);
            }
            joined = &mut grpc => return grpc_ended(joined),
        };
        let engine_task = start_engine_on(self.config.engine.clone(), leadership.store.clone(), events);
        gate.leading.store(true, Ordering::SeqCst);
        set_ready(&health, true).await;
        tracing::info!(store = %election.describe(), "leading");
        let result = tokio::select! {
            why = leadership.lost() => Err(ServeError::LostLeadership(why)),
            () = &mut shutdown => Ok(()),
            joined = &mut grpc => grpc_ended(joined),
        };
        gate.leading.store(false, Ordering::SeqCst);
        set_ready(&health, false).await;
        health.set_service_status(LIVENESS_SERVICE, ServingStatus::NotServing).await;
        engine_task.abort();
        let _ = stop.send(());
        let _ = http_stop.send(());
        leadership.resign().await;
        if !grpc.is_finished() {
            let _ = tokio::time::timeout(Duration::from_secs(5), grpc).await;
        }
        result
    }
}

/// [`LIVENESS_SERVICE`] is SERVING while the process is up (a liveness
/// probe); the overall status `""` and the two Stampede services are
/// SERVING only while this coordinator leads (a readiness probe).
pub use stampede_proto::LIVENESS_SERVICE;

async fn set_ready(health: &HealthReporter, ready: bool) {
    let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
    for service in ["", "stampede.v1.AgentService", "stampede.v1.ControlService"] {
        health.set_service_status(service, status).await;
    }
}

/// What the gRPC server serves: the Stampede services behind the gate, and
/// the health service open to probes without a token.
struct Services {
    engine: EngineHandle,
    gate: Gate,
    health: tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
}

/// Checks each call's token, then turns calls away while this coordinator
/// does not lead.
#[derive(Clone)]
struct Gate {
    check: TokenCheck,
    leading: Arc<AtomicBool>,
    /// What a call is told while this coordinator does not lead.
    waiting: &'static str,
}

impl Interceptor for Gate {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let request = self.check.call(request)?;
        if self.leading.load(Ordering::SeqCst) { Ok(request) } else { Err(tonic::Status::unavailable(self.waiting)) }
    }
}

async fn serve_grpc(
    listener: TcpListener,
    services: Services,
    config: CoordinatorConfig,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let Services { engine, gate, health } = services;
    let agents = AgentService::new(engine.clone(), config.engine.coordinator_id.clone(), config.heartbeat_interval);
    let control = ControlService::new(engine);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .add_service(health)
        .add_service(InterceptedService::new(
            AgentServiceServer::new(agents).max_decoding_message_size(MAX_MESSAGE_BYTES),
            gate.clone(),
        ))
        .add_service(InterceptedService::new(
            ControlServiceServer::new(control).max_decoding_message_size(MAX_MESSAGE_BYTES),
            gate,
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
