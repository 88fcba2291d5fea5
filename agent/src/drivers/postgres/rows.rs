//! The rows of the `metrics` workload: the multi-row INSERT statement, the
//! generated rows, and their binary COPY encoding.

use chrono::{DateTime, Utc};

use super::{COLUMNS_PER_ROW, Plan, PlanTimes, REGIONS, USAGE, columns};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
pub(super) const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// `INSERT INTO t (...) VALUES ($1, ..., $14), ($15, ...), ...`.
pub(super) fn insert_statement(table: &str, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns());
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..COLUMNS_PER_ROW {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(itoa::Buffer::new().format(row * COLUMNS_PER_ROW + column + 1));
        }
        sql.push(')');
    }
    sql
}

/// One generated row.
pub(super) struct MetricRow {
    pub(super) time: DateTime<Utc>,
    pub(super) host: u64,
    pub(super) usage: [f64; USAGE.len()],
}

impl MetricRow {
    /// Row `index` of the agent's stream: hosts take turns; the time is
    /// `clock` or, in a series, one step later for each round of hosts.
    /// The figures are a cheap deterministic function of the index.
    pub(super) fn new(plan: &Plan, index: u64, clock: DateTime<Utc>) -> Self {
        let host = plan.host_start + index % plan.host_count;
        let round = (index / plan.host_count).min(i32::MAX as u64) as i32;
        let time = match plan.times {
            PlanTimes::Clock => clock,
            PlanTimes::Series { base, step } => base + step * round,
        };
        let mut usage = [0.0; USAGE.len()];
        let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ host;
        for value in &mut usage {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *value = (x % 10_000) as f64 / 100.0;
        }
        Self { time, host, usage }
    }

    pub(super) fn hostname<'p>(&self, plan: &'p Plan) -> std::borrow::Cow<'p, str> {
        match plan.hostnames.get((self.host - plan.host_start) as usize) {
            Some(name) => name.as_str().into(),
            None => format!("host_{}", self.host).into(),
        }
    }

    pub(super) fn region(&self) -> &'static str {
        REGIONS[(self.host % REGIONS.len() as u64) as usize]
    }

    pub(super) fn datacenter<'p>(&self, plan: &'p Plan) -> &'p str {
        &plan.datacenters[(self.host % 12) as usize]
    }
}

/// Rows in PostgreSQL's binary COPY format: the signature, flags and
/// header extension, then per row the field count and each field as a
/// length and its binary value (timestamptz: microseconds since
/// 2000-01-01; float8: big-endian IEEE 754), and -1 at the end.
pub(super) fn binary_copy(plan: &Plan, rows: &[MetricRow]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + rows.len() * (2 + COLUMNS_PER_ROW * 4 + 8 + 40 + USAGE.len() * 8) + 2);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    let text = |out: &mut Vec<u8>, value: &str| {
        out.extend_from_slice(&(value.len() as i32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    };
    for row in rows {
        out.extend_from_slice(&(COLUMNS_PER_ROW as i16).to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&(row.time.timestamp_micros() - PG_EPOCH_US).to_be_bytes());
        text(&mut out, &row.hostname(plan));
        text(&mut out, row.region());
        text(&mut out, row.datacenter(plan));
        for value in row.usage {
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}
