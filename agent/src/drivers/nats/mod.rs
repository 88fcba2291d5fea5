//! The NATS target (`kind: nats`, through async-nats): the `pubsub`
//! workload publishes to subjects, core or JetStream, while each agent's
//! subscribers time every delivery; the `request` workload sends requests
//! that the agents' responders (or an existing service) answer.
//!
//! Each connection's node is the server named in the INFO it got when it
//! connected (`server_name`, which NATS sets to the server id when none is
//! configured). A connection keeps to the server it was opened to: it
//! ignores the servers a cluster advertises and, once the server is gone or
//! the client had to connect again, reports itself closed so that the
//! runner opens (and counts) a new one. What was sent meanwhile waits in
//! the client and is timed with the wait.
//!
//! A core publish is timed until the server confirmed it (the publish, then
//! a PING that the server answers after everything before it; a pipelined
//! batch shares one), a JetStream publish until its acknowledgement, a
//! request until its reply. Messages carry their send time (`stamp`).

mod listen;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use bytes::Bytes;
use stampede_common::scenario::redact;
use stampede_common::scenario::{Compression, ValueFormat, ValueSpec, Workload};

use super::stamp::{Clock, SEND_TIME_BYTES};
use super::{BuildError, Connection, Done, Driver, DriverError, DriverSpec, ErrorKind, Listen, Part, Progress};
use crate::workloads::{Action, Operation, values};

/// How long opening a connection (TCP, INFO, CONNECT) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a publish waits for the server's confirmation or a request
/// for its reply before it counts as a timeout.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages a subscriber may hold before async-nats drops them and reports
/// a slow consumer.
const SUBSCRIPTION_CAPACITY: usize = 65_536;

/// What the run does on each connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// Publish to the subjects; `stream` is JetStream's (None: core NATS).
    Publish {
        stream: Option<String>,
    },
    Request,
}

#[derive(Debug)]
pub struct NatsConfig {
    mode: Mode,
    /// Every subject of the run.
    subjects: Vec<String>,
    /// Message bodies (after the send time).
    values: Vec<Bytes>,
    message_size: u64,
    /// Subscribers (pubsub) or responders (request) this agent starts.
    listeners: u32,
    /// The deliveries each message should make: every agent's subscribers
    /// take every subject.
    fanout: u32,
    agent_index: u32,
    clock: Clock,
    note: String,
}

pub struct NatsDriver {
    config: Arc<NatsConfig>,
}

/// A connection, or a pipeline slot's handle to one.
#[derive(Clone)]
pub struct NatsConnection {
    client: async_nats::Client,
    jetstream: Option<async_nats::jetstream::Context>,
    node: Arc<str>,
    config: Arc<NatsConfig>,
}

/// The endpoint as async-nats takes it, and as errors show it (without a
/// password).
fn address(endpoint: &str) -> (String, String) {
    let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("nats://{endpoint}") };
    (url, redact(endpoint))
}

