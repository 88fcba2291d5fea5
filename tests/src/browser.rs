//! A real browser for the page tests: Debian's `chromium` in headless mode,
//! driven over the Chrome DevTools Protocol (its WebSocket). Every
//! exception, console error and failed request the page causes is kept,
//! and so is every request for anything but the page itself, so a test
//! can assert that nothing went wrong and nothing left the page.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A headless chromium with one page; killed on drop.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// What went wrong on the page: exceptions, console errors, failed or
    /// outside requests.
    problems: Vec<String>,
    loaded: bool,
    /// Origins the page may request (a dashboard's own server).
    allowed: Vec<String>,
}

fn chromium() -> &'static str {
    "chromium"
}

/// GET on the DevTools HTTP endpoint.
fn devtools_get(port: u16, path: &str) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the DevTools endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").expect("request");
    // The body is as long as Content-Length says (chromium may keep the
    // connection open).
    let mut response = Vec::new();
    let mut buffer = [0u8; 8192];
    let body = loop {
        let n = stream.read(&mut buffer).expect("the DevTools endpoint answers");
        response.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&response).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok());
            if n == 0 || length.is_some_and(|l| body.len() >= l) {
                break body.to_string();
            }
        }
        assert!(n > 0, "DevTools closed the connection early: {text}");
    };
    let response = String::from_utf8_lossy(&response);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("DevTools answered {path} with {response}: {e}"))
}

impl Browser {
    /// Starts chromium with a fresh profile and a window of `width` x `height`.
    pub fn start(width: u32, height: u32) -> Self {
        let profile = tempfile::tempdir().expect("profile directory");
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium (Debian's `chromium` package; deploy/test.sh installs it)");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].to_string());
                }
            }
        });
        let browser_url = rx.recv_timeout(Duration::from_secs(60)).expect("chromium printed its DevTools address");
        let port: u16 = browser_url
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("DevTools port");
        let targets = devtools_get(port, "/json/list");
        let page = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (socket, _) = tungstenite::connect(page.as_str()).expect("the page's DevTools socket");
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            // Reads return now and then so that waits can check their deadline.
            stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        }
        let mut browser = Self {
            child,
            _profile: profile,
            socket,
            next_id: 0,
            problems: Vec::new(),
            loaded: false,
            allowed: Vec::new(),
        };
        for domain in ["Page", "Runtime", "Network", "Log"] {
            browser.call(&format!("{domain}.enable"), json!({}));
        }
        browser
    }

    /// Sends a command and waits for its result (events seen meanwhile are
    /// recorded).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::text(message)).expect("send to chromium");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "chromium did not answer {method}");
            let reply = self.read();
            if reply["id"].as_u64() == Some(id) {
                if let Some(error) = reply.get("error") {
                    panic!("{method} failed: {error}");
                }
                return reply["result"].clone();
            }
        }
    }

    /// The next message from chromium, or null when none came for a while.
    fn read(&mut self) -> Value {
        let message = match self.socket.read() {
            Ok(message) => message,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                return Value::Null;
            }
            Err(e) => panic!("lost chromium's DevTools socket: {e}"),
        };
        let Message::Text(text) = message else { return Value::Null };
        let value: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
        self.observe(&value);
        value
    }

    fn observe(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Page.loadEventFired" => self.loaded = true,
            "Runtime.exceptionThrown" => {
                let details = &params["exceptionDetails"];
                let text = details["exception"]["description"].as_str().or(details["text"].as_str());
                self.problems.push(format!("exception: {}", text.unwrap_or_default()));
            }
            "Runtime.consoleAPICalled" if params["type"] == "error" || params["type"] == "warning" => {
                self.problems.push(format!("console {}: {}", params["type"], params["args"]));
            }
            "Log.entryAdded" if params["entry"]["level"] == "error" => {
                self.problems.push(format!("log: {}", params["entry"]["text"]));
            }
            // A request the page itself ended (an EventSource closed) is no failure.
            "Network.loadingFailed" if params["canceled"] == true => {}
            "Network.loadingFailed" => self.problems.push(format!("request failed: {params}")),
            "Network.requestWillBeSent" => {
                let url = params["request"]["url"].as_str().unwrap_or_default();
                if !url.starts_with("file://") && !self.allowed.iter().any(|origin| url.starts_with(origin.as_str())) {
                    self.problems.push(format!("request for {url}"));
                }
            }
            _ => {}
        }
    }

    /// Lets the page request `origin` (`http://host:port/`), its own server.
    pub fn allow(&mut self, origin: &str) {
        self.allowed.push(origin.to_string());
    }

    /// Opens `url` and waits for its load event.
    pub fn open(&mut self, url: &str) {
        self.loaded = false;
        self.call("Page.navigate", json!({"url": url}));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.loaded {
            assert!(Instant::now() < deadline, "{url} did not load");
            self.read();
        }
    }

    /// Submits the page's form `form_id` as a user's click would, and waits
    /// for the page it leads to.
    pub fn submit(&mut self, form_id: &str) {
        self.loaded = false;
        self.eval(&format!("setTimeout(() => document.getElementById('{form_id}').requestSubmit(), 0); true"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.loaded {
            assert!(Instant::now() < deadline, "the page after form {form_id} did not load");
            self.read();
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns
    /// its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}));
        if let Some(details) = result.get("exceptionDetails") {
            panic!("{expression} threw: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.eval(expression) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "{expression} did not become true; problems: {:?}", self.problems);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A left-button drag from (x1, y) to (x2, y), in CSS pixels of the
    /// viewport, as a user's mouse would make it.
    pub fn drag(&mut self, (x1, y): (f64, f64), x2: f64) {
        let mouse = |kind: &str, x: f64, buttons: u32| json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1});
        self.call("Input.dispatchMouseEvent", json!({"type": "mouseMoved", "x": x1, "y": y}));
        self.call("Input.dispatchMouseEvent", mouse("mousePressed", x1, 1));
        for step in 1..=10 {
            let x = x1 + (x2 - x1) * f64::from(step) / 10.0;
            self.call("Input.dispatchMouseEvent", mouse("mouseMoved", x, 1));
        }
        self.call("Input.dispatchMouseEvent", mouse("mouseReleased", x2, 0));
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().expect("data")).expect("PNG")
    }

    /// Every `data-figure` cell within `selector`: figure -> its
    /// `data-value`, read as JSON (as text when it is not JSON).
    pub fn figures(&mut self, selector: &str) -> std::collections::BTreeMap<String, Value> {
        let script = format!(
            "Object.fromEntries([...document.querySelectorAll('{selector} [data-figure]')]\
             .map(c => [c.dataset.figure, c.dataset.value]))"
        );
        let cells = self.eval(&script);
        cells
            .as_object()
            .expect("figures")
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().unwrap_or_default();
                (k.clone(), serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
            })
            .collect()
    }

    /// Everything that went wrong on the page so far.
    pub fn problems(&mut self) -> Vec<String> {
        // Take events already sent without blocking on new ones.
        self.eval("0");
        self.problems.clone()
    }
}

/// A figure of a page as a number (true and false as 1 and 0).
pub fn figure(cells: &std::collections::BTreeMap<String, Value>, name: &str) -> f64 {
    let value = cells.get(name).unwrap_or_else(|| panic!("the page has no figure {name}: {:?}", cells.keys()));
    number(value)
}

pub fn number(value: &Value) -> f64 {
    match value {
        Value::Bool(b) => f64::from(u8::from(*b)),
        other => other.as_f64().unwrap_or_else(|| panic!("{other} is not a number")),
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
