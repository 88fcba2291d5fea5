//! The binary's own surface: help, version and argument errors. (Its
//! presence also makes `cargo test` build the `stampede` binary that the
//! end-to-end tests in `tests/` run.)

use std::process::Command;

fn stampede(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stampede")).args(args).output().expect("run stampede")
}

#[test]
fn help_lists_every_subcommand() {
    let output = stampede(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in
        ["run", "coordinator", "agent", "kv-server", "submit", "runs", "report", "agents", "validate", "watch"]
    {
        assert!(text.contains(command), "missing {command} in:\n{text}");
    }
    assert!(text.contains("Exit codes"));
}

#[test]
fn a_bad_flag_value_is_a_usage_error() {
    let output = stampede(&["coordinator", "--heartbeat-timeout", "5"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no unit"));
    let output = stampede(&["submit", "x.yaml", "--coordinator", "not a url", "--wait"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn an_unreachable_coordinator_is_named() {
    let output = stampede(&["runs", "--coordinator", "http://127.0.0.1:1"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the coordinator at http://127.0.0.1:1"), "{stderr}");
}

#[test]
fn a_reader_that_leaves_early_ends_the_output_without_a_panic() {
    // A pipe whose reader has gone, as with `stampede validate FILE | head -0`.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/quickstart.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .args(["validate", scenario])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run stampede");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
}
