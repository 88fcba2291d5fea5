//! The scenario: what a run does. Parsed from YAML with unknown fields
//! rejected, then validated into typed structs. Every error names the field
//! and, where it can be found, its line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::endpoint::check_endpoint;
pub use crate::endpoint::{redact, redact_text};
use crate::locate::{locate, parse_path};
use crate::threshold::Threshold;
use crate::units::{parse_duration, parse_rate};
pub use crate::workload::*;
use crate::workload::{self, RawWorkload};

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
    /// Required unless `load.operations` is given.
    #[serde(default)]
    duration: Option<Scalar>,
    #[serde(default)]
    warmup: Option<Scalar>,
    #[serde(default)]
    agents: Option<u32>,
    target: RawTarget,
    #[serde(default)]
    load: RawLoad,
    /// Read by [`RawWorkload::from_value`], so that errors inside keep their
    /// field and line.
    workload: serde_yaml::Value,
    #[serde(default)]
    thresholds: Vec<String>,
    #[serde(default)]
    distribution: Option<RawDistribution>,
    #[serde(default)]
    on_agent_loss: Option<crate::loss::RawAgentLoss>,
    /// Read by [`crate::sweep::Sweep::parse`]; `stampede sweep` runs it.
    #[serde(default)]
    sweep: Option<serde_yaml::Value>,
}

/// `distribution:` what spread over the backend nodes is expected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDistribution {
    /// `uniform`, or node -> weight.
    #[serde(default)]
    expect: Option<RawExpect>,
    /// Largest deviation for a balanced verdict (`5%`, or percentage points).
    #[serde(default)]
    tolerance: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawExpect {
    Named(String),
    Weights(BTreeMap<String, f64>),
}

/// `load.operations`: one count, or one per operation (`{get: 900000, set: 100000}`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawOperations {
    Total(Scalar),
    Each(BTreeMap<String, Scalar>),
}

/// A YAML scalar that may be written as a number or a string (`100`, `1KiB`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Number(f64),
    Text(String),
}

impl Scalar {
    pub(crate) fn text(&self) -> String {
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
    /// Node identity (a Redis run id, `host:port`, ...) -> the name to report.
    #[serde(default)]
    nodes: BTreeMap<String, String>,
    /// A response header naming the backend of each request (HTTP targets).
    #[serde(default)]
    node_header: Option<String>,
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
    #[serde(default)]
    reconnect_every: Option<u64>,
    /// Operations over all agents and connections; the run ends when they
    /// are done (or at `duration`, whichever comes first). A count, or a
    /// count per operation of the workload.
    #[serde(default)]
    operations: Option<RawOperations>,
    /// A load that changes during the run, stage by stage.
    #[serde(default)]
    stages: Option<Vec<RawStage>>,
}

/// One of `load.stages`: how long, and the rate (open model) or the
/// connections (closed model) it ramps to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    duration: Scalar,
    #[serde(default)]
    rate: Option<Scalar>,
    #[serde(default)]
    connections: Option<u32>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LoadModelKind {
    #[default]
    Closed,
    Open,
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
    /// A Redis Cluster, through the redis crate's cluster client; the
    /// endpoints are seed nodes and each operation goes to the master that
    /// owns its key's hash slot.
    RedisCluster,
    /// PostgreSQL.
    Postgres,
    /// PostgreSQL with the TimescaleDB extension (hypertables when present).
    Timescaledb,
    /// CrateDB over its HTTP `/_sql` endpoint.
    Cratedb,
    /// A NATS server or cluster (core publish/subscribe, request/reply,
    /// JetStream); each connection's node is the server named in its INFO.
    Nats,
    /// InfluxDB 1.x (or anything taking its `/write` and `/query`): line
    /// protocol writes and InfluxQL queries over HTTP.
    Influx,
    /// A WebSocket server: chat rooms with broadcast (`stampede ws-server`'s
    /// protocol) or any server that echoes; the node is the one its hello names.
    Websocket,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kv => "kv",
            Self::Redis => "redis",
            Self::RedisCluster => "redis_cluster",
            Self::Postgres => "postgres",
            Self::Timescaledb => "timescaledb",
            Self::Cratedb => "cratedb",
            Self::Nats => "nats",
            Self::Influx => "influx",
            Self::Websocket => "websocket",
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
    /// Close and reopen each connection after this many requests, so that
    /// a layer-4 balancer chooses again (a new source port each time).
    pub reconnect_every: Option<u64>,
    /// `load.operations`: operations over all agents and connections,
    /// warm-up's included; the run ends when they are done.
    pub operations: Option<u64>,
    /// `load.operations` per operation: a count for each of the workload's
    /// operations, in `Workload::operations()` order (0 for one not named);
    /// `operations` is then their sum.
    pub operation_counts: Option<Vec<u64>>,
    /// `load.stages`: the open model's rate or the closed model's active
    /// connections over time (then `model`'s rate is the peak, and
    /// `connections` the most that are open).
    pub stages: Option<crate::stages::Stages>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub kind: TargetKind,
    /// `host:port` addresses. Empty for `kv` means the embedded server.
    pub endpoints: Vec<String>,
    /// Node identity -> name in the report (`target.nodes`).
    pub nodes: BTreeMap<String, String>,
    /// `target.node_header`: the response header that names the backend
    /// which served each request (an HTTP balancer sets it), for HTTP
    /// targets; without it the node is sampled.
    pub node_header: Option<String>,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// How long the run lasts at most: `duration`, or, for a count-limited
    /// run without one, [`COUNT_RUN_LIMIT`].
    pub duration: Duration,
    /// Whether `duration` was written (a count-limited run may leave it out).
    pub duration_given: bool,
    pub warmup: Duration,
    /// Agents the run needs before it starts.
    pub agents: u32,
    pub target: Target,
    pub load: Load,
    pub workload: Workload,
    pub thresholds: Vec<Threshold>,
    /// What spread over backend nodes the distribution analysis expects.
    pub distribution: crate::distribution::Expectation,
    /// What the run does when an agent is lost (`on_agent_loss`).
    pub on_agent_loss: crate::loss::AgentLossPolicy,
    /// `sweep:`: the levels `stampede sweep` runs this scenario at.
    pub sweep: Option<crate::sweep::Sweep>,
}

pub const MAX_CONNECTIONS: u32 = 100_000;
pub const MAX_PIPELINE: u32 = 1024;
pub const MAX_AGENTS: u32 = 10_000;
/// The time limit of a count-limited run (`load.operations`) that gives no
/// `duration`: it ends when its operations are done, or after a day.
pub const COUNT_RUN_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// The most operations a count-limited run may ask for.
pub const MAX_OPERATIONS: u64 = 1_000_000_000_000_000;

pub(crate) struct Checker<'a> {
    text: &'a str,
    issues: Vec<ScenarioIssue>,
}

