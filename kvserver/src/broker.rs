//! Pub/sub: channels and their subscribers. A published message is encoded
//! once and queued to every subscriber's connection, which writes it
//! between replies.
//!
//! A subscriber that reads slower than messages are published would make
//! its queue grow without end, so each queue is bounded in bytes (as Redis's
//! `client-output-buffer-limit pubsub`): a message that would take a queue
//! past the limit is not queued, the subscriber is removed from every
//! channel, and its connection is closed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::resp::reply;
use crate::store::FastMap;

/// Bytes of messages a subscriber's queue may hold (Redis's hard pub/sub
/// output limit).
pub const DEFAULT_QUEUE_LIMIT: usize = 32 * 1024 * 1024;

/// How full a subscriber's queue is, shared by the broker (which adds) and
/// the connection (which takes away what it wrote).
#[derive(Default)]
pub struct Outbox {
    queued: AtomicUsize,
    overflowed: AtomicBool,
    bell: Notify,
}

impl Outbox {
    /// The connection wrote a message of `len` bytes.
    pub fn written(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
    }

    pub fn has_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Completes once the queue has overflowed.
    pub async fn overflow(&self) {
        while !self.has_overflowed() {
            self.bell.notified().await;
        }
    }

    /// Takes `len` more bytes, or marks the queue overflowed and says no.
    fn admit(&self, len: usize, limit: usize) -> bool {
        if self.has_overflowed() {
            return false;
        }
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) <= limit {
            return true;
        }
        self.queued.fetch_sub(len, Ordering::AcqRel);
        self.overflowed.store(true, Ordering::Release);
        self.bell.notify_one();
        false
    }
}

/// One subscriber's end of its queue, as the broker keeps it.
#[derive(Clone)]
pub struct Mailbox {
    sender: UnboundedSender<Bytes>,
    pub outbox: Arc<Outbox>,
}

impl Mailbox {
    /// A new queue: the mailbox for the broker, the receiver for the connection.
    pub fn new() -> (Self, UnboundedReceiver<Bytes>) {
        let (sender, receiver) = unbounded_channel();
        (Self { sender, outbox: Arc::default() }, receiver)
    }
}

type Channels = FastMap<Bytes, FastMap<u64, Mailbox>>;

pub struct Broker {
    channels: Mutex<Channels>,
    queue_limit: usize,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new(DEFAULT_QUEUE_LIMIT)
    }
}

impl Broker {
    /// `queue_limit`: bytes per subscriber's queue; 0 is no limit.
    pub fn new(queue_limit: usize) -> Self {
        let queue_limit = if queue_limit == 0 { usize::MAX } else { queue_limit };
        Self { channels: Mutex::default(), queue_limit }
    }

    /// Bytes a subscriber's queue may hold.
    pub fn queue_limit(&self) -> usize {
        self.queue_limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn subscribe(&self, channel: &Bytes, client: u64, mailbox: Mailbox) {
        self.lock().entry(channel.clone()).or_default().insert(client, mailbox);
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
    /// Subscribers whose queue it would overflow are dropped from the channel.
    pub fn publish(&self, channel: &Bytes, message: &Bytes) -> usize {
        let mut frame = BytesMut::new();
        reply::array_header(&mut frame, 3);
        reply::bulk(&mut frame, b"message");
        reply::bulk(&mut frame, channel);
        reply::bulk(&mut frame, message);
        let frame = frame.freeze();
        let mut channels = self.lock();
        let Some(subscribers) = channels.get_mut(channel) else { return 0 };
        let mut received = 0;
        subscribers.retain(|_, mailbox| {
            if !mailbox.outbox.admit(frame.len(), self.queue_limit) {
                return false;
            }
            let sent = mailbox.sender.send(frame.clone()).is_ok();
            if sent {
                received += 1;
            } else {
                mailbox.outbox.written(frame.len());
            }
            sent
        });
        if subscribers.is_empty() {
            channels.remove(channel);
        }
        received
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_whose_queue_would_overflow_is_dropped_and_told() {
        let broker = Broker::new(120);
        let channel = Bytes::from_static(b"news");
        let (slow, mut slow_rx) = Mailbox::new();
        let (fast, mut fast_rx) = Mailbox::new();
        broker.subscribe(&channel, 1, slow.clone());
        broker.subscribe(&channel, 2, fast.clone());
        let message = Bytes::from(vec![b'x'; 20]);
        // Each frame is 54 bytes: two fit in 120, the third does not.
        assert_eq!(broker.publish(&channel, &message), 2);
        let frame = fast_rx.try_recv().expect("first message");
        fast.outbox.written(frame.len());
        assert_eq!(broker.publish(&channel, &message), 2);
        fast.outbox.written(fast_rx.try_recv().expect("second message").len());
        assert!(!slow.outbox.has_overflowed());
        assert_eq!(broker.publish(&channel, &message), 1, "only the subscriber that keeps up receives it");
        assert!(slow.outbox.has_overflowed());
        assert!(!fast.outbox.has_overflowed());
        assert_eq!(broker.subscriber_count(), 1, "the slow subscriber left the channel");
        // What was queued before the overflow is still there; nothing after it.
        assert!(slow_rx.try_recv().is_ok() && slow_rx.try_recv().is_ok() && slow_rx.try_recv().is_err());
        assert_eq!(broker.publish(&channel, &message), 1);
    }

    #[test]
    fn a_limit_of_zero_is_no_limit() {
        let broker = Broker::new(0);
        let channel = Bytes::from_static(b"big");
        let (mailbox, mut rx) = Mailbox::new();
        broker.subscribe(&channel, 1, mailbox.clone());
        let message = Bytes::from(vec![b'x'; 1 << 20]);
        for _ in 0..8 {
            assert_eq!(broker.publish(&channel, &message), 1);
        }
        assert!(!mailbox.outbox.has_overflowed());
        assert_eq!(std::iter::from_fn(|| rx.try_recv().ok()).count(), 8);
    }

    #[tokio::test]
    async fn the_overflow_wakes_the_connection_waiting_for_it() {
        let outbox = Arc::new(Outbox::default());
        let waiter = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            async move { outbox.overflow().await }
        });
        assert!(outbox.admit(10, 10));
        assert!(!outbox.admit(1, 10));
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken by the overflow")
            .expect("task");
    }
}
