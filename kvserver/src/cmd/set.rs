//! `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]`.

use bytes::{Bytes, BytesMut};

use super::{CommandError, parse_int, string_of};
use crate::Shared;
use crate::resp::reply;
use crate::store::Value;

#[derive(Debug, PartialEq)]
enum Condition {
    Always,
    IfAbsent,
    IfPresent,
}

#[derive(Debug, PartialEq)]
enum Expiry {
    None,
    In(u64),
    Keep,
}

#[derive(Debug)]
pub struct Set {
    key: Bytes,
    value: Bytes,
    condition: Condition,
    expiry: Expiry,
    get: bool,
}

fn expire_ms(arg: Option<&Bytes>, scale: i64) -> Result<u64, CommandError> {
    let value = parse_int(arg.ok_or_else(CommandError::syntax)?)?;
    if value <= 0 || value.checked_mul(scale).is_none() {
        return Err(CommandError("ERR invalid expire time in 'set' command".into()));
    }
    Ok((value * scale) as u64)
}

impl Set {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        let mut set = Self {
            key: args[0].clone(),
            value: args[1].clone(),
            condition: Condition::Always,
            expiry: Expiry::None,
            get: false,
        };
        let mut rest = args[2..].iter();
        while let Some(option) = rest.next() {
            match option.to_ascii_lowercase().as_slice() {
                b"nx" if set.condition == Condition::Always => set.condition = Condition::IfAbsent,
                b"xx" if set.condition == Condition::Always => set.condition = Condition::IfPresent,
                b"get" => set.get = true,
                b"ex" if set.expiry == Expiry::None => set.expiry = Expiry::In(expire_ms(rest.next(), 1000)?),
                b"px" if set.expiry == Expiry::None => set.expiry = Expiry::In(expire_ms(rest.next(), 1)?),
                b"keepttl" if set.expiry == Expiry::None => set.expiry = Expiry::Keep,
                _ => return Err(CommandError::syntax()),
            }
        }
        Ok(set)
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut shard = shared.store.shard(&self.key);
        let (old, old_expiry) = match shard.get(&self.key) {
            None => (None, None),
            Some(entry) => match (self.get, &entry.value) {
                (true, value) => match string_of(value) {
                    Ok(s) => (Some(Some(s.clone())), entry.expires_at),
                    Err(error) => return reply::error(out, &error.0),
                },
                (false, _) => (Some(None), entry.expires_at),
            },
        };
        let exists = old.is_some();
        let allowed = match self.condition {
            Condition::Always => true,
            Condition::IfAbsent => !exists,
            Condition::IfPresent => exists,
        };
        if allowed {
            let expires_at = match self.expiry {
                Expiry::None => None,
                Expiry::In(ms) => Some(shard.now + ms),
                Expiry::Keep => old_expiry,
            };
            shard.set(self.key, Value::Str(self.value), expires_at);
        }
        match (self.get, old.flatten()) {
            (true, Some(value)) => reply::bulk(out, &value),
            (true, None) => reply::null(out),
            (false, _) if allowed => reply::ok(out),
            (false, _) => reply::null(out),
        }
    }
}
