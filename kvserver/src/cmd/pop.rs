//! `LPOP key [count]` and `RPOP key [count]`.

use bytes::{Bytes, BytesMut};

use super::{CommandError, parse_int};
use crate::Shared;
use crate::resp::reply;
use crate::store::{Value, element_size};

#[derive(Debug)]
pub struct Pop {
    key: Bytes,
    count: Option<usize>,
    left: bool,
}

impl Pop {
    pub fn parse(args: &[Bytes], left: bool) -> Result<Self, CommandError> {
        if args.len() > 2 {
            return Err(CommandError::syntax());
        }
        let count = match args.get(1) {
            None => None,
            Some(arg) => {
                let n =
                    parse_int(arg).map_err(|_| CommandError("ERR value is out of range, must be positive".into()))?;
                Some(
                    usize::try_from(n)
                        .map_err(|_| CommandError("ERR value is out of range, must be positive".into()))?,
                )
            }
        };
        Ok(Self { key: args[0].clone(), count, left })
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        let Some(entry) = shard.get(&self.key) else {
            return if self.count.is_some() { reply::null_array(out) } else { reply::null(out) };
        };
        let Value::List(list) = &mut entry.value else {
            return reply::error(out, &CommandError::wrong_type().0);
        };
        let take = self.count.unwrap_or(1).min(list.len());
        let popped: Vec<Bytes> =
            (0..take).filter_map(|_| if self.left { list.pop_front() } else { list.pop_back() }).collect();
        let delta: i64 = popped.iter().map(|e| element_size(&[e])).sum();
        shard.resized(&self.key, -delta);
        match self.count {
            None => match popped.first() {
                Some(element) => reply::bulk(out, element),
                None => reply::null(out),
            },
            Some(_) => {
                reply::array_header(out, popped.len());
                for element in &popped {
                    reply::bulk(out, element);
                }
            }
        }
    }
}
