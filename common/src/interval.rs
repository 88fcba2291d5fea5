//! What an agent measured in one interval, as domain data. The agent's
//! session and the coordinator's api convert it to and from protobuf;
//! the aggregator merges it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Error kinds, counted separately; one failed operation never stops a run.
pub const ERROR_KINDS: [&str; 4] = ["timeout", "connection", "server", "protocol"];

/// One operation against one backend node within one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationStats {
    pub operation: String,
    pub node: String,
    /// Operations completed, errors included.
    pub count: u64,
    pub errors: BTreeMap<String, u64>,
    /// HdrHistogram V2 + deflate bytes, microseconds from the intended start.
    #[serde(with = "base64_bytes")]
    pub latency: Vec<u8>,
    /// HdrHistogram V2 + deflate bytes, microseconds from the real send.
    #[serde(with = "base64_bytes")]
    pub service: Vec<u8>,
    pub clamped: u64,
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
    pub cpu_percent: f64,
    pub max_schedule_lag_us: u64,
    /// Workload counters (`rows`, `cache_hits`, ...) for this interval.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// Facts about the target, listed once in the report.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Connections opened in this interval, per node.
    #[serde(default)]
    pub opened: BTreeMap<String, u64>,
}

mod base64_bytes {
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
