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

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

#[derive(Default)]
struct Table {
    columns: Vec<String>,
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
        let expected_auth = credentials.map(|(user, password)| {
            use base64::Engine;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        });
        {
            let (state, stop, rejected, node) = (state.clone(), stop.clone(), rejected.clone(), node.to_string());
            let sql_requests = Arc::clone(&sql_requests);
            let (unhealthy, unhealthy_answers) = (Arc::clone(&unhealthy), Arc::clone(&unhealthy_answers));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let _ = stream.set_nodelay(true);
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
}

fn serve<S: Read + Write>(stream: S, state: &Mutex<State>, rejected: &AtomicU64, node: &Node<'_>, stop: &AtomicBool) {
    let mut reader = BufReader::new(stream);
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

/// Handles one `/_sql` request body.
fn sql(state: &Mutex<State>, body: &[u8]) -> (u16, Value) {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return error(400, 4000, "the request body must be a JSON object");
    };
    if let Some(key) = request.keys().find(|k| !["stmt", "args", "bulk_args"].contains(&k.as_str())) {
        return error(400, 4000, format!("unknown key `{key}` in the request"));
    }
    let Some(Value::String(statement)) = request.get("stmt") else {
        return error(400, 4000, "`stmt` must be a string");
    };
    if request.contains_key("args") && request.contains_key("bulk_args") {
        return error(400, 4000, "`args` and `bulk_args` cannot be used together");
    }
    let marks = statement.matches('?').count();
    let bulk = match request.get("bulk_args") {
        None => None,
        Some(Value::Array(rows)) => {
            let mut checked = Vec::with_capacity(rows.len());
            for row in rows {
                match row {
                    Value::Array(values) if values.len() == marks => checked.push(values.clone()),
                    _ => return error(400, 4000, format!("every bulk_args row must be an array of {marks} values")),
                }
            }
            Some(checked)
        }
        Some(_) => return error(400, 4000, "`bulk_args` must be an array of arrays"),
    };
    let args = match request.get("args") {
        None => Vec::new(),
        Some(Value::Array(values)) if values.len() == marks => values.clone(),
        Some(_) => return error(400, 4000, format!("`args` must be an array of {marks} values")),
    };
    if bulk.is_none() && args.len() != marks {
        return error(400, 4000, format!("the statement has {marks} parameters and none were given"));
    }
    let started = std::time::Instant::now();
    let mut state = state.lock().expect("state");
    let words: Vec<&str> = statement.split_whitespace().collect();
    let duration = || started.elapsed().as_secs_f64() * 1000.0;
    let answer = |cols: Vec<&str>, rows: Vec<Value>, rowcount: i64| {
        (200, json!({ "cols": cols, "rows": rows, "rowcount": rowcount, "duration": duration() }))
    };
    match words.as_slice() {
        ["CREATE", "TABLE", "IF", "NOT", "EXISTS", name, ..] => {
            let name = name.split('(').next().unwrap_or(name).to_string();
            let Some(open) = statement.find('(') else { return error(400, 4000, "CREATE TABLE without columns") };
            let Some(close) = statement.find(") CLUSTERED").or_else(|| statement.rfind(')')) else {
                return error(400, 4000, "CREATE TABLE without a closing parenthesis");
            };
            // Column definitions are split at commas outside parentheses.
            let mut columns = Vec::new();
            let mut depth = 0;
            let mut current = String::new();
            for c in statement[open + 1..close].chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        columns.push(current.split_whitespace().next().unwrap_or("").trim_matches('"').to_string());
                        current.clear();
                        continue;
                    }
                    _ => {}
                }
                current.push(c);
            }
            columns.push(current.split_whitespace().next().unwrap_or("").trim_matches('"').to_string());
            if !statement.contains("number_of_replicas") {
                return error(400, 4000, "the stand-in expects WITH (number_of_replicas = N)");
            }
            state.tables.entry(name).or_insert_with(|| Table { columns, ..Table::default() });
            answer(vec![], vec![], 1)
        }
        ["DROP", "TABLE", "IF", "EXISTS", name] => {
            let existed = state.tables.remove(*name).is_some();
            answer(vec![], vec![], i64::from(existed))
        }
        ["REFRESH", "TABLE", name] => match state.tables.contains_key(*name) {
            true => answer(vec![], vec![], 1),
            false => error(404, 4041, format!("Relation '{name}' unknown")),
        },
        ["INSERT", "INTO", name, ..] => {
            let State { tables, refuse_every, offered, .. } = &mut *state;
            let Some(table) = tables.get_mut(*name) else {
                return error(404, 4041, format!("Relation '{name}' unknown"));
            };
            let (Some(open), Some(close)) = (statement.find('('), statement.find(") VALUES")) else {
                return error(400, 4000, "INSERT INTO t (columns) VALUES (...) expected");
            };
            let columns: Vec<String> =
                statement[open + 1..close].split(',').map(|c| c.trim().trim_matches('"').to_string()).collect();
            if columns.len() != marks {
                return error(400, 4000, "the number of columns and of `?` marks differ");
            }
            if let Some(unknown) = columns.iter().find(|c| !table.columns.contains(c)) {
                return error(404, 4043, format!("Column {unknown} unknown"));
            }
            let mut insert = |values: &[Value]| -> bool {
                let row: BTreeMap<String, Value> = columns.iter().cloned().zip(values.iter().cloned()).collect();
                let id = row.get("id").map(Value::to_string).unwrap_or_default();
                *offered += 1;
                if *refuse_every > 0 && offered.is_multiple_of(*refuse_every) {
                    return false;
                }
                if !table.ids.insert(id) {
                    return false;
                }
                table.rows.push(row);
                true
            };
            match bulk {
                Some(rows) => {
                    let results: Vec<Value> =
                        rows.iter().map(|r| json!({ "rowcount": if insert(r) { 1 } else { -2 } })).collect();
                    (200, json!({ "cols": [], "duration": duration(), "results": results }))
                }
                None if insert(&args) => answer(vec![], vec![], 1),
                None => error(409, 4091, "A document with the same primary key exists already"),
            }
        }
        ["SELECT", "count(*)", "FROM", name] => match state.tables.get(*name) {
            Some(table) => answer(vec!["count(*)"], vec![json!([table.rows.len()])], 1),
            None => error(404, 4041, format!("Relation '{name}' unknown")),
        },
        ["SELECT", ..] => select(&state, statement, &args, answer),
        _ => error(400, 4000, format!("the stand-in cannot parse `{statement}`")),
    }
}

