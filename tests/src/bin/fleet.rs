//! `stampede-fleet`: many simulated agents in one process, each a real gRPC
//! session to a real coordinator, for `deploy/bench/coordinator_scale.py`.
//!
//! Every simulated agent opens its own HTTP/2 connection, says hello,
//! measures the clock with pings, sends heartbeats, answers its assignment
//! with Ready and, from the start instant on, sends one interval report per
//! second (`--series` series of operation x node, each with V2-deflate
//! latency and service histograms of `--values` values, counts and errors),
//! keeps each until it is acknowledged, sends again what is unacknowledged
//! after 5 s or after a reconnection, and ends with its final report. It
//! prints one JSON object: what the agents sent (per operation and node),
//! what the coordinator's report says it merged, the acknowledgement
//! latency, and how late the live views (`WatchRun`, `/metrics`) showed
//! each second.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use stampede_proto::v1 as pb;
use stampede_proto::v1::agent_service_client::AgentServiceClient;
use stampede_proto::v1::control_service_client::ControlServiceClient;
use stampede_proto::v1::session_request::Body as Up;
use stampede_proto::v1::session_response::Body as Down;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const USAGE: &str = "usage: stampede-fleet --coordinator URL --agents N [--series 16] [--values 2000] \
[--seconds 30] [--http ADDR] [--connect-rate 200]";
const RESEND_AFTER: Duration = Duration::from_secs(5);
/// Histogram pairs drawn before the run; reports take them in turn.
const POOL: usize = 16;
const OPERATIONS: [&str; 2] = ["get", "set"];

struct Args {
    coordinator: String,
    agents: usize,
    series: usize,
    values: usize,
    seconds: u64,
    http: Option<String>,
    connect_rate: u64,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        coordinator: String::new(),
        agents: 0,
        series: 16,
        values: 2000,
        seconds: 30,
        http: None,
        connect_rate: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} wants a value\n{USAGE}"))?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag} wants a number, not {value:?}"));
        match flag.as_str() {
            "--coordinator" => args.coordinator = value.clone(),
            "--agents" => args.agents = number()? as usize,
            "--series" => args.series = number()? as usize,
            "--values" => args.values = number()? as usize,
            "--seconds" => args.seconds = number()?,
            "--http" => args.http = Some(value.clone()),
            "--connect-rate" => args.connect_rate = number()?.max(1),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if args.coordinator.is_empty() || args.agents == 0 || args.series == 0 || args.seconds == 0 {
        return Err(USAGE.to_string());
    }
    Ok(args)
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// One series' content: encoded histograms and how many values they hold.
struct Sample {
    latency: Vec<u8>,
    service: Vec<u8>,
    count: u64,
    distinct: usize,
}

/// Latencies spread like a loaded service's: a body around a millisecond,
/// a tail to a second; so most values fall in buckets of their own.
fn samples(values: usize) -> Vec<Sample> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(26);
    (0..POOL)
        .map(|_| {
            let (mut latency, mut service) = (new_histogram(), new_histogram());
            for _ in 0..values {
                let body: f64 = rng.random_range(5.0f64..8.5).exp();
                let tail = if rng.random_bool(0.02) { rng.random_range(8.0f64..13.8).exp() } else { 0.0 };
                let v = (body + tail) as u64;
                let _ = latency.record(v.clamp(1, 3_600_000_000));
                let _ = service.record((v * 9 / 10).clamp(1, 3_600_000_000));
            }
            Sample {
                latency: encode(&latency),
                service: encode(&service),
                count: values as u64,
                distinct: latency.iter_recorded().count(),
            }
        })
        .collect()
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")
}

fn encode(h: &Histogram<u64>) -> Vec<u8> {
    use hdrhistogram::serialization::Serializer;
    let mut bytes = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new().serialize(h, &mut bytes).expect("encode");
    bytes
}

/// What all agents share: what they sent and when, and what came back.
#[derive(Default)]
struct Shared {
    sent_ops: BTreeMap<(String, String), u64>,
    sent_errors: u64,
    /// Interval -> when the last agent sent it (first send), and how many
    /// operations all agents sent for it.
    interval_sent: BTreeMap<u64, (Instant, u64)>,
    ack_us: Vec<u64>,
    reports: u64,
    resent: u64,
    reconnects: u64,
    acked: u64,
    failures: Vec<String>,
    connected: usize,
}

type SharedRef = Arc<Mutex<Shared>>;

