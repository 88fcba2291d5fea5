//! A real Redis Cluster on loopback: `redis-server` processes with cluster
//! mode on, joined by `redis-cli --cluster create` (masters only), stopped
//! when dropped.

use std::time::{Duration, Instant};

use crate::{Process, run_command, which};

pub struct RedisCluster {
    /// `127.0.0.1:port` of each master, in the order they were started.
    pub addresses: Vec<String>,
    _servers: Vec<Process>,
    _dir: tempfile::TempDir,
}

/// A port (see [`crate::free_port`]) whose cluster bus port (port + 10000)
/// is free as well and, like it, below the kernel's ephemeral range.
fn cluster_port() -> u16 {
    // free_port walks its range from a place that depends on the process id;
    // a walk that starts above 22000 reaches the low ports only after
    // wrapping, some 13,000 ports on.
    for _ in 0..30_000 {
        let port = crate::free_port();
        if port < 22_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no port with a free cluster bus port")
}

fn query(address: &str, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://{address}/"))?;
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(5))?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(&mut connection)
}

/// The text reply of a command (INFO, CLUSTER INFO).
pub fn text(address: &str, args: &[&str]) -> String {
    let value = query(address, args).unwrap_or_else(|e| panic!("{args:?} on {address}: {e}"));
    redis::from_redis_value(value).unwrap_or_else(|e| panic!("{args:?} on {address}: {e}"))
}

/// The integer reply of a command (CLIENT KILL, DBSIZE).
pub fn integer(address: &str, args: &[&str]) -> i64 {
    let value = query(address, args).unwrap_or_else(|e| panic!("{args:?} on {address}: {e}"));
    redis::from_redis_value(value).unwrap_or_else(|e| panic!("{args:?} on {address}: {e}"))
}

impl RedisCluster {
    /// Starts `masters` nodes and waits until every one says
    /// `cluster_state:ok`.
    pub fn start(masters: usize) -> Self {
        let program = which("redis-server").unwrap_or_else(|| {
            panic!("redis-server is not installed; deploy/test.sh installs it (apt-get install redis-server)")
        });
        assert!(which("redis-cli").is_some(), "redis-cli is not installed; deploy/test.sh installs redis-tools");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut servers = Vec::new();
        let mut addresses = Vec::new();
        for _ in 0..masters {
            let port = cluster_port().to_string();
            let config = dir.path().join(format!("nodes-{port}.conf"));
            let config = config.to_string_lossy();
            let dir_arg = dir.path().to_string_lossy();
            #[rustfmt::skip]
            let args = [
                "--port", &port, "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", &config, "--dir", &dir_arg, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--cluster-node-timeout", "2000",
            ];
            let server = Process::start("redis-server (cluster)", &program, &args);
            server.wait_for_line("Ready to accept connections", Duration::from_secs(20));
            servers.push(server);
            addresses.push(format!("127.0.0.1:{port}"));
        }
        let mut create = std::process::Command::new("redis-cli");
        create.args(["--cluster", "create"]).args(&addresses).args(["--cluster-replicas", "0", "--cluster-yes"]);
        let (code, out, err) = run_command(create, Duration::from_secs(60));
        assert_eq!(code, 0, "redis-cli --cluster create failed:\n{out}\n{err}");
        let deadline = Instant::now() + Duration::from_secs(30);
        for address in &addresses {
            while !text(address, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "{address} did not reach cluster_state:ok");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Self { addresses, _servers: servers, _dir: dir }
    }

    /// The node identity Stampede gives a master (`redis-` and the first 12
    /// characters of its run id).
    pub fn identity(address: &str) -> String {
        let info = text(address, &["INFO", "server"]);
        let run_id = info.lines().find_map(|l| l.strip_prefix("run_id:")).expect("run_id in INFO server").trim();
        format!("redis-{}", &run_id[..12])
    }
}
