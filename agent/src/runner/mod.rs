//! The runner: carries out one assignment. It opens the connections
//! (prepare), reports Ready, waits for the shared start instant, drives the
//! load, and every second collects what the connections measured into an
//! `IntervalReport` for the outbox. The runner owns all timing; drivers only
//! execute operations.

pub mod arrivals;
pub mod connection;
pub mod recorder;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stampede_common::Scenario;
use stampede_common::scenario::{Compression, LoadModel, TargetKind, ValueFormat, ValueSpec, Workload};
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use crate::drivers::cratedb::CrateDriver;
use crate::drivers::postgres::PostgresDriver;
use crate::drivers::redis_cluster::ClusterDriver;
use crate::drivers::resp::pubsub::Subscriber;
use crate::drivers::resp::{RespConfig, RespDriver};
use crate::drivers::{Driver, Part};
use crate::health::CpuMeter;
use crate::outbox::{Outbox, Outgoing};
use crate::workloads::{Generator, values};
use connection::{OPERATION_TIMEOUT, SlotContext, drive};
use recorder::{DELIVERED, Recorder, SharedRecorder, collect, lock};

/// One agent's part of a run, as the coordinator assigned it.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub run_id: String,
    pub scenario: Scenario,
    pub agent_index: u32,
    pub connections: u32,
    pub rate_per_s: f64,
    pub key_start: u64,
    pub key_end: u64,
    pub seed: u64,
    pub endpoints: Vec<String>,
    /// The sequence number of the first report.
    pub first_seq: u64,
    /// Rejoining a run that is going: no setup, start at the current interval.
    pub rejoin: bool,
}

/// How long an agent waits for Start after Ready before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const INTERVAL: Duration = Duration::from_secs(1);

/// How long pub/sub subscribers keep listening after the run's end, for
/// messages still in flight.
const DELIVERY_DRAIN: Duration = Duration::from_millis(500);

/// Carries out an assignment; everything it produces goes to the outbox.
pub async fn run(
    assignment: Assignment,
    outbox: Arc<Outbox>,
    start: oneshot::Receiver<Instant>,
    cancel: watch::Receiver<bool>,
) {
    let scenario = &assignment.scenario;
    let part =
        Part { agent_index: assignment.agent_index, key_start: assignment.key_start, key_end: assignment.key_end };
    match scenario.target.kind {
        TargetKind::Kv | TargetKind::Redis => match resp_config(&assignment) {
            Ok((config, notes)) => {
                let driver = Arc::new(RespDriver::new(config));
                run_with_driver(assignment, driver, notes, outbox, start, cancel).await;
            }
            Err(error) => outbox.push(Outgoing::Failed { run_id: assignment.run_id, error }),
        },
        TargetKind::RedisCluster => match resp_config(&assignment) {
            Ok((config, notes)) => {
                let driver = Arc::new(ClusterDriver::new(config, &assignment.endpoints));
                run_with_driver(assignment, driver, notes, outbox, start, cancel).await;
            }
            Err(error) => outbox.push(Outgoing::Failed { run_id: assignment.run_id, error }),
        },
        TargetKind::Postgres | TargetKind::Timescaledb => {
            let driver = Arc::new(PostgresDriver::new(scenario, &part));
            run_with_driver(assignment, driver, Vec::new(), outbox, start, cancel).await;
        }
        TargetKind::Cratedb => {
            let driver = Arc::new(CrateDriver::new(scenario, &part, assignment.seed));
            run_with_driver(assignment, driver, Vec::new(), outbox, start, cancel).await;
        }
    }
}

/// The RESP driver's configuration for a key-value workload, and a note on
/// the values it writes.
fn resp_config(assignment: &Assignment) -> Result<(RespConfig, Vec<String>), String> {
    let exclusive = matches!(assignment.scenario.load.model, LoadModel::Closed);
    let mut config = RespConfig::simple("", bytes::Bytes::new(), exclusive);
    let workload = &assignment.scenario.workload;
    let spec = if let Some(space) = workload.key_value_space() {
        config.prefix.clone_from(&space.prefix);
        config.preload = space.preload;
        config.cleanup = space.cleanup;
        if let Workload::Cache(cache) = workload {
            config.ttl_ms = cache.ttl.as_millis().max(1) as u64;
        }
        space.value
    } else {
        match workload {
            Workload::Chat(chat) => {
                config.prefix.clone_from(&chat.prefix);
                config.cleanup = chat.cleanup;
                config.history = chat.history;
                config.page = chat.page;
                chat.value
            }
            Workload::Pubsub(pubsub) => {
                config.prefix.clone_from(&pubsub.prefix);
                // The first 8 bytes of a message are its send time.
                ValueSpec { size: pubsub.message_size - 8, format: ValueFormat::Raw, compress: Compression::None }
            }
            other => return Err(format!("workload {} does not run against a RESP target", other.kind())),
        }
    };
    config.values = values::pool(&spec, assignment.seed)?;
    let notes = vec![values::describe(&spec, &config.values)];
    Ok((config, notes))
}

