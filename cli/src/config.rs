//! Process flags from a config file (`--config FILE`, TOML, YAML or JSON)
//! and variables from a `.env` file in the working directory, before clap
//! reads the command line. Precedence: command line > environment (`.env`
//! only sets what the environment does not) > config file > default.
//!
//! A config file names flags by their long name (`data-dir` or `data_dir`);
//! keys at the top apply to every command that has such a flag, keys in a
//! table named after a command (`[coordinator]`, `[kv-server]`) to that
//! command only. A value is a string, number or boolean (a switch: true sets
//! it), or a list for a flag that may be repeated. A key that is no flag is
//! an error naming the file and the flags there are. A setting becomes the
//! command-line flag it names, unless the command line gives that flag or
//! the environment sets its variable.

use std::ffi::OsString;
use std::path::Path;

use clap::CommandFactory;
use serde_json::Value;

/// What `.env` and the config file made of the command line.
pub struct Prepared {
    pub args: Vec<OsString>,
    /// The `.env` file that was read, if any.
    pub dotenv: Option<std::path::PathBuf>,
}

/// Reads `.env` (unless `STAMPEDE_NO_DOTENV` is set) and the config file
/// (`--config FILE` or `STAMPEDE_CONFIG`), and returns the arguments with
/// the config file's settings added.
pub fn prepare(args: Vec<OsString>) -> Result<Prepared, String> {
    let dotenv = if std::env::var_os("STAMPEDE_NO_DOTENV").is_some() {
        None
    } else {
        match dotenvy::dotenv() {
            Ok(path) => Some(path),
            Err(error) if error.not_found() => None,
            Err(error) => return Err(format!("cannot read .env in the working directory: {error}")),
        }
    };
    let command = crate::Cli::command();
    let file = config_path(&command, &args).or_else(|| std::env::var_os("STAMPEDE_CONFIG"));
    let Some(file) = file else { return Ok(Prepared { args, dotenv }) };
    let path = Path::new(&file);
    let settings = read(path)?;
    let args = apply(&command, args, &settings, &path.display().to_string())?;
    Ok(Prepared { args, dotenv })
}

/// `--config FILE` or `--config=FILE` on the command line, before `--`.
fn config_path(command: &clap::Command, args: &[OsString]) -> Option<OsString> {
    let mut tokens = args.iter().skip(1).map(|a| a.to_string_lossy().into_owned());
    while let Some(token) = tokens.next() {
        if token == "--" {
            return None;
        }
        if let Some(value) = token.strip_prefix("--config=") {
            return Some(value.into());
        }
        if token == "--config" {
            return tokens.next().map(Into::into);
        }
        // The value of another option is not a --config.
        if let Some(name) = token.strip_prefix("--").filter(|n| !n.contains('='))
            && takes_value(command, name)
        {
            tokens.next();
        }
    }
    None
}

/// Whether `--name` takes a value, in any command.
fn takes_value(command: &clap::Command, name: &str) -> bool {
    let here = command.get_arguments().any(|a| a.get_long() == Some(name) && a.get_action().takes_values());
    here || command.get_subcommands().any(|c| takes_value(c, name))
}

/// The file as JSON values, whatever its format (by its extension).
fn read(path: &Path) -> Result<Value, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the config file {shown}: {e}"))?;
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let value = match extension.as_str() {
        "toml" => toml::from_str::<Value>(&text).map_err(|e| e.to_string()),
        "yaml" | "yml" => serde_yaml::from_str::<Value>(&text).map_err(|e| e.to_string()),
        "json" => serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()),
        _ => {
            return Err(format!(
                "the config file {shown} must end in .toml, .yaml, .yml or .json, which says how to read it"
            ));
        }
    }
    .map_err(|e| format!("the config file {shown} cannot be read: {e}"))?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Default::default())),
        _ => Err(format!("the config file {shown} must hold settings (`name = value`), one per flag")),
    }
}

/// The subcommand the arguments name (its position and name), skipping
/// global options and their values.
fn subcommand(command: &clap::Command, args: &[OsString]) -> Option<(usize, String)> {
    let mut index = 1;
    while index < args.len() {
        let token = args[index].to_string_lossy();
        if token == "--" {
            return None;
        }
        if let Some(name) = token.strip_prefix("--") {
            let takes = !name.contains('=')
                && command.get_arguments().any(|a| a.get_long() == Some(name) && a.get_action().takes_values());
            index += if takes { 2 } else { 1 };
            continue;
        }
        if token.starts_with('-') {
            index += 1;
            continue;
        }
        return command.find_subcommand(token.as_ref()).map(|c| (index, c.get_name().to_string()));
    }
    None
}

