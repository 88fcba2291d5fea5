//! What receives on NATS: subscribers of the `pubsub` workload, each
//! taking every subject of the run and timing each delivery from the send
//! time in the message, and responders of the `request` workload, one
//! queue group over every subject, each answering with the request's own
//! payload and timing the request's way to it.
//!
//! A slow consumer (async-nats dropped messages because the subscriber fell
//! behind) and an error the server sent are errors of the listener's
//! operation, each event once; so is a lost connection.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::{Mode, NatsConfig, open};
use crate::drivers::{DriverError, ErrorKind, Heard, Listen, ListenFuture, Received};

/// A subscriber or responder: its client and its subscriptions.
struct Listener {
    client: async_nats::Client,
    node: Arc<str>,
    subscriptions: Vec<async_nats::Subscriber>,
    events: mpsc::Receiver<async_nats::Event>,
    /// Answer each message (a responder) or only time it (a subscriber).
    respond: bool,
    config: Arc<NatsConfig>,
}

/// Opens this agent's listeners, spread over the endpoints round robin
/// (each agent starting one further on), and returns once the servers
/// confirmed every subscription.
pub(super) async fn open_all(
    config: &Arc<NatsConfig>,
    endpoints: &[String],
) -> Result<Vec<Box<dyn Listen>>, DriverError> {
    if config.listeners == 0 {
        return Ok(Vec::new());
    }
    if endpoints.is_empty() {
        return Err(DriverError::new(ErrorKind::Connection, "the assignment has no endpoints"));
    }
    let respond = config.mode == Mode::Request;
    let first = config.agent_index as usize;
    let attempts = (0..config.listeners as usize).map(|i| {
        let endpoint = &endpoints[(first + i) % endpoints.len()];
        async move {
            let (events_tx, events) = mpsc::channel(64);
            let (client, node) = open(endpoint, config, Some(events_tx)).await?;
            let mut subscriptions = Vec::with_capacity(config.subjects.len());
            for subject in &config.subjects {
                let subscribed = if respond {
                    client.queue_subscribe(subject.clone(), "stampede".to_string()).await
                } else {
                    client.subscribe(subject.clone()).await
                };
                let subscription = subscribed.map_err(|e| {
                    DriverError::new(ErrorKind::Connection, format!("cannot subscribe to {subject} on {node}: {e}"))
                })?;
                subscriptions.push(subscription);
            }
            // The server has every subscription once it answered the PING
            // that follows them.
            client.flush().await.map_err(|e| {
                DriverError::new(
                    ErrorKind::Connection,
                    format!("NATS server {node} did not confirm the subscriptions: {e}"),
                )
            })?;
            Ok::<_, DriverError>(Box::new(Listener {
                client,
                node,
                subscriptions,
                events,
                respond,
                config: Arc::clone(config),
            }) as Box<dyn Listen>)
        }
    });
    futures::future::try_join_all(attempts).await
}

impl Listen for Listener {
    fn node(&self) -> &str {
        &self.node
    }

    fn listen(self: Box<Self>, until: ListenFuture, received: Received) -> ListenFuture {
        Box::pin(self.run(until, received))
    }
}

impl Listener {
    async fn run(self, until: ListenFuture, mut received: Received) {
        let Self { client, node, subscriptions, mut events, respond, config } = self;
        let mut messages = futures::stream::select_all(subscriptions);
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return,
                event = events.recv() => match event {
                    Some(async_nats::Event::SlowConsumer(_)) => received(Err(DriverError::new(
                        ErrorKind::Server,
                        format!("slow consumer on {node}: the subscriber fell behind and messages were dropped"),
                    ))),
                    Some(async_nats::Event::ServerError(error)) => received(Err(DriverError::new(
                        ErrorKind::Server,
                        format!("NATS server {node}: {error}"),
                    ))),
                    Some(async_nats::Event::Disconnected) => received(Err(DriverError::new(
                        ErrorKind::Connection,
                        format!(
                            "lost the connection to NATS server {node} (a server closes a subscriber that falls \
                             behind, counting it in its /varz slow_consumers)"
                        ),
                    ))),
                    Some(_) => {}
                    None => return,
                },
                message = messages.next() => {
                    let Some(message) = message else { return };
                    let latency = config.clock.latency_us(&message.payload);
                    let bytes = message.payload.len() as u32;
                    if respond
                        && let Some(reply) = message.reply
                        && let Err(error) = client.publish(reply, message.payload).await
                    {
                        received(Err(DriverError::new(ErrorKind::Connection, format!("cannot reply on {node}: {error}"))));
                        continue;
                    }
                    if let Some(latency_us) = latency {
                        received(Ok(Heard { latency_us, bytes }));
                    }
                }
            }
        }
    }
}
