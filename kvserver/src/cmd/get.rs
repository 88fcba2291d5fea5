//! `GET key`.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::resp::reply;
use crate::store::Store;

#[derive(Debug, PartialEq)]
pub struct Get {
    key: Bytes,
}

impl Get {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        match args {
            [key] => Ok(Self { key: key.clone() }),
            _ => Err(CommandError::wrong_arity("get")),
        }
    }

    pub fn apply(self, store: &Store, out: &mut BytesMut) {
        match store.get(&self.key) {
            Some(value) => reply::bulk(out, &value),
            None => reply::null(out),
        }
    }
}
