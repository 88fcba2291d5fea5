//! The scenario: what a run does. Parsed from YAML with unknown fields
//! rejected, then validated into typed structs. Every error names the field
//! and, where it can be found, its line.

use std::time::Duration;

use serde::Deserialize;

use crate::locate::{locate, parse_path};
use crate::threshold::Threshold;
use crate::units::{parse_duration, parse_rate, parse_size};

/// One problem in a scenario, with the field it concerns and its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioIssue {
    pub field: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ScenarioIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
        }
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in a scenario (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub issues: Vec<ScenarioIssue>,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.issues.iter().map(ToString::to_string).collect();
        write!(f, "invalid scenario: {}", lines.join("; "))
    }
}

// ------------------------------------------------------------ the file format

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: Option<String>,
    duration: Scalar,
    #[serde(default)]
    warmup: Option<Scalar>,
    #[serde(default)]
    agents: Option<u32>,
    target: RawTarget,
    #[serde(default)]
    load: RawLoad,
    workload: RawWorkload,
    #[serde(default)]
    thresholds: Vec<String>,
}

/// A YAML scalar that may be written as a number or a string (`100`, `1KiB`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Number(f64),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Self::Number(n) => format!("{n}"),
            Self::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: TargetKind,
    #[serde(default)]
    endpoints: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    #[serde(default)]
    model: LoadModelKind,
    #[serde(default)]
    connections: Option<u32>,
    #[serde(default)]
    pipeline: Option<u32>,
    #[serde(default)]
    rate: Option<Scalar>,
    #[serde(default)]
    arrival: Option<Arrival>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LoadModelKind {
    #[default]
    Closed,
    Open,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RawWorkload {
    Kv(RawKvWorkload),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKvWorkload {
    #[serde(default)]
    read_ratio: Option<f64>,
    #[serde(default)]
    keys: Option<u64>,
    #[serde(default)]
    key_distribution: Option<KeyDistributionKind>,
    #[serde(default)]
    zipf_exponent: Option<f64>,
    #[serde(default)]
    value_size: Option<Scalar>,
    #[serde(default)]
    key_prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyDistributionKind {
    Uniform,
    Zipfian,
}

// ------------------------------------------------------------ validated model

/// The kind of database a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Stampede's built-in RESP KV server.
    Kv,
    /// A Redis server.
    Redis,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kv => "kv",
            Self::Redis => "redis",
        }
    }
}

/// How request start times are spaced in the open model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    Uniform,
    Poisson,
}

/// The load model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadModel {
    /// Each pipeline slot sends its next request as soon as the last answered.
    Closed,
    /// A total arrival rate (ops/s) split over slots; latency is measured
    /// from each request's intended start.
    Open { rate: f64, arrival: Arrival },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub model: LoadModel,
    /// Connections over all agents.
    pub connections: u32,
    /// Requests in flight per connection.
    pub pipeline: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDistribution {
    Uniform,
    Zipfian { exponent: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct KvWorkload {
    pub read_ratio: f64,
    pub keys: u64,
    pub key_distribution: KeyDistribution,
    pub value_size: u64,
    pub key_prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Kv(KvWorkload),
}

impl Workload {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kv(_) => "kv",
        }
    }

    /// The operations this workload produces, as named in reports.
    pub fn operations(&self) -> &'static [&'static str] {
        match self {
            Self::Kv(_) => &["get", "set"],
        }
    }

    /// Size of the key space that the scheduler splits over agents.
    pub fn key_space(&self) -> u64 {
        match self {
            Self::Kv(kv) => kv.keys,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub kind: TargetKind,
    /// `host:port` addresses. Empty for `kv` means the embedded server.
    pub endpoints: Vec<String>,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub duration: Duration,
    pub warmup: Duration,
    /// Agents the run needs before it starts.
    pub agents: u32,
    pub target: Target,
    pub load: Load,
    pub workload: Workload,
    pub thresholds: Vec<Threshold>,
}

pub const MAX_CONNECTIONS: u32 = 100_000;
pub const MAX_PIPELINE: u32 = 1024;
pub const MAX_VALUE_SIZE: u64 = 64 * 1024 * 1024;
pub const MAX_AGENTS: u32 = 10_000;

struct Checker<'a> {
    text: &'a str,
    issues: Vec<ScenarioIssue>,
}

impl Checker<'_> {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.issues.push(ScenarioIssue {
            field: field.to_string(),
            line: locate(self.text, &parse_path(field)),
            column: None,
            message: message.into(),
        });
    }
}

impl Scenario {
    /// Parses and validates scenario text.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario = serde_yaml::from_str(text).map_err(|error| {
            let location = error.location();
            ScenarioError {
                issues: vec![ScenarioIssue {
                    field: String::new(),
                    line: location.as_ref().map(|l| l.line()),
                    column: location.as_ref().map(|l| l.column()),
                    message: strip_location(&error.to_string()),
                }],
            }
        })?;
        let mut check = Checker { text, issues: Vec::new() };
        let scenario = validate(raw, &mut check);
        if check.issues.is_empty() { Ok(scenario) } else { Err(ScenarioError { issues: check.issues }) }
    }

    /// Total operations per second offered in the open model.
    pub fn rate(&self) -> Option<f64> {
        match self.load.model {
            LoadModel::Open { rate, .. } => Some(rate),
            LoadModel::Closed => None,
        }
    }
}

fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn validate(raw: RawScenario, check: &mut Checker<'_>) -> Scenario {
    if raw.name.trim().is_empty() {
        check.fail("name", "must not be empty");
    }
    let duration = match parse_duration(&raw.duration.text()) {
        Ok(d) if d.is_zero() => {
            check.fail("duration", "must be longer than 0s");
            d
        }
        Ok(d) => d,
        Err(e) => {
            check.fail("duration", e.0);
            Duration::ZERO
        }
    };
    let warmup = match raw.warmup.as_ref().map(|w| parse_duration(&w.text())) {
        None => Duration::ZERO,
        Some(Ok(w)) => {
            if !duration.is_zero() && w >= duration {
                check.fail("warmup", "must be shorter than duration (warm-up is part of it)");
            }
            w
        }
        Some(Err(e)) => {
            check.fail("warmup", e.0);
            Duration::ZERO
        }
    };
    let agents = raw.agents.unwrap_or(1);
    if agents == 0 || agents > MAX_AGENTS {
        check.fail("agents", format!("must be between 1 and {MAX_AGENTS}"));
    }
    let target = validate_target(raw.target, check);
    let load = validate_load(raw.load, check);
    if load.connections < agents {
        check
            .fail("load.connections", format!("{} connections cannot be split over {agents} agents", load.connections));
    }
    let workload = match raw.workload {
        RawWorkload::Kv(kv) => Workload::Kv(validate_kv(kv, check)),
    };
    let mut thresholds = Vec::new();
    for (i, expr) in raw.thresholds.iter().enumerate() {
        let field = format!("thresholds[{i}]");
        match Threshold::parse(expr) {
            Ok(threshold) => {
                if let Some(op) = &threshold.operation
                    && !workload.operations().contains(&op.as_str())
                {
                    check.fail(
                        &field,
                        format!(
                            "operation `{op}` is not produced by workload {} (its operations: {})",
                            workload.kind(),
                            workload.operations().join(", ")
                        ),
                    );
                }
                thresholds.push(threshold);
            }
            Err(message) => check.fail(&field, message),
        }
    }
    Scenario {
        name: raw.name,
        description: raw.description,
        duration,
        warmup,
        agents,
        target,
        load,
        workload,
        thresholds,
    }
}

fn validate_target(raw: RawTarget, check: &mut Checker<'_>) -> Target {
    if raw.kind == TargetKind::Redis && raw.endpoints.is_empty() {
        check.fail("target.endpoints", "a redis target needs at least one `host:port` endpoint");
    }
    for (i, endpoint) in raw.endpoints.iter().enumerate() {
        let valid = endpoint
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !valid {
            check.fail(&format!("target.endpoints[{i}]"), format!("`{endpoint}` is not a `host:port` address"));
        }
    }
    Target { kind: raw.kind, endpoints: raw.endpoints }
}

fn validate_load(raw: RawLoad, check: &mut Checker<'_>) -> Load {
    let connections = raw.connections.unwrap_or(16);
    if connections == 0 || connections > MAX_CONNECTIONS {
        check.fail("load.connections", format!("must be between 1 and {MAX_CONNECTIONS}"));
    }
    let pipeline = raw.pipeline.unwrap_or(1);
    if pipeline == 0 || pipeline > MAX_PIPELINE {
        check.fail("load.pipeline", format!("must be between 1 and {MAX_PIPELINE}"));
    }
    let model = match raw.model {
        LoadModelKind::Closed => {
            if raw.rate.is_some() {
                check.fail("load.rate", "is only used with `model: open`");
            }
            if raw.arrival.is_some() {
                check.fail("load.arrival", "is only used with `model: open`");
            }
            LoadModel::Closed
        }
        LoadModelKind::Open => {
            let rate = match raw.rate.as_ref().map(|r| parse_rate(&r.text())) {
                None => {
                    check.fail("load.rate", "the open model needs a rate, like `rate: 20000/s`");
                    0.0
                }
                Some(Ok(rate)) if rate > 0.0 => rate,
                Some(Ok(_)) => {
                    check.fail("load.rate", "must be more than 0/s");
                    0.0
                }
                Some(Err(e)) => {
                    check.fail("load.rate", e.0);
                    0.0
                }
            };
            LoadModel::Open { rate, arrival: raw.arrival.unwrap_or(Arrival::Uniform) }
        }
    };
    Load { model, connections, pipeline }
}

fn validate_kv(raw: RawKvWorkload, check: &mut Checker<'_>) -> KvWorkload {
    let read_ratio = raw.read_ratio.unwrap_or(0.9);
    if !(0.0..=1.0).contains(&read_ratio) {
        check.fail("workload.read_ratio", "must be between 0 and 1");
    }
    let keys = raw.keys.unwrap_or(100_000);
    if keys == 0 {
        check.fail("workload.keys", "must be at least 1");
    }
    let key_distribution = match raw.key_distribution.unwrap_or(KeyDistributionKind::Uniform) {
        KeyDistributionKind::Uniform => {
            if raw.zipf_exponent.is_some() {
                check.fail("workload.zipf_exponent", "is only used with `key_distribution: zipfian`");
            }
            KeyDistribution::Uniform
        }
        KeyDistributionKind::Zipfian => {
            let exponent = raw.zipf_exponent.unwrap_or(0.99);
            if !(exponent > 0.0 && exponent <= 10.0) {
                check.fail("workload.zipf_exponent", "must be more than 0 and at most 10");
            }
            KeyDistribution::Zipfian { exponent }
        }
    };
    let value_size = match raw.value_size.as_ref().map(|v| parse_size(&v.text())) {
        None => 100,
        Some(Ok(size)) if size <= MAX_VALUE_SIZE => size,
        Some(Ok(_)) => {
            check.fail("workload.value_size", "must be at most 64MiB");
            0
        }
        Some(Err(e)) => {
            check.fail("workload.value_size", e.0);
            0
        }
    };
    KvWorkload {
        read_ratio,
        keys,
        key_distribution,
        value_size,
        key_prefix: raw.key_prefix.unwrap_or_else(|| "stampede:".to_string()),
    }
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
