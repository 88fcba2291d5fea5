//! The live progress line on stderr, the progress bars of setup and
//! teardown, and the end of a watched run.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stampede_common::units::format_micros;
use stampede_proto::v1 as pb;

/// Prints progress updates: one line per second, rewritten in place on a
/// terminal; while agents set the target up or clean it after the run, a
/// progress bar on a terminal, else a line at every tenth of the way.
pub struct ProgressLine {
    terminal: bool,
    quiet: bool,
    dirty: bool,
    /// The phase shown now and its bar (on a terminal).
    phase: Option<(String, Option<ProgressBar>)>,
    /// Without a terminal: the tenth of the phase last printed.
    printed_tenth: Option<u64>,
}

impl ProgressLine {
    pub fn new(quiet: bool) -> Self {
        Self { terminal: std::io::stderr().is_terminal(), quiet, dirty: false, phase: None, printed_tenth: None }
    }

    pub fn update(&mut self, update: &pb::WatchRunResponse) {
        if self.quiet {
            return;
        }
        if let Some(phase) = &update.phase {
            self.show_phase(phase);
            return;
        }
        self.end_phase();
        let line = match &update.progress {
            Some(p) => format!(
                "{} {}{:>10.0} ops/s{}  p99 {:>8}  errors {}{}  agents {}{}",
                how_far(p, self.terminal),
                if p.warmup { "warm-up " } else { "" },
                p.throughput,
                // The average is over measured seconds: none during warm-up.
                if p.warmup { String::new() } else { format!(" (avg {:.0})", p.average_throughput) },
                format_micros(p.p99_us as f64),
                p.errors,
                if p.top_error.is_empty() { String::new() } else { format!(" ({})", p.top_error) },
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

    fn show_phase(&mut self, phase: &pb::Phase) {
        if self.phase.as_ref().is_none_or(|(name, _)| *name != phase.name) {
            self.end_phase();
            if self.dirty {
                eprintln!();
                self.dirty = false;
            }
            let bar = self.terminal.then(|| new_bar(phase.total));
            self.phase = Some((phase.name.clone(), bar));
            self.printed_tenth = None;
        }
        let label = format!("{} on {} agent(s)", phase.name, phase.agents);
        match self.phase.as_ref().and_then(|(_, bar)| bar.as_ref()) {
            Some(bar) => {
                bar.set_message(format!("{label} ({})", phase.unit));
                if phase.total > 0 {
                    bar.set_length(phase.total);
                }
                bar.set_position(phase.done);
            }
            None => {
                let tenth = phase.done.saturating_mul(10).checked_div(phase.total).unwrap_or(0);
                if self.printed_tenth.is_none_or(|t| tenth > t) {
                    self.printed_tenth = Some(tenth);
                    match phase.total {
                        0 => eprintln!("{label}: {} {}", phase.done, phase.unit),
                        total => eprintln!("{label}: {}/{total} {}", phase.done, phase.unit),
                    }
                }
            }
        }
    }

    fn end_phase(&mut self) {
        if let Some((_, Some(bar))) = self.phase.take() {
            bar.finish();
            // The cursor stays on the bar's line; what comes next goes
            // beneath it.
            eprintln!();
        }
    }

    pub fn finish(&mut self) {
        self.end_phase();
        if self.dirty {
            eprintln!();
            self.dirty = false;
        }
    }
}

/// A bar of `total` units (a spinner when that is not known), on stderr.
fn new_bar(total: u64) -> ProgressBar {
    let colour = crate::dashboard::colour_wanted();
    let (template, spinner) = if colour {
        ("{msg} [{bar:40.cyan/blue}] {human_pos}/{human_len}, {eta} left", "{spinner:.cyan} {msg}: {human_pos}")
    } else {
        ("{msg} [{bar:40}] {human_pos}/{human_len}, {eta} left", "{spinner} {msg}: {human_pos}")
    };
    let bar = ProgressBar::with_draw_target(if total > 0 { Some(total) } else { None }, ProgressDrawTarget::stderr());
    let style = if total > 0 { ProgressStyle::with_template(template) } else { ProgressStyle::with_template(spinner) };
    if let Ok(style) = style {
        bar.set_style(style.progress_chars("=> "));
    }
    if total == 0 {
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    bar
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

/// How far the run has got: seconds of its duration, or for a
/// count-limited run the operations done of its count (with a bar on a
/// terminal).
fn how_far(p: &pb::Progress, terminal: bool) -> String {
    if p.operations_total == 0 {
        return format!("[{:>4}/{}s]", p.elapsed_s, p.duration_s);
    }
    let done = p.operations_done.min(p.operations_total);
    let fraction = done as f64 / p.operations_total as f64;
    let counted = format!(
        "{}/{} ops {:>3.0}% {}s",
        thousands(done),
        thousands(p.operations_total),
        (fraction * 100.0).floor(),
        p.elapsed_s
    );
    if terminal {
        const WIDTH: usize = 20;
        let filled = ((fraction * WIDTH as f64) as usize).min(WIDTH);
        format!("[{}{}] {counted}", "#".repeat(filled), "-".repeat(WIDTH - filled))
    } else {
        format!("[{counted}]")
    }
}

/// 1234567 as 1,234,567.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod how_far_tests {
    use super::*;

    #[test]
    fn a_count_limited_run_shows_operations_done_of_its_count() {
        let p = pb::Progress {
            elapsed_s: 3,
            duration_s: 86_400,
            operations_done: 50_002,
            operations_total: 100_003,
            ..Default::default()
        };
        assert_eq!(how_far(&p, false), "[50,002/100,003 ops  50% 3s]");
        assert_eq!(how_far(&p, true), "[##########----------] 50,002/100,003 ops  50% 3s");
        let timed = pb::Progress { elapsed_s: 3, duration_s: 10, ..Default::default() };
        assert_eq!(how_far(&timed, true), "[   3/10s]");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
    }
}
