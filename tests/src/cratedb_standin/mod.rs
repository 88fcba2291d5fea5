//! A STAND-IN for CrateDB, which cannot be installed on the test machines.
//! It is not CrateDB: it keeps rows in memory and understands only the
//! statements Stampede sends. What it does follow strictly is CrateDB's
//! documented HTTP interface, and it rejects anything else:
//!
//! - `GET /` answers `{"ok": true, "status": 200, "name": <node>, ...}`;
//! - `POST /_sql` takes a JSON object with a string `stmt` and at most one
//!   of `args` (an array) or `bulk_args` (an array of arrays), nothing else;
//!   the number of values in each row must equal the number of `?` marks;
//! - answers carry `cols`, `rows`, `rowcount` and `duration`; bulk answers
//!   `cols`, `duration` and `results` with one `rowcount` per row, `-2` for a
//!   row that failed (here: a duplicate primary key);
//! - errors are `{"error": {"message", "code"}}` with CrateDB's codes:
//!   4000 for a statement it cannot parse, 4041 for an unknown table, 4011
//!   for missing or wrong credentials (when it was started with some).
//!
//! [`CrateStandIn::add_node`] starts another node of the same cluster: it
//! shares the tables and answers `GET /` with its own name, so that a test
//! can put an HTTP balancer in front of several nodes.
//!
//! [`CrateStandIn::start_tls`] serves the same over https with a
//! certificate made for the test; its PEM is in `certificate_pem`, for the
//! client to trust (for example through `SSL_CERT_FILE`).
//!
//! Connections stay open for as many requests as the client sends, as
//! CrateDB's do. Each node counts what it served in [`Served`] (inserts,
//! `GET /` requests, TCP connections, connections that carried inserts):
//! the node's own account that tests compare reports with. `sql.rs` holds
//! the statements.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

mod sql;
use sql::sql;

#[derive(Default)]
struct Table {
    columns: Vec<String>,
    /// The type of each column as `information_schema.columns` names it.
    types: Vec<String>,
    /// Keys seen in each object column's values: CrateDB adds a dynamic
    /// object's keys as sub-columns (`metadata['browser']`).
    subcolumns: BTreeMap<String, std::collections::BTreeSet<String>>,
    shards: u64,
    replicas: String,
    ids: HashSet<String>,
    /// Rows as column -> value.
    rows: Vec<BTreeMap<String, Value>>,
}

#[derive(Default)]
struct State {
    tables: BTreeMap<String, Table>,
    /// Refuse every n-th inserted row (0: never), as CrateDB refuses a row
    /// that breaks a constraint; see [`CrateStandIn::refuse_every_nth_row`].
    refuse_every: u64,
    offered: u64,
    /// `/_sql` requests answered with an error, by CrateDB error code.
    errors_by_code: BTreeMap<u64, u64>,
}

/// A table's (column, type) list, shards and replicas.
pub type TableShape = (Vec<(String, String)>, u64, String);

/// One node's own account of what it served.
#[derive(Debug, Default)]
pub struct Served {
    /// TCP connections it accepted.
    pub connections: AtomicU64,
    /// `/_sql` INSERT requests it answered (whatever the answer).
    pub inserts: AtomicU64,
    /// Connections that carried at least one INSERT.
    pub insert_connections: AtomicU64,
    /// `GET /` requests it answered.
    pub probes: AtomicU64,
    /// While above 0, the next INSERT waits [`STALL`] before it is applied
    /// and answered (and this drops by one): a node that stalls.
    pub stall_inserts: AtomicU64,
}

/// How long a stalled INSERT waits: longer than the client's 5 s timeout.
pub const STALL: std::time::Duration = std::time::Duration::from_secs(6);

impl Served {
    pub fn inserts(&self) -> u64 {
        self.inserts.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn insert_connections(&self) -> u64 {
        self.insert_connections.load(Ordering::Relaxed)
    }

    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }
}

/// A running stand-in; it stops accepting when dropped.
pub struct CrateStandIn {
    pub address: String,
    pub node: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    /// Requests refused as malformed (for tests of the stand-in itself).
    pub rejected: Arc<AtomicU64>,
    /// The self-signed certificate (PEM) when it serves https.
    pub certificate_pem: Option<String>,
    /// `POST /_sql` requests this node answered.
    pub sql_requests: Arc<AtomicU64>,
    /// While set, `GET /` answers 503 and `"ok": false`, as an unhealthy
    /// CrateDB node does.
    pub unhealthy: Arc<AtomicBool>,
    /// `GET /` requests answered so.
    pub unhealthy_answers: Arc<AtomicU64>,
    /// What this node served, as its own logs would count it.
    pub served: Arc<Served>,
    credentials: Option<(String, String)>,
}

impl CrateStandIn {
    /// Starts on a free loopback port; `credentials` turns on basic auth.
    pub fn start(node: &str, credentials: Option<(&str, &str)>) -> Self {
        Self::start_at("127.0.0.1:0", node, credentials)
    }

