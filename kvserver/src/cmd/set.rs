//! `SET key value` (options come with the complete command set).

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::resp::reply;
use crate::store::Store;

#[derive(Debug, PartialEq)]
pub struct Set {
    key: Bytes,
    value: Bytes,
}

impl Set {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        match args {
            [key, value] => Ok(Self { key: key.clone(), value: value.clone() }),
            [_, _, ..] => Err(CommandError::syntax()),
            _ => Err(CommandError::wrong_arity("set")),
        }
    }

    pub fn apply(self, store: &Store, out: &mut BytesMut) {
        store.set(self.key, self.value);
        reply::ok(out);
    }
}
