//! An interval report between its domain form (`stampede-common`) and its
//! wire form: what the agent sends, what the coordinator receives, and the
//! compact form the PostgreSQL results store keeps.

use prost::Message;
use stampede_common::interval::{IntervalReport, OperationStats, Timing, add_error_message};

use crate::v1 as pb;

pub fn to_wire(r: IntervalReport) -> pb::IntervalReport {
    pb::IntervalReport {
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
                error_messages: op
                    .error_messages
                    .into_iter()
                    .map(|m| pb::ErrorMessage { kind: m.kind, message: m.message, count: m.count })
                    .collect(),
                latency_histogram: op.latency,
                service_histogram: op.service,
                clamped: op.clamped,
                bytes_sent: op.bytes_sent,
                bytes_received: op.bytes_received,
            })
            .collect(),
        connections: r
            .connections
            .into_iter()
            .map(|(node, connections)| pb::NodeConnections { node, connections })
            .collect(),
        late_starts: r.late_starts,
        unsent_starts: r.unsent_starts,
        health: Some(pb::AgentHealth {
            cpu_percent: r.cpu_percent,
            max_schedule_lag_us: r.max_schedule_lag_us,
            cpu_available_percent: r.cpu_available_percent,
            cpu_wait_percent: r.cpu_wait_percent,
            runtime_lag_us: r.runtime_lag_us,
            slot_occupancy: r.slot_occupancy,
            saturation: r.saturation,
            rss_bytes: r.rss_bytes,
        }),
        counters: r.counters.into_iter().collect(),
        notes: r.notes,
        opened: r.opened.into_iter().map(|(node, connections)| pb::NodeConnections { node, connections }).collect(),
        node_samples: r.node_samples.into_iter().collect(),
        load_end_us: r.load_end_us,
        timings: r.timings.into_iter().map(|t| pb::Timing { name: t.name, histogram: t.histogram }).collect(),
    }
}

pub fn from_wire(message: pb::IntervalReport) -> IntervalReport {
    let health = message.health.unwrap_or_default();
    IntervalReport {
        run_id: message.run_id,
        seq: message.seq,
        interval: message.interval,
        warmup: message.warmup,
        operations: message
            .operations
            .into_iter()
            .map(|op| OperationStats {
                operation: op.operation,
                node: op.node,
                count: op.count,
                errors: op.errors.into_iter().map(|e| (e.kind, e.count)).collect(),
                // Bounded again: what arrives is not trusted to be.
                error_messages: op.error_messages.into_iter().fold(Vec::new(), |mut list, m| {
                    add_error_message(&mut list, &m.kind, &m.message, m.count);
                    list
                }),
                latency: op.latency_histogram,
                service: op.service_histogram,
                clamped: op.clamped,
                bytes_sent: op.bytes_sent,
                bytes_received: op.bytes_received,
            })
            .collect(),
        connections: message.connections.into_iter().map(|c| (c.node, c.connections)).collect(),
        late_starts: message.late_starts,
        unsent_starts: message.unsent_starts,
        cpu_percent: health.cpu_percent,
        max_schedule_lag_us: health.max_schedule_lag_us,
        cpu_available_percent: health.cpu_available_percent,
        cpu_wait_percent: health.cpu_wait_percent,
        runtime_lag_us: health.runtime_lag_us,
        slot_occupancy: health.slot_occupancy,
        saturation: health.saturation,
        rss_bytes: health.rss_bytes,
        counters: message.counters.into_iter().collect(),
        notes: message.notes,
        opened: message.opened.into_iter().map(|c| (c.node, c.connections)).collect(),
        node_samples: message.node_samples.into_iter().collect(),
        load_end_us: message.load_end_us,
        timings: message.timings.into_iter().map(|t| Timing { name: t.name, histogram: t.histogram }).collect(),
    }
}

/// The report as protobuf bytes (its histograms stay as the agent encoded
/// them).
pub fn encode(report: &IntervalReport) -> Vec<u8> {
    to_wire(report.clone()).encode_to_vec()
}

pub fn decode(bytes: &[u8]) -> Result<IntervalReport, prost::DecodeError> {
    pb::IntervalReport::decode(bytes).map(from_wire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_comes_back_as_it_was_encoded() {
        let report = IntervalReport {
            run_id: "r-1".into(),
            seq: 7,
            interval: 3,
            operations: vec![OperationStats {
                operation: "get".into(),
                node: "kv-0".into(),
                count: 10,
                errors: [("timeout".to_string(), 2)].into(),
                error_messages: vec![stampede_common::interval::ErrorMessage {
                    kind: "timeout".into(),
                    message: "no answer within 5s".into(),
                    count: 2,
                }],
                latency: vec![1, 2, 3],
                service: vec![4, 5],
                clamped: 1,
                bytes_sent: 300,
                bytes_received: 40,
            }],
            timings: vec![Timing { name: "encode".into(), histogram: vec![9, 8] }],
            connections: [("kv-0".to_string(), 2)].into(),
            late_starts: 4,
            unsent_starts: 3,
            cpu_percent: 12.5,
            max_schedule_lag_us: 900,
            cpu_available_percent: 200.0,
            cpu_wait_percent: 3.5,
            runtime_lag_us: 1200,
            slot_occupancy: 0.25,
            saturation: vec!["cpu".into()],
            counters: [("rows".to_string(), 5)].into(),
            notes: vec!["values: raw".into()],
            opened: [("kv-0".to_string(), 1)].into(),
            node_samples: [("kv-0".to_string(), 3)].into(),
            ..Default::default()
        };
        assert_eq!(decode(&encode(&report)).expect("decode"), report);
    }
}