/// Opens a client to exactly `endpoint` (never to the servers it
/// advertises), with `events` told of slow consumers and server errors.
pub(crate) async fn open(
    endpoint: &str,
    config: &NatsConfig,
    events: Option<tokio::sync::mpsc::Sender<async_nats::Event>>,
) -> Result<(async_nats::Client, Arc<str>), DriverError> {
    let (url, shown) = address(endpoint);
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("stampede-agent-{}", config.agent_index))
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(ANSWER_TIMEOUT))
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .ignore_discovered_servers()
        // A server that restarts is found again within about ten seconds
        // (listeners keep their subscriptions); then the client gives up.
        .reconnect_delay_callback(|attempts| Duration::from_millis(100 << attempts.min(4)))
        .max_reconnects(Some(8));
    if let Some(events) = events {
        options = options.event_callback(move |event| {
            let events = events.clone();
            async move {
                // Bounded: events beyond 64 waiting are dropped, never queued without end.
                let _ = events.try_send(event);
            }
        });
    }
    let client = match tokio::time::timeout(CONNECT_TIMEOUT, options.connect(url.as_str())).await {
        Err(_) => {
            return Err(DriverError::new(
                ErrorKind::Timeout,
                format!("NATS server {shown} did not complete the handshake within {}s", CONNECT_TIMEOUT.as_secs()),
            ));
        }
        Ok(Err(error)) => {
            let kind = match error.kind() {
                async_nats::ConnectErrorKind::TimedOut => ErrorKind::Timeout,
                async_nats::ConnectErrorKind::ServerParse => ErrorKind::Protocol,
                async_nats::ConnectErrorKind::Authentication | async_nats::ConnectErrorKind::AuthorizationViolation => {
                    ErrorKind::Server
                }
                _ => ErrorKind::Connection,
            };
            return Err(DriverError::new(kind, format!("cannot connect to NATS server {shown}: {error}")));
        }
        Ok(Ok(client)) => client,
    };
    let info = client.server_info();
    let max_payload = info.max_payload as u64;
    if max_payload > 0 && config.message_size > max_payload {
        return Err(DriverError::new(
            ErrorKind::Server,
            format!(
                "NATS server {shown} takes messages of at most {max_payload} bytes (max_payload); lower \
                 workload.message_size from {} or raise the server's max_payload",
                config.message_size
            ),
        ));
    }
    let node = if info.server_name.is_empty() { info.server_id } else { info.server_name };
    Ok((client, node.into()))
}

/// JetStream's stream name for the run's subjects: the prefix in capitals,
/// with what a stream name cannot hold turned into `_`.
pub fn stream_name(prefix: &str) -> String {
    let name: String =
        prefix.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    let name = name.trim_matches('_');
    if name.is_empty() { "STAMPEDE".to_string() } else { name.to_string() }
}

impl NatsConfig {
    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        let (mode, count, prefix, message_size, listeners, fanout) = match &spec.scenario.workload {
            Workload::Pubsub(w) => {
                let stream = w.jetstream.then(|| stream_name(&w.prefix));
                let fanout = w.subscribers.saturating_mul(spec.agent_count.max(1));
                (Mode::Publish { stream }, w.channels, &w.prefix, w.message_size, w.subscribers, fanout)
            }
            Workload::Request(w) => (Mode::Request, w.subjects, &w.prefix, w.message_size, w.responders, 0),
            other => return Err(BuildError(format!("workload {} does not run against a NATS target", other.kind()))),
        };
        let body = ValueSpec {
            size: message_size.saturating_sub(SEND_TIME_BYTES),
            format: ValueFormat::Raw,
            compress: Compression::None,
        };
        let values = values::pool(&body, spec.seed).map_err(|e| BuildError(e.to_string()))?;
        let note = match &mode {
            Mode::Publish { stream: Some(stream) } => {
                format!("{message_size}-byte messages over {count} subjects, published to JetStream stream {stream}")
            }
            Mode::Publish { stream: None } => format!("{message_size}-byte messages over {count} subjects (core NATS)"),
            Mode::Request if listeners == 0 => {
                format!("{message_size}-byte requests over {count} subjects, answered by the target's own service")
            }
            Mode::Request => format!(
                "{message_size}-byte requests over {count} subjects, answered by {listeners} responders per agent \
                 (queue group stampede)"
            ),
        };
        Ok(Self {
            mode,
            subjects: (0..count).map(|n| format!("{prefix}{n}")).collect(),
            values,
            message_size,
            listeners,
            fanout,
            agent_index: spec.part.agent_index,
            clock: spec.clock,
            note,
        })
    }

    fn subject(&self, n: u64) -> &str {
        &self.subjects[(n % self.subjects.len().max(1) as u64) as usize]
    }
}

impl Driver for NatsDriver {
    type Connection = NatsConnection;

    fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        Ok(Self { config: Arc::new(NatsConfig::build(spec)?) })
    }

    fn notes(&self) -> Vec<String> {
        vec![self.config.note.clone()]
    }

    async fn listeners(&self, endpoints: &[String]) -> Result<Vec<Box<dyn Listen>>, DriverError> {
        listen::open_all(&self.config, endpoints).await
    }

    async fn connect(&self, endpoint: &str) -> Result<NatsConnection, DriverError> {
        let (client, node) = open(endpoint, &self.config, None).await?;
        let jetstream = match &self.config.mode {
            Mode::Publish { stream: Some(_) } => Some(async_nats::jetstream::new(client.clone())),
            _ => None,
        };
        Ok(NatsConnection { client, jetstream, node, config: Arc::clone(&self.config) })
    }

    async fn setup(&self, endpoints: &[String], part: &Part, progress: &Progress) -> Result<Vec<String>, DriverError> {
        let _ = (part, progress);
        let Mode::Publish { stream: Some(stream) } = &self.config.mode else { return Ok(Vec::new()) };
        let endpoint = endpoints.first().ok_or_else(|| DriverError::new(ErrorKind::Connection, "no endpoints"))?;
        let (client, _) = open(endpoint, &self.config, None).await?;
        let context = async_nats::jetstream::new(client);
        let config = async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: self.config.subjects.clone(),
            ..Default::default()
        };
        let shown = redact(endpoint);
        // Every agent asks; creating a stream that exists with the same
        // subjects is answered with the stream.
        let mut made = context.get_or_create_stream(config.clone()).await;
        if made.is_err() {
            made = context.get_or_create_stream(config).await;
        }
        let mut made = made.map_err(|e| {
            DriverError::new(ErrorKind::Server, format!("cannot create JetStream stream {stream} on {shown}: {e}"))
        })?;
        let messages = made.info().await.map(|info| info.state.messages).unwrap_or(0);
        Ok(vec![format!("JetStream stream {stream} held {messages} messages before the run; it is kept after it")])
    }
}

/// The error of a publish or request that got no answer, or a bad one.
fn failure(kind: ErrorKind, node: &str, what: impl std::fmt::Display) -> DriverError {
    DriverError::new(kind, format!("NATS server {node}: {what}"))
}

impl NatsConnection {
    async fn publish(&self, operations: &[Operation], results: &mut Vec<Result<Done, DriverError>>) {
        let done = Done { fanout: self.config.fanout, ..Done::default() };
        if let Some(jetstream) = &self.jetstream {
            let mut acks = Vec::with_capacity(operations.len());
            for operation in operations {
                let Action::Publish(n) = operation.action else {
                    acks.push(Err(not_ours(operation)));
                    continue;
                };
                let message = self.config.clock.message_from(&self.config.values, n);
                let sent = message.len() as u32;
                let subject = self.config.subject(n).to_string();
                acks.push(
                    jetstream
                        .publish(subject, message.into())
                        .await
                        .map(|ack| (ack, sent))
                        .map_err(|e| self.publish_error(e)),
                );
            }
            for ack in acks {
                let result = match ack {
                    Ok((ack, sent)) => match tokio::time::timeout(ANSWER_TIMEOUT, ack).await {
                        Ok(Ok(_)) => Ok(Done { sent, ..done.clone() }),
                        Ok(Err(e)) => Err(self.publish_error(e)),
                        Err(_) => Err(failure(ErrorKind::Timeout, &self.node, "no JetStream acknowledgement in 10s")),
                    },
                    Err(error) => Err(error),
                };
                results.push(result);
            }
            return;
        }
        let mut sent = 0;
        for operation in operations {
            let Action::Publish(n) = operation.action else { continue };
            let message = self.config.clock.message_from(&self.config.values, n);
            // Every message of a run has the same size.
            sent = message.len() as u32;
            let subject = self.config.subject(n).to_string();
            if let Err(error) = self.client.publish(subject, message.into()).await {
                let error = failure(ErrorKind::Connection, &self.node, format!("publish failed: {error}"));
                results.extend(operations.iter().map(|_| Err(error.clone())));
                return;
            }
        }
        let confirmed = match tokio::time::timeout(ANSWER_TIMEOUT, self.client.flush()).await {
            Ok(Ok(())) => Ok(Done { sent, ..done }),
            Ok(Err(error)) => {
                Err(failure(ErrorKind::Connection, &self.node, format!("publish not confirmed: {error}")))
            }
            Err(_) => Err(failure(ErrorKind::Timeout, &self.node, "publish not confirmed (no PONG) in 10s")),
        };
        for operation in operations {
            results.push(match operation.action {
                Action::Publish(_) => confirmed.clone(),
                _ => Err(not_ours(operation)),
            });
        }
    }

