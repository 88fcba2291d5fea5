//! Publish/subscribe for the `pubsub` workload. Publishers are ordinary
//! operations (`PUBLISH`, whose reply counts the subscribers reached);
//! subscribers are connections of their own that receive every message of
//! the run's channels and measure delivery latency from the send time the
//! publisher put in the first 8 bytes of the message (microseconds since
//! the Unix epoch on the coordinator's clock, little endian; `stamp` says how
//! deliveries between agents are timed on one clock).

use futures::StreamExt;

use super::{CONNECT_TIMEOUT, RespConfig, connect_with};
use crate::drivers::stamp::Clock;
use crate::drivers::{DriverError, ErrorKind, Heard, Listen, ListenFuture, Received};

impl Listen for Subscriber {
    fn node(&self) -> &str {
        &self.node
    }

    fn listen(self: Box<Self>, until: ListenFuture, received: Received) -> ListenFuture {
        Box::pin((*self).listen(until, received))
    }
}

/// A subscriber connection, subscribed to its channels.
pub struct Subscriber {
    pub node: String,
    pubsub: redis::aio::PubSub,
    clock: Clock,
}

impl Subscriber {
    /// Connects to `endpoint` and subscribes to every channel; returns once
    /// the server confirmed the subscriptions.
    pub async fn connect(
        config: &std::sync::Arc<RespConfig>,
        endpoint: &str,
        channels: &[String],
    ) -> Result<Self, DriverError> {
        // The node is learned on an ordinary connection: a subscribed RESP2
        // connection cannot run INFO.
        let node = crate::drivers::Connection::node(&connect_with(config, endpoint, true).await?).to_string();
        let address = super::RespAddress::parse(endpoint);
        let shown = &address.shown;
        let client = address
            .connection_info()
            .and_then(redis::Client::open)
            .map_err(|e| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{shown}`: {e}")))?;
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channels).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, attempt)
            .await
            .map_err(|_| DriverError::new(ErrorKind::Timeout, format!("subscribing on {shown} took over 5s")))?
            .map_err(|e| DriverError::new(ErrorKind::Connection, format!("cannot subscribe on {shown}: {e}")))?;
        Ok(Self { node, pubsub, clock: config.clock })
    }

    /// Receives messages until `until` resolves, calling `delivered` with
    /// each message's delivery latency. Returns early if the connection ends.
    pub async fn listen(self, until: impl std::future::Future<Output = ()>, mut delivered: Received) {
        let mut messages = self.pubsub.into_on_message();
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return,
                message = messages.next() => match message {
                    Some(message) => {
                        let payload = message.get_payload_bytes();
                        if let Some(latency_us) = self.clock.latency_us(payload) {
                            // `*3`, `message`, the channel and the payload.
                            let frame = [&b"message"[..], message.get_channel_name().as_bytes(), payload];
                            let bytes = super::wire::command_len(&frame) as u32;
                            delivered(Ok(Heard { latency_us, bytes }));
                        }
                    }
                    None => return,
                },
            }
        }
    }
}
