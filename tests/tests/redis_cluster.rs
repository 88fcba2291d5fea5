//! A Redis Cluster target (`kind: redis_cluster`): `stampede run` with two
//! in-process agents against three real `redis-server` masters joined by
//! `redis-cli --cluster create`. Each operation is counted against the
//! master that owns its key, and every master's figures in the report equal
//! what that master itself counted (`INFO commandstats`).

use std::time::Duration;

use serde_json::Value;
use stampede_tests::redis_cluster::RedisCluster;
use stampede_tests::{command_calls, run_local};

fn run(text: &str) -> (i32, Value, String) {
    let run = run_local(text, &[], &[], Duration::from_secs(120));
    (run.code, run.report, format!("{}\n{}", run.stdout, run.stderr))
}

#[test]
fn each_master_is_reported_with_what_it_served() {
    let cluster = RedisCluster::start(3);
    // Name the masters through the node map, as a user would.
    let names: Vec<(String, String)> = cluster
        .addresses
        .iter()
        .enumerate()
        .map(|(i, address)| (RedisCluster::identity(address), format!("shard-{i}")))
        .collect();
    let node_map: String = names.iter().map(|(identity, name)| format!("    {identity}: {name}\n")).collect();
    let text = format!(
        "name: cluster\nduration: 3s\nagents: 2\n\
         target:\n  kind: redis_cluster\n  endpoints: [\"{}\"]\n  nodes:\n{node_map}\
         load:\n  connections: 2\n  pipeline: 8\n\
         workload:\n  kind: mixed\n  keys: 3000\n  weights: {{set: 3, get: 4, incr: 1, lpush: 1, hset: 1}}\n\
         thresholds:\n  - error_rate < 0.1%\n  - node(shard-1).p99 < 1s\n  - distribution.max_deviation < 5%\n",
        cluster.addresses[0]
    );
    let (code, report, output) = run(&text);
    assert_eq!(code, 0, "{output}");
    assert_eq!(report["totals"]["errors"], 0, "{}", report["totals"]);
    let nodes = &report["nodes"];
    for (i, address) in cluster.addresses.iter().enumerate() {
        let name = format!("shard-{i}");
        let node = &nodes[&name];
        assert!(node.is_object(), "{name} is in the report: {nodes}");
        for operation in ["set", "get", "incr", "lpush", "hset"] {
            let reported = node["operations"][operation]["count"].as_u64().unwrap_or(0);
            assert!(reported > 0, "{name} served some {operation}");
            assert_eq!(
                reported,
                command_calls(address, operation),
                "{name} ({address}): the report's {operation} count equals the master's own"
            );
        }
        // Two cluster clients in all (one per agent), each with a socket to
        // every master.
        assert_eq!((&node["connections"], &node["opened"]), (&Value::from(2), &Value::from(2)), "{name}: {node}");
    }
    assert_eq!(nodes.as_object().map(|n| n.len()), Some(3), "only the three masters: {nodes}");
    let distribution = &report["distribution"];
    assert_eq!(distribution["verdict"], "balanced", "keys hash evenly over the slots: {distribution}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("redis_cluster: 3 masters"), "{notes}");
}

#[test]
fn a_single_redis_server_is_refused_with_what_to_use_instead() {
    let (_redis, port) = stampede_tests::start_redis();
    let text = format!(
        "name: not-a-cluster\nduration: 2s\nagents: 1\ntarget:\n  kind: redis_cluster\n  endpoints: [\"127.0.0.1:{port}\"]\n\
         workload:\n  kind: kv\n"
    );
    let (code, _, output) = run(&text);
    assert_ne!(code, 0, "{output}");
    assert!(output.contains(&format!("127.0.0.1:{port}")), "the endpoint is named: {output}");
    assert!(output.contains("kind: redis"), "the way out is named: {output}");
}
