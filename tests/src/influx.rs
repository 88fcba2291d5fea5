//! A real InfluxDB 1.x (`influxd` from Debian) on loopback ports, with its
//! own directories, and its own account of what it holds (`count(*)`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Process, free_port, which};

/// One `influxd`, stopped on drop.
pub struct Influx {
    pub process: Process,
    _dir: tempfile::TempDir,
    /// `127.0.0.1:PORT` of its HTTP API.
    pub address: String,
}

fn program() -> PathBuf {
    which("influxd")
        .unwrap_or_else(|| panic!("influxd is not installed; deploy/test.sh installs it (apt-get install influxdb)"))
}

/// A request to `address` over HTTP/1.0 (never chunked): status and body.
pub fn request(address: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap_or_else(|e| panic!("connect to {address}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n", body.len())
        .expect("send");
    stream.write_all(body).expect("send body");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Influx {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// With lines added to the `[data]` section (a tiny
    /// `cache-max-memory-size`, say, so that writes fail with HTTP 500).
    pub fn start_with(data: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (http, rpc) = (free_port(), free_port());
        let root = dir.path().display();
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{root}/meta\"\n\
             [data]\n  dir = \"{root}/data\"\n  wal-dir = \"{root}/wal\"\n  query-log-enabled = false\n{data}\n\
             [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
        );
        std::fs::write(dir.path().join("influxdb.conf"), config).expect("config");
        let process = Self::launch(&dir);
        let influx = Self { process, _dir: dir, address: format!("127.0.0.1:{http}") };
        influx.wait_ready();
        influx
    }

    fn launch(dir: &tempfile::TempDir) -> Process {
        let mut command = Command::new(program());
        command.arg("-config").arg(dir.path().join("influxdb.conf"));
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("influxd.log")).expect("log");
        Process::spawn_with_stderr("influxd", command, log)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&self.address).is_err()
            || request(&self.address, "GET", "/ping", b"").0 != 204
        {
            assert!(Instant::now() < deadline, "influxd did not answer /ping within 30s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server (every connection ends) and starts it again on the
    /// same port with the same data.
    pub fn restart(&mut self) {
        self.process.terminate(Duration::from_secs(15));
        self.process = Self::launch(&self._dir);
        self.wait_ready();
    }

    /// Runs InfluxQL in `db`; its JSON answer.
    pub fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let path = format!("/query?db={}&q={}", encode(db), encode(q));
        let (status, body) = request(&self.address, "POST", &path, b"");
        assert_eq!(status, 200, "{q}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{q}: {e}: {body}"))
    }

    /// Writes line protocol into `db`; the status and body.
    pub fn write(&self, db: &str, lines: &str) -> (u16, String) {
        request(&self.address, "POST", &format!("/write?db={}", encode(db)), lines.as_bytes())
    }

    /// InfluxDB's own `SELECT count(*)` of `measurement` in `db`: one count
    /// per field (0 when there are no points).
    pub fn counts(&self, db: &str, measurement: &str) -> Vec<u64> {
        let answer = self.query(db, &format!("SELECT count(*) FROM \"{measurement}\""));
        let row = &answer["results"][0]["series"][0]["values"][0];
        row.as_array()
            .map(|values| values.iter().skip(1).filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default()
    }
}
