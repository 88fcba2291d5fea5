//! `PING [message]`; in subscribed mode the reply is `["pong", message]`.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::connection::Client;
use crate::resp::reply;

#[derive(Debug)]
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

    pub fn apply(self, client: &Client, out: &mut BytesMut) {
        if client.subscribed() {
            reply::array_header(out, 2);
            reply::bulk(out, b"pong");
            reply::bulk(out, self.message.as_deref().unwrap_or_default());
            return;
        }
        match self.message {
            None => reply::simple(out, "PONG"),
            Some(message) => reply::bulk(out, &message),
        }
    }
}
