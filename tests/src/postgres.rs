//! Throwaway PostgreSQL servers for the tests, from Debian's packages or
//! from a copy of them with the TimescaleDB stand-in extension
//! ([`crate::timescale_standin`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, netns, running_as_root, which};

/// A PostgreSQL binary: from the newest `/usr/lib/postgresql/N/bin` (where
/// Debian's packages put them), else from PATH.
pub fn postgres_program(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok).map(|e| e.path().join("bin").join(name)).filter(|p| p.is_file()).collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().or_else(|| which(name)).unwrap_or_else(|| {
        panic!("PostgreSQL's {name} is not installed; deploy/test.sh installs it (apt-get install postgresql-15)")
    })
}

/// Runs a PostgreSQL program (from `bin`, else the system's), as user
/// `postgres` when the tests run as root (PostgreSQL refuses to run as
/// root).
fn postgres_command(bin: Option<&Path>, name: &str) -> Command {
    let program = bin.map_or_else(|| postgres_program(name), |bin| bin.join(name));
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A throwaway PostgreSQL server on a free loopback port (trust
/// authentication, user `postgres`), shut down and deleted on drop.
pub struct Postgres {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Postgres {
    pub fn start() -> Self {
        Self::start_in(None, free_port())
    }

    /// Starts the server inside a lab host's network namespace (listening
    /// on its loopback at `port`), or here when `host` is `None`.
    pub fn start_in(host: Option<&netns::Host>, port: u16) -> Self {
        Self::launch(host, port, None)
    }

    /// Starts a server from the programs in `bin` (a copy of an
    /// installation, such as [`crate::timescale_standin::Installation`]'s).
    pub fn start_from(bin: &Path) -> Self {
        Self::launch(None, free_port(), Some(bin))
    }

    fn launch(host: Option<&netns::Host>, port: u16, bin: Option<&Path>) -> Self {
        let inside = |command: Command| -> Command {
            let Some(host) = host else { return command };
            let mut wrapped = host.command(command.get_program());
            wrapped.args(command.get_args());
            wrapped
        };
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("stampede-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("postgres directory");
        if running_as_root() {
            let status = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status().expect("chown");
            assert!(status.success(), "chown postgres {}", dir.display());
        }
        let data = dir.join("data");
        let output = postgres_command(bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        let mut server = postgres_command(bin, "postgres");
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"]);
        let child = inside(server).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start postgres");
        let server = Self { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut check = Command::new(postgres_program("pg_isready"));
            check.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-q"]);
            let ready = inside(check).status().is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not accept connections within 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL with psql and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let output = Command::new(postgres_program("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-Atqc", sql])
            .output()
            .expect("run psql");
        assert!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The child is `runuser` (or `ip netns exec`), which does not pass
        // signals on: signal the postmaster itself, whose pid is the first
        // line of postmaster.pid. Fast shutdown (SIGINT) releases its
        // shared memory.
        let postmaster = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
        if let Some(pid) = postmaster {
            let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
