//! `CLIENT SETNAME name`, `CLIENT GETNAME`, `CLIENT ID`, and
//! `CLIENT SETINFO` (which client libraries send on connect).

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::connection::Client;
use crate::resp::reply;

#[derive(Debug)]
pub enum ClientCommand {
    SetName(Bytes),
    GetName,
    Id,
    SetInfo,
}

impl ClientCommand {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        let sub = args[0].to_ascii_lowercase();
        match (sub.as_slice(), &args[1..]) {
            (b"setname", [name]) => {
                if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                    return Err(CommandError(
                        "ERR Client names cannot contain spaces, newlines or special characters.".into(),
                    ));
                }
                Ok(Self::SetName(name.clone()))
            }
            (b"getname", []) => Ok(Self::GetName),
            (b"id", []) => Ok(Self::Id),
            (b"setinfo", [_, _]) => Ok(Self::SetInfo),
            (b"setname" | b"getname" | b"id" | b"setinfo", _) => Err(CommandError(format!(
                "ERR wrong number of arguments for 'client|{}' command",
                String::from_utf8_lossy(&sub)
            ))),
            _ => Err(CommandError(format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&args[0])
            ))),
        }
    }

    pub fn apply(self, client: &mut Client, out: &mut BytesMut) {
        match self {
            Self::SetName(name) => {
                client.name = (!name.is_empty()).then_some(name);
                reply::ok(out);
            }
            Self::GetName => match &client.name {
                Some(name) => reply::bulk(out, name),
                None => reply::null(out),
            },
            Self::Id => reply::integer(out, client.id as i64),
            Self::SetInfo => reply::ok(out),
        }
    }
}
