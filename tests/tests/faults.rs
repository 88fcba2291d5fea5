//! Faults during a run, with real processes: an agent killed with SIGKILL
//! under each `on_agent_loss` policy (and coming back), and the coordinator
//! killed with SIGKILL and restarted on the same data directory.
//!
//! Each agent drives one connection to a KV server of its own (agent i,
//! endpoint i), so every server's own count (`INFO commandstats`) can be
//! checked against the report's figures for that server's node: exactly for
//! the agents that were never lost, and for a lost agent never below what
//! the report says it did.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use stampede_tests::cluster::{Coordinator, CoordinatorBuilder, agent};
use stampede_tests::{
    Process, ScenarioBuilder, get_set_calls as served, kv_servers, run_id_in, run_stampede, wait_for_report, write_file,
};

struct Lab {
    servers: Vec<(Process, String)>,
    agents: Vec<Option<Process>>,
    coordinator: Option<Coordinator>,
    url: String,
    listen: String,
    data: tempfile::TempDir,
}

/// A coordinator on `listen` (`127.0.0.1:0` the first time, then the
/// address it bound, as a restarted coordinator comes back where its agents
/// look for it).
fn start_coordinator(listen: &str, data_dir: &Path) -> Coordinator {
    CoordinatorBuilder::new(data_dir).listen(listen).args(&["--heartbeat-timeout", "2s"]).start()
}

impl Lab {
    fn start(agents: usize) -> Self {
        Self::start_with(agents, &[])
    }

    /// Agents get `agent_args` as well.
    fn start_with(agents: usize, agent_args: &[&str]) -> Self {
        let servers = kv_servers(agents);
        let data = tempfile::tempdir().expect("tempdir");
        let coordinator = start_coordinator("127.0.0.1:0", data.path());
        let (listen, url) = (coordinator.address.clone(), coordinator.url.clone());
        let agents = (0..agents).map(|i| Some(agent(&url, &format!("agent-{i}"), agent_args))).collect();
        Lab { servers, agents, coordinator: Some(coordinator), url, listen, data }
    }

    fn scenario(&self, duration: u32, policy: &str) -> String {
        let endpoints: Vec<&str> = self.servers.iter().map(|(_, a)| a.as_str()).collect();
        let n = self.servers.len();
        ScenarioBuilder::new("faults")
            .duration(&format!("{duration}s"))
            .agents(n as u32)
            .endpoints(&endpoints)
            .load(&format!("connections: {n}"))
            .load("pipeline: 4")
            .threshold("error_rate < 50%")
            .line(&format!("on_agent_loss: {policy}"))
            .yaml()
    }

    /// Submits without waiting; returns the run id.
    fn submit(&self, scenario: &str) -> String {
        let path = write_file(self.data.path(), "scenario.yaml", scenario);
        let (code, stdout, stderr) =
            run_stampede(&["submit", &path, "--coordinator", &self.url], Duration::from_secs(30));
        assert_eq!(code, 0, "{stdout}{stderr}");
        run_id_in(&stdout)
    }

    /// Waits until `server` has served something (the run is going).
    fn wait_for_traffic(&self, server: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while served(&self.servers[server].1) == 0 {
            assert!(Instant::now() < deadline, "no traffic reached server {server}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the run is going on `server` and its agent has had time
    /// to deliver some interval reports, even on a busy machine.
    fn wait_for_reports(&self, server: usize) {
        self.wait_for_traffic(server);
        std::thread::sleep(Duration::from_secs(3));
    }

    /// The report's figure for each of the first `servers` nodes equals what
    /// that server counted.
    fn assert_exact(&self, report: &Value, servers: usize) {
        for (i, (_, address)) in self.servers.iter().enumerate().take(servers) {
            let node = format!("kv-{i}");
            assert_eq!(node_ops(report, &node), served(address), "{node}: the report equals the server's count");
        }
    }

    /// Polls `stampede report` until the run has ended; returns its JSON.
    fn report(&self, run_id: &str, within: Duration) -> Value {
        wait_for_report(&self.url, run_id, within)
    }
}

/// A node's operations; the scenarios here have no warm-up, so that is
/// everything its agent did.
fn node_ops(report: &Value, node: &str) -> u64 {
    assert_eq!(report["totals"]["warmup_ops"], 0, "no warm-up in these scenarios");
    report["nodes"][node]["ops"].as_u64().unwrap_or(0)
}

fn the_loss<'a>(report: &'a Value, agent: &str) -> &'a Value {
    let losses = report["agent_losses"].as_array().expect("agent_losses");
    losses.iter().find(|l| l["agent"] == agent).unwrap_or_else(|| panic!("{agent} in {losses:?}"))
}

#[test]
fn abort_ends_the_run_when_an_agent_is_killed() {
    let mut lab = Lab::start(3);
    let run = lab.submit(&lab.scenario(20, "abort"));
    lab.wait_for_reports(2);
    let killed_at = Instant::now();
    lab.agents[2] = None; // SIGKILL
    let report = lab.report(&run, Duration::from_secs(30));
    assert_eq!(report["status"], "aborted", "{}", report["error"]);
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("agent-2") && error.contains("on_agent_loss: abort"), "{error}");
    assert!(killed_at.elapsed() < Duration::from_secs(12), "aborted soon after the loss, not at the end");
    let loss = the_loss(&report, "agent-2");
    assert!(loss["back_at_s"].is_null());
    // What the others reported before the abort is kept.
    assert!(node_ops(&report, "kv-0") > 0 && node_ops(&report, "kv-2") > 0, "{}", report["nodes"]);
}

