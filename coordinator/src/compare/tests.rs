use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use stampede_common::report::{EncodedHistogram, ReportWindow, WindowOperation};

use super::*;

/// A report of `windows` one-second windows of `per_window` operations
/// whose latency is normal around `mean_us`, drawn with `seed`.
fn report(run_id: &str, windows: u64, per_window: u64, mean_us: f64, seed: u64) -> Report {
    let mut rng = SmallRng::seed_from_u64(seed);
    let normal = Normal::new(mean_us, mean_us / 5.0).expect("normal");
    let mut report: Report = serde_json::from_str(&format!(
        r#"{{"schema":"stampede.report.v1","run_id":"{run_id}","scenario":{{"name":"s","target":{{"kind":"kv","endpoints":[]}},
        "workload":"kv","load_model":"open","connections":1,"pipeline":1,"rate":1000.0}},"status":"passed","error":null,
        "started_at_unix_ms":0,"duration_s":{windows},"warmup_s":0,"agents":[],"totals":{{"ops":{},"errors":0,"throughput":0,
        "late_starts":0,"clamped":0,"warmup_ops":0}},"operations":{{}},"nodes":{{}},"intervals":[],"thresholds":[]}}"#,
        windows * per_window
    ))
    .expect("report");
    for start_s in 0..windows {
        let mut h = histogram::new_histogram();
        for _ in 0..per_window {
            histogram::record_clamped(&mut h, normal.sample(&mut rng).max(1.0) as u64);
        }
        let encoded = EncodedHistogram(histogram::encode(&h).expect("encode"));
        let op = WindowOperation { count: per_window, errors: 0, latency: encoded.clone(), service: encoded };
        report.windows.push(ReportWindow {
            start_s,
            length_s: 1,
            operations: [("get".to_string(), op)].into(),
            ..ReportWindow::default()
        });
    }
    report
}

fn row(c: &Comparison, figure: Figure) -> &Row {
    c.rows.iter().find(|r| r.figure == figure && r.operation == "get").expect("row")
}

#[test]
fn two_runs_of_the_same_load_show_no_significant_change() {
    let mut alarms = 0;
    for seed in 0..10 {
        let c = compare(&report("a", 20, 500, 1000.0, seed), &report("b", 20, 500, 1000.0, seed + 100), 7)
            .expect("compare");
        alarms += c.rows.iter().filter(|r| matches!(r.verdict, Verdict::Worse | Verdict::Better)).count();
    }
    assert_eq!(alarms, 0);
}

#[test]
fn a_slower_target_is_worse_with_an_interval_around_the_change() {
    let c = compare(&report("a", 20, 500, 1000.0, 1), &report("b", 20, 500, 1300.0, 2), 7).expect("compare");
    for figure in [Figure::P50, Figure::P90, Figure::P99] {
        let r = row(&c, figure);
        assert_eq!(r.verdict, Verdict::Worse, "{r:?}");
        let change = r.change.expect("change");
        let (low, high) = r.interval.expect("interval");
        assert!(low <= change && change <= high && low > 0.15 && high < 0.45, "{r:?}");
    }
    let throughput = row(&c, Figure::Throughput);
    assert_eq!((throughput.change, throughput.verdict), (Some(0.0), Verdict::NoSignificantChange));
    // Fewer operations per second is worse, more is better.
    let c = compare(&report("a", 20, 500, 1000.0, 1), &report("b", 20, 400, 1000.0, 2), 7).expect("compare");
    assert_eq!(row(&c, Figure::Throughput).verdict, Verdict::Worse);
    let c = compare(&report("a", 20, 400, 1000.0, 1), &report("b", 20, 500, 1000.0, 2), 7).expect("compare");
    assert_eq!(row(&c, Figure::Throughput).verdict, Verdict::Better);
}

