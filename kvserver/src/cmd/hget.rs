//! `HGET key field`.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::resp::reply;
use crate::store::Value;

#[derive(Debug)]
pub struct Hget {
    key: Bytes,
    field: Bytes,
}

impl Hget {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { key: args[0].clone(), field: args[1].clone() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        match shared.store.shard(&self.key).get(&self.key).map(|e| &e.value) {
            None => reply::null(out),
            Some(Value::Hash(hash)) => match hash.get(&self.field) {
                Some(value) => reply::bulk(out, value),
                None => reply::null(out),
            },
            Some(_) => reply::error(out, &CommandError::wrong_type().0),
        }
    }
}
