//! `SUBSCRIBE channel [channel ...]` and `UNSUBSCRIBE [channel ...]`. Each
//! channel gets its own confirmation with the connection's subscription
//! count; UNSUBSCRIBE without channels leaves all of them.

use bytes::{Bytes, BytesMut};

use crate::Shared;
use crate::connection::Client;
use crate::resp::reply;

#[derive(Debug)]
pub struct Subscribe {
    channels: Vec<Bytes>,
    subscribe: bool,
}

impl Subscribe {
    pub fn parse(args: &[Bytes], subscribe: bool) -> Self {
        Self { channels: args.to_vec(), subscribe }
    }

    pub fn apply(self, shared: &Shared, client: &mut Client, out: &mut BytesMut) {
        if self.subscribe {
            for channel in self.channels {
                let mailbox = client.mailbox();
                if client.subscriptions.insert(channel.clone()) {
                    shared.broker.subscribe(&channel, client.id, mailbox);
                }
                confirm(out, b"subscribe", Some(&channel), client.subscriptions.len());
            }
            return;
        }
        let channels: Vec<Bytes> =
            if self.channels.is_empty() { client.subscriptions.iter().cloned().collect() } else { self.channels };
        if channels.is_empty() {
            return confirm(out, b"unsubscribe", None, 0);
        }
        for channel in channels {
            if client.subscriptions.remove(&channel) {
                shared.broker.unsubscribe(&channel, client.id);
            }
            confirm(out, b"unsubscribe", Some(&channel), client.subscriptions.len());
        }
    }
}

fn confirm(out: &mut BytesMut, kind: &[u8], channel: Option<&Bytes>, count: usize) {
    reply::array_header(out, 3);
    reply::bulk(out, kind);
    match channel {
        Some(channel) => reply::bulk(out, channel),
        None => reply::null(out),
    }
    reply::integer(out, count as i64);
}
