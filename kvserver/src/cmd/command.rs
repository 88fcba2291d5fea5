//! `COMMAND`, `COMMAND COUNT`, `COMMAND INFO name ...` and `COMMAND DOCS`:
//! what `redis-cli` and client libraries ask for, from the spec table.

use bytes::{Bytes, BytesMut};

use super::{CommandError, DENY_OOM, NO_AUTH, PUBSUB_OK, SPECS, Spec, WRITE, lookup};
use crate::resp::reply;

#[derive(Debug)]
pub enum CommandInfo {
    All,
    Count,
    Info(Vec<Bytes>),
    Docs,
}

impl CommandInfo {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        let Some(sub) = args.first() else { return Ok(Self::All) };
        match sub.to_ascii_lowercase().as_slice() {
            b"count" => Ok(Self::Count),
            b"info" => Ok(Self::Info(args[1..].to_vec())),
            b"docs" => Ok(Self::Docs),
            _ => Err(CommandError(format!(
                "ERR unknown subcommand '{}'. Try COMMAND HELP.",
                String::from_utf8_lossy(sub)
            ))),
        }
    }

    pub fn apply(self, out: &mut BytesMut) {
        match self {
            Self::All => {
                reply::array_header(out, SPECS.len());
                SPECS.iter().for_each(|spec| describe(out, spec));
            }
            Self::Count => reply::integer(out, SPECS.len() as i64),
            Self::Info(names) => {
                reply::array_header(out, names.len());
                for name in names {
                    match lookup(&name) {
                        Some(index) => describe(out, &SPECS[index]),
                        None => reply::null_array(out),
                    }
                }
            }
            Self::Docs => reply::array_header(out, 0),
        }
    }
}

fn describe(out: &mut BytesMut, spec: &Spec) {
    let mut flags = Vec::new();
    if spec.flags & WRITE != 0 {
        flags.push("write");
    } else {
        flags.push("readonly");
    }
    if spec.flags & DENY_OOM != 0 {
        flags.push("denyoom");
    }
    if spec.flags & NO_AUTH != 0 {
        flags.push("no_auth");
    }
    if spec.flags & PUBSUB_OK != 0 {
        flags.push("pubsub");
    }
    reply::array_header(out, 6);
    reply::bulk(out, spec.name.as_bytes());
    reply::integer(out, i64::from(spec.arity));
    reply::array_header(out, flags.len());
    for flag in flags {
        reply::simple(out, flag);
    }
    reply::integer(out, i64::from(spec.keys.0));
    reply::integer(out, i64::from(spec.keys.1));
    reply::integer(out, i64::from(spec.keys.2));
}