/// Each `/metrics` scrape: when, and the run's operations it showed; and
/// each scrape's duration in microseconds.
type Scrapes = (Vec<(Instant, u64)>, Vec<u64>);

struct Run {
    run_id: String,
    first_seq: u64,
    start: Option<Instant>,
}

/// One simulated agent for its whole life (reconnecting when the session
/// ends before its final report is acknowledged).
async fn agent(index: usize, args: Arc<Args>, pool: Arc<Vec<Sample>>, shared: SharedRef, ready: mpsc::Sender<()>) {
    let id = format!("sim-{index:05}");
    let mut run: Option<Run> = None;
    // seq -> (message, first sent, last sent); both None until sent.
    let mut outbox: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut next_interval = 0u64;
    let mut final_sent: Option<Instant> = None;
    let mut announced = false;
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempts > 1 {
            shared.lock().expect("lock").reconnects += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if attempts > 50 {
            shared.lock().expect("lock").failures.push(format!("{id}: gave up after 50 sessions"));
            return;
        }
        let channel = match tonic::transport::Endpoint::from_shared(args.coordinator.clone())
            .expect("url")
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .connect()
            .await
        {
            Ok(channel) => channel,
            Err(_) => continue,
        };
        let mut client = AgentServiceClient::new(channel)
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024);
        let (tx, rx) = mpsc::channel::<pb::SessionRequest>(256);
        let send = |tx: &mpsc::Sender<pb::SessionRequest>, body: Up| {
            let tx = tx.clone();
            async move { tx.send(pb::SessionRequest { body: Some(body) }).await.is_ok() }
        };
        let hello = pb::Hello {
            agent_id: id.clone(),
            host: "fleet".into(),
            labels: Default::default(),
            capacity: 1000,
            version: env!("CARGO_PKG_VERSION").into(),
            active_runs: run.iter().map(|r| r.run_id.clone()).collect(),
        };
        if !send(&tx, Up::Hello(hello)).await {
            continue;
        }
        let mut inbound = match client.session(ReceiverStream::new(rx)).await {
            Ok(r) => r.into_inner(),
            Err(_) => continue,
        };
        let heartbeat = match inbound.message().await {
            Ok(Some(pb::SessionResponse { body: Some(Down::Welcome(w)) })) => {
                Duration::from_millis(w.heartbeat_interval_ms.clamp(100, 60_000))
            }
            _ => continue,
        };
        // Clock: a few pings, the offset of the shortest round trip.
        let mut best: Option<(i64, i64)> = None;
        let mut pinged = true;
        for seq in 0..4 {
            let t0 = now_us();
            if !send(&tx, Up::Ping(pb::Ping { seq, agent_time_us: t0 })).await {
                pinged = false;
                break;
            }
            match inbound.message().await {
                Ok(Some(pb::SessionResponse { body: Some(Down::Pong(p)) })) => {
                    let t3 = now_us();
                    let rtt = t3 - t0;
                    let offset = p.coordinator_time_us - (t0 + t3) / 2;
                    if best.is_none_or(|(_, r)| rtt < r) {
                        best = Some((offset, rtt));
                    }
                }
                _ => {
                    pinged = false;
                    break;
                }
            }
        }
        let Some((offset_us, rtt_us)) = best.filter(|_| pinged) else { continue };
        if !send(&tx, Up::ClockSync(pb::ClockSync { offset_us, rtt_us })).await {
            continue;
        }
        if !announced {
            announced = true;
            shared.lock().expect("lock").connected += 1;
            let _ = ready.send(()).await;
        }
        // A new session sends again everything unacknowledged.
        let mut resend_all = attempts > 1;
        let mut beat = tokio::time::interval(heartbeat);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            let now = Instant::now();
            // Reports due: one per second from the start instant on.
            if let Some(r) = run.as_ref()
                && let Some(start) = r.start
            {
                while next_interval < args.seconds && now >= start + Duration::from_secs(next_interval + 1) {
                    let report = report(index, r, next_interval, &args, &pool, &shared);
                    outbox.insert(report.seq, Pending { message: report, first: None, last: None });
                    next_interval += 1;
                }
            }
            let mut ok = true;
            for pending in outbox.values_mut() {
                let due = match pending.last {
                    None => true,
                    Some(last) => resend_all || now.duration_since(last) >= RESEND_AFTER,
                };
                if !due {
                    continue;
                }
                ok &= send(&tx, Up::IntervalReport(pending.message.clone())).await;
                pending.last = Some(now);
                let mut s = shared.lock().expect("lock");
                if pending.first.is_some() {
                    s.resent += 1;
                } else {
                    pending.first = Some(now);
                    s.reports += 1;
                    let ops: u64 = pending.message.operations.iter().map(|o| o.count).sum();
                    let entry = s.interval_sent.entry(pending.message.interval).or_insert((now, 0));
                    entry.0 = entry.0.max(now);
                    entry.1 += ops;
                }
            }
            resend_all = false;
            if let Some(r) = run.as_ref()
                && next_interval == args.seconds
                && outbox.is_empty()
                && final_sent.is_none_or(|at| at.elapsed() >= RESEND_AFTER)
            {
                let seq = r.first_seq + args.seconds;
                let report = pb::FinalReport {
                    run_id: r.run_id.clone(),
                    seq,
                    interval_reports: args.seconds,
                    error: String::new(),
                    reports_dropped: 0,
                };
                ok &= send(&tx, Up::FinalReport(report)).await;
                final_sent = Some(Instant::now());
            }
            if !ok {
                break;
            }
            tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(pb::SessionResponse { body: Some(body) })) => match body {
                        Down::Assignment(a) => {
                            if run.as_ref().is_none_or(|r| r.run_id != a.run_id) {
                                run = Some(Run { run_id: a.run_id.clone(), first_seq: a.first_seq, start: None });
                            }
                            send(&tx, Up::Ready(pb::Ready { run_id: a.run_id })).await;
                        }
                        Down::Start(s) => {
                            if let Some(r) = run.as_mut().filter(|r| r.run_id == s.run_id && r.start.is_none()) {
                                let from_now = s.start_at_us - offset_us - now_us();
                                let now = Instant::now();
                                r.start = Some(if from_now >= 0 {
                                    now + Duration::from_micros(from_now as u64)
                                } else {
                                    now.checked_sub(Duration::from_micros(from_now.unsigned_abs())).unwrap_or(now)
                                });
                            }
                        }
                        Down::Ack(ack) => {
                            let final_seq = run.as_ref().map(|r| r.first_seq + args.seconds);
                            if Some(ack.seq) == final_seq {
                                return;
                            }
                            if let Some(Pending { first: Some(first), .. }) = outbox.remove(&ack.seq) {
                                let mut s = shared.lock().expect("lock");
                                s.ack_us.push(first.elapsed().as_micros() as u64);
                                s.acked += 1;
                            }
                        }
                        Down::Cancel(c) => {
                            shared.lock().expect("lock").failures.push(format!("{id}: cancelled: {}", c.reason));
                            return;
                        }
                        Down::Welcome(_) | Down::Pong(_) => {}
                    },
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                },
                _ = beat.tick() => {
                    if !send(&tx, Up::Heartbeat(pb::Heartbeat { cpu_percent: 1.0, rss_bytes: 50 << 20 })).await {
                        break;
                    }
                }
                _ = tick.tick() => {}
            }
        }
        final_sent = None;
    }
}

