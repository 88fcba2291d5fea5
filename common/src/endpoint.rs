//! Target endpoints: the forms each target kind takes, passwords hidden
//! for messages, and a scenario's endpoints replaced from the command line.

use crate::scenario::{Scenario, ScenarioError, ScenarioIssue, TargetKind, strip_location};

impl Scenario {
    /// The scenario text with `target.endpoints` replaced (the `--endpoint`
    /// option of `run` and `submit`), checked again as a whole. Comments
    /// are not kept in the returned text. No endpoints: the text as it is.
    pub fn with_endpoints(text: &str, endpoints: &[String]) -> Result<(Self, String), ScenarioError> {
        if endpoints.is_empty() {
            return Self::parse(text).map(|scenario| (scenario, text.to_string()));
        }
        let problem = |message: String| ScenarioError {
            issues: vec![ScenarioIssue { field: "target".into(), line: None, column: None, message }],
        };
        // The file's own problems first, with their lines.
        Self::parse(text)?;
        let mut document: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| problem(strip_location(&e.to_string())))?;
        let Some(target) = document.get_mut("target").and_then(serde_yaml::Value::as_mapping_mut) else {
            return Err(problem("the scenario has no `target` mapping to set endpoints in".into()));
        };
        let list = endpoints.iter().map(|e| serde_yaml::Value::String(e.clone())).collect();
        target.insert("endpoints".into(), serde_yaml::Value::Sequence(list));
        let rewritten = serde_yaml::to_string(&document).map_err(|e| problem(e.to_string()))?;
        let scenario = Self::parse(&rewritten).map_err(|mut error| {
            for issue in &mut error.issues {
                // Lines of the rewritten text mean nothing to the user.
                (issue.line, issue.column) = (None, None);
                issue.message = format!("{} (from --endpoint)", issue.message);
            }
            error
        })?;
        Ok((scenario, rewritten))
    }
}

fn host_port(address: &str) -> bool {
    address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// What is wrong with an endpoint's form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EndpointError {
    #[error("not a `host:port` address")]
    NotHostPort,
    #[error("scheme `{0}` is not used with this target kind")]
    Scheme(String),
    #[error("the URL has no valid host")]
    NoHost,
}

/// Checks one endpoint's form for its target kind.
pub(crate) fn check_endpoint(kind: TargetKind, endpoint: &str) -> Result<(), EndpointError> {
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return if host_port(endpoint) { Ok(()) } else { Err(EndpointError::NotHostPort) };
    };
    let allowed: &[&str] = match kind {
        TargetKind::Kv | TargetKind::Redis | TargetKind::RedisCluster => &["redis"],
        TargetKind::Postgres | TargetKind::Timescaledb => &["postgres", "postgresql"],
        TargetKind::Cratedb => &["http", "https"],
        TargetKind::Nats => &["nats"],
        TargetKind::Influx => &["http", "https"],
        TargetKind::Websocket => &["ws"],
    };
    if !allowed.contains(&scheme) {
        return Err(EndpointError::Scheme(scheme.to_string()));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() || host.contains(':') && !host_port(host) {
        return Err(EndpointError::NoHost);
    }
    Ok(())
}

/// The password in an endpoint URL's user information, if there is one.
pub fn password(endpoint: &str) -> Option<&str> {
    let (_, rest) = endpoint.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let (credentials, _) = authority.rsplit_once('@')?;
    credentials.split_once(':').map(|(_, password)| password).filter(|p| !p.is_empty())
}

/// `text` (a scenario as written) with the password of each endpoint
/// replaced by `***`: first where the endpoint appears as written, then, for
/// one spelled differently in the text (YAML escapes), wherever the password
/// itself appears.
pub fn redact_text(text: &str, endpoints: &[String]) -> String {
    let mut shown = text.to_string();
    for endpoint in endpoints {
        if password(endpoint).is_some() {
            shown = shown.replace(endpoint.as_str(), &redact(endpoint));
        }
    }
    for secret in endpoints.iter().filter_map(|e| password(e)) {
        if secret != "***" && shown.contains(secret) {
            shown = shown.replace(secret, "***");
        }
    }
    shown
}

/// The user or password of an endpoint's user info, percent-decoded as RFC
/// 3986 says: `%XX` is a byte, and `+` is a plus (not a space, as in a form).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An endpoint with its password replaced by `***`, for messages and logs.
pub fn redact(endpoint: &str) -> String {
    let Some((scheme, rest)) = endpoint.split_once("://") else { return endpoint.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => endpoint.to_string(),
        },
        None => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_percent_decoded_as_rfc_3986_says() {
        assert_eq!(percent_decode("p+a%25b%40c%3Ad"), "p+a%b@c:d", "a plus stays a plus");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
        assert_eq!(percent_decode("100%"), "100%", "a lone percent sign is kept");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
