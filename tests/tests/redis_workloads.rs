//! The Redis and KV workloads (`mixed`, `cache`, `chat`, `pubsub`, value
//! formats) run by `stampede run` with two in-process agents against a real
//! `redis-server` or a KV server process; every figure of the report is
//! checked against what the target itself counted.

use std::time::Duration;

use serde_json::Value;
use stampede_tests::cluster::{KvServer, KvServerBuilder};
use stampede_tests::{RunOutcome, command_calls, run_local, start_redis};

/// Runs `workload` against `target` and returns the JSON report.
fn run(kind: &str, target: &str, load: &str, workload: &str) -> Value {
    let text = format!(
        "name: wl\nduration: 3s\nagents: 2\ntarget:\n  kind: {kind}\n  endpoints: [\"{target}\"]\nload:\n{load}\nworkload:\n{workload}\nthresholds:\n  - error_rate < 0.1%\n"
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(90));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(report.is_object(), "a report: {report}");
    report
}

fn count(report: &Value, operation: &str) -> u64 {
    report["operations"][operation]["count"].as_u64().unwrap_or(0)
}

fn counter(report: &Value, name: &str) -> u64 {
    report["counters"][name].as_u64().unwrap_or(0)
}

fn redis_query(address: &str, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(format!("redis://{address}/")).expect("url");
    let mut connection = client.get_connection().expect("connect");
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(&mut connection).expect("query")
}

#[test]
fn a_mixed_run_matches_redis_commandstats_per_operation() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let report = run(
        "redis",
        &target,
        "  connections: 4\n  pipeline: 4",
        "  kind: mixed\n  keys: 2000\n  weights: {set: 3, get: 4, incr: 1, lpush: 1, hset: 1}",
    );
    for operation in ["set", "get", "incr", "lpush", "hset"] {
        let reported = count(&report, operation);
        assert!(reported > 0, "{operation} ran");
        assert_eq!(reported, command_calls(&target, operation), "{operation}: report equals Redis's own count");
    }
    assert_eq!(report["totals"]["errors"], 0);
}

#[test]
fn a_cache_run_reports_its_hit_ratio_and_fills_misses_with_a_ttl() {
    let KvServer { process: _kv, address: target } = KvServerBuilder::new("kv-cache").start();
    // Every key is preloaded with a TTL shorter than the run, so misses
    // appear once keys expire.
    let report =
        run("kv", &target, "  connections: 4", "  kind: cache\n  keys: 500\n  ttl: 1s\n  key_distribution: zipfian");
    let reads = count(&report, "read");
    let (hits, misses) = (counter(&report, "cache_hits"), counter(&report, "cache_misses"));
    assert_eq!(hits + misses, reads, "every read is a hit or a miss");
    assert!(hits > 0 && misses > 0, "hits {hits}, misses {misses}");
    let ratio = report["cache_hit_ratio"].as_f64().expect("hit ratio");
    assert!((ratio - hits as f64 / reads as f64).abs() < 1e-9);
    // GET once per read; SET once per miss plus once per preloaded key.
    assert_eq!(command_calls(&target, "get"), reads);
    assert_eq!(command_calls(&target, "set"), misses + 500);
    let notes = report["notes"].as_array().expect("notes");
    assert!(notes.iter().any(|n| n.as_str().is_some_and(|n| n.contains("preloaded"))), "{notes:?}");
}

#[test]
fn a_chat_run_keeps_rooms_at_their_history_and_cleans_up() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let report = run(
        "redis",
        &target,
        "  connections: 4\n  pipeline: 2",
        "  kind: chat\n  rooms: 20\n  history: 10\n  page: 5\n  read_ratio: 0.3\n  cleanup: false",
    );
    let (posts, reads) = (count(&report, "post"), count(&report, "history"));
    assert!(posts > 0 && reads > 0);
    assert_eq!(command_calls(&target, "lpush"), posts);
    assert_eq!(command_calls(&target, "ltrim"), posts);
    assert_eq!(command_calls(&target, "lrange"), reads);
    for room in 0..20 {
        let length = redis_query(&target, &["LLEN", &format!("stampede:chat:{room}")]);
        assert!(matches!(length, redis::Value::Int(n) if n <= 10), "room {room}: {length:?}");
    }
    // The same run with cleanup (the default) leaves no room behind.
    let _ = redis_query(&target, &["FLUSHALL"]);
    run("redis", &target, "  connections: 2", "  kind: chat\n  rooms: 20");
    assert_eq!(redis_query(&target, &["DBSIZE"]), redis::Value::Int(0));
}

#[test]
fn a_pubsub_run_delivers_every_message_to_every_subscriber() {
    let KvServer { process: _kv, address: target } = KvServerBuilder::new("kv-pubsub").start();
    let report = run(
        "kv",
        &target,
        "  model: open\n  connections: 2\n  rate: 500/s",
        "  kind: pubsub\n  channels: 4\n  subscribers: 3",
    );
    let published = count(&report, "publish");
    assert!(published > 1000, "{published}");
    assert_eq!(command_calls(&target, "publish"), published);
    // Two agents with three subscribers each, all on every channel.
    assert_eq!(counter(&report, "fanout"), published * 6, "the server counted six receivers per message");
    assert_eq!(counter(&report, "delivered"), published * 6, "every message reached every subscriber");
    assert_eq!(count(&report, "deliver"), published * 6);
    assert!(report["operations"]["deliver"]["latency_us"]["p99"].as_u64().expect("p99") > 0);
}

