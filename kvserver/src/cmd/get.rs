//! `GET key`.

use bytes::{Bytes, BytesMut};

use super::string_of;
use crate::Shared;
use crate::resp::reply;

#[derive(Debug)]
pub struct Get {
    key: Bytes,
}

impl Get {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { key: args[0].clone() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        match shard.get(&self.key).map(|e| string_of(&e.value)) {
            None => reply::null(out),
            Some(Ok(value)) => reply::bulk(out, value),
            Some(Err(error)) => reply::error(out, &error.0),
        }
    }
}
