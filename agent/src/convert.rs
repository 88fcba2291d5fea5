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
        Outgoing::Report(r) => Body::IntervalReport(stampede_proto::interval::to_wire(*r)),
        Outgoing::Phase { run_id, state } => Body::PhaseProgress(pb::PhaseProgress {
            run_id,
            phase: state.phase,
            unit: state.unit.to_string(),
            done: state.done,
            total: state.total,
        }),
    }
}
