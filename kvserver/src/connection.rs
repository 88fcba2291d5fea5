//! One client connection: read, parse every complete request, execute,
//! write all replies at once (so a pipeline costs one write). Subscribed
//! connections also write the messages the broker queues for them, and are
//! closed when their queue overflows (see [`crate::broker`]). A malformed
//! request gets a protocol error and the connection is closed; an idle
//! connection is closed after `--idle-timeout`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};

use crate::Shared;
use crate::broker::{Mailbox, Outbox};
use crate::cmd::execute;
use crate::resp::{parse_request, reply};

/// What the server knows about one connection.
pub struct Client {
    pub id: u64,
    pub name: Option<Bytes>,
    pub authenticated: bool,
    pub subscriptions: BTreeSet<Bytes>,
    pub quit: bool,
    messages: Option<(Mailbox, mpsc::UnboundedReceiver<Bytes>)>,
}

impl Client {
    pub fn new(id: u64, authenticated: bool) -> Self {
        Self { id, name: None, authenticated, subscriptions: BTreeSet::new(), quit: false, messages: None }
    }

    pub fn subscribed(&self) -> bool {
        !self.subscriptions.is_empty()
    }

    /// The queue the broker delivers this client's messages to.
    pub fn mailbox(&mut self) -> Mailbox {
        self.messages.get_or_insert_with(Mailbox::new).0.clone()
    }

    fn outbox(&self) -> Option<Arc<Outbox>> {
        self.messages.as_ref().map(|(mailbox, _)| Arc::clone(&mailbox.outbox))
    }
}

/// Completes when the client's message queue overflows; never without one.
async fn overflow(outbox: Option<&Outbox>) {
    match outbox {
        Some(outbox) => outbox.overflow().await,
        None => std::future::pending().await,
    }
}

async fn next_message(client: &mut Client) -> Option<Bytes> {
    match &mut client.messages {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

pub async fn handle(mut socket: TcpStream, shared: &Shared, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    let mut client = Client::new(id, shared.config.requirepass.is_none());
    let result = serve(&mut socket, shared, &mut client, &mut stop).await;
    for channel in &client.subscriptions {
        shared.broker.unsubscribe(channel, client.id);
    }
    result
}

/// Ends a connection at shutdown. Every reply written so far reaches the
/// client: the write half is closed first (FIN after the data), then what
/// the client still sends is read and dropped, unexecuted, until it closes
/// too. Closing with unread input would send a reset, which can destroy
/// replies still on their way to the client.
async fn close_gracefully(socket: &mut TcpStream, input: &mut BytesMut) -> std::io::Result<()> {
    socket.shutdown().await?;
    let drain = async {
        loop {
            input.clear();
            match socket.read_buf(input).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    Ok(())
}

async fn serve(
    socket: &mut TcpStream,
    shared: &Shared,
    client: &mut Client,
    stop: &mut watch::Receiver<bool>,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    // One reusable deadline, pushed forward only when it is more than a
    // tenth of the timeout (at most 1 s) behind: no timer per request.
    let idle = shared.config.idle_timeout;
    let slack = idle.map_or(Duration::ZERO, |t| (t / 10).min(Duration::from_secs(1)));
    let deadline = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(deadline);
    // Created once: a fresh `changed()` per request would register and
    // unregister a waiter every time.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        // Only connections that ever subscribed have one.
        let outbox = client.outbox();
        if outbox.as_deref().is_some_and(Outbox::has_overflowed) {
            tracing::info!(
                client = client.id,
                "closing a subscriber that does not read its messages (its queue passed {} bytes)",
                shared.broker.queue_limit()
            );
            return Ok(());
        }
        // Subscribers wait for messages and may be silent for ever, as in Redis.
        let may_idle_out = idle.is_some() && !client.subscribed();
        let read = tokio::select! {
            read = socket.read_buf(&mut input) => read?,
            Some(message) = next_message(client) => {
                // A subscriber that stopped reading blocks this write; its
                // queue's overflow ends the wait.
                tokio::select! {
                    written = socket.write_all(&message) => written?,
                    () = overflow(outbox.as_deref()) => {}
                }
                if let Some(outbox) = &outbox {
                    outbox.written(message.len());
                }
                continue;
            }
            () = overflow(outbox.as_deref()) => continue,
            () = &mut deadline, if may_idle_out => {
                tracing::debug!(client = client.id, "closing idle connection");
                return Ok(());
            }
            _ = &mut stopped => return close_gracefully(socket, &mut input).await,
        };
        if read == 0 {
            return Ok(());
        }
        if let Some(activity) = &shared.activity {
            activity.record();
        }
        if let Some(idle) = idle {
            let wanted = Instant::now() + idle;
            if deadline.deadline() + slack < wanted {
                deadline.as_mut().reset(wanted);
            }
        }
        loop {
            match parse_request(&mut input) {
                Ok(Some(args)) if args.is_empty() => {}
                Ok(Some(args)) => {
                    execute(args, shared, client, &mut output);
                    if client.quit {
                        socket.write_all(&output).await?;
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    reply::error(&mut output, &format!("ERR {error}"));
                    socket.write_all(&output).await?;
                    return Ok(());
                }
            }
        }
        if !output.is_empty() {
            socket.write_all(&output).await?;
            output.clear();
        }
        // A large request may have grown the buffer; do not keep it.
        if input.capacity() > 1024 * 1024 && input.is_empty() {
            input = BytesMut::with_capacity(16 * 1024);
        }
    }
}