    /// Starts on `address` (to take a stopped stand-in's place).
    pub fn start_at(address: &str, node: &str, credentials: Option<(&str, &str)>) -> Self {
        Self::launch(address, node, credentials, None, Arc::default())
    }

    /// Starts another node of this one's cluster on a free loopback port:
    /// same tables and credentials, its own name and request counter.
    pub fn add_node(&self, node: &str) -> Self {
        let credentials = self.credentials.as_ref().map(|(user, password)| (user.as_str(), password.as_str()));
        Self::launch("127.0.0.1:0", node, credentials, None, Arc::clone(&self.state))
    }

    /// Starts on a free loopback port serving https only, with a fresh
    /// self-signed certificate for `localhost` and `127.0.0.1`.
    pub fn start_tls(node: &str, credentials: Option<(&str, &str)>) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("make a certificate");
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).expect("key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("server certificate");
        let mut standin = Self::launch("127.0.0.1:0", node, credentials, Some(Arc::new(config)), Arc::default());
        standin.certificate_pem = Some(certified.cert.pem());
        standin
    }

    fn launch(
        address: &str,
        node: &str,
        credentials: Option<(&str, &str)>,
        tls: Option<Arc<rustls::ServerConfig>>,
        state: Arc<Mutex<State>>,
    ) -> Self {
        // A stopped stand-in's listener closes shortly after it is dropped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(address) {
                Ok(listener) => break listener,
                Err(e) if std::time::Instant::now() > deadline => panic!("bind the stand-in on {address}: {e}"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        let address = listener.local_addr().expect("address").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let rejected = Arc::new(AtomicU64::new(0));
        let sql_requests = Arc::new(AtomicU64::new(0));
        let unhealthy = Arc::new(AtomicBool::new(false));
        let unhealthy_answers = Arc::new(AtomicU64::new(0));
        let served = Arc::new(Served::default());
        let expected_auth = credentials.map(|(user, password)| {
            use base64::Engine;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        });
        {
            let (state, stop, rejected, node) = (state.clone(), stop.clone(), rejected.clone(), node.to_string());
            let sql_requests = Arc::clone(&sql_requests);
            let (unhealthy, unhealthy_answers) = (Arc::clone(&unhealthy), Arc::clone(&unhealthy_answers));
            let served = Arc::clone(&served);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    served.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    let served = Arc::clone(&served);
                    let (state, rejected, node, auth) =
                        (state.clone(), rejected.clone(), node.clone(), expected_auth.clone());
                    let (stop, tls, sql_requests) = (stop.clone(), tls.clone(), sql_requests.clone());
                    let (unhealthy, unhealthy_answers) = (unhealthy.clone(), unhealthy_answers.clone());
                    std::thread::spawn(move || {
                        let node = Node {
                            name: &node,
                            auth: auth.as_deref(),
                            sql_requests: &sql_requests,
                            unhealthy: &unhealthy,
                            unhealthy_answers: &unhealthy_answers,
                            served: &served,
                        };
                        match tls {
                            None => serve(stream, &state, &rejected, &node, &stop),
                            Some(config) => {
                                let Ok(session) = rustls::ServerConnection::new(config) else { return };
                                let stream = rustls::StreamOwned::new(session, stream);
                                serve(stream, &state, &rejected, &node, &stop);
                            }
                        }
                    });
                }
            });
        }
        let credentials = credentials.map(|(user, password)| (user.to_string(), password.to_string()));
        Self {
            address,
            node: node.to_string(),
            state,
            stop,
            rejected,
            certificate_pem: None,
            sql_requests,
            unhealthy,
            unhealthy_answers,
            served,
            credentials,
        }
    }

    /// Rows in a table (what `SELECT count(*)` would say after a refresh).
    pub fn row_count(&self, table: &str) -> Option<usize> {
        self.state.lock().expect("state").tables.get(table).map(|t| t.rows.len())
    }

    /// From now on, every `n`-th row offered to an INSERT is refused
    /// (`rowcount: -2` in a bulk answer), like a row CrateDB rejects.
    pub fn refuse_every_nth_row(&self, n: u64) {
        self.state.lock().expect("state").refuse_every = n;
    }

    /// `/_sql` requests the cluster answered with error `code` (4043: an
    /// unknown column), as CrateDB's own logs would count them.
    pub fn errors_answered(&self, code: u64) -> u64 {
        self.state.lock().expect("state").errors_by_code.get(&code).copied().unwrap_or(0)
    }

    /// Drops a table, as another client's `DROP TABLE` would.
    pub fn drop_table(&self, table: &str) {
        self.state.lock().expect("state").tables.remove(table);
    }

    /// A function that drops `table` when called, for another thread.
    pub fn dropper(&self, table: &str) -> impl FnOnce() + Send + 'static {
        let (state, table) = (Arc::clone(&self.state), table.to_string());
        move || {
            state.lock().expect("state").tables.remove(&table);
        }
    }

    /// The table's columns with their types, shards and replicas, as
    /// `information_schema` would say.
    pub fn table_shape(&self, table: &str) -> Option<TableShape> {
        let state = self.state.lock().expect("state");
        let t = state.tables.get(table)?;
        Some((t.columns.iter().cloned().zip(t.types.iter().cloned()).collect(), t.shards, t.replicas.clone()))
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.state.lock().expect("state").tables.contains_key(table)
    }

    /// A value of one column for every row.
    pub fn column(&self, table: &str, column: &str) -> Vec<Value> {
        let state = self.state.lock().expect("state");
        state.tables.get(table).map(|t| t.rows.iter().map(|r| r[column].clone()).collect()).unwrap_or_default()
    }
}

