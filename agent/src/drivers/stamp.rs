//! Send times carried in messages (pub/sub deliveries, NATS requests), so
//! that whoever receives one can time its delivery.
//!
//! A message begins with its send time: microseconds since the Unix epoch
//! on the *coordinator's* clock, little endian. Each agent measured its
//! offset to the coordinator when its session began (the NTP-style clock
//! sync) and stamps `local time + offset`; a receiver on another agent
//! subtracts that stamp from its own `local time + offset`. So a delivery
//! from one agent to another is timed on one clock, and its error is at
//! most the two agents' offset errors (each within half the round trip of
//! their clock sync, printed in the coordinator's log); on one agent both
//! offsets are the same and cancel.

use bytes::Bytes;

/// A message's first bytes: its send time.
pub const SEND_TIME_BYTES: u64 = 8;

/// This agent's clock moved onto the coordinator's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// Coordinator time minus local time, in microseconds.
    pub offset_us: i64,
}

impl Clock {
    pub fn new(offset_us: i64) -> Self {
        Self { offset_us }
    }

    /// Now, in microseconds since the Unix epoch on the coordinator's clock.
    pub fn now_us(&self) -> u64 {
        stampede_proto::now_unix_us().saturating_add(self.offset_us).max(0) as u64
    }

    /// A message: the send time, then `body`.
    pub fn message(&self, body: &[u8]) -> Vec<u8> {
        let mut message = Vec::with_capacity(SEND_TIME_BYTES as usize + body.len());
        message.extend_from_slice(&self.now_us().to_le_bytes());
        message.extend_from_slice(body);
        message
    }

    /// The body of value `n` of a pool, stamped (an empty pool gives the
    /// send time alone).
    pub fn message_from(&self, values: &[Bytes], n: u64) -> Vec<u8> {
        let body = values.get((n % values.len().max(1) as u64) as usize).map_or(&[][..], |v| &v[..]);
        self.message(body)
    }

    /// Delivery latency of a received message in microseconds, or `None`
    /// when the message does not carry a send time.
    pub fn latency_us(&self, payload: &[u8]) -> Option<u64> {
        let sent = u64::from_le_bytes(payload.get(..SEND_TIME_BYTES as usize)?.try_into().ok()?);
        Some(self.now_us().saturating_sub(sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_send_time() {
        let clock = Clock::default();
        let message = clock.message_from(&[Bytes::from_static(b"hello")], 3);
        assert_eq!(&message[8..], b"hello");
        assert!(clock.latency_us(&message).is_some_and(|us| us < 1_000_000));
        assert_eq!(clock.latency_us(b"short"), None);
    }

    #[test]
    fn a_delivery_between_agents_is_timed_on_the_coordinators_clock() {
        // Agent A's clock is 3 s behind the coordinator, agent B's 2 s ahead:
        // B's raw local time would read 5 s of latency.
        let (a, b) = (Clock::new(3_000_000), Clock::new(-2_000_000));
        let sent = a.message(b"x");
        let latency = b.latency_us(&sent).expect("stamped");
        assert!(latency < 1_000_000, "{latency} us");
        let raw = Clock::default().latency_us(&Clock::default().message(b"x")).expect("stamped");
        assert!(raw < 1_000_000);
    }
}
