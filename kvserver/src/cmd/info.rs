//! `INFO [section ...]`: `server` (with `node_id`, the identity agents use
//! to attribute requests to a node), `clients`, `stats`, `commandstats`
//! and `keyspace`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use super::{CommandError, CommandName};
use crate::Shared;
use crate::resp::reply;

const SECTIONS: [&str; 5] = ["server", "clients", "stats", "commandstats", "keyspace"];

#[derive(Debug, PartialEq)]
pub struct Info {
    sections: Vec<String>,
}

impl Info {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        let mut sections = Vec::new();
        for arg in args {
            let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
            match name.as_str() {
                "all" | "everything" | "default" => sections.extend(SECTIONS.map(String::from)),
                _ => sections.push(name),
            }
        }
        if sections.is_empty() {
            sections.extend(SECTIONS.map(String::from));
        }
        Ok(Self { sections })
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
    match section {
        "server" => {
            writeln!(text, "# Server\r")?;
            writeln!(text, "redis_version:7.0.0\r")?;
            writeln!(text, "stampede_kv_version:{}\r", env!("CARGO_PKG_VERSION"))?;
            writeln!(text, "node_id:{}\r", shared.config.node_id)?;
            writeln!(text, "run_id:{}\r", shared.run_id)?;
            writeln!(text, "process_id:{}\r", std::process::id())?;
            writeln!(text, "tcp_port:{}\r", shared.port)?;
            writeln!(text, "uptime_in_seconds:{}\r", shared.started.elapsed().as_secs())?;
        }
        "clients" => {
            writeln!(text, "# Clients\r")?;
            writeln!(text, "connected_clients:{}\r", stats.connected_clients.load(Ordering::Relaxed))?;
        }
        "stats" => {
            writeln!(text, "# Stats\r")?;
            writeln!(text, "total_connections_received:{}\r", stats.total_connections.load(Ordering::Relaxed))?;
            writeln!(text, "total_commands_processed:{}\r", stats.total_commands())?;
        }
        "commandstats" => {
            writeln!(text, "# Commandstats\r")?;
            for name in CommandName::ALL {
                let calls = stats.calls(name);
                if calls > 0 {
                    writeln!(text, "cmdstat_{}:calls={calls}\r", name.as_str())?;
                }
            }
        }
        "keyspace" => {
            writeln!(text, "# Keyspace\r")?;
            let keys = shared.store.len();
            if keys > 0 {
                writeln!(text, "db0:keys={keys},expires=0,avg_ttl=0\r")?;
            }
        }
        _ => return Ok(()),
    }
    writeln!(text, "\r")
}
