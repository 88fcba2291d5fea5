//! One HTTP/1.1 connection per logical connection: the driver opens its TCP
//! (or TLS) socket itself and sends every request of a connection on it, so
//! the sockets a balancer sees are the connections the report counts. No
//! pool opens sockets of its own; a request that did not finish (the
//! runner's timeout dropped it) leaves the link closed, and the runner
//! reconnects, counting the new socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{DriverError, ErrorKind};

/// Opening a socket (and its TLS handshake) takes at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read; a bigger one is a protocol error, not memory.
const MAX_ANSWER: usize = 64 << 20;

/// Where requests go: address, `Host`, credentials and TLS, parsed once.
#[derive(Clone)]
pub struct Endpoint {
    /// `host:port` to connect to.
    address: String,
    host: String,
    host_header: HeaderValue,
    authorization: Option<HeaderValue>,
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    /// The endpoint without its password, for messages.
    pub shown: Arc<str>,
    /// The response header naming the backend that served each request.
    node_header: Option<header::HeaderName>,
}

impl Endpoint {
    /// Parses `host:port` or `http(s)://user:password@host:port`; user
    /// information is percent-decoded as RFC 3986 says and becomes basic
    /// authentication.
    pub fn parse(endpoint: &str, node_header: Option<&str>) -> Result<Self, DriverError> {
        let shown: Arc<str> = stampede_common::scenario::redact(endpoint).into();
        let bad = |why: String| DriverError::new(ErrorKind::Connection, format!("bad endpoint `{shown}`: {why}"));
        let text = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
        let url = url::Url::parse(&text).map_err(|e| bad(e.to_string()))?;
        let secure = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(bad(format!("scheme `{other}` is not http or https"))),
        };
        let host = url.host_str().ok_or_else(|| bad("no host".into()))?.to_string();
        let port = url.port_or_known_default().unwrap_or(4200);
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let address = if bare.contains(':') { format!("[{bare}]:{port}") } else { format!("{bare}:{port}") };
        let host_header = HeaderValue::from_str(&address).map_err(|e| bad(e.to_string()))?;
        let authorization = if url.username().is_empty() {
            None
        } else {
            let decode = stampede_common::endpoint::percent_decode;
            let pair = format!("{}:{}", decode(url.username()), url.password().map(decode).unwrap_or_default());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|e| bad(e.to_string()))?;
            value.set_sensitive(true);
            Some(value)
        };
        let tls = if secure {
            let name = rustls::pki_types::ServerName::try_from(bare.clone()).map_err(|e| bad(e.to_string()))?;
            Some((TlsConnector::from(client_config()?), name))
        } else {
            None
        };
        let node_header = match node_header {
            None => None,
            Some(name) => Some(
                header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| bad(format!("node_header `{name}`: {e}")))?,
            ),
        };
        Ok(Self { address, host: bare, host_header, authorization, tls, shown, node_header })
    }

    /// The credentials as sent, for tests.
    #[cfg(test)]
    pub fn authorization(&self) -> Option<String> {
        let value = self.authorization.as_ref()?.to_str().ok()?.strip_prefix("Basic ")?.to_string();
        let bytes = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
        String::from_utf8(bytes).ok()
    }

    /// The name of the node header, when the scenario names one.
    pub fn node_header(&self) -> Option<&str> {
        self.node_header.as_ref().map(header::HeaderName::as_str)
    }

    /// Opens one socket (TCP, then TLS for https) and its HTTP/1.1 session.
    pub async fn open(&self) -> Result<Link, DriverError> {
        let opening = async {
            let tcp = TcpStream::connect(&self.address).await.map_err(|e| self.error(ErrorKind::Connection, &e))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => self.handshake(tcp).await,
                Some((connector, name)) => {
                    let stream = connector.connect(name.clone(), tcp).await.map_err(|e| {
                        let mut error = self.error(ErrorKind::Connection, &e);
                        if error.message.contains("certificate") || error.message.contains("UnknownIssuer") {
                            error.message.push_str(
                                " (the system's CA store decides; for a private CA set SSL_CERT_FILE to its PEM file)",
                            );
                        }
                        error
                    })?;
                    self.handshake(stream).await
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, opening).await.map_err(|_| {
            DriverError::new(ErrorKind::Timeout, format!("connecting to {} took over {CONNECT_TIMEOUT:?}", self.shown))
        })?
    }

    async fn handshake<S>(&self, stream: S) -> Result<Link, DriverError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.error(ErrorKind::Connection, &e))?;
        let state = Arc::new(LinkState::default());
        let ended = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let _ = connection.await;
            ended.ended.store(true, Ordering::Relaxed);
        });
        Ok(Link { endpoint: self.clone(), sender, task: task.abort_handle(), state })
    }

    /// An error with every cause in its message (a refused connection, a
    /// certificate the system does not trust), naming the endpoint.
    fn error(&self, kind: ErrorKind, error: &(dyn std::error::Error + 'static)) -> DriverError {
        let mut message = format!("{}: {error}", self.shown);
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        DriverError::new(kind, message)
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("shown", &self.shown).field("host", &self.host).finish_non_exhaustive()
    }
}

