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

use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use stampede_common::Scenario;
use stampede_common::scenario::{LoadModel, Workload};
use tokio::sync::{oneshot, watch};

use crate::drivers::Driver;
use crate::drivers::resp::RespDriver;
use crate::health::CpuMeter;
use crate::outbox::{Outbox, Outgoing};
use crate::workloads::kv::KvGenerator;
use connection::{OPERATION_TIMEOUT, SlotContext, drive};
use recorder::{Recorder, SharedRecorder, collect};

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
}

/// How long an agent waits for Start after Ready before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const INTERVAL: Duration = Duration::from_secs(1);

/// Carries out an assignment; everything it produces goes to the outbox.
pub async fn run(
    assignment: Assignment,
    outbox: Arc<Outbox>,
    start: oneshot::Receiver<Instant>,
    cancel: watch::Receiver<bool>,
) {
    let Workload::Kv(workload) = &assignment.scenario.workload;
    let mut value = vec![0u8; workload.value_size as usize];
    rand::rngs::SmallRng::seed_from_u64(assignment.seed).fill_bytes(&mut value);
    let exclusive = matches!(assignment.scenario.load.model, LoadModel::Closed);
    let driver = Arc::new(RespDriver::new(&workload.key_prefix, Bytes::from(value), exclusive));
    run_with_driver(assignment, driver, outbox, start, cancel).await;
}

async fn run_with_driver<D: Driver>(
    assignment: Assignment,
    driver: Arc<D>,
    outbox: Arc<Outbox>,
    start: oneshot::Receiver<Instant>,
    mut cancel: watch::Receiver<bool>,
) {
    let run_id = assignment.run_id.clone();
    // Prepare: open every connection now, so that a target that cannot be
    // reached fails the run before it starts.
    let connections = match open_connections(&*driver, &assignment).await {
        Ok(connections) => connections,
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
    let Workload::Kv(workload) = &scenario.workload;
    let context = Arc::new(SlotContext {
        generator: KvGenerator::new(workload, assignment.key_start, assignment.key_end),
        end,
        stop: Arc::clone(&stop),
        arrivals,
        seed: assignment.seed,
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
    let warmup_intervals = scenario.warmup.as_secs_f64().ceil() as u64;
    let mut cpu = CpuMeter::new();
    let mut seq = 0u64;
    let mut interval = 0u64;
    let report = |interval: u64, seq: &mut u64, cpu: &mut CpuMeter| {
        let mut r = collect(&recorders, operation_names, &run_id, *seq, interval, interval < warmup_intervals);
        r.cpu_percent = cpu.percent_since_last();
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
        report(interval, &mut seq, &mut cpu);
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
    report(interval, &mut seq, &mut cpu);
    let error = if cancelled { "cancelled".to_string() } else { String::new() };
    outbox.push(Outgoing::Final { run_id: run_id.clone(), seq, interval_reports: seq, error });
    tracing::info!(run = %run_id, intervals = seq, "assignment finished");
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
