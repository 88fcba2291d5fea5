//! What the terminal dashboard knows of the run: the coordinator's live
//! events applied in order (the same JSON the web dashboard gets), and the
//! series its charts draw. No terminal here, so it is tested on its own.

use std::collections::{BTreeMap, BTreeSet};

use stampede_common::live::{LiveStatus, LiveWindow, LiveWindows};

/// How a run ended, from its `end` event.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct End {
    pub state: String,
    pub error: Option<String>,
}

/// A question the dashboard waits for an answer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// `q` in `stampede run`: cancel the run?
    Cancel,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub run_id: String,
    /// The run's windows by their start (seconds since the start).
    pub windows: BTreeMap<u64, LiveWindow>,
    pub status: Option<LiveStatus>,
    pub end: Option<End>,
    /// The state and message of the newest WatchRun update (queued,
    /// preparing: what the run waits for).
    pub state: String,
    pub message: String,
    /// Setup's or teardown's progress: what to show, and the part done
    /// (`None` when the total is not known).
    pub phase: Option<(String, Option<f64>)>,
    /// Which operation the latency chart shows (an index into
    /// [`Model::operations`]).
    pub operation: usize,
    pub prompt: Option<Prompt>,
    /// The user asked to cancel the run; its report is on its way.
    pub cancelling: bool,
    /// The run has ended and its report waits for a key.
    pub held: bool,
    /// Events applied, and live events that could not be read.
    pub events: u64,
    pub unreadable: u64,
}

/// A chart's series: (seconds since the start, value) points.
pub type Points = Vec<(f64, f64)>;

impl Model {
    pub fn new(run_id: &str) -> Self {
        Self { run_id: run_id.to_string(), ..Self::default() }
    }

    /// Applies one live event (`windows`, `status` or `end`). An event
    /// that cannot be read is counted, and the display goes on.
    pub fn apply(&mut self, name: &str, json: &str) {
        self.events += 1;
        let applied = match name {
            "windows" => serde_json::from_str::<LiveWindows>(json).map(|w| self.apply_windows(w)),
            "status" => serde_json::from_str::<LiveStatus>(json).map(|s| {
                self.state.clone_from(&s.state);
                self.status = Some(s);
            }),
            "end" => serde_json::from_str::<End>(json).map(|e| {
                self.state.clone_from(&e.state);
                self.end = Some(e);
            }),
            _ => Ok(()),
        };
        if applied.is_err() {
            self.unreadable += 1;
        }
    }

    fn apply_windows(&mut self, windows: LiveWindows) {
        if windows.reset {
            self.windows.clear();
        }
        for window in windows.windows {
            self.windows.insert(window.start_s, window);
        }
    }

    /// A WatchRun update's phase (setup, teardown), or its end.
    pub fn phase(&mut self, phase: Option<&stampede_proto::v1::Phase>) {
        self.phase = phase.map(|p| {
            let label = match p.total {
                0 => format!("{} on {} agent(s): {} {}", p.name, p.agents, p.done, p.unit),
                total => format!("{} on {} agent(s): {}/{total} {}", p.name, p.agents, p.done, p.unit),
            };
            (label, (p.total > 0).then(|| p.done as f64 / p.total as f64))
        });
    }

    /// The state and message of a WatchRun update.
    pub fn watched(&mut self, state: &str, message: &str) {
        if self.end.is_none() && !state.is_empty() {
            self.state = state.to_string();
        }
        // What the run waited for ("starting on 2 agents") is over once an
        // update without it comes.
        message.clone_into(&mut self.message);
    }

    /// Every operation the run measured, sorted.
    pub fn operations(&self) -> Vec<&str> {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for window in self.windows.values() {
            names.extend(window.operations.keys().map(String::as_str));
        }
        if let Some(status) = &self.status {
            names.extend(status.operations.keys().map(String::as_str));
        }
        names.into_iter().collect()
    }

    /// The operation the latency chart shows.
    pub fn shown_operation(&self) -> Option<&str> {
        let operations = self.operations();
        if operations.is_empty() { None } else { Some(operations[self.operation % operations.len()]) }
    }

    pub fn next_operation(&mut self) {
        let count = self.operations().len().max(1);
        self.operation = (self.operation + 1) % count;
    }

