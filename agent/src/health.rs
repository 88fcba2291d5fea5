//! The agent's own health, reported with every interval so that an
//! overloaded load generator is visible in the report: CPU used by this
//! process, how long its threads waited for a CPU, the CPU it may use, and
//! how late its runtime wakes timers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/self/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// One interval's CPU figures, in percent of one core.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuSample {
    pub cpu_percent: f64,
    /// Threads ready to run but waiting for a CPU.
    pub wait_percent: f64,
    /// The CPU this process may use (affinity mask and cgroup quota).
    pub available_percent: f64,
}

pub struct CpuMeter {
    last_ticks: Option<u64>,
    last_wait_ns: Option<u64>,
    last_at: Instant,
}

impl Default for CpuMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuMeter {
    pub fn new() -> Self {
        Self { last_ticks: process_ticks(), last_wait_ns: run_queue_wait_ns(), last_at: Instant::now() }
    }

    /// The CPU figures since the last call.
    pub fn sample(&mut self) -> CpuSample {
        let now = Instant::now();
        let seconds = now.duration_since(self.last_at).as_secs_f64();
        let (ticks, wait_ns) = (process_ticks(), run_queue_wait_ns());
        let per_second = |delta: f64| if seconds > 0.0 { 100.0 * delta / seconds } else { 0.0 };
        let cpu_percent = match (self.last_ticks, ticks) {
            (Some(before), Some(after)) => per_second(after.saturating_sub(before) as f64 / TICKS_PER_SECOND),
            _ => 0.0,
        };
        // Threads that ended since take their waiting with them; the sum
        // over the live ones never goes below zero.
        let wait_percent = match (self.last_wait_ns, wait_ns) {
            (Some(before), Some(after)) => per_second(after.saturating_sub(before) as f64 / 1e9),
            _ => 0.0,
        };
        (self.last_ticks, self.last_wait_ns, self.last_at) = (ticks, wait_ns, now);
        CpuSample { cpu_percent, wait_percent, available_percent: available_cpus() * 100.0 }
    }
}

/// The CPUs this process may use: its affinity mask and cgroup quota, as
/// the standard library reads them.
pub fn available_cpus() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
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

/// This process's resident memory in bytes (`VmRSS` of
/// `/proc/self/status`); `None` where /proc is missing.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Nanoseconds this process's live threads spent ready to run but waiting
/// on a run queue (the second field of each thread's `schedstat`); `None`
/// where the kernel does not keep it.
pub fn run_queue_wait_ns() -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else { continue };
        if let Some(wait) = text.split_whitespace().nth(1).and_then(|w| w.parse::<u64>().ok()) {
            total = total.saturating_add(wait);
            any = true;
        }
    }
    any.then_some(total)
}

/// How late the runtime wakes a timer: a task sleeps [`PROBE_EVERY`] at a
/// time and keeps the largest lateness until it is taken.
#[derive(Clone, Default)]
pub struct RuntimeLag(Arc<AtomicU64>);

const PROBE_EVERY: Duration = Duration::from_millis(10);

impl RuntimeLag {
    /// Starts the probe on the current runtime; it ends when `stop` resolves.
    pub fn probe(&self, stop: impl Future<Output = ()> + Send + 'static) {
        let lag = Arc::clone(&self.0);
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                let due = Instant::now() + PROBE_EVERY;
                tokio::select! {
                    () = tokio::time::sleep_until(due.into()) => {}
                    () = &mut stop => return,
                }
                let late = Instant::now().saturating_duration_since(due).as_micros() as u64;
                lag.fetch_max(late, Ordering::Relaxed);
            }
        });
    }

    /// The largest lateness since the last call, in microseconds.
    pub fn take_us(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
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
        let sample = meter.sample();
        assert!(sample.cpu_percent > 20.0, "{sample:?}");
        assert!(sample.available_percent >= 100.0, "{sample:?}");
        assert!(run_queue_wait_ns().is_some(), "this kernel keeps schedstat");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_shows_up_as_lag() {
        let lag = RuntimeLag::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        lag.probe(async move {
            let _ = stopped.await;
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let calm = lag.take_us();
        // Hold the only worker thread: the probe's timer fires late.
        std::thread::sleep(Duration::from_millis(60));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let blocked = lag.take_us();
        let _ = stop.send(());
        assert!(blocked >= 40_000, "blocked {blocked}us, calm {calm}us");
    }
}
