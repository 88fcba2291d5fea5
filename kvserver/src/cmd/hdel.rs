//! `HDEL key field [field ...]`: the number of fields removed.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::resp::reply;
use crate::store::{Value, element_size};

#[derive(Debug)]
pub struct Hdel {
    key: Bytes,
    fields: Vec<Bytes>,
}

impl Hdel {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { key: args[0].clone(), fields: args[1..].to_vec() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        let Some(entry) = shard.get(&self.key) else { return reply::integer(out, 0) };
        let Value::Hash(hash) = &mut entry.value else {
            return reply::error(out, &CommandError::wrong_type().0);
        };
        let mut removed = 0;
        let mut delta = 0;
        for field in &self.fields {
            if let Some(old) = hash.remove(field) {
                removed += 1;
                delta -= element_size(&[field, &old]);
            }
        }
        shard.resized(&self.key, delta);
        reply::integer(out, removed);
    }
}
