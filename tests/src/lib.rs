//! Harness for Stampede's end-to-end tests: real `stampede` processes and
//! real services on loopback. Every process is killed when its handle drops,
//! so a failing test leaves nothing running.

pub mod browser;
pub mod cluster;
pub mod cratedb_standin;
pub mod disk;
pub mod etcd;
pub mod haproxy;
pub mod influx;
pub mod nats;
pub mod netns;
pub mod postgres;
pub mod redis_cluster;
pub mod scenario;
pub mod timescale_standin;
pub mod tmux;

pub use postgres::{Postgres, postgres_program};
pub use scenario::{RunBuilder, RunOutcome, ScenarioBuilder};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository's root (the tests crate is one of its folders).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root").to_path_buf()
}

/// The `stampede` binary next to the test executable (target/<profile>/).
pub fn stampede_bin() -> PathBuf {
    if let Ok(path) = std::env::var("STAMPEDE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let bin = dir.join("stampede");
    assert!(
        bin.exists(),
        "{} is missing; build it first with `cargo build -p stampede` (deploy/test.sh does)",
        bin.display()
    );
    bin
}

/// A child process that is killed on drop; its stdout lines are collected.
pub struct Process {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    pub fn start(name: &str, program: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(program);
        command.args(args);
        Self::spawn(name, command)
    }

    /// Starts a prepared command (stdout collected, stderr passed through).
    pub fn spawn(name: &str, command: Command) -> Self {
        Self::spawn_with_stderr(name, command, Stdio::inherit())
    }

    /// Starts a prepared command with its stderr sent to `stderr` (a log
    /// file, say), its stdout collected.
    pub fn spawn_with_stderr(name: &str, mut command: Command, stderr: impl Into<Stdio>) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { name: name.to_string(), child, lines }
    }

    /// Starts `stampede` with arguments.
    pub fn stampede(name: &str, args: &[&str]) -> Self {
        Self::start(name, &stampede_bin(), args)
    }

    /// Waits for a stdout line containing `needle`; None if the process
    /// ends its output (exits) or `timeout` passes first.
    pub fn try_wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        self.try_wait_for_line(needle, timeout)
            .unwrap_or_else(|| panic!("{} did not print `{needle}` within {timeout:?}", self.name))
    }

    /// The address at the end of the line announcing it ("... listening on ADDR").
    pub fn listening_address(&self) -> String {
        let line = self.wait_for_line("listening on ", Duration::from_secs(30));
        let rest = line.split("listening on ").nth(1).expect("address after 'listening on'");
        // "listening on ADDR, campaigning in etcd ..." with etcd.
        rest.split_whitespace().next().expect("address").trim_end_matches(',').to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit code once the process has exited (-1 for a signal), or
    /// `None` while it runs.
    pub fn exit_code(&mut self) -> Option<i32> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.code().unwrap_or(-1)),
            _ => None,
        }
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit;
    /// returns its exit code (None if it is still running or was killed by
    /// a signal).
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `stampede` to completion and returns (exit code, stdout, stderr).
pub fn run_stampede(args: &[&str], timeout: Duration) -> (i32, String, String) {
    run_stampede_env(args, &[], timeout)
}

/// [`run_stampede`] with extra environment variables.
pub fn run_stampede_env(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> (i32, String, String) {
    let mut command = Command::new(stampede_bin());
    command.args(args).envs(env.iter().copied());
    run_command(command, timeout)
}

/// Runs a command to completion within `timeout` (killed and a panic
/// after it); returns (exit code, stdout, stderr).
pub fn run_command(mut command: Command, timeout: Duration) -> (i32, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    // Read both pipes while waiting, so that a long output cannot block it.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            // What it printed before it was killed is the best clue to why.
            let tail = |text: String| {
                let from = (text.len().saturating_sub(6000)..text.len()).find(|&i| text.is_char_boundary(i));
                text[from.unwrap_or(text.len())..].to_string()
            };
            let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
            panic!(
                "{command:?} did not finish within {timeout:?}\n--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
                tail(out),
                tail(err)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code().unwrap_or(-1), out.join().unwrap_or_default(), err.join().unwrap_or_default())
}

/// A TCP port for a server that must be told its port (Redis, PostgreSQL,
/// etcd, Prometheus, an agent's health port, a dead address). Stampede's own
/// servers bind port 0 and print what they bound instead (see `cluster`).
///
/// A port bound and released from the kernel's ephemeral range could be
/// taken before the server binds it, by any process's outgoing connection
/// or port-0 bind. So the ports come from below that range, where the
/// kernel never picks one on its own, each handed out once per test
/// process (test binaries run one after the other), and a port some other
/// program already holds is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const LOW: u32 = 10_000;
    let span = ephemeral_low.saturating_sub(LOW).max(1000);
    // Processes that follow one another start at different places.
    let base = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let port = LOW + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(port).expect("ports below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no TCP port free between {LOW} and {ephemeral_low}")
}

