//! `STRLEN key`.

use bytes::{Bytes, BytesMut};

use super::string_of;
use crate::Shared;
use crate::resp::reply;

#[derive(Debug)]
pub struct Strlen {
    key: Bytes,
}

impl Strlen {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { key: args[0].clone() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        match shared.store.shard(&self.key).get(&self.key).map(|e| string_of(&e.value).map(Bytes::len)) {
            None => reply::integer(out, 0),
            Some(Ok(len)) => reply::integer(out, len as i64),
            Some(Err(error)) => reply::error(out, &error.0),
        }
    }
}
