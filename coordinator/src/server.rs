//! Wires engine, store and gRPC services into a running coordinator.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use stampede_proto::security::ServerSecurity;
use stampede_proto::v1::agent_service_server::AgentServiceServer;
use stampede_proto::v1::control_service_server::ControlServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::ServerTlsConfig;

use crate::api::MAX_MESSAGE_BYTES;
use crate::api::agent_service::AgentService;
use crate::api::control_service::ControlService;
use crate::engine::{EngineConfig, EngineHandle, start_engine};
use crate::store::{FileStore, StoreError};

/// Everything a coordinator process needs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub data_dir: PathBuf,
    pub engine: EngineConfig,
    /// How often agents send heartbeats.
    pub heartbeat_interval: Duration,
    /// Token and TLS; the default is neither.
    pub security: ServerSecurity,
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
    Security(String),
}

/// A coordinator bound to a socket, ready to serve.
pub struct Coordinator {
    listener: TcpListener,
    config: CoordinatorConfig,
    tls: Option<ServerTlsConfig>,
}

impl Coordinator {
    /// Reads the TLS files and binds the gRPC listener (use port 0 for any
    /// free port).
    pub async fn bind(addr: SocketAddr, config: CoordinatorConfig) -> Result<Self, ServeError> {
        let tls = config.security.tls().map_err(ServeError::Security)?;
        let listener = TcpListener::bind(addr).await?;
        Ok(Self { listener, config, tls })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let store = Arc::new(FileStore::open(&self.config.data_dir)?);
        let (engine, engine_task) = start_engine(self.config.engine.clone(), store);
        let result = serve_grpc(self.listener, engine, &self.config, self.tls, shutdown).await;
        engine_task.abort();
        result
    }
}

async fn serve_grpc(
    listener: TcpListener,
    engine: EngineHandle,
    config: &CoordinatorConfig,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let agents = AgentService::new(engine.clone(), config.engine.coordinator_id.clone(), config.heartbeat_interval);
    let control = ControlService::new(engine);
    let check = config.security.token_check();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .add_service(InterceptedService::new(
            AgentServiceServer::new(agents).max_decoding_message_size(MAX_MESSAGE_BYTES),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            ControlServiceServer::new(control).max_decoding_message_size(MAX_MESSAGE_BYTES),
            check,
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
