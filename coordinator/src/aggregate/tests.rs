use super::*;
use stampede_common::interval::OperationStats;

fn scenario(thresholds: &str) -> Scenario {
    Scenario::parse(&format!(
        "name: t\nduration: 4s\nwarmup: 1s\ntarget:\n  kind: kv\nworkload:\n  kind: kv\nthresholds:\n{thresholds}"
    ))
    .expect("valid")
}

fn stats(op: &str, node: &str, samples: &[u64], errors: u64) -> OperationStats {
    let mut h = histogram::new_histogram();
    for s in samples {
        histogram::record_clamped(&mut h, *s);
    }
    let mut by_kind = BTreeMap::new();
    if errors > 0 {
        by_kind.insert("timeout".to_string(), errors);
    }
    OperationStats {
        operation: op.into(),
        node: node.into(),
        count: samples.len() as u64,
        errors: by_kind,
        error_messages: Vec::new(),
        latency: histogram::encode(&h).expect("encode"),
        service: histogram::encode(&h).expect("encode"),
        clamped: 0,
        bytes_sent: 0,
        bytes_received: 0,
    }
}

fn report(seq: u64, interval: u64, operations: Vec<OperationStats>) -> IntervalReport {
    IntervalReport { run_id: "r".into(), seq, interval, operations, ..IntervalReport::default() }
}

static NONE_DROPPED: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();

fn context<'a>(scenario: &'a Scenario, agents: &'a [(String, String, i64, i64)]) -> ReportContext<'a> {
    ReportContext {
        run_id: "r",
        scenario,
        endpoints: &[],
        started_at_unix_ms: 0,
        agents,
        failure: None,
        losses: &[],
        reports_dropped: &NONE_DROPPED,
        plans: &[],
    }
}

#[test]
fn a_lost_agent_is_reported_with_its_missing_intervals_and_shortfall() {
    // 4 intervals, the first is warm-up. a2 reports intervals 0 and 1 (10
    // measured operations), is lost, and comes back for interval 3.
    let s = scenario("  - p99 < 1s\n");
    let mut agg = RunAggregate::new(1);
    for interval in 0..4 {
        agg.merge("a1", &report(interval, interval, vec![stats("get", "kv-0", &[10; 20], 0)])).expect("merge");
    }
    agg.merge("a2", &report(0, 0, vec![stats("get", "kv-1", &[10; 10], 0)])).expect("merge");
    agg.merge("a2", &report(1, 1, vec![stats("get", "kv-1", &[10; 10], 0)])).expect("merge");
    agg.merge("a2", &report(9, 3, vec![stats("get", "kv-1", &[10; 14], 0)])).expect("merge");
    assert_eq!(agg.next_seq("a2"), 10);
    assert_eq!(agg.next_seq("a3"), 0);
    let losses = [crate::store::RecordedLoss { agent: "a2".into(), lost_at_s: 2.4, back_at_s: Some(3.2) }];
    let agents = [("a1".to_string(), "h".to_string(), 0, 0), ("a2".to_string(), "h".to_string(), 0, 0)];
    let r = agg.report(&ReportContext { losses: &losses, ..context(&s, &agents) });
    assert_eq!(r.agent_losses.len(), 1);
    let loss = &r.agent_losses[0];
    assert_eq!(loss.missing_intervals, vec![2]);
    assert_eq!(loss.shortfall_ops, 12, "its mean over intervals 1 and 3: (10 + 14) / 2");
    assert_eq!(loss.back_at_s, Some(3.2));
    assert!((loss.shortfall_share - 12.0 / (60.0 + 24.0 + 12.0)).abs() < 1e-9);

    // An agent lost before its first measured interval is counted at the
    // others' mean: (20 + 12) / 2 per interval, for intervals 1 to 3.
    agg.merge("a3", &report(0, 0, vec![stats("get", "kv-2", &[10; 5], 0)])).expect("merge");
    let early = [crate::store::RecordedLoss { agent: "a3".into(), lost_at_s: 0.8, back_at_s: None }];
    let r = agg.report(&ReportContext { losses: &early, ..context(&s, &agents) });
    assert_eq!(r.agent_losses[0].missing_intervals, vec![1, 2, 3]);
    assert_eq!(r.agent_losses[0].shortfall_ops, 48);
}

