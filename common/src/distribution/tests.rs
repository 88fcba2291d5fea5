use super::*;

fn table(rows: &[(&str, &[(&str, u64)])]) -> BTreeMap<String, BTreeMap<String, u64>> {
    rows.iter()
        .map(|(agent, nodes)| (agent.to_string(), nodes.iter().map(|(n, c)| (n.to_string(), *c)).collect()))
        .collect()
}

fn weights(pairs: &[(&str, f64)]) -> Expectation {
    Expectation { weights: Some(pairs.iter().map(|(n, w)| (n.to_string(), *w)).collect()), ..Expectation::default() }
}

#[test]
fn chi_square_tail_probabilities_match_the_tables() {
    // Critical values at 5% for 1, 2 and 10 degrees of freedom, and at 1% for 4.
    for (x, k, p) in [(3.841, 1.0, 0.05), (5.991, 2.0, 0.05), (18.307, 10.0, 0.05), (13.277, 4.0, 0.01)] {
        let q = chi_square_survival(x, k);
        assert!((q - p).abs() < 2e-4, "Q({x}, {k}) = {q}, expected {p}");
    }
    // With two degrees of freedom the tail is exactly exp(-x/2).
    assert!((chi_square_survival(1.0, 2.0) - (-0.5f64).exp()).abs() < 1e-12);
    assert_eq!(chi_square_survival(0.0, 3.0), 1.0);
    assert!(chi_square_survival(10_000.0, 2.0) < 1e-300);
}

#[test]
fn an_even_spread_is_balanced_under_a_uniform_expectation() {
    let observations = Observations {
        requests: table(&[("a1", &[("kv-0", 1000), ("kv-1", 1010), ("kv-2", 990)])]),
        connections: table(&[("a1", &[("kv-0", 4), ("kv-1", 4), ("kv-2", 4)])]),
        ..Observations::default()
    };
    let d = analyse(&observations, &Expectation::default());
    assert_eq!(d.verdict, "balanced");
    assert_eq!(d.requests.total, 3000);
    assert_eq!(d.requests.degrees_of_freedom, 2);
    assert!((d.requests.chi_square - 0.2).abs() < 1e-9, "{}", d.requests.chi_square);
    assert!(d.requests.p_value.expect("p") > 0.9);
    assert!((d.requests.max_deviation_pp - 0.3333).abs() < 1e-3);
    assert!((d.requests.max_min_ratio.expect("ratio") - 1010.0 / 990.0).abs() < 1e-12);
    assert!(d.connections.balanced && d.connections.max_deviation_pp == 0.0);
    assert!(d.findings.is_empty(), "{:?}", d.findings);
    assert_eq!(d.affinity, None, "one agent: no affinity statistic");
}

#[test]
fn weights_are_the_expectation_and_a_uniform_one_is_rejected() {
    let observations = Observations {
        requests: table(&[("a1", &[("kv-0", 3000), ("kv-1", 1000), ("kv-2", 1000)])]),
        ..Observations::default()
    };
    let weighted = analyse(&observations, &weights(&[("kv-0", 3.0), ("kv-1", 1.0), ("kv-2", 1.0)]));
    assert_eq!(weighted.verdict, "balanced");
    assert_eq!(weighted.expected, "weighted");
    assert!((weighted.requests.nodes["kv-0"].expected_share - 0.6).abs() < 1e-12);
    assert!(weighted.requests.max_deviation_pp < 1e-9);
    let uniform = analyse(&observations, &Expectation::default());
    assert_eq!(uniform.verdict, "unbalanced");
    assert!((uniform.requests.max_deviation_pp - 26.6667).abs() < 1e-3);
    assert!(uniform.requests.p_value.expect("p") < 1e-100);
    assert_eq!(uniform.requests.max_min_ratio, Some(3.0));
}

#[test]
fn nodes_expected_but_unseen_and_seen_but_unexpected_are_findings() {
    let observations = Observations {
        requests: table(&[("a1", &[("kv-0", 500), ("kv-1", 500), ("stray", 5)])]),
        ..Observations::default()
    };
    let d = analyse(&observations, &weights(&[("kv-0", 1.0), ("kv-1", 1.0), ("kv-2", 1.0)]));
    assert_eq!(d.verdict, "unbalanced");
    let kinds: Vec<&str> = d.findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["unseen", "unexpected"], "{:?}", d.findings);
    assert!(d.findings[0].message.contains("kv-2"));
    assert!(d.findings[1].message.contains("stray"));
    assert_eq!(d.requests.max_min_ratio, None, "an expected node with nothing has no ratio");
    assert_eq!(d.requests.nodes["stray"].expected_share, 0.0);
}

