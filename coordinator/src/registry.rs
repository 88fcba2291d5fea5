//! The agents the coordinator knows: identity, session, heartbeats and
//! clock offsets. Plain data with an explicit clock argument; it never
//! touches the network (messages to an agent go into its session's queue).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::engine::ToAgent;

/// What an agent says about itself when its session opens.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentHello {
    pub agent_id: String,
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub capacity: u32,
    pub version: String,
    pub active_runs: Vec<String>,
}

#[derive(Debug)]
pub struct AgentEntry {
    pub hello: AgentHello,
    pub session: u64,
    pub connected: bool,
    pub last_seen: Instant,
    pub clock_offset_us: i64,
    pub clock_rtt_us: i64,
    pub clock_synced: bool,
    pub busy_with: Option<String>,
    /// The agent's own load from its last heartbeat: percent of one core
    /// and resident bytes.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    outbox: Option<UnboundedSender<ToAgent>>,
}

#[derive(Debug, Default)]
pub struct Registry {
    agents: BTreeMap<String, AgentEntry>,
}

impl Registry {
    /// Registers a (re)connected agent. A reconnecting agent keeps the run it
    /// is busy with; its clock must be measured again.
    pub fn connect(&mut self, hello: AgentHello, session: u64, outbox: UnboundedSender<ToAgent>, now: Instant) {
        let busy_with = self.agents.get(&hello.agent_id).and_then(|a| a.busy_with.clone());
        self.agents.insert(
            hello.agent_id.clone(),
            AgentEntry {
                hello,
                session,
                connected: true,
                last_seen: now,
                clock_offset_us: 0,
                clock_rtt_us: 0,
                clock_synced: false,
                busy_with,
                cpu_percent: 0.0,
                rss_bytes: 0,
                outbox: Some(outbox),
            },
        );
    }

    /// Marks the agent disconnected, unless a newer session replaced it.
    pub fn disconnect(&mut self, agent_id: &str, session: u64) -> bool {
        match self.agents.get_mut(agent_id) {
            Some(agent) if agent.session == session && agent.connected => {
                agent.connected = false;
                agent.outbox = None;
                true
            }
            _ => false,
        }
    }

    /// The agent was heard at `at` (never moves its last word back in time:
    /// queued messages are handled in order, but not always stamped so).
    pub fn seen(&mut self, agent_id: &str, at: Instant) {
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.last_seen = agent.last_seen.max(at);
        }
    }

    /// A heartbeat: the agent is alive, and this is its own load.
    pub fn heartbeat(&mut self, agent_id: &str, at: Instant, cpu_percent: f64, rss_bytes: u64) {
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.last_seen = agent.last_seen.max(at);
            agent.cpu_percent = cpu_percent;
            agent.rss_bytes = rss_bytes;
        }
    }

    pub fn set_clock(&mut self, agent_id: &str, offset_us: i64, rtt_us: i64) {
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.clock_offset_us = offset_us;
            agent.clock_rtt_us = rtt_us;
            agent.clock_synced = true;
        }
    }

    /// Connected agents silent for longer than `timeout`, now marked
    /// disconnected.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<String> {
        let mut lost = Vec::new();
        for (id, agent) in &mut self.agents {
            if agent.connected && now.duration_since(agent.last_seen) > timeout {
                agent.connected = false;
                agent.outbox = None;
                lost.push(id.clone());
            }
        }
        lost
    }

    /// Connected, clock-synchronised agents without a run, by id.
    pub fn idle(&self) -> Vec<String> {
        self.agents
            .iter()
            .filter(|(_, a)| a.connected && a.clock_synced && a.busy_with.is_none())
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn connected_count(&self) -> usize {
        self.agents.values().filter(|a| a.connected).count()
    }

    pub fn set_busy(&mut self, agent_id: &str, run_id: Option<String>) {
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.busy_with = run_id;
        }
    }

    pub fn get(&self, agent_id: &str) -> Option<&AgentEntry> {
        self.agents.get(agent_id)
    }

    pub fn all(&self) -> impl Iterator<Item = &AgentEntry> {
        self.agents.values()
    }

    /// Queues a message to the agent; false when it is not connected.
    pub fn send(&self, agent_id: &str, message: ToAgent) -> bool {
        self.agents.get(agent_id).and_then(|a| a.outbox.as_ref()).is_some_and(|outbox| outbox.send(message).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: &str) -> AgentHello {
        AgentHello {
            agent_id: id.into(),
            host: "h".into(),
            labels: BTreeMap::new(),
            capacity: 100,
            version: "0".into(),
            active_runs: vec![],
        }
    }

    #[test]
    fn agents_become_idle_after_clock_sync_and_expire_when_silent() {
        let mut registry = Registry::default();
        let start = Instant::now();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        registry.connect(hello("b"), 1, tx.clone(), start);
        registry.connect(hello("a"), 2, tx.clone(), start);
        assert!(registry.idle().is_empty());
        registry.set_clock("a", 10, 20);
        registry.set_clock("b", -5, 20);
        assert_eq!(registry.idle(), vec!["a".to_string(), "b".to_string()]);
        registry.set_busy("a", Some("run".into()));
        assert_eq!(registry.idle(), vec!["b".to_string()]);
        registry.seen("a", start + Duration::from_secs(4));
        let lost = registry.expire(start + Duration::from_secs(6), Duration::from_secs(5));
        assert_eq!(lost, vec!["b".to_string()]);
        assert!(!registry.send("b", ToAgent::Ack { run_id: "r".into(), seq: 1 }));
        assert!(registry.send("a", ToAgent::Ack { run_id: "r".into(), seq: 1 }));
    }

    #[test]
    fn an_old_session_ending_does_not_disconnect_a_newer_one() {
        let mut registry = Registry::default();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        registry.connect(hello("a"), 1, tx.clone(), Instant::now());
        registry.set_busy("a", Some("run".into()));
        registry.connect(hello("a"), 2, tx, Instant::now());
        assert!(!registry.disconnect("a", 1));
        assert_eq!(registry.get("a").map(|a| a.busy_with.clone()), Some(Some("run".into())));
        assert!(registry.disconnect("a", 2));
    }
}
