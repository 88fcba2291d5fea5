//! A RESP endpoint as a scenario gives it: `host:port`, or
//! `redis://[[user]:password@]host:port[/db]` for a server that wants AUTH.
//! The password is kept out of every message: `shown` is what errors say.

use std::fmt;

use stampede_common::scenario::redact;

#[derive(Clone)]
pub(crate) struct RespAddress {
    /// `host:port`, to open a socket to.
    pub address: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The endpoint with its password hidden.
    pub shown: String,
}

impl fmt::Debug for RespAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl RespAddress {
    pub fn parse(endpoint: &str) -> Self {
        let shown = redact(endpoint);
        let Some(rest) = endpoint.strip_prefix("redis://") else {
            return Self { address: endpoint.to_string(), user: None, password: None, shown };
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (credentials, address) = match authority.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, authority),
        };
        let (user, password) = match credentials.map(|c| c.split_once(':').unwrap_or(("", c))) {
            Some((user, password)) => (
                Some(stampede_common::endpoint::percent_decode(user)).filter(|u| !u.is_empty()),
                Some(stampede_common::endpoint::percent_decode(password)).filter(|p| !p.is_empty()),
            ),
            None => (None, None),
        };
        Self { address: address.to_string(), user, password, shown }
    }

    /// The `AUTH` command for this endpoint, if it has a password.
    pub fn auth(&self) -> Option<Vec<&[u8]>> {
        let password = self.password.as_deref()?;
        let mut command = vec![b"AUTH".as_slice()];
        command.extend(self.user.as_deref().map(str::as_bytes));
        command.push(password.as_bytes());
        Some(command)
    }

    /// The connection information for the redis crate.
    pub fn connection_info(&self) -> Result<redis::ConnectionInfo, redis::RedisError> {
        use redis::IntoConnectionInfo;
        let info = format!("redis://{}/", self.address).into_connection_info()?;
        // No `CLIENT SETINFO` on connect: a connection's only commands are
        // `INFO server` and the workload's, as on the owned transport.
        let mut settings = info.redis_settings().clone().set_skip_set_lib_name();
        if let Some(user) = &self.user {
            settings = settings.set_username(user.clone());
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password.clone());
        }
        Ok(info.set_redis_settings(settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_and_never_shown() {
        let plain = RespAddress::parse("127.0.0.1:6379");
        assert_eq!((plain.address.as_str(), plain.auth()), ("127.0.0.1:6379", None));
        let secret = RespAddress::parse("redis://:s%40cret@db:6380/0");
        assert_eq!(secret.address, "db:6380");
        assert_eq!(secret.auth(), Some(vec![b"AUTH".as_slice(), b"s@cret"]));
        assert_eq!(format!("{secret:?}"), "redis://:***@db:6380/0");
        let acl = RespAddress::parse("redis://bench:pw@db:6380");
        assert_eq!(acl.auth(), Some(vec![b"AUTH".as_slice(), b"bench", b"pw"]));
    }
}
