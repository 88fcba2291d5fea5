//! `APPEND key value`: the length after appending.

use bytes::{Bytes, BytesMut};

use super::string_of;
use crate::Shared;
use crate::resp::reply;
use crate::store::Value;

#[derive(Debug)]
pub struct Append {
    key: Bytes,
    value: Bytes,
}

impl Append {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { key: args[0].clone(), value: args[1].clone() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        let mut joined = match shard.get(&self.key) {
            None => Vec::with_capacity(self.value.len()),
            Some(entry) => match string_of(&entry.value) {
                Ok(s) => s.to_vec(),
                Err(error) => return reply::error(out, &error.0),
            },
        };
        joined.extend_from_slice(&self.value);
        let len = joined.len();
        shard.set_keep_ttl(self.key, Value::Str(Bytes::from(joined)));
        reply::integer(out, len as i64);
    }
}
