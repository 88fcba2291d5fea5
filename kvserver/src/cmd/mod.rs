//! The commands the server understands: one table of specs (name, arity,
//! flags), one `Command` enum, one file per command (closely related
//! variants such as INCR/INCRBY/DECR share one), and dispatch in one place.
//! Replies and error texts are the ones Redis gives, so clients behave the
//! same.

mod append;
mod auth;
mod client;
mod command;
mod config;
mod dbsize;
mod del;
mod echo;
mod exists;
mod expire;
mod flush;
mod get;
mod hdel;
mod hello;
mod hget;
mod hgetall;
mod hlen;
mod hset;
mod incr;
mod info;
mod llen;
mod lrange;
mod ltrim;
mod mget;
mod mset;
mod ping;
mod pop;
mod publish;
mod push;
mod quit;
mod select;
mod set;
mod strlen;
mod subscribe;
mod ttl;

use bytes::{Bytes, BytesMut};

use crate::Shared;
use crate::connection::Client;
use crate::resp::reply;
use crate::store::Value;

/// Flags of a command spec.
pub const WRITE: u8 = 1;
/// Refused with OOM when memory is above `--maxmemory`.
pub const DENY_OOM: u8 = 2;
/// Allowed before AUTH.
pub const NO_AUTH: u8 = 4;
/// Allowed in subscribed mode.
pub const PUBSUB_OK: u8 = 8;

/// What the server knows about a command.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    /// Redis arity: N exactly N arguments (name included), -N at least N.
    pub arity: i32,
    pub flags: u8,
    /// First key, last key (negative: from the end), step; 0 for none.
    pub keys: (i32, i32, i32),
}

macro_rules! specs {
    ($($name:literal $arity:literal $flags:expr, $keys:expr;)*) => {
        pub static SPECS: &[Spec] = &[$(Spec { name: $name, arity: $arity, flags: $flags, keys: $keys }),*];
    };
}

specs! {
    "get" 2 0, (1, 1, 1);
    "set" -3 WRITE | DENY_OOM, (1, 1, 1);
    "mget" -2 0, (1, -1, 1);
    "mset" -3 WRITE | DENY_OOM, (1, -1, 2);
    "del" -2 WRITE, (1, -1, 1);
    "exists" -2 0, (1, -1, 1);
    "incr" 2 WRITE | DENY_OOM, (1, 1, 1);
    "incrby" 3 WRITE | DENY_OOM, (1, 1, 1);
    "decr" 2 WRITE | DENY_OOM, (1, 1, 1);
    "decrby" 3 WRITE | DENY_OOM, (1, 1, 1);
    "append" 3 WRITE | DENY_OOM, (1, 1, 1);
    "strlen" 2 0, (1, 1, 1);
    "expire" -3 WRITE, (1, 1, 1);
    "pexpire" -3 WRITE, (1, 1, 1);
    "ttl" 2 0, (1, 1, 1);
    "pttl" 2 0, (1, 1, 1);
    "lpush" -3 WRITE | DENY_OOM, (1, 1, 1);
    "rpush" -3 WRITE | DENY_OOM, (1, 1, 1);
    "lpop" -2 WRITE, (1, 1, 1);
    "rpop" -2 WRITE, (1, 1, 1);
    "lrange" 4 0, (1, 1, 1);
    "ltrim" 4 WRITE, (1, 1, 1);
    "llen" 2 0, (1, 1, 1);
    "hset" -4 WRITE | DENY_OOM, (1, 1, 1);
    "hget" 3 0, (1, 1, 1);
    "hgetall" 2 0, (1, 1, 1);
    "hdel" -3 WRITE, (1, 1, 1);
    "hlen" 2 0, (1, 1, 1);
    "publish" 3 0, (0, 0, 0);
    "subscribe" -2 PUBSUB_OK, (0, 0, 0);
    "unsubscribe" -1 PUBSUB_OK, (0, 0, 0);
    "ping" -1 PUBSUB_OK, (0, 0, 0);
    "echo" 2 0, (0, 0, 0);
    "info" -1 0, (0, 0, 0);
    "dbsize" 1 0, (0, 0, 0);
    "flushdb" -1 WRITE, (0, 0, 0);
    "flushall" -1 WRITE, (0, 0, 0);
    "select" 2 0, (0, 0, 0);
    "quit" -1 NO_AUTH | PUBSUB_OK, (0, 0, 0);
    "auth" -2 NO_AUTH, (0, 0, 0);
    "client" -2 0, (0, 0, 0);
    "hello" -1 NO_AUTH, (0, 0, 0);
    "command" -1 0, (0, 0, 0);
    "config" -2 0, (0, 0, 0);
}

/// Finds a spec by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<usize> {
    if name.len() > 16 {
        return None;
    }
    let mut lower = [0u8; 16];
    for (l, c) in lower.iter_mut().zip(name) {
        *l = c.to_ascii_lowercase();
    }
    let lower = &lower[..name.len()];
    SPECS.iter().position(|spec| spec.name.as_bytes() == lower)
}

