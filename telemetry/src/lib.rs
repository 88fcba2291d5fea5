//! Where Stampede's logs and traces go, and the trace context that links a
//! run's spans across processes.
//!
//! This is the only crate that sees OpenTelemetry's types. The coordinator
//! and the agent create ordinary `tracing` spans; with an OTLP endpoint the
//! subscriber built here exports them, and [`context_of`] / [`continue_trace`]
//! move a span's W3C trace context through a plain string map (carried in
//! the gRPC assignment), so one run is one trace.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A span's trace context as text (W3C `traceparent`, `tracestate`).
pub type TraceContext = BTreeMap<String, String>;

/// The crates whose spans are exported. Everything else (gRPC, HTTP and the
/// exporter's own logs) stays out of the traces.
const TRACED: [&str; 2] = ["stampede_coordinator", "stampede_agent"];

/// How long shutting down waits for the last spans to be sent.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// How long one export to the collector may take.
const EXPORT_LIMIT: Duration = Duration::from_secs(5);

/// How logs are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to set up.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    pub log_format: LogFormat,
    /// A `tracing` filter for the logs (`info`, `stampede_agent=debug`, ...).
    pub log_filter: Option<&'a str>,
    /// The filter used when none is given, or when the given one is invalid.
    pub default_filter: &'a str,
    /// OTLP/gRPC collector, e.g. `http://otel-collector:4317`, or
    /// `https://...` for TLS.
    pub otlp_endpoint: Option<&'a str>,
    /// Certificates for an `https://` collector.
    pub otlp_tls: OtlpTls<'a>,
    /// `service.name` of this process in the traces.
    pub service_name: &'a str,
}

/// PEM files for TLS to the collector. Without `ca` the system's trusted
/// roots verify the collector; `client_cert` with `client_key` is for a
/// collector that asks for a client certificate (mutual TLS).
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpTls<'a> {
    pub ca: Option<&'a Path>,
    pub client_cert: Option<&'a Path>,
    pub client_key: Option<&'a Path>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "--otlp-endpoint `{0}` is not an http:// or https:// URL of an OTLP/gRPC collector (for example \
         http://localhost:4317)"
    )]
    BadEndpoint(String),
    #[error("--otlp-endpoint `{0}` is plain http://, but {1} is given; use an https:// endpoint for TLS, or drop {1}")]
    TlsWithoutHttps(String, &'static str),
    #[error("--otlp-client-cert and --otlp-client-key go together; {0} is missing")]
    HalfIdentity(&'static str),
    #[error("cannot read {what} `{path}`: {error}")]
    Unreadable { what: &'static str, path: String, error: std::io::Error },
    #[error("TLS to the OTLP collector `{endpoint}`: {error}")]
    Tls { endpoint: String, error: String },
    #[error("cannot start the OTLP exporter: {0}")]
    Exporter(String),
}

/// Keeps the exporter running; [`Telemetry::shutdown`] sends the last spans.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// The exporter's gRPC channel lives on this runtime, apart from the
    /// program's, so exporting works whatever runtime the program uses.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Sends the spans still buffered, waiting at most a few seconds. Call it
    /// outside any async runtime, after the program's work has ended.
    pub fn shutdown(mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown_with_timeout(FLUSH_LIMIT)
        {
            eprintln!("warning: not every trace span could be sent to the OTLP collector: {error}");
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Installs the global subscriber: logs on stderr and, with an endpoint,
/// span export over OTLP/gRPC.
pub fn init(settings: &Settings<'_>) -> Result<Telemetry, TelemetryError> {
    let filter = tracing_subscriber::EnvFilter::try_new(settings.log_filter.unwrap_or(settings.default_filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(settings.default_filter));
    // Colours only for a terminal (`docker logs`, journald and files get
    // plain text), and none when NO_COLOR is set.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let logs = match settings.log_format {
        LogFormat::Text => logs.with_filter(filter).boxed(),
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
    };
    let Some(endpoint) = settings.otlp_endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
        tracing_subscriber::registry().with(logs).init();
        return Ok(Telemetry::default());
    };
    let (provider, runtime) = exporter(endpoint, &settings.otlp_tls, settings.service_name)?;
    let tracer = provider.tracer("stampede");
    let traced = TRACED.iter().fold(Targets::new(), |targets, name| targets.with_target(*name, LevelFilter::INFO));
    let traces = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(traced);
    tracing_subscriber::registry().with(logs).with(traces).init();
    tracing::info!(%endpoint, service = settings.service_name, "exporting trace spans over OTLP/gRPC");
    Ok(Telemetry { provider: Some(provider), runtime: Some(runtime) })
}

fn exporter(
    endpoint: &str,
    tls: &OtlpTls<'_>,
    service: &str,
) -> Result<(SdkTracerProvider, tokio::runtime::Runtime), TelemetryError> {
    let secure = endpoint.starts_with("https://");
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| TelemetryError::BadEndpoint(endpoint.to_string()))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err(TelemetryError::BadEndpoint(endpoint.to_string()));
    }
    let tls_config = if secure {
        Some(client_tls(tls)?)
    } else if let Some(flag) = tls_flag(tls) {
        return Err(TelemetryError::TlsWithoutHttps(endpoint.to_string(), flag));
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let exporter = {
        let _entered = runtime.enter();
        let builder =
            opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).with_timeout(EXPORT_LIMIT);
        let builder = match tls_config {
            Some(config) => {
                let tls_error = |error: tonic::transport::Error| TelemetryError::Tls {
                    endpoint: endpoint.to_string(),
                    error: error_chain(&error),
                };
                let channel = tonic::transport::Channel::from_shared(endpoint.to_string())
                    .map_err(|_| TelemetryError::BadEndpoint(endpoint.to_string()))?
                    .tls_config(config)
                    .map_err(tls_error)?
                    .timeout(EXPORT_LIMIT)
                    .connect_lazy();
                builder.with_channel(channel)
            }
            None => builder,
        };
        builder.build().map_err(|e| TelemetryError::Exporter(e.to_string()))?
    };
    let resource = Resource::builder().with_service_name(service.to_string()).build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    Ok((provider, runtime))
}

/// The first TLS flag given, for the message when the endpoint is plain.
fn tls_flag(tls: &OtlpTls<'_>) -> Option<&'static str> {
    [(tls.ca, "--otlp-ca"), (tls.client_cert, "--otlp-client-cert"), (tls.client_key, "--otlp-client-key")]
        .into_iter()
        .find_map(|(path, flag)| path.map(|_| flag))
}

/// The channel's TLS settings: the given CA or the system's roots, and a
/// client certificate when both halves are given.
fn client_tls(tls: &OtlpTls<'_>) -> Result<tonic::transport::ClientTlsConfig, TelemetryError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read(path).map_err(|error| TelemetryError::Unreadable {
            what,
            path: path.display().to_string(),
            error,
        })
    };
    let mut config = tonic::transport::ClientTlsConfig::new();
    config = match tls.ca {
        Some(path) => config.ca_certificate(tonic::transport::Certificate::from_pem(read("--otlp-ca", path)?)),
        None => config.with_native_roots(),
    };
    match (tls.client_cert, tls.client_key) {
        (Some(cert), Some(key)) => {
            let identity = tonic::transport::Identity::from_pem(
                read("--otlp-client-cert", cert)?,
                read("--otlp-client-key", key)?,
            );
            Ok(config.identity(identity))
        }
        (Some(_), None) => Err(TelemetryError::HalfIdentity("--otlp-client-key")),
        (None, Some(_)) => Err(TelemetryError::HalfIdentity("--otlp-client-cert")),
        (None, None) => Ok(config),
    }
}

