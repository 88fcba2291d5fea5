//! A run's latency as an HdrHistogram interval log (log format 1.3), the
//! format HdrHistogram's own tools and libraries read: a format-version
//! comment, `StartTime` and `BaseTime`, the legend, then one line per
//! interval and series: `Tag=TAG,start,length,max,payload`, start in
//! seconds from the run's start, max in milliseconds, payload a V2 + deflate
//! histogram in base64 (values in microseconds).
//!
//! One series per operation and node, merged over agents: the tag
//! `get@kv-0` is latency from the intended start, `get@kv-0#service`
//! service time from the real send. Pure: stored interval reports in, text
//! out.

use std::collections::BTreeMap;
use std::fmt::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use stampede_common::histogram;

use crate::store::StoredInterval;

/// What the log needs to know about the run besides its intervals.
pub struct LogContext<'a> {
    pub run_id: &'a str,
    pub started_at_unix_ms: i64,
    pub warmup_s: f64,
    /// Node identity -> reported name (`target.nodes`).
    pub node_names: &'a BTreeMap<String, String>,
}

/// A tag may hold neither commas nor white space.
fn tag_part(text: &str) -> String {
    text.chars().map(|c| if c == ',' || c.is_whitespace() { '_' } else { c }).collect()
}

/// Writes the interval log of `intervals` (any order, duplicates of one
/// agent's sequence number counted once).
pub fn write(context: &LogContext<'_>, intervals: &[StoredInterval]) -> String {
    // (interval, tag) -> merged histogram
    let mut series: BTreeMap<(u64, String), Histogram<u64>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for stored in intervals {
        if !seen.insert((stored.agent_id.as_str(), stored.report.seq)) {
            continue;
        }
        let interval = stored.report.interval;
        for stats in &stored.report.operations {
            let node = context.node_names.get(&stats.node).unwrap_or(&stats.node);
            let tag = format!("{}@{}", tag_part(&stats.operation), tag_part(node));
            // A report the coordinator refused (a corrupt histogram) is
            // left out here as it was from the report.
            let (Ok(latency), Ok(service)) = (histogram::decode(&stats.latency), histogram::decode(&stats.service))
            else {
                continue;
            };
            for (tag, h) in [(tag.clone(), latency), (format!("{tag}#service"), service)] {
                let merged = series.entry((interval, tag)).or_insert_with(histogram::new_histogram);
                let _ = histogram::add_into(merged, &h);
            }
        }
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = header(&mut out, context);
    for ((interval, tag), h) in &series {
        let payload = histogram::encode(h).unwrap_or_default();
        let max_ms = if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 };
        let _ = writeln!(out, "Tag={tag},{:.3},1.000,{max_ms:.3},{}", *interval as f64, STANDARD.encode(payload));
    }
    out
}

fn header(out: &mut String, context: &LogContext<'_>) -> std::fmt::Result {
    let start_s = context.started_at_unix_ms as f64 / 1000.0;
    let start = chrono::DateTime::from_timestamp_millis(context.started_at_unix_ms).unwrap_or_default();
    writeln!(out, "#[Histogram log format version 1.3]")?;
    writeln!(
        out,
        "#[Stampede run {}: values in microseconds; tags OPERATION@NODE (latency from the intended start) and \
         OPERATION@NODE#service (service time); the first {:.3} s are warm-up, not in the report's figures]",
        context.run_id, context.warmup_s
    )?;
    writeln!(out, "#[StartTime: {start_s:.3} (seconds since epoch), {}]", start.format("%a %b %d %H:%M:%S UTC %Y"))?;
    writeln!(out, "#[BaseTime: {start_s:.3} (seconds since epoch)]")?;
    writeln!(out, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_common::interval::{IntervalReport, OperationStats};

    fn stored(agent: &str, seq: u64, interval: u64, node: &str, samples: &[u64]) -> StoredInterval {
        let mut h = histogram::new_histogram();
        for s in samples {
            histogram::record_clamped(&mut h, *s);
        }
        let bytes = histogram::encode(&h).expect("encode");
        let stats = OperationStats {
            operation: "get".into(),
            node: node.into(),
            count: samples.len() as u64,
            latency: bytes.clone(),
            service: bytes,
            ..OperationStats::default()
        };
        StoredInterval {
            agent_id: agent.into(),
            report: IntervalReport { seq, interval, operations: vec![stats], ..IntervalReport::default() },
        }
    }

    #[test]
    fn agents_are_merged_per_interval_and_series_and_duplicates_count_once() {
        let names = [("id-0".to_string(), "kv-0".to_string())].into();
        let context =
            LogContext { run_id: "r-1", started_at_unix_ms: 1_700_000_000_000, warmup_s: 1.0, node_names: &names };
        let intervals = [
            stored("a1", 0, 0, "id-0", &[100, 200]),
            stored("a2", 0, 0, "id-0", &[300]),
            stored("a2", 0, 0, "id-0", &[300]),
            stored("a1", 1, 1, "kv, 1", &[5000]),
        ];
        let log = write(&context, &intervals);
        let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("Tag=")).collect();
        assert_eq!(lines.len(), 4, "{log}");
        assert!(log.contains("#[StartTime: 1700000000.000 (seconds since epoch)"), "{log}");
        assert!(log.contains("#[BaseTime: 1700000000.000 (seconds since epoch)]"), "{log}");
        let first: Vec<&str> = lines[0].splitn(5, ',').collect();
        assert_eq!(&first[..4], ["Tag=get@kv-0", "0.000", "1.000", "0.300"]);
        let decoded = histogram::decode(&STANDARD.decode(first[4]).expect("base64")).expect("histogram");
        assert_eq!(decoded.len(), 3, "both agents, the resent report once");
        assert!(lines[1].starts_with("Tag=get@kv-0#service,0.000,"));
        assert!(lines[2].starts_with("Tag=get@kv__1,1.000,1.000,5.003,"), "{}", lines[2]);
    }
}
