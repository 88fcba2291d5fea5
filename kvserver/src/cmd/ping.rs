//! `PING [message]`.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::resp::reply;

#[derive(Debug, PartialEq)]
pub struct Ping {
    message: Option<Bytes>,
}

impl Ping {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        match args {
            [] => Ok(Self { message: None }),
            [message] => Ok(Self { message: Some(message.clone()) }),
            _ => Err(CommandError::wrong_arity("ping")),
        }
    }

    pub fn apply(self, out: &mut BytesMut) {
        match self.message {
            None => reply::simple(out, "PONG"),
            Some(message) => reply::bulk(out, &message),
        }
    }
}
