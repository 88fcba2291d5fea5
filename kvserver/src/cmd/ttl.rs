//! `TTL key` (seconds) and `PTTL key` (milliseconds): -2 for a missing
//! key, -1 for a key without expiry.

use bytes::{Bytes, BytesMut};

use crate::Shared;
use crate::resp::reply;

#[derive(Debug)]
pub struct Ttl {
    key: Bytes,
    unit_ms: u64,
}

impl Ttl {
    pub fn parse(args: &[Bytes], unit_ms: u64) -> Self {
        Self { key: args[0].clone(), unit_ms }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        let now = shard.now;
        let value = match shard.get(&self.key) {
            None => -2,
            Some(entry) => match entry.expires_at {
                None => -1,
                // Rounded like Redis: (ms + 500) / 1000 for seconds.
                Some(at) => ((at.saturating_sub(now) + self.unit_ms / 2) / self.unit_ms) as i64,
            },
        };
        reply::integer(out, value);
    }
}
