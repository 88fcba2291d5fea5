//! Drives one connection: `pipeline` slots, each with its own handle and
//! random stream, run concurrently on one task. In the closed model a slot
//! sends its next request when the last one answered; in the open model it
//! takes the next intended start from the arrival queue. A dropped
//! connection is re-opened with backoff until the run ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::recorder::{SharedRecorder, lock};
use crate::drivers::{Connection, Driver, DriverError, ErrorKind};
use crate::workloads::kv::KvGenerator;

/// A request sent this much after its intended start counts as a late start.
pub const LATE_START: Duration = Duration::from_millis(1);
/// An operation without an answer after this long counts as a timeout.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// What every slot of every connection shares.
pub struct SlotContext {
    pub generator: KvGenerator,
    pub end: Instant,
    pub stop: Arc<AtomicBool>,
    pub arrivals: Option<async_channel::Receiver<Instant>>,
    pub seed: u64,
}

impl SlotContext {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.end
    }
}

enum SlotEnd {
    Finished,
    ConnectionLost,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// How far a slot's timeout deadline may lag behind the exact one. The
/// deadline is pushed forward at most this often instead of arming a timer
/// per operation (a timer per operation was the largest single cost at
/// high pipeline depths); an operation times out 5.0 to 5.25 s after it
/// was sent.
const TIMEOUT_SLACK: Duration = Duration::from_millis(250);

async fn run_slot<C: Connection>(mut connection: C, context: &SlotContext, recorder: &SharedRecorder, seed: u64) -> SlotEnd {
    let mut rng = SmallRng::seed_from_u64(seed);
    let deadline = tokio::time::sleep(OPERATION_TIMEOUT + TIMEOUT_SLACK);
    tokio::pin!(deadline);
    while context.running() {
        let intended = match &context.arrivals {
            None => None,
            Some(arrivals) => match arrivals.recv().await {
                Ok(at) => Some(at),
                Err(_) => return SlotEnd::Finished,
            },
        };
        let operation = context.generator.next(&mut rng);
        let sent = Instant::now();
        let exact = sent + OPERATION_TIMEOUT;
        if deadline.deadline().into_std() < exact {
            deadline.as_mut().reset((exact + TIMEOUT_SLACK).into());
        }
        let result = tokio::select! {
            biased;
            result = connection.execute(&operation) => Some(result),
            () = &mut deadline => None,
        };
        let done = Instant::now();
        let error = match result {
            Some(Ok(())) => None,
            Some(Err(error)) => Some(error.kind),
            None => Some(ErrorKind::Timeout),
        };
        let intended = intended.unwrap_or(sent);
        let lag = sent.saturating_duration_since(intended);
        {
            let mut r = lock(recorder);
            r.record(operation.index(), micros(done - intended), micros(done - sent), error);
            if lag > LATE_START {
                r.late_starts += 1;
            }
            r.max_lag_us = r.max_lag_us.max(micros(lag));
        }
        if error == Some(ErrorKind::Connection) {
            return SlotEnd::ConnectionLost;
        }
    }
    SlotEnd::Finished
}

/// Runs one connection's slots until the run ends, reconnecting when the
/// connection is lost.
pub async fn drive<D: Driver>(
    driver: Arc<D>,
    endpoint: String,
    first: D::Connection,
    pipeline: u32,
    context: Arc<SlotContext>,
    recorder: SharedRecorder,
    connection_index: u64,
) {
    let mut connection = Some(first);
    let mut backoff = Duration::from_millis(100);
    let mut generation = 0u64;
    while context.running() {
        let current = match connection.take() {
            Some(c) => c,
            None => match reconnect(&*driver, &endpoint, &context, &mut backoff).await {
                Some(c) => c,
                None => break,
            },
        };
        {
            let mut r = lock(&recorder);
            r.node = Some(current.node().into());
            r.connected = true;
        }
        let slots = (0..pipeline).map(|slot| {
            let seed =
                context.seed ^ (connection_index << 20) ^ (generation << 40) ^ u64::from(slot);
            run_slot(
                current.clone(),
                &context,
                &recorder,
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            )
        });
        // FuturesUnordered polls only the slots that were woken; join_all
        // would poll every slot on every wake-up.
        let mut slots: FuturesUnordered<_> = slots.collect();
        let mut lost = false;
        while let Some(end) = slots.next().await {
            lost |= matches!(end, SlotEnd::ConnectionLost);
        }
        lock(&recorder).connected = false;
        generation += 1;
        if !lost {
            break;
        }
        tracing::warn!(endpoint = %endpoint, "connection lost; reconnecting");
    }
}

async fn reconnect<D: Driver>(
    driver: &D,
    endpoint: &str,
    context: &SlotContext,
    backoff: &mut Duration,
) -> Option<D::Connection> {
    while context.running() {
        match driver.connect(endpoint).await {
            Ok(connection) => {
                *backoff = Duration::from_millis(100);
                return Some(connection);
            }
            Err(DriverError { message, .. }) => {
                tracing::debug!(%endpoint, %message, "reconnect failed");
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    None
}
