//! The runner: carries out one assignment, in named phases: prepare (open
//! every connection and listener), the start barrier (Ready, then the
//! shared start instant), load (the connections' slots, and every second
//! an `IntervalReport` for the outbox), drain (operations in flight finish),
//! teardown, and the final report. The runner owns all timing; drivers only
//! execute operations, and the runner names no target kind: it is generic
//! over [`Driver`], built by [`with_driver`].

pub mod arrivals;
pub mod connection;
mod load;
pub mod recorder;
mod reporter;

use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede_common::Scenario;
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use crate::drivers::progress::PhaseState;
use crate::drivers::{Driver, DriverSpec, Listen, Part, Progress, WithDriver, with_driver};
use crate::outbox::{Outbox, Outgoing};
use load::Load;

/// How often setup's and teardown's progress goes to the coordinator.
const PHASE_EVERY: Duration = Duration::from_millis(250);
use reporter::Reporter;

/// One agent's part of a run, as the coordinator assigned it.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub run_id: String,
    pub scenario: Scenario,
    pub agent_index: u32,
    /// The run's agents.
    pub agent_count: u32,
    pub connections: u32,
    pub rate_per_s: f64,
    pub key_start: u64,
    pub key_end: u64,
    pub seed: u64,
    /// This agent's part of a count-limited run's operations.
    pub operations: Option<u64>,
    /// Its part of each operation's count (`load.operations` per
    /// operation), in the workload's order; `operations` is their sum.
    pub operation_counts: Option<Vec<u64>>,
    pub endpoints: Vec<String>,
    /// The sequence number of the first report.
    pub first_seq: u64,
    /// Rejoining a run that is going: no setup, start at the current interval.
    pub rejoin: bool,
    /// Coordinator time minus this agent's, from the session's clock sync.
    pub clock_offset_us: i64,
}

impl Assignment {
    fn part(&self) -> Part {
        Part { agent_index: self.agent_index, key_start: self.key_start, key_end: self.key_end }
    }
}

/// How long an agent waits for Start after Ready before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Carries out an assignment; everything it produces goes to the outbox.
pub async fn run(
    assignment: Assignment,
    outbox: Arc<Outbox>,
    start: oneshot::Receiver<Instant>,
    cancel: watch::Receiver<bool>,
) {
    let (scenario, endpoints, part) = (assignment.scenario.clone(), assignment.endpoints.clone(), assignment.part());
    let spec = DriverSpec {
        scenario: &scenario,
        part: &part,
        seed: assignment.seed,
        endpoints: &endpoints,
        agent_count: assignment.agent_count,
        clock: crate::drivers::stamp::Clock::new(assignment.clock_offset_us),
    };
    let run_id = assignment.run_id.clone();
    let runner = Runner { assignment, part: part.clone(), outbox: Arc::clone(&outbox), start, cancel };
    if let Err(error) = with_driver(&spec, runner).await {
        outbox.push(Outgoing::Failed { run_id, error: error.to_string() });
    }
}

/// An assignment being carried out, with its channels to the session.
struct Runner {
    assignment: Assignment,
    part: Part,
    outbox: Arc<Outbox>,
    start: oneshot::Receiver<Instant>,
    cancel: watch::Receiver<bool>,
}

impl WithDriver for Runner {
    type Output = ();

    fn with<D: Driver>(self, driver: D) -> impl Future<Output = ()> + Send {
        self.carry_out(Arc::new(driver))
    }
}

/// A connection opened during prepare, with the endpoint it was opened to.
struct Opened<C> {
    endpoint: String,
    connection: C,
}

/// What prepare opened, and the notes it gathered for the first report.
struct Prepared<C> {
    connections: Vec<Opened<C>>,
    listeners: Vec<Box<dyn Listen>>,
    notes: Vec<String>,
}

impl Runner {
    async fn carry_out<D: Driver>(mut self, driver: Arc<D>) {
        let run_id = self.assignment.run_id.clone();
        let span = tracing::info_span!("prepare", run_id = %run_id, connections = self.assignment.connections);
        let prepared = match self.prepare(&*driver).instrument(span).await {
            Ok(prepared) => prepared,
            Err(error) => return self.outbox.push(Outgoing::Failed { run_id, error }),
        };
        self.outbox.push(Outgoing::Ready { run_id: run_id.clone() });
        let Some(start_at) = self.start_barrier().await else { return };
        let (mut load, recorders) = match Load::start(&self.assignment, &driver, prepared.connections, start_at).await {
            Ok(started) => started,
            Err(error) => return self.outbox.push(Outgoing::Failed { run_id, error }),
        };
        let load_end = load.end;
        let mut reporter = Reporter::new(&self.assignment, recorders, start_at, prepared.notes);
        load.listen(prepared.listeners, &mut reporter);
        let cancelled = self.report_until_end(&mut load, &mut reporter).await;
        load.drain(cancelled, &mut reporter).await;
        if Instant::now() < load_end {
            // Its operations done before the time limit: the report says
            // when, so that rates are over the time really taken.
            reporter.load_ended(Instant::now());
        }
        if !cancelled {
            self.teardown(&*driver, &mut reporter).await;
        }
        reporter.interval(&self.outbox);
        reporter.finish(&self.outbox, cancelled);
    }

