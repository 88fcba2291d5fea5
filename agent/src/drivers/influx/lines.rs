//! Points in InfluxDB line protocol, with the series model of inch and
//! TSBS: every combination of the tags' values is one series, and an
//! agent's part of the run is a range of those series.
//!
//! Point `p` of an agent belongs to series `start + p % count` and to round
//! `p / count`; its time is `base + round * step` (in the write's
//! precision). So no two points of a run share a series and a time, and
//! InfluxDB keeps every one: its `count(*)` equals the points written.

use std::io::Write;

/// How an agent's points are made.
#[derive(Debug, Clone)]
pub struct Points {
    pub measurement: String,
    /// Tag keys and their cardinalities, in key order.
    pub tags: Vec<(String, u64)>,
    pub fields: u32,
    /// The agent's first series and how many it has.
    pub start: u64,
    pub count: u64,
    /// The first round's time and the time between rounds.
    pub base: u64,
    pub step: u64,
    pub seed: u64,
}

/// A field value in 0.00..100.00 from the point and field (splitmix64).
fn value(seed: u64, point: u64, field: u32) -> u64 {
    let mut x = seed ^ point.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(field).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) % 10_000
}

impl Points {
    /// The series of point `p` (a number over the whole run).
    pub fn series_of(&self, p: u64) -> u64 {
        self.start + p % self.count.max(1)
    }

    /// Appends the tags of series `series`: each tag's value is that
    /// series' digit in the mixed radix of the cardinalities.
    fn push_tags(&self, series: u64, out: &mut Vec<u8>) {
        let mut divisor: u64 = self.tags.iter().map(|(_, n)| (*n).max(1)).product();
        for (key, values) in &self.tags {
            divisor /= (*values).max(1);
            let digit = (series / divisor.max(1)) % (*values).max(1);
            out.push(b',');
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            out.extend_from_slice(key.as_bytes());
            out.push(b'_');
            out.extend_from_slice(itoa::Buffer::new().format(digit).as_bytes());
        }
    }

    /// Appends points `first .. first + n` as lines; returns how many.
    pub fn write(&self, first: u64, n: u32, out: &mut Vec<u8>) -> u32 {
        let mut number = itoa::Buffer::new();
        for p in first..first + u64::from(n) {
            let series = self.series_of(p);
            let round = p / self.count.max(1);
            out.extend_from_slice(self.measurement.as_bytes());
            self.push_tags(series, out);
            out.push(b' ');
            for field in 0..self.fields {
                if field > 0 {
                    out.push(b',');
                }
                let v = value(self.seed, p, field);
                let _ = write!(out, "usage_{field}={}.{:02}", v / 100, v % 100);
            }
            out.push(b' ');
            out.extend_from_slice(number.format(self.base + round * self.step).as_bytes());
            out.push(b'\n');
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(tags: &[(&str, u64)], start: u64, count: u64) -> Points {
        Points {
            measurement: "cpu".into(),
            tags: tags.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            fields: 2,
            start,
            count,
            base: 1_000,
            step: 10,
            seed: 3,
        }
    }

    #[test]
    fn every_series_of_the_tags_product_is_written_once_per_round() {
        let model = points(&[("host", 3), ("region", 2)], 0, 6);
        let mut out = Vec::new();
        assert_eq!(model.write(0, 12, &mut out), 12);
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12);
        let keys: std::collections::BTreeSet<(String, String)> = lines
            .iter()
            .map(|line| {
                let mut parts = line.split(' ');
                let series = parts.next().expect("series").to_string();
                let time = parts.nth(1).expect("time").to_string();
                (series, time)
            })
            .collect();
        assert_eq!(keys.len(), 12, "no two points share a series and a time: {text}");
        let series: std::collections::BTreeSet<&str> =
            lines.iter().map(|l| l.split(' ').next().unwrap_or("")).collect();
        assert_eq!(series.len(), 6, "3 hosts x 2 regions: {series:?}");
        assert!(series.contains("cpu,host=host_2,region=region_1"), "{series:?}");
        assert!(lines[0].ends_with(" 1000") && lines[6].ends_with(" 1010"), "round 1 is a step later: {text}");
        let fields = lines[0].split(' ').nth(1).expect("fields");
        assert!(fields.starts_with("usage_0=") && fields.contains(",usage_1="), "{fields}");
        let value: f64 =
            fields.split(',').next().and_then(|f| f.split('=').nth(1)).and_then(|v| v.parse().ok()).expect("a float");
        assert!((0.0..100.0).contains(&value));
    }

    #[test]
    fn an_agents_points_stay_in_its_series_range() {
        let model = points(&[("host", 100)], 40, 20);
        let mut out = Vec::new();
        model.write(0, 45, &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        for line in text.lines() {
            let host: u64 = line
                .split(['=', ' '])
                .nth(1)
                .and_then(|h| h.strip_prefix("host_"))
                .and_then(|n| n.parse().ok())
                .expect("host");
            assert!((40..60).contains(&host), "{line}");
        }
    }
}
