//! `LTRIM key start stop`: keeps only the given range.

use bytes::{Bytes, BytesMut};

use super::lrange::resolve_range;
use super::{CommandError, parse_int};
use crate::Shared;
use crate::resp::reply;
use crate::store::{Value, element_size};

#[derive(Debug)]
pub struct Ltrim {
    key: Bytes,
    start: i64,
    stop: i64,
}

impl Ltrim {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        Ok(Self { key: args[0].clone(), start: parse_int(&args[1])?, stop: parse_int(&args[2])? })
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        let Some(entry) = shard.get(&self.key) else { return reply::ok(out) };
        let Value::List(list) = &mut entry.value else {
            return reply::error(out, &CommandError::wrong_type().0);
        };
        let before: i64 = list.iter().map(|e| element_size(&[e])).sum();
        match resolve_range(self.start, self.stop, list.len()) {
            None => list.clear(),
            Some((start, stop)) => {
                list.truncate(stop + 1);
                list.drain(..start);
            }
        }
        let after: i64 = list.iter().map(|e| element_size(&[e])).sum();
        shard.resized(&self.key, after - before);
        reply::ok(out);
    }
}
