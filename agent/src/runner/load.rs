//! The load phase and its drain: one task per connection (its slots), one
//! per listener, the open model's arrival thread, and how they are stopped
//! at the end so that operations in flight are still counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stampede_common::interval::Counter;
use stampede_common::scenario::LoadModel;
use tokio::sync::watch;

use super::connection::{OPERATION_TIMEOUT, OperationCount, Ramp, SlotContext, drive};
use super::recorder::{Recorder, SharedRecorder, lock};
use super::reporter::Reporter;
use super::{Assignment, Opened};
use crate::drivers::{Done, Driver, DriverError, Heard, Listen, Received};
use crate::workloads::Generator;

/// How long listeners keep listening after the run's end, for messages
/// still in flight.
const DELIVERY_DRAIN: Duration = Duration::from_millis(500);

/// The open model's arrival thread and the flag that stops it early.
struct ArrivalThread {
    thread: std::thread::JoinHandle<super::arrivals::Released>,
    cancel: Arc<AtomicBool>,
}

/// The load under way.
pub(super) struct Load {
    /// The planned end on this agent's clock.
    pub end: Instant,
    context: Arc<SlotContext>,
    tasks: tokio::task::JoinSet<()>,
    stop: Arc<AtomicBool>,
    arrivals: Option<ArrivalThread>,
    stop_listening: watch::Sender<bool>,
    listening: bool,
}

