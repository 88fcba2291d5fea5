//! `EXISTS key [key ...]`: how many of the keys exist (a key named twice
//! counts twice, as in Redis).

use bytes::{Bytes, BytesMut};

use crate::Shared;
use crate::resp::reply;

#[derive(Debug)]
pub struct Exists {
    keys: Vec<Bytes>,
}

impl Exists {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { keys: args.to_vec() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let found = self.keys.iter().filter(|key| shared.store.shard(key).get(key).is_some()).count();
        reply::integer(out, found as i64);
    }
}
