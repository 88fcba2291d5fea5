//! `ECHO message`.

use bytes::{Bytes, BytesMut};

use crate::resp::reply;

#[derive(Debug)]
pub struct Echo {
    message: Bytes,
}

impl Echo {
    pub fn parse(args: &[Bytes]) -> Self {
        Self { message: args[0].clone() }
    }

    pub fn apply(self, out: &mut BytesMut) {
        reply::bulk(out, &self.message);
    }
}