#[test]
fn merged_percentiles_equal_those_of_all_samples_and_warmup_is_excluded() {
    let s = scenario("  - p99 < 1s\n");
    let mut agg = RunAggregate::new(1);
    let a: Vec<u64> = (1..=1000).collect();
    let b: Vec<u64> = (5000..5500).collect();
    agg.merge("a1", &report(0, 0, vec![stats("get", "kv-0", &[99_999; 50], 0)])).expect("merge");
    let mut with_connections = report(1, 1, vec![stats("get", "kv-0", &a, 2)]);
    with_connections.connections.insert("kv-0".into(), 3);
    agg.merge("a1", &with_connections).expect("merge");
    let mut other = report(0, 1, vec![stats("get", "kv-1", &b, 0)]);
    other.connections.insert("kv-0".into(), 2);
    agg.merge("a2", &other).expect("merge");
    let mut all = histogram::new_histogram();
    for v in a.iter().chain(&b) {
        histogram::record_clamped(&mut all, *v);
    }
    let agents = [("a1".to_string(), "h1".to_string(), 5, 10), ("a2".to_string(), "h2".to_string(), -3, 12)];
    let r = agg.report(&context(&s, &agents));
    let get = &r.operations["get"];
    assert_eq!(get.count, 1500);
    assert_eq!(get.errors, 2);
    assert_eq!(get.latency_us, LatencySummary::of(&all));
    assert_eq!(r.totals.warmup_ops, 50);
    assert_eq!(r.totals.ops, 1500);
    assert_eq!(r.agents[0].ops, 1050);
    assert_eq!(r.nodes["kv-1"].ops, 500);
    assert_eq!(r.nodes["kv-0"].connections, 5, "summed over agents within an interval");
    assert!((r.duration_s - 3.0).abs() < 1e-9);
    assert!((r.totals.throughput - 500.0).abs() < 1e-9);
    assert_eq!(r.status, RunStatus::Passed);
    assert_eq!(r.intervals.len(), 2);
    assert_eq!(r.intervals[1].agents, 2);
}

#[test]
fn a_resent_report_is_not_counted_twice() {
    let mut agg = RunAggregate::new(0);
    let rep = report(7, 0, vec![stats("set", "kv-0", &[10, 20, 30], 0)]);
    assert_eq!(agg.merge("a1", &rep).expect("merge"), MergeOutcome::Merged);
    assert_eq!(agg.merge("a1", &rep).expect("merge"), MergeOutcome::Duplicate);
    assert_eq!(agg.merge("a2", &rep).expect("merge"), MergeOutcome::Merged);
    assert_eq!(agg.ops(), 6);
}

#[test]
fn a_corrupt_histogram_rejects_the_whole_report() {
    let mut agg = RunAggregate::new(0);
    let mut bad = stats("get", "kv-0", &[1, 2], 0);
    bad.latency = b"garbage".to_vec();
    let rep = report(0, 0, vec![stats("set", "kv-0", &[5], 0), bad]);
    assert!(agg.merge("a1", &rep).is_err());
    assert_eq!(agg.ops(), 0);
    // The same sequence number may still arrive intact later.
    let good = report(0, 0, vec![stats("set", "kv-0", &[5], 0)]);
    assert_eq!(agg.merge("a1", &good).expect("merge"), MergeOutcome::Merged);
}

#[test]
fn thresholds_give_a_verdict_and_nothing_measured_fails() {
    let s = scenario("  - get.p50 < 1ms\n  - error_rate < 1%\n  - throughput > 1000/s\n  - set.max < 1s\n");
    let mut agg = RunAggregate::new(1);
    agg.merge("a1", &report(0, 2, vec![stats("get", "n", &[500; 99], 1)])).expect("merge");
    let r = agg.report(&context(&s, &[]));
    let passed: Vec<bool> = r.thresholds.iter().map(|t| t.passed).collect();
    // p50 500us passes; 1/99 errors fails 1%; 33 ops/s fails; no set fails.
    assert_eq!(passed, vec![true, false, false, false]);
    assert_eq!(r.thresholds[3].observed, None);
    assert_eq!(r.status, RunStatus::Failed);
}

#[test]
fn a_failed_run_keeps_its_status_and_reason() {
    let s = scenario("  - p99 < 1s\n");
    let agg = RunAggregate::new(0);
    let mut ctx = context(&s, &[]);
    ctx.failure = Some((RunStatus::Error, "target unreachable".into()));
    let r = agg.report(&ctx);
    assert_eq!(r.status, RunStatus::Error);
    assert_eq!(r.error.as_deref(), Some("target unreachable"));
}

