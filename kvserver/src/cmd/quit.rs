//! `QUIT`: replies OK, then the connection closes.

use bytes::BytesMut;

use crate::connection::Client;
use crate::resp::reply;

#[derive(Debug)]
pub struct Quit;

impl Quit {
    pub fn apply(self, client: &mut Client, out: &mut BytesMut) {
        client.quit = true;
        reply::ok(out);
    }
}
