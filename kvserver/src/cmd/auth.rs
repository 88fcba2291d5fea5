//! `AUTH [username] password` against `--requirepass` (user `default`).

use bytes::{Bytes, BytesMut};

use super::CommandError;
use crate::Shared;
use crate::connection::Client;
use crate::resp::reply;

#[derive(Debug)]
pub struct Auth {
    username: Option<Bytes>,
    password: Bytes,
}

impl Auth {
    pub fn parse(args: &[Bytes]) -> Result<Self, CommandError> {
        match args {
            [password] => Ok(Self { username: None, password: password.clone() }),
            [username, password] => Ok(Self { username: Some(username.clone()), password: password.clone() }),
            _ => Err(CommandError::syntax()),
        }
    }

    pub fn apply(self, shared: &Shared, client: &mut Client, out: &mut BytesMut) {
        match check(shared, self.username.as_deref(), &self.password) {
            Ok(()) => {
                client.authenticated = true;
                reply::ok(out);
            }
            Err(error) => reply::error(out, &error.0),
        }
    }
}

/// Checks credentials against `--requirepass`.
pub fn check(shared: &Shared, username: Option<&[u8]>, password: &[u8]) -> Result<(), CommandError> {
    let Some(expected) = &shared.config.requirepass else {
        return Err(CommandError(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?"
                .into(),
        ));
    };
    let user_ok = username.is_none_or(|u| u == b"default");
    if user_ok && constant_time_eq(expected.as_bytes(), password) {
        Ok(())
    } else {
        Err(CommandError("WRONGPASS invalid username-password pair or user is disabled.".into()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
