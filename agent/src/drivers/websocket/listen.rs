//! The members of a chat over WebSocket: connections that join a room and
//! time every broadcast they receive from the send time it carries. Member
//! m of agent a joins room (a x members + m) mod rooms, so the members of
//! all agents spread over the rooms; they are spread over the endpoints
//! round robin in the same order.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::{Mode, Plan, Socket, open};
use crate::drivers::{DriverError, ErrorKind, Heard, Listen, ListenFuture, Received};

struct Member {
    socket: Socket,
    node: Arc<str>,
    shown: String,
    plan: Arc<Plan>,
}

pub(super) async fn open_all(plan: &Arc<Plan>, endpoints: &[String]) -> Result<Vec<Box<dyn Listen>>, DriverError> {
    let Mode::Chat { rooms, members, .. } = &plan.mode else { return Ok(Vec::new()) };
    if *members == 0 {
        return Ok(Vec::new());
    }
    if endpoints.is_empty() {
        return Err(DriverError::new(ErrorKind::Connection, "the assignment has no endpoints"));
    }
    let first = u64::from(plan.agent_index) * u64::from(*members);
    let joining = (0..u64::from(*members)).map(|m| {
        let number = first + m;
        let endpoint = &endpoints[(number % endpoints.len() as u64) as usize];
        let room = rooms[(number % rooms.len().max(1) as u64) as usize].clone();
        async move {
            let (mut socket, node, _) = open(endpoint, plan).await?;
            let shown = stampede_common::scenario::redact(endpoint);
            let join = Message::text(serde_json::json!({"type": "join", "room": room}).to_string());
            socket
                .send(join)
                .await
                .map_err(|e| DriverError::new(ErrorKind::Connection, format!("{shown}: joining {room}: {e}")))?;
            // The member is in the room once the server said so.
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let value: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                        if value["type"] == "joined" && value["room"] == room.as_str() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        return Err(DriverError::new(ErrorKind::Connection, format!("{shown}: joining {room}: {e}")));
                    }
                    None => {
                        return Err(DriverError::new(
                            ErrorKind::Connection,
                            format!("{shown} closed while {room} was joined"),
                        ));
                    }
                }
            }
            Ok::<_, DriverError>(Box::new(Member { socket, node, shown, plan: Arc::clone(plan) }) as Box<dyn Listen>)
        }
    });
    futures::future::try_join_all(joining).await
}

impl Listen for Member {
    fn node(&self) -> &str {
        &self.node
    }

    fn listen(self: Box<Self>, until: ListenFuture, received: Received) -> ListenFuture {
        Box::pin(self.run(until, received))
    }
}

impl Member {
    async fn run(self, until: ListenFuture, mut received: Received) {
        let Self { mut socket, shown, plan, .. } = self;
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => {
                    let _ = socket.close(None).await;
                    return;
                }
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let value: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                        if value["type"] == "message"
                            && let Some(sent) = value["sent"].as_u64()
                        {
                            let latency_us = plan.clock.now_us().saturating_sub(sent);
                            received(Ok(Heard { latency_us, bytes: text.len() as u32 }));
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        received(Err(DriverError::new(ErrorKind::Connection, format!("{shown} closed a member's WebSocket"))));
                        return;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        received(Err(DriverError::new(ErrorKind::Connection, format!("{shown}: a member's WebSocket: {e}"))));
                        return;
                    }
                },
            }
        }
    }
}
