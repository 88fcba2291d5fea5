//! `CONFIG GET pattern [pattern ...]` (what `redis-benchmark` and
//! `redis-cli` read at start) and `CONFIG RESETSTAT`. Settings come from the
//! command line; `CONFIG SET` is refused with a clear error.

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::resp::reply;

#[derive(Debug)]
pub enum Config {
    Get(Vec<Bytes>),
    ResetStat,
}

impl Config {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        match args[0].to_ascii_lowercase().as_slice() {
            b"get" if args.len() >= 2 => Ok(Self::Get(args[1..].to_vec())),
            b"get" => Err(CommandError::wrong_arity("config|get")),
            b"resetstat" => Ok(Self::ResetStat),
            b"set" => {
                Err(CommandError("ERR CONFIG SET is not supported: set options on the kv-server command line".into()))
            }
            _ => Err(CommandError(format!(
                "ERR unknown subcommand '{}'. Try CONFIG HELP.",
                String::from_utf8_lossy(&args[0])
            ))),
        }
    }

    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        match self {
            Self::ResetStat => reply::ok(out),
            Self::Get(patterns) => {
                let settings = shared.config.settings();
                let matched: Vec<&(&str, String)> = settings
                    .iter()
                    .filter(|(name, _)| patterns.iter().any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes())))
                    .collect();
                reply::array_header(out, matched.len() * 2);
                for (name, value) in matched {
                    reply::bulk(out, name.as_bytes());
                    reply::bulk(out, value.as_bytes());
                }
            }
        }
    }
}

/// `*` and `?` glob matching, as CONFIG GET patterns use.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&pattern[1..], text) || (!text.is_empty() && glob_match(pattern, &text[1..])),
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob_match(&pattern[1..], &text[1..]),
        _ => false,
    }
}
