//! What a RESP connection needs to know of the workload, built from the
//! scenario: key prefix, the pool of values, TTL, chat history, preload
//! and cleanup, and the pub/sub subscriptions.

use std::sync::Arc;

use bytes::Bytes;
use stampede_common::scenario::{Compression, LoadModel, ValueFormat, ValueSpec, Workload};

use super::pubsub;
use crate::drivers::stamp::Clock;
use crate::drivers::{BuildError, DriverError, DriverSpec, ErrorKind, Listen};
use crate::workloads::values;

/// What a RESP connection needs to know of the workload.
#[derive(Debug, Clone)]
pub struct RespConfig {
    pub prefix: String,
    /// Values to write, picked by key.
    pub values: Vec<Bytes>,
    /// Each connection is used by one slot at a time (the closed model), so
    /// it may own its socket.
    pub exclusive: bool,
    /// `SET ... PX ttl` (the cache workload); 0 for no expiry.
    pub ttl_ms: u64,
    /// Chat: messages kept per room, and messages per history read.
    pub history: u32,
    pub page: u32,
    /// Write every key of the agent's range before the run.
    pub preload: bool,
    /// Delete the agent's keys (or rooms) after the run.
    pub cleanup: bool,
    /// The `pubsub` workload's subscribers, opened beside the connections.
    pub subscriptions: Option<Subscriptions>,
    /// What the report says about the values (none for tests).
    pub note: Option<String>,
    /// Stamps pub/sub messages with their send time.
    pub clock: Clock,
    /// `codec_in_path`: each connection encodes every value it writes and
    /// decodes every value it reads with its own copy of this codec.
    pub codec: Option<values::Codec>,
}

/// Pub/sub subscribers: how many, and the channels each subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriptions {
    pub subscribers: u32,
    pub channels: Vec<String>,
}

impl RespConfig {
    /// A plain key-value configuration (tests and the `kv` workload).
    pub fn simple(prefix: &str, value: Bytes, exclusive: bool) -> Self {
        Self {
            prefix: prefix.to_string(),
            values: vec![value],
            exclusive,
            ttl_ms: 0,
            history: 100,
            page: 20,
            preload: false,
            cleanup: false,
            subscriptions: None,
            note: None,
            clock: Clock::default(),
            codec: None,
        }
    }

    /// The configuration of a key-value, chat or pub/sub workload: what the
    /// scenario asks for, with this agent's pool of values.
    pub fn build(spec: &DriverSpec<'_>) -> Result<Self, BuildError> {
        let exclusive = matches!(spec.scenario.load.model, LoadModel::Closed);
        let mut config = Self::simple("", Bytes::new(), exclusive);
        let workload = &spec.scenario.workload;
        let values = if let Some(space) = workload.key_value_space() {
            config.prefix.clone_from(&space.prefix);
            config.preload = space.preload;
            config.cleanup = space.cleanup;
            if let Workload::Cache(cache) = workload {
                config.ttl_ms = cache.ttl.as_millis().max(1) as u64;
            }
            if space.codec_in_path {
                config.codec = Some(values::Codec::new(&space.value, spec.seed));
            }
            space.value
        } else {
            match workload {
                Workload::Chat(chat) => {
                    config.prefix.clone_from(&chat.prefix);
                    config.cleanup = chat.cleanup;
                    config.history = chat.history;
                    config.page = chat.page;
                    chat.value
                }
                Workload::Pubsub(pubsub) => {
                    config.prefix.clone_from(&pubsub.prefix);
                    config.subscriptions = Some(Subscriptions {
                        subscribers: pubsub.subscribers,
                        channels: (0..pubsub.channels).map(|c| format!("{}{c}", pubsub.prefix)).collect(),
                    });
                    // A message starts with its send time (`stamp`).
                    let size = pubsub.message_size.saturating_sub(crate::drivers::stamp::SEND_TIME_BYTES);
                    ValueSpec { size, format: ValueFormat::Raw, compress: Compression::None }
                }
                other => {
                    return Err(BuildError(format!("workload {} does not run against a RESP target", other.kind())));
                }
            }
        };
        config.clock = spec.clock;
        config.values = values::pool(&values, spec.seed).map_err(|e| BuildError(e.to_string()))?;
        let mut note = values::describe(&values, &config.values);
        if config.codec.is_some() {
            note.push_str("; codec_in_path: each value encoded as it is sent and decoded as it is read");
        }
        config.note = Some(note);
        Ok(config)
    }

    /// Opens the subscribers (none without subscriptions), spread over the
    /// endpoints round robin.
    pub(super) async fn subscribers(&self, endpoints: &[String]) -> Result<Vec<Box<dyn Listen>>, DriverError> {
        let Some(subscriptions) = &self.subscriptions else { return Ok(Vec::new()) };
        if endpoints.is_empty() {
            return Err(DriverError::new(ErrorKind::Connection, "the assignment has no endpoints"));
        }
        // A subscriber learns its node on a plain connection of this shape.
        let plain = Arc::new(Self::simple(&self.prefix, Bytes::new(), true));
        let attempts = (0..subscriptions.subscribers as usize).map(|i| {
            let (plain, channels) = (&plain, &subscriptions.channels);
            let endpoint = &endpoints[i % endpoints.len()];
            async move { pubsub::Subscriber::connect(plain, endpoint, channels).await }
        });
        let subscribers = futures::future::try_join_all(attempts).await?;
        Ok(subscribers.into_iter().map(|s| Box::new(s) as Box<dyn Listen>).collect())
    }
}
