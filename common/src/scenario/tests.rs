use super::*;

const GOOD: &str = "\
name: demo
duration: 10s
warmup: 2s
agents: 2
target:
  kind: redis
  endpoints: [\"127.0.0.1:6379\"]
load:
  model: open
  connections: 8
  pipeline: 2
  rate: 20000/s
  arrival: poisson
workload:
  kind: kv
  read_ratio: 0.8
  keys: 1000
  key_distribution: zipfian
  value_size: 1KiB
thresholds:
  - p99 < 5ms
  - get.p99.9 < 10ms
  - error_rate < 1%
";

#[test]
fn a_good_scenario_validates_into_typed_values() {
    let s = Scenario::parse(GOOD).expect("valid");
    assert_eq!(s.duration, Duration::from_secs(10));
    assert_eq!(s.warmup, Duration::from_secs(2));
    assert_eq!(s.agents, 2);
    assert_eq!(s.target.kind, TargetKind::Redis);
    assert_eq!(s.load.model, LoadModel::Open { rate: 20000.0, arrival: Arrival::Poisson });
    assert_eq!((s.load.connections, s.load.pipeline), (8, 2));
    let Workload::Kv(kv) = &s.workload else { panic!("not kv: {:?}", s.workload) };
    assert_eq!(kv.space.value.size, 1024);
    assert_eq!(kv.space.distribution, KeyDistribution::Zipfian { exponent: 0.99 });
    assert_eq!(s.thresholds.len(), 3);
}

#[test]
fn an_unknown_field_is_named_with_its_line() {
    let text = GOOD.replace("  pipeline: 2", "  pipline: 2");
    let error = Scenario::parse(&text).unwrap_err();
    let issue = &error.issues[0];
    assert!(issue.message.contains("unknown field `pipline`"), "{issue}");
    assert_eq!(issue.line, Some(11));
}

#[test]
fn validation_errors_name_field_and_line_and_are_all_reported() {
    let text = GOOD
        .replace("connections: 8", "connections: 0")
        .replace("rate: 20000/s", "rate: 20000")
        .replace("read_ratio: 0.8", "read_ratio: 1.8")
        .replace("get.p99.9", "gte.p99.9");
    let error = Scenario::parse(&text).unwrap_err();
    let find = |field: &str| {
        error.issues.iter().find(|i| i.field == field).unwrap_or_else(|| panic!("no issue for {field}: {error}"))
    };
    assert_eq!(find("load.connections").line, Some(10));
    assert!(find("load.rate").message.contains("not a rate"));
    assert_eq!(find("load.rate").line, Some(12));
    assert_eq!(find("workload.read_ratio").line, Some(16));
    let threshold = find("thresholds[1]");
    assert_eq!(threshold.line, Some(22));
    assert!(threshold.message.contains("operation `gte`"));
    assert!(error.to_string().starts_with("invalid scenario: line"));
}

#[test]
fn model_specific_fields_are_checked() {
    let closed_with_rate = GOOD.replace("model: open", "model: closed");
    let error = Scenario::parse(&closed_with_rate).unwrap_err();
    assert!(error.issues.iter().any(|i| i.field == "load.rate" && i.message.contains("open")));
    let open_without_rate = GOOD.replace("  rate: 20000/s\n", "");
    let error = Scenario::parse(&open_without_rate).unwrap_err();
    assert!(error.issues.iter().any(|i| i.field == "load.rate" && i.message.contains("needs a rate")));
}

#[test]
fn redis_needs_endpoints_and_kv_does_not() {
    let text = GOOD.replace("  endpoints: [\"127.0.0.1:6379\"]\n", "");
    assert!(Scenario::parse(&text).unwrap_err().to_string().contains("target.endpoints"));
    let kv = text.replace("kind: redis", "kind: kv");
    assert!(Scenario::parse(&kv).expect("valid").target.endpoints.is_empty());
    let bad = GOOD.replace("127.0.0.1:6379", "localhost");
    assert!(Scenario::parse(&bad).unwrap_err().to_string().contains("host:port"));
}

#[test]
fn unknown_target_kind_lists_the_known_ones() {
    let text = GOOD.replace("kind: redis", "kind: mongodb");
    let message = Scenario::parse(&text).unwrap_err().to_string();
    assert!(message.contains("mongodb") && message.contains("redis"), "{message}");
}

#[test]
fn warmup_must_fit_in_duration() {
    let text = GOOD.replace("warmup: 2s", "warmup: 10s");
    assert!(Scenario::parse(&text).unwrap_err().to_string().contains("warmup"));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for text in ["", "::::", "- a\n- b", "name: [", "\u{0}\u{1}", "name: x\nduration: -5s\n"] {
        assert!(Scenario::parse(text).is_err(), "{text:?}");
    }
}

fn with_workload(target: &str, endpoint: &str, workload: &str) -> String {
    format!(
        "name: w\nduration: 5s\ntarget:\n  kind: {target}\n  endpoints: [\"{endpoint}\"]\nload:\n  connections: 2\nworkload:\n{workload}"
    )
}

#[test]
fn every_workload_kind_parses_with_its_defaults() {
    let cases = [
        ("redis", "127.0.0.1:6379", "mixed", 5),
        ("kv", "127.0.0.1:6379", "cache", 1),
        ("redis", "127.0.0.1:6379", "chat", 2),
        ("redis", "127.0.0.1:6379", "pubsub", 2),
        ("postgres", "postgres://u:p@127.0.0.1:5432/db", "metrics", 1),
        ("timescaledb", "127.0.0.1:5432", "query", 3),
        ("postgres", "127.0.0.1:5432", "pool", 1),
        ("cratedb", "https://crate:secret@db.example:4200", "records", 1),
        ("cratedb", "127.0.0.1:4200", "query", 3),
        ("nats", "nats://127.0.0.1:4222", "pubsub", 2),
        ("nats", "127.0.0.1:4222", "request", 2),
        ("influx", "http://127.0.0.1:8086", "write", 1),
        ("influx", "127.0.0.1:8086", "query", 3),
        ("websocket", "ws://127.0.0.1:8765/chat", "chat", 3),
        ("websocket", "127.0.0.1:8765", "echo", 2),
    ];
    for (target, endpoint, kind, operations) in cases {
        let text = with_workload(target, endpoint, &format!("  kind: {kind}\n"));
        let scenario = Scenario::parse(&text).unwrap_or_else(|e| panic!("{kind} on {target}: {e}"));
        assert_eq!(scenario.workload.kind(), kind);
        assert_eq!(scenario.workload.operations().len(), operations, "{kind}");
    }
}

#[test]
fn a_workload_on_the_wrong_target_kind_is_rejected_with_the_kinds_it_supports() {
    let text = with_workload("redis", "127.0.0.1:6379", "  kind: metrics\n");
    let message = Scenario::parse(&text).unwrap_err().to_string();
    assert!(message.contains("workload.kind") && message.contains("postgres, timescaledb"), "{message}");
}

#[test]
fn workload_fields_are_checked_by_name() {
    let text = with_workload("redis", "127.0.0.1:6379", "  kind: mixed\n  weights: {set: 1, sett: 2}\n  ttl: 5s\n");
    let error = Scenario::parse(&text).unwrap_err();
    let fields: Vec<&str> = error.issues.iter().map(|i| i.field.as_str()).collect();
    assert!(fields.contains(&"workload.weights.sett"), "{error}");
    assert!(fields.contains(&"workload.ttl"), "{error}");
    let text = with_workload("postgres", "127.0.0.1:5432", "  kind: metrics\n  table: \"x; drop table y\"\n");
    assert!(Scenario::parse(&text).unwrap_err().to_string().contains("workload.table"));
    let text = with_workload("cratedb", "127.0.0.1:4200", "  kind: records\n  batch_size: 0\n");
    assert!(Scenario::parse(&text).unwrap_err().to_string().contains("workload.batch_size"));
}

#[test]
fn table_names_the_databases_refuse_are_refused_with_the_reason() {
    for (target, endpoint, workload) in [
        ("postgres", "127.0.0.1:5432", "metrics"),
        ("cratedb", "127.0.0.1:4200", "records"),
        ("cratedb", "127.0.0.1:4200", "query"),
    ] {
        let text = with_workload(target, endpoint, &format!("  kind: {workload}\n  table: User\n"));
        let message = Scenario::parse(&text).unwrap_err().to_string();
        assert!(message.contains("workload.table") && message.contains("`User` is a reserved word"), "{message}");
        let text = with_workload(target, endpoint, &format!("  kind: {workload}\n  table: user_events\n"));
        assert!(Scenario::parse(&text).is_ok(), "{workload}: a name that only starts with a reserved word");
    }
    let text = with_workload("cratedb", "127.0.0.1:4200", "  kind: records\n  table: _events\n");
    let message = Scenario::parse(&text).unwrap_err().to_string();
    assert!(message.contains("CrateDB refuses table names that start with `_`"), "{message}");
    let text = with_workload("postgres", "127.0.0.1:5432", "  kind: metrics\n  table: _events\n");
    assert!(Scenario::parse(&text).is_ok(), "PostgreSQL takes `_events`");
}

#[test]
fn endpoint_urls_are_checked_per_kind_and_passwords_are_redacted_in_errors() {
    let text = with_workload("postgres", "http://u:hunter2@h:5432", "  kind: pool\n");
    let message = Scenario::parse(&text).unwrap_err().to_string();
    assert!(message.contains("scheme `http`") && !message.contains("hunter2"), "{message}");
    assert_eq!(redact("https://crate:secret@h:4200/x"), "https://crate:***@h:4200/x");
    assert_eq!(redact("127.0.0.1:6379"), "127.0.0.1:6379");
    let text = format!("{}# pw1 again\n", with_workload("redis", "redis://:pw1@a:6379", "  kind: mixed\n"));
    let shown = Scenario::parse(&text).expect("valid").shown_text(&text);
    assert!(shown.contains("redis://:***@a:6379"), "{shown}");
    assert!(!shown.contains("pw1"), "a password is gone wherever it appears: {shown}");
    // Written with a YAML escape, the password cannot be found: nothing is kept.
    let text = with_workload("redis", "redis://:p\\x40ss@a:6379", "  kind: mixed\n");
    let scenario = Scenario::parse(&text).expect("valid");
    assert_eq!(scenario.target.endpoints, ["redis://:p@ss@a:6379"]);
    let shown = scenario.shown_text(&text);
    assert_eq!(shown, crate::scenario::NOT_KEPT);
    assert_eq!(redact_text("name: x", &["redis://a:6379".to_string()]), "name: x");
}

#[test]
fn endpoints_given_on_the_command_line_replace_the_scenarios() {
    let text = "name: pg\nduration: 5s\n# a comment\ntarget:\n  kind: postgres\n  endpoints: [\"db0:5432\"]\nworkload:\n  kind: metrics\n";
    let endpoints = vec!["postgres://bench:pw@db1:5432/bench".to_string(), "db2:5432".to_string()];
    let (scenario, rewritten) = Scenario::with_endpoints(text, &endpoints).expect("valid");
    assert_eq!(scenario.target.endpoints, endpoints);
    assert_eq!(Scenario::parse(&rewritten).expect("the rewritten text parses"), scenario);

    // A bad endpoint is named and marked as coming from the option.
    let error = Scenario::with_endpoints(text, &["https://db1".to_string()]).expect_err("wrong scheme");
    let message = error.to_string();
    assert!(message.contains("target.endpoints[0]") && message.contains("(from --endpoint)"), "{message}");

    // The file's own problems keep their lines.
    let broken =
        "name: pg\nduration: 5s\ntarget:\n  kind: postgres\n  endpoints: [\"db0:5432\"]\nworkload:\n  kind: nope\n";
    let error = Scenario::with_endpoints(broken, &endpoints).expect_err("bad workload");
    assert!(error.issues.iter().any(|i| i.line.is_some()), "{error}");
}

/// Every section: a mistake in it is reported with its field path and the
/// line it is on, whether serde finds it while reading or validation after.
#[test]
fn every_error_names_its_field_path_and_line() {
    const HEAD: &str = "name: t\nduration: 2s\n";
    const TARGET: &str = "target:\n  kind: kv\n";
    const WORKLOAD: &str = "workload:\n  kind: kv\n";
    let cases: [(&str, &str, usize); 17] = [
        ("bogus_top: 1\n", "bogus_top", 7),
        ("warmup: [1]\n", "warmup", 7),
        ("agents: many\n", "agents", 7),
        ("target:\n  kind: kv\n  bogus: 1\n", "target.bogus", 7),
        ("target:\n  kind: kv\n  nodes: {a: [1]}\n", "target.nodes.a", 7),
        ("load:\n  model: sideways\n", "load.model", 8),
        ("load:\n  model: closed\n  conns: 1\n", "load.conns", 9),
        ("load:\n  connections: 0\n", "load.connections", 8),
        ("workload: {kind: kv, num_ops: 5}\n", "workload.num_ops", 5),
        ("workload:\n  kind: kv\n  num_ops: 5\n", "workload.num_ops", 7),
        ("workload:\n  kind: kv\n  value_format: xml\n", "workload.value_format", 7),
        ("workload:\n  kind: kv\n  value_size: [1]\n", "workload.value_size", 7),
        ("workload:\n  kind: mixed\n  weights:\n    get: x\n", "workload.weights.get", 8),
        ("workload:\n  kind: nosuch\n", "workload.kind", 6),
        ("distribution:\n  expect: [1]\n", "distribution.expect", 8),
        ("on_agent_loss:\n  policy: whatever\n", "on_agent_loss", 7),
        ("thresholds:\n  - p99 < 1ms\n  - bogus\n", "thresholds[1]", 9),
    ];
    for (section, field, line) in cases {
        let mut text = HEAD.to_string();
        if !section.starts_with("target:") {
            text.push_str(TARGET);
        }
        if !section.starts_with("workload") {
            text.push_str(WORKLOAD);
        }
        text.push_str(section);
        let error = Scenario::parse(&text).expect_err(section);
        let issue = error.issues.iter().find(|i| i.field == field).unwrap_or_else(|| panic!("{section}: {error}"));
        assert_eq!(issue.line, Some(line), "{section}: {issue}");
        assert!(!issue.message.is_empty() && !issue.message.contains("untagged"), "{section}: {issue}");
    }
}

#[test]
fn stages_say_how_long_the_run_lasts_and_what_each_ramps() {
    let text = |duration: &str, load: &str, thresholds: &str| {
        format!("name: s\n{duration}target:\n  kind: kv\nload:\n{load}workload:\n  kind: kv\n{thresholds}")
    };
    let open = "  model: open\n  stages:\n    - {duration: 10s, rate: 100/s}\n    - {duration: 20s, rate: 300/s}\n";
    let s = Scenario::parse(&text("", open, "thresholds:\n  - stage(2).p99 < 5ms\n")).expect("valid");
    assert_eq!(s.duration, Duration::from_secs(30));
    assert_eq!(s.rate(), Some(300.0), "the open model's rate is the peak");
    let stages = s.load.stages.expect("stages");
    assert_eq!((stages.start, stages.stages.len()), (100.0, 2));
    let closed = "  connections: 2\n  stages:\n    - {duration: 5s, connections: 8}\n";
    let s = Scenario::parse(&text("", closed, "")).expect("valid");
    assert_eq!((s.load.connections, s.load.stages.expect("stages").start), (8, 2.0), "open the most, start at 2");
    for (duration, load, thresholds, needle) in [
        ("duration: 20s\n", open, "", "but load.stages last 30s"),
        ("", "  model: open\n  stages:\n    - {duration: 10s, connections: 4}\n", "", "give `rate`"),
        ("", "  stages:\n    - {duration: 10s, rate: 5/s}\n", "", "give `connections`"),
        ("", "  stages: []\n", "", "is empty"),
        ("", open, "thresholds:\n  - stage(3).p99 < 5ms\n", "names stage 3, but load.stages has 2"),
        ("duration: 5s\n", "  connections: 2\n", "thresholds:\n  - stage(1).p99 < 5ms\n", "has no load.stages"),
        ("", "  model: open\n  stages:\n    - {duration: 0s, rate: 5/s}\n", "", "longer than 0s"),
    ] {
        let error = Scenario::parse(&text(duration, load, thresholds)).expect_err(load).to_string();
        assert!(error.contains(needle), "{load}{thresholds}: {error}");
    }
}

#[test]
fn a_count_per_operation_names_operations_the_workload_sends() {
    let text = |workload: &str, operations: &str| {
        format!(
            "name: s\ntarget:\n  kind: redis\n  endpoints: [\"h:1\"]\nload:\n  operations: {operations}\n\
             workload:\n  kind: {workload}\n"
        )
    };
    let s = Scenario::parse(&text("mixed", "{get: 900, hset: 1_000, set: 0}")).expect("valid");
    assert_eq!(s.load.operation_counts, Some(vec![0, 900, 0, 0, 1_000]), "in the workload's order");
    assert_eq!(s.load.operations, Some(1_900));
    for (workload, operations, needle) in [
        ("kv", "{get: 10, put: 5}", "`put` is not an operation workload kv sends (its operations: get, set)"),
        ("pubsub", "{publish: 10, deliver: 5}", "its operations: publish"),
        ("kv", "{get: 0, set: 0}", "at least one above 0"),
        ("kv", "{}", "counts no operation"),
        ("kv", "{get: -3}", "load.operations.get"),
    ] {
        let error = Scenario::parse(&text(workload, operations)).expect_err(operations).to_string();
        assert!(error.contains(needle), "{operations}: {error}");
    }
}

#[test]
fn operation_counts_name_only_what_a_websocket_or_nats_workload_sends() {
    let text = |target: &str, workload: &str, operations: &str| {
        format!(
            "name: s\ntarget:\n  kind: {target}\n  endpoints: [\"h:1\"]\nload:\n  operations: {operations}\n\
             workload:\n  kind: {workload}\n"
        )
    };
    for (target, workload, operations, needle) in [
        ("websocket", "chat", "{post: 10, connect: 5}", "its operations: post)"),
        ("websocket", "echo", "{connect: 5}", "its operations: echo)"),
        ("nats", "request", "{request: 5, respond: 5}", "its operations: request)"),
    ] {
        let error = Scenario::parse(&text(target, workload, operations)).expect_err(operations).to_string();
        assert!(error.contains(needle), "{operations}: {error}");
    }
    let counted = Scenario::parse(&text("websocket", "chat", "{post: 7}")).expect("valid");
    assert_eq!(counted.load.operations, Some(7));
}

#[test]
fn fields_of_one_target_kind_are_refused_elsewhere_with_what_to_do() {
    let cases = [
        ("redis", "127.0.0.1:6379", "  kind: pubsub\n  jetstream: true\n", "workload.jetstream", "NATS feature"),
        ("redis", "127.0.0.1:6379", "  kind: chat\n  members: 3\n", "workload.members", "over WebSocket"),
        ("postgres", "127.0.0.1:5432", "  kind: query\n  database: x\n", "workload.database", "only an influx"),
        ("nats", "127.0.0.1:4222", "  kind: pubsub\n  key_prefix: \"a b.\"\n", "workload.key_prefix", "NATS subject"),
        ("nats", "127.0.0.1:4222", "  kind: request\n  key_prefix: \"x.>\"\n", "workload.key_prefix", "`>`"),
        ("influx", "127.0.0.1:8086", "  kind: write\n  tags: {a: 10000, b: 10000}\n", "workload.tags", "10000000"),
        ("influx", "127.0.0.1:8086", "  kind: write\n  tags: {\"a b\": 2}\n", "workload.tags", "not a tag key"),
        ("influx", "127.0.0.1:8086", "  kind: write\n  fields: 0\n", "workload.fields", "between 1 and 100"),
        ("influx", "127.0.0.1:8086", "  kind: write\n  precision: h\n", "workload.precision", "ns"),
        ("websocket", "127.0.0.1:8765", "  kind: echo\n  message_size: 0B\n", "workload.message_size", "16MiB"),
        ("nats", "http://127.0.0.1:4222", "  kind: pubsub\n", "target.endpoints[0]", "nats://"),
        ("influx", "127.0.0.1:8086", "  kind: pubsub\n", "workload.kind", "kv, redis, nats"),
        ("redis", "127.0.0.1:6379", "  kind: mixed\n  codec_in_path: true\n", "workload.codec_in_path", "`kind: kv`"),
    ];
    for (target, endpoint, workload, field, words) in cases {
        let text = with_workload(target, endpoint, workload);
        let error = Scenario::parse(&text).expect_err(workload);
        let issue = error.issues.iter().find(|i| i.field == field).unwrap_or_else(|| panic!("{field}: {error}"));
        assert!(issue.message.contains(words), "{field}: {}", issue.message);
    }
    let formats = with_workload("redis", "127.0.0.1:6379", "  kind: kv\n  value_format: rkyv\n  codec_in_path: true\n");
    let parsed = Scenario::parse(&formats).expect("rkyv with the codec in the path");
    let space = parsed.workload.key_value_space().expect("a key space");
    assert_eq!((space.value.format, space.codec_in_path), (crate::scenario::ValueFormat::Rkyv, true));
    let pipelined = with_workload("websocket", "127.0.0.1:8765", "  kind: echo\n")
        .replace("connections: 2", "connections: 2\n  pipeline: 4");
    assert!(Scenario::parse(&pipelined).expect_err("pipeline").to_string().contains("one request at a time"));
}
