//! Validation of the scenario's sections that stand on their own: the
//! target, the load and the expected distribution.

use super::*;

pub(super) fn validate_target(raw: RawTarget, check: &mut Checker<'_>) -> Target {
    let form = match raw.kind {
        TargetKind::Kv | TargetKind::Redis | TargetKind::RedisCluster => "`host:port`",
        TargetKind::Postgres | TargetKind::Timescaledb => {
            "`host:port` or `postgres://user:password@host:port/database`"
        }
        TargetKind::Cratedb => "`host:port` or `http(s)://user:password@host:port`",
        TargetKind::Nats => "`host:port` or `nats://user:password@host:port`",
        TargetKind::Influx => "`host:port` or `http(s)://user:password@host:port`",
        TargetKind::Websocket => "`host:port` or `ws://host:port/path`",
    };
    if raw.kind != TargetKind::Kv && raw.endpoints.is_empty() {
        check.fail("target.endpoints", format!("a {} target needs at least one {form} endpoint", raw.kind.as_str()));
    }
    for (i, endpoint) in raw.endpoints.iter().enumerate() {
        if let Err(problem) = check_endpoint(raw.kind, endpoint) {
            check.fail(&format!("target.endpoints[{i}]"), format!("`{}`: {problem}; write {form}", redact(endpoint)));
        }
    }
    for (identity, name) in &raw.nodes {
        if identity.trim().is_empty() || name.trim().is_empty() {
            check.fail("target.nodes", "node identities and names must not be empty");
        }
    }
    if let Some(header) = &raw.node_header {
        if !matches!(raw.kind, TargetKind::Cratedb | TargetKind::Influx) {
            check.fail(
                "target.node_header",
                format!(
                    "only HTTP targets (cratedb, influx) name their backend in a response header; a {} target's \
                     node is known from its connection, remove node_header",
                    raw.kind.as_str()
                ),
            );
        } else if header.is_empty()
            || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            check.fail(
                "target.node_header",
                format!("`{header}` is not an HTTP header name (letters, digits and -, such as X-Served-By)"),
            );
        }
    }
    Target { kind: raw.kind, endpoints: raw.endpoints, nodes: raw.nodes, node_header: raw.node_header }
}

