//! What an agent measured in one interval, as domain data. The agent's
//! session and the coordinator's api convert it to and from protobuf;
//! the aggregator merges it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How an operation failed; counted by kind, and one failed operation
/// never stops a run. Reports name the kinds by [`ErrorKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    Timeout,
    Connection,
    Server,
    Protocol,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 4] = [Self::Timeout, Self::Connection, Self::Server, Self::Protocol];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Server => "server",
            Self::Protocol => "protocol",
        }
    }

    /// The position of this kind in [`ErrorKind::ALL`] (an index into
    /// per-kind counts).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The workload counters every interval report carries beside its
/// histograms; reports name them by [`Counter::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Rows written (or read, for queries).
    Rows,
    /// Rows of bulk requests that the target refused.
    RowsFailed,
    CacheHits,
    CacheMisses,
    /// Subscribers reached by published messages, as the server counted them.
    Fanout,
    /// Messages received by pub/sub subscribers.
    Delivered,
    /// Rows of writes that timed out before an answer came: the target may
    /// have applied them.
    RowsUnconfirmed,
    /// Field values written (line protocol: points x fields).
    Values,
}

impl Counter {
    pub const ALL: [Counter; 8] = [
        Self::Rows,
        Self::RowsFailed,
        Self::CacheHits,
        Self::CacheMisses,
        Self::Fanout,
        Self::Delivered,
        Self::RowsUnconfirmed,
        Self::Values,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rows => "rows",
            Self::RowsFailed => "rows_failed",
            Self::CacheHits => "cache_hits",
            Self::CacheMisses => "cache_misses",
            Self::Fanout => "fanout",
            Self::Delivered => "delivered",
            Self::RowsUnconfirmed => "rows_unconfirmed",
            Self::Values => "values",
        }
    }

    /// The position of this counter in [`Counter::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Distinct error messages kept per error kind (of one operation at one
/// node); later distinct ones are counted in the kind's total only.
pub const MESSAGES_PER_KIND: usize = 5;
/// Characters kept of an error message.
pub const MESSAGE_CHARS: usize = 200;

/// What a target said when it refused or failed operations, and how often.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub kind: String,
    pub message: String,
    pub count: u64,
}

/// Adds `count` errors of `kind` with `message` to `list`: to the same
/// message's count, or as a new message (cut to [`MESSAGE_CHARS`]) while
/// the kind has fewer than [`MESSAGES_PER_KIND`]. Returns whether it was
/// kept.
pub fn add_error_message(list: &mut Vec<ErrorMessage>, kind: &str, message: &str, count: u64) -> bool {
    let message = message.trim();
    let cut = match message.char_indices().nth(MESSAGE_CHARS) {
        Some((end, _)) => &message[..end],
        None => message,
    };
    if let Some(known) = list.iter_mut().find(|m| m.kind == kind && m.message == cut) {
        known.count += count;
        return true;
    }
    if list.iter().filter(|m| m.kind == kind).count() >= MESSAGES_PER_KIND {
        return false;
    }
    list.push(ErrorMessage { kind: kind.to_string(), message: cut.to_string(), count });
    true
}

/// One operation against one backend node within one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationStats {
    pub operation: String,
    pub node: String,
    /// Operations completed, errors included.
    pub count: u64,
    pub errors: BTreeMap<String, u64>,
    /// The first distinct messages of those errors, with their counts.
    #[serde(default)]
    pub error_messages: Vec<ErrorMessage>,
    /// HdrHistogram V2 + deflate bytes, microseconds from the intended start.
    #[serde(with = "base64_bytes")]
    pub latency: Vec<u8>,
    /// HdrHistogram V2 + deflate bytes, microseconds from the real send.
    #[serde(with = "base64_bytes")]
    pub service: Vec<u8>,
    pub clamped: u64,
    /// Bytes these operations sent and received, as their driver counts
    /// them (the README's "Bytes on the wire" says how, per target).
    #[serde(default)]
    pub bytes_sent: u64,
    #[serde(default)]
    pub bytes_received: u64,
}