#[test]
fn values_are_written_in_the_chosen_format() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let report = run(
        "redis",
        &target,
        "  connections: 2",
        "  kind: kv\n  keys: 100\n  read_ratio: 0\n  value_size: 300B\n  value_format: json\n  compress: zstd",
    );
    assert!(count(&report, "set") > 0);
    let notes = report["notes"].as_array().expect("notes");
    assert!(notes.iter().any(|n| n.as_str().is_some_and(|n| n.starts_with("values: json+zstd"))), "{notes:?}");
    let redis::Value::BulkString(stored) = redis_query(&target, &["GET", "stampede:7"]) else {
        panic!("key 7 was written")
    };
    let json = zstd::bulk::decompress(&stored, 1 << 20).expect("a zstd frame");
    let record: Value = serde_json::from_slice(&json).expect("a JSON record");
    assert_eq!(record["body"].as_str().map(str::len), Some(300));
}

#[test]
fn what_redis_said_reaches_the_report_and_the_live_line_with_redis_own_error_count() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    // Every key the run reads holds a list: each GET is refused with WRONGTYPE.
    for key in 0..=50 {
        redis_query(&target, &["LPUSH", &format!("t:{key}"), "x"]);
    }
    let text = format!(
        "name: refused\nduration: 2s\nwarmup: 0s\nagents: 1\ntarget:\n  kind: redis\n  endpoints: [\"{target}\"]\n\
         load:\n  connections: 2\nworkload:\n  kind: kv\n  read_ratio: 1.0\n  key_prefix: \"t:\"\n  keys: 50\n"
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(90));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let info = match redis_query(&target, &["INFO", "errorstats"]) {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        redis::Value::VerbatimString { text, .. } => text,
        other => panic!("INFO errorstats: {other:?}"),
    };
    let refused: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("errorstat_WRONGTYPE:count="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no WRONGTYPE count in {info}"));
    assert!(refused > 100, "{info}");
    let get = &report["operations"]["get"];
    assert_eq!(get["errors"].as_u64(), Some(refused), "the report's errors are Redis's own count");
    let messages = get["error_messages"].as_array().expect("error_messages");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["kind"], "server");
    assert_eq!(messages[0]["count"].as_u64(), Some(refused));
    let said = messages[0]["message"].as_str().expect("message");
    assert!(said.starts_with("WRONGTYPE"), "{said}");
    assert!(stdout.contains(&format!("(server, x{refused}): {said}")), "the text report:\n{stdout}");
    assert!(stderr.contains("(server: WRONGTYPE"), "the live line:\n{stderr}");
}

#[test]
fn a_password_with_plus_percent_at_and_colon_reaches_redis_as_written() {
    let (_redis, port) = start_redis();
    let password = "p+a%b@c:d";
    redis_query(&format!("127.0.0.1:{port}"), &["CONFIG", "SET", "requirepass", password]);
    // RFC 3986: `%`, `@` and `:` percent-encoded, `+` as it is.
    let target = format!("redis://:p+a%25b%40c%3Ad@127.0.0.1:{port}");
    let report = run("redis", &target, "  connections: 2", "  kind: kv\n  keys: 100");
    let served = command_calls(&target, "get") + command_calls(&target, "set");
    assert!(served > 0);
    assert_eq!(report["totals"]["ops"].as_u64(), Some(served), "every operation was let in");
    let text = report.to_string();
    assert!(!text.contains("p+a") && !text.contains("%25b"), "the password is not in the report");
}

#[test]
fn thresholds_grade_counters_their_rates_ratios_and_totals_as_the_server_counted_them() {
    let KvServer { process: _kv, address: target } = KvServerBuilder::new("kv-graded").start();
    let text = format!(
        "name: graded\nduration: 3s\nagents: 2\ntarget:\n  kind: kv\n  endpoints: [\"{target}\"]\nload:\n  \
         connections: 4\nworkload:\n  kind: cache\n  keys: 500\n  ttl: 1s\n  key_distribution: zipfian\n\
         thresholds:\n  - cache_misses > 0\n  - cache_misses > 1/s\n  - cache_hit_ratio > 1%\n  \
         - cache_hits / cache_misses > 0.01\n  - errors == 0\n  - rows > 0\n"
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(90));
    // `rows > 0` fails: a cache workload writes no rows; the rest pass.
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let observed = |expr: &str| {
        let t = report["thresholds"].as_array().expect("thresholds").iter().find(|t| t["expr"] == expr).cloned();
        let t = t.unwrap_or_else(|| panic!("{expr} in {}", report["thresholds"]));
        (t["observed"].as_f64().unwrap_or(f64::NAN), t["passed"].as_bool().unwrap_or(false))
    };
    // The KV server's own counts: a SET per miss and per preloaded key, a
    // GET per read.
    let misses = command_calls(&target, "set") - 500;
    let hits = command_calls(&target, "get") - misses;
    assert_eq!(observed("cache_misses > 0"), (misses as f64, true));
    let (rate, passed) = observed("cache_misses > 1/s");
    let measured_s = report["duration_s"].as_f64().expect("duration_s");
    assert!(passed && (rate - misses as f64 / measured_s).abs() < 1e-6, "{rate}");
    let (ratio, passed) = observed("cache_hit_ratio > 1%");
    assert!(passed && (ratio - hits as f64 / (hits + misses) as f64).abs() < 1e-9, "{ratio}");
    let (over, passed) = observed("cache_hits / cache_misses > 0.01");
    assert!(passed && (over - hits as f64 / misses as f64).abs() < 1e-9, "{over}");
    assert_eq!(observed("errors == 0"), (0.0, true));
    assert_eq!(observed("rows > 0"), (0.0, false), "a counter the run never counted is 0, and fails");
    assert!(stdout.contains("FAIL  rows > 0"), "{stdout}");
}
