//! Live viewers: the web dashboard's event streams.
//! A viewer gets the runs and agents at once and when they change, and,
//! for the run it follows, every window so far (the run's history, so a
//! viewer that comes late sees the whole run), then each second the
//! windows that changed and the run's status. Each event is serialised
//! once, whatever the number of viewers; a viewer too slow to take them is
//! dropped (a browser's EventSource reconnects and starts over).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use super::{ActiveRun, ControlError, Engine};
use crate::aggregate::LiveContext;
use crate::store::{RunFigures, RunRecord};

/// One event of a live feed: its name (`runs`, `agents`, `windows`,
/// `status`, `end`) and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    pub name: &'static str,
    pub data: Arc<str>,
}

pub type LiveFeed = mpsc::Receiver<LiveEvent>;

/// Events a viewer may have waiting before it is dropped as too slow.
const FEED_BUFFER: usize = 256;
/// How often the agents' list is sent.
const AGENTS_EVERY: Duration = Duration::from_secs(1);

struct Viewer {
    /// The run it follows, if any.
    run: Option<String>,
    tx: mpsc::Sender<LiveEvent>,
}

#[derive(Default)]
pub(super) struct LiveViewers {
    viewers: Vec<Viewer>,
    /// What the runs' list looked like when it was last sent.
    runs_sent: Option<u64>,
    agents_sent: Option<Instant>,
}

/// A run in the dashboard's list.
#[derive(Serialize)]
struct RunEntry<'a> {
    run_id: &'a str,
    name: &'a str,
    target: &'a str,
    state: &'a str,
    submitted_at_unix_s: i64,
    started_at_unix_ms: Option<i64>,
    agents: u32,
    error: Option<&'a str>,
    figures: Option<&'a RunFigures>,
    ended: bool,
}

/// An agent in the dashboard's list.
#[derive(Serialize)]
struct AgentEntry<'a> {
    agent_id: &'a str,
    host: &'a str,
    labels: &'a std::collections::BTreeMap<String, String>,
    connected: bool,
    busy_with: Option<&'a str>,
    clock_offset_us: i64,
    clock_rtt_us: i64,
    cpu_percent: f64,
    rss_bytes: u64,
}

/// How a run ended, for its viewers.
#[derive(Serialize)]
struct EndEntry<'a> {
    run_id: &'a str,
    state: &'a str,
    error: Option<&'a str>,
    /// Where the dashboard serves its HTML report.
    report: String,
}

fn event(name: &'static str, value: &impl Serialize) -> LiveEvent {
    let data = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    LiveEvent { name, data: data.into() }
}

impl LiveViewers {
    fn send(&mut self, run: Option<&str>, event: &LiveEvent) {
        self.viewers.retain(|v| {
            if run.is_some() && v.run.as_deref() != run {
                return true;
            }
            // Full: too slow; closed: gone. Either way it leaves.
            v.tx.try_send(event.clone()).is_ok()
        });
    }

    fn follows(&self, run_id: &str) -> bool {
        self.viewers.iter().any(|v| v.run.as_deref() == Some(run_id))
    }
}

impl Engine {
    /// A new viewer, following `run_id` if given.
    pub(super) fn live(&mut self, run_id: Option<String>) -> Result<LiveFeed, ControlError> {
        if let Some(id) = &run_id
            && !self.active.contains_key(id)
            && !self.ended.contains_key(id)
        {
            return Err(ControlError::NotFound(id.clone()));
        }
        // Viewers already here get what changed first; then the lists this
        // one gets are what every viewer has.
        self.live_tick(self.now.at);
        self.live.runs_sent = Some(self.runs_fingerprint());
        let (tx, rx) = mpsc::channel(FEED_BUFFER);
        let mut first = vec![self.runs_event(), self.agents_event()];
        match run_id.as_deref() {
            Some(id) if self.active.contains_key(id) => {
                let run = &self.active[id];
                let windows = stampede_common::live::LiveWindows { reset: true, windows: run.aggregate.live_windows() };
                first.push(event("windows", &windows));
                first.push(event("status", &self.status_of(run, false)));
            }
            Some(id) => first.push(self.end_event(&self.ended[id])),
            None => {}
        }
        for e in first {
            // The buffer holds far more than these few.
            let _ = tx.try_send(e);
        }
        self.live.viewers.push(Viewer { run: run_id, tx });
        self.live.agents_sent.get_or_insert(self.now.at);
        Ok(rx)
    }

