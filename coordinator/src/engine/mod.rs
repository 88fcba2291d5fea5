//! The run engine: one task that owns the registry and every run, fed by
//! events from the gRPC adapters and a tick. Because it is the only owner,
//! run state needs no locks and every transition happens in one place.
//!
//! Reports are persisted before they are acknowledged, so an acknowledged
//! report is never lost when the coordinator stops.

mod durability;
mod finish;
mod lifecycle;
mod live;
mod loss;
mod phases;
mod queries;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede_common::Scenario;
use stampede_common::interval::IntervalReport;
use tokio::sync::{mpsc, oneshot};

use crate::aggregate::RunAggregate;
use crate::registry::{AgentHello, Registry};
use crate::scheduler::AgentPlan;
use crate::store::{RunRecord, RunState, RunStore};

pub use live::{LiveEvent, LiveFeed};
pub use phases::PhaseProgress;
pub use queries::{AgentView, IntervalLogSource, RunView};

/// How the engine behaves; the CLI fills it from flags.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub coordinator_id: String,
    /// An agent silent for this long is lost.
    pub heartbeat_timeout: Duration,
    /// Time between sending Start and the start instant, so every agent
    /// receives it before it is due.
    pub start_delay: Duration,
    /// How long agents may take to connect to the target and answer Ready.
    pub prepare_timeout: Duration,
    /// How long after the planned end the coordinator waits for final reports.
    pub finish_grace: Duration,
    /// Address of the built-in KV server for `kv` targets without endpoints.
    pub embedded_kv: Option<String>,
    /// How long the store may refuse a run's writes before the run ends in
    /// `error`.
    pub store_error_timeout: Duration,
    /// Ended runs submitted longer ago than this are deleted; `None` keeps
    /// them all.
    pub retention: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            coordinator_id: "coordinator".to_string(),
            heartbeat_timeout: Duration::from_secs(5),
            start_delay: Duration::from_millis(1000),
            prepare_timeout: Duration::from_secs(30),
            finish_grace: Duration::from_secs(10),
            embedded_kv: None,
            store_error_timeout: Duration::from_secs(180),
            retention: None,
        }
    }
}

/// An assignment as sent to an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentMessage {
    pub run_id: String,
    pub scenario_yaml: String,
    pub plan: AgentPlan,
    pub endpoints: Vec<String>,
    /// The first report sequence number (above those already merged).
    pub first_seq: u64,
    /// The agent rejoins a run that is going (after a restart).
    pub rejoin: bool,
    /// The trace context of the coordinator's span for this assignment.
    pub trace_context: stampede_telemetry::TraceContext,
}

/// Messages from the coordinator to one agent.
#[derive(Debug, Clone, PartialEq)]
pub enum ToAgent {
    Assignment(Box<AssignmentMessage>),
    Start { run_id: String, start_at_us: i64 },
    Ack { run_id: String, seq: u64 },
    Cancel { run_id: String, reason: String },
}

/// Live information about a run for watchers.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchUpdate {
    pub run_id: String,
    pub state: RunState,
    pub message: String,
    pub progress: Option<Progress>,
    /// Setup's or teardown's progress, summed over the agents in it.
    pub phase: Option<PhaseProgress>,
    /// The JSON report, once the run has ended.
    pub report_json: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub elapsed_s: u64,
    pub duration_s: u64,
    /// Operations in the newest interval.
    pub throughput: f64,
    /// Operations per second over the measured time so far.
    pub average_throughput: f64,
    /// The most frequent error message so far (`kind: message xN`).
    pub top_error: String,
    pub p99_us: u64,
    pub errors: u64,
    pub agents: u32,
    pub warmup: bool,
    /// Agents whose generator limited the load in this interval.
    pub saturated_agents: u32,
    /// A count-limited run's operations so far (warm-up's included) and in
    /// all; 0 and 0 for a run limited by time.
    pub operations_done: u64,
    pub operations_total: u64,
}

/// Why a control request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    InvalidScenario(String),
    #[error("no run with id `{0}`; `stampede runs` lists the runs")]
    NotFound(String),
    #[error("the coordinator could not store the run: {0}")]
    Store(String),
    #[error("the coordinator is shutting down")]
    Unavailable,
}

/// An agent's final report on a run: `seq` follows its last interval
/// report's, `interval_reports` it made in all (`reports_dropped` of them
/// dropped undelivered), `error` empty when its part went well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalReport {
    pub run_id: String,
    pub seq: u64,
    pub interval_reports: u64,
    pub reports_dropped: u64,
    pub error: String,
}

