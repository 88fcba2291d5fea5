//! `HGETALL key`: fields and values, flat.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::resp::reply;
use crate::store::Value;

#[derive(Debug)]
pub struct Hgetall {
    key: Bytes,
}

impl Hgetall {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { key: args[0].clone() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        match shared.store.shard(&self.key).get(&self.key).map(|e| &e.value) {
            None => reply::array_header(out, 0),
            Some(Value::Hash(hash)) => {
                reply::array_header(out, hash.len() * 2);
                for (field, value) in hash {
                    reply::bulk(out, field);
                    reply::bulk(out, value);
                }
            }
            Some(_) => reply::error(out, &CommandError::wrong_type().0),
        }
    }
}
