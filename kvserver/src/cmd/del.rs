//! `DEL key [key ...]`: replies with the number of keys removed.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::resp::reply;
use crate::store::Store;

#[derive(Debug, PartialEq)]
pub struct Del {
    keys: Vec<Bytes>,
}

impl Del {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        if args.is_empty() {
            return Err(CommandError::wrong_arity("del"));
        }
        Ok(Self { keys: args.to_vec() })
    }

    pub fn apply(self, store: &Store, out: &mut BytesMut) {
        let removed = self.keys.iter().filter(|key| store.remove(key)).count();
        reply::integer(out, removed as i64);
    }
}
