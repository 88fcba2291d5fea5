//! Real `nats-server` processes on loopback ports: one server (with
//! JetStream when asked) or a cluster of three joined by routes, and their
//! own accounts of what they served from the monitoring port.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Process, free_port, which};

/// One NATS server, stopped on drop.
pub struct NatsServer {
    pub process: Process,
    _store: tempfile::TempDir,
    args: Vec<String>,
    pub name: String,
    /// `127.0.0.1:PORT` for clients.
    pub address: String,
    /// `127.0.0.1:PORT` of the monitoring endpoint.
    pub monitor: String,
}

/// What one server counted for the client connections it had (open and
/// closed) whose name starts with `stampede-agent`: messages received from
/// them (publishes, requests, replies) and sent to them (deliveries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    pub in_msgs: u64,
    pub out_msgs: u64,
    /// Payload bytes of those messages.
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub connections: u64,
}

fn program() -> PathBuf {
    let packaged = PathBuf::from("/usr/sbin/nats-server");
    which("nats-server").or_else(|| packaged.is_file().then_some(packaged)).unwrap_or_else(|| {
        panic!("nats-server is not installed; deploy/test.sh installs it (apt-get install nats-server)")
    })
}

/// `GET path` from a monitoring port over HTTP/1.0 (so the answer is never
/// chunked); the body.
pub fn monitor_get(monitor: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(monitor).unwrap_or_else(|e| panic!("connect to {monitor}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {monitor}\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

impl NatsServer {
    /// A single server; `jetstream` turns JetStream on with a store of its own.
    pub fn start(name: &str, jetstream: bool) -> Self {
        Self::start_with(name, jetstream, &[])
    }

    /// A single server with `config` (nats-server's configuration format)
    /// beside the ports and name given on its command line.
    pub fn start_configured(name: &str, config: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("stampede-nats-{name}-{}.conf", std::process::id()));
        std::fs::write(&dir, config).expect("nats config");
        Self::start_with(name, false, &["-c".to_string(), dir.to_string_lossy().into_owned()])
    }

    fn start_with(name: &str, jetstream: bool, extra: &[String]) -> Self {
        let store = tempfile::tempdir().expect("tempdir");
        let (port, monitor) = (free_port(), free_port());
        let mut args: Vec<String> =
            ["-a", "127.0.0.1", "-p", &port.to_string(), "-m", &monitor.to_string(), "-n", name]
                .iter()
                .map(|a| a.to_string())
                .collect();
        args.extend(extra.iter().cloned());
        if jetstream {
            args.extend(["-js".to_string(), "-sd".to_string(), store.path().to_string_lossy().into_owned()]);
        }
        let process = Self::launch(name, &args, &store);
        let server = Self {
            process,
            _store: store,
            args,
            name: name.to_string(),
            address: format!("127.0.0.1:{port}"),
            monitor: format!("127.0.0.1:{monitor}"),
        };
        server.wait_healthy();
        server
    }

    fn launch(name: &str, args: &[String], store: &tempfile::TempDir) -> Process {
        let mut command = Command::new(program());
        command.args(args);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(store.path().join(format!("{name}.log")))
            .expect("nats log");
        Process::spawn_with_stderr("nats-server", command, log)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&self.monitor).is_err()
            || !monitor_get(&self.monitor, "/healthz").contains("ok")
        {
            assert!(Instant::now() < deadline, "nats-server {} did not answer /healthz within 20s", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (every client loses its connection) and starts it
    /// again on the same ports.
    pub fn restart(&mut self) {
        self.process.terminate(Duration::from_secs(10));
        self.process = Self::launch(&self.name, &self.args, &self._store);
        self.wait_healthy();
    }

    /// Waits until `n` of Stampede's connections hold subscriptions (its
    /// listeners, connected again after a restart).
    pub fn wait_for_subscribed(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let connz = self.json("/connz");
            let subscribed = connz["connections"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    c["name"].as_str().unwrap_or_default().starts_with("stampede-agent")
                        && c["subscriptions"].as_u64().unwrap_or(0) > 0
                })
                .count();
            if subscribed >= n {
                return;
            }
            assert!(Instant::now() < deadline, "{}: {subscribed} of {n} listeners subscribed: {connz}", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Three servers `n1`, `n2`, `n3` routed to each other, returned once
    /// every one has routes to the other two.
    pub fn cluster() -> Vec<Self> {
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let all = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let servers: Vec<Self> = routes
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let extra = [
                    "--cluster_name".to_string(),
                    "stampede-test".to_string(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".to_string(),
                    all.clone(),
                ];
                Self::start_with(&format!("n{}", i + 1), false, &extra)
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        for server in &servers {
            while server.routes() < 2 {
                assert!(Instant::now() < deadline, "{} did not route to the other two within 30s", server.name);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        servers
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let body = monitor_get(&self.monitor, path);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{} {path}: {e}: {body}", self.name))
    }

    /// Routes this server has to others (`/routez`).
    pub fn routes(&self) -> u64 {
        self.json("/routez")["num_routes"].as_u64().unwrap_or(0)
    }

    /// What this server counted for Stampede's client connections, open
    /// and closed (`/connz?state=all`).
    pub fn served(&self) -> Served {
        let connz = self.json("/connz?state=all&limit=100000");
        let mut served = Served::default();
        for connection in connz["connections"].as_array().into_iter().flatten() {
            if !connection["name"].as_str().unwrap_or_default().starts_with("stampede-agent") {
                continue;
            }
            served.in_msgs += connection["in_msgs"].as_u64().unwrap_or(0);
            served.out_msgs += connection["out_msgs"].as_u64().unwrap_or(0);
            served.in_bytes += connection["in_bytes"].as_u64().unwrap_or(0);
            served.out_bytes += connection["out_bytes"].as_u64().unwrap_or(0);
            served.connections += 1;
        }
        served
    }

    /// `slow_consumers` of `/varz`.
    pub fn slow_consumers(&self) -> u64 {
        self.json("/varz")["slow_consumers"].as_u64().unwrap_or(0)
    }

    /// Messages the JetStream stream `name` holds (`/jsz?streams=true`).
    pub fn stream_messages(&self, name: &str) -> u64 {
        let jsz = self.json("/jsz?streams=true");
        for account in jsz["account_details"].as_array().into_iter().flatten() {
            for stream in account["stream_detail"].as_array().into_iter().flatten() {
                if stream["name"] == name {
                    return stream["state"]["messages"].as_u64().unwrap_or(0);
                }
            }
        }
        panic!("{} has no stream {name}: {jsz}", self.name)
    }
}