    /// Operations and errors per second of each window, over all
    /// operations, at the window's middle.
    pub fn throughput(&self) -> (Points, Points) {
        let mut ops = Vec::with_capacity(self.windows.len());
        let mut errors = Vec::with_capacity(self.windows.len());
        for window in self.windows.values() {
            let length = window.length_s.max(1) as f64;
            let x = window.start_s as f64 + length / 2.0;
            let count: u64 = window.operations.values().map(|s| s.count).sum();
            let failed: u64 = window.operations.values().map(|s| s.errors).sum();
            ops.push((x, count as f64 / length));
            errors.push((x, failed as f64 / length));
        }
        (ops, errors)
    }

    /// The shown operation's p50, p99 and p99.9 in each window, in
    /// microseconds (from the window's merged histogram, exact); windows
    /// where it did not run are left out.
    pub fn latency(&self) -> [Points; 3] {
        let mut lines: [Points; 3] = Default::default();
        let Some(operation) = self.shown_operation() else { return lines };
        for window in self.windows.values() {
            let Some(series) = window.operations.get(operation).filter(|s| s.count > 0) else { continue };
            let x = window.start_s as f64 + window.length_s.max(1) as f64 / 2.0;
            let l = series.latency_us;
            for (line, value) in lines.iter_mut().zip([l.p50, l.p99, l.p999]) {
                line.push((x, value as f64));
            }
        }
        lines
    }

    /// Seconds the charts span: from the first window to the newest
    /// second known.
    pub fn time_span(&self) -> (f64, f64) {
        let first = self.windows.keys().next().map_or(0, |s| *s) as f64;
        let last_window = self.windows.values().next_back().map_or(0, |w| w.start_s + w.length_s) as f64;
        let elapsed = self.status.as_ref().map_or(0, |s| s.elapsed_s) as f64;
        let last = last_window.max(elapsed).max(first + 1.0);
        (first, last)
    }

    /// Whether the run has ended: its end came on the live stream, or its
    /// report on the watch (which may come first; the display then holds).
    fn ended(&self) -> bool {
        self.end.is_some() || self.held
    }

    /// Seconds left of the planned duration, and the part done (0..=1).
    pub fn progress(&self) -> (u64, f64) {
        let Some(status) = &self.status else { return (0, 0.0) };
        if self.ended() {
            return (0, 1.0);
        }
        let duration = status.duration_s.max(1);
        let elapsed = status.elapsed_s.min(duration);
        if status.operations_total > 0 {
            // A count-limited run: how far through its operations.
            let done = status.operations_done.min(status.operations_total);
            return (duration - elapsed, done as f64 / status.operations_total as f64);
        }
        (duration - elapsed, elapsed as f64 / duration as f64)
    }

    /// The progress gauge's words.
    pub fn progress_label(&self) -> String {
        let Some(s) = &self.status else { return "waiting for the run's first figures".to_string() };
        let (left, done) = self.progress();
        let phase = if s.elapsed_s < s.warmup_s && !self.ended() { " (warm-up)" } else { "" };
        if s.operations_total > 0 {
            let limit = match (self.ended(), s.duration_given) {
                (true, _) => ": ended".to_string(),
                (false, true) => format!(", {} left at most", clock(left)),
                (false, false) => String::new(),
            };
            return format!(
                "{} of {} operations ({:.0}%), {} s{limit}{phase}",
                s.operations_done.min(s.operations_total),
                s.operations_total,
                done * 100.0,
                s.elapsed_s
            );
        }
        if self.ended() {
            format!("{} s of {} s: ended", s.elapsed_s.min(s.duration_s), s.duration_s)
        } else {
            format!("{} s of {} s, {} left{phase}", s.elapsed_s.min(s.duration_s), s.duration_s, clock(left))
        }
    }
}