async fn run_with_driver<D: Driver>(
    assignment: Assignment,
    driver: Arc<D>,
    mut notes: Vec<String>,
    outbox: Arc<Outbox>,
    start: oneshot::Receiver<Instant>,
    mut cancel: watch::Receiver<bool>,
) {
    let run_id = assignment.run_id.clone();
    let part =
        Part { agent_index: assignment.agent_index, key_start: assignment.key_start, key_end: assignment.key_end };
    // Prepare: set the target up and open every connection now, so that a
    // target that cannot be reached fails the run before it starts.
    let prepared = async {
        if !assignment.rejoin {
            notes.extend(driver.setup(&assignment.endpoints, &part).await.map_err(|e| e.message)?);
        }
        let connections = open_connections(&*driver, &assignment).await?;
        let subscribers = open_subscribers(&assignment).await?;
        Ok::<_, String>((connections, subscribers))
    };
    let prepare_span = tracing::info_span!("prepare", run_id = %run_id, connections = assignment.connections);
    let (connections, subscribers) = match prepared.instrument(prepare_span).await {
        Ok(prepared) => prepared,
        Err(error) => {
            outbox.push(Outgoing::Failed { run_id, error });
            return;
        }
    };
    outbox.push(Outgoing::Ready { run_id: run_id.clone() });
    let start_at = tokio::select! {
        at = start => match at {
            Ok(at) => at,
            Err(_) => return,
        },
        _ = cancel.wait_for(|c| *c) => return,
        () = tokio::time::sleep(START_TIMEOUT) => {
            tracing::warn!(run = %run_id, "no start within 120s of ready; giving up");
            return;
        }
    };
    let scenario = &assignment.scenario;
    let end = start_at + scenario.duration;
    let stop = Arc::new(AtomicBool::new(false));
    let cancel_arrivals = Arc::new(AtomicBool::new(false));
    let mut arrival_thread = None;
    let arrivals = match scenario.load.model {
        LoadModel::Closed => None,
        LoadModel::Open { arrival, .. } => {
            let cancel = Arc::clone(&cancel_arrivals);
            match arrivals::start(assignment.rate_per_s, arrival, start_at, end, assignment.seed, cancel) {
                Ok((rx, thread)) => {
                    arrival_thread = Some(thread);
                    Some(rx)
                }
                Err(error) => {
                    outbox
                        .push(Outgoing::Failed { run_id, error: format!("cannot start the arrival thread: {error}") });
                    return;
                }
            }
        }
    };
    let context = Arc::new(SlotContext {
        generator: Generator::new(&scenario.workload, assignment.key_start, assignment.key_end),
        pause: match &scenario.workload {
            Workload::Records(w) => w.batch_interval,
            _ => Duration::ZERO,
        },
        end,
        stop: Arc::clone(&stop),
        arrivals,
        seed: assignment.seed,
        reconnect_every: scenario.load.reconnect_every,
    });
    tokio::time::sleep_until(start_at.into()).await;
    let operation_names = scenario.workload.operations();
    let mut recorders: Vec<SharedRecorder> = Vec::with_capacity(connections.len());
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (endpoint, connection)) in connections.into_iter().enumerate() {
        let recorder = Recorder::shared(operation_names.len());
        recorders.push(Arc::clone(&recorder));
        tasks.spawn(drive(
            Arc::clone(&driver),
            endpoint,
            connection,
            scenario.load.pipeline,
            Arc::clone(&context),
            recorder,
            index as u64,
        ));
    }
    let (stop_listening, listening) = watch::channel(false);
    let has_subscribers = !subscribers.is_empty();
    for subscriber in subscribers {
        let recorder = Recorder::shared(operation_names.len());
        {
            let mut r = lock(&recorder);
            r.set_node(subscriber.node.as_str().into());
            r.connected = true;
        }
        recorders.push(Arc::clone(&recorder));
        let mut listening = listening.clone();
        tasks.spawn(async move {
            let until = async move {
                let _ = listening.wait_for(|stop| *stop).await;
            };
            subscriber
                .listen(until, |latency_us| {
                    let mut r = lock(&recorder);
                    r.record(1, latency_us, latency_us, None);
                    r.counters[DELIVERED] += 1;
                })
                .await;
            lock(&recorder).connected = false;
        });
    }
    let warmup_intervals = scenario.warmup.as_secs_f64().ceil() as u64;
    let mut cpu = CpuMeter::new();
    let mut seq = assignment.first_seq;
    // A rejoining agent starts with the interval under way; the ones before
    // were reported by its earlier self, or are missing.
    let mut interval = Instant::now().saturating_duration_since(start_at).as_secs();
    let report = |interval: u64, seq: &mut u64, cpu: &mut CpuMeter, notes: &mut Vec<String>| {
        let mut r = collect(&recorders, operation_names, &run_id, *seq, interval, interval < warmup_intervals);
        r.cpu_percent = cpu.percent_since_last();
        r.notes = std::mem::take(notes);
        outbox.push(Outgoing::Report(Box::new(r)));
        *seq += 1;
    };
    let mut cancelled = false;
    loop {
        let boundary = start_at + INTERVAL * (interval as u32 + 1);
        if boundary >= end {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(boundary.into()) => {}
            _ = cancel.wait_for(|c| *c) => { cancelled = true; break; }
        }
        report(interval, &mut seq, &mut cpu, &mut notes);
        interval += 1;
    }
    if cancelled {
        stop.store(true, Ordering::Relaxed);
        cancel_arrivals.store(true, Ordering::Relaxed);
    } else {
        tokio::select! {
            () = tokio::time::sleep_until(end.into()) => {}
            _ = cancel.wait_for(|c| *c) => {
                cancelled = true;
                cancel_arrivals.store(true, Ordering::Relaxed);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    if has_subscribers && !cancelled {
        tokio::time::sleep(DELIVERY_DRAIN).await;
    }
    let _ = stop_listening.send(true);
    // Operations in flight at the end still finish and are counted.
    let drained = tokio::time::timeout(OPERATION_TIMEOUT + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    // Open model: arrivals due within the run that no slot could send
    // before it ended are late starts too, never silently dropped.
    if let Some(thread) = arrival_thread {
        // It has only arrivals from the past left to release, or was cancelled.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    if let Some(arrivals) = &context.arrivals
        && let Some(first) = recorders.first()
        && !cancelled
    {
        let unsent = arrivals.len() as u64;
        arrivals.close();
        recorder::lock(first).late_starts += unsent;
    }
    if !cancelled {
        match driver.teardown(&assignment.endpoints, &part).await {
            Ok(more) => notes.extend(more),
            Err(error) => notes.push(format!("teardown failed: {}", error.message)),
        }
    }
    report(interval, &mut seq, &mut cpu, &mut notes);
    let error = if cancelled { "cancelled".to_string() } else { String::new() };
    let interval_reports = seq - assignment.first_seq;
    let reports_dropped = outbox.dropped(&run_id);
    if reports_dropped > 0 {
        tracing::warn!(run = %run_id, reports_dropped, "the report buffer was full while the coordinator was away; the oldest reports were dropped");
    }
    outbox.push(Outgoing::Final { run_id: run_id.clone(), seq, interval_reports, reports_dropped, error });
    tracing::info!(run = %run_id, intervals = seq, "assignment finished");
}

/// Opens the pub/sub subscribers of a `pubsub` run (none for other
/// workloads), spread over the endpoints round robin.
async fn open_subscribers(assignment: &Assignment) -> Result<Vec<Subscriber>, String> {
    let Workload::Pubsub(workload) = &assignment.scenario.workload else { return Ok(Vec::new()) };
    let channels: Vec<String> = (0..workload.channels).map(|c| format!("{}{c}", workload.prefix)).collect();
    let config = Arc::new(RespConfig::simple(&workload.prefix, bytes::Bytes::new(), true));
    let attempts = (0..workload.subscribers as usize).map(|i| {
        let endpoint = &assignment.endpoints[i % assignment.endpoints.len()];
        let (config, channels) = (&config, &channels);
        async move { Subscriber::connect(config, endpoint, channels).await.map_err(|e| e.message) }
    });
    futures::future::join_all(attempts).await.into_iter().collect()
}

/// Opens this agent's connections, spread over the endpoints round robin.
async fn open_connections<D: Driver>(
    driver: &D,
    assignment: &Assignment,
) -> Result<Vec<(String, D::Connection)>, String> {
    if assignment.endpoints.is_empty() {
        return Err("the assignment has no endpoints".to_string());
    }
    let offset = assignment.agent_index as usize * assignment.connections as usize;
    let attempts = (0..assignment.connections as usize).map(|i| {
        let endpoint = assignment.endpoints[(offset + i) % assignment.endpoints.len()].clone();
        async move {
            let connection = driver.connect(&endpoint).await.map_err(|e| e.message)?;
            Ok::<_, String>((endpoint, connection))
        }
    });
    futures::future::join_all(attempts).await.into_iter().collect()
}
