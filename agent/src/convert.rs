//! Domain -> proto conversion of what the agent sends.

use stampede_proto::v1 as pb;
use stampede_proto::v1::session_request::Body;

use crate::outbox::Outgoing;

pub fn outgoing(message: Outgoing) -> Body {
    match message {
        Outgoing::Ready { run_id } => Body::Ready(pb::Ready { run_id }),
        Outgoing::Failed { run_id, error } => Body::AssignmentFailed(pb::AssignmentFailed { run_id, error }),
        Outgoing::Final { run_id, seq, interval_reports, reports_dropped, error } => {
            Body::FinalReport(pb::FinalReport { run_id, seq, interval_reports, error, reports_dropped })
        }
        Outgoing::Report(r) => Body::IntervalReport(pb::IntervalReport {
            run_id: r.run_id,
            seq: r.seq,
            interval: r.interval,
            warmup: r.warmup,
            operations: r
                .operations
                .into_iter()
                .map(|op| pb::OperationStats {
                    operation: op.operation,
                    node: op.node,
                    count: op.count,
                    errors: op.errors.into_iter().map(|(kind, count)| pb::ErrorCount { kind, count }).collect(),
                    latency_histogram: op.latency,
                    service_histogram: op.service,
                    clamped: op.clamped,
                })
                .collect(),
            connections: r
                .connections
                .into_iter()
                .map(|(node, connections)| pb::NodeConnections { node, connections })
                .collect(),
            late_starts: r.late_starts,
            health: Some(pb::AgentHealth { cpu_percent: r.cpu_percent, max_schedule_lag_us: r.max_schedule_lag_us }),
            counters: r.counters.into_iter().collect(),
            notes: r.notes,
            opened: r.opened.into_iter().map(|(node, connections)| pb::NodeConnections { node, connections }).collect(),
        }),
    }
}
