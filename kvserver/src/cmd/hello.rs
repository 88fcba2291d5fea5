//! `HELLO [2 [AUTH username password] [SETNAME name]]`: RESP2 only; the
//! reply is the server's description as a flat array.

use bytes::{Bytes, BytesMut};

use super::{CommandError, auth, parse_int};
use crate::Shared;
use crate::connection::Client;
use crate::resp::reply;

#[derive(Debug)]
pub struct Hello {
    auth: Option<(Bytes, Bytes)>,
    name: Option<Bytes>,
}

impl Hello {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        let mut hello = Self { auth: None, name: None };
        let Some(version) = args.first() else { return Ok(hello) };
        match parse_int(version) {
            Ok(2) => {}
            Ok(_) => return Err(CommandError("NOPROTO unsupported protocol version".into())),
            Err(_) => return Err(CommandError("ERR Protocol version is not an integer or out of range".into())),
        }
        let mut rest = args[1..].iter();
        while let Some(option) = rest.next() {
            match option.to_ascii_lowercase().as_slice() {
                b"auth" => match (rest.next(), rest.next()) {
                    (Some(user), Some(pass)) => hello.auth = Some((user.clone(), pass.clone())),
                    _ => return Err(CommandError::syntax()),
                },
                b"setname" => hello.name = Some(rest.next().ok_or_else(CommandError::syntax)?.clone()),
                _ => return Err(CommandError::syntax()),
            }
        }
        Ok(hello)
    }

    pub fn apply(self, shared: &Shared, client: &mut Client, out: &mut BytesMut) {
        if let Some((user, pass)) = &self.auth {
            if let Err(error) = auth::check(shared, Some(user), pass) {
                return reply::error(out, &error.0);
            }
            client.authenticated = true;
        }
        if !client.authenticated {
            return reply::error(
                out,
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        if let Some(name) = self.name {
            client.name = Some(name);
        }
        reply::array_header(out, 14);
        for (field, value) in [("server", "redis"), ("version", "7.0.0")] {
            reply::bulk(out, field.as_bytes());
            reply::bulk(out, value.as_bytes());
        }
        reply::bulk(out, b"proto");
        reply::integer(out, 2);
        reply::bulk(out, b"id");
        reply::integer(out, client.id as i64);
        for (field, value) in [("mode", "standalone"), ("role", "master")] {
            reply::bulk(out, field.as_bytes());
            reply::bulk(out, value.as_bytes());
        }
        reply::bulk(out, b"modules");
        reply::array_header(out, 0);
    }
}