/// Everything that can happen to the engine.
#[derive(Debug)]
pub enum Event {
    AgentConnected {
        hello: AgentHello,
        session: u64,
        outbox: mpsc::UnboundedSender<ToAgent>,
    },
    AgentClock {
        agent_id: String,
        offset_us: i64,
        rtt_us: i64,
    },
    AgentHeartbeat {
        agent_id: String,
        cpu_percent: f64,
        rss_bytes: u64,
    },
    AgentReady {
        agent_id: String,
        run_id: String,
    },
    AgentPhase {
        agent_id: String,
        run_id: String,
        phase: PhaseProgress,
    },
    AgentFailed {
        agent_id: String,
        run_id: String,
        error: String,
    },
    AgentReport {
        agent_id: String,
        report: Box<IntervalReport>,
    },
    AgentFinal {
        agent_id: String,
        report: FinalReport,
    },
    AgentDisconnected {
        agent_id: String,
        session: u64,
    },
    Submit {
        scenario_yaml: String,
        agents: u32,
        reply: oneshot::Sender<Result<String, ControlError>>,
    },
    Watch {
        run_id: String,
        reply: oneshot::Sender<Result<mpsc::Receiver<WatchUpdate>, ControlError>>,
    },
    GetRun {
        run_id: String,
        reply: oneshot::Sender<Result<RunView, ControlError>>,
    },
    /// Where a run's interval log is read from.
    IntervalLog {
        run_id: String,
        reply: oneshot::Sender<Result<IntervalLogSource, ControlError>>,
    },
    /// The runs, all or those of the scenario with this name.
    ListRuns {
        scenario: Option<String>,
        reply: oneshot::Sender<Vec<RunView>>,
    },
    CancelRun {
        run_id: String,
        reply: oneshot::Sender<Result<RunState, ControlError>>,
    },
    ListAgents {
        reply: oneshot::Sender<Vec<AgentView>>,
    },
    Metrics {
        reply: oneshot::Sender<crate::metrics::MetricsSnapshot>,
    },
    /// A live feed: runs, agents, and the run given, as they change.
    Live {
        run_id: Option<String>,
        reply: oneshot::Sender<Result<LiveFeed, ControlError>>,
    },
}

/// A run that has not ended yet.
struct ActiveRun {
    /// As stored: its endpoints have their passwords hidden.
    record: RunRecord,
    scenario: Scenario,
    /// The scenario as written, and the endpoints with their passwords:
    /// what agents are sent.
    scenario_yaml: String,
    endpoints: Vec<String>,
    aggregate: RunAggregate,
    plans: Vec<AgentPlan>,
    ready: BTreeSet<String>,
    finals: BTreeMap<String, String>,
    watchers: Vec<mpsc::Sender<WatchUpdate>>,
    prepare_deadline: Option<Instant>,
    end_at: Option<Instant>,
    last_progress: Option<u64>,
    last_wait_notice: Option<Instant>,
    /// A resumed run does not count silence as loss before this instant
    /// (its agents are reconnecting).
    loss_checks_from: Option<Instant>,
    /// The order of submission (runs submitted in the same second have
    /// run ids in no particular order).
    submission: u64,
    /// The run's trace span; it ends when the run does.
    span: tracing::Span,
    /// Each agent's assignment span, ended by its final report.
    assignment_spans: BTreeMap<String, tracing::Span>,
    /// What the store did with this run's writes.
    store_health: durability::StoreHealth,
    /// Each agent's newest setup or teardown progress.
    phases: BTreeMap<String, PhaseProgress>,
}

impl ActiveRun {
    fn new(
        record: RunRecord,
        scenario: Scenario,
        scenario_yaml: String,
        aggregate: RunAggregate,
        span: tracing::Span,
    ) -> Self {
        // Without endpoints of its own, the run uses the embedded KV server,
        // whose address (no password) is in the record.
        let endpoints = match scenario.target.endpoints.as_slice() {
            [] => record.endpoints.clone(),
            given => given.to_vec(),
        };
        Self {
            endpoints,
            record,
            scenario,
            scenario_yaml,
            aggregate,
            plans: Vec::new(),
            ready: BTreeSet::new(),
            finals: BTreeMap::new(),
            watchers: Vec::new(),
            prepare_deadline: None,
            end_at: None,
            last_progress: None,
            last_wait_notice: None,
            loss_checks_from: None,
            submission: 0,
            span,
            assignment_spans: BTreeMap::new(),
            store_health: Default::default(),
            phases: BTreeMap::new(),
        }
    }

    /// Starts the span of `agent_id`'s assignment (ending the one it had)
    /// and returns its trace context for the agent.
    fn assignment_span(&mut self, agent_id: &str, rejoin: bool) -> stampede_telemetry::TraceContext {
        let span = tracing::info_span!(parent: &self.span, "assignment", run_id = %self.record.run_id, agent = %agent_id, rejoin);
        let context = stampede_telemetry::context_of(&span);
        self.assignment_spans.insert(agent_id.to_string(), span);
        context
    }
}