#[test]
fn agents_pinned_to_nodes_are_found_although_the_total_is_balanced() {
    let observations = Observations {
        requests: table(&[("a1", &[("kv-0", 1000)]), ("a2", &[("kv-1", 1000)]), ("a3", &[("kv-2", 1000)])]),
        ..Observations::default()
    };
    let d = analyse(&observations, &Expectation::default());
    assert_eq!(d.verdict, "balanced");
    assert!((d.affinity.expect("V") - 1.0).abs() < 1e-9);
    let finding = d.findings.iter().find(|f| f.kind == "affinity").expect("affinity finding");
    assert!(finding.message.contains("although the total looks balanced"), "{}", finding.message);
    assert!(finding.message.contains("a2 -> kv-1 (100.0%)"), "{}", finding.message);

    // Agents that each spread evenly show no affinity.
    let even = Observations {
        requests: table(&[("a1", &[("kv-0", 500), ("kv-1", 500)]), ("a2", &[("kv-0", 510), ("kv-1", 490)])]),
        ..Observations::default()
    };
    let d = analyse(&even, &Expectation::default());
    assert!(d.affinity.expect("V") < 0.05);
    assert!(d.findings.is_empty(), "{:?}", d.findings);
}

#[test]
fn a_node_that_stops_serving_mid_run_is_a_share_change_with_its_window() {
    let mut intervals = BTreeMap::new();
    for i in 0..10u64 {
        let mut nodes: BTreeMap<String, u64> = [("kv-0".to_string(), 300), ("kv-1".to_string(), 300)].into();
        if i < 6 {
            nodes.insert("kv-2".into(), 300);
        }
        intervals.insert(i, nodes);
    }
    // A quiet interval is not judged.
    intervals.insert(10, [("kv-0".to_string(), 10)].into());
    let mut requests = BTreeMap::new();
    for nodes in intervals.values() {
        for (node, n) in nodes {
            *requests.entry(node.clone()).or_insert(0) += n;
        }
    }
    let observations =
        Observations { requests: [("a1".to_string(), requests)].into(), intervals, ..Default::default() };
    let d = analyse(&observations, &Expectation::default());
    let changes: Vec<&str> =
        d.findings.iter().filter(|f| f.kind == "share_change").map(|f| f.message.as_str()).collect();
    assert!(
        changes.contains(&"node kv-2 served no requests in intervals 6-9 (it had 23.0% over the run)"),
        "{changes:?}"
    );
    // The others took its part: their share rose in the same window.
    assert!(changes.iter().any(|m| m.starts_with("node kv-0's share was 50.0% in intervals 6-9")), "{changes:?}");
    assert_eq!(d.intervals.len(), 11);
    assert_eq!(d.intervals[7].shares["kv-2"], 0.0);
    assert!((d.intervals[0].shares["kv-2"] - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn no_requests_is_no_data_not_balanced() {
    let d = analyse(&Observations::default(), &Expectation::default());
    assert_eq!(d.verdict, "no data");
    assert_eq!(d.requests.p_value, None);
}

#[test]
fn a_node_that_flaps_all_run_is_listed_a_bounded_number_of_times() {
    // kv-1 serves every other pair of intervals for 400 intervals: 100
    // spans without requests.
    let mut intervals = BTreeMap::new();
    let mut requests: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..400u64 {
        let mut nodes: BTreeMap<String, u64> = [("kv-0".to_string(), 100)].into();
        if i % 4 < 2 {
            nodes.insert("kv-1".into(), 100);
        }
        for (node, n) in &nodes {
            *requests.entry(node.clone()).or_insert(0) += n;
        }
        intervals.insert(i, nodes);
    }
    let observations =
        Observations { requests: [("a1".to_string(), requests)].into(), intervals, ..Default::default() };
    let d = analyse(&observations, &Expectation::default());
    let about_kv1: Vec<&str> =
        d.findings.iter().filter(|f| f.message.starts_with("node kv-1")).map(|f| f.message.as_str()).collect();
    assert_eq!(about_kv1.len(), MAX_CHANGES_LISTED + 1, "{about_kv1:?}");
    assert!(about_kv1[MAX_CHANGES_LISTED].contains("more spans (the first 10 are listed)"), "{about_kv1:?}");
    assert!(about_kv1[0].contains("served no requests in intervals 2-3"), "{about_kv1:?}");
}

#[test]
fn wilson_intervals_match_the_published_figures() {
    // 75 of 100 at 95% (z = 1.96): [0.6569, 0.8245] (Newcombe 1998, method 3).
    let (low, high) = wilson(75, 100, 1.959_964);
    assert!((low - 0.6569).abs() < 1e-4 && (high - 0.8245).abs() < 1e-4, "[{low}, {high}]");
    // None of 10: the lower bound is 0, the upper one above 0.
    let (low, high) = wilson(0, 10, 1.959_964);
    assert!(low == 0.0 && (high - 0.2775).abs() < 1e-4, "[{low}, {high}]");
    assert_eq!(wilson(0, 0, 1.96), (0.0, 1.0));
}

/// Observations of a sampled node: attributed requests and the samples.
fn sampled(requests: &[(&str, u64)], samples: &[(&str, u64)]) -> Observations {
    let samples: BTreeMap<String, u64> = samples.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    Observations {
        requests: table(&[("a1", requests)]),
        intervals: [(0, requests.iter().map(|(n, c)| (n.to_string(), *c)).collect())].into(),
        interval_samples: [(0, samples.clone())].into(),
        samples,
        ..Observations::default()
    }
}

#[test]
fn sampled_shares_are_judged_by_their_interval() {
    let expect = weights(&[("a", 3.0), ("b", 1.0)]);
    // 1,000 samples at 75%: the interval lies within 75% +- 5.
    let d = analyse(&sampled(&[("a", 7500), ("b", 2500)], &[("a", 750), ("b", 250)]), &expect);
    assert_eq!(d.verdict, "balanced", "{:?}", d.sampling);
    let s = d.sampling.as_ref().expect("sampling");
    assert_eq!((s.samples, s.confidence), (1000, SAMPLED_CONFIDENCE));
    assert!(s.nodes["a"].low > 0.70 && s.nodes["a"].high < 0.80, "{s:?}");
    // 40 samples at 80%: the interval is wider than the band, so neither.
    let d = analyse(&sampled(&[("a", 320), ("b", 80)], &[("a", 32), ("b", 8)]), &expect);
    assert_eq!(d.verdict, "inconclusive", "{:?}", d.sampling);
    // 1,000 samples at 90%: wholly outside 75% +- 5.
    let d = analyse(&sampled(&[("a", 9000), ("b", 1000)], &[("a", 900), ("b", 100)]), &expect);
    assert_eq!(d.verdict, "unbalanced", "{:?}", d.sampling);
    // Not sampled: no sampling section, the verdict from the counts.
    let exact = Observations { requests: table(&[("a1", &[("a", 7500), ("b", 2500)])]), ..Observations::default() };
    let d = analyse(&exact, &expect);
    assert_eq!((d.verdict.as_str(), d.sampling.is_none()), ("balanced", true));
}

#[test]
fn intervals_with_few_samples_are_neither_drawn_nor_judged() {
    // Interval 0 has 40 samples, interval 1 only 3, none of them of b; an
    // exact count would call that "b served no requests in interval 1".
    let mut observations = sampled(&[("a", 1000), ("b", 300)], &[("a", 30), ("b", 10)]);
    observations.intervals.insert(1, [("a".to_string(), 300)].into());
    observations.interval_samples.insert(1, [("a".to_string(), 3)].into());
    let d = analyse(&observations, &Expectation::default());
    assert_eq!(d.intervals[0].samples, Some(40));
    assert!((d.intervals[0].shares["a"] - 0.75).abs() < 1e-12, "shares from the samples: {:?}", d.intervals[0]);
    assert_eq!((d.intervals[1].samples, d.intervals[1].shares.is_empty()), (Some(3), true));
    assert!(d.findings.iter().all(|f| !f.message.contains("served no requests")), "{:?}", d.findings);
    let note = d.findings.iter().find(|f| f.kind == "sampled").expect("a finding says why");
    assert!(note.message.contains("1 of 2 intervals") && note.message.contains("node_header"), "{}", note.message);
}

#[test]
fn with_sampled_nodes_chi_square_tests_the_samples_not_the_requests_that_follow_them() {
    // 10,000 requests at 76% would be far from 75% for chi-square; 400
    // samples at 76% are not.
    let d =
        analyse(&sampled(&[("a", 7600), ("b", 2400)], &[("a", 304), ("b", 96)]), &weights(&[("a", 3.0), ("b", 1.0)]));
    assert!((d.requests.chi_square - (4.0f64.powi(2) / 300.0 + 4.0f64.powi(2) / 100.0)).abs() < 1e-9);
    assert!(d.requests.p_value.expect("p") > 0.5, "{:?}", d.requests.p_value);
    assert_eq!(d.requests.total, 10_000, "the counts stay the requests'");
}
