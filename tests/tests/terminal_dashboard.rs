//! The terminal dashboard in a real terminal (tmux): `stampede watch`
//! against a distributed run (coordinator, two agents, two KV servers as
//! processes) and `stampede run --dashboard`. Every panel shows values, the
//! display changes while the run goes on and holds still when paused, the
//! final figures are each server's own count, `q` leaves (a watch leaves
//! the run running; a run asks before cancelling it), and the terminal is
//! usable afterwards. Without a terminal the line output comes instead.

use std::time::Duration;

use stampede_tests::cluster::{AgentBuilder, CoordinatorBuilder, KvServerBuilder};
use stampede_tests::tmux::Tmux;
use stampede_tests::{ScenarioBuilder, command_calls, get_set_calls, run_stampede, write_file};

/// The number after `label` on the screen (commas skipped).
fn number_after(screen: &str, label: &str) -> Option<u64> {
    let start = screen.find(label)? + label.len();
    let digits: String = screen[start..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The request count the node panel shows for `node`.
fn node_count(screen: &str, node: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.contains(&format!(" {node} ")) && l.contains(" req"))?;
    let before = &line[..line.find(" req")?];
    let digits: String = before.rsplit(' ').next()?.chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether the screen (captured with its colours) shows a foreground
/// colour; tmux writes each as `ESC[3Nm`, `ESC[9Nm` or `ESC[38;...m`.
fn coloured(screen: &str) -> bool {
    screen.contains("\x1b[38;")
        || (0..8).any(|n| screen.contains(&format!("\x1b[3{n}m")) || screen.contains(&format!("\x1b[9{n}m")))
}

/// The terminal is back as the shell wants it: off the alternate screen,
/// in canonical mode with echo, and it runs a command.
fn assert_terminal_usable(tmux: &Tmux) {
    assert!(!tmux.alternate_screen(), "still on the alternate screen:\n{}", tmux.screen());
    let stty = tmux.stty();
    let settings: Vec<&str> = stty.split_whitespace().collect();
    for setting in ["icanon", "echo", "opost", "isig"] {
        assert!(settings.contains(&setting), "`{setting}` is off after the dashboard:\n{stty}");
    }
    tmux.run("echo usable-$((40 + 2))");
    tmux.wait_for_history("\nusable-42", Duration::from_secs(10));
}

const PANELS: [&str; 8] = [
    "Throughput:",
    "Latency of",
    " Rate ",
    "Nodes: share",
    "Errors by kind",
    "Thresholds so far",
    "Agents (2)",
    " of 30 s",
];

#[test]
fn watch_shows_every_panel_live_leaves_the_run_running_and_ends_on_each_servers_count() {
    let servers = [KvServerBuilder::new("kv-0").start(), KvServerBuilder::new("kv-1").start()];
    let data = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorBuilder::new(data.path().join("data")).start();
    coordinator.wait_until_leading();
    let _agents: Vec<_> =
        ["a1", "a2"].iter().map(|id| AgentBuilder::new(id).coordinator(&coordinator.url).start()).collect();
    let scenario = ScenarioBuilder::new("tui")
        .duration("30s")
        .warmup("0s")
        .agents(2)
        .endpoints(&[&servers[0].address, &servers[1].address])
        .load("model: open")
        .load("rate: 1000/s")
        .load("connections: 4")
        .threshold("p99 < 2s")
        .threshold("error_rate < 1%")
        .yaml();
    let file = write_file(data.path(), "tui.yaml", &scenario);
    let (code, stdout, stderr) =
        run_stampede(&["submit", &file, "--coordinator", &coordinator.url], Duration::from_secs(30));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let run_id = stdout.trim().to_string();

    let tmux = Tmux::start(160, 50, data.path(), &[]);
    tmux.run(&format!("stampede watch {run_id} --coordinator {}; echo EXIT=$?", coordinator.url));
    let first = tmux.wait_for("every panel with values", Duration::from_secs(30), |s| {
        PANELS.iter().all(|p| s.contains(p))
            && number_after(s, " ops ").is_some_and(|n| n > 0)
            && ["kv-0", "kv-1"].iter().all(|n| node_count(s, n).is_some_and(|c| c > 0))
            && s.contains("│a1 ")
            && s.contains("│a2 ")
            && s.contains("p99 < 2s")
    });
    assert!(first.contains(&format!("run {run_id} (tui) running")), "{first}");
    assert!(first.contains("pass p99 < 2s") && first.contains("pass error_rate < 1%"), "{first}");
    assert!(first.contains("p99.9"), "{first}");
    let before = number_after(&first, " ops ").expect("ops");

    // It changes while the run goes on.
    std::thread::sleep(Duration::from_millis(2500));
    let later = number_after(&tmux.screen(), " ops ").expect("ops");
    assert!(later > before, "the dashboard did not change: {before} then {later}");

    // `p` holds the display still, and lets go.
    tmux.key("p");
    let paused = tmux.wait_for("the pause", Duration::from_secs(5), |s| s.contains("PAUSED"));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(tmux.screen(), paused, "the display changed while paused");
    tmux.key("p");
    tmux.wait_for("the display to go on", Duration::from_secs(10), |s| {
        !s.contains("PAUSED") && number_after(s, " ops ").is_some_and(|n| n > later)
    });

    // `o` shows the next operation's latency.
    tmux.key("o");
    tmux.wait_for("the set operation's latency", Duration::from_secs(5), |s| s.contains("Latency of set:"));
    assert!(coloured(&tmux.screen_with_colours()), "no colour on a terminal");

    // `q` leaves; the run goes on.
    tmux.key("q");
    let history = tmux.wait_for_history("EXIT=0", Duration::from_secs(10));
    assert!(history.contains(&format!("left the dashboard; run {run_id} goes on")), "{history}");
    assert_terminal_usable(&tmux);
    let (_, runs, _) = run_stampede(&["runs", "--coordinator", &coordinator.url], Duration::from_secs(10));
    let line = runs.lines().find(|l| l.starts_with(&run_id)).unwrap_or_default();
    assert!(line.contains("running"), "the run did not go on: {runs}");

    // Ctrl-C leaves as well (raw mode makes it a key, not a signal).
    tmux.run("clear");
    tmux.run(&format!("stampede watch {run_id} --coordinator {}; echo EXIT=$?", coordinator.url));
    tmux.wait_for("the dashboard again", Duration::from_secs(20), |s| PANELS.iter().all(|p| s.contains(p)));
    tmux.key("C-c");
    let history = tmux.wait_for_history("EXIT=0", Duration::from_secs(10));
    assert!(history.contains(&format!("left the dashboard; run {run_id} goes on")), "{history}");
    assert_terminal_usable(&tmux);

    // Watching again: the whole run so far at once, then its end held on
    // the screen until a key.
    tmux.run("clear");
    tmux.run(&format!(
        "stampede watch {run_id} --coordinator {} --hold --json {}/report.json; echo EXIT=$?",
        coordinator.url,
        data.path().display()
    ));
    // The whole held screen: tmux may show a frame whose header is drawn
    // and whose gauge is not yet.
    let held = tmux.wait_for("the held end", Duration::from_secs(40), |s| {
        s.contains("press any key for its report") && s.contains(") passed") && s.contains("30 s of 30 s: ended")
    });
    let x_axis = held.lines().find(|l| l.contains(" 0s ") && l.contains("15s") && l.contains("30s"));
    assert!(x_axis.is_some(), "the chart does not span the whole run:\n{held}");
    let mut total = 0;
    for (server, name) in servers.iter().zip(["kv-0", "kv-1"]) {
        let served = get_set_calls(&server.address);
        assert_eq!(node_count(&held, name), Some(served), "{name}: its own count\n{held}");
        total += served;
    }
    assert_eq!(number_after(&held, " ops "), Some(total), "{held}");
    assert_eq!(number_after(&held, "errors "), Some(0), "{held}");
    assert!(held.contains("pass p99 < 2s") && held.contains("pass error_rate < 1%"), "{held}");
    assert!(held.contains("30 s of 30 s: ended"), "{held}");
    if let Ok(path) = std::env::var("STAMPEDE_TUI_CAPTURE") {
        std::fs::write(path, &held).expect("capture");
    }

    tmux.key("q");
    let history = tmux.wait_for_history("EXIT=0", Duration::from_secs(20));
    assert!(history.contains(&format!("run {run_id} \"tui\": PASSED")), "{history}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.path().join("report.json")).expect("the JSON report"))
            .expect("JSON");
    assert_eq!(report["totals"]["ops"].as_u64(), Some(total));
    assert!(tmux.screen_with_colours().contains("\x1b[32mPASSED"), "the verdict is not green");
    assert_terminal_usable(&tmux);
}

#[test]
fn run_dashboard_asks_before_cancelling_and_prints_the_report_of_what_was_measured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = ScenarioBuilder::new("tui-run")
        .duration("60s")
        .warmup("1s")
        .agents(2)
        .load("model: open")
        .load("rate: 500/s")
        .load("connections: 2")
        .threshold("p99 < 2s")
        .yaml();
    write_file(dir.path(), "run.yaml", &scenario);
    let tmux = Tmux::start(150, 45, dir.path(), &[("NO_COLOR", "1")]);
    tmux.run("stampede run run.yaml --dashboard; echo EXIT=$?");
    tmux.wait_for("the dashboard", Duration::from_secs(30), |s| {
        PANELS[..6].iter().all(|p| s.contains(p)) && number_after(s, " ops ").is_some_and(|n| n > 0)
    });
    assert!(!coloured(&tmux.screen_with_colours()), "colours despite NO_COLOR");
    // `q` asks (also on a paused display); `n` goes back to watching; `q`
    // then `y` cancels.
    tmux.key("p");
    tmux.wait_for("the pause", Duration::from_secs(5), |s| s.contains("PAUSED"));
    tmux.key("q");
    tmux.wait_for("the question", Duration::from_secs(5), |s| s.contains("Cancel run r-"));
    tmux.key("n");
    tmux.key("p");
    tmux.wait_for("the question to go", Duration::from_secs(5), |s| {
        !s.contains("Cancel run r-") && s.contains("q: cancel the run")
    });
    assert!(tmux.alternate_screen(), "the dashboard left on `n`");
    tmux.key("q");
    tmux.wait_for("the question", Duration::from_secs(5), |s| s.contains("Cancel run r-"));
    tmux.key("y");
    let history = tmux.wait_for_history("EXIT=2", Duration::from_secs(40));
    assert!(history.contains("\"tui-run\": ABORTED") && history.contains("reason: cancelled"), "{history}");
    assert!(history.contains("operation ") && history.contains("get "), "no report of what was measured:\n{history}");
    assert!(!coloured(&tmux.screen_with_colours()), "the report in colour despite NO_COLOR");
    assert_terminal_usable(&tmux);
}

#[test]
fn without_a_terminal_the_dashboard_falls_back_to_the_progress_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = ScenarioBuilder::new("no-tty").duration("4s").warmup("1s").load("connections: 2").yaml();
    let file = write_file(dir.path(), "run.yaml", &scenario);
    let (code, stdout, stderr) = run_stampede(&["run", &file, "--dashboard"], Duration::from_secs(60));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(" ops/s")).collect();
    assert!(lines.len() >= 3, "{stderr}");
    // Measured seconds show their average beside the current rate.
    assert!(lines.iter().any(|l| l.contains(" ops/s (avg ")), "{stderr}");
    assert!(stdout.contains("\"no-tty\": PASSED") && !stdout.contains('\x1b'), "{stdout}");
}

