//! The coordinator's HTTP port (axum over hyper, plain or TLS):
//! - `GET /metrics` (Prometheus text format; with a token it wants
//!   `Authorization: Bearer TOKEN`, like the gRPC services), `GET /healthz`
//!   (the process is up) and `GET /readyz` (it leads);
//! - the web dashboard: `GET /` (the page, self-contained), `GET /events`
//!   (its Server-Sent Events; `?run=ID` follows a run) and
//!   `GET /runs/ID/report.html` (a finished run's HTML report).
//!
//! A browser cannot put a token in a header of a page load or of an
//! EventSource, so with a token the dashboard asks for it once in a form
//! (`POST /login`) and answers with a session cookie (HttpOnly,
//! SameSite=Strict, Secure over TLS) that names a random session, never the
//! token. The token is never in a URL, a log or a page.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use stampede_proto::security::TokenCheck;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use crate::engine::{ControlError, EngineHandle, Event};
use crate::metrics::{MetricsSnapshot, render};

const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a dashboard session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest go first.
const MAX_SESSIONS: usize = 1024;
const COOKIE: &str = "stampede_session";
const TEXT: &str = "text/plain; charset=utf-8";

/// What each request needs.
#[derive(Clone)]
pub struct HttpState {
    pub engine: EngineHandle,
    pub leading: Arc<AtomicBool>,
    pub check: TokenCheck,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub sessions: Arc<Sessions>,
}

/// Dashboard sessions: random ids with their expiry.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Instant>>);

impl Sessions {
    fn open(&self, now: Instant) -> String {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, expiry| *expiry > now);
        while sessions.len() >= MAX_SESSIONS {
            let Some(oldest) = sessions.iter().min_by_key(|(_, e)| **e).map(|(id, _)| id.clone()) else { break };
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), now + SESSION_LIFETIME);
        id
    }

    fn valid(&self, id: &str, now: Instant) -> bool {
        let sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get(id).is_some_and(|expiry| *expiry > now)
    }

    fn close(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// Serves until `shutdown` completes.
pub async fn serve_http(listener: TcpListener, state: HttpState, shutdown: impl Future<Output = ()>) {
    let tls = state.tls.clone();
    let router = router(state);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let router = router.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let served = match tls {
                            None => serve_connection(stream, router).await,
                            Some(acceptor) => match tokio::time::timeout(READ_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => serve_connection(stream, router).await,
                                Ok(Err(error)) => Err(error.to_string()),
                                Err(_) => Err("TLS handshake timed out".to_string()),
                            },
                        };
                        if let Err(error) = served {
                            tracing::debug!(%error, "HTTP connection ended with an error");
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

async fn serve_connection(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    router: Router,
) -> Result<(), String> {
    let service = hyper_util::service::TowerToHyperService::new(router);
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await
        .map_err(|e| e.to_string())
}

fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/events", get(events))
        .route("/runs/{run_id}/report.html", get(report_page))
        .fallback(|| async {
            text(StatusCode::NOT_FOUND, "not found: this port serves /, /events, /metrics, /healthz and /readyz\n")
        })
        .layer(DefaultBodyLimit::max(4096))
        .with_state(state)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body.into()).into_response()
}

/// A page: no caching, no framing, and a policy that lets it reach only
/// this port.
fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.leading.load(Ordering::SeqCst) {
        text(StatusCode::OK, "leading\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not leading: a standby, or still opening its store\n")
    }
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    if let Err(why) = state.check.accepts(authorization) {
        return text(StatusCode::UNAUTHORIZED, format!("{why}\n"));
    }
    let snapshot = if state.leading.load(Ordering::SeqCst) {
        let asked = state.engine.ask(|reply| Event::Metrics { reply });
        match tokio::time::timeout(READ_TIMEOUT, asked).await {
            Ok(Ok(snapshot)) => snapshot,
            _ => return text(StatusCode::SERVICE_UNAVAILABLE, "the engine did not answer\n"),
        }
    } else {
        MetricsSnapshot::default()
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&snapshot))
        .into_response()
}

