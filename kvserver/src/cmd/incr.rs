//! `INCR key`, `INCRBY key n`, `DECR key`, `DECRBY key n`: integer
//! arithmetic on a string value; the key keeps its expiry.

use bytes::{Bytes, BytesMut};

use super::{CommandError, parse_int, string_of};
use crate::Shared;
use crate::resp::reply;
use crate::store::Value;

#[derive(Debug)]
pub struct Incr {
    key: Bytes,
    delta: i64,
}

impl Incr {
    /// `sign` is 1 for INCR/INCRBY and -1 for DECR/DECRBY; `by` when the
    /// amount is an argument.
    pub fn parse(args: &[Bytes], sign: i64, by: bool) -> Result<Self, CommandError> {
        let amount = if by { parse_int(&args[1])? } else { 1 };
        let delta = if sign < 0 {
            amount.checked_neg().ok_or_else(|| CommandError("ERR decrement would overflow".into()))?
        } else {
            amount
        };
        Ok(Self { key: args[0].clone(), delta })
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        let current = match shard.get(&self.key) {
            None => 0,
            Some(entry) => match string_of(&entry.value).and_then(|s| parse_int(s)) {
                Ok(n) => n,
                Err(error) => return reply::error(out, &error.0),
            },
        };
        let Some(next) = current.checked_add(self.delta) else {
            return reply::error(out, "ERR increment or decrement would overflow");
        };
        shard.set_keep_ttl(self.key, Value::Str(Bytes::from(next.to_string())));
        reply::integer(out, next);
    }
}