/// The load, and `load.operations` by operation name when it names them
/// (checked against the workload by [`operation_counts`]).
pub(super) fn validate_load(
    raw: RawLoad,
    rate_swept: bool,
    check: &mut Checker<'_>,
) -> (Load, Option<Vec<(String, u64)>>) {
    let open = raw.model == LoadModelKind::Open;
    let stages = raw.stages.as_deref().map(|stages| validate_stages(stages, open, &raw, check));
    let connections = match &stages {
        // Closed model stages: the most connections any stage wants are open.
        Some(stages) if !open => stages.peak().round() as u32,
        _ => raw.connections.unwrap_or(16),
    };
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
        LoadModelKind::Open if stages.is_some() => LoadModel::Open {
            rate: stages.as_ref().map_or(0.0, crate::stages::Stages::peak),
            arrival: raw.arrival.unwrap_or(Arrival::Uniform),
        },
        LoadModelKind::Open => {
            let rate = match raw.rate.as_ref().map(|r| parse_rate(&r.text())) {
                // Each step of the sweep sets it.
                None if rate_swept => 1.0,
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
    if raw.reconnect_every == Some(0) {
        check.fail("load.reconnect_every", "must be at least 1 request (leave it out to keep connections)");
    }
    let mut named = None;
    let operations = match &raw.operations {
        None => None,
        Some(RawOperations::Total(n)) => match operation_count(n) {
            Ok(n) => Some(n),
            Err(problem) => {
                check.fail("load.operations", problem);
                None
            }
        },
        Some(RawOperations::Each(each)) => {
            let mut counts = Vec::new();
            for (name, n) in each {
                // One operation may be left out of the run with 0.
                if n.text().trim() == "0" {
                    counts.push((name.clone(), 0));
                    continue;
                }
                match operation_count(n) {
                    Ok(n) => counts.push((name.clone(), n)),
                    Err(problem) => check.fail(&format!("load.operations.{name}"), problem),
                }
            }
            let total = counts.iter().fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
            if each.is_empty() || (total == 0 && counts.len() == each.len()) {
                check.fail(
                    "load.operations",
                    "counts no operation; give a count, or one per operation (at least one above 0)",
                );
            } else if total > MAX_OPERATIONS {
                check.fail("load.operations", format!("adds up to more than {MAX_OPERATIONS} operations"));
            }
            named = Some(counts);
            (total > 0).then_some(total)
        }
    };
    let load = Load {
        model,
        connections,
        pipeline,
        reconnect_every: raw.reconnect_every,
        operations,
        operation_counts: None,
        stages,
    };
    (load, named)
}

/// `load.operations` per operation, in the workload's operation order:
/// every name must be one of the operations the workload sends.
pub(super) fn operation_counts(
    named: Vec<(String, u64)>,
    workload: &Workload,
    check: &mut Checker<'_>,
) -> Option<Vec<u64>> {
    // A subscriber's deliveries, a responder's answers and connect times are
    // received or timed, not sent: they cannot be counted out.
    const NOT_SENT: [&str; 3] = ["deliver", "respond", "connect"];
    let sent: Vec<&str> = workload.operations().iter().copied().filter(|op| !NOT_SENT.contains(op)).collect();
    let mut counts = vec![0; workload.operations().len()];
    let mut valid = true;
    for (name, n) in named {
        match workload.operations().iter().position(|op| *op == name).filter(|_| sent.contains(&name.as_str())) {
            Some(index) => counts[index] = n,
            None => {
                valid = false;
                check.fail(
                    &format!("load.operations.{name}"),
                    format!(
                        "`{name}` is not an operation workload {} sends (its operations: {})",
                        workload.kind(),
                        sent.join(", ")
                    ),
                );
            }
        }
    }
    valid.then_some(counts)
}

/// `load.stages`: each a duration and a rate (open model) or connections
/// (closed model); `load.rate` or `load.connections`, when given, is where
/// the first stage starts from.
fn validate_stages(raw: &[RawStage], open: bool, load: &RawLoad, check: &mut Checker<'_>) -> crate::stages::Stages {
    use crate::stages::{Stage, Stages};
    if raw.is_empty() {
        check.fail("load.stages", "is empty; give at least one stage, like [{duration: 30s, rate: 1000/s}]");
    }
    let mut stages = Vec::with_capacity(raw.len());
    for (i, stage) in raw.iter().enumerate() {
        let field = format!("load.stages[{i}]");
        let duration = match parse_duration(&stage.duration.text()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                check.fail(&format!("{field}.duration"), "must be longer than 0s");
                Duration::ZERO
            }
            Err(e) => {
                check.fail(&format!("{field}.duration"), e.0);
                Duration::ZERO
            }
        };
        let target = match (open, &stage.rate, stage.connections) {
            (true, Some(rate), None) => match parse_rate(&rate.text()) {
                Ok(rate) if rate.is_finite() => rate,
                Ok(_) => 0.0,
                Err(e) => {
                    check.fail(&format!("{field}.rate"), e.0);
                    0.0
                }
            },
            (false, None, Some(connections)) => {
                if connections == 0 || connections > MAX_CONNECTIONS {
                    check.fail(&format!("{field}.connections"), format!("must be between 1 and {MAX_CONNECTIONS}"));
                }
                f64::from(connections)
            }
            (true, _, _) => {
                check.fail(&field, "an open-model stage ramps the rate: give `rate` (like 5000/s), not connections");
                0.0
            }
            (false, _, _) => {
                check.fail(
                    &field,
                    "a closed-model stage ramps the connections: give `connections`, or `model: open` to ramp a rate",
                );
                1.0
            }
        };
        stages.push(Stage { duration, target });
    }
    let first = stages.first().map_or(0.0, |s| s.target);
    let start = if open {
        match load.rate.as_ref().map(|r| parse_rate(&r.text())) {
            Some(Ok(rate)) => rate,
            Some(Err(e)) => {
                check.fail("load.rate", e.0);
                first
            }
            None => first,
        }
    } else {
        load.connections.map_or(first, f64::from)
    };
    let stages = Stages { start, stages };
    if open && stages.peak() <= 0.0 {
        check.fail("load.stages", "every rate is 0/s: at least one stage needs a rate above 0");
    }
    stages
}

/// `load.operations`: a whole number from 1 to [`MAX_OPERATIONS`], written
/// as a number or as text with `_` or `,` between digits (`1_000_000`).
fn operation_count(value: &Scalar) -> Result<u64, String> {
    let text = value.text();
    let digits: String = text.trim().chars().filter(|c| !matches!(c, '_' | ',')).collect();
    let count = match value {
        // A cast saturates: anything too large is refused as such below.
        Scalar::Number(n) if n.fract() == 0.0 && *n >= 0.0 => Some(*n as u64),
        Scalar::Number(_) => None,
        Scalar::Text(_) if digits.len() > 20 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(u64::MAX),
        Scalar::Text(_) => digits.parse::<u64>().ok(),
    };
    match count {
        Some(0) => Err("must be at least 1 (leave it out to run for `duration`)".to_string()),
        Some(n) if n <= MAX_OPERATIONS => Ok(n),
        Some(_) => Err(format!("`{text}` is more than {MAX_OPERATIONS} operations")),
        None => Err(format!("`{text}` is not a whole number of operations (like 1000000 or 1_000_000)")),
    }
}

pub(super) fn validate_distribution(
    raw: Option<RawDistribution>,
    check: &mut Checker<'_>,
) -> crate::distribution::Expectation {
    let mut expect = crate::distribution::Expectation::default();
    let Some(raw) = raw else { return expect };
    match raw.expect {
        None => {}
        Some(RawExpect::Named(name)) if name == "uniform" => {}
        Some(RawExpect::Named(other)) => check
            .fail("distribution.expect", format!("`{other}`: write `uniform` or weights like {{kv-0: 3, kv-1: 1}}")),
        Some(RawExpect::Weights(weights)) => {
            if weights.is_empty() || weights.values().any(|w| !w.is_finite() || *w < 0.0) {
                check.fail("distribution.expect", "weights must be numbers of 0 or more, at least one node");
            } else if weights.values().sum::<f64>() <= 0.0 {
                check.fail("distribution.expect", "at least one weight must be more than 0");
            }
            expect.weights = Some(weights);
        }
    }
    if let Some(tolerance) = raw.tolerance {
        let text = tolerance.text();
        let number = text.trim().trim_end_matches('%').trim();
        match number.parse::<f64>() {
            Ok(pp) if (0.0..=100.0).contains(&pp) => expect.tolerance_pp = pp,
            _ => check.fail(
                "distribution.tolerance",
                format!("`{text}` is not a deviation; write percentage points like `5%`"),
            ),
        }
    }
    expect
}
