//! `SELECT index`: only database 0 exists.

use bytes::{Bytes, BytesMut};

use super::{CommandError, parse_int};
use crate::resp::reply;

#[derive(Debug)]
pub struct Select;

impl Select {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        match parse_int(&args[0]).map_err(|_| CommandError("ERR invalid DB index".into()))? {
            0 => Ok(Self),
            _ => Err(CommandError("ERR DB index is out of range".into())),
        }
    }

    pub fn apply(self, out: &mut BytesMut) {
        reply::ok(out);
    }
}
