//! The live progress line on stderr and the end of a watched run.

use std::io::{IsTerminal, Write};

use stampede_common::units::format_micros;
use stampede_proto::v1 as pb;

/// Prints progress updates: one line per second, rewritten in place on a
/// terminal.
pub struct ProgressLine {
    terminal: bool,
    quiet: bool,
    dirty: bool,
}

impl ProgressLine {
    pub fn new(quiet: bool) -> Self {
        Self { terminal: std::io::stderr().is_terminal(), quiet, dirty: false }
    }

    pub fn update(&mut self, update: &pb::WatchRunResponse) {
        if self.quiet {
            return;
        }
        let line = match &update.progress {
            Some(p) => format!(
                "[{:>4}/{}s] {}{:>10.0} ops/s  p99 {:>8}  errors {}  agents {}{}",
                p.elapsed_s,
                p.duration_s,
                if p.warmup { "warm-up " } else { "" },
                p.throughput,
                format_micros(p.p99_us as f64),
                p.errors,
                p.agents,
                match p.saturated_agents {
                    0 => String::new(),
                    n => format!("  generator-saturated on {n}"),
                }
            ),
            None if !update.message.is_empty() => format!("{}: {}", update.state, update.message),
            None => return,
        };
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r\x1b[2K{line}");
            self.dirty = true;
        } else {
            let _ = writeln!(stderr, "{line}");
        }
        let _ = stderr.flush();
    }

    pub fn finish(&mut self) {
        if self.dirty {
            eprintln!();
            self.dirty = false;
        }
    }
}
