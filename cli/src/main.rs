//! `stampede`: the one binary. Each subcommand wires the libraries; none
//! holds logic of its own beyond arguments and output.
#![forbid(unsafe_code)]

mod client;
mod config;
mod daemons;
mod dashboard;
mod link;
mod local;
mod output;
mod suite;
mod sweep;
mod watching;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:7700";

#[derive(Parser)]
#[command(name = "stampede", version, about = "Distributed load generator and benchmark system for databases")]
#[command(long_about = "Distributed load generator and benchmark system for databases.\n\n\
Start with `stampede run`: it runs a 10-second quickstart against the built-in KV server with an \
in-process coordinator and two agents. For several hosts, run `stampede coordinator` on one host, \
`stampede agent --coordinator URL` on each load host, and `stampede submit SCENARIO --wait`.\n\n\
Exit codes: 0 passed, 1 thresholds failed, 2 error.")]
pub(crate) struct Cli {
    /// Read flags from this file too (TOML, YAML or JSON, by its extension): `name = value` per flag
    /// by its long name, at the top for every command, or in a table per command (`[coordinator]`).
    /// The command line wins over the environment (and a `.env` file in the working directory),
    /// which wins over this file.
    #[arg(long, global = true, value_name = "FILE", env = "STAMPEDE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text", env = "STAMPEDE_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter (tracing syntax, e.g. `info` or `stampede_agent=debug`); without it and
    /// STAMPEDE_LOG, RUST_LOG is read.
    #[arg(long, global = true, env = "STAMPEDE_LOG")]
    log: Option<String>,
    /// Export trace spans (one trace per run: the run, each agent's assignment, agent sessions) to this
    /// OTLP/gRPC collector, e.g. `http://localhost:4317`, or `https://...` for TLS (verified with the
    /// system's trusted roots, or --otlp-ca). Off when not given.
    #[arg(long, global = true, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// CA certificate (PEM) that signed the https:// collector's certificate, instead of the system's roots.
    #[arg(long, global = true, value_name = "FILE", env = "OTEL_EXPORTER_OTLP_CERTIFICATE")]
    otlp_ca: Option<PathBuf>,
    /// Client certificate (PEM) for an https:// collector that asks for one (mutual TLS); with
    /// --otlp-client-key.
    #[arg(long, global = true, value_name = "FILE", env = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")]
    otlp_client_cert: Option<PathBuf>,
    /// Key (PEM) of --otlp-client-cert.
    #[arg(long, global = true, value_name = "FILE", env = "OTEL_EXPORTER_OTLP_CLIENT_KEY")]
    otlp_client_key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

impl From<LogFormat> for stampede_telemetry::LogFormat {
    fn from(format: LogFormat) -> Self {
        match format {
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario on this machine: in-process coordinator, agents and (for `kv` targets
    /// without endpoints) the built-in KV server. Without SCENARIO runs the built-in quickstart.
    Run {
        /// Scenario file (YAML). Omit for the built-in quickstart.
        scenario: Option<PathBuf>,
        /// Agents to start (default: the scenario's `agents`).
        #[arg(long)]
        agents: Option<u32>,
        /// Target endpoint instead of the scenario's `target.endpoints` (repeat for several),
        /// e.g. `--endpoint postgres://bench@db1:5432/bench`.
        #[arg(long = "endpoint", short = 'e', value_name = "ENDPOINT")]
        endpoints: Vec<String>,
        /// Write the JSON report to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the run's latency as an HdrHistogram interval log to this file (one line per
        /// second and operation@node; `#service` tags for service time).
        #[arg(long, value_name = "FILE")]
        hlog: Option<PathBuf>,
        /// Write the HTML report to this file: one self-contained page (charts, percentile
        /// spectra, nodes, agents; drag over a chart for the exact percentiles of that span).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Keep the run's data (intervals, reports) in this directory instead of a temporary one.
        #[arg(long, env = "STAMPEDE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// No live progress line.
        #[arg(long, short, conflicts_with = "dashboard")]
        quiet: bool,
        /// Show the terminal dashboard while the run lasts (throughput and latency charts,
        /// nodes, errors, thresholds, agents); `q` asks before cancelling the run, `p` pauses
        /// the display. Without a terminal on stdout, the progress line instead.
        #[arg(long)]
        dashboard: bool,
        /// Cancel the run if it has not ended this long after it was
        /// submitted: the report of what was measured still prints, and the
        /// exit code is 2. Default: the scenario's duration plus 10m; 0s
        /// waits for ever.
        #[arg(long, value_parser = duration)]
        timeout: Option<std::time::Duration>,
        /// Serve the live web dashboard (and /metrics) on this address while the run lasts,
        /// e.g. 127.0.0.1:8080. On loopback it needs no token; elsewhere give one with
        /// --token-file or STAMPEDE_TOKEN, which the dashboard's login form then asks for.
        #[arg(long, value_name = "ADDR")]
        dashboard_listen: Option<std::net::SocketAddr>,
        /// The token the dashboard asks for (default: STAMPEDE_TOKEN, if set).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Run the coordinator: agents connect to it, clients submit scenarios to it.
    Coordinator(daemons::CoordinatorArgs),
    /// Run an agent that takes assignments from a coordinator.
    Agent(daemons::AgentArgs),
    /// Run the built-in RESP key-value server.
    KvServer(daemons::KvServerArgs),
    /// Run the built-in WebSocket chat and echo server (rooms, broadcast, its node id in every hello).
    WsServer(daemons::WsServerArgs),
    /// Submit a scenario to a coordinator.
    Submit {
        /// Scenario file (YAML); validated here before it is sent.
        scenario: PathBuf,
        #[command(flatten)]
        link: link::CoordinatorLink,
        /// Agents to use (default: the scenario's `agents`).
        #[arg(long)]
        agents: Option<u32>,
        /// Target endpoint instead of the scenario's `target.endpoints` (repeat for several).
        #[arg(long = "endpoint", short = 'e', value_name = "ENDPOINT")]
        endpoints: Vec<String>,
        /// Wait for the end, print the report, and exit 0 passed / 1 failed / 2 error.
        #[arg(long)]
        wait: bool,
        /// With --wait: write the JSON report to this file.
        #[arg(long, requires = "wait")]
        json: Option<PathBuf>,
        /// With --wait: write the run's HdrHistogram interval log to this file.
        #[arg(long, requires = "wait", value_name = "FILE")]
        hlog: Option<PathBuf>,
        /// With --wait: write the HTML report to this file.
        #[arg(long, requires = "wait", value_name = "FILE")]
        html: Option<PathBuf>,
        /// With --wait: no live progress line.
        #[arg(long, short, conflicts_with = "dashboard")]
        quiet: bool,
        /// With --wait: the terminal dashboard instead of the progress line (`q` leaves it and
        /// the run goes on).
        #[arg(long, requires = "wait")]
        dashboard: bool,
    },
    /// Follow a queued or running run: the terminal dashboard on a terminal (`q` leaves it and
    /// the run goes on, `p` pauses the display, `o` shows the next operation's latency), the
    /// progress line otherwise; at the end its report, and the exit code of its verdict
    /// (0 passed, 1 failed, 2 error; 0 when you leave before the end).
    Watch {
        /// The run's id, as `stampede runs` lists it (or `stampede submit` printed).
        run_id: String,
        #[command(flatten)]
        link: link::CoordinatorLink,
        /// The progress line even on a terminal.
        #[arg(long)]
        lines: bool,
        /// Keep the dashboard's final figures on the screen when the run has ended, until a key
        /// is pressed; then the report.
        #[arg(long, conflicts_with = "lines")]
        hold: bool,
        /// Write the JSON report to this file at the end.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the HTML report to this file at the end.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// List the coordinator's runs; with --scenario, the history of one
    /// scenario with each run's throughput, p99 and error rate.
    Runs {
        #[command(flatten)]
        link: link::CoordinatorLink,
        /// Only the runs of the scenario with this `name:`, with their key figures.
        #[arg(long, value_name = "NAME")]
        scenario: Option<String>,
    },
    /// Print a run's report (from the coordinator, or from a JSON report file).
    Report {
        /// The run's id, as `stampede runs` lists it, or a JSON report file
        /// (`stampede run --json FILE`) to read without a coordinator.
        run_id: String,
        #[command(flatten)]
        link: link::CoordinatorLink,
        /// Print the JSON report instead of the text.
        #[arg(long, conflicts_with = "percentiles")]
        json: bool,
        /// Print the percentile spectrum of each operation instead (Value,
        /// Percentile, TotalCount, 1/(1-Percentile), as wrk2 and HdrHistogram
        /// print it), latency and, in the open model, service time.
        #[arg(long)]
        percentiles: bool,
        /// Write the run's HdrHistogram interval log to this file instead (from its stored interval
        /// reports; needs the run's id and its coordinator).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "percentiles"])]
        hlog: Option<PathBuf>,
        /// Write the HTML report to this file instead (a run id or a JSON report file).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "percentiles", "hlog"])]
        html: Option<PathBuf>,
        /// Print the exact figures of a span instead: FROM..TO in seconds since the start
        /// (warm-up included), the time windows lying within it merged; with --json as JSON.
        #[arg(long, value_name = "FROM..TO", conflicts_with_all = ["percentiles", "hlog", "html"])]
        window: Option<String>,
    },
    /// Compare two runs: per operation and per backend node throughput, error rate, p50, p90, p99 and p99.9, the
    /// change in percent, a 99% bootstrap interval and a verdict (better, worse, no significant
    /// change). Exit 0, or 1 when a --fail-on gate trips, 2 on error.
    Compare {
        /// The baseline: a run id (with --coordinator), a JSON report file, or `last-passed`:
        /// the coordinator's newest passed run of the candidate's scenario (by its `name:`).
        base: String,
        /// The run to judge: a run id or a JSON report file.
        candidate: String,
        #[command(flatten)]
        link: link::CoordinatorLink,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 when this significant change happens, e.g. `p99 > +10%`, `get.p99.9 > +20%`,
        /// `throughput < -5%` (repeatable).
        #[arg(long = "fail-on", value_name = "GATE")]
        fail_on: Vec<String>,
        /// Also write the comparison as an HTML page: the rows and verdicts, both runs'
        /// percentile spectra, throughput and p99 over time overlaid.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Cancel a queued or running run.
    Cancel {
        /// The run's id, as `stampede runs` lists it.
        run_id: String,
        #[command(flatten)]
        link: link::CoordinatorLink,
    },
    /// List the agents the coordinator knows.
    Agents {
        #[command(flatten)]
        link: link::CoordinatorLink,
    },
    /// Run a scenario's `sweep:` section: the scenario at successive load levels (a list, or a
    /// search that grows until the SLO fails and bisects to the knee) on one in-process
    /// coordinator and the same agents (or on --coordinator/--etcd and its agents); prints each
    /// step, the knee and, for closed-model concurrency sweeps, a Universal Scalability Law fit.
    /// Exit 0 when a knee was found, 1 when even the first step failed the SLO, 2 on error.
    Sweep {
        /// Scenario file (YAML) with a `sweep:` section.
        scenario: PathBuf,
        /// Agents to start (default: the scenario's `agents`; a sweep over agents starts the most it needs).
        #[arg(long)]
        agents: Option<u32>,
        /// Target endpoint instead of the scenario's `target.endpoints` (repeat for several).
        #[arg(long = "endpoint", short = 'e', value_name = "ENDPOINT")]
        endpoints: Vec<String>,
        /// Also write the sweep (every step, the knee, the fit) as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also write the sweep's page (latency against throughput, the knee marked) to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Keep each step's JSON report in this directory (`step-N.json`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// No line per step on stderr.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        remote: link::RemoteLink,
    },
    /// Run a suite: a list of scenarios and sweeps (paths or inline), each with a name and tags,
    /// one after the other on one in-process coordinator and the same agents (or on
    /// --coordinator/--etcd and its agents). Each entry's report goes to DIR/<entry>/
    /// (report.txt, report.json, report.html; sweep.txt, sweep.json, sweep.html), and
    /// DIR/summary.txt, summary.json and summary.html put them side by side. Exit code: the
    /// worst verdict.
    Suite {
        /// Suite file (YAML): `name`, `entries: [{name, scenario: PATH or {...}, tags, agents, endpoints}]`.
        suite: PathBuf,
        /// Shorten every entry: durations (run, warm-up, stages) and load.operations divided by 10,
        /// a run's duration kept at 3s or more (warm-up and stages 1s) unless it was shorter.
        #[arg(long)]
        quick: bool,
        /// Run only the entries with this tag (repeat for several).
        #[arg(long = "only", value_name = "TAG")]
        only: Vec<String>,
        /// Where the results go.
        #[arg(long, value_name = "DIR", default_value = "stampede-results")]
        out: PathBuf,
        /// Stop at the first entry that does not pass (the rest are listed as not run).
        #[arg(long)]
        fail_fast: bool,
        /// Agents to start for every entry (default: each entry's or its scenario's).
        #[arg(long)]
        agents: Option<u32>,
        #[command(flatten)]
        remote: link::RemoteLink,
    },
    /// Check a scenario file and print what it means, or every problem with its line.
    Validate {
        /// Scenario file (YAML).
        scenario: PathBuf,
    },
}

/// The `service.name` of this process in exported traces.
fn service_name(command: &Command) -> &'static str {
    match command {
        Command::Coordinator(_) => "stampede-coordinator",
        Command::Agent(_) => "stampede-agent",
        Command::KvServer(_) => "stampede-kv-server",
        Command::WsServer(_) => "stampede-ws-server",
        Command::Run { .. } | Command::Sweep { .. } | Command::Suite { .. } => "stampede-run",
        _ => "stampede-client",
    }
}

fn display(quiet: bool, dashboard: bool, options: dashboard::Options) -> watching::Display {
    match (quiet, dashboard) {
        (true, _) => watching::Display::Quiet,
        (false, true) => watching::Display::Dashboard(options),
        (false, false) => watching::Display::Line,
    }
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    stampede_common::units::parse_duration(text).map_err(|e| e.0)
}

/// `stampede ... | head -1`: once the reader has gone, printing fails.
/// End as Unix tools do when their reader leaves (status 141, as if by
/// SIGPIPE) instead of with a panic. Files are written before or apart
/// from what is printed, and the report is printed without panicking.
fn end_quietly_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    end_quietly_when_stdout_closes();
    let (args, dotenv) = match config::prepare(std::env::args_os().collect()) {
        Ok(prepared) => (prepared.args, prepared.dotenv),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let log_filter = cli.log.clone().or_else(|| std::env::var("RUST_LOG").ok().filter(|f| !f.trim().is_empty()));
    let quiet_default = matches!(
        cli.command,
        Command::Run { .. }
            | Command::Submit { .. }
            | Command::Validate { .. }
            | Command::Sweep { .. }
            | Command::Suite { .. }
    );
    let settings = stampede_telemetry::Settings {
        log_format: cli.log_format.into(),
        log_filter: log_filter.as_deref(),
        default_filter: if quiet_default { "warn" } else { "info" },
        otlp_endpoint: cli.otlp_endpoint.as_deref(),
        otlp_tls: stampede_telemetry::OtlpTls {
            ca: cli.otlp_ca.as_deref(),
            client_cert: cli.otlp_client_cert.as_deref(),
            client_key: cli.otlp_client_key.as_deref(),
        },
        service_name: service_name(&cli.command),
    };
    let telemetry = match stampede_telemetry::init(&settings) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = dotenv {
        tracing::info!(file = %path.display(), "variables the environment did not set were read from .env");
    }
    let code = run_command(cli.command);
    // The runtime is gone by now, so every span has ended; send the last ones.
    telemetry.shutdown();
    code
}

fn run_command(command: Command) -> ExitCode {
    // The KV server runs on the number of threads it is given (one event
    // loop by default); everything else on the default multi-thread runtime.
    let runtime = match &command {
        Command::KvServer(args) if args.threads == 1 => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        Command::KvServer(args) => {
            tokio::runtime::Builder::new_multi_thread().worker_threads(usize::from(args.threads)).enable_all().build()
        }
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(dispatch(command));
    // Dropping the runtime ends the tasks still holding spans.
    drop(runtime);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run {
            scenario,
            agents,
            endpoints,
            json,
            hlog,
            html,
            data_dir,
            quiet,
            dashboard,
            timeout,
            dashboard_listen,
            token_file,
        } => {
            let web = dashboard_listen.map(|listen| local::Dashboard { listen, token_file });
            let display = display(quiet, dashboard, dashboard::Options { mode: dashboard::Mode::Run, hold: false });
            let options = local::RunOptions { agents, json, hlog, html, data_dir, display, timeout, dashboard: web };
            local::run(scenario.as_deref(), &endpoints, options).await
        }
        Command::Coordinator(args) => daemons::coordinator(args).await.map(|()| 0),
        Command::Agent(args) => daemons::agent(args).await.map(|()| 0),
        Command::KvServer(args) => daemons::kv_server(args).await.map(|()| 0),
        Command::WsServer(args) => daemons::ws_server(args).await.map(|()| 0),
        Command::Submit { scenario, link, agents, endpoints, wait, json, hlog, html, quiet, dashboard } => {
            let files = client::Files { json: json.as_deref(), hlog: hlog.as_deref(), html: html.as_deref() };
            let display = display(quiet, dashboard, dashboard::Options { mode: dashboard::Mode::Watch, hold: false });
            client::submit(&link, &scenario, agents, &endpoints, wait, files, display).await
        }
        Command::Watch { run_id, link, lines, hold, json, html } => {
            let files = client::Files { json: json.as_deref(), hlog: None, html: html.as_deref() };
            let display = display(false, !lines, dashboard::Options { mode: dashboard::Mode::Watch, hold });
            let mut client = client::connect(&link).await?;
            watching::watch(&mut client, &run_id, files, display).await
        }
        Command::Compare { base, candidate, link, json, fail_on, html } => {
            client::compare(&link, &base, &candidate, json, &fail_on, html.as_deref()).await
        }
        Command::Runs { link, scenario } => client::runs(&link, scenario.as_deref()).await.map(|()| 0),
        Command::Report { run_id, link, json, percentiles, hlog, html, window } => {
            let shown = if let Some(path) = html {
                client::Shown::Html(path)
            } else if let Some(span) = window {
                let span =
                    stampede_coordinator::window::Span::parse(&span).map_err(|e| anyhow::anyhow!("--window {e}"))?;
                client::Shown::Window { span, json }
            } else if percentiles {
                client::Shown::Percentiles
            } else if json {
                client::Shown::Json
            } else {
                client::Shown::Text
            };
            client::report(&link, &run_id, shown, hlog.as_deref()).await.map(|()| 0)
        }
        Command::Cancel { run_id, link } => client::cancel(&link, &run_id).await.map(|()| 0),
        Command::Agents { link } => client::agents(&link).await.map(|()| 0),
        Command::Validate { scenario } => client::validate(&scenario),
        Command::Suite { suite, quick, only, out, fail_fast, agents, remote } => {
            let remote = remote.link();
            suite::suite(&suite, suite::SuiteOptions { quick, only, out, fail_fast, agents, remote }).await
        }
        Command::Sweep { scenario, agents, endpoints, json, html, out, quiet, remote } => {
            let remote = remote.link();
            sweep::sweep(&scenario, &endpoints, sweep::SweepOptions { agents, json, html, remote, out, quiet }).await
        }
    }
}