#[test]
fn continue_carries_on_and_a_restarted_agent_rejoins() {
    let mut lab = Lab::start(3);
    let run = lab.submit(&lab.scenario(14, "continue"));
    lab.wait_for_reports(2);
    lab.agents[2] = None; // SIGKILL
    // Past the 2 s heartbeat timeout: declared lost, then back.
    std::thread::sleep(Duration::from_secs(4));
    lab.agents[2] = Some(agent(&lab.url, "agent-2", &[]));
    let report = lab.report(&run, Duration::from_secs(60));
    assert_eq!(report["status"], "passed", "{}", report["error"]);
    lab.assert_exact(&report, 2);
    let lost_node = node_ops(&report, "kv-2");
    assert!(lost_node <= served(&lab.servers[2].1), "a lost agent never reports more than was done");
    let loss = the_loss(&report, "agent-2");
    assert!(loss["back_at_s"].as_f64().is_some(), "it came back: {loss}");
    assert!(!loss["missing_intervals"].as_array().expect("missing").is_empty(), "{loss}");
    assert!(loss["shortfall_ops"].as_u64().is_some_and(|n| n > 0), "{loss}");
    let intervals = report["intervals"].as_array().expect("intervals");
    let last = intervals.last().expect("an interval");
    assert_eq!(last["agents"], 3, "the restarted agent reported the last interval: {last}");
}

#[test]
fn tolerate_carries_on_while_the_lost_share_is_within_the_limit() {
    let mut lab = Lab::start(3);
    // Long enough that a third of the load is missing for much of it even
    // when a busy machine delays the kill.
    let run = lab.submit(&lab.scenario(16, "{tolerate: 34%}"));
    lab.wait_for_reports(2);
    lab.agents[2] = None; // SIGKILL: one agent of three, 33% of the load
    let report = lab.report(&run, Duration::from_secs(60));
    assert_eq!(report["status"], "passed", "{}", report["error"]);
    lab.assert_exact(&report, 2);
    let loss = the_loss(&report, "agent-2");
    assert!(loss["back_at_s"].is_null(), "{loss}");
    // Every measured interval from the loss to the end is missing. The
    // shortfall is estimated at the agent's own mean rate, which a busy
    // machine can make low while the run starts, so only its range is
    // checked: some load, and less than the whole.
    let lost_at = loss["lost_at_s"].as_f64().expect("lost_at_s");
    let missing = loss["missing_intervals"].as_array().map_or(0, Vec::len) as f64;
    assert!(missing >= 16.0 - lost_at.ceil() - 1.0, "intervals after the loss are missing: {loss}");
    let share = loss["shortfall_share"].as_f64().expect("share");
    assert!(share > 0.0 && share < 0.6, "part of the load was missing: {share}");
}