/// TLS with the system's trust store (SSL_CERT_FILE and SSL_CERT_DIR
/// replace it, as OpenSSL's tools do), built once per process.
fn client_config() -> Result<Arc<rustls::ClientConfig>, DriverError> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                let _ = roots.add(certificate);
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS set-up: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|message| DriverError::new(ErrorKind::Connection, message))
}

/// One open HTTP/1.1 connection. Requests on it go one at a time.
pub struct Link {
    endpoint: Endpoint,
    sender: SendRequest<Full<Bytes>>,
    task: tokio::task::AbortHandle,
    state: Arc<LinkState>,
}

/// Whether a link can be used, readable without holding the link.
#[derive(Debug, Default)]
pub struct LinkState {
    /// Set while a request is under way: a request dropped half way leaves
    /// it set, and the link is not used again.
    busy: AtomicBool,
    /// The connection ended (the server closed it, or an I/O error).
    ended: AtomicBool,
}

impl LinkState {
    /// Whether the link can carry no more requests.
    pub fn is_closed(&self) -> bool {
        self.busy.load(Ordering::Relaxed) || self.ended.load(Ordering::Relaxed)
    }
}

/// A request's body and how it is written.
pub struct Body {
    pub bytes: Bytes,
    pub content_type: &'static str,
    /// `Content-Encoding` (`gzip`), when the bytes are compressed.
    pub encoding: Option<&'static str>,
}

/// A response: its status, the node header's value and the body.
pub struct Answer {
    pub status: u16,
    pub node: Option<String>,
    pub body: Bytes,
}

impl Link {
    /// Its state, to share with whoever must know whether it still works.
    pub fn state(&self) -> Arc<LinkState> {
        Arc::clone(&self.state)
    }

    /// Sends one request (a JSON body, if any) and reads its whole answer.
    pub async fn send(&mut self, method: Method, path: &str, body: Option<Bytes>) -> Result<Answer, DriverError> {
        self.send_as(method, path, body.map(|b| Body { bytes: b, content_type: "application/json", encoding: None }))
            .await
    }

    /// Sends one request with a body of any type and reads its whole answer.
    pub async fn send_as(&mut self, method: Method, path: &str, body: Option<Body>) -> Result<Answer, DriverError> {
        if self.state.busy.swap(true, Ordering::Relaxed) {
            return Err(DriverError::new(
                ErrorKind::Connection,
                format!("{}: an earlier request on this connection did not finish", self.endpoint.shown),
            ));
        }
        let endpoint = &self.endpoint;
        let mut request = Request::builder().method(method).uri(path).header(header::HOST, &endpoint.host_header);
        if let Some(authorization) = &endpoint.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        if let Some(body) = &body {
            request = request.header(header::CONTENT_TYPE, body.content_type);
            if let Some(encoding) = body.encoding {
                request = request.header(header::CONTENT_ENCODING, encoding);
            }
        }
        let request = request
            .body(Full::new(body.map(|b| b.bytes).unwrap_or_default()))
            .map_err(|e| DriverError::new(ErrorKind::Protocol, format!("{}: {e}", endpoint.shown)))?;
        self.sender.ready().await.map_err(|e| endpoint.error(ErrorKind::Connection, &e))?;
        let response =
            self.sender.send_request(request).await.map_err(|e| endpoint.error(ErrorKind::Connection, &e))?;
        let status = response.status().as_u16();
        let node = endpoint
            .node_header
            .as_ref()
            .and_then(|name| response.headers().get(name))
            .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_string());
        let body = Limited::new(response.into_body(), MAX_ANSWER).collect().await.map_err(|e| {
            let kind =
                if e.is::<http_body_util::LengthLimitError>() { ErrorKind::Protocol } else { ErrorKind::Connection };
            DriverError::new(kind, format!("{}: reading the answer: {e}", endpoint.shown))
        })?;
        self.state.busy.store(false, Ordering::Relaxed);
        Ok(Answer { status, node, body: body.to_bytes() })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}
