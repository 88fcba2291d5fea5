//! `HSET key field value [field value ...]`: the number of fields added.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::resp::reply;
use crate::store::{FastMap, Value, element_size, owned};

#[derive(Debug)]
pub struct Hset {
    key: Bytes,
    pairs: Vec<(Bytes, Bytes)>,
}

impl Hset {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        if args.len().is_multiple_of(2) {
            return Err(CommandError::wrong_arity("hset"));
        }
        Ok(Self { key: args[0].clone(), pairs: args[1..].chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect() })
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        if shard.get(&self.key).is_none() {
            shard.set(self.key.clone(), Value::Hash(FastMap::default()), None);
        }
        let Some(entry) = shard.get(&self.key) else { return };
        let Value::Hash(hash) = &mut entry.value else {
            return reply::error(out, &CommandError::wrong_type().0);
        };
        let mut added = 0;
        let mut delta = 0;
        for (field, value) in self.pairs {
            delta += element_size(&[&field, &value]);
            match hash.insert(owned(&field), owned(&value)) {
                Some(old) => delta -= element_size(&[&field, &old]),
                None => added += 1,
            }
        }
        shard.resized(&self.key, delta);
        reply::integer(out, added);
    }
}