/// A scenario that preloads 100,000 keys on `server` before the run and
/// deletes them after it, on two agents.
fn preloading(server: &str) -> String {
    ScenarioBuilder::new("phases")
        .duration("2s")
        .warmup("0s")
        .agents(2)
        .endpoints(&[server])
        .load("connections: 2")
        .workload("kind: kv")
        .workload("keys: 100000")
        .workload("preload: true")
        .workload("cleanup: true")
        .yaml()
}

/// The keys the server was given before the run and deleted after it, by
/// its own counts: SETs beyond the run's measured ones, and DELs.
fn preloaded_and_deleted(server: &str, report: &serde_json::Value) -> (u64, u64) {
    let measured_sets = report["operations"]["set"]["count"].as_u64().expect("set count");
    (command_calls(server, "set") - measured_sets, command_calls(server, "del"))
}

#[test]
fn preload_and_cleanup_show_progress_bars_on_a_terminal_and_lines_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let on_terminal = KvServerBuilder::new("kv-bars").start();
    write_file(dir.path(), "bars.yaml", &preloading(&on_terminal.address));
    let tmux = Tmux::start(150, 40, dir.path(), &[]);
    tmux.run("stampede run bars.yaml --json bars.json; echo EXIT=$?");
    let history = tmux.wait_for_history("EXIT=0", Duration::from_secs(90));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("bars.json")).expect("report")).expect("JSON");
    assert_eq!(preloaded_and_deleted(&on_terminal.address, &report), (100_000, 100_000));
    for phase in ["preload", "cleanup"] {
        let bar = history.lines().find(|l| l.starts_with(&format!("{phase} on 2 agent(s) (keys) [")));
        let bar = bar.unwrap_or_else(|| panic!("no {phase} bar:\n{history}"));
        assert!(bar.contains("] 100,000/100,000"), "{bar}");
    }
    assert_terminal_usable(&tmux);

    let piped = KvServerBuilder::new("kv-lines").start();
    let file = write_file(dir.path(), "lines.yaml", &preloading(&piped.address));
    let json = dir.path().join("lines.json").display().to_string();
    let (code, stdout, stderr) = run_stampede(&["run", &file, "--json", &json], Duration::from_secs(90));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    assert_eq!(preloaded_and_deleted(&piped.address, &report), (100_000, 100_000));
    for phase in ["preload", "cleanup"] {
        assert!(stderr.contains(&format!("\n{phase} on 2 agent(s): 100000/100000 keys\n")), "{stderr}");
    }
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (env, want_colour) in [(vec![], true), (vec![("NO_COLOR", "1")], false)] {
        let tmux = Tmux::start(200, 20, dir.path(), &env);
        // An agent with no coordinator to reach warns each retry; `timeout`
        // ends it.
        tmux.run("timeout 3 stampede agent --coordinator http://127.0.0.1:1; echo EXIT=$?");
        tmux.wait_for("the agent's warning", Duration::from_secs(20), |s| {
            s.contains("cannot reach the coordinator") && s.contains("EXIT=")
        });
        assert_eq!(coloured(&tmux.screen_with_colours()), want_colour, "NO_COLOR: {env:?}\n{}", tmux.screen());
    }
}