#[test]
fn the_whole_run_figure_is_the_one_the_report_computes() {
    let r = report("a", 5, 300, 2000.0, 3);
    let c = compare(&r, &r, 1).expect("compare");
    let mut all = histogram::new_histogram();
    for w in &r.windows {
        histogram::add_into(&mut all, &histogram::decode(&w.operations["get"].latency.0).expect("decode"))
            .expect("add");
    }
    assert_eq!(row(&c, Figure::P99).base, Some(all.value_at_quantile(0.99) as f64));
    assert_eq!(row(&c, Figure::P50).base, Some(all.value_at_quantile(0.5) as f64));
    assert_eq!(row(&c, Figure::Throughput).base, Some(300.0));
}

#[test]
fn gates_trip_on_significant_changes_beyond_their_limit() {
    let c = compare(&report("a", 20, 500, 1000.0, 1), &report("b", 20, 500, 1300.0, 2), 7).expect("compare");
    assert_eq!(Gate::parse("p99 > +10%").expect("gate").tripped(&c).len(), 1);
    assert!(Gate::parse("p99 > +50%").expect("gate").tripped(&c).is_empty());
    assert_eq!(Gate::parse("get.p50 > +10%").expect("gate").tripped(&c).len(), 1);
    assert!(Gate::parse("set.p50 > +10%").expect("gate").tripped(&c).is_empty());
    assert!(Gate::parse("throughput < -5%").expect("gate").tripped(&c).is_empty());
    let gate = Gate::parse("throughput < -5%").expect("gate");
    assert_eq!((gate.figure, gate.above, gate.limit), (Figure::Throughput, false, -0.05));
    assert!(Gate::parse("p99 +10%").unwrap_err().contains("write a gate"));
    assert!(Gate::parse("latency > +10%").unwrap_err().contains("not a figure"));
    assert!(Gate::parse("p99 > 10ms").unwrap_err().contains("in percent"));
}

/// `report` with its windows' requests split over two nodes, kv-1's
/// latency `slow` times kv-0's.
fn two_nodes(run_id: &str, slow: f64, seed: u64) -> Report {
    let mut report = report(run_id, 20, 400, 1000.0, seed);
    let mut rng = SmallRng::seed_from_u64(seed + 1);
    for window in &mut report.windows {
        for (node, factor) in [("kv-0", 1.0), ("kv-1", slow)] {
            let normal = Normal::new(1000.0 * factor, 200.0 * factor).expect("normal");
            let mut h = histogram::new_histogram();
            for _ in 0..200 {
                histogram::record_clamped(&mut h, normal.sample(&mut rng).max(1.0) as u64);
            }
            let latency = EncodedHistogram(histogram::encode(&h).expect("encode"));
            window
                .nodes
                .insert(node.to_string(), stampede_common::report::WindowNode { count: 200, errors: 0, latency });
        }
    }
    report
}

#[test]
fn each_backend_node_is_compared_on_its_own_and_gates_stay_on_operations() {
    let c = compare(&two_nodes("a", 1.0, 1), &two_nodes("b", 1.5, 2), 7).expect("compare");
    let node = |name: &str, figure: Figure| {
        c.rows.iter().find(|r| r.node.as_deref() == Some(name) && r.figure == figure).expect("a node row")
    };
    assert_eq!(node("kv-1", Figure::P50).verdict, Verdict::Worse, "{:?}", node("kv-1", Figure::P50));
    assert_eq!(node("kv-1", Figure::P50).operation, "all");
    assert_eq!(node("kv-0", Figure::P50).verdict, Verdict::NoSignificantChange);
    // Operation rows come first, then the nodes'.
    let first_node = c.rows.iter().position(|r| r.node.is_some()).expect("node rows");
    assert!(c.rows[..first_node].iter().all(|r| r.operation == "get"));
    let text = text(&c);
    assert!(text.contains("per backend node") && text.contains("node kv-1"), "{text}");
    // The operation's own windows did not change: no gate trips on p50.
    let gate = Gate::parse("p50 > +10%").expect("gate");
    assert!(gate.tripped(&c).is_empty(), "{:?}", gate.tripped(&c));
}
