//! OpenTelemetry traces from real processes: a coordinator (given
//! `--otlp-endpoint`) and an agent (given `OTEL_EXPORTER_OTLP_ENDPOINT`)
//! export to an OTLP/gRPC receiver running in this test, and one run is one
//! trace: the coordinator's run and assignment spans and the agent's
//! assignment and prepare spans share a trace id, the agent's assignment
//! being a child of the coordinator's.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use stampede_tests::cluster::{AgentBuilder, Coordinator, CoordinatorBuilder};
use stampede_tests::{
    Process, ScenarioBuilder, certificates, get_set_calls, kv_servers, run_command, run_id_in, run_stampede,
    wait_for_report, write_file,
};

/// One span as received, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    run_id: Option<String>,
}

#[derive(Default, Clone)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("spans");
        for resource_spans in request.into_inner().resource_spans {
            let service =
                resource_spans.resource.as_ref().and_then(|r| text(&r.attributes, "service.name")).unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Received {
                    service: service.clone(),
                    name: span.name.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    run_id: text(&span.attributes, "run_id"),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    fn find(&self, service: &str, name: &str, run_id: Option<&str>) -> Option<Received> {
        let spans = self.spans.lock().expect("spans");
        spans
            .iter()
            .find(|s| s.service == service && s.name == name && (run_id.is_none() || s.run_id.as_deref() == run_id))
            .cloned()
    }

    fn wait_for(&self, service: &str, name: &str, run_id: Option<&str>, within: Duration) -> Received {
        let deadline = Instant::now() + within;
        loop {
            if let Some(span) = self.find(service, name, run_id) {
                return span;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> =
                    self.spans.lock().expect("spans").iter().map(|s| format!("{}/{}", s.service, s.name)).collect();
                panic!("no `{name}` span from {service} within {within:?}; received: {seen:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts an OTLP/gRPC receiver on a free port; returns it and its URL.
fn start_receiver(runtime: &tokio::runtime::Runtime) -> (Receiver, String) {
    serve_receiver(runtime, None)
}

/// Starts an OTLP/gRPC receiver that speaks TLS with the certificates in
/// `dir` (see [`certificates`]) and asks for a client certificate signed by
/// the same CA; returns it and its https:// URL.
fn start_tls_receiver(runtime: &tokio::runtime::Runtime, dir: &Path) -> (Receiver, String) {
    let pem = |name: &str| std::fs::read(dir.join(name)).expect("pem");
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(pem("server.pem"), pem("server.key")))
        .client_ca_root(tonic::transport::Certificate::from_pem(pem("ca.pem")));
    serve_receiver(runtime, Some(tls))
}

fn serve_receiver(
    runtime: &tokio::runtime::Runtime,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> (Receiver, String) {
    let receiver = Receiver::default();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let otlp = listener.local_addr().expect("address").to_string();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).expect("server TLS");
    }
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = builder.add_service(TraceServiceServer::new(receiver.clone())).serve_with_incoming(incoming);
    runtime.spawn(server);
    (receiver, format!("{scheme}://{otlp}"))
}

/// A coordinator on `grpc` exporting to `otlp_url` through `--otlp-endpoint`.
fn traced_coordinator(grpc: &str, data_dir: &str, otlp_url: &str) -> Coordinator {
    CoordinatorBuilder::new(data_dir)
        .listen(grpc)
        .args(&["--otlp-endpoint", otlp_url])
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .start()
}

/// An agent exporting to `otlp_url` through `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traced_agent(url: &str, otlp_url: &str) -> Process {
    AgentBuilder::new("traced-agent")
        .coordinator(url)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_url)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .start()
}

/// A receiver, a KV server, and a coordinator and an agent exporting to the
/// receiver.
struct Lab {
    receiver: Receiver,
    otlp_url: String,
    kv: String,
    grpc: String,
    url: String,
    data_dir: String,
    coordinator: Option<Coordinator>,
    agent: Process,
    data: tempfile::TempDir,
    _servers: Vec<(Process, String)>,
    _runtime: tokio::runtime::Runtime,
}

impl Lab {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (receiver, otlp_url) = start_receiver(&runtime);
        let servers = kv_servers(1);
        let data = tempfile::tempdir().expect("tempdir");
        let data_dir = data.path().join("data").to_string_lossy().into_owned();
        // A port of its own the first time; a restart comes back on it.
        let coordinator = traced_coordinator("127.0.0.1:0", &data_dir, &otlp_url);
        let (grpc, url) = (coordinator.address.clone(), coordinator.url.clone());
        let agent = traced_agent(&url, &otlp_url);
        Lab {
            receiver,
            otlp_url,
            kv: servers[0].1.clone(),
            grpc,
            url,
            data_dir,
            coordinator: Some(coordinator),
            agent,
            data,
            _servers: servers,
            _runtime: runtime,
        }
    }

    /// Writes a one-agent kv scenario against the lab's KV server.
    fn scenario(&self, name: &str, duration: &str, load: &str) -> String {
        let mut scenario = ScenarioBuilder::new(name).duration(duration).endpoints(&[&self.kv]).load("connections: 2");
        for line in load.lines().filter(|l| !l.trim().is_empty()) {
            scenario = scenario.load(line.trim());
        }
        let text = scenario.workload("kind: kv").workload("keys: 100").yaml();
        write_file(self.data.path(), &format!("{name}.yaml"), &text)
    }

    /// Kills the coordinator (SIGKILL) and starts it again on its data.
    fn restart_coordinator(&mut self) {
        self.coordinator = None;
        self.coordinator = Some(traced_coordinator(&self.grpc, &self.data_dir, &self.otlp_url));
    }
}

#[test]
fn a_run_is_one_trace_across_the_coordinator_and_agent_processes() {
    let mut lab = Lab::start();
    let scenario = lab.scenario("traced", "2s", "  model: open\n  rate: 200/s\n");
    let (code, stdout, stderr) =
        run_stampede(&["submit", &scenario, "--coordinator", &lab.url, "--wait", "--quiet"], Duration::from_secs(60));
    assert_eq!(code, 0, "the run passes\n{stdout}\n{stderr}");
    let run_id = run_id_in(&stdout);

    let within = Duration::from_secs(20);
    let receiver = &lab.receiver;
    let run = receiver.wait_for("stampede-coordinator", "run", Some(&run_id), within);
    let handed = receiver.wait_for("stampede-coordinator", "assignment", Some(&run_id), within);
    let taken = receiver.wait_for("stampede-agent", "assignment", Some(&run_id), within);
    let prepare = receiver.wait_for("stampede-agent", "prepare", Some(&run_id), within);
    assert_eq!(run.trace_id.len(), 32, "{run:?}");
    assert_ne!(run.trace_id, "0".repeat(32));
    for span in [&handed, &taken, &prepare] {
        assert_eq!(span.trace_id, run.trace_id, "one run, one trace: {span:?} vs {run:?}");
    }
    assert_eq!(handed.parent_span_id, run.span_id, "the coordinator's assignment is a child of the run");
    assert_eq!(taken.parent_span_id, handed.span_id, "the agent's assignment continues the coordinator's");
    assert_eq!(prepare.parent_span_id, taken.span_id, "prepare is a step of the agent's assignment");
    assert!(run.parent_span_id.is_empty(), "the run is the trace's root: {run:?}");

    // The agent's session ends when it stops; its span is sent on the way out.
    assert_eq!(lab.agent.terminate(Duration::from_secs(15)), Some(0), "the agent exits cleanly on SIGTERM");
    let session = lab.receiver.wait_for("stampede-agent", "agent session", None, within);
    assert_ne!(session.trace_id, run.trace_id, "a session spans many runs and is a trace of its own");
}

#[test]
fn a_run_resumed_by_a_restarted_coordinator_stays_in_its_trace() {
    let mut lab = Lab::start();
    let scenario = lab.scenario("resumed", "8s", "");
    let (code, stdout, stderr) =
        run_stampede(&["submit", &scenario, "--coordinator", &lab.url], Duration::from_secs(30));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let run_id = run_id_in(&stdout);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_set_calls(&lab.kv) == 0 {
        assert!(Instant::now() < deadline, "the run did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    // SIGKILL: the first coordinator's spans of the run are never sent.
    lab.restart_coordinator();
    let report = wait_for_report(&lab.url, &run_id, Duration::from_secs(60));
    assert_eq!(report["status"], "passed", "{report}");

    let within = Duration::from_secs(20);
    let resumed = lab.receiver.wait_for("stampede-coordinator", "run", Some(&run_id), within);
    let taken = lab.receiver.wait_for("stampede-agent", "assignment", Some(&run_id), within);
    assert_eq!(resumed.trace_id, taken.trace_id, "the resumed run continues the trace the agent's assignment is in");
    assert!(!resumed.parent_span_id.is_empty(), "the resumed run hangs under the first coordinator's run span");
}

#[test]
fn spans_reach_a_tls_collector_only_with_the_client_certificate_it_asks_for() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    certificates(dir.path());
    let (receiver, url) = start_tls_receiver(&runtime, dir.path());
    let scenario = write_file(
        dir.path(),
        "tls.yaml",
        "name: tls-traced\nduration: 2s\nagents: 1\ntarget:\n  kind: kv\nload:\n  connections: 2\nworkload:\n  kind: kv\n",
    );
    let file = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let run = |extra: &[String]| {
        let mut command = std::process::Command::new(stampede_tests::stampede_bin());
        command
            .args(["run", &scenario, "--quiet", "--otlp-endpoint", &url, "--otlp-ca", &file("ca.pem")])
            .args(extra)
            .env("OTEL_BSP_SCHEDULE_DELAY", "200");
        run_command(command, Duration::from_secs(60))
    };

    // The collector refuses a client without a certificate: the run itself
    // passes, and no span arrives.
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, 0, "the run passes without its spans\n{stdout}\n{stderr}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(receiver.spans.lock().expect("spans").is_empty(), "spans arrived without a client certificate");

    let (code, stdout, stderr) = run(&[
        "--otlp-client-cert".to_string(),
        file("client.pem"),
        "--otlp-client-key".to_string(),
        file("client.key"),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let span = receiver.wait_for("stampede-run", "run", None, Duration::from_secs(20));
    assert_eq!(span.trace_id.len(), 32, "{span:?}");
    let taken = receiver.wait_for("stampede-run", "assignment", span.run_id.as_deref(), Duration::from_secs(20));
    assert_eq!(taken.trace_id, span.trace_id, "one run, one trace over TLS too");
}

#[test]
fn a_bad_otlp_endpoint_is_refused_with_the_reason() {
    let (code, _, stderr) =
        run_stampede(&["--otlp-endpoint", "collector:4317", "validate", "unused.yaml"], Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`collector:4317` is not an http:// or https:// URL of an OTLP/gRPC collector"),
        "{stderr}"
    );
    let (code, _, stderr) = run_stampede(
        &["--otlp-endpoint", "https://collector:4317", "--otlp-ca", "/nonexistent/ca.pem", "validate", "unused.yaml"],
        Duration::from_secs(20),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot read --otlp-ca `/nonexistent/ca.pem`"), "{stderr}");
    let (code, _, stderr) = run_stampede(
        &["--otlp-endpoint", "http://collector:4317", "--otlp-client-cert", "c.pem", "validate", "unused.yaml"],
        Duration::from_secs(20),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is plain http://, but --otlp-client-cert is given"), "{stderr}");
}
