//! The agent's own health: CPU used by this process, reported with every
//! interval so that an overloaded load generator is visible in the report.

use std::time::Instant;

/// Clock ticks per second of `/proc/self/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

pub struct CpuMeter {
    last_ticks: Option<u64>,
    last_at: Instant,
}

impl Default for CpuMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuMeter {
    pub fn new() -> Self {
        Self { last_ticks: process_ticks(), last_at: Instant::now() }
    }

    /// CPU use of this process since the last call, in percent of one core.
    pub fn percent_since_last(&mut self) -> f64 {
        let now = Instant::now();
        let ticks = process_ticks();
        let percent = match (self.last_ticks, ticks) {
            (Some(before), Some(after)) => {
                let seconds = now.duration_since(self.last_at).as_secs_f64();
                if seconds > 0.0 {
                    100.0 * (after.saturating_sub(before)) as f64 / TICKS_PER_SECOND / seconds
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        self.last_ticks = ticks;
        self.last_at = now;
        percent
    }
}

/// User plus system ticks of this process; `None` where /proc is missing.
pub fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; fields are counted after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_shows_up_as_cpu() {
        let mut meter = CpuMeter::new();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(meter.percent_since_last() > 20.0);
    }
}