    /// Sets the target up (unless rejoining) and opens every connection and
    /// listener now, so that a target that cannot be reached fails the run
    /// before it starts.
    async fn prepare<D: Driver>(&self, driver: &D) -> Result<Prepared<D::Connection>, String> {
        let assignment = &self.assignment;
        let mut notes = driver.notes();
        if !assignment.rejoin {
            let progress = Progress::default();
            let setup = driver.setup(&assignment.endpoints, &self.part, &progress);
            notes.extend(self.reporting(&progress, setup).await.map_err(|e| e.message)?);
        }
        let connections = open_connections(driver, assignment).await?;
        let listeners = driver.listeners(&assignment.endpoints).await.map_err(|e| e.message)?;
        Ok(Prepared { connections, listeners, notes })
    }

    /// Runs `work`, sending what `progress` says to the coordinator each
    /// [`PHASE_EVERY`] when it changed, and once more at the end.
    async fn reporting<F: Future>(&self, progress: &Progress, work: F) -> F::Output {
        let mut sent = None;
        let send = |sent: &mut Option<PhaseState>| {
            if let Some(state) = progress.snapshot().filter(|s| Some(s) != sent.as_ref()) {
                self.outbox.push(Outgoing::Phase { run_id: self.assignment.run_id.clone(), state: state.clone() });
                *sent = Some(state);
            }
        };
        tokio::pin!(work);
        let mut tick = tokio::time::interval(PHASE_EVERY);
        loop {
            tokio::select! {
                output = &mut work => {
                    send(&mut sent);
                    return output;
                }
                _ = tick.tick() => send(&mut sent),
            }
        }
    }

    /// Waits for the start instant the coordinator sends once every agent
    /// is ready; `None` when the run was cancelled or no start came.
    async fn start_barrier(&mut self) -> Option<Instant> {
        let start = &mut self.start;
        tokio::select! {
            at = start => at.ok(),
            _ = self.cancel.wait_for(|c| *c) => None,
            () = tokio::time::sleep(START_TIMEOUT) => {
                tracing::warn!(run = %self.assignment.run_id, "no start within 120s of ready; giving up");
                None
            }
        }
    }

    /// Reports every interval that ends before the run does, then waits for
    /// the end: the time limit, or a count-limited run's last operation
    /// claimed. Returns whether the run was cancelled meanwhile.
    async fn report_until_end(&mut self, load: &mut Load, reporter: &mut Reporter) -> bool {
        while let Some(boundary) = reporter.next_boundary(load.end) {
            tokio::select! {
                () = tokio::time::sleep_until(boundary.into()) => reporter.interval(&self.outbox),
                () = load.count_spent() => return false,
                _ = self.cancel.wait_for(|c| *c) => return true,
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(load.end.into()) => false,
            () = load.count_spent() => false,
            _ = self.cancel.wait_for(|c| *c) => true,
        }
    }

    /// Drops tables or deletes keys (agent 0, or each agent's own range);
    /// what it says goes into the last report's notes.
    async fn teardown<D: Driver>(&self, driver: &D, reporter: &mut Reporter) {
        let progress = Progress::default();
        let teardown = driver.teardown(&self.assignment.endpoints, &self.part, &progress);
        match self.reporting(&progress, teardown).await {
            Ok(notes) => reporter.notes.extend(notes),
            Err(error) => reporter.notes.push(format!("teardown failed: {}", error.message)),
        }
    }
}

/// Opens this agent's connections, spread over the endpoints round robin.
async fn open_connections<D: Driver>(
    driver: &D,
    assignment: &Assignment,
) -> Result<Vec<Opened<D::Connection>>, String> {
    if assignment.endpoints.is_empty() {
        return Err("the assignment has no endpoints".to_string());
    }
    let offset = assignment.agent_index as usize * assignment.connections as usize;
    let attempts = (0..assignment.connections as usize).map(|i| {
        let endpoint = assignment.endpoints[(offset + i) % assignment.endpoints.len()].clone();
        async move {
            let connection = driver.connect(&endpoint).await.map_err(|e| e.message)?;
            Ok::<_, String>(Opened { endpoint, connection })
        }
    });
    futures::future::join_all(attempts).await.into_iter().collect()
}
