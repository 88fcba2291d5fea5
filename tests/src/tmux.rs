//! A real terminal for terminal-UI tests: a tmux server of its own (its own
//! socket, so the user's sessions are never touched) running a plain bash,
//! driven with `send-keys` and read with `capture-pane`. The server is
//! killed when the handle drops.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

static SESSIONS: AtomicU32 = AtomicU32::new(0);

impl Tmux {
    /// A `width` x `height` terminal with bash in `dir`, with `stampede`'s
    /// folder first on its PATH and `env` set.
    pub fn start(width: u16, height: u16, dir: &Path, env: &[(&str, &str)]) -> Self {
        let socket = format!("stampede-test-{}-{}", std::process::id(), SESSIONS.fetch_add(1, Ordering::SeqCst));
        let bin_dir = crate::stampede_bin().parent().expect("bin dir").display().to_string();
        let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
        let mut command = Command::new("tmux");
        command
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-s", "t"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .args(["-c", &dir.display().to_string()])
            // The shell's environment through env(1): tmux gives a session
            // the server's environment, whatever `-e` says of PATH.
            .args(["env", &format!("PATH={path}"), "PS1=$ ", "TERM=xterm-256color"]);
        for (name, value) in env {
            command.arg(format!("{name}={value}"));
        }
        command.args(["bash", "--norc", "--noprofile"]);
        let status = command.status().expect("tmux runs (deploy/test.sh installs it)");
        assert!(status.success(), "tmux did not start a session");
        let tmux = Self { socket };
        // A large history, so a whole report can be read back.
        tmux.tmux(&["set-option", "-g", "history-limit", "10000"]);
        tmux.wait_for("the shell's prompt", Duration::from_secs(10), |screen| screen.contains('$'));
        tmux
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux").args(["-L", &self.socket]).args(args).output().expect("tmux runs");
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `text` and presses Enter.
    pub fn run(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
        self.key("Enter");
    }

    /// Presses one key, in tmux's names: `q`, `Enter`, `C-c`.
    pub fn key(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "t", key]);
    }

    /// What the screen shows now.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    /// The screen with its colours (SGR escape codes).
    pub fn screen_with_colours(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-t", "t"])
    }

    /// The screen and all the history above it.
    pub fn history(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "t"])
    }

    /// Whether the program in the terminal is on the alternate screen.
    pub fn alternate_screen(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", "t", "#{alternate_on}"]).trim() == "1"
    }

    /// Waits until `ready` holds for the screen; its text.
    pub fn wait_for(&self, what: &str, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "waited {timeout:?} for {what}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the whole history holds `needle`; the history.
    pub fn wait_for_history(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let history = self.history();
            if history.contains(needle) {
                return history;
            }
            assert!(Instant::now() < deadline, "waited {timeout:?} for `{needle}`; the terminal:\n{history}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The terminal's settings as `stty -a` prints them, run in its shell
    /// (so it shows what a program left behind).
    pub fn stty(&self) -> String {
        let marker = format!("stty-{}", SESSIONS.fetch_add(1, Ordering::SeqCst));
        self.run(&format!("stty -a; echo {marker}-done"));
        let history = self.wait_for_history(&format!("\n{marker}-done"), Duration::from_secs(10));
        let start = history.rfind("speed ").unwrap_or(0);
        history[start..].to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}