/// A real `redis-server` on a free loopback port, stopped on drop.
pub fn start_redis() -> (Process, u16) {
    let program = which("redis-server").unwrap_or_else(|| {
        panic!("redis-server is not installed; deploy/test.sh installs it (apt-get install redis-server)")
    });
    let port = free_port();
    let port_text = port.to_string();
    let process = Process::start(
        "redis-server",
        &program,
        &["--port", &port_text, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
    );
    process.wait_for_line("Ready to accept connections", Duration::from_secs(20));
    (process, port)
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|path| path.is_file())
}

/// Calls per command from `INFO commandstats` (`cmdstat_get:calls=N,...`).
/// `address` is `host:port` or a `redis://` URL (with a password).
pub fn command_calls(address: &str, command: &str) -> u64 {
    let url = if address.contains("://") { address.to_string() } else { format!("redis://{address}/") };
    let client = redis::Client::open(url).expect("redis url");
    let mut connection = client.get_connection().expect("connect for INFO");
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut connection).expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|rest| rest.split(',').next().unwrap_or("0").trim().parse().expect("calls number"))
        .unwrap_or(0)
}

/// GET and SET calls a Redis or KV server processed (`INFO commandstats`).
pub fn get_set_calls(address: &str) -> u64 {
    command_calls(address, "get") + command_calls(address, "set")
}

/// Polls `stampede report RUN --json` until the run has ended; returns its
/// JSON report.
pub fn wait_for_report(url: &str, run_id: &str, within: Duration) -> serde_json::Value {
    wait_for_report_via(&["--coordinator", url], run_id, within)
}

/// [`wait_for_report`] with any way to reach the coordinator (`--etcd ...`).
pub fn wait_for_report_via(link: &[&str], run_id: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let mut args = vec!["report", run_id, "--json"];
        args.extend_from_slice(link);
        let (code, stdout, _) = run_stampede(&args, Duration::from_secs(30));
        if code == 0
            && let Ok(report) = serde_json::from_str(&stdout)
        {
            return report;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not end within {within:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `n` KV servers on loopback with node ids `kv-0..kv-{n-1}`, each with the
/// address it bound.
pub fn kv_servers(n: usize) -> Vec<(Process, String)> {
    (0..n)
        .map(|i| {
            let kv = cluster::KvServerBuilder::new(&format!("kv-{i}")).start();
            (kv.process, kv.address)
        })
        .collect()
}

/// The run id (`r-...`) that `stampede submit` printed.
pub fn run_id_in(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("r-"))
        .unwrap_or_else(|| panic!("no run id in {stdout}"))
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '-')
        .to_string()
}

/// `stampede run` on `scenario` with `args` and `env`, within `timeout`:
/// [`scenario::RunBuilder`] for the common case.
pub fn run_local(scenario: &str, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> RunOutcome {
    let mut run = RunBuilder::new(scenario).args(args).timeout(timeout);
    for (name, value) in env {
        run = run.env(name, value);
    }
    run.go()
}

/// Writes `text` to a file in `dir` and returns its path as a string.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.to_string_lossy().into_owned()
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all
/// written as PEM files into `dir`: ca.pem, server.pem/server.key,
/// client.pem/client.key.
pub fn certificates(dir: &Path) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Names of their own: OpenSSL (curl) takes a certificate whose issuer
    // equals its subject for self-signed.
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Stampede test CA");
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    write_file(dir, "ca.pem", &ca.pem());
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    for (name, names) in [("server", vec!["127.0.0.1".to_string(), "localhost".to_string()]), ("client", vec![])] {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        write_file(dir, &format!("{name}.pem"), &cert.pem());
        write_file(dir, &format!("{name}.key"), &key.serialize_pem());
    }
}

pub(crate) fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `GET path` on `addr` (`host:port`) over plain HTTP/1.1, with a bearer
/// token when given: (status, body).
pub fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
