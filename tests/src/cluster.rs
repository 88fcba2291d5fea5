//! Coordinators, agents and KV servers as the end-to-end tests start them:
//! real `stampede` processes, on this host or inside a lab host's network
//! namespace. A coordinator or KV server binds the address it is given
//! (`127.0.0.1:0` unless a test needs a known one, for a restart on the
//! same port) and the harness reads the address it bound from its output,
//! so no port is picked and released before the process takes it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::netns::Host;
use crate::{Process, stampede_bin};

/// The `stampede` command, inside `host`'s namespace when one is given.
fn stampede_command(host: Option<&Host>) -> Command {
    match host {
        Some(host) => host.command(stampede_bin()),
        None => Command::new(stampede_bin()),
    }
}

/// Where a process's stderr goes: a file, or the test's own output.
fn stderr_to(log: Option<&PathBuf>, name: &str) -> Stdio {
    match log {
        Some(path) => {
            Stdio::from(std::fs::File::create(path).unwrap_or_else(|e| panic!("{name} log {}: {e}", path.display())))
        }
        None => Stdio::inherit(),
    }
}

/// A running coordinator.
pub struct Coordinator {
    pub process: Process,
    /// `host:port` of its gRPC port, as bound.
    pub address: String,
    /// `http://host:port`.
    pub url: String,
    /// `host:port` of its HTTP port, with `--http-listen`.
    pub http: Option<String>,
}

impl Coordinator {
    /// Waits until it answers calls (it leads, its store is open).
    pub fn wait_until_leading(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (code, stdout, stderr) =
                crate::run_stampede(&["runs", "--coordinator", &self.url], Duration::from_secs(10));
            if code == 0 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{} does not lead: {stdout}{stderr}", self.url);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// How to start a coordinator.
#[derive(Clone)]
pub struct CoordinatorBuilder<'h> {
    host: Option<&'h Host>,
    name: String,
    listen: String,
    data_dir: PathBuf,
    http: bool,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
}

impl<'h> CoordinatorBuilder<'h> {
    /// A coordinator keeping its runs in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            host: None,
            name: "coordinator".to_string(),
            listen: "127.0.0.1:0".to_string(),
            data_dir: data_dir.into(),
            http: false,
            args: Vec::new(),
            env: Vec::new(),
            log: None,
        }
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Runs it inside a lab host's network namespace (give it a `listen`
    /// address on the host).
    pub fn within(mut self, host: &'h Host) -> Self {
        self.host = Some(host);
        self
    }

    /// A known address (a coordinator restarted where its agents look).
    pub fn listen(mut self, address: &str) -> Self {
        self.listen = address.to_string();
        self
    }

    /// Serves HTTP (`/metrics`, `/healthz`) on a port of its own.
    pub fn http(mut self) -> Self {
        self.http = true;
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends its log (stderr) to `path` instead of the test's output.
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// Starts it and waits until it listens.
    pub fn start(self) -> Coordinator {
        let mut command = stampede_command(self.host);
        command.args(["coordinator", "--listen", &self.listen, "--data-dir"]).arg(&self.data_dir);
        if self.http {
            command.args(["--http-listen", "127.0.0.1:0"]);
        }
        command.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        let process = Process::spawn_with_stderr(&self.name, command, stderr_to(self.log.as_ref(), &self.name));
        // The HTTP port is announced before the gRPC one.
        let http = self.http.then(|| {
            let line = process.wait_for_line("serving HTTP on ", Duration::from_secs(30));
            let rest = line.split("serving HTTP on ").nth(1).expect("address");
            rest.split_whitespace().next().expect("address").to_string()
        });
        let address = process.listening_address();
        Coordinator { process, url: format!("http://{address}"), address, http }
    }
}

/// How to start an agent.
#[derive(Clone)]
pub struct AgentBuilder<'h> {
    host: Option<&'h Host>,
    id: String,
    coordinator: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
}

impl<'h> AgentBuilder<'h> {
    /// An agent with the id `id`; give it a `coordinator` or `--etcd` args.
    pub fn new(id: &str) -> Self {
        Self { host: None, id: id.to_string(), coordinator: None, args: Vec::new(), env: Vec::new(), log: None }
    }

    /// The coordinator it connects to (`http://host:port`).
    pub fn coordinator(mut self, url: &str) -> Self {
        self.coordinator = Some(url.to_string());
        self
    }

    /// Runs it inside a lab host's network namespace.
    pub fn within(mut self, host: &'h Host) -> Self {
        self.host = Some(host);
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends its log (stderr) to `path` instead of the test's output.
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// Starts it (it connects, and reconnects, on its own).
    pub fn start(self) -> Process {
        let mut command = stampede_command(self.host);
        command.args(["agent", "--id", &self.id]);
        if let Some(url) = &self.coordinator {
            command.args(["--coordinator", url]);
        }
        command.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        Process::spawn_with_stderr(&self.id, command, stderr_to(self.log.as_ref(), &self.id))
    }
}

/// Starts an agent of the coordinator at `url` with the id `id`.
pub fn agent(url: &str, id: &str, extra: &[&str]) -> Process {
    AgentBuilder::new(id).coordinator(url).args(extra).start()
}

/// A running KV server.
pub struct KvServer {
    pub process: Process,
    /// `host:port` as bound.
    pub address: String,
}

/// How to start `stampede kv-server`.
#[derive(Clone)]
pub struct KvServerBuilder<'h> {
    host: Option<&'h Host>,
    node_id: String,
    listen: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl<'h> KvServerBuilder<'h> {
    /// A server reporting `node_id`, on a port of the kernel's choosing.
    pub fn new(node_id: &str) -> Self {
        Self {
            host: None,
            node_id: node_id.to_string(),
            listen: "127.0.0.1:0".to_string(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A known address (a server restarted where its clients look).
    pub fn listen(mut self, address: &str) -> Self {
        self.listen = address.to_string();
        self
    }

    /// Runs it inside a lab host's network namespace.
    pub fn within(mut self, host: &'h Host) -> Self {
        self.host = Some(host);
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts it and waits until it listens.
    pub fn start(self) -> KvServer {
        let mut command = stampede_command(self.host);
        command.args(["kv-server", "--listen", &self.listen, "--node-id", &self.node_id]);
        command.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        let process = Process::spawn(&self.node_id, command);
        let address = process.listening_address();
        KvServer { process, address }
    }
}
