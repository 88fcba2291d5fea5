//! `INFO [section ...]`: `server` (with `node_id`, the identity agents use
//! to attribute requests to a node), `clients`, `memory`, `stats` (with
//! `total_commands_processed`), `commandstats` (calls per command) and
//! `keyspace`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use super::SPECS;
use crate::Shared;
use crate::resp::reply;

const DEFAULT: [&str; 5] = ["server", "clients", "memory", "stats", "keyspace"];
const ALL: [&str; 6] = ["server", "clients", "memory", "stats", "commandstats", "keyspace"];

#[derive(Debug)]
pub struct Info {
    sections: Vec<String>,
}

impl Info {
    pub fn parse(args: &[Bytes]) -> Self {
        let mut sections = Vec::new();
        for arg in args {
            let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
            match name.as_str() {
                "all" | "everything" => sections.extend(ALL.map(String::from)),
                "default" => sections.extend(DEFAULT.map(String::from)),
                _ => sections.push(name),
            }
        }
        if sections.is_empty() {
            sections.extend(DEFAULT.map(String::from));
        }
        Self { sections }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        let mut text = String::new();
        for section in &self.sections {
            // Writing into a String cannot fail.
            let _ = write_section(&mut text, section, shared);
        }
        reply::bulk(out, text.as_bytes());
    }
}

fn write_section(text: &mut String, section: &str, shared: &Shared) -> std::fmt::Result {
    let stats = &shared.stats;
    if !text.is_empty() {
        text.push_str("\r\n");
    }
    match section {
        "server" => {
            write!(text, "# Server\r\n")?;
            write!(text, "redis_version:7.0.0\r\n")?;
            write!(text, "stampede_kv_version:{}\r\n", env!("CARGO_PKG_VERSION"))?;
            write!(text, "redis_mode:standalone\r\n")?;
            write!(text, "node_id:{}\r\n", shared.config.node_id)?;
            write!(text, "run_id:{}\r\n", shared.run_id)?;
            write!(text, "process_id:{}\r\n", std::process::id())?;
            write!(text, "tcp_port:{}\r\n", shared.port)?;
            write!(text, "uptime_in_seconds:{}\r\n", shared.started.elapsed().as_secs())?;
        }
        "clients" => {
            write!(text, "# Clients\r\n")?;
            write!(text, "connected_clients:{}\r\n", stats.connected_clients.load(Ordering::Relaxed))?;
            write!(text, "maxclients:{}\r\n", shared.config.max_clients)?;
            write!(text, "pubsub_clients:{}\r\n", shared.broker.subscriber_count())?;
        }
        "memory" => {
            write!(text, "# Memory\r\n")?;
            write!(text, "used_memory:{}\r\n", shared.store.used_memory())?;
            write!(text, "maxmemory:{}\r\n", shared.config.maxmemory)?;
            write!(text, "maxmemory_policy:noeviction\r\n")?;
        }
        "stats" => {
            write!(text, "# Stats\r\n")?;
            write!(text, "total_connections_received:{}\r\n", stats.total_connections.load(Ordering::Relaxed))?;
            write!(text, "total_commands_processed:{}\r\n", stats.total_commands())?;
            write!(text, "rejected_connections:{}\r\n", stats.rejected_connections.load(Ordering::Relaxed))?;
            write!(text, "pubsub_channels:{}\r\n", shared.broker.channel_count())?;
        }
        "commandstats" => {
            write!(text, "# Commandstats\r\n")?;
            for (index, spec) in SPECS.iter().enumerate() {
                let calls = stats.calls(index);
                if calls > 0 {
                    write!(text, "cmdstat_{}:calls={calls}\r\n", spec.name)?;
                }
            }
        }
        "keyspace" => {
            write!(text, "# Keyspace\r\n")?;
            let (keys, expires) = shared.store.counts();
            if keys > 0 {
                write!(text, "db0:keys={keys},expires={expires},avg_ttl=0\r\n")?;
            }
        }
        _ => {}
    }
    Ok(())
}
