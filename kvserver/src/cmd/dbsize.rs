//! `DBSIZE`: live keys.

use bytes::BytesMut;

use crate::Shared;
use crate::resp::reply;

#[derive(Debug)]
pub struct Dbsize;

impl Dbsize {
    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        reply::integer(out, shared.store.counts().0 as i64);
    }
}
