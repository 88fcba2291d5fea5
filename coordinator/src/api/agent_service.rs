//! `AgentService.Session`: one bidirectional stream per agent. The adapter
//! answers clock pings itself (it only stamps the time) and forwards every
//! other message to the engine as an event.

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
use crate::engine::{EngineHandle, Event, now_unix_us};

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
        if hello.agent_id.is_empty() || hello.agent_id.len() > 200 {
            return Err(Status::invalid_argument("hello.agent_id must be 1 to 200 characters"));
        }
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
        self.engine
            .send(Event::AgentConnected { hello: convert::hello(hello), session, outbox: to_agent })
            .map_err(super::status)?;

        let forward_output = output.clone();
        tokio::spawn(async move {
            while let Some(message) = to_agent_rx.recv().await {
                if forward_output.send(Ok(convert::to_agent(message))).await.is_err() {
                    break;
                }
            }
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
                let event = match message.body {
                    Some(Body::Ping(ping)) => {
                        let pong = pb::SessionResponse {
                            body: Some(pb::session_response::Body::Pong(pb::Pong {
                                seq: ping.seq,
                                agent_time_us: ping.agent_time_us,
                                coordinator_time_us: now_unix_us(),
                            })),
                        };
                        let _ = output.send(Ok(pong)).await;
                        continue;
                    }
                    Some(Body::ClockSync(c)) => {
                        Event::AgentClock { agent_id: agent_id.clone(), offset_us: c.offset_us, rtt_us: c.rtt_us }
                    }
                    Some(Body::Heartbeat(_)) => Event::AgentHeartbeat { agent_id: agent_id.clone() },
                    Some(Body::Ready(r)) => Event::AgentReady { agent_id: agent_id.clone(), run_id: r.run_id },
                    Some(Body::AssignmentFailed(f)) => {
                        Event::AgentFailed { agent_id: agent_id.clone(), run_id: f.run_id, error: f.error }
                    }
                    Some(Body::IntervalReport(r)) => {
                        Event::AgentReport { agent_id: agent_id.clone(), report: Box::new(convert::interval_report(r)) }
                    }
                    Some(Body::FinalReport(f)) => Event::AgentFinal {
                        agent_id: agent_id.clone(),
                        run_id: f.run_id,
                        seq: f.seq,
                        error: f.error,
                        reports_dropped: f.reports_dropped,
                    },
                    Some(Body::Hello(_)) | None => {
                        let _ = output.send(Err(Status::invalid_argument("hello may only be the first message"))).await;
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