/// An interval report kept until it is acknowledged.
struct Pending {
    message: pb::IntervalReport,
    first: Option<Instant>,
    last: Option<Instant>,
}

fn report(
    index: usize,
    run: &Run,
    interval: u64,
    args: &Args,
    pool: &[Sample],
    shared: &SharedRef,
) -> pb::IntervalReport {
    let mut operations = Vec::with_capacity(args.series);
    let nodes = args.series.div_ceil(OPERATIONS.len());
    let mut s = shared.lock().expect("lock");
    for series in 0..args.series {
        let operation = OPERATIONS[series % OPERATIONS.len()];
        let node = format!("node-{}", series / OPERATIONS.len());
        let sample = &pool[(index + interval as usize * 7 + series) % pool.len()];
        let errors = u64::from((index + series + interval as usize).is_multiple_of(5));
        *s.sent_ops.entry((operation.to_string(), node.clone())).or_default() += sample.count;
        s.sent_errors += errors;
        operations.push(pb::OperationStats {
            operation: operation.into(),
            node,
            count: sample.count,
            errors: if errors > 0 { vec![pb::ErrorCount { kind: "timeout".into(), count: errors }] } else { vec![] },
            latency_histogram: sample.latency.clone(),
            service_histogram: sample.service.clone(),
            clamped: 0,
            error_messages: vec![],
            bytes_sent: sample.count * 40,
            bytes_received: sample.count * 120,
        });
    }
    pb::IntervalReport {
        run_id: run.run_id.clone(),
        seq: run.first_seq + interval,
        interval,
        warmup: false,
        operations,
        connections: (0..nodes).map(|n| pb::NodeConnections { node: format!("node-{n}"), connections: 1 }).collect(),
        late_starts: 0,
        health: Some(pb::AgentHealth {
            cpu_percent: 3.0,
            max_schedule_lag_us: 120,
            cpu_available_percent: 200.0,
            cpu_wait_percent: 0.1,
            runtime_lag_us: 200,
            slot_occupancy: 0.4,
            saturation: vec![],
            rss_bytes: 50 << 20,
        }),
        counters: [("hits".to_string(), 10u64), ("misses".to_string(), 2)].into_iter().collect(),
        notes: vec![],
        opened: vec![],
        unsent_starts: 0,
        node_samples: Default::default(),
        load_end_us: 0,
        timings: vec![],
    }
}

