//! `load.stages`: a load that changes during the run. Each stage ramps
//! linearly, over its duration, from where the one before ended (for the
//! first: from `load.rate` or `load.connections` when given, else from its
//! own target) to its own target: the open model's rate (operations per
//! second) or the closed model's connections. A target repeated holds it.
//!
//! Pure arithmetic on a piecewise-linear target: its value at a time, its
//! integral (the operations an open model plans up to a time) and the
//! inverse of that integral (when the n-th operation is due), used by the
//! agents' arrival threads and the coordinator's planned figures alike.

use std::time::Duration;

/// One stage: its length and the target it ramps to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// The stages of a run and the target they start from.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    pub start: f64,
    pub stages: Vec<Stage>,
}

impl Stages {
    /// The whole length of the stages.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The largest target (the start's included).
    pub fn peak(&self) -> f64 {
        self.stages.iter().map(|s| s.target).fold(self.start, f64::max)
    }

    /// The same stages with every target (and the start) times `factor`:
    /// one agent's share.
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            start: self.start * factor,
            stages: self.stages.iter().map(|s| Stage { duration: s.duration, target: s.target * factor }).collect(),
        }
    }

    /// Each stage as (begins at, ends at, from, to), seconds and targets.
    pub fn segments(&self) -> impl Iterator<Item = (f64, f64, f64, f64)> + '_ {
        let mut at = 0.0;
        let mut from = self.start;
        self.stages.iter().map(move |stage| {
            let begin = at;
            at += stage.duration.as_secs_f64();
            let segment = (begin, at, from, stage.target);
            from = stage.target;
            segment
        })
    }

    /// The stage (0-based) under way `t` seconds after the start; past the
    /// end, the last.
    pub fn stage_at(&self, t: f64) -> usize {
        self.segments().position(|(_, end, _, _)| t < end).unwrap_or(self.stages.len().saturating_sub(1))
    }

    /// The target `t` seconds after the start (the last one past the end).
    pub fn target_at(&self, t: f64) -> f64 {
        for (begin, end, from, to) in self.segments() {
            if t < end {
                let length = end - begin;
                return if length > 0.0 { from + (to - from) * ((t - begin).max(0.0) / length) } else { to };
            }
        }
        self.stages.last().map_or(self.start, |s| s.target)
    }

    /// The integral of the target from 0 to `t` (capped at the end): the
    /// operations an open model plans by then.
    pub fn cumulative(&self, t: f64) -> f64 {
        let mut sum = 0.0;
        for (begin, end, from, to) in self.segments() {
            if t <= begin {
                break;
            }
            let upto = t.min(end);
            let span = upto - begin;
            let length = end - begin;
            let reached = if length > 0.0 { from + (to - from) * (span / length) } else { to };
            sum += span * (from + reached) / 2.0;
        }
        sum
    }

    /// The mean target between `a` and `b` seconds.
    pub fn mean(&self, a: f64, b: f64) -> f64 {
        if b > a { (self.cumulative(b) - self.cumulative(a)) / (b - a) } else { self.target_at(a) }
    }

    /// The first time (seconds) at which the integral reaches `n`; `None`
    /// when the stages end first.
    pub fn time_of(&self, n: f64) -> Option<f64> {
        let mut before = 0.0;
        for (begin, end, from, to) in self.segments() {
            let length = end - begin;
            let area = length * (from + to) / 2.0;
            if n <= before + area && area > 0.0 {
                // Solve from*x + (to-from)/(2*length)*x^2 = n - before for x in [0, length].
                let need = n - before;
                let slope = (to - from) / length;
                let x = if need <= 0.0 {
                    0.0
                } else if slope.abs() < 1e-12 {
                    need / from
                } else {
                    let discriminant = (from * from + 2.0 * slope * need).max(0.0);
                    // The stable root of slope/2 x^2 + from x - need = 0.
                    2.0 * need / (from + discriminant.sqrt())
                };
                return Some(begin + x.clamp(0.0, length));
            }
            before += area;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages() -> Stages {
        // 10 s at 100/s, a ramp to 300/s over 10 s, then 10 s at 300/s.
        Stages {
            start: 100.0,
            stages: vec![
                Stage { duration: Duration::from_secs(10), target: 100.0 },
                Stage { duration: Duration::from_secs(10), target: 300.0 },
                Stage { duration: Duration::from_secs(10), target: 300.0 },
            ],
        }
    }

    #[test]
    fn the_target_ramps_linearly_and_its_integral_adds_up() {
        let s = stages();
        assert_eq!(s.duration(), Duration::from_secs(30));
        assert_eq!(s.peak(), 300.0);
        assert_eq!(s.target_at(5.0), 100.0);
        assert_eq!(s.target_at(15.0), 200.0);
        assert_eq!(s.target_at(29.0), 300.0);
        assert_eq!(s.target_at(99.0), 300.0);
        assert_eq!(s.stage_at(0.0), 0);
        assert_eq!(s.stage_at(10.0), 1);
        assert_eq!(s.stage_at(25.0), 2);
        assert!((s.cumulative(10.0) - 1000.0).abs() < 1e-9);
        assert!((s.cumulative(20.0) - 3000.0).abs() < 1e-9);
        assert!((s.cumulative(30.0) - 6000.0).abs() < 1e-9);
        assert!((s.cumulative(99.0) - 6000.0).abs() < 1e-9, "capped at the end");
        assert!((s.mean(14.0, 15.0) - 190.0).abs() < 1e-9);
    }

    #[test]
    fn the_time_of_the_nth_operation_inverts_the_integral() {
        let s = stages();
        for n in [0.0, 1.0, 999.0, 1000.0, 1500.0, 2999.0, 3000.0, 5999.0] {
            let t = s.time_of(n).expect("within the stages");
            assert!((s.cumulative(t) - n).abs() < 1e-6, "{n}: {t}");
        }
        assert_eq!(s.time_of(6000.5), None);
        // A ramp down to 0 ends its operations at the stage's end.
        let down = Stages { start: 100.0, stages: vec![Stage { duration: Duration::from_secs(2), target: 0.0 }] };
        assert!((down.time_of(100.0).expect("last") - 2.0).abs() < 1e-6);
        assert!((down.cumulative(1.0) - 75.0).abs() < 1e-9);
        assert_eq!(down.scaled(0.5).cumulative(2.0), 50.0);
        // A ramp up from 0: the first operation is due at once, the rest as the rate grows.
        let up = Stages { start: 0.0, stages: vec![Stage { duration: Duration::from_secs(2), target: 100.0 }] };
        assert_eq!(up.time_of(0.0), Some(0.0));
        assert!((up.time_of(25.0).expect("on the ramp") - 1.0).abs() < 1e-9);
    }
}
