//! Publish/subscribe for the `pubsub` workload. Publishers are ordinary
//! operations (`PUBLISH`, whose reply counts the subscribers reached);
//! subscribers are connections of their own that receive every message of
//! the run's channels and measure delivery latency from the send time the
//! publisher put in the first 8 bytes of the message (microseconds since
//! the Unix epoch, little endian). Publisher and subscriber clocks must
//! agree for cross-host figures; on one host they are the same clock.

use bytes::Bytes;
use futures::StreamExt;

use super::{CONNECT_TIMEOUT, RespConfig, connect_with};
use crate::drivers::{DriverError, ErrorKind, Listen, ListenFuture};

fn now_us() -> u64 {
    stampede_proto::now_unix_us().max(0) as u64
}

/// A message's first bytes: its send time.
pub const SEND_TIME_BYTES: u64 = 8;

/// A message: the send time, then a body from the value pool.
pub fn message(values: &[Bytes], channel: u64) -> Vec<u8> {
    let body = values.get((channel % values.len().max(1) as u64) as usize).map_or(&[][..], |v| &v[..]);
    let mut message = Vec::with_capacity(8 + body.len());
    message.extend_from_slice(&now_us().to_le_bytes());
    message.extend_from_slice(body);
    message
}

/// Delivery latency of a received message in microseconds, or `None` when
/// the message does not carry a send time.
pub fn delivery_latency_us(payload: &[u8]) -> Option<u64> {
    let sent = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    Some(now_us().saturating_sub(sent))
}

impl Listen for Subscriber {
    fn node(&self) -> &str {
        &self.node
    }

    fn listen(self: Box<Self>, until: ListenFuture, received: Box<dyn FnMut(u64) + Send>) -> ListenFuture {
        Box::pin((*self).listen(until, received))
    }
}

/// A subscriber connection, subscribed to its channels.
pub struct Subscriber {
    pub node: String,
    pubsub: redis::aio::PubSub,
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
        Ok(Self { node, pubsub })
    }

    /// Receives messages until `until` resolves, calling `delivered` with
    /// each message's delivery latency. Returns early if the connection ends.
    pub async fn listen(self, until: impl std::future::Future<Output = ()>, mut delivered: impl FnMut(u64)) {
        let mut messages = self.pubsub.into_on_message();
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return,
                message = messages.next() => match message {
                    Some(message) => {
                        if let Some(latency) = delivery_latency_us(message.get_payload_bytes()) {
                            delivered(latency);
                        }
                    }
                    None => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_send_time() {
        let message = message(&[Bytes::from_static(b"hello")], 3);
        assert_eq!(&message[8..], b"hello");
        assert!(delivery_latency_us(&message).is_some_and(|us| us < 1_000_000));
        assert_eq!(delivery_latency_us(b"short"), None);
    }
}