/// An error with its causes, one after another.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The trace context of `span`, to send to another process. Empty when
/// spans are not exported.
pub fn context_of(span: &tracing::Span) -> TraceContext {
    let mut carrier = Carrier(TraceContext::new());
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.0
}

/// Makes `span` a child of the span whose context another process sent, so
/// both are in one trace. Call it before the span is entered; an empty or
/// unreadable context leaves the span as it is.
pub fn continue_trace(span: &tracing::Span, context: &TraceContext) {
    if context.is_empty() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Carrier(context.clone()));
    // Fails only when spans are not exported, where there is no trace to join.
    let _ = span.set_parent(parent);
}

struct Carrier(TraceContext);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        // An empty `tracestate` says nothing; leave it out of messages.
        if !value.is_empty() {
            self.0.insert(key.to_string(), value);
        }
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_or_https_urls() {
        let none = OtlpTls::default();
        for bad in ["localhost:4317", "http://", "http:///x", "https://", "grpc://c:4317"] {
            assert!(matches!(exporter(bad, &none, "t"), Err(TelemetryError::BadEndpoint(_))), "{bad}");
        }
    }

    #[test]
    fn tls_files_need_https_both_identity_halves_and_readable_files() {
        let file = Path::new("/nonexistent/stampede-ca.pem");
        let ca = OtlpTls { ca: Some(file), ..OtlpTls::default() };
        let error = exporter("http://c:4317", &ca, "t").expect_err("plain http with a CA");
        assert!(matches!(error, TelemetryError::TlsWithoutHttps(_, "--otlp-ca")), "{error}");
        let half = OtlpTls { client_cert: Some(file), ..OtlpTls::default() };
        let error = exporter("https://c:4317", &half, "t").expect_err("a certificate without its key");
        assert!(matches!(error, TelemetryError::HalfIdentity("--otlp-client-key")), "{error}");
        let error = exporter("https://c:4317", &ca, "t").expect_err("a CA file that is not there");
        assert!(error.to_string().contains("cannot read --otlp-ca `/nonexistent/stampede-ca.pem`"), "{error}");
    }

    #[test]
    fn a_context_from_another_process_is_read_back() {
        let sent = TraceContext::from([(
            "traceparent".to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
        )]);
        let parent = TraceContextPropagator::new().extract(&Carrier(sent.clone()));
        let mut back = Carrier(TraceContext::new());
        TraceContextPropagator::new().inject_context(&parent, &mut back);
        assert_eq!(back.0, sent);
    }
}