impl Drop for CrateStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(&self.address);
    }
}

struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request<S: Read>(reader: &mut BufReader<S>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    if length > 64 * 1024 * 1024 {
        return None;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, headers, body })
}

fn respond(stream: &mut impl Write, status: u16, body: &Value) -> std::io::Result<()> {
    let text = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        503 => "Service Unavailable",
        _ => "Error",
    };
    // One write: several small ones would wait on Nagle's algorithm.
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        text.len()
    );
    stream.write_all([head.as_bytes(), text.as_bytes()].concat().as_slice())?;
    stream.flush()
}

fn error(status: u16, code: u32, message: impl Into<String>) -> (u16, Value) {
    (status, json!({ "error": { "message": message.into(), "code": code } }))
}

/// What one node of the stand-in knows of itself.
struct Node<'a> {
    name: &'a str,
    /// The expected `Authorization` header, when credentials are required.
    auth: Option<&'a str>,
    sql_requests: &'a AtomicU64,
    unhealthy: &'a AtomicBool,
    unhealthy_answers: &'a AtomicU64,
    served: &'a Served,
}

/// Whether a `/_sql` body's `stmt` starts with `word`.
fn statement_is(body: &[u8], word: &str) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("stmt").and_then(Value::as_str).map(|s| s.trim_start().starts_with(word)))
        .unwrap_or(false)
}

fn serve<S: Read + Write>(stream: S, state: &Mutex<State>, rejected: &AtomicU64, node: &Node<'_>, stop: &AtomicBool) {
    let mut reader = BufReader::new(stream);
    let mut carried_insert = false;
    while let Some(request) = read_request(&mut reader) {
        if stop.load(Ordering::Relaxed) {
            // A stopped stand-in closes its connections, as a dead node would.
            return;
        }
        let authorized =
            node.auth.is_none_or(|expected| request.headers.get("authorization").map(String::as_str) == Some(expected));
        let (status, body) = if !authorized {
            error(401, 4011, "trying to access the cluster with an unknown user or a wrong password")
        } else {
            if (request.method.as_str(), request.path.as_str()) == ("GET", "/") {
                node.served.probes.fetch_add(1, Ordering::Relaxed);
            }
            match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/") if node.unhealthy.load(Ordering::Relaxed) => {
                    node.unhealthy_answers.fetch_add(1, Ordering::Relaxed);
                    (503, json!({ "ok": false, "status": 503, "name": node.name, "cluster_name": "stampede-standin" }))
                }
                ("GET", "/") => (
                    200,
                    json!({ "ok": true, "status": 200, "name": node.name, "cluster_name": "stampede-standin",
                            "version": { "number": "5.8.0-standin" } }),
                ),
                ("POST", path) if path == "/_sql" || path.starts_with("/_sql?") => {
                    node.sql_requests.fetch_add(1, Ordering::Relaxed);
                    if statement_is(&request.body, "INSERT") {
                        let stalls = &node.served.stall_inserts;
                        if stalls.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
                            std::thread::sleep(STALL);
                        }
                        node.served.inserts.fetch_add(1, Ordering::Relaxed);
                        if !carried_insert {
                            carried_insert = true;
                            node.served.insert_connections.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let is_json =
                        request.headers.get("content-type").is_some_and(|t| t.starts_with("application/json"));
                    if is_json {
                        let (status, body) = sql(state, &request.body);
                        if let Some(code) = body.pointer("/error/code").and_then(Value::as_u64) {
                            *state.lock().expect("state").errors_by_code.entry(code).or_default() += 1;
                        }
                        (status, body)
                    } else {
                        error(400, 4000, "Content-Type must be application/json")
                    }
                }
                _ => error(404, 4040, format!("no handler for {} {}", request.method, request.path)),
            }
        };
        if status == 400 {
            rejected.fetch_add(1, Ordering::Relaxed);
        }
        if respond(reader.get_mut(), status, &body).is_err() {
            return;
        }
    }
}
