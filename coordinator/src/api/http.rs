//! The coordinator's HTTP port: `GET /metrics` (Prometheus text format),
//! `GET /healthz` (the process is up) and `GET /readyz` (it leads). A
//! small HTTP/1.1 responder is enough for probes and scrapers: one request
//! per connection, answered and closed. With a token, `/metrics` wants it
//! as `Authorization: Bearer TOKEN` like the gRPC services. With
//! `--tls-cert` the port speaks TLS with the same certificate (and wants
//! client certificates when `--tls-client-ca` is set).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stampede_proto::security::TokenCheck;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::engine::{EngineHandle, Event};
use crate::metrics::{MetricsSnapshot, render};

const MAX_REQUEST_BYTES: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What each request needs.
#[derive(Clone)]
pub struct HttpState {
    pub engine: EngineHandle,
    pub leading: Arc<AtomicBool>,
    pub check: TokenCheck,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves until `shutdown` completes.
pub async fn serve_http(listener: TcpListener, state: HttpState, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let answered = match &state.tls {
                            None => answer(stream, &state).await,
                            Some(acceptor) => match tokio::time::timeout(READ_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => answer(stream, &state).await,
                                Ok(Err(error)) => Err(error),
                                Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake")),
                            },
                        };
                        if let Err(error) = answered {
                            tracing::debug!(%error, "HTTP request not answered");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => return,
        }
    }
}

struct Request {
    method: String,
    path: String,
    authorization: Option<Vec<u8>>,
}

/// Reads the request head; `Err` with the status to send when it is not a
/// request this server can read.
async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> Result<Request, (u16, &'static str)> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > MAX_REQUEST_BYTES {
            return Err((431, "request head too large\n"));
        }
        match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => return Err((408, "incomplete request\n")),
            Ok(Ok(n)) => buffer.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => return Err((400, "unreadable request\n")),
        }
    };
    let head = std::str::from_utf8(&buffer[..head_end]).map_err(|_| (400, "request head is not UTF-8\n"))?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err((400, "malformed request line\n"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err((505, "only HTTP/1.x is served here\n"));
    }
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().as_bytes().to_vec());
    let path = target.split('?').next().unwrap_or_default().to_string();
    Ok(Request { method: method.to_string(), path, authorization })
}

async fn answer(mut stream: impl AsyncRead + AsyncWrite + Unpin, state: &HttpState) -> std::io::Result<()> {
    let (status, content_type, body) = match read_request(&mut stream).await {
        Err((status, message)) => (status, "text/plain; charset=utf-8", message.to_string()),
        Ok(request) => respond(&request, state).await,
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "HTTP Version Not Supported",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

async fn respond(request: &Request, state: &HttpState) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if request.method != "GET" {
        return (405, TEXT, "only GET is served here\n".to_string());
    }
    let leading = state.leading.load(Ordering::SeqCst);
    match request.path.as_str() {
        "/healthz" => (200, TEXT, "ok\n".to_string()),
        "/readyz" if leading => (200, TEXT, "leading\n".to_string()),
        "/readyz" => (503, TEXT, "not leading: a standby, or still opening its store\n".to_string()),
        "/metrics" => {
            if let Err(why) = state.check.accepts(request.authorization.as_deref()) {
                return (401, TEXT, format!("{why}\n"));
            }
            let snapshot = if leading {
                let asked = state.engine.ask(|reply| Event::Metrics { reply });
                match tokio::time::timeout(READ_TIMEOUT, asked).await {
                    Ok(Ok(snapshot)) => snapshot,
                    _ => return (503, TEXT, "the engine did not answer\n".to_string()),
                }
            } else {
                MetricsSnapshot::default()
            };
            (200, "text/plain; version=0.0.4; charset=utf-8", render(&snapshot))
        }
        _ => (404, TEXT, "not found: this port serves /metrics, /healthz and /readyz\n".to_string()),
    }
}