/// The span of a run, from its submission to its end.
fn run_span(run_id: &str, scenario: &Scenario) -> tracing::Span {
    tracing::info_span!(
        parent: None,
        "run",
        run_id = %run_id,
        name = %scenario.name,
        target = scenario.target.kind.as_str(),
        status = tracing::field::Empty,
        ops = tracing::field::Empty,
        resumed = false,
    )
}

/// When an event happened, on both clocks the engine uses: the monotonic
/// one for deadlines and the wall clock for instants agents share. The
/// engine task reads the clock once per event; nothing inside the engine
/// reads it, so tests drive the engine with the times they choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    /// Microseconds since the Unix epoch.
    pub unix_us: i64,
}

impl Now {
    pub fn read() -> Self {
        Self { at: Instant::now(), unix_us: now_unix_us() }
    }

    /// The same clocks `by` later.
    pub fn after(self, by: Duration) -> Self {
        Self { at: self.at + by, unix_us: self.unix_us + by.as_micros() as i64 }
    }
}

/// The engine's state; driven by [`run_engine`].
pub struct Engine {
    config: EngineConfig,
    /// The time of the event being handled.
    now: Now,
    store: Arc<dyn RunStore>,
    registry: Registry,
    active: BTreeMap<String, ActiveRun>,
    /// Ended runs (state kept in memory, reports on disk).
    ended: BTreeMap<String, RunRecord>,
    /// Runs submitted to this engine so far.
    submissions: u64,
    /// Writes the store refused, over all runs.
    store_errors: u64,
    /// When runs past the retention were last deleted.
    last_prune: Option<Instant>,
    /// The web dashboards' event streams.
    live: live::LiveViewers,
}

/// A handle to send events to the engine.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    events: mpsc::UnboundedSender<(Event, Instant)>,
}

impl EngineHandle {
    /// Queues `event`, stamped with the time it arrived: an agent is heard
    /// when its message reaches the coordinator, not when the engine gets
    /// round to it after a slow store write.
    pub fn send(&self, event: Event) -> Result<(), ControlError> {
        self.events.send((event, Instant::now())).map_err(|_| ControlError::Unavailable)
    }

    /// Sends an event built around a reply channel and waits for the answer.
    pub async fn ask<T>(&self, build: impl FnOnce(oneshot::Sender<T>) -> Event) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.send(build(tx))?;
        rx.await.map_err(|_| ControlError::Unavailable)
    }
}

const TICK: Duration = Duration::from_millis(100);

/// Events waiting for an engine that has not started yet.
#[derive(Debug)]
pub struct EngineEvents(mpsc::UnboundedReceiver<(Event, Instant)>);

/// A handle and the events it will carry, before the engine runs: the
/// gRPC services can hold the handle while the coordinator is a standby.
pub fn engine_channel() -> (EngineHandle, EngineEvents) {
    let (tx, rx) = mpsc::unbounded_channel();
    (EngineHandle { events: tx }, EngineEvents(rx))
}

/// Starts the engine task on events gathered by [`engine_channel`]. Runs
/// that a previous coordinator left running are resumed; others it left
/// unfinished are marked `error`.
pub fn start_engine_on(
    config: EngineConfig,
    store: Arc<dyn RunStore>,
    events: EngineEvents,
) -> tokio::task::JoinHandle<()> {
    let engine = Engine::new(config, store, Now::read());
    tokio::spawn(run_engine(engine, events.0))
}

async fn run_engine(mut engine: Engine, mut events: mpsc::UnboundedReceiver<(Event, Instant)>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some((event, arrived)) => engine.handle_arrived(event, arrived, Now::read()),
                None => return,
            },
            _ = tick.tick() => {
                // Events that arrived while the engine was held up (slow
                // store writes, each up to the store's timeout) are handled
                // first, until none waits: a heartbeat queued behind those
                // writes is not silence, and the tick must not call its
                // agent lost. Each counts from when it arrived.
                for _ in 0..MAX_DRAIN {
                    match events.try_recv() {
                        Ok((event, arrived)) => engine.handle_arrived(event, arrived, Now::read()),
                        Err(_) => break,
                    }
                }
                engine.tick(Now::read());
            }
        }
    }
}

/// The most queued events handled before a tick (a bound, should events
/// ever arrive faster than the engine handles them).
const MAX_DRAIN: usize = 100_000;

