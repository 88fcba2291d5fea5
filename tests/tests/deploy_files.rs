//! The container files, read: the compose file has the promised services,
//! every `stampede` command in it is one the binary accepts, its haproxy
//! configuration passes `haproxy -c`, and the Dockerfile builds the one binary
//! into a non-root runtime image whose user is the one the Helm chart runs as.
//! `deploy/check_compose.py` (run by deploy/test.sh after these) builds the
//! image and runs the compose file with a real Docker engine.

use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;
use stampede_tests::{repo_root, run_command, run_stampede, stampede_bin, which};

fn compose() -> Value {
    let text = std::fs::read_to_string(repo_root().join("deploy/docker-compose.yml")).expect("compose file");
    let mut value: Value = serde_yaml::from_str(&text).expect("the compose file is YAML");
    value.apply_merge().expect("merge keys");
    value
}

fn strings(value: &Value) -> Vec<String> {
    value.as_sequence().map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn the_compose_file_runs_the_promised_services_with_commands_stampede_accepts() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Value::as_str).collect();
    for wanted in [
        "etcd",
        "coordinator",
        "agent-1",
        "agent-2",
        "agent-3",
        "kv-0",
        "kv-1",
        "kv-2",
        "haproxy",
        "redis",
        "postgres",
        "nats",
    ] {
        assert!(names.contains(&wanted), "service {wanted} missing: {names:?}");
    }
    let mut checked = 0;
    for (name, service) in services {
        let name = name.as_str().expect("name");
        if service["image"].as_str() != Some("stampede:0.1.0") {
            continue;
        }
        assert_eq!(service["build"]["dockerfile"].as_str(), Some("deploy/Dockerfile"), "{name} builds the image");
        assert!(service["environment"]["STAMPEDE_TOKEN"].as_str().is_some_and(|t| t.contains(":?")), "{name}: token");
        let mut args = strings(&service["command"]);
        assert!(!args.is_empty(), "{name} has a command");
        // clap refuses an unknown flag even next to --help, so this checks
        // every flag name without starting the service.
        args.push("--help".to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = run_stampede(&args, Duration::from_secs(20));
        assert_eq!(code, 0, "{name}: `stampede {}` is refused: {stderr}", args.join(" "));
        if name.starts_with("agent-") {
            assert!(args.iter().any(|a| a.starts_with("--etcd=http://etcd:2379")), "{name} finds the leader in etcd");
        }
        checked += 1;
    }
    assert_eq!(checked, 7, "coordinator, three agents and three KV nodes run the stampede image");
    // The other images can be replaced (a private registry, or the stand-ins
    // of deploy/check_compose.py) and default to the official ones.
    for (name, variable, official) in [
        ("etcd", "STAMPEDE_ETCD_IMAGE", "quay.io/coreos/etcd:"),
        ("haproxy", "STAMPEDE_HAPROXY_IMAGE", "haproxy:2.6"),
        ("redis", "STAMPEDE_REDIS_IMAGE", "redis:7.0"),
        ("postgres", "STAMPEDE_POSTGRES_IMAGE", "postgres:15"),
        ("nats", "STAMPEDE_NATS_IMAGE", "nats:2.9"),
    ] {
        let image = compose["services"][name]["image"].as_str().unwrap_or_default();
        assert!(image.starts_with(&format!("${{{variable}:-{official}")), "{name}: {image}");
    }
    let coordinator = strings(&compose["services"]["coordinator"]["command"]);
    assert!(coordinator.contains(&"--advertise=http://coordinator:7700".to_string()), "{coordinator:?}");
    // NATS with JetStream and its monitoring port (deploy/check_compose.py
    // starts it and reads /varz).
    let nats = strings(&compose["services"]["nats"]["command"]);
    assert!(nats.contains(&"-js".to_string()) && nats.contains(&"8222".to_string()), "{nats:?}");
}

#[test]
fn the_compose_haproxy_configuration_is_valid_and_balances_the_three_kv_nodes() {
    let Some(haproxy) = which("haproxy") else {
        panic!("haproxy is not installed; deploy/test.sh installs it (apt-get install haproxy)");
    };
    let config = repo_root().join("deploy/compose/haproxy.cfg");
    let mut check = Command::new(haproxy);
    check.arg("-c").arg("-f").arg(&config);
    let (code, stdout, stderr) = run_command(check, Duration::from_secs(20));
    assert_eq!(code, 0, "haproxy -c: {stdout}{stderr}");
    let text = std::fs::read_to_string(&config).expect("haproxy.cfg");
    for node in ["kv-0", "kv-1", "kv-2"] {
        assert!(text.contains(&format!("server {node} {node}:6379")), "{node} is not behind haproxy");
    }
    let volumes = strings(&compose()["services"]["haproxy"]["volumes"]);
    assert!(volumes.iter().any(|v| v.starts_with("./compose/haproxy.cfg:")), "{volumes:?}");
}

#[test]
fn the_dockerfile_builds_one_binary_into_a_small_non_root_image() {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).expect("Dockerfile");
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages, ["FROM ${RUST_IMAGE} AS build", "FROM ${RUNTIME_IMAGE}"], "a build and a runtime stage");
    // The base images are build arguments (a private registry's copies, or
    // deploy/check_compose.py's stand-ins); the defaults are the official ones.
    assert!(text.contains("ARG RUST_IMAGE=rust:1.95-slim-bookworm"), "the Rust build image");
    assert!(text.contains("ARG RUNTIME_IMAGE=debian:bookworm-slim"), "a slim runtime image");
    let syntax = text.lines().any(|l| l.trim_start().starts_with("# syntax="));
    assert!(!syntax, "no frontend image to fetch: the build works without a registry");
    assert!(text.contains("cargo build --release --locked -p stampede"), "builds the stampede package");
    assert!(text.contains("COPY --from=build /stampede /usr/local/bin/stampede"), "copies only the binary");
    assert!(text.contains("ENTRYPOINT [\"stampede\"]"));
    let user = text.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert_eq!(user.trim(), "10001:10001", "non-root");
    // The chart's pods run as the image's user.
    let values = std::fs::read_to_string(repo_root().join("helm/stampede/values.yaml")).expect("values.yaml");
    assert!(values.contains("runAsUser: 10001") && values.contains("runAsGroup: 10001"), "chart and image agree");
    // The package the Dockerfile builds is the workspace's binary.
    let manifest = std::fs::read_to_string(repo_root().join("cli/Cargo.toml")).expect("cli manifest");
    assert!(manifest.contains("name = \"stampede\""));
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).expect(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "the build context leaves target/ out");
}

#[test]
fn the_binary_needs_no_library_beyond_the_runtime_images_libc() {
    // debian:bookworm-slim has libc6 and libgcc-s1 and little else; the
    // image copies the binary alone, so it must need nothing more.
    let mut ldd = Command::new("ldd");
    ldd.arg(stampede_bin());
    let (code, stdout, stderr) = run_command(ldd, Duration::from_secs(20));
    assert_eq!(code, 0, "{stderr}");
    let allowed =
        ["linux-vdso.so", "libgcc_s.so", "libm.so", "libc.so", "ld-linux", "libpthread.so", "libdl.so", "librt.so"];
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(allowed.iter().any(|a| line.starts_with(a) || line.contains(&format!("/{a}"))), "needs {line}");
    }
}
