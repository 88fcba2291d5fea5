//! Pub/sub: channels and their subscribers. A published message is encoded
//! once and queued to every subscriber's connection, which writes it
//! between replies.

use std::sync::{Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc::UnboundedSender;

use crate::resp::reply;
use crate::store::FastMap;

#[derive(Default)]
pub struct Broker {
    channels: Mutex<FastMap<Bytes, FastMap<u64, UnboundedSender<Bytes>>>>,
}

impl Broker {
    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<Bytes, FastMap<u64, UnboundedSender<Bytes>>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn subscribe(&self, channel: &Bytes, client: u64, sender: UnboundedSender<Bytes>) {
        self.lock().entry(channel.clone()).or_default().insert(client, sender);
    }

    pub fn unsubscribe(&self, channel: &Bytes, client: u64) {
        let mut channels = self.lock();
        if let Some(subscribers) = channels.get_mut(channel) {
            subscribers.remove(&client);
            if subscribers.is_empty() {
                channels.remove(channel);
            }
        }
    }

    /// Delivers a message; returns how many subscribers it was queued to.
    pub fn publish(&self, channel: &Bytes, message: &Bytes) -> usize {
        let mut frame = BytesMut::new();
        reply::array_header(&mut frame, 3);
        reply::bulk(&mut frame, b"message");
        reply::bulk(&mut frame, channel);
        reply::bulk(&mut frame, message);
        let frame = frame.freeze();
        let channels = self.lock();
        channels
            .get(channel)
            .map_or(0, |subscribers| subscribers.values().filter(|s| s.send(frame.clone()).is_ok()).count())
    }

    pub fn channel_count(&self) -> usize {
        self.lock().len()
    }

    pub fn subscriber_count(&self) -> usize {
        let mut clients: Vec<u64> = self.lock().values().flat_map(|s| s.keys().copied()).collect();
        clients.sort_unstable();
        clients.dedup();
        clients.len()
    }
}
