//! `MGET key [key ...]`: nil for missing keys and for keys that do not hold
//! strings.

use bytes::{Bytes, BytesMut};

use crate::Shared;
use crate::resp::reply;
use crate::store::Value;

#[derive(Debug)]
pub struct Mget {
    keys: Vec<Bytes>,
}

impl Mget {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { keys: args.to_vec() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        reply::array_header(out, self.keys.len());
        for key in &self.keys {
            match shared.store.shard(key).get(key).map(|e| &e.value) {
                Some(Value::Str(value)) => reply::bulk(out, value),
                _ => reply::null(out),
            }
        }
    }
}
