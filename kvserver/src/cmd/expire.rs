//! `EXPIRE key seconds [NX | XX | GT | LT]` and `PEXPIRE key ms [...]`:
//! 1 when the expiry was set, 0 when the key is missing or a condition
//! did not hold. A time in the past deletes the key.

use bytes::{Bytes, BytesMut};

use super::{CommandError, parse_int};
use crate::Shared;
use crate::resp::reply;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Condition {
    Always,
    NoExpiry,
    HasExpiry,
    Greater,
    Less,
}

#[derive(Debug)]
pub struct Expire {
    key: Bytes,
    /// Milliseconds from now; zero or negative deletes the key.
    ms: i64,
    condition: Condition,
}

impl Expire {
    pub fn parse(args: &[Bytes], scale: i64, name: &str) -> Result<Self, CommandError> {
        let amount = parse_int(&args[1])?;
        let ms = amount
            .checked_mul(scale)
            .filter(|ms| ms.abs() < i64::MAX / 4)
            .ok_or_else(|| CommandError(format!("ERR invalid expire time in '{name}' command")))?;
        let condition = match args.get(2).map(|a| a.to_ascii_lowercase()) {
            None => Condition::Always,
            Some(o) if o == b"nx" => Condition::NoExpiry,
            Some(o) if o == b"xx" => Condition::HasExpiry,
            Some(o) if o == b"gt" => Condition::Greater,
            Some(o) if o == b"lt" => Condition::Less,
            Some(o) => return Err(CommandError(format!("ERR Unsupported option {}", String::from_utf8_lossy(&o)))),
        };
        if args.len() > 3 {
            return Err(CommandError("ERR NX and XX, GT or LT options at the same time are not compatible".into()));
        }
        Ok(Self { key: args[0].clone(), ms, condition })
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        let now = shard.now;
        let Some(entry) = shard.get(&self.key) else { return reply::integer(out, 0) };
        let new_at = now as i64 + self.ms;
        let allowed = match (self.condition, entry.expires_at) {
            (Condition::Always, _) => true,
            (Condition::NoExpiry, current) => current.is_none(),
            (Condition::HasExpiry, current) => current.is_some(),
            // A key without expiry counts as infinite for GT and LT.
            (Condition::Greater, current) => current.is_some_and(|at| new_at > at as i64),
            (Condition::Less, current) => current.is_none_or(|at| new_at < at as i64),
        };
        if !allowed {
            return reply::integer(out, 0);
        }
        if self.ms <= 0 {
            shard.remove(&self.key);
        } else {
            shard.set_expiry(&self.key, Some(new_at as u64));
        }
        reply::integer(out, 1);
    }
}
