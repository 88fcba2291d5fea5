//! `LPUSH key element [element ...]` and `RPUSH ...`: the list's length
//! after the push.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::resp::reply;
use crate::store::{Value, element_size, owned};

#[derive(Debug)]
pub struct Push {
    key: Bytes,
    elements: Vec<Bytes>,
    left: bool,
}

impl Push {
    pub fn parse(args: &[Bytes], left: bool) -> Self {
        Self { key: args[0].clone(), elements: args[1..].to_vec(), left }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        if shard.get(&self.key).is_none() {
            shard.set(self.key.clone(), Value::List(VecDeque::new()), None);
        }
        let Some(entry) = shard.get(&self.key) else { return };
        let Value::List(list) = &mut entry.value else {
            return reply::error(out, &CommandError::wrong_type().0);
        };
        let mut delta = 0;
        for element in self.elements {
            delta += element_size(&[&element]);
            let element = owned(&element);
            if self.left {
                list.push_front(element);
            } else {
                list.push_back(element);
            }
        }
        let len = list.len();
        shard.resized(&self.key, delta);
        reply::integer(out, len as i64);
    }
}