/// Inserts the settings that the command line and the environment leave
/// open, as flags right after the subcommand.
fn apply(command: &clap::Command, args: Vec<OsString>, settings: &Value, file: &str) -> Result<Vec<OsString>, String> {
    let Some((position, name)) = subcommand(command, &args) else { return Ok(args) };
    let Some(sub) = command.find_subcommand(&name) else { return Ok(args) };
    let commands: Vec<String> = command.get_subcommands().map(|c| c.get_name().to_string()).collect();
    let Value::Object(entries) = settings else { return Ok(args) };
    let mut wanted: Vec<(String, Value)> = Vec::new();
    for (key, value) in entries {
        let key_name = key.replace('_', "-");
        if commands.contains(&key_name) {
            let Value::Object(section) = value else {
                return Err(format!("{file}: `{key}` names a command; its settings go in a table ([{key_name}])"));
            };
            for (inner, value) in section {
                let flag = inner.replace('_', "-");
                let target = command.find_subcommand(&key_name).expect("listed command");
                if find(command, target, &flag).is_none() {
                    return Err(unknown(file, inner, &key_name, target));
                }
                if key_name == name {
                    wanted.push((flag, value.clone()));
                }
            }
            continue;
        }
        if find(command, sub, &key_name).is_some() {
            wanted.push((key_name, value.clone()));
        } else if !command.get_subcommands().any(|c| find(command, c, &key_name).is_some()) {
            return Err(unknown(file, key, &name, sub));
        }
    }
    let given: Vec<String> = args[1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .filter_map(|a| a.strip_prefix("--").map(|n| n.split('=').next().unwrap_or("").to_string()))
        .collect();
    let mut inserted: Vec<OsString> = Vec::new();
    for (flag, value) in wanted {
        let arg = find(command, sub, &flag).expect("checked above");
        if given.contains(&flag) || arg.get_env().is_some_and(|env| std::env::var_os(env).is_some()) {
            continue;
        }
        let takes_values = arg.get_action().takes_values();
        let values = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        for value in values {
            let text = match value {
                Value::Bool(on) if !takes_values => {
                    if on {
                        inserted.push(format!("--{flag}").into());
                    }
                    continue;
                }
                Value::String(text) => text,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(format!("{file}: `{flag}` must be a string, a number, a boolean or a list of them")),
            };
            if !takes_values {
                return Err(format!("{file}: `{flag}` is a switch; write `{flag} = true` (or false)"));
            }
            inserted.push(format!("--{flag}").into());
            inserted.push(text.into());
        }
    }
    let mut args = args;
    let tail = args.split_off(position + 1);
    args.extend(inserted);
    args.extend(tail);
    Ok(args)
}

/// The argument `--flag` of `sub`, or a global one of the root.
fn find<'a>(root: &'a clap::Command, sub: &'a clap::Command, flag: &str) -> Option<&'a clap::Arg> {
    let named = |a: &&clap::Arg| a.get_long() == Some(flag) && flag != "config" && flag != "help";
    sub.get_arguments().find(named).or_else(|| root.get_arguments().find(named))
}

fn unknown(file: &str, key: &str, command: &str, sub: &clap::Command) -> String {
    let mut flags: Vec<&str> = sub.get_arguments().filter_map(|a| a.get_long()).filter(|l| *l != "help").collect();
    flags.sort_unstable();
    format!(
        "{file}: `{key}` is not a flag of `stampede {command}` (nor of any command); its flags are: {}",
        flags.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    fn shown(args: &[OsString]) -> String {
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn settings_become_flags_unless_the_command_line_gives_them() {
        let command = crate::Cli::command();
        let settings: Value = toml::from_str(
            "max-clients = 5\n[kv-server]\nnode_id = \"from-file\"\nthreads = 2\n[coordinator]\nlisten = \"x\"\n",
        )
        .expect("toml");
        let out =
            apply(&command, args("stampede --log info kv-server --threads 4"), &settings, "f.toml").expect("applied");
        assert_eq!(shown(&out), "stampede --log info kv-server --node-id from-file --max-clients 5 --threads 4");
        // A key that is no flag anywhere is refused, naming the file and the flags.
        let bad: Value = toml::from_str("[kv-server]\nlistne = \"x\"\n").expect("toml");
        let error = apply(&command, args("stampede kv-server"), &bad, "f.toml").expect_err("unknown");
        assert!(
            error.contains("`listne` is not a flag of `stampede kv-server`") && error.contains("listen"),
            "{error}"
        );
        let bad: Value = toml::from_str("colour = true\n").expect("toml");
        assert!(apply(&command, args("stampede agents"), &bad, "f.toml").is_err());
    }

    #[test]
    fn the_config_flag_is_found_before_the_subcommand_or_after_it() {
        let command = crate::Cli::command();
        assert_eq!(config_path(&command, &args("stampede --config a.toml run")), Some("a.toml".into()));
        assert_eq!(config_path(&command, &args("stampede run --config=b.yaml x.yaml")), Some("b.yaml".into()));
        assert_eq!(config_path(&command, &args("stampede run -- --config c")), None);
        assert_eq!(config_path(&command, &args("stampede --log --config run")), None, "a value, not the flag");
    }
}
