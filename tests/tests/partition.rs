//! A network partition, with real processes in network namespaces: an
//! agent's host is cut off for 10 s (its bridge port down) while the agent
//! keeps driving the KV server on its own host. The coordinator declares
//! it lost, the agent keeps its reports, and when the link is back it
//! delivers them: the run passes and every node's figure equals what its
//! server counted, so nothing measured was lost.

use std::time::{Duration, Instant};

use serde_json::Value;
use stampede_tests::cluster::{AgentBuilder, CoordinatorBuilder, KvServer, KvServerBuilder};
use stampede_tests::netns::Lab;
use stampede_tests::{ScenarioBuilder, get_set_calls as served, run_stampede, wait_for_report, write_file};

#[test]
fn an_agent_cut_off_for_ten_seconds_loses_nothing() {
    let Some(mut lab) = Lab::new() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator_host = lab.host("coord");
    let hosts = [lab.host("agent0"), lab.host("agent1")];

    let data = dir.path().join("data").to_string_lossy().into_owned();
    let coordinator = CoordinatorBuilder::new(&data)
        .within(&coordinator_host)
        .listen(&format!("{}:0", coordinator_host.address))
        .args(&["--heartbeat-timeout", "2s"])
        .start();
    let url = coordinator.url.clone();
    // Each agent drives a KV server on its own host: the load goes on
    // while the host is cut off from the coordinator.
    let kv: Vec<KvServer> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            KvServerBuilder::new(&format!("kv-{i}")).within(host).listen(&format!("{}:0", host.address)).start()
        })
        .collect();
    let servers: Vec<String> = kv.iter().map(|kv| kv.address.clone()).collect();
    let _agents: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| AgentBuilder::new(&format!("agent-{i}")).within(host).coordinator(&url).start())
        .collect();

    let scenario = write_file(
        dir.path(),
        "partition.yaml",
        &ScenarioBuilder::new("partition")
            .duration("24s")
            .agents(2)
            .endpoints(&servers)
            .load("connections: 2")
            .load("pipeline: 4")
            .line("on_agent_loss: continue")
            .yaml(),
    );
    let (code, stdout, stderr) = run_stampede(&["submit", &scenario, "--coordinator", &url], Duration::from_secs(30));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let run = stdout.trim().to_string();

    let deadline = Instant::now() + Duration::from_secs(30);
    while served(&servers[0]) == 0 {
        assert!(Instant::now() < deadline, "no traffic reached kv-0");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    hosts[0].cut();
    std::thread::sleep(Duration::from_secs(10));
    hosts[0].restore();

    let report: Value = wait_for_report(&url, &run, Duration::from_secs(120));
    assert_eq!(report["status"], "passed", "{}", report["error"]);
    let losses = report["agent_losses"].as_array().expect("agent_losses");
    let loss = losses.iter().find(|l| l["agent"] == "agent-0").unwrap_or_else(|| panic!("agent-0 lost: {losses:?}"));
    assert!(loss["back_at_s"].as_f64().is_some(), "it came back: {loss}");
    assert_eq!(loss["missing_intervals"].as_array().map(Vec::len), Some(0), "every interval was delivered: {loss}");
    assert!(losses.iter().all(|l| l["agent"] == "agent-0"), "only the cut agent was lost: {losses:?}");
    assert_eq!(report["totals"]["warmup_ops"], 0);
    for (i, address) in servers.iter().enumerate() {
        let node = format!("kv-{i}");
        let reported = report["nodes"][&node]["ops"].as_u64().unwrap_or(0);
        assert_eq!(reported, served(address), "{node}: the report equals the server's count");
        assert!(reported > 0);
    }
    let intervals = report["intervals"].as_array().expect("intervals");
    assert!(intervals.iter().all(|i| i["agents"] == 2), "both agents in every interval: {intervals:?}");
}