impl Load {
    /// Starts the arrival thread (open model), waits for the start instant
    /// and starts a task per connection. Returns the load and the
    /// connections' recorders, in connection order.
    pub async fn start<D: Driver>(
        assignment: &Assignment,
        driver: &Arc<D>,
        connections: Vec<Opened<D::Connection>>,
        start_at: Instant,
    ) -> Result<(Self, Vec<SharedRecorder>), String> {
        let scenario = &assignment.scenario;
        let end = start_at + scenario.duration;
        let (arrivals, thread) = match scenario.load.model {
            LoadModel::Closed => (None, None),
            LoadModel::Open { arrival, .. } => {
                let cancel = Arc::new(AtomicBool::new(false));
                let flag = Arc::clone(&cancel);
                // One intended start in hand per slot, however far behind.
                let slots = connections.len() * scenario.load.pipeline as usize;
                // Staged: this agent's share of the stages' rates.
                let stages = scenario.load.stages.as_ref().map(|stages| {
                    let peak = stages.peak();
                    stages.scaled(if peak > 0.0 { assignment.rate_per_s / peak } else { 0.0 })
                });
                let (rx, thread) = super::arrivals::start(
                    assignment.rate_per_s,
                    stages,
                    arrival,
                    start_at,
                    end,
                    assignment.seed,
                    slots,
                    flag,
                )
                .map_err(|e| format!("cannot start the arrival thread: {e}"))?;
                (Some(rx), Some(ArrivalThread { thread, cancel }))
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let context = Arc::new(SlotContext {
            generator: Generator::new(&scenario.workload, assignment.key_start, assignment.key_end),
            pause: scenario.workload.pacing(),
            end,
            stop: Arc::clone(&stop),
            arrivals,
            seed: assignment.seed,
            reconnect_every: scenario.load.reconnect_every,
            count: match &assignment.operation_counts {
                Some(counts) => Some(OperationCount::per_operation(counts)),
                None => assignment.operations.map(OperationCount::new),
            },
            ramp: match (&scenario.load.model, &scenario.load.stages) {
                (LoadModel::Closed, Some(stages)) => Some(Ramp {
                    stages: stages.clone(),
                    start: start_at,
                    agent_index: assignment.agent_index,
                    agent_count: assignment.agent_count.max(1),
                }),
                _ => None,
            },
        });
        tokio::time::sleep_until(start_at.into()).await;
        let operations = scenario.workload.operations().len();
        let mut recorders = Vec::with_capacity(connections.len());
        let mut tasks = tokio::task::JoinSet::new();
        for (index, Opened { endpoint, connection }) in connections.into_iter().enumerate() {
            let recorder = Recorder::shared(operations);
            recorders.push(Arc::clone(&recorder));
            let (driver, context) = (Arc::clone(driver), Arc::clone(&context));
            tasks.spawn(drive(driver, endpoint, connection, scenario.load.pipeline, context, recorder, index as u64));
        }
        let (stop_listening, _) = watch::channel(false);
        let load = Self { end, context, tasks, stop, arrivals: thread, stop_listening, listening: false };
        Ok((load, recorders))
    }

    /// Starts a task per listener; each records what it receives as the
    /// workload's last operation and counts it as `delivered`.
    pub fn listen(&mut self, listeners: Vec<Box<dyn Listen>>, reporter: &mut Reporter) {
        let operations = reporter.operation_names.len();
        for listener in listeners {
            let recorder = Recorder::shared(operations);
            {
                let mut r = lock(&recorder);
                r.set_node(listener.node().into());
                r.connected = true;
            }
            reporter.recorders.push(Arc::clone(&recorder));
            let mut stopped = self.stop_listening.subscribe();
            let until = Box::pin(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
            let sink = Arc::clone(&recorder);
            let last = operations.saturating_sub(1);
            let received: Received = Box::new(move |heard: Result<Heard, DriverError>| {
                let mut r = lock(&sink);
                match heard {
                    Ok(Heard { latency_us, bytes }) => {
                        r.record(last, latency_us, latency_us, None);
                        r.transfer(last, &Done { received: bytes, ..Done::default() });
                        r.counters[Counter::Delivered.index()] += 1;
                    }
                    // An error without a delivery to time (a slow consumer's
                    // dropped messages) counts once, at no latency.
                    Err(error) => {
                        r.record(last, 0, 0, Some(error.kind));
                        r.note_error(last, error.kind, &error.message);
                    }
                }
            });
            let listening = listener.listen(until, received);
            self.tasks.spawn(async move {
                listening.await;
                lock(&recorder).connected = false;
            });
            self.listening = true;
        }
    }

    /// Resolves when a count-limited run's operations have all been done
    /// (never for a run limited by time only).
    pub async fn count_spent(&self) {
        match &self.context.count {
            Some(count) => count.done().await,
            None => std::future::pending().await,
        }
    }

    /// Stops issuing, lets operations in flight finish (at most the
    /// operation timeout and a second), and counts the open model's
    /// arrivals that were due within the run but never sent as late starts
    /// (not when the run was cancelled, or ended with its count done: the
    /// starts left then were beyond it).
    pub async fn drain(mut self, cancelled: bool, reporter: &mut Reporter) {
        let counted_out = self.context.count.is_some() && Instant::now() < self.end;
        let starts_left_over = cancelled || counted_out;
        if starts_left_over && let Some(arrivals) = &self.arrivals {
            arrivals.cancel.store(true, Ordering::Relaxed);
        }
        self.stop.store(true, Ordering::Relaxed);
        if self.listening && !cancelled {
            tokio::time::sleep(DELIVERY_DRAIN).await;
        }
        let _ = self.stop_listening.send(true);
        let tasks = &mut self.tasks;
        let drained = tokio::time::timeout(OPERATION_TIMEOUT + Duration::from_secs(1), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
        }
        let mut never_released = 0;
        if let Some(ArrivalThread { thread, .. }) = self.arrivals {
            // It stopped at the planned end or was cancelled, or it waits
            // for a free slot until the queue is closed.
            if let Some(arrivals) = &self.context.arrivals {
                arrivals.close();
            }
            if let Ok(Ok(done)) = tokio::task::spawn_blocking(move || thread.join()).await {
                never_released = done.never_released;
            }
        }
        if let Some(arrivals) = &self.context.arrivals
            && let Some(first) = reporter.recorders.first()
            && !starts_left_over
        {
            // Intended within the run, never sent: released but not taken,
            // and never released at all.
            let unsent = arrivals.len() as u64 + never_released;
            let mut first = lock(first);
            first.late_starts += unsent;
            first.unsent_starts += unsent;
        }
    }
}