#[test]
fn a_coordinator_killed_mid_run_resumes_it_and_loses_nothing() {
    let mut lab = Lab::start(2);
    let run = lab.submit(&lab.scenario(12, "abort"));
    lab.wait_for_traffic(1);
    std::thread::sleep(Duration::from_secs(2));
    lab.coordinator = None; // SIGKILL
    // The agents carry on alone and keep their reports.
    std::thread::sleep(Duration::from_secs(3));
    lab.coordinator = Some(start_coordinator(&lab.listen, lab.data.path()));
    let report = lab.report(&run, Duration::from_secs(60));
    assert_eq!(report["status"], "passed", "{}", report["error"]);
    // Nothing was lost across the restart.
    lab.assert_exact(&report, 2);
    assert_eq!(report["agent_losses"].as_array().map(Vec::len), Some(0), "{}", report["agent_losses"]);
    let intervals = report["intervals"].as_array().expect("intervals");
    assert_eq!(intervals.len(), 12, "every interval is there");
    assert!(intervals.iter().all(|i| i["agents"] == 2), "from both agents: {intervals:?}");
}

#[test]
fn reports_beyond_the_agents_buffer_are_dropped_oldest_first_and_counted_in_the_report() {
    // Room for three messages: while the coordinator is away the agent
    // keeps only the newest reports (and its final report).
    let mut lab = Lab::start_with(1, &["--outbox-limit", "3"]);
    let run = lab.submit(&lab.scenario(10, "continue"));
    lab.wait_for_traffic(0);
    std::thread::sleep(Duration::from_secs(1));
    lab.coordinator = None; // SIGKILL
    // The agent finishes its ten seconds alone, then the coordinator returns.
    std::thread::sleep(Duration::from_secs(11));
    lab.coordinator = Some(start_coordinator(&lab.listen, lab.data.path()));
    let report = lab.report(&run, Duration::from_secs(60));
    let agent = &report["agents"][0];
    let (merged, dropped) = (agent["intervals"].as_u64().expect("intervals"), agent["reports_dropped"].as_u64());
    let dropped = dropped.expect("reports_dropped");
    assert!(dropped >= 3, "most of the run's reports could not be held: {agent}");
    assert_eq!(merged + dropped, 10, "every interval was either merged or counted as dropped: {agent}");
    // What the report has is less than the server did, by what was dropped.
    assert!(node_ops(&report, "kv-0") < served(&lab.servers[0].1));
    let (code, text, stderr) = run_stampede(&["report", &run, "--coordinator", &lab.url], Duration::from_secs(30));
    assert_eq!(code, 0, "{stderr}");
    assert!(text.contains(&format!("agent agent-0 dropped {dropped} interval reports")), "{text}");
}

/// Sends `signal` (`-STOP`, `-CONT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

#[test]
fn an_agent_frozen_past_the_timeout_is_judged_lost_then_reconnects_and_serves_the_next_run_alone() {
    // An agent stopped (SIGSTOP) for longer than the heartbeat timeout
    // keeps its TCP session: the coordinator aborts the run, gives the
    // session up, and when the agent runs again it must reconnect, stop the
    // aborted run's load and take the next run; before, it stayed in a
    // session nobody answered and the next run waited for it forever.
    let lab = Lab::start(2);
    let aborted = lab.submit(&lab.scenario(30, "abort"));
    lab.wait_for_reports(1);
    let frozen = lab.agents[1].as_ref().expect("agent-1").pid();
    signal(frozen, "-STOP");
    let report = lab.report(&aborted, Duration::from_secs(30));
    signal(frozen, "-CONT");
    assert_eq!(report["status"], "aborted", "{}", report["error"]);
    assert!(report["error"].as_str().unwrap_or_default().contains("agent-1"), "{}", report["error"]);

    // Once agent-1 is back and has stopped the aborted run's load, a run
    // on both agents: each server's own count over it equals its node's
    // figure, so no load of the aborted run went on beside it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = served(&lab.servers[1].1);
        std::thread::sleep(Duration::from_secs(1));
        if served(&lab.servers[1].1) == before {
            break;
        }
        assert!(Instant::now() < deadline, "agent-1 still drives the aborted run's load");
    }
    let before: Vec<u64> = lab.servers.iter().map(|(_, address)| served(address)).collect();
    let next = lab.submit(&lab.scenario(3, "abort"));
    let report = lab.report(&next, Duration::from_secs(45));
    assert_eq!(report["status"], "passed", "{}", report["error"]);
    for (i, (_, address)) in lab.servers.iter().enumerate() {
        let node = format!("kv-{i}");
        assert_eq!(
            node_ops(&report, &node),
            served(address) - before[i],
            "{node}: the report equals the server's count"
        );
        assert!(node_ops(&report, &node) > 0, "{node} served the run");
    }
}
