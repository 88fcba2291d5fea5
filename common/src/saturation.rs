//! Whether the load generator, not the target, limited the load in one
//! agent's interval: a pure judgement over what the agent measured about
//! itself, so that the agent, the tests and the documentation agree on
//! what "generator-saturated" means.
//!
//! An interval is saturated when the load fell behind and the generator is
//! the reason, or when the rate asked of the agent is beyond what it can
//! schedule at all:
//! - **behind**: in the open model, more than [`LATE_SHARE`] of the
//!   interval's planned starts (and at least [`MIN_LATE`]) were sent late
//!   (the odd late start is scheduling jitter); the closed model runs
//!   as fast as it can, so it is always "behind" in this sense;
//! - **the generator is the reason** when any of these holds:
//!   - `cpu`: the agent used at least [`CPU_SHARE`] of the CPU it may use
//!     (its affinity mask and cgroup quota);
//!   - `cpu_wait`: its threads waited for a CPU (ready to run, another
//!     process or a quota on the core) at least [`WAIT_SHARE`] as long as
//!     they ran, and at least a tenth of a core;
//!   - `runtime_lag`: its runtime woke a timer more than [`RUNTIME_LAG_US`] late;
//!   - `idle_slots` (open model): starts were late while the slots spent
//!     less than [`OCCUPANCY`] of the interval waiting on the target and
//!     under 1% of the operations failed: the target answered, but the
//!     generator did not send in time;
//! - `rate`: the agent's rate is above [`MAX_RATE_PER_AGENT`] or above
//!   [`MAX_RATE_PER_SLOT`] per slot (connections x pipeline): no agent
//!   schedules that, whatever the target.

/// Starts an agent can schedule per second, at most. Its arrival thread
/// handed at most about 2 million per second to slots that did nothing
/// else (1 s at 1e9/s, 64 slots, 2-core test machine); the bound is five
/// times that, so a rate above it is a mistake, not a hard target.
pub const MAX_RATE_PER_AGENT: f64 = 10_000_000.0;
/// Requests one slot (one of a connection's pipeline places) can carry per
/// second: one per microsecond, below any network round trip.
pub const MAX_RATE_PER_SLOT: f64 = 1_000_000.0;
/// The fewest late starts in an interval that count as "behind".
pub const MIN_LATE: u64 = 5;
/// The share of an interval's planned starts sent late that counts as
/// "behind": one in ten.
pub const LATE_SHARE: f64 = 0.10;
/// The share of the available CPU that counts as saturated.
pub const CPU_SHARE: f64 = 0.9;
/// Run-queue waiting over running that counts as starved of CPU.
pub const WAIT_SHARE: f64 = 0.5;
/// Timer lateness that counts as a saturated runtime.
pub const RUNTIME_LAG_US: u64 = 10_000;
/// Slot occupancy below which late starts are the generator's doing.
pub const OCCUPANCY: f64 = 0.5;

/// Why an interval was saturated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Rate,
    Cpu,
    CpuWait,
    RuntimeLag,
    IdleSlots,
}

impl Reason {
    pub const ALL: [Reason; 5] = [Self::Rate, Self::Cpu, Self::CpuWait, Self::RuntimeLag, Self::IdleSlots];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Cpu => "cpu",
            Self::CpuWait => "cpu_wait",
            Self::RuntimeLag => "runtime_lag",
            Self::IdleSlots => "idle_slots",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == name)
    }

    /// What the reason means, for the report.
    pub fn explain(self) -> &'static str {
        match self {
            Self::Rate => "the rate is beyond what an agent can schedule",
            Self::Cpu => "the agent used the CPU it may use",
            Self::CpuWait => "the agent's threads waited for a CPU",
            Self::RuntimeLag => "the agent's runtime ran late",
            Self::IdleSlots => "starts were late while the target answered quickly",
        }
    }
}

/// What an agent measured about itself over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Signals {
    /// `None` in the closed model.
    pub rate_per_s: Option<f64>,
    /// Connections x pipeline.
    pub slots: u64,
    /// The interval's length in seconds (the last one may be short).
    pub seconds: f64,
    /// Requests sent more than 1 ms late (never-sent starts excluded).
    pub late_sent: u64,
    pub ops: u64,
    pub errors: u64,
    /// Percent of one core.
    pub cpu_percent: f64,
    /// Percent of one core this process may use.
    pub cpu_available_percent: f64,
    /// Time the process's threads were ready but waited for a CPU, percent
    /// of one core.
    pub cpu_wait_percent: f64,
    pub runtime_lag_us: u64,
    /// Time the slots spent waiting on the target, over slots x interval.
    pub slot_occupancy: f64,
}

/// The largest rate one agent with `slots` slots can schedule.
pub fn max_rate(slots: u64) -> f64 {
    MAX_RATE_PER_AGENT.min(MAX_RATE_PER_SLOT * slots.max(1) as f64)
}