impl Checker<'_> {
    pub(crate) fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.issues.push(ScenarioIssue {
            field: field.to_string(),
            line: locate_nearest(self.text, field),
            column: None,
            message: message.into(),
        });
    }
}

/// Stored instead of a scenario whose password could not be hidden.
pub const NOT_KEPT: &str =
    "# not kept: a password in target.endpoints is written in a way that cannot be hidden in this copy\n";

impl Scenario {
    /// Parses and validates scenario text.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario = read_yaml(text).map_err(|issue| ScenarioError { issues: vec![issue] })?;
        let mut check = Checker { text, issues: Vec::new() };
        let scenario = validate(raw, &mut check);
        if check.issues.is_empty() { Ok(scenario) } else { Err(ScenarioError { issues: check.issues }) }
    }

    /// `text`, this scenario as written, with its endpoints' passwords
    /// replaced by `***`: the form that is stored and shown. When a password
    /// is written so that it cannot be found in the text (a YAML escape),
    /// the text is replaced by a comment saying so rather than kept.
    pub fn shown_text(&self, text: &str) -> String {
        let shown = redact_text(text, &self.target.endpoints);
        let reparsed_hidden = Self::parse(&shown).map_or(true, |s| {
            s.target.endpoints.iter().filter_map(|e| crate::endpoint::password(e)).all(|p| p == "***")
        });
        let originals_gone =
            self.target.endpoints.iter().filter_map(|e| crate::endpoint::password(e)).all(|p| !shown.contains(p));
        if reparsed_hidden && originals_gone { shown } else { NOT_KEPT.to_string() }
    }

    /// Total operations per second offered in the open model.
    pub fn rate(&self) -> Option<f64> {
        match self.load.model {
            LoadModel::Open { rate, .. } => Some(rate),
            LoadModel::Closed => None,
        }
    }
}

/// What to write instead, for the serde enums that accept several forms
/// (whose own error only says that no form matched).
const FORMS: [(&str, &str); 3] = [
    ("Scalar", "expected a number or a text such as `10s`, `1KiB` or `100/s`"),
    ("RawAgentLoss", "write `abort`, `continue` or `{tolerate: 34%}`"),
    ("RawExpect", "write `uniform`, or each node's name with its weight (`node-a: 3`)"),
];

/// The line of `field`, or of the nearest enclosing field that can be found
/// (a field inside flow-style YAML, `{kind: kv, keys: 5}`, cannot be).
pub(crate) fn locate_nearest(text: &str, field: &str) -> Option<usize> {
    let mut path = parse_path(field);
    while !path.is_empty() {
        if let Some(line) = locate(text, &path) {
            return Some(line);
        }
        path.pop();
    }
    None
}