/// The three queries of the `query` workload, computed from the rows.
fn select(
    state: &State,
    statement: &str,
    args: &[Value],
    answer: impl Fn(Vec<&str>, Vec<Value>, i64) -> (u16, Value),
) -> (u16, Value) {
    let Some(name) = statement.split(" FROM ").nth(1).and_then(|rest| rest.split_whitespace().next()) else {
        return error(400, 4000, "SELECT without FROM");
    };
    let Some(table) = state.tables.get(name) else { return error(404, 4041, format!("Relation '{name}' unknown")) };
    let number = |row: &BTreeMap<String, Value>, column: &str| row.get(column).and_then(Value::as_f64).unwrap_or(0.0);
    if statement.contains("date_trunc('hour'") && statement.contains("GROUP BY") {
        let mut buckets: BTreeMap<i64, (u64, f64)> = BTreeMap::new();
        for row in &table.rows {
            let hour = (number(row, "timestamp") as i64 / 3_600_000) * 3_600_000;
            let entry = buckets.entry(hour).or_default();
            entry.0 += 1;
            entry.1 += number(row, "amount");
        }
        let rows = buckets.into_iter().map(|(h, (n, sum))| json!([h, n, sum])).collect();
        let count = i64::try_from(table.rows.len()).unwrap_or(i64::MAX);
        return answer(vec!["bucket", "count(*)", "sum(amount)"], rows, count);
    }
    if statement.contains("max(\"timestamp\")") && statement.contains("GROUP BY region") {
        let mut latest: BTreeMap<String, f64> = BTreeMap::new();
        for row in &table.rows {
            let region = row.get("region").and_then(Value::as_str).unwrap_or_default().to_string();
            let at = latest.entry(region).or_insert(f64::MIN);
            *at = at.max(number(row, "timestamp"));
        }
        let rows: Vec<Value> = latest.into_iter().map(|(r, t)| json!([r, t])).collect();
        let n = rows.len() as i64;
        return answer(vec!["region", "max(\"timestamp\")"], rows, n);
    }
    if statement.contains("WHERE user_id = ?") && statement.contains("LIMIT 100") {
        let user = args.first().and_then(Value::as_f64).unwrap_or(-1.0);
        let mut rows: Vec<&BTreeMap<String, Value>> =
            table.rows.iter().filter(|r| number(r, "user_id") == user).collect();
        rows.sort_by(|a, b| number(b, "timestamp").total_cmp(&number(a, "timestamp")));
        let rows: Vec<Value> = rows.iter().take(100).map(|r| json!([r["id"], r["amount"]])).collect();
        let n = rows.len() as i64;
        return answer(vec!["id", "amount"], rows, n);
    }
    error(400, 4000, format!("the stand-in cannot run `{statement}`"))
}