/// The note for a run whose open-model rate no agent can schedule, naming
/// the field and the bounds; `None` for a rate within them. `connections`
/// is the run's total, split evenly over `agents`.
pub fn rate_beyond_bounds(rate: f64, agents: u32, connections: u32, pipeline: u32) -> Option<String> {
    let agents = agents.max(1);
    let per_agent = rate / f64::from(agents);
    let slots = u64::from(connections.max(1)) * u64::from(pipeline.max(1));
    let per_slot = rate / slots as f64;
    if per_agent <= MAX_RATE_PER_AGENT && per_slot <= MAX_RATE_PER_SLOT {
        return None;
    }
    Some(format!(
        "load.rate {rate:.0}/s is beyond what the generator can schedule: {per_agent:.0}/s per agent over {agents} \
         agents (an agent schedules at most {MAX_RATE_PER_AGENT:.0}/s) and {per_slot:.0}/s per slot over {slots} \
         slots (connections x pipeline; a slot carries at most {MAX_RATE_PER_SLOT:.0}/s); the run's figures describe \
         the generator, not the target: lower load.rate, or add agents or connections"
    ))
}

/// The reasons the generator limited the load in this interval; empty when
/// it did not.
pub fn judge(s: &Signals) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if s.rate_per_s.is_some_and(|rate| rate > max_rate(s.slots)) {
        reasons.push(Reason::Rate);
    }
    let behind = match s.rate_per_s {
        None => true,
        Some(rate) => {
            let planned = rate * s.seconds.max(0.0);
            s.late_sent >= MIN_LATE && s.late_sent as f64 > LATE_SHARE * planned
        }
    };
    if !behind {
        return reasons;
    }
    if s.cpu_available_percent > 0.0 && s.cpu_percent >= CPU_SHARE * s.cpu_available_percent {
        reasons.push(Reason::Cpu);
    }
    if s.cpu_wait_percent >= 10.0 && s.cpu_wait_percent >= WAIT_SHARE * s.cpu_percent {
        reasons.push(Reason::CpuWait);
    }
    if s.runtime_lag_us > RUNTIME_LAG_US {
        reasons.push(Reason::RuntimeLag);
    }
    let few_errors = s.errors as f64 <= 0.01 * s.ops as f64;
    if s.rate_per_s.is_some() && s.slot_occupancy < OCCUPANCY && few_errors && s.ops > 0 {
        reasons.push(Reason::IdleSlots);
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(rate: f64) -> Signals {
        Signals {
            rate_per_s: Some(rate),
            slots: 8,
            seconds: 1.0,
            ops: rate as u64,
            cpu_percent: 20.0,
            cpu_available_percent: 200.0,
            slot_occupancy: 0.2,
            ..Signals::default()
        }
    }

    #[test]
    fn a_run_that_keeps_up_is_not_saturated_however_busy() {
        let busy = Signals { cpu_percent: 199.0, cpu_wait_percent: 150.0, runtime_lag_us: 50_000, ..open(1000.0) };
        assert!(judge(&busy).is_empty());
        // A few late starts are jitter, not falling behind.
        assert!(judge(&Signals { late_sent: 4, ..busy }).is_empty());
        assert!(judge(&Signals { late_sent: 9000, ..open(100_000.0) }).is_empty(), "9% late is jitter");
    }

    #[test]
    fn late_starts_with_a_starved_generator_are_saturation() {
        let behind = Signals { late_sent: 500, ..open(1000.0) };
        assert_eq!(judge(&behind), vec![Reason::IdleSlots]);
        let cpu = Signals { cpu_percent: 185.0, slot_occupancy: 0.9, ..behind };
        assert_eq!(judge(&cpu), vec![Reason::Cpu]);
        let wait = Signals { cpu_percent: 40.0, cpu_wait_percent: 35.0, slot_occupancy: 0.9, ..behind };
        assert_eq!(judge(&wait), vec![Reason::CpuWait]);
        let lag = Signals { runtime_lag_us: 20_000, slot_occupancy: 0.9, ..behind };
        assert_eq!(judge(&lag), vec![Reason::RuntimeLag]);
    }

    #[test]
    fn late_starts_behind_a_slow_target_are_not_the_generator() {
        // The slots were busy waiting on the target: it is the target (or
        // too few connections) that held the load back.
        let slow = Signals { late_sent: 500, slot_occupancy: 0.97, ..open(1000.0) };
        assert!(judge(&slow).is_empty());
        // Failing fast (a refused connection) is not the generator either.
        let failing = Signals { late_sent: 500, errors: 900, ..open(1000.0) };
        assert!(judge(&failing).is_empty());
    }

    #[test]
    fn the_closed_model_is_saturated_only_by_cpu() {
        let closed = Signals { rate_per_s: None, slot_occupancy: 0.1, ..open(0.0) };
        assert!(judge(&closed).is_empty());
        assert_eq!(judge(&Signals { cpu_percent: 190.0, ..closed }), vec![Reason::Cpu]);
    }

    #[test]
    fn an_impossible_rate_is_flagged_whatever_else() {
        assert_eq!(max_rate(2), 2_000_000.0);
        assert_eq!(max_rate(1000), MAX_RATE_PER_AGENT);
        let absurd = Signals { late_sent: 0, ..open(1e9) };
        assert_eq!(judge(&absurd), vec![Reason::Rate]);
        assert!(Reason::ALL.iter().all(|r| Reason::parse(r.as_str()) == Some(*r)));
        assert_eq!(rate_beyond_bounds(1_000_000.0, 1, 8, 1), None);
        let note = rate_beyond_bounds(1e9, 1, 2, 1).expect("beyond");
        assert!(note.contains("load.rate 1000000000/s") && note.contains("at most 10000000/s"), "{note}");
        assert!(rate_beyond_bounds(3_000_000.0, 1, 2, 1).expect("per slot").contains("1500000/s per slot"));
    }
}
