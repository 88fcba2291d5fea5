//! The seed's value-format comparison and its data transfer figures, run by
//! `stampede run` with in-process agents against a real `redis-server`:
//! every format encoded and decoded in the measured path, the codec's
//! counts against Redis's own command and keyspace counts, and the
//! report's bytes against Redis's own network counters.

use std::time::Duration;

use serde_json::Value;
use stampede_tests::{RunOutcome, command_calls, run_local, start_redis};

fn run(target: &str, load: &str, workload: &str, agents: u32) -> (Value, String) {
    let text = format!(
        "name: formats\nduration: 2s\nwarmup: 0s\nagents: {agents}\ntarget:\n  kind: redis\n  endpoints: [\"{target}\"]\nload:\n{load}\nworkload:\n{workload}\n"
    );
    let RunOutcome { code, report, stdout, stderr } = run_local(&text, &[], &[], Duration::from_secs(90));
    assert!(report.is_object(), "a report (exit {code}):\nstdout:\n{stdout}\nstderr:\n{stderr}");
    (report, stdout)
}

/// One connection that reads Redis's own counters; opened before the first
/// reading so that its own connecting is not in any difference.
struct Counters {
    connection: redis::Connection,
}

/// Redis's totals at one moment, and the bytes of the reply that told them
/// (which Redis counts as output after the moment).
#[derive(Debug, Clone, Copy)]
struct Reading {
    input: u64,
    output: u64,
    connections: u64,
    keyspace_hits: u64,
    reply_bytes: u64,
}

impl Counters {
    fn open(target: &str) -> Self {
        let client = redis::Client::open(format!("redis://{target}/")).expect("url");
        Self { connection: client.get_connection().expect("connect") }
    }

    fn read(&mut self) -> Reading {
        let info: String = redis::cmd("INFO").arg("stats").query(&mut self.connection).expect("INFO stats");
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("{name} in INFO stats"))
                .trim()
                .parse()
                .expect("a number")
        };
        let body = info.len() as u64;
        Reading {
            input: field("total_net_input_bytes"),
            output: field("total_net_output_bytes"),
            connections: field("total_connections_received"),
            keyspace_hits: field("keyspace_hits"),
            // `$<len>\r\n<body>\r\n`
            reply_bytes: 1 + body.to_string().len() as u64 + 2 + body + 2,
        }
    }

    /// The bytes of an `INFO server` reply now (each agent connection asks
    /// for one when it opens).
    fn info_server_reply(&mut self) -> u64 {
        let info: String = redis::cmd("INFO").arg("server").query(&mut self.connection).expect("INFO server");
        let body = info.len() as u64;
        1 + body.to_string().len() as u64 + 2 + body + 2
    }
}

/// `*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n`, sent once by every connection an
/// agent opens, to learn the node behind it.
const INFO_SERVER_COMMAND: u64 = 26;

fn figure(report: &Value, path: &[&str]) -> u64 {
    path.iter().fold(report, |v, key| &v[*key]).as_u64().unwrap_or_else(|| panic!("{path:?} in {report}"))
}

#[test]
fn bytes_sent_and_received_equal_redis_own_network_counters_in_both_load_models() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let mut counters = Counters::open(&target);
    let loads =
        [("closed", "  connections: 3\n  pipeline: 4"), ("open", "  model: open\n  rate: 2000/s\n  connections: 2")];
    for (model, load) in loads {
        let first = counters.read();
        let second = counters.read();
        // What one INFO stats costs this connection in input.
        let probe = second.input - first.input;
        let workload = "  kind: kv\n  keys: 500\n  read_ratio: 0.5\n  value_size: 200B\n  value_format: msgpack";
        let (report, stdout) = run(&target, load, workload, 2);
        let after = counters.read();
        let opened = after.connections - second.connections;
        let info_reply = counters.info_server_reply();
        assert!(opened >= 2, "{model}: Redis saw the agents' connections ({opened})");
        assert_eq!(report["totals"]["errors"], 0, "{model}: {stdout}");

        let sent = figure(&report, &["totals", "transfer", "bytes_sent"]);
        let received = figure(&report, &["totals", "transfer", "bytes_received"]);
        // Input: the agents' commands and one INFO server per connection;
        // exact.
        let input = after.input - second.input - probe;
        assert_eq!(
            input,
            sent + opened * INFO_SERVER_COMMAND,
            "{model}: Redis's input bytes are the report's sent bytes"
        );
        // Output: the replies, the INFO server answers (whose length moves
        // by a few bytes with uptime and clients) and the second reading's
        // own reply.
        let output = after.output - second.output - second.reply_bytes;
        let handshakes = opened * info_reply;
        let slack = opened * 16;
        assert!(
            output.abs_diff(received + handshakes) <= slack,
            "{model}: Redis's output {output} = received {received} + {opened} INFO server replies of about {info_reply}"
        );
        // Per operation and per second, as the text report prints them.
        let ops = figure(&report, &["totals", "ops"]);
        let per_op = report["totals"]["transfer"]["sent_per_op"].as_f64().expect("sent per op");
        assert!((per_op - sent as f64 / ops as f64).abs() < 1e-6, "{model}: per op");
        let set_bytes = figure(&report, &["operations", "set", "transfer", "bytes_sent"]);
        let get_bytes = figure(&report, &["operations", "get", "transfer", "bytes_sent"]);
        assert_eq!(set_bytes + get_bytes, sent, "{model}: operations add up to the total");
        assert!(set_bytes > get_bytes, "{model}: a SET carries its value");
        assert!(stdout.contains("sent B/op") && stdout.contains("MB/s"), "{model}: the transfer table: {stdout}");
    }
}

