//! `${NAME}` and `${NAME:-default}` in scenario files, replaced by the
//! environment of whoever submits the scenario (as docker compose and the
//! shell do), so that one file serves every host: `${REDIS_HOST:-localhost}`.
//!
//! Only the braced form is read (a bare `$` stays as it is, as passwords
//! may hold one); `$${` writes a literal `${`; lines that are comments are
//! left alone. A variable that is not set and has no default is an error
//! naming it and its line. Pure: the caller says how a variable is looked up.

use super::{ScenarioError, ScenarioIssue};

/// Replaces every `${NAME}` / `${NAME:-default}` of `text` with
/// `lookup(NAME)` (or the default when it is unset or empty).
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ScenarioError> {
    let mut out = String::with_capacity(text.len());
    let mut issues = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(escaped) = after.strip_prefix("${") {
                out.push_str("${");
                rest = escaped;
                continue;
            }
            let Some(inner) = after.strip_prefix('{') else {
                out.push('$');
                rest = after;
                continue;
            };
            let Some(end) = inner.find('}') else {
                issues.push(issue(index, "`${` without its closing `}`; write ${NAME} or ${NAME:-default}"));
                out.push_str(&rest[at..]);
                rest = "";
                break;
            };
            let body = &inner[..end];
            let (name, default) = match body.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (body, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                issues.push(issue(
                    index,
                    &format!("`${{{body}}}` does not name a variable (letters, digits and _, as in ${{REDIS_HOST}})"),
                ));
            } else {
                match (lookup(name).filter(|v| !v.is_empty()), default) {
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => issues.push(issue(
                        index,
                        &format!(
                            "the variable {name} is not set; set it (export {name}=...) or give a default, as in \
                             ${{{name}:-value}}"
                        ),
                    )),
                }
            }
            rest = &inner[end + 1..];
        }
        out.push_str(rest);
    }
    if issues.is_empty() { Ok(out) } else { Err(ScenarioError { issues }) }
}

fn issue(index: usize, message: &str) -> ScenarioIssue {
    ScenarioIssue { field: String::new(), line: Some(index + 1), column: None, message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "REDIS_HOST" => Some("10.0.0.7".into()),
            "EMPTY" => Some(String::new()),
            "PASSWORD" => Some("p$w:rd".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_with_their_value_or_default() {
        let text = "endpoints: [\"${REDIS_HOST}:${PORT:-6379}\"]\nname: ${EMPTY:-fallback}\n";
        assert_eq!(expand(text, env).expect("expanded"), "endpoints: [\"10.0.0.7:6379\"]\nname: fallback\n");
        // A bare $ (in a password) stays; $${ is a literal ${; comments are left alone.
        let text = "a: pa$$word $x\nb: $${NOT_A_VAR}\n# ${UNSET} in a comment\nc: redis://:${PASSWORD}@h:1";
        assert_eq!(
            expand(text, env).expect("expanded"),
            "a: pa$$word $x\nb: ${NOT_A_VAR}\n# ${UNSET} in a comment\nc: redis://:p$w:rd@h:1"
        );
    }

    #[test]
    fn an_unset_variable_without_default_is_named_with_its_line() {
        let error =
            expand("name: t\nendpoints: [\"${DB_HOST}:5432\"]\nx: ${bad-name}\ny: ${OPEN\n", env).expect_err("unset");
        let said: Vec<String> = error.issues.iter().map(|i| format!("{:?}: {}", i.line, i.message)).collect();
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(said[0].starts_with("Some(2): the variable DB_HOST is not set"), "{said:?}");
        assert!(said[0].contains("${DB_HOST:-value}"), "{said:?}");
        assert!(said[1].starts_with("Some(3): `${bad-name}` does not name a variable"), "{said:?}");
        assert!(said[2].starts_with("Some(4): `${` without its closing `}`"), "{said:?}");
    }
}