/// Why a request was refused; the text is the reply Redis would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError(pub String);

impl CommandError {
    pub fn wrong_arity(name: &str) -> Self {
        Self(format!("ERR wrong number of arguments for '{name}' command"))
    }
    pub fn syntax() -> Self {
        Self("ERR syntax error".into())
    }
    pub fn not_integer() -> Self {
        Self("ERR value is not an integer or out of range".into())
    }
    pub fn wrong_type() -> Self {
        Self("WRONGTYPE Operation against a key holding the wrong kind of value".into())
    }
}

/// Parses an integer the way Redis does: optional minus, digits, no sign,
/// spaces or leading zeros.
pub fn parse_int(bytes: &[u8]) -> Result<i64, CommandError> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let valid = !digits.is_empty()
        && digits.len() <= 19
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
        && !(bytes[0] == b'-' && digits == b"0");
    if !valid {
        return Err(CommandError::not_integer());
    }
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).ok_or_else(CommandError::not_integer)
}

/// A parsed request.
#[derive(Debug)]
pub enum Command {
    Get(get::Get),
    Set(set::Set),
    Mget(mget::Mget),
    Mset(mset::Mset),
    Del(del::Del),
    Exists(exists::Exists),
    Incr(incr::Incr),
    Append(append::Append),
    Strlen(strlen::Strlen),
    Expire(expire::Expire),
    Ttl(ttl::Ttl),
    Push(push::Push),
    Pop(pop::Pop),
    Lrange(lrange::Lrange),
    Ltrim(ltrim::Ltrim),
    Llen(llen::Llen),
    Hset(hset::Hset),
    Hget(hget::Hget),
    Hgetall(hgetall::Hgetall),
    Hdel(hdel::Hdel),
    Hlen(hlen::Hlen),
    Publish(publish::Publish),
    Subscribe(subscribe::Subscribe),
    Ping(ping::Ping),
    Echo(echo::Echo),
    Info(info::Info),
    Dbsize(dbsize::Dbsize),
    Flush(flush::Flush),
    Select(select::Select),
    Quit(quit::Quit),
    Auth(auth::Auth),
    Client(client::ClientCommand),
    Hello(hello::Hello),
    Command(command::CommandInfo),
    Config(config::Config),
}

impl Command {
    /// Parses a request whose name matched `SPECS[spec]` and whose arity
    /// was checked.
    pub fn parse(spec: usize, args: &[Bytes]) -> Result<Self, CommandError> {
        let a = &args[1..];
        Ok(match SPECS[spec].name {
            "get" => Self::Get(get::Get::parse(a)),
            "set" => Self::Set(set::Set::parse(a)?),
            "mget" => Self::Mget(mget::Mget::parse(a)),
            "mset" => Self::Mset(mset::Mset::parse(a)?),
            "del" => Self::Del(del::Del::parse(a)),
            "exists" => Self::Exists(exists::Exists::parse(a)),
            "incr" => Self::Incr(incr::Incr::parse(a, 1, false)?),
            "incrby" => Self::Incr(incr::Incr::parse(a, 1, true)?),
            "decr" => Self::Incr(incr::Incr::parse(a, -1, false)?),
            "decrby" => Self::Incr(incr::Incr::parse(a, -1, true)?),
            "append" => Self::Append(append::Append::parse(a)),
            "strlen" => Self::Strlen(strlen::Strlen::parse(a)),
            "expire" => Self::Expire(expire::Expire::parse(a, 1000, "expire")?),
            "pexpire" => Self::Expire(expire::Expire::parse(a, 1, "pexpire")?),
            "ttl" => Self::Ttl(ttl::Ttl::parse(a, 1000)),
            "pttl" => Self::Ttl(ttl::Ttl::parse(a, 1)),
            "lpush" => Self::Push(push::Push::parse(a, true)),
            "rpush" => Self::Push(push::Push::parse(a, false)),
            "lpop" => Self::Pop(pop::Pop::parse(a, true)?),
            "rpop" => Self::Pop(pop::Pop::parse(a, false)?),
            "lrange" => Self::Lrange(lrange::Lrange::parse(a)?),
            "ltrim" => Self::Ltrim(ltrim::Ltrim::parse(a)?),
            "llen" => Self::Llen(llen::Llen::parse(a)),
            "hset" => Self::Hset(hset::Hset::parse(a)?),
            "hget" => Self::Hget(hget::Hget::parse(a)),
            "hgetall" => Self::Hgetall(hgetall::Hgetall::parse(a)),
            "hdel" => Self::Hdel(hdel::Hdel::parse(a)),
            "hlen" => Self::Hlen(hlen::Hlen::parse(a)),
            "publish" => Self::Publish(publish::Publish::parse(a)),
            "subscribe" => Self::Subscribe(subscribe::Subscribe::parse(a, true)),
            "unsubscribe" => Self::Subscribe(subscribe::Subscribe::parse(a, false)),
            "ping" => Self::Ping(ping::Ping::parse(a)?),
            "echo" => Self::Echo(echo::Echo::parse(a)),
            "info" => Self::Info(info::Info::parse(a)),
            "dbsize" => Self::Dbsize(dbsize::Dbsize),
            "flushdb" | "flushall" => Self::Flush(flush::Flush::parse(a)?),
            "select" => Self::Select(select::Select::parse(a)?),
            "quit" => Self::Quit(quit::Quit),
            "auth" => Self::Auth(auth::Auth::parse(a)?),
            "client" => Self::Client(client::ClientCommand::parse(a)?),
            "hello" => Self::Hello(hello::Hello::parse(a)?),
            "command" => Self::Command(command::CommandInfo::parse(a)?),
            "config" => Self::Config(config::Config::parse(a)?),
            other => return Err(CommandError(format!("ERR unknown command '{other}'"))),
        })
    }

