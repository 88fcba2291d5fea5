//! `PUBLISH channel message`: the number of subscribers that received it.

use bytes::{Bytes, BytesMut};

use crate::Shared;
use crate::resp::reply;

#[derive(Debug)]
pub struct Publish {
    channel: Bytes,
    message: Bytes,
}

impl Publish {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { channel: args[0].clone(), message: args[1].clone() }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let received = shared.broker.publish(&self.channel, &self.message);
        reply::integer(out, received as i64);
    }
}
