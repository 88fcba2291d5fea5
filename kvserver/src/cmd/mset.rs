//! `MSET key value [key value ...]`.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::resp::reply;
use crate::store::Value;

#[derive(Debug)]
pub struct Mset {
    pairs: Vec<(Bytes, Bytes)>,
}

impl Mset {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        if !args.len().is_multiple_of(2) {
            return Err(CommandError::wrong_arity("mset"));
        }
        Ok(Self { pairs: args.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect() })
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        for (key, value) in self.pairs {
            shared.store.shard(&key).set(key, Value::Str(value), None);
        }
        reply::ok(out);
    }
}