#[test]
fn every_format_is_encoded_and_decoded_in_the_path_as_often_as_redis_counted_its_sets_and_hits() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let mut counters = Counters::open(&target);
    let mut seen = Vec::new();
    for (i, format) in ["raw", "json", "protobuf", "bitcode", "msgpack", "rkyv", "flatbuffers"].into_iter().enumerate()
    {
        let prefix = format!("fmt{i}:");
        let sets_before = command_calls(&target, "set");
        let before = counters.read();
        let workload = format!(
            "  kind: kv\n  keys: 200\n  read_ratio: 0.5\n  value_size: 150B\n  value_format: {format}\n  key_prefix: \"{prefix}\"\n  preload: true\n  codec_in_path: true"
        );
        let (report, stdout) = run(&target, "  connections: 2", &workload, 1);
        let after = counters.read();
        assert_eq!(report["totals"]["errors"], 0, "{format}: every value read decodes: {stdout}");
        let sets = command_calls(&target, "set") - sets_before;
        let encodes = figure(&report, &["timings", "encode", "count"]);
        let decodes = figure(&report, &["timings", "decode", "count"]);
        // The preload writes the 200 keys outside the measured part.
        assert_eq!(encodes, sets - 200, "{format}: one encode per measured SET Redis ran");
        assert_eq!(decodes, after.keyspace_hits - before.keyspace_hits, "{format}: one decode per GET that hit");
        assert!(decodes > 0 && figure(&report, &["timings", "decode", "ns", "p50"]) > 0, "{format}");
        assert!(stdout.contains("codec") && stdout.contains("ns per value"), "{format}: {stdout}");
        let set_per_op = report["operations"]["set"]["transfer"]["sent_per_op"].as_f64().expect("set bytes");
        seen.push((format, set_per_op));
    }
    // The same record is smaller in the binary formats than in JSON.
    let size = |f: &str| seen.iter().find(|(g, _)| *g == f).map_or(0.0, |(_, n)| *n);
    assert!(size("json") > size("bitcode") && size("json") > size("protobuf"), "{seen:?}");
}

#[test]
fn a_value_that_is_not_of_the_runs_format_is_a_protocol_error_that_says_so() {
    let (_redis, port) = start_redis();
    let target = format!("127.0.0.1:{port}");
    let client = redis::Client::open(format!("redis://{target}/")).expect("url");
    let mut connection = client.get_connection().expect("connect");
    for k in 0..50 {
        let _: () = redis::cmd("SET").arg(format!("bad:{k}")).arg("{\"id\":1}").query(&mut connection).expect("SET");
    }
    let workload = "  kind: kv\n  keys: 50\n  read_ratio: 1\n  value_format: bitcode\n  key_prefix: \"bad:\"\n  codec_in_path: true";
    let (report, stdout) = run(&target, "  connections: 1", workload, 1);
    let get = &report["operations"]["get"];
    assert!(get["errors_by_kind"]["protocol"].as_u64().unwrap_or(0) > 0, "{stdout}");
    assert_eq!(get["errors"], get["count"], "every read found another format's value");
    let message = get["error_messages"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not a bitcode record"), "{message}");
}
