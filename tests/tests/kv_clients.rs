//! The KV server with the clients users point at it: `redis-cli`,
//! `redis-benchmark`, the Python `redis` package (the redis crate is in the
//! server's own tests), and `--nodes` for cluster and load-balancer setups.

use std::process::Command;
use std::time::Duration;

use stampede_tests::cluster::KvServerBuilder;
use stampede_tests::{Process, command_calls, which};

fn kv_server(node_id: &str, args: &[&str]) -> (Process, String) {
    let server = KvServerBuilder::new(node_id).args(args).start();
    (server.process, server.address)
}

fn tool(name: &str) -> std::path::PathBuf {
    which(name).unwrap_or_else(|| panic!("{name} is not installed; deploy/test.sh installs it (redis-tools)"))
}

fn redis_cli(port: &str, args: &[&str]) -> String {
    let output =
        Command::new(tool("redis-cli")).args(["-h", "127.0.0.1", "-p", port]).args(args).output().expect("redis-cli");
    assert!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim_end().to_string()
}

fn port_of(address: &str) -> &str {
    address.rsplit(':').next().expect("port")
}

#[test]
fn redis_cli_gets_redis_answers() {
    let (_server, address) = kv_server("kv-cli", &[]);
    let port = port_of(&address);
    assert_eq!(redis_cli(port, &["PING"]), "PONG");
    assert_eq!(redis_cli(port, &["SET", "greeting", "hello world"]), "OK");
    assert_eq!(redis_cli(port, &["GET", "greeting"]), "hello world");
    assert_eq!(redis_cli(port, &["RPUSH", "l", "a", "b"]), "2");
    assert_eq!(redis_cli(port, &["LRANGE", "l", "0", "-1"]), "a\nb");
    assert_eq!(redis_cli(port, &["HSET", "h", "f", "v"]), "1");
    assert_eq!(redis_cli(port, &["HGETALL", "h"]), "f\nv");
    assert_eq!(redis_cli(port, &["GET", "missing"]), "");
    assert_eq!(redis_cli(port, &["DBSIZE"]), "3");
    assert!(redis_cli(port, &["INFO", "server"]).contains("node_id:kv-cli"));
    let wrong = redis_cli(port, &["LPUSH", "greeting", "x"]);
    assert!(wrong.starts_with("WRONGTYPE"), "{wrong}");
    // Commands typed on standard input, as an interactive user would.
    let output = Command::new(tool("redis-cli"))
        .args(["-h", "127.0.0.1", "-p", port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(b"INCR counter\nINCR counter\nECHO done\n")?;
            child.wait_with_output()
        })
        .expect("redis-cli with stdin");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim_end(), "1\n2\ndone");
}

#[test]
fn redis_cli_authenticates() {
    let (_server, address) = kv_server("kv-0", &["--requirepass", "pw"]);
    let port = port_of(&address);
    assert!(redis_cli(port, &["GET", "k"]).starts_with("NOAUTH"));
    assert_eq!(redis_cli(port, &["--no-auth-warning", "-a", "pw", "SET", "k", "v"]), "OK");
}

#[test]
fn redis_benchmark_default_tests_on_supported_commands_complete_without_errors() {
    let (_server, address) = kv_server("kv-0", &[]);
    let port = port_of(&address);
    let tests = "ping,set,get,incr,lpush,rpush,lpop,rpop,hset,lrange,mset";
    let output = Command::new(tool("redis-benchmark"))
        .args(["-h", "127.0.0.1", "-p", port, "-n", "2000", "-c", "20", "-r", "1000", "-t", tests, "--csv"])
        .output()
        .expect("redis-benchmark");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(!stderr.contains("Error") && !stderr.contains("ERR"), "{stderr}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with('"') && !l.starts_with("\"test\"")).collect();
    for expected in [
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "HSET",
        "LRANGE_100",
        "LRANGE_600",
        "MSET",
    ] {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("\"{expected}")))
            .unwrap_or_else(|| panic!("no {expected} row in:\n{stdout}"));
        let rps: f64 = row.split(',').nth(1).expect("rps").trim_matches('"').parse().expect("number");
        assert!(rps > 0.0, "{row}");
    }
    // The server counted what the benchmark sent.
    assert!(command_calls(&address, "set") >= 2000);
    assert!(command_calls(&address, "lrange") >= 4 * 2000);
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

#[test]
fn a_busy_polling_server_answers_and_sleeps_when_traffic_stops() {
    let (server, address) = kv_server("kv-0", &["--busy-poll", "200us"]);
    let port = port_of(&address);
    let output = Command::new(tool("redis-benchmark"))
        .args(["-h", "127.0.0.1", "-p", port, "-n", "20000", "-c", "20", "-r", "1000", "-t", "set,get", "--csv"])
        .output()
        .expect("redis-benchmark");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(command_calls(&address, "get") >= 20000);
    // Spinning for ever would use a whole core; a sleeping server nearly none.
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(server.pid()) - before;
    assert!(used < 0.2, "the idle server used {used:.2} s of CPU in 2 s");
    assert_eq!(redis_cli(port, &["PING"]), "PONG", "it wakes up for the next request");
}

#[test]
fn a_busy_poll_window_without_a_unit_is_refused() {
    let (code, _, stderr) = stampede_tests::run_stampede(
        &["kv-server", "--listen", "127.0.0.1:0", "--busy-poll", "50"],
        Duration::from_secs(20),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--busy-poll") && stderr.contains("has no unit"), "{stderr}");
}

#[test]
fn the_python_redis_package_works_against_it() {
    let (_server, address) = kv_server("kv-py", &[]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/kv_client_test.py");
    let output = Command::new("python3").arg(&script).arg(&address).output().expect("python3");
    assert!(
        output.status.success(),
        "python redis client failed (deploy/test.sh installs the package):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn nodes_start_several_servers_with_their_own_ids() {
    // `free_port` hands out ports one after the other, so the two after it
    // are usually free too; when another program holds one, the server
    // stops before announcing any node, and the test tries other ports.
    let (server, first) = (0..5)
        .find_map(|_| {
            let base_text = stampede_tests::free_port().to_string();
            let server = Process::stampede("kv-nodes", &["kv-server", "--nodes", "3", "--base-port", &base_text]);
            server.try_wait_for_line("kv-0 listening on", Duration::from_secs(20)).map(|line| (server, line))
        })
        .expect("three nodes on consecutive free ports within five tries");
    for i in 0..3u16 {
        let line = match i {
            0 => first.clone(),
            _ => server.wait_for_line(&format!("kv-{i} listening on"), Duration::from_secs(20)),
        };
        let address = line.rsplit(' ').next().expect("address");
        let info = redis_cli(port_of(address), &["INFO", "server"]);
        assert!(info.contains(&format!("node_id:kv-{i}")), "{info}");
    }
}
