//! `FLUSHDB [ASYNC | SYNC]` and `FLUSHALL [...]`: there is one database,
//! so both remove every key.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::resp::reply;

#[derive(Debug)]
pub struct Flush;

impl Flush {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        match args {
            [] => Ok(Self),
            [mode] if mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync") => Ok(Self),
            _ => Err(CommandError::syntax()),
        }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        shared.store.flush();
        reply::ok(out);
    }
}
