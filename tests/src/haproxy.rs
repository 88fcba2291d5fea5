//! A real haproxy in HTTP mode in front of named backends, on a free
//! loopback port, and what it counted per server (`show stat` on its stats
//! socket). Stopped on drop.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::{Process, free_port, run_command, which, write_file};

pub struct Haproxy {
    _process: Process,
    dir: tempfile::TempDir,
    pub address: String,
}

impl Haproxy {
    /// haproxy in HTTP mode, round robin over `servers` (name, address);
    /// WebSocket upgrades pass through as tunnels. `backend` lines go into
    /// the backend section as they are (`http-response set-header ...`).
    pub fn http(servers: &[(String, String)], backend: &[&str]) -> Self {
        assert!(which("haproxy").is_some(), "haproxy is not installed; deploy/test.sh installs it");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let socket = dir.path().join("haproxy.sock");
        let servers: String = servers.iter().map(|(name, address)| format!("  server {name} {address}\n")).collect();
        let extra: String = backend.iter().map(|line| format!("  {line}\n")).collect();
        let config = format!(
            "global\n  maxconn 4000\n  stats socket {} mode 600 level admin\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  timeout tunnel 1h\n\
             frontend front\n  bind 127.0.0.1:{port}\n  default_backend back\n\
             backend back\n  balance roundrobin\n{extra}{servers}",
            socket.display()
        );
        let path = write_file(dir.path(), "haproxy.cfg", &config);
        let mut check = std::process::Command::new("haproxy");
        check.args(["-c", "-f", &path]);
        let (code, out, err) = run_command(check, Duration::from_secs(20));
        assert_eq!(code, 0, "haproxy rejects its configuration: {out}{err}");
        let process = Process::start("haproxy", &which("haproxy").expect("haproxy"), &["-db", "-f", &path]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { _process: process, dir, address: format!("127.0.0.1:{port}") }
    }

    /// A column of `show stat` per server of the backend (`stot` for
    /// sessions, `req_tot` for HTTP requests, `bin`/`bout` for bytes).
    pub fn per_server(&self, column: &str) -> BTreeMap<String, u64> {
        let mut stream =
            std::os::unix::net::UnixStream::connect(self.dir.path().join("haproxy.sock")).expect("stats socket");
        stream.write_all(b"show stat\n").expect("ask");
        let mut csv = String::new();
        stream.read_to_string(&mut csv).expect("read");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().expect("header").trim_start_matches("# ").split(',').collect();
        let position = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("column {name}"));
        let (proxy, server, wanted) = (position("pxname"), position("svname"), position(column));
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > wanted && f[proxy] == "back" && f[server] != "BACKEND")
            .map(|f| (f[server].to_string(), f[wanted].parse().unwrap_or(0)))
            .collect()
    }

    /// Sessions per server (`stot`).
    pub fn sessions(&self) -> BTreeMap<String, u64> {
        self.per_server("stot")
    }
}
