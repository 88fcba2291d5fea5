//! `ECHO message`.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::resp::reply;

#[derive(Debug, PartialEq)]
pub struct Echo {
    message: Bytes,
}

impl Echo {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        match args {
            [message] => Ok(Self { message: message.clone() }),
            _ => Err(CommandError::wrong_arity("echo")),
        }
    }

    pub fn apply(self, out: &mut BytesMut) {
        reply::bulk(out, &self.message);
    }
}
