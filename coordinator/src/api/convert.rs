//! proto <-> domain conversions, kept apart from the services.

use std::collections::BTreeMap;

use stampede_common::interval::IntervalReport;
use stampede_proto::v1 as pb;

use stampede_proto::v1::session_request::Body;
use tonic::Status;

use crate::engine::{
    AgentView, Event, FinalReport, PhaseProgress, Progress, RunView, ToAgent, WatchUpdate, now_unix_us,
};
use crate::registry::AgentHello;

/// The hello that opens a session, checked.
pub fn hello(message: pb::Hello) -> Result<AgentHello, Status> {
    if message.agent_id.is_empty() || message.agent_id.len() > 200 {
        return Err(Status::invalid_argument("hello.agent_id must be 1 to 200 characters"));
    }
    Ok(AgentHello {
        agent_id: message.agent_id,
        host: message.host,
        labels: message.labels.into_iter().collect(),
        capacity: message.capacity,
        version: message.version,
        active_runs: message.active_runs,
    })
}

/// A message of an open session, as what the adapter does with it.
#[derive(Debug)]
pub enum Inbound {
    /// For the engine.
    Event(Event),
    /// A clock ping, answered at once with the coordinator's time.
    Answer(pb::SessionResponse),
    /// Ends the session with this status.
    Refused(Status),
}

pub fn session_message(agent_id: &str, body: Option<Body>) -> Inbound {
    let agent_id = agent_id.to_string();
    Inbound::Event(match body {
        Some(Body::Ping(ping)) => {
            return Inbound::Answer(pb::SessionResponse {
                body: Some(pb::session_response::Body::Pong(pb::Pong {
                    seq: ping.seq,
                    agent_time_us: ping.agent_time_us,
                    coordinator_time_us: now_unix_us(),
                })),
            });
        }
        Some(Body::ClockSync(c)) => Event::AgentClock { agent_id, offset_us: c.offset_us, rtt_us: c.rtt_us },
        Some(Body::Heartbeat(h)) => {
            Event::AgentHeartbeat { agent_id, cpu_percent: h.cpu_percent, rss_bytes: h.rss_bytes }
        }
        Some(Body::Ready(r)) => Event::AgentReady { agent_id, run_id: r.run_id },
        Some(Body::PhaseProgress(p)) => Event::AgentPhase {
            agent_id,
            run_id: p.run_id,
            phase: PhaseProgress { name: p.phase, unit: p.unit, done: p.done, total: p.total, agents: 1 },
        },
        Some(Body::AssignmentFailed(f)) => Event::AgentFailed { agent_id, run_id: f.run_id, error: f.error },
        Some(Body::IntervalReport(r)) => Event::AgentReport { agent_id, report: Box::new(interval_report(r)) },
        Some(Body::FinalReport(f)) => Event::AgentFinal {
            agent_id,
            report: FinalReport {
                run_id: f.run_id,
                seq: f.seq,
                interval_reports: f.interval_reports,
                reports_dropped: f.reports_dropped,
                error: f.error,
            },
        },
        Some(Body::Hello(_)) | None => {
            return Inbound::Refused(Status::invalid_argument("hello may only be the first message"));
        }
    })
}

pub fn interval_report(message: pb::IntervalReport) -> IntervalReport {
    stampede_proto::interval::from_wire(message)
}

pub fn to_agent(message: ToAgent) -> pb::SessionResponse {
    use pb::session_response::Body;
    let body = match message {
        ToAgent::Assignment(a) => Body::Assignment(pb::Assignment {
            run_id: a.run_id,
            scenario_yaml: a.scenario_yaml,
            agent_index: a.plan.agent_index,
            agent_count: a.plan.agent_count,
            connections: a.plan.connections,
            rate_per_s: a.plan.rate_per_s,
            key_start: a.plan.key_start,
            key_end: a.plan.key_end,
            seed: a.plan.seed,
            endpoints: a.endpoints,
            first_seq: a.first_seq,
            rejoin: a.rejoin,
            trace_context: a.trace_context.into_iter().collect(),
            operations: a.plan.operations,
            operation_counts: a.plan.operation_counts.unwrap_or_default(),
        }),
        ToAgent::Start { run_id, start_at_us } => Body::Start(pb::Start { run_id, start_at_us }),
        ToAgent::Ack { run_id, seq } => Body::Ack(pb::Ack { run_id, seq }),
        ToAgent::Cancel { run_id, reason } => Body::Cancel(pb::Cancel { run_id, reason }),
    };
    pb::SessionResponse { body: Some(body) }
}

pub fn watch_update(update: WatchUpdate) -> pb::WatchRunResponse {
    pb::WatchRunResponse {
        run_id: update.run_id,
        state: update.state.as_str().to_string(),
        progress: update.progress.map(progress),
        phase: update.phase.map(|p| pb::Phase {
            name: p.name,
            unit: p.unit,
            done: p.done,
            total: p.total,
            agents: p.agents,
        }),
        report_json: update.report_json.unwrap_or_default(),
        message: update.message,
    }
}

fn progress(p: Progress) -> pb::Progress {
    pb::Progress {
        elapsed_s: p.elapsed_s,
        duration_s: p.duration_s,
        throughput: p.throughput,
        average_throughput: p.average_throughput,
        top_error: p.top_error,
        p99_us: p.p99_us,
        errors: p.errors,
        agents: p.agents,
        warmup: p.warmup,
        saturated_agents: p.saturated_agents,
        operations_done: p.operations_done,
        operations_total: p.operations_total,
    }
}

pub fn run_summary(view: &RunView) -> pb::RunSummary {
    pb::RunSummary {
        run_id: view.record.run_id.clone(),
        name: view.record.name.clone(),
        state: view.record.state.as_str().to_string(),
        submitted_at_unix_s: view.record.submitted_at_unix_s,
        target_kind: view.record.target_kind.clone(),
        figures: view.record.figures.map(|f| pb::RunFigures {
            ops: f.ops,
            throughput: f.throughput,
            error_rate: f.error_rate,
            p99_us: f.p99_us,
            duration_s: f.duration_s,
            stored_bytes: f.stored_bytes,
        }),
    }
}

pub fn agent_summary(view: AgentView) -> pb::AgentSummary {
    pb::AgentSummary {
        agent_id: view.agent_id,
        host: view.host,
        labels: view.labels.into_iter().collect::<BTreeMap<_, _>>().into_iter().collect(),
        capacity: view.capacity,
        clock_offset_us: view.clock_offset_us,
        clock_rtt_us: view.clock_rtt_us,
        connected: view.connected,
        busy_with: view.busy_with.unwrap_or_default(),
        last_seen_ms_ago: view.last_seen_ms_ago,
        cpu_percent: view.cpu_percent,
        rss_bytes: view.rss_bytes,
    }
}
