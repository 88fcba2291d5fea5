//! Scenarios and runs as the end-to-end tests write and carry them out.
//!
//! [`ScenarioBuilder`] writes the YAML a user would (a KV workload against
//! the given endpoints unless told otherwise); [`RunBuilder`] is the one way
//! a test runs a scenario, locally (`stampede run`) or on a coordinator
//! (`stampede submit --wait`), and reads its JSON report.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::netns::Host;
use crate::{run_command, stampede_bin, write_file};

/// A scenario's YAML text, section by section.
#[derive(Debug, Clone)]
pub struct ScenarioBuilder {
    name: String,
    duration: String,
    warmup: Option<String>,
    agents: u32,
    kind: String,
    endpoints: Vec<String>,
    load: Vec<String>,
    workload: Vec<String>,
    thresholds: Vec<String>,
    extra: Vec<String>,
}

impl ScenarioBuilder {
    /// `name`: 3 s on one agent, a `kv` target, one connection, a KV
    /// workload over 1,000 keys.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            duration: "3s".to_string(),
            warmup: None,
            agents: 1,
            kind: "kv".to_string(),
            endpoints: Vec::new(),
            load: Vec::new(),
            workload: Vec::new(),
            thresholds: Vec::new(),
            extra: Vec::new(),
        }
    }

    pub fn duration(mut self, duration: &str) -> Self {
        self.duration = duration.to_string();
        self
    }

    pub fn warmup(mut self, warmup: &str) -> Self {
        self.warmup = Some(warmup.to_string());
        self
    }

    pub fn agents(mut self, agents: u32) -> Self {
        self.agents = agents;
        self
    }

    /// The target kind (`kv`, `redis`, `postgres`, ...).
    pub fn target(mut self, kind: &str) -> Self {
        self.kind = kind.to_string();
        self
    }

    pub fn endpoints<S: AsRef<str>>(mut self, endpoints: &[S]) -> Self {
        self.endpoints.extend(endpoints.iter().map(|e| e.as_ref().to_string()));
        self
    }

    /// A line of the `load` section, like `connections: 4`.
    pub fn load(mut self, line: &str) -> Self {
        self.load.push(line.to_string());
        self
    }

    /// A line of the `workload` section; without any, `kind: kv` and
    /// `keys: 1000`.
    pub fn workload(mut self, line: &str) -> Self {
        self.workload.push(line.to_string());
        self
    }

    pub fn threshold(mut self, expr: &str) -> Self {
        self.thresholds.push(expr.to_string());
        self
    }

    /// A top-level line, like `on_agent_loss: continue`.
    pub fn line(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    pub fn yaml(&self) -> String {
        let quoted: Vec<String> = self.endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        let mut text = format!("name: {}\nduration: {}\n", self.name, self.duration);
        if let Some(warmup) = &self.warmup {
            text.push_str(&format!("warmup: {warmup}\n"));
        }
        text.push_str(&format!(
            "agents: {}\ntarget:\n  kind: {}\n  endpoints: [{}]\nload:\n",
            self.agents,
            self.kind,
            quoted.join(", ")
        ));
        let section = |lines: &[String], default: &[&str]| -> String {
            let lines: Vec<String> =
                if lines.is_empty() { default.iter().map(|l| l.to_string()).collect() } else { lines.to_vec() };
            lines.iter().map(|l| format!("  {l}\n")).collect()
        };
        text.push_str(&section(&self.load, &["connections: 1"]));
        text.push_str("workload:\n");
        text.push_str(&section(&self.workload, &["kind: kv", "keys: 1000"]));
        if !self.thresholds.is_empty() {
            text.push_str("thresholds:\n");
            text.push_str(&self.thresholds.iter().map(|t| format!("  - {t}\n")).collect::<String>());
        }
        text.push_str(&self.extra.iter().map(|l| format!("{l}\n")).collect::<String>());
        text
    }
}

/// What a run did: its exit code, output and JSON report.
#[derive(Debug)]
pub struct RunOutcome {
    pub code: i32,
    /// The JSON report, or `Null` when none was written.
    pub report: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
}

/// How to carry out a scenario and read its report.
#[derive(Clone)]
pub struct RunBuilder<'h> {
    scenario: String,
    coordinator: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    host: Option<&'h Host>,
    timeout: Duration,
    files: Option<(PathBuf, String)>,
}

impl<'h> RunBuilder<'h> {
    /// Runs `scenario` (YAML text) with `stampede run`, within 90 s.
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_string(),
            coordinator: None,
            args: Vec::new(),
            env: Vec::new(),
            host: None,
            timeout: Duration::from_secs(90),
            files: None,
        }
    }

    /// Submits it to the coordinator at `url` and waits for its report
    /// (`stampede submit --wait`) instead.
    pub fn submit_to(mut self, url: &str) -> Self {
        self.coordinator = Some(url.to_string());
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

    /// Runs the command inside a lab host's network namespace.
    pub fn within(mut self, host: &'h Host) -> Self {
        self.host = Some(host);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Writes the scenario to `dir/scenario_file` and the report to
    /// `dir/report.json`, for the test to look at, instead of into a
    /// temporary directory.
    pub fn files_in(mut self, dir: impl Into<PathBuf>, scenario_file: &str) -> Self {
        self.files = Some((dir.into(), scenario_file.to_string()));
        self
    }

    /// Carries the run out and reads its report.
    pub fn go(self) -> RunOutcome {
        let temporary = tempfile::tempdir().expect("tempdir");
        let (dir, file) =
            self.files.clone().unwrap_or_else(|| (temporary.path().to_path_buf(), "scenario.yaml".into()));
        std::fs::create_dir_all(&dir).expect("a directory for the run's files");
        let path = write_file(&dir, &file, &self.scenario);
        let json = dir.join("report.json");
        let _ = std::fs::remove_file(&json);
        let mut command = match self.host {
            Some(host) => host.command(stampede_bin()),
            None => Command::new(stampede_bin()),
        };
        match &self.coordinator {
            None => command.args(["run", &path]),
            Some(url) => command.args(["submit", &path, "--coordinator", url, "--wait"]),
        };
        command.arg("--json").arg(&json).args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        let (code, stdout, stderr) = run_command(command, self.timeout);
        let report = std::fs::read_to_string(&json).ok().and_then(|text| serde_json::from_str(&text).ok());
        RunOutcome { code, report: report.unwrap_or(serde_json::Value::Null), stdout, stderr }
    }
}
