//! `AgentService.Session`: one bidirectional stream per agent. `convert`
//! turns each message into an engine event (or a clock ping's answer, which
//! only stamps the time); the adapter forwards them and decides nothing.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::Stream;
use stampede_proto::v1 as pb;
use stampede_proto::v1::session_request::Body;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use crate::engine::{EngineHandle, Event};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const OUTPUT_BUFFER: usize = 1024;

pub struct AgentService {
    engine: EngineHandle,
    coordinator_id: String,
    heartbeat_interval: Duration,
    sessions: AtomicU64,
}

impl AgentService {
    pub fn new(engine: EngineHandle, coordinator_id: String, heartbeat_interval: Duration) -> Self {
        Self { engine, coordinator_id, heartbeat_interval, sessions: AtomicU64::new(1) }
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::SessionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentService {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello within 10s of opening the session"))??;
        let Some(pb::SessionRequest { body: Some(Body::Hello(hello)) }) = first else {
            return Err(Status::invalid_argument("the first message of a session must be hello"));
        };
        let hello = convert::hello(hello)?;
        let agent_id = hello.agent_id.clone();
        let session = self.sessions.fetch_add(1, Ordering::Relaxed);
        let (output, output_rx) = mpsc::channel::<Result<pb::SessionResponse, Status>>(OUTPUT_BUFFER);
        let (to_agent, mut to_agent_rx) = mpsc::unbounded_channel();

        let welcome = pb::SessionResponse {
            body: Some(pb::session_response::Body::Welcome(pb::Welcome {
                coordinator_id: self.coordinator_id.clone(),
                heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
            })),
        };
        let _ = output.send(Ok(welcome)).await;
        self.engine.send(Event::AgentConnected { hello, session, outbox: to_agent }).map_err(super::status)?;

        let forward_output = output.clone();
        tokio::spawn(async move {
            while let Some(message) = to_agent_rx.recv().await {
                if forward_output.send(Ok(convert::to_agent(message))).await.is_err() {
                    return;
                }
            }
            // The engine gave this session up (the agent was silent past the
            // heartbeat timeout, or a newer session replaced it) while the
            // stream may still be open: end it, so that a live agent
            // reconnects instead of talking into a session nobody answers.
            let status = Status::unavailable(
                "the coordinator gave this session up (silent past the heartbeat timeout, or replaced); reconnect",
            );
            let _ = forward_output.send(Err(status)).await;
        });

        let engine = self.engine.clone();
        tokio::spawn(async move {
            loop {
                let message = match inbound.next().await {
                    Some(Ok(message)) => message,
                    Some(Err(status)) => {
                        tracing::debug!(agent = %agent_id, %status, "session stream error");
                        break;
                    }
                    None => break,
                };
                let event = match convert::session_message(&agent_id, message.body) {
                    convert::Inbound::Event(event) => event,
                    convert::Inbound::Answer(answer) => {
                        let _ = output.send(Ok(answer)).await;
                        continue;
                    }
                    convert::Inbound::Refused(status) => {
                        let _ = output.send(Err(status)).await;
                        break;
                    }
                };
                if engine.send(event).is_err() {
                    break;
                }
            }
            let _ = engine.send(Event::AgentDisconnected { agent_id, session });
        });

        Ok(Response::new(Box::pin(ReceiverStream::new(output_rx)) as SessionStream))
    }
}