/// Seconds left, as `45 s`, `12m05s` or `3h20m`.
pub fn clock(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_common::live::{LiveLatency, LiveSeries};

    fn window(start_s: u64, length_s: u64, ops: &[(&str, u64, u64, u64)]) -> LiveWindow {
        LiveWindow {
            start_s,
            length_s,
            operations: ops
                .iter()
                .map(|(name, count, errors, p99)| {
                    let latency_us = LiveLatency { p50: p99 / 2, p90: p99 - 1, p99: *p99, p999: p99 * 2, max: p99 * 3 };
                    (name.to_string(), LiveSeries { count: *count, errors: *errors, latency_us })
                })
                .collect(),
            nodes: BTreeMap::new(),
        }
    }

    fn windows(reset: bool, windows: Vec<LiveWindow>) -> String {
        serde_json::to_string(&LiveWindows { reset, windows }).expect("json")
    }

    #[test]
    fn windows_replace_their_older_copies_and_a_reset_replaces_all() {
        let mut model = Model::new("r");
        model.apply("windows", &windows(false, vec![window(2, 1, &[("get", 100, 1, 800)])]));
        model.apply("windows", &windows(false, vec![window(2, 1, &[("get", 150, 2, 900)]), window(3, 1, &[])]));
        let (ops, errors) = model.throughput();
        assert_eq!(ops, vec![(2.5, 150.0), (3.5, 0.0)]);
        assert_eq!(errors, vec![(2.5, 2.0), (3.5, 0.0)]);
        // Merged into 2-second windows: the rate is per second of each.
        model.apply("windows", &windows(true, vec![window(2, 2, &[("get", 300, 4, 1000), ("set", 100, 0, 50)])]));
        assert_eq!(model.throughput().0, vec![(3.0, 200.0)]);
        assert_eq!(model.operations(), vec!["get", "set"]);
        assert_eq!(model.latency()[1], vec![(3.0, 1000.0)]);
        model.next_operation();
        assert_eq!(model.shown_operation(), Some("set"));
        assert_eq!(model.latency(), [vec![(3.0, 25.0)], vec![(3.0, 50.0)], vec![(3.0, 100.0)]]);
        model.next_operation();
        assert_eq!(model.shown_operation(), Some("get"));
    }

    #[test]
    fn unreadable_events_are_counted_and_the_model_goes_on() {
        let mut model = Model::new("r");
        model.apply("status", "{not json");
        model.apply("runs", "[]");
        assert_eq!((model.events, model.unreadable), (2, 1));
        assert!(model.status.is_none());
        let status = LiveStatus { elapsed_s: 15, duration_s: 20, state: "running".into(), ..LiveStatus::default() };
        model.apply("status", &serde_json::to_string(&status).expect("json"));
        assert_eq!(model.progress(), (5, 0.75));
        model.watched("running", "");
        model.apply("end", r#"{"run_id":"r","state":"passed","error":null,"report":"runs/r/report.html"}"#);
        assert_eq!(model.progress(), (0, 1.0));
        model.watched("running", "late update");
        assert_eq!(model.state, "passed");
        assert_eq!(model.message, "late update");
    }

    #[test]
    fn a_count_limited_run_shows_its_operations_not_the_days_limit() {
        let mut model = Model::new("r");
        let status = LiveStatus {
            elapsed_s: 6,
            duration_s: 86_400,
            operations_done: 25_000,
            operations_total: 100_000,
            duration_given: false,
            state: "running".into(),
            ..LiveStatus::default()
        };
        model.apply("status", &serde_json::to_string(&status).expect("json"));
        assert_eq!(model.progress().1, 0.25);
        assert_eq!(model.progress_label(), "25000 of 100000 operations (25%), 6 s");
        let given = LiveStatus { duration_s: 60, duration_given: true, ..status };
        model.apply("status", &serde_json::to_string(&given).expect("json"));
        assert_eq!(model.progress_label(), "25000 of 100000 operations (25%), 6 s, 54 s left at most");
    }

    #[test]
    fn a_held_run_is_ended_before_the_live_streams_end_comes() {
        let mut model = Model::new("r");
        let status = LiveStatus { elapsed_s: 30, duration_s: 30, state: "running".into(), ..LiveStatus::default() };
        model.apply("status", &serde_json::to_string(&status).expect("json"));
        assert_eq!(model.progress_label(), "30 s of 30 s, 0 s left");
        // The report came on the watch first: the display holds the end.
        model.held = true;
        assert_eq!(model.progress_label(), "30 s of 30 s: ended");
        assert_eq!(model.progress(), (0, 1.0));
    }
}