    /// Executes the command and appends its reply to `out`.
    pub fn apply(self, shared: &Shared, client: &mut Client, out: &mut BytesMut) {
        match self {
            Self::Get(c) => c.apply(shared, out),
            Self::Set(c) => c.apply(shared, out),
            Self::Mget(c) => c.apply(shared, out),
            Self::Mset(c) => c.apply(shared, out),
            Self::Del(c) => c.apply(shared, out),
            Self::Exists(c) => c.apply(shared, out),
            Self::Incr(c) => c.apply(shared, out),
            Self::Append(c) => c.apply(shared, out),
            Self::Strlen(c) => c.apply(shared, out),
            Self::Expire(c) => c.apply(shared, out),
            Self::Ttl(c) => c.apply(shared, out),
            Self::Push(c) => c.apply(shared, out),
            Self::Pop(c) => c.apply(shared, out),
            Self::Lrange(c) => c.apply(shared, out),
            Self::Ltrim(c) => c.apply(shared, out),
            Self::Llen(c) => c.apply(shared, out),
            Self::Hset(c) => c.apply(shared, out),
            Self::Hget(c) => c.apply(shared, out),
            Self::Hgetall(c) => c.apply(shared, out),
            Self::Hdel(c) => c.apply(shared, out),
            Self::Hlen(c) => c.apply(shared, out),
            Self::Publish(c) => c.apply(shared, out),
            Self::Subscribe(c) => c.apply(shared, client, out),
            Self::Ping(c) => c.apply(client, out),
            Self::Echo(c) => c.apply(out),
            Self::Info(c) => c.apply(shared, out),
            Self::Dbsize(c) => c.apply(shared, out),
            Self::Flush(c) => c.apply(shared, out),
            Self::Select(c) => c.apply(out),
            Self::Quit(c) => c.apply(client, out),
            Self::Auth(c) => c.apply(shared, client, out),
            Self::Client(c) => c.apply(client, out),
            Self::Hello(c) => c.apply(shared, client, out),
            Self::Command(c) => c.apply(out),
            Self::Config(c) => c.apply(shared, out),
        }
    }
}

/// Runs one request: lookup, arity, authentication, subscribed mode and
/// memory checks, then the command. Counts it in the statistics.
pub fn execute(args: Vec<Bytes>, shared: &Shared, client: &mut Client, out: &mut BytesMut) {
    let Some(name) = args.first() else { return };
    let Some(index) = lookup(name) else {
        return reply::error(out, &unknown_command(&args).0);
    };
    let spec = &SPECS[index];
    let count = args.len() as i32;
    if (spec.arity > 0 && count != spec.arity) || (spec.arity < 0 && count < -spec.arity) {
        return reply::error(out, &CommandError::wrong_arity(spec.name).0);
    }
    if !client.authenticated && spec.flags & NO_AUTH == 0 {
        return reply::error(out, "NOAUTH Authentication required.");
    }
    if client.subscribed() && spec.flags & PUBSUB_OK == 0 {
        return reply::error(
            out,
            &format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            ),
        );
    }
    if spec.flags & DENY_OOM != 0 && shared.over_memory_limit() {
        return reply::error(out, "OOM command not allowed when used memory > 'maxmemory'.");
    }
    match Command::parse(index, &args) {
        Ok(command) => command.apply(shared, client, out),
        Err(error) => reply::error(out, &error.0),
    }
    // Counted after it ran, as Redis does, so INFO does not count itself.
    shared.stats.count(index);
}

fn unknown_command(args: &[Bytes]) -> CommandError {
    let name = String::from_utf8_lossy(&args[0]);
    let shown: String = args[1..].iter().take(8).map(|a| format!("'{}' ", String::from_utf8_lossy(a))).collect();
    CommandError(format!("ERR unknown command '{name}', with args beginning with: {shown}"))
}

/// The string value of a key, or WRONGTYPE; `None` when the key is absent.
pub fn string_of(value: &Value) -> Result<&Bytes, CommandError> {
    match value {
        Value::Str(s) => Ok(s),
        _ => Err(CommandError::wrong_type()),
    }
}

#[cfg(test)]
mod tests;
