//! Coordinators and agents as the end-to-end tests start them: real
//! `stampede` processes. A coordinator binds the address it is given
//! (`127.0.0.1:0` unless a test needs a known one, for a restart on the
//! same port) and the harness reads the address it bound from its output,
//! so no port is picked and released before the process takes it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Process, stampede_bin};

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

/// How to start a coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorBuilder {
    name: String,
    listen: String,
    data_dir: PathBuf,
    http: bool,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
}

impl CoordinatorBuilder {
    /// A coordinator keeping its runs in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
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
        let mut command = Command::new(stampede_bin());
        command.args(["coordinator", "--listen", &self.listen, "--data-dir"]).arg(&self.data_dir);
        if self.http {
            command.args(["--http-listen", "127.0.0.1:0"]);
        }
        command.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        let stderr = match &self.log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("coordinator log")),
            None => Stdio::inherit(),
        };
        let process = Process::spawn_with_stderr(&self.name, command, stderr);
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

/// Starts an agent of the coordinator at `url` with the id `id`.
pub fn agent(url: &str, id: &str, extra: &[&str]) -> Process {
    let mut args = vec!["agent", "--coordinator", url, "--id", id];
    args.extend_from_slice(extra);
    Process::stampede(id, &args)
}