impl Engine {
    /// An engine over `store`, with the runs a previous coordinator left in
    /// it: running ones resumed, other unfinished ones marked `error`.
    pub fn new(config: EngineConfig, store: Arc<dyn RunStore>, now: Now) -> Self {
        let mut engine = Engine {
            config,
            now,
            store,
            registry: Registry::default(),
            active: BTreeMap::new(),
            ended: BTreeMap::new(),
            submissions: 0,
            store_errors: 0,
            last_prune: None,
            live: live::LiveViewers::default(),
        };
        engine.load_previous_runs();
        engine
    }

    /// Handles one event that happened at `now`.
    pub fn handle(&mut self, event: Event, now: Now) {
        self.handle_arrived(event, now.at, now);
    }

    /// Handles at `now` one event that reached the coordinator at
    /// `arrived`: its agent was last heard then.
    pub fn handle_arrived(&mut self, event: Event, arrived: Instant, now: Now) {
        self.now = now;
        let heard = arrived.min(now.at);
        let now = now.at;
        match event {
            Event::AgentConnected { hello, session, outbox } => {
                tracing::info!(agent = %hello.agent_id, host = %hello.host, "agent connected");
                self.registry.connect(hello, session, outbox, now);
            }
            Event::AgentClock { agent_id, offset_us, rtt_us } => {
                tracing::debug!(agent = %agent_id, offset_us, rtt_us, "agent clock measured");
                self.registry.set_clock(&agent_id, offset_us, rtt_us);
                self.registry.seen(&agent_id, heard);
                self.on_agent_back(&agent_id);
            }
            Event::AgentHeartbeat { agent_id, cpu_percent, rss_bytes } => {
                self.registry.heartbeat(&agent_id, heard, cpu_percent, rss_bytes);
                self.on_agent_heard(&agent_id);
            }
            Event::AgentReady { agent_id, run_id } => {
                self.registry.seen(&agent_id, heard);
                self.on_ready(&agent_id, &run_id);
            }
            Event::AgentPhase { agent_id, run_id, phase } => {
                self.registry.seen(&agent_id, heard);
                self.on_phase(&agent_id, &run_id, phase);
            }
            Event::AgentFailed { agent_id, run_id, error } => {
                self.registry.seen(&agent_id, heard);
                self.on_agent_failed(&agent_id, &run_id, &error);
            }
            Event::AgentReport { agent_id, report } => {
                self.registry.seen(&agent_id, heard);
                self.on_agent_heard(&agent_id);
                self.on_report(&agent_id, &report);
            }
            Event::AgentFinal { agent_id, report } => {
                self.registry.seen(&agent_id, heard);
                self.on_final(&agent_id, report);
            }
            Event::AgentDisconnected { agent_id, session } => {
                if self.registry.disconnect(&agent_id, session) {
                    match self.registry.get(&agent_id).and_then(|a| a.busy_with.clone()) {
                        Some(run) => {
                            tracing::warn!(agent = %agent_id, %run, "agent disconnected during a run")
                        }
                        None => tracing::info!(agent = %agent_id, "agent disconnected"),
                    }
                    self.on_agent_lost(&agent_id);
                }
            }
            Event::Submit { scenario_yaml, agents, reply } => {
                let _ = reply.send(self.submit(scenario_yaml, agents));
            }
            Event::Watch { run_id, reply } => {
                let _ = reply.send(self.watch(&run_id));
            }
            Event::GetRun { run_id, reply } => {
                let _ = reply.send(self.get_run(&run_id));
            }
            Event::IntervalLog { run_id, reply } => {
                let _ = reply.send(self.interval_log(&run_id));
            }
            Event::ListRuns { scenario, reply } => {
                let _ = reply.send(self.list_runs(scenario.as_deref()));
            }
            Event::CancelRun { run_id, reply } => {
                let _ = reply.send(self.cancel(&run_id));
            }
            Event::ListAgents { reply } => {
                let _ = reply.send(self.list_agents(now));
            }
            Event::Live { run_id, reply } => {
                let _ = reply.send(self.live(run_id));
            }
            Event::Metrics { reply } => {
                let _ = reply.send(self.metrics());
            }
        }
    }

    /// The periodic checks: heartbeats, scheduling, losses, deadlines.
    pub fn tick(&mut self, now: Now) {
        self.now = now;
        let now = now.at;
        for agent_id in self.registry.expire(now, self.config.heartbeat_timeout) {
            tracing::warn!(agent = %agent_id, "agent heartbeat timed out");
            self.on_agent_lost(&agent_id);
        }
        self.schedule_queued(now);
        self.check_agent_losses(now);
        self.check_deadlines(now);
        self.prune(now);
        self.live_tick(now);
    }
}

pub use stampede_proto::now_unix_us;
