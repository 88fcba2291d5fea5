//! Several hosts on one machine: a `Lab` is a Linux bridge with one network
//! namespace per host, each with its own address on a private /24, so that
//! real `stampede` processes (coordinator, agents), load balancers and
//! servers talk over real TCP between distinct addresses. Everything is
//! removed when the lab is dropped; leftovers of a crashed test process are
//! removed by the next lab.
//!
//! Making namespaces needs root. Without it `Lab::new` returns `None` after
//! printing why, so that the test can skip, unless `STAMPEDE_REQUIRE_NETNS=1`
//! is set (CI sets it): then it fails instead.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Process;

/// Each lab of a test process gets its own subnet 10.213.<n>.0/24.
static LABS: AtomicU32 = AtomicU32::new(1);

fn ip(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

fn must(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

pub struct Lab {
    /// Third octet of the lab's subnet.
    pub subnet: u32,
    tag: String,
    bridge: String,
    namespaces: Vec<String>,
}

/// One host of a lab: a namespace with one address.
pub struct Host {
    pub name: String,
    pub namespace: String,
    pub address: String,
    /// The host's port on the bridge (the outer end of its veth pair).
    port: String,
}

impl Lab {
    /// A new lab, or `None` (with the reason on stderr) when namespaces
    /// cannot be made and `STAMPEDE_REQUIRE_NETNS` is not `1`.
    pub fn new() -> Option<Self> {
        let required = std::env::var("STAMPEDE_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        let problem = if !crate::running_as_root() {
            Some("network namespaces need root".to_string())
        } else if crate::which("ip").is_none() {
            Some("the `ip` command is missing (apt-get install iproute2)".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            assert!(!required, "STAMPEDE_REQUIRE_NETNS=1 but {problem}");
            eprintln!("SKIPPED: {problem}; run as root, or set STAMPEDE_REQUIRE_NETNS=1 to make this a failure");
            return None;
        }
        remove_leftovers();
        let subnet = LABS.fetch_add(1, Ordering::Relaxed);
        assert!(subnet < 250, "too many labs in one test process");
        let tag = format!("{:06x}{subnet:02x}", std::process::id());
        let bridge = format!("sb{tag}");
        must(&["link", "add", &bridge, "type", "bridge"]);
        let lab = Self { subnet, tag, bridge, namespaces: Vec::new() };
        must(&["addr", "add", &format!("10.213.{subnet}.1/24"), "dev", &lab.bridge]);
        must(&["link", "set", &lab.bridge, "up"]);
        Some(lab)
    }

    /// Adds a host named `name` with the next address of the subnet.
    pub fn host(&mut self, name: &str) -> Host {
        let index = self.namespaces.len() + 2;
        let namespace = format!("stm-{}-{name}", self.tag);
        let outside = format!("sv{}{index:02x}", self.tag);
        let inside = format!("sp{}{index:02x}", self.tag);
        let address = format!("10.213.{}.{index}", self.subnet);
        must(&["netns", "add", &namespace]);
        self.namespaces.push(namespace.clone());
        must(&["link", "add", &outside, "type", "veth", "peer", "name", &inside]);
        must(&["link", "set", &outside, "master", &self.bridge]);
        must(&["link", "set", &outside, "up"]);
        must(&["link", "set", &inside, "netns", &namespace]);
        must(&["-n", &namespace, "link", "set", &inside, "name", "eth0"]);
        must(&["-n", &namespace, "addr", "add", &format!("{address}/24"), "dev", "eth0"]);
        must(&["-n", &namespace, "link", "set", "eth0", "up"]);
        must(&["-n", &namespace, "link", "set", "lo", "up"]);
        Host { name: name.to_string(), namespace, address, port: outside }
    }
}

impl Host {
    /// Cuts the host off the network (its bridge port goes down): packets
    /// to and from it are lost, as behind a failed switch port, while
    /// traffic inside the host goes on.
    pub fn cut(&self) {
        must(&["link", "set", &self.port, "down"]);
    }

    /// Reconnects a host cut off by [`Host::cut`].
    pub fn restore(&self) {
        must(&["link", "set", &self.port, "up"]);
    }

    /// A command that runs `program` inside this host's namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace]).arg(program);
        command
    }

    /// Starts any program inside the namespace (killed when dropped).
    pub fn spawn(&self, name: &str, program: &str, args: &[&str]) -> Process {
        let mut command = self.command(program);
        command.args(args);
        Process::spawn(name, command)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends inside it and so
        // their peers on the bridge.
        for namespace in &self.namespaces {
            let _ = ip(&["netns", "del", namespace]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// Removes namespaces and bridges of test processes that are gone.
fn remove_leftovers() {
    let alive = |hex: &str| {
        u32::from_str_radix(hex, 16).is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if let Some(rest) = name.strip_prefix("stm-")
                && rest.len() >= 6
                && !alive(&rest[..6])
            {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show", "type", "bridge"]) {
        for name in list.lines().filter_map(|l| l.split(": ").nth(1)) {
            if let Some(rest) = name.strip_prefix("sb")
                && rest.len() == 8
                && !alive(&rest[..6])
            {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}