    /// Each second a run's interval is complete: its changed windows and
    /// its status, to the viewers that follow it.
    pub(super) fn live_progress(&mut self, run_id: &str) {
        if !self.live.follows(run_id) {
            return;
        }
        let Some(run) = self.active.get_mut(run_id) else { return };
        let windows = run.aggregate.take_live_windows();
        let windows = (!windows.windows.is_empty() || windows.reset).then(|| event("windows", &windows));
        let status = event("status", &self.status_of(&self.active[run_id], false));
        if let Some(windows) = windows {
            self.live.send(Some(run_id), &windows);
        }
        self.live.send(Some(run_id), &status);
    }

    /// The run has ended: its last windows and status (the report's
    /// figures), then how it ended. Called before the run leaves `active`.
    pub(super) fn live_end(&mut self, run: &mut ActiveRun) {
        let run_id = run.record.run_id.clone();
        if !self.live.follows(&run_id) {
            return;
        }
        let windows = run.aggregate.take_live_windows();
        let windows = event("windows", &windows);
        let status = event("status", &self.status_of(run, true));
        let end = self.end_event(&run.record);
        for e in [windows, status, end] {
            self.live.send(Some(&run_id), &e);
        }
    }

    /// On each tick: the runs' list when it changed, the agents each
    /// second.
    pub(super) fn live_tick(&mut self, now: Instant) {
        if self.live.viewers.is_empty() {
            return;
        }
        let fingerprint = self.runs_fingerprint();
        if self.live.runs_sent != Some(fingerprint) {
            self.live.runs_sent = Some(fingerprint);
            let runs = self.runs_event();
            self.live.send(None, &runs);
        }
        if self.live.agents_sent.is_none_or(|at| now.duration_since(at) >= AGENTS_EVERY) {
            self.live.agents_sent = Some(now);
            let agents = self.agents_event();
            self.live.send(None, &agents);
        }
    }

    fn runs_fingerprint(&self) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut hasher =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
        for record in self.ended.values().chain(self.active.values().map(|r| &r.record)) {
            record.run_id.hash(&mut hasher);
            record.state.as_str().hash(&mut hasher);
        }
        hasher.finish()
    }

    fn runs_event(&self) -> LiveEvent {
        fn entry(record: &RunRecord, ended: bool) -> RunEntry<'_> {
            RunEntry {
                run_id: &record.run_id,
                name: &record.name,
                target: &record.target_kind,
                state: record.state.as_str(),
                submitted_at_unix_s: record.submitted_at_unix_s,
                started_at_unix_ms: record.start_at_us.map(|us| us / 1000),
                agents: record.agent_count,
                error: record.error.as_deref(),
                figures: record.figures.as_ref(),
                ended,
            }
        }
        let mut runs: Vec<RunEntry<'_>> = self
            .ended
            .values()
            .map(|r| entry(r, true))
            .chain(self.active.values().map(|r| entry(&r.record, false)))
            .collect();
        // Newest first: run ids sort by their submission time.
        runs.sort_by(|a, b| b.run_id.cmp(a.run_id));
        event("runs", &runs)
    }

    fn agents_event(&self) -> LiveEvent {
        let agents: Vec<AgentEntry<'_>> = self
            .registry
            .all()
            .map(|a| AgentEntry {
                agent_id: &a.hello.agent_id,
                host: &a.hello.host,
                labels: &a.hello.labels,
                connected: a.connected,
                busy_with: a.busy_with.as_deref(),
                clock_offset_us: a.clock_offset_us,
                clock_rtt_us: a.clock_rtt_us,
                cpu_percent: a.cpu_percent,
                rss_bytes: a.rss_bytes,
            })
            .collect();
        event("agents", &agents)
    }

    fn end_event(&self, record: &RunRecord) -> LiveEvent {
        let end = EndEntry {
            run_id: &record.run_id,
            state: record.state.as_str(),
            error: record.error.as_deref(),
            report: format!("runs/{}/report.html", record.run_id),
        };
        event("end", &end)
    }

    fn status_of(&self, run: &ActiveRun, ended: bool) -> stampede_common::live::LiveStatus {
        let agents: Vec<(String, String)> = run.record.agents.iter().map(|a| (a.id.clone(), a.host.clone())).collect();
        let elapsed_us = run.record.start_at_us.map_or(0, |start| (self.now.unix_us - start).max(0));
        let message = run.store_health.problem().unwrap_or_default();
        run.aggregate.live_status(&LiveContext {
            run_id: &run.record.run_id,
            scenario: &run.scenario,
            state: run.record.state.as_str(),
            elapsed_s: u64::try_from(elapsed_us / 1_000_000).unwrap_or(0),
            ended,
            agents: &agents,
            plans: &run.plans,
            message: &message,
        })
    }
}