/// A serde message about a value of several forms, said as what to write.
pub(crate) fn explain_forms(message: String) -> (String, bool) {
    match FORMS.iter().find(|(name, _)| message.ends_with(&format!("untagged enum {name}"))) {
        Some((_, form)) => (form.to_string(), true),
        None => (message, false),
    }
}

/// A serde path (`.` for the document) as an issue's field.
pub(crate) fn field_of(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." { String::new() } else { path }
}

/// Reads the file format; an error names its field path and line.
fn read_yaml(text: &str) -> Result<RawScenario, ScenarioIssue> {
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(|error| {
        let field = field_of(error.path());
        let inner = error.inner();
        let mut message = strip_location(&inner.to_string());
        // serde_yaml starts with the path of the value it was in; the field
        // says it here.
        let mut parents = parse_path(&field).len();
        while parents > 0 {
            let parent: Vec<&str> = field.split('.').take(parents).collect();
            if let Some(rest) = message.strip_prefix(&format!("{}: ", parent.join("."))) {
                message = rest.to_string();
                break;
            }
            parents -= 1;
        }
        let mut location = inner.location().map(|l| (l.line(), l.column()));
        let (explained, several_forms) = explain_forms(message);
        message = explained;
        if several_forms || location.is_none() {
            // A value of several forms is read as a whole; its error has no
            // position of its own.
            location = locate_nearest(text, &field).map(|line| (line, 0));
        }
        ScenarioIssue {
            line: location.map(|(line, _)| line),
            column: location.map(|(_, column)| column).filter(|c| *c > 0),
            field,
            message,
        }
    })
}