fn percentile(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// The sum of `stampede_run_operations_total` for the run, read from the
/// coordinator's /metrics, and how long the scrape took.
async fn scrape(addr: &str, run_id: &str) -> Option<(u64, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let began = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).await.ok()?;
    let took = began.elapsed();
    let text = String::from_utf8_lossy(&body);
    let label = format!("run=\"{run_id}\"");
    let sum = text
        .lines()
        .filter(|l| l.starts_with("stampede_run_operations_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    Some((sum, took))
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(args) => Arc::new(args),
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let pool = Arc::new(samples(args.values));
    let distinct = pool.iter().map(|s| s.distinct).sum::<usize>() / pool.len();
    let shared: SharedRef = Arc::default();
    let (ready_tx, mut ready_rx) = mpsc::channel(args.agents.max(1));
    let connect_began = Instant::now();
    let gap = Duration::from_micros(1_000_000 / args.connect_rate);
    for index in 0..args.agents {
        tokio::spawn(agent(index, Arc::clone(&args), Arc::clone(&pool), Arc::clone(&shared), ready_tx.clone()));
        tokio::time::sleep(gap).await;
    }
    drop(ready_tx);
    let mut connected = 0;
    while connected < args.agents {
        match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(())) => connected += 1,
            _ => break,
        }
    }
    let connect_s = connect_began.elapsed().as_secs_f64();
    eprintln!("{connected} of {} agents connected in {connect_s:.1} s", args.agents);
    if connected < args.agents {
        eprintln!("not every agent connected; giving up");
        std::process::exit(1);
    }
    let scenario = format!(
        "name: fleet-{agents}\nduration: {seconds}s\nwarmup: 0s\nagents: {agents}\n\
         target:\n  kind: redis\n  endpoints: [\"127.0.0.1:9\"]\n\
         load:\n  model: closed\n  connections: {agents}\n\
         workload:\n  kind: kv\n  read_ratio: 0.5\n  keys: 1000\n  value_size: 10B\n",
        agents = args.agents,
        seconds = args.seconds
    );
    let channel = tonic::transport::Endpoint::from_shared(args.coordinator.clone())
        .expect("url")
        .connect()
        .await
        .expect("the coordinator answers");
    let mut control = ControlServiceClient::new(channel)
        .max_decoding_message_size(256 * 1024 * 1024)
        .max_encoding_message_size(16 * 1024 * 1024);
    let run_id = control
        .submit_run(pb::SubmitRunRequest { scenario_yaml: scenario, agents: args.agents as u32 })
        .await
        .expect("the run is accepted")
        .into_inner()
        .run_id;
    let submitted = Instant::now();
    println!("{{\"event\":\"submitted\",\"run_id\":\"{run_id}\"}}");
    // WatchRun: when each second's progress came.
    let mut watch = control.clone();
    let watch_run = run_id.clone();
    let watched: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let watched_in = Arc::clone(&watched);
    let watcher = tokio::spawn(async move {
        let mut stream = watch.watch_run(pb::WatchRunRequest { run_id: watch_run }).await.ok()?.into_inner();
        while let Ok(Some(update)) = stream.message().await {
            if let Some(p) = update.progress
                && p.elapsed_s > 0
            {
                watched_in.lock().expect("lock").entry(p.elapsed_s - 1).or_insert_with(Instant::now);
            }
            if !update.report_json.is_empty() {
                return Some((update.report_json, Instant::now()));
            }
        }
        None
    });
    // /metrics: when the run's operations reached each second's total, and
    // how long each scrape took.
    let scraped: Arc<Mutex<Scrapes>> = Arc::default();
    let scraper = args.http.clone().map(|addr| {
        let scraped = Arc::clone(&scraped);
        let run_id = run_id.clone();
        let seconds = args.seconds;
        tokio::spawn(async move {
            let end = Instant::now() + Duration::from_secs(seconds + 60);
            while Instant::now() < end {
                if let Some((sum, took)) = scrape(&addr, &run_id).await {
                    let mut s = scraped.lock().expect("lock");
                    s.0.push((Instant::now(), sum));
                    s.1.push(took.as_micros() as u64);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let outcome = tokio::time::timeout(Duration::from_secs(args.seconds + 180), watcher).await;
    let ended = Instant::now();
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    let (report_json, report_at) = match outcome {
        Ok(Ok(Some(found))) => found,
        _ => {
            eprintln!("the run did not end with a report within {} s", args.seconds + 180);
            std::process::exit(1);
        }
    };
    let report: serde_json::Value = serde_json::from_str(&report_json).expect("the report is JSON");
    let mut s = shared.lock().expect("lock");
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    let mut sent: BTreeMap<String, u64> = BTreeMap::new();
    for ((operation, node), n) in &s.sent_ops {
        *sent.entry(format!("{operation}@{node}")).or_default() += n;
        let counted = report["nodes"][node]["operations"][operation]["count"].as_u64().unwrap_or(0);
        merged.insert(format!("{operation}@{node}"), counted);
    }
    let sent_total: u64 = s.sent_ops.values().sum();
    let merged_total = report["totals"]["ops"].as_u64().unwrap_or(0);
    let merged_errors = report["totals"]["errors"].as_u64().unwrap_or(0);
    // Delays: from when the last agent sent a second to when it was seen.
    let watched = watched.lock().expect("lock");
    let mut watch_delay: Vec<u64> = s
        .interval_sent
        .iter()
        .filter_map(|(i, (at, _))| watched.get(i).map(|seen| seen.saturating_duration_since(*at).as_millis() as u64))
        .collect();
    let (points, scrape_us) = &mut *scraped.lock().expect("lock");
    let mut cumulative = 0;
    let mut metrics_delay = Vec::new();
    for (at, ops) in s.interval_sent.values() {
        cumulative += ops;
        if let Some((seen, _)) = points.iter().find(|(_, sum)| *sum >= cumulative) {
            metrics_delay.push(seen.saturating_duration_since(*at).as_millis() as u64);
        }
    }
    let mut ack = std::mem::take(&mut s.ack_us);
    let out = serde_json::json!({
        "event": "result",
        "run_id": run_id,
        "agents": args.agents,
        "series": args.series,
        "values_per_histogram": args.values,
        "distinct_values_per_histogram": distinct,
        "seconds": args.seconds,
        "connect_s": connect_s,
        "reports_sent": s.reports,
        "reports_acked": s.acked,
        "resent": s.resent,
        "reconnects": s.reconnects,
        "ack_ms": {
            "p50": percentile(&mut ack, 0.5) as f64 / 1000.0,
            "p99": percentile(&mut ack, 0.99) as f64 / 1000.0,
            "max": percentile(&mut ack, 1.0) as f64 / 1000.0,
        },
        "watch_delay_ms": { "p50": percentile(&mut watch_delay, 0.5), "p99": percentile(&mut watch_delay, 0.99), "seconds_seen": watch_delay.len() },
        "metrics_delay_ms": { "p50": percentile(&mut metrics_delay, 0.5), "p99": percentile(&mut metrics_delay, 0.99), "seconds_seen": metrics_delay.len() },
        "metrics_scrape_ms": { "p50": percentile(scrape_us, 0.5) as f64 / 1000.0, "p99": percentile(scrape_us, 0.99) as f64 / 1000.0 },
        "operations_sent": sent_total,
        "operations_merged": merged_total,
        "errors_sent": s.sent_errors,
        "errors_merged": merged_errors,
        "series_equal": sent == merged,
        "totals_equal": sent_total == merged_total && s.sent_errors == merged_errors && sent == merged,
        "report_after_end_s": report_at.duration_since(submitted).as_secs_f64() - args.seconds as f64,
        "run_s": ended.duration_since(submitted).as_secs_f64(),
        "failures": s.failures,
        "status": report["status"],
    });
    println!("{out}");
}