    fn publish_error(&self, error: async_nats::jetstream::context::PublishError) -> DriverError {
        use async_nats::jetstream::context::PublishErrorKind as K;
        let kind = match error.kind() {
            K::TimedOut => ErrorKind::Timeout,
            K::BrokenPipe => ErrorKind::Connection,
            K::StreamNotFound | K::WrongLastMessageId | K::WrongLastSequence | K::MaxAckPending | K::Other => {
                ErrorKind::Server
            }
        };
        failure(kind, &self.node, format!("JetStream publish: {error}"))
    }

    async fn request(&self, n: u64) -> Result<Done, DriverError> {
        use async_nats::RequestErrorKind as K;
        let subject = self.config.subject(n).to_string();
        let message = self.config.clock.message_from(&self.config.values, n);
        let sent = message.len() as u32;
        match self.client.request(subject.clone(), message.into()).await {
            Ok(reply) => Ok(Done { sent, received: reply.payload.len() as u32, ..Done::default() }),
            Err(error) => Err(match error.kind() {
                K::TimedOut => failure(ErrorKind::Timeout, &self.node, format!("no reply on {subject} in 10s")),
                K::NoResponders => failure(
                    ErrorKind::Server,
                    &self.node,
                    format!("no responders on {subject} (start responders with workload.responders, or the service)"),
                ),
                K::Other => failure(ErrorKind::Connection, &self.node, format!("request on {subject} failed: {error}")),
            }),
        }
    }
}

fn not_ours(operation: &Operation) -> DriverError {
    DriverError::new(ErrorKind::Protocol, format!("{:?} is not an operation of the NATS driver", operation.action))
}

impl Connection for NatsConnection {
    fn node(&self) -> &str {
        &self.node
    }

    /// Closed once the server is gone, and also once async-nats connected
    /// again by itself: that is a new connection, which the runner then
    /// opens and counts as such.
    fn is_closed(&self) -> bool {
        self.client.connection_state() == State::Disconnected
            || self.client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed) > 1
    }

    async fn execute(&mut self, operation: &Operation) -> Result<Done, DriverError> {
        match operation.action {
            Action::Publish(_) => {
                let mut results = Vec::with_capacity(1);
                self.publish(std::slice::from_ref(operation), &mut results).await;
                results.pop().unwrap_or_else(|| Err(not_ours(operation)))
            }
            Action::Request(n) => self.request(n).await,
            _ => Err(not_ours(operation)),
        }
    }

    async fn execute_batch(&mut self, operations: &[Operation], results: &mut Vec<Result<Done, DriverError>>) {
        if operations.iter().all(|o| matches!(o.action, Action::Publish(_))) {
            self.publish(operations, results).await;
            return;
        }
        // Requests (and anything else) wait for their answers together.
        let answers = futures::future::join_all(operations.iter().map(|operation| {
            let mut this = self.clone();
            async move { this.execute(operation).await }
        }))
        .await;
        results.extend(answers);
    }
}
