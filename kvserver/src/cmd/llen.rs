//! `LLEN key`.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::resp::reply;
use crate::store::Value;

#[derive(Debug)]
pub struct Llen {
    key: Bytes,
}

impl Llen {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { key: args[0].clone() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        match shared.store.shard(&self.key).get(&self.key).map(|e| &e.value) {
            None => reply::integer(out, 0),
            Some(Value::List(list)) => reply::integer(out, list.len() as i64),
            Some(_) => reply::error(out, &CommandError::wrong_type().0),
        }
    }
}