pub(crate) fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn validate(raw: RawScenario, check: &mut Checker<'_>) -> Scenario {
    if raw.name.trim().is_empty() {
        check.fail("name", "must not be empty");
    }
    let duration_given = raw.duration.is_some();
    let duration = match raw.duration.as_ref().map(|d| parse_duration(&d.text())) {
        // Stages say how long the run lasts (fixed below).
        None if raw.load.stages.is_some() => Duration::ZERO,
        None if raw.load.operations.is_some() => COUNT_RUN_LIMIT,
        None => {
            check.fail(
                "duration",
                "is missing: say how long the run lasts (`duration: 60s`), or how many operations it makes \
                 (`load.operations: 1000000`), or both",
            );
            Duration::ZERO
        }
        Some(Ok(d)) if d.is_zero() => {
            check.fail("duration", "must be longer than 0s");
            d
        }
        Some(Ok(d)) => d,
        Some(Err(e)) => {
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
    // A sweep over the rate gives each step its rate.
    let rate_swept = raw
        .sweep
        .as_ref()
        .and_then(|v| v.get("over"))
        .and_then(serde_yaml::Value::as_str)
        .is_some_and(|over| matches!(over, "load.rate" | "rate"));
    let (mut load, named_counts) = validate_load(raw.load, rate_swept, check);
    let mut duration = duration;
    if let Some(stages) = &load.stages {
        let total = stages.duration();
        if !duration_given {
            duration = total;
            if !warmup.is_zero() && warmup >= duration {
                check.fail("warmup", "must be shorter than the stages together (warm-up is part of them)");
            }
        } else if duration != total {
            check.fail(
                "duration",
                format!(
                    "is {duration:?} but load.stages last {total:?}; leave duration out (the stages say how long) \
                     or make them add up"
                ),
            );
        }
    }
    if load.connections < agents {
        check
            .fail("load.connections", format!("{} connections cannot be split over {agents} agents", load.connections));
    }
    let workload = match RawWorkload::from_value(raw.workload) {
        Ok(workload) => Some(chat_over_websocket(workload::validate(workload, check), target.kind, check)),
        Err(error) => {
            let field =
                if error.field.is_empty() { "workload".to_string() } else { format!("workload.{}", error.field) };
            check.fail(&field, error.message);
            None
        }
    };
    if let (Some(named), Some(workload)) = (named_counts, &workload) {
        load.operation_counts = sections::operation_counts(named, workload, check);
    }
    let distribution = validate_distribution(raw.distribution, check);
    let on_agent_loss = crate::loss::validate(raw.on_agent_loss).unwrap_or_else(|error| {
        check.fail("on_agent_loss", error.0);
        crate::loss::AgentLossPolicy::default()
    });
    if matches!(
        target.kind,
        TargetKind::Postgres
            | TargetKind::Timescaledb
            | TargetKind::Cratedb
            | TargetKind::Influx
            | TargetKind::Websocket
    ) && load.pipeline > 1
    {
        check.fail(
            "load.pipeline",
            format!(
                "a {} connection runs one request at a time; leave pipeline at 1 and raise load.connections",
                target.kind.as_str()
            ),
        );
    }
    if let Some(workload) = &workload
        && !workload.supports().contains(&target.kind)
    {
        let kinds: Vec<&str> = workload.supports().iter().map(|k| k.as_str()).collect();
        check.fail(
            "workload.kind",
            format!(
                "workload `{}` does not run against target kind `{}` (it runs against: {})",
                workload.kind(),
                target.kind.as_str(),
                kinds.join(", ")
            ),
        );
    }
    if let Some(workload) = &workload {
        kind_fields(workload, target.kind, check);
    }
    let mut thresholds = Vec::new();
    for (i, expr) in raw.thresholds.iter().enumerate() {
        let field = format!("thresholds[{i}]");
        match Threshold::parse(expr) {
            Ok(threshold) => {
                if let Some(stage) = threshold.stage {
                    let stages = load.stages.as_ref().map_or(0, |s| s.stages.len());
                    if stages == 0 {
                        check.fail(&field, "applies to a stage, but the run has no load.stages");
                    } else if stage as usize > stages {
                        check.fail(&field, format!("names stage {stage}, but load.stages has {stages}"));
                    }
                }
                if let Some(op) = &threshold.operation
                    && let Some(workload) = &workload
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
            Err(error) => check.fail(&field, error.0),
        }
    }
    let open_model = matches!(load.model, LoadModel::Open { .. });
    let sweep = raw.sweep.as_ref().and_then(|value| match crate::sweep::Sweep::parse(value, open_model) {
        Ok(sweep) => Some(sweep),
        Err(problems) => {
            for problem in problems {
                let (field, message) = problem.split_once(": ").unwrap_or(("sweep", problem.as_str()));
                check.fail(field, message);
            }
            None
        }
    });
    Scenario {
        name: raw.name,
        sweep,
        description: raw.description,
        duration,
        duration_given,
        warmup,
        agents,
        target,
        load,
        // Without a readable workload the scenario is refused; this one is
        // never used.
        workload: workload.unwrap_or(Workload::Pool(PoolWorkload { query: String::new() })),
        thresholds,
        distribution,
        on_agent_loss,
    }
}

mod sections;
pub mod variables;
use sections::{validate_distribution, validate_load, validate_target};

/// A `chat` workload against a WebSocket server is rooms with members
/// (`Workload::Room`); `members` belongs to that case only.
fn chat_over_websocket(workload: Workload, kind: TargetKind, check: &mut Checker<'_>) -> Workload {
    match workload {
        Workload::Chat(chat) if kind == TargetKind::Websocket => {
            let members = chat.members.unwrap_or(4);
            if members > 10_000 {
                check.fail("workload.members", "must be at most 10000 per agent");
            }
            Workload::Room(RoomWorkload {
                rooms: chat.rooms,
                members,
                message_size: chat.value.size,
                prefix: chat.prefix,
            })
        }
        Workload::Chat(chat) if chat.members.is_some() => {
            check.fail(
                "workload.members",
                format!(
                    "members are the room connections of a chat over WebSocket; a {} chat keeps rooms as lists, remove members",
                    kind.as_str()
                ),
            );
            Workload::Chat(chat)
        }
        other => other,
    }
}

/// What only one target kind takes: JetStream and subject prefixes (NATS:
/// no spaces, and none of the wildcards `*` and `>`), a database (InfluxDB).
fn kind_fields(workload: &Workload, kind: TargetKind, check: &mut Checker<'_>) {
    let prefix = match workload {
        Workload::Pubsub(w) => {
            if w.jetstream && kind != TargetKind::Nats {
                check.fail(
                    "workload.jetstream",
                    format!(
                        "JetStream is a NATS feature; a {} target publishes without it, remove jetstream",
                        kind.as_str()
                    ),
                );
            }
            &w.prefix
        }
        Workload::Request(w) => &w.prefix,
        Workload::Query(w) => {
            if w.database.is_some() && kind != TargetKind::Influx {
                check.fail(
                    "workload.database",
                    format!("only an influx target has databases to name; a {} target's comes with its endpoint, remove database", kind.as_str()),
                );
            }
            return;
        }
        _ => return,
    };
    if kind == TargetKind::Nats
        && (prefix.is_empty() || prefix.contains(|c: char| c.is_whitespace() || c == '*' || c == '>'))
    {
        check.fail(
            "workload.key_prefix",
            format!(
                "`{prefix}` cannot begin a NATS subject: write tokens without spaces, `*` or `>`, such as `bench.`"
            ),
        );
    }
}

#[cfg(test)]
mod tests;