fn session_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether a browser request may see the dashboard: no token is needed, or
/// it carries a live session (or the token in an `Authorization` header,
/// for scripts).
fn admitted(state: &HttpState, headers: &HeaderMap) -> bool {
    if !state.check.required() {
        return true;
    }
    if let Some(authorization) = headers.get(header::AUTHORIZATION)
        && state.check.accepts(Some(authorization.as_bytes())).is_ok()
    {
        return true;
    }
    session_of(headers).is_some_and(|id| state.sessions.valid(id, Instant::now()))
}

async fn dashboard(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if admitted(&state, &headers) {
        page(StatusCode::OK, crate::html::dashboard_page())
    } else {
        page(StatusCode::OK, crate::html::login_page(None))
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): State<HttpState>, Form(form): Form<LoginForm>) -> Response {
    let bearer = format!("Bearer {}", form.token.trim());
    if state.check.accepts(Some(bearer.as_bytes())).is_err() {
        tracing::info!("dashboard login refused: wrong token");
        let why = "That is not this coordinator's token. Use the token the coordinator was started with \
                   (its --token-file or STAMPEDE_TOKEN).";
        return page(StatusCode::UNAUTHORIZED, crate::html::login_page(Some(why)));
    }
    let id = state.sessions.open(Instant::now());
    let secure = if state.tls.is_some() { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_LIFETIME.as_secs());
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_of(&headers) {
        state.sessions.close(id);
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("stampede_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    run: Option<String>,
}

async fn events(State(state): State<HttpState>, headers: HeaderMap, Query(query): Query<EventsQuery>) -> Response {
    if !admitted(&state, &headers) {
        return text(StatusCode::UNAUTHORIZED, "log in on the dashboard's page first (its form takes the token)\n");
    }
    if !state.leading.load(Ordering::SeqCst) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "not leading: a standby, or still opening its store\n");
    }
    let run_id = query.run.filter(|id| !id.is_empty());
    let asked = state.engine.ask(|reply| Event::Live { run_id, reply });
    let feed = match tokio::time::timeout(READ_TIMEOUT, asked).await {
        Ok(Ok(Ok(feed))) => feed,
        Ok(Ok(Err(ControlError::NotFound(id)))) => {
            return text(StatusCode::NOT_FOUND, format!("no run with id `{id}`\n"));
        }
        Ok(Ok(Err(error))) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")),
        _ => return text(StatusCode::SERVICE_UNAVAILABLE, "the engine did not answer\n"),
    };
    let stream = tokio_stream::wrappers::ReceiverStream::new(feed)
        .map(|e| Ok::<_, Infallible>(SseEvent::default().event(e.name).data(&*e.data)));
    let mut response = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn report_page(State(state): State<HttpState>, headers: HeaderMap, Path(run_id): Path<String>) -> Response {
    if !admitted(&state, &headers) {
        return text(StatusCode::UNAUTHORIZED, "log in on the dashboard's page first (its form takes the token)\n");
    }
    let asked = state.engine.ask(|reply| Event::GetRun { run_id: run_id.clone(), reply });
    let view = match tokio::time::timeout(READ_TIMEOUT, asked).await {
        Ok(Ok(Ok(view))) => view,
        Ok(Ok(Err(error))) => return text(StatusCode::NOT_FOUND, format!("{error}\n")),
        _ => return text(StatusCode::SERVICE_UNAVAILABLE, "the engine did not answer\n"),
    };
    let Some(json) = view.report_json else {
        return text(StatusCode::NOT_FOUND, format!("run {run_id} has no report yet: it has not ended\n"));
    };
    // Drawing a long run's page takes a moment; not on the runtime's threads.
    let made = tokio::task::spawn_blocking(move || {
        serde_json::from_str::<stampede_common::report::Report>(&json).map(|report| crate::html::page(&report))
    })
    .await;
    match made {
        Ok(Ok(html)) => page(StatusCode::OK, html),
        Ok(Err(error)) => {
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("the stored report cannot be read: {error}\n"))
        }
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    }
}
