//! `LRANGE key start stop`, with Redis's index rules (negative from the
//! end, out-of-range clamped, stop inclusive).

use bytes::{Bytes, BytesMut};

use super::{CommandError, parse_int};
use crate::Shared;
use crate::resp::reply;
use crate::store::Value;

#[derive(Debug)]
pub struct Lrange {
    key: Bytes,
    start: i64,
    stop: i64,
}

/// Resolves Redis-style [start, stop] on a list of `len`; `None` if empty.
pub fn resolve_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

impl Lrange {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        Ok(Self { key: args[0].clone(), start: parse_int(&args[1])?, stop: parse_int(&args[2])? })
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        let Some(entry) = shard.get(&self.key) else { return reply::array_header(out, 0) };
        let Value::List(list) = &entry.value else {
            return reply::error(out, &CommandError::wrong_type().0);
        };
        match resolve_range(self.start, self.stop, list.len()) {
            None => reply::array_header(out, 0),
            Some((start, stop)) => {
                reply::array_header(out, stop - start + 1);
                for element in list.range(start..=stop) {
                    reply::bulk(out, element);
                }
            }
        }
    }
}
