//! Configuration as users bring it: flags from a config file (TOML, YAML,
//! JSON), variables from the environment and a `.env` file, with the
//! documented precedence (command line > environment > config file >
//! default), `RUST_LOG`, and `${VARIABLES}` in scenario files; each checked
//! with the real `stampede` binary (a KV server says where it listens and
//! which node it is; Redis counts what a run sent it).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use stampede_tests::{Process, command_calls, free_port, run_command, stampede_bin, start_redis, write_file};

/// `stampede kv-server` in `dir` with `args` and `env`; returns its
/// "kv-server NODE listening on ADDR" line.
fn kv_server_line(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(stampede_bin());
    command.current_dir(dir).arg("kv-server").args(args).env_remove("STAMPEDE_KV_LISTEN");
    for (name, value) in env {
        command.env(name, value);
    }
    let server = Process::spawn("kv-server", command);
    server.wait_for_line("listening on", Duration::from_secs(20))
}

#[test]
fn command_line_beats_environment_beats_dot_env_and_config_file_beats_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let config = write_file(
        dir.path(),
        "stampede.toml",
        &format!("[kv-server]\nnode_id = \"from-config\"\nlisten = \"127.0.0.1:{}\"\n", ports[0]),
    );
    // The config file beats the default (kv-0 on 127.0.0.1:6380).
    let line = kv_server_line(dir.path(), &["--config", &config], &[]);
    assert_eq!(line, format!("kv-server from-config listening on 127.0.0.1:{}", ports[0]));
    // `.env` in the working directory is the environment: it beats the file.
    write_file(dir.path(), ".env", &format!("STAMPEDE_KV_LISTEN=127.0.0.1:{}\n", ports[1]));
    let line = kv_server_line(dir.path(), &["--config", &config], &[]);
    assert_eq!(line, format!("kv-server from-config listening on 127.0.0.1:{}", ports[1]));
    // The environment itself beats `.env`.
    let env_listen = format!("127.0.0.1:{}", ports[2]);
    let line = kv_server_line(dir.path(), &["--config", &config], &[("STAMPEDE_KV_LISTEN", &env_listen)]);
    assert_eq!(line, format!("kv-server from-config listening on {env_listen}"));
    // The command line beats them all, also when the file is named by STAMPEDE_CONFIG.
    let cli_listen = format!("127.0.0.1:{}", ports[3]);
    let line = kv_server_line(
        dir.path(),
        &["--listen", &cli_listen, "--node-id", "from-cli"],
        &[("STAMPEDE_KV_LISTEN", &env_listen), ("STAMPEDE_CONFIG", &config)],
    );
    assert_eq!(line, format!("kv-server from-cli listening on {cli_listen}"));
}

#[test]
fn yaml_and_json_config_files_work_and_a_wrong_key_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let yaml =
        write_file(dir.path(), "s.yaml", &format!("kv-server:\n  node-id: yaml-node\n  listen: 127.0.0.1:{port}\n"));
    let line = kv_server_line(dir.path(), &["--config", &yaml], &[]);
    assert_eq!(line, format!("kv-server yaml-node listening on 127.0.0.1:{port}"));
    let port = free_port();
    let json = write_file(
        dir.path(),
        "s.json",
        &format!("{{\"kv_server\": {{\"node_id\": \"json-node\", \"listen\": \"127.0.0.1:{port}\"}}}}"),
    );
    let line = kv_server_line(dir.path(), &["--config", &json], &[]);
    assert_eq!(line, format!("kv-server json-node listening on 127.0.0.1:{port}"));
    for (name, text, said) in [
        ("typo.toml", "[kv-server]\nlistne = \"127.0.0.1:1\"\n", "`listne` is not a flag of `stampede kv-server`"),
        ("bad.toml", "[kv-server\n", "cannot be read"),
        ("settings.ini", "listen=1\n", "must end in .toml, .yaml, .yml or .json"),
    ] {
        let file = write_file(dir.path(), name, text);
        let mut command = Command::new(stampede_bin());
        command.current_dir(dir.path()).args(["kv-server", "--config", &file]);
        let (code, _, stderr) = run_command(command, Duration::from_secs(20));
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(said) && stderr.contains(name), "{name}: {stderr}");
    }
}

#[test]
fn rust_log_sets_the_log_filter_when_stampede_log_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(dir.path(), ".env", "UNUSED_HERE=1\n");
    let scenario =
        write_file(dir.path(), "s.yaml", "name: t\nduration: 1s\ntarget:\n  kind: kv\nworkload:\n  kind: kv\n");
    let validate = |env: &[(&str, &str)]| {
        let mut command = Command::new(stampede_bin());
        command.current_dir(dir.path()).args(["validate", &scenario]).env_remove("RUST_LOG").env_remove("STAMPEDE_LOG");
        for (name, value) in env {
            command.env(name, value);
        }
        run_command(command, Duration::from_secs(20))
    };
    // `validate` logs warnings only by default; the .env line is at info.
    let (code, _, quiet) = validate(&[]);
    assert_eq!(code, 0, "{quiet}");
    assert!(!quiet.contains(".env"), "{quiet}");
    let (_, _, told) = validate(&[("RUST_LOG", "info")]);
    assert!(told.contains("were read from .env"), "RUST_LOG=info shows info lines: {told}");
    let (_, _, overridden) = validate(&[("RUST_LOG", "info"), ("STAMPEDE_LOG", "warn")]);
    assert!(!overridden.contains(".env"), "STAMPEDE_LOG wins over RUST_LOG: {overridden}");
}

#[test]
fn scenario_variables_come_from_the_environment_and_dot_env_and_unset_ones_are_named() {
    let (_redis, port) = start_redis();
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write_file(
        dir.path(),
        "s.yaml",
        "name: from-env\nduration: 1s\ntarget:\n  kind: redis\n  endpoints: [\"${REDIS_HOST:-127.0.0.1}:${REDIS_PORT}\"]\n\
         load:\n  connections: 2\n  operations: ${OPS:-777}\nworkload:\n  kind: mixed\n  weights: {get: 1, set: 1}\n",
    );
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(stampede_bin());
        command.current_dir(dir.path()).args(["run", &scenario, "--agents", "1"]);
        for (name, value) in env {
            command.env(name, value);
        }
        run_command(command, Duration::from_secs(120))
    };
    // Unset, without a default: the variable and its line are named.
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("line 5: the variable REDIS_PORT is not set"), "{stderr}");
    // From .env, the default for OPS: Redis served the 777 operations.
    write_file(dir.path(), ".env", &format!("REDIS_PORT={port}\n"));
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let target = format!("127.0.0.1:{port}");
    let served = || command_calls(&target, "get") + command_calls(&target, "set");
    assert_eq!(served(), 777);
    // The environment beats the default.
    let (code, stdout, stderr) = run(&[("OPS", "100")]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(served(), 877);
}
