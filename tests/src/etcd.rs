//! A real etcd server on loopback ports, for the failover tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Process, free_port, run_command, which};

/// An etcd member with its own data directory, killed on drop.
pub struct Etcd {
    _process: Process,
    _data: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

fn program(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} is not installed; deploy/test.sh installs it (apt-get install etcd-server etcd-client)")
    })
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts etcd with its client URL on `port`.
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    /// Starts etcd with its client URL on `port` and `extra` options (a
    /// `--quota-backend-bytes`, say).
    pub fn start_with(port: u16, extra: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let data_dir = data.path().join("etcd");
        let mut command = Command::new(program("etcd"));
        command
            .args(["--name", "stampede-test", "--data-dir"])
            .arg(&data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("stampede-test={peer}")])
            .args(extra);
        let log = std::fs::File::create(data.path().join("etcd.log")).expect("etcd log");
        let process = Process::spawn_with_stderr("etcd", command, log);
        let etcd = Self { _process: process, _data: data, url: client };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, _, _) = etcd.etcdctl(&["endpoint", "health"]);
            if code == 0 {
                return etcd;
            }
            assert!(Instant::now() < deadline, "etcd at {} did not become healthy within 30s", etcd.url);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `etcdctl` (API v3) against this member.
    pub fn etcdctl(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = Command::new(program("etcdctl"));
        command.env("ETCDCTL_API", "3").args(["--endpoints", &self.url, "--dial-timeout", "2s"]).args(args);
        run_command(command, Duration::from_secs(15))
    }

    /// The size of the database file in bytes (`dbSize` of `etcdctl
    /// endpoint status`).
    pub fn db_size(&self) -> u64 {
        let (code, stdout, stderr) = self.etcdctl(&["endpoint", "status", "-w", "json"]);
        assert_eq!(code, 0, "etcdctl endpoint status: {stderr}");
        let status: serde_json::Value = serde_json::from_str(&stdout).expect("JSON status");
        status[0]["Status"]["dbSize"].as_u64().unwrap_or_else(|| panic!("no dbSize in {stdout}"))
    }

    /// The keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let (code, stdout, stderr) = self.etcdctl(&["get", "--prefix", "--keys-only", prefix]);
        assert_eq!(code, 0, "etcdctl get: {stderr}");
        stdout.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }
}
