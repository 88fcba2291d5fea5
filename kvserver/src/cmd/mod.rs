//! The commands the server understands: one enum, one file per command, and
//! dispatch in one place (`Command::parse` and `Command::apply`).

mod del;
mod echo;
mod get;
mod info;
mod ping;
mod set;

use bytes::{Bytes, BytesMut};

use crate::Shared;
use crate::resp::reply;

/// Command names, used for per-command statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandName {
    Ping,
    Echo,
    Get,
    Set,
    Del,
    Info,
}

impl CommandName {
    pub const COUNT: usize = 6;
    pub const ALL: [CommandName; Self::COUNT] = [Self::Ping, Self::Echo, Self::Get, Self::Set, Self::Del, Self::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Echo => "echo",
            Self::Get => "get",
            Self::Set => "set",
            Self::Del => "del",
            Self::Info => "info",
        }
    }
}

/// A parsed request.
#[derive(Debug, PartialEq)]
pub enum Command {
    Ping(ping::Ping),
    Echo(echo::Echo),
    Get(get::Get),
    Set(set::Set),
    Del(del::Del),
    Info(info::Info),
}

/// Why a request was refused; the text is the reply Redis would give.
#[derive(Debug, PartialEq, Eq)]
pub struct CommandError(pub String);

impl CommandError {
    pub fn wrong_arity(name: &str) -> Self {
        Self(format!("ERR wrong number of arguments for '{name}' command"))
    }

    pub fn syntax() -> Self {
        Self("ERR syntax error".to_string())
    }
}

impl Command {
    /// Parses a request's arguments (the first is the command name).
    pub fn parse(args: Vec<Bytes>) -> Result<Self, CommandError> {
        let Some(name) = args.first() else {
            return Err(CommandError("ERR empty command".to_string()));
        };
        let lower = name.to_ascii_lowercase();
        let rest = &args[1..];
        match lower.as_slice() {
            b"ping" => ping::Ping::parse(rest).map(Self::Ping),
            b"echo" => echo::Echo::parse(rest).map(Self::Echo),
            b"get" => get::Get::parse(rest).map(Self::Get),
            b"set" => set::Set::parse(rest).map(Self::Set),
            b"del" => del::Del::parse(rest).map(Self::Del),
            b"info" => info::Info::parse(rest).map(Self::Info),
            _ => Err(unknown_command(&args)),
        }
    }

    pub fn name(&self) -> CommandName {
        match self {
            Self::Ping(_) => CommandName::Ping,
            Self::Echo(_) => CommandName::Echo,
            Self::Get(_) => CommandName::Get,
            Self::Set(_) => CommandName::Set,
            Self::Del(_) => CommandName::Del,
            Self::Info(_) => CommandName::Info,
        }
    }

    /// Executes the command and appends its reply to `out`.
    pub fn apply(self, shared: &Shared, out: &mut BytesMut) {
        shared.stats.count(self.name());
        match self {
            Self::Ping(c) => c.apply(out),
            Self::Echo(c) => c.apply(out),
            Self::Get(c) => c.apply(&shared.store, out),
            Self::Set(c) => c.apply(&shared.store, out),
            Self::Del(c) => c.apply(&shared.store, out),
            Self::Info(c) => c.apply(shared, out),
        }
    }
}

fn unknown_command(args: &[Bytes]) -> CommandError {
    let name = String::from_utf8_lossy(&args[0]);
    let shown: Vec<String> = args[1..].iter().take(8).map(|a| format!("'{}'", String::from_utf8_lossy(a))).collect();
    CommandError(format!("ERR unknown command '{name}', with args beginning with: {}", shown.join(" ")))
}

/// Writes a command error as a RESP error reply.
pub fn write_error(out: &mut BytesMut, error: &CommandError) {
    reply::error(out, &error.0);
}
