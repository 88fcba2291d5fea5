//! `DEL key [key ...]`: the number of keys removed.

use bytes::{Bytes, BytesMut};

use crate::Shared;
use crate::resp::reply;

#[derive(Debug)]
pub struct Del {
    keys: Vec<Bytes>,
}

impl Del {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { keys: args.to_vec() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let removed = self
            .keys
            .iter()
            .filter(|key| {
                let mut shard = shared.store.shard(key);
                shard.get(key).is_some() && shard.remove(key).is_some()
            })
            .count();
        reply::integer(out, removed as i64);
    }
}