/// A step timed inside the operations (`encode`, `decode` with
/// `codec_in_path`), merged over the agent's connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub name: String,
    /// HdrHistogram V2 + deflate bytes, nanoseconds.
    #[serde(with = "base64_bytes")]
    pub histogram: Vec<u8>,
}

impl OperationStats {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalReport {
    pub run_id: String,
    pub seq: u64,
    /// Index of the one-second interval since the start instant.
    pub interval: u64,
    pub warmup: bool,
    pub operations: Vec<OperationStats>,
    /// Open connections per node at the end of the interval.
    pub connections: BTreeMap<String, u64>,
    pub late_starts: u64,
    /// Of `late_starts`: intended starts within the run never sent.
    #[serde(default)]
    pub unsent_starts: u64,
    /// Percent of one core.
    pub cpu_percent: f64,
    pub max_schedule_lag_us: u64,
    /// The CPU the agent may use (affinity, cgroup quota), percent of one core.
    #[serde(default)]
    pub cpu_available_percent: f64,
    /// Time the agent's threads were ready to run but waited for a CPU,
    /// percent of one core.
    #[serde(default)]
    pub cpu_wait_percent: f64,
    /// How late the agent's runtime woke a timer, at most.
    #[serde(default)]
    pub runtime_lag_us: u64,
    /// Time the slots spent waiting on the target, over slots x interval.
    #[serde(default)]
    pub slot_occupancy: f64,
    /// The agent's resident memory at the end of the interval, in bytes.
    #[serde(default)]
    pub rss_bytes: u64,
    /// Why the generator, not the target, limited the load in this interval
    /// ([`crate::saturation::Reason`] names); empty when it did not.
    #[serde(default)]
    pub saturation: Vec<String>,
    /// Workload counters (`rows`, `cache_hits`, ...) for this interval.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// Facts about the target, listed once in the report.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Connections opened in this interval, per node.
    #[serde(default)]
    pub opened: BTreeMap<String, u64>,
    /// Samples of the node in this interval, per node found, from drivers
    /// that sample the node instead of knowing it for every request.
    #[serde(default)]
    pub node_samples: BTreeMap<String, u64>,
    /// When this agent's load ended before the run's time limit (its part
    /// of `load.operations` done), microseconds from the start instant; 0
    /// unless it ended within this interval.
    #[serde(default)]
    pub load_end_us: u64,
    /// Steps timed inside the operations, in nanoseconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<Timing>,
}

pub(crate) mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_counters_sit_at_their_index() {
        assert!(ErrorKind::ALL.iter().enumerate().all(|(i, kind)| kind.index() == i));
        assert!(Counter::ALL.iter().enumerate().all(|(i, counter)| counter.index() == i));
        let names: std::collections::BTreeSet<_> = Counter::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Counter::ALL.len());
    }

    #[test]
    fn error_messages_are_counted_cut_and_bounded_per_kind() {
        let mut list = Vec::new();
        assert!(add_error_message(&mut list, "server", " Column obj_2 unknown\n", 2));
        assert!(add_error_message(&mut list, "server", "Column obj_2 unknown", 3));
        assert_eq!(
            list,
            vec![ErrorMessage { kind: "server".into(), message: "Column obj_2 unknown".into(), count: 5 }]
        );
        for i in 1..MESSAGES_PER_KIND {
            assert!(add_error_message(&mut list, "server", &format!("error {i}"), 1));
        }
        assert!(!add_error_message(&mut list, "server", "one too many", 1), "a sixth distinct message");
        assert!(add_error_message(&mut list, "timeout", "one too many", 1), "another kind has room");
        let long = "é".repeat(MESSAGE_CHARS + 50);
        let mut cut = Vec::new();
        add_error_message(&mut cut, "protocol", &long, 1);
        assert_eq!(cut[0].message.chars().count(), MESSAGE_CHARS);
    }

    #[test]
    fn histogram_bytes_survive_json() {
        for len in 0..10 {
            let stats = OperationStats {
                operation: "get".into(),
                latency: (0..len).map(|i| (i * 37) as u8).collect(),
                service: vec![255, 0, 1],
                ..OperationStats::default()
            };
            let json = serde_json::to_string(&stats).expect("json");
            assert_eq!(serde_json::from_str::<OperationStats>(&json).expect("back"), stats);
        }
    }
}
