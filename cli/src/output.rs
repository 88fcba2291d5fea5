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
                "[{:>4}/{}s] {}{:>10.0} ops/s{}  p99 {:>8}  errors {}  agents {}{}",
                p.elapsed_s,
                p.duration_s,
                if p.warmup { "warm-up " } else { "" },
                p.throughput,
                // The average is over measured seconds: none during warm-up.
                if p.warmup { String::new() } else { format!(" (avg {:.0})", p.average_throughput) },
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

/// Prints a text report on stdout: verdicts and failing thresholds in
/// colour when stdout is a terminal and `NO_COLOR` is not set.
pub fn print_report(text: &str) {
    let coloured = std::io::stdout().is_terminal() && crate::dashboard::colour_wanted();
    let mut stdout = std::io::stdout().lock();
    let _ = if coloured { stdout.write_all(colourize(text).as_bytes()) } else { stdout.write_all(text.as_bytes()) };
    let _ = stdout.flush();
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// The text report with ANSI colours: the run's verdict, each threshold's
/// PASS or FAIL, the distribution verdict and the warnings beneath the
/// verdict line.
pub fn colourize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let (body, newline) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
        out.push_str(&colour_line(index, body));
        out.push_str(newline);
    }
    out
}

fn verdict_colour(word: &str) -> Option<&'static str> {
    match word {
        "PASSED" | "PASS" | "BALANCED" => Some(GREEN),
        "FAILED" | "FAIL" | "ERROR" | "ABORTED" | "UNBALANCED" => Some(RED),
        _ => None,
    }
}

fn colour_line(index: usize, line: &str) -> String {
    // The first line ends in the verdict; a distribution section's header
    // ends in its own.
    let last_word = line.rsplit(' ').next().unwrap_or("");
    if (index == 0 || line.starts_with("distribution ")) && verdict_colour(last_word).is_some() {
        let head = &line[..line.len() - last_word.len()];
        return format!("{head}{}{last_word}{RESET}", verdict_colour(last_word).unwrap_or(RESET));
    }
    // A threshold: `  PASS  expr  observed ...`; a failing one is red as a whole.
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("FAIL ") {
        return format!("{}{RED}FAIL {rest}{RESET}", &line[..line.len() - trimmed.len()]);
    }
    if let Some(rest) = trimmed.strip_prefix("PASS ") {
        return format!("{}{GREEN}PASS{RESET} {rest}", &line[..line.len() - trimmed.len()]);
    }
    if line.starts_with("  reason:") {
        return format!("{RED}{line}{RESET}");
    }
    if line.starts_with("  generator-saturated:") {
        return format!("{YELLOW}{line}{RESET}");
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_failing_thresholds_are_coloured_and_the_rest_is_not() {
        let text = "run r \"q\": FAILED\n  generator-saturated: x\nop  count\n\
                    distribution over nodes (expected uniform): UNBALANCED\nthresholds:\n  \
                    PASS  p99 < 50ms  observed 1ms\n  FAIL  error_rate < 1%  observed 5%\n";
        let coloured = colourize(text);
        assert!(coloured.starts_with(&format!("run r \"q\": {RED}FAILED{RESET}\n")), "{coloured}");
        assert!(coloured.contains(&format!("{YELLOW}  generator-saturated: x{RESET}\n")));
        assert!(coloured.contains("\nop  count\n"));
        assert!(coloured.contains(&format!("(expected uniform): {RED}UNBALANCED{RESET}\n")));
        assert!(coloured.contains(&format!("  {GREEN}PASS{RESET}  p99 < 50ms  observed 1ms\n")));
        assert!(coloured.contains(&format!("  {RED}FAIL  error_rate < 1%  observed 5%{RESET}\n")));
        // Without the escape codes it is the same text.
        let plain = coloured.replace(GREEN, "").replace(RED, "").replace(YELLOW, "").replace(RESET, "");
        assert_eq!(plain, text);
    }
}