#[test]
fn nodes_are_named_analysed_and_judged_by_node_and_distribution_thresholds() {
    let s = Scenario::parse(
        "name: t\nduration: 3s\ntarget:\n  kind: redis\n  endpoints: [\"lb:6379\"]\n  nodes: {run-aaa: redis-a}\n\
         workload:\n  kind: kv\ndistribution:\n  expect: {redis-a: 3, redis-b: 1}\n  tolerance: 2%\n\
         thresholds:\n  - node(redis-a).p99 < 2ms\n  - node(redis-b).p99 < 2ms\n  - node(redis-a).share > 70%\n\
         \x20 - distribution.max_deviation < 2%\n  - distribution.p_value > 0.01\n",
    )
    .expect("valid");
    let mut agg = RunAggregate::new(0).naming(s.target.nodes.clone());
    let fast: Vec<u64> = vec![500; 300];
    let slow: Vec<u64> = vec![10_000; 100];
    let mut a1 = report(0, 0, vec![stats("get", "run-aaa", &fast, 0), stats("get", "redis-b", &slow, 0)]);
    a1.opened = [("run-aaa".to_string(), 3), ("redis-b".to_string(), 1)].into();
    agg.merge("a1", &a1).expect("merge");
    let agents = [("a1".to_string(), "h1".to_string(), 0, 0)];
    let r = agg.report(&context(&s, &agents));
    assert_eq!(r.nodes["redis-a"].ops, 300, "the identity is reported under its name");
    assert_eq!(r.nodes["redis-a"].opened, 3);
    assert_eq!(r.nodes["redis-b"].operations["get"].latency_us.p99, 10_007);
    let d = r.distribution.as_ref().expect("distribution");
    assert_eq!(d.verdict, "balanced");
    assert_eq!(d.connections.total, 4);
    let verdicts: Vec<(String, bool)> = r.thresholds.iter().map(|t| (t.expr.clone(), t.passed)).collect();
    assert_eq!(
        verdicts,
        vec![
            ("node(redis-a).p99 < 2ms".to_string(), true),
            ("node(redis-b).p99 < 2ms".to_string(), false),
            ("node(redis-a).share > 70%".to_string(), true),
            ("distribution.max_deviation < 2%".to_string(), true),
            ("distribution.p_value > 0.01".to_string(), true),
        ]
    );
    let text = crate::render::text(&r);
    assert!(text.contains("distribution over nodes (expected weighted, tolerance 2.0 pp): BALANCED"), "{text}");
    assert!(text.contains("redis-a                     300"), "{text}");
}

#[test]
fn generator_saturation_is_counted_per_agent_and_interval_and_judged_by_a_threshold() {
    let s = scenario("  - generator_saturated == 0\n");
    let mut agg = RunAggregate::new(1);
    let saturated = |seq, interval, reasons: &[&str]| IntervalReport {
        cpu_percent: 95.0,
        cpu_available_percent: 100.0,
        cpu_wait_percent: 60.0,
        runtime_lag_us: 12_000,
        slot_occupancy: 0.1,
        saturation: reasons.iter().map(|r| r.to_string()).collect(),
        ..report(seq, interval, vec![stats("get", "kv-0", &[100; 10], 0)])
    };
    // The warm-up's saturation does not count; a1 is saturated in
    // intervals 2 and 3, a2 in none.
    agg.merge("a1", &saturated(0, 0, &["cpu"])).expect("merge");
    agg.merge("a1", &saturated(1, 1, &[])).expect("merge");
    agg.merge("a1", &saturated(2, 2, &["cpu", "cpu_wait"])).expect("merge");
    agg.merge("a1", &saturated(3, 3, &["cpu_wait"])).expect("merge");
    agg.merge("a2", &report(0, 2, vec![stats("get", "kv-0", &[100; 10], 0)])).expect("merge");
    let agents = [("a1".to_string(), "h1".to_string(), 0, 0), ("a2".to_string(), "h2".to_string(), 0, 0)];
    let r = agg.report(&context(&s, &agents));
    assert_eq!(r.totals.generator_saturated, 2);
    let a1 = &r.agents[0].generator;
    assert_eq!(a1.saturated_intervals, 2);
    assert_eq!(a1.reasons, [("cpu".to_string(), 1), ("cpu_wait".to_string(), 2)].into());
    assert_eq!((a1.cpu_percent_max, a1.runtime_lag_us_max), (95.0, 12_000));
    assert_eq!(r.agents[1].generator.saturated_intervals, 0);
    let marked: Vec<(u64, Vec<String>)> = r.intervals.iter().map(|i| (i.index, i.saturated_agents.clone())).collect();
    assert_eq!(marked, vec![(0, vec![]), (1, vec![]), (2, vec!["a1".to_string()]), (3, vec!["a1".to_string()])]);
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.thresholds[0].observed, Some(2.0));
    let text = crate::render::text(&r);
    assert!(text.contains("generator-saturated: the load generator, not the target, limited the load: a1 in 2 of 3 intervals (cpu 1, cpu_wait 2)"), "{text}");
}
