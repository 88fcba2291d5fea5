//! Draws the terminal dashboard from a [`Model`]: progress, throughput and
//! latency charts, rates, nodes, errors, thresholds and agents.

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, Gauge, GraphType, Paragraph, Row, Table};
use stampede_common::live::{LiveLatency, LiveStatus};
use stampede_common::threshold::ThresholdResult;
use stampede_common::units::format_micros;

use super::Mode;
use super::model::{Model, Points, Prompt};

/// Colours, or none of them (`NO_COLOR`).
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub colour: bool,
}

impl Palette {
    fn fg(self, colour: Color) -> Style {
        if self.colour { Style::new().fg(colour) } else { Style::new() }
    }

    fn good(self) -> Style {
        self.fg(Color::Green)
    }

    fn bad(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    fn dim(self) -> Style {
        if self.colour { Style::new().fg(Color::DarkGray) } else { Style::new() }
    }
}

/// What the frame needs besides the model.
pub struct View<'a> {
    pub model: &'a Model,
    pub mode: Mode,
    pub paused: bool,
    pub palette: Palette,
}

pub fn frame(frame: &mut Frame<'_>, view: &View<'_>) {
    let model = view.model;
    let status = model.status.as_ref();
    let nodes = status.map_or(0, |s| s.nodes.len());
    let agents = status.map_or(0, |s| s.agents.len());
    let thresholds = status.map_or(0, |s| s.thresholds.len());
    let middle = (nodes.max(thresholds).max(7) + 2).min(12) as u16;
    let agent_rows = (agents + 3).min(12) as u16;
    let [header, gauge, charts, middle_area, agents_area, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(8),
        Constraint::Length(middle),
        Constraint::Length(agent_rows),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_line(view)), header);
    frame.render_widget(progress_gauge(view), gauge);
    let [left, right] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    throughput_chart(frame, left, view);
    latency_chart(frame, right, view);
    let [rates, nodes_area, errors, thresholds_area] =
        Layout::horizontal([Constraint::Length(30), Constraint::Min(30), Constraint::Length(30), Constraint::Min(30)])
            .areas(middle_area);
    frame.render_widget(rates_panel(status, view.palette), rates);
    frame.render_widget(nodes_panel(status, nodes_area.width, view.palette), nodes_area);
    frame.render_widget(errors_panel(status, view.palette), errors);
    frame.render_widget(thresholds_panel(status, view.palette), thresholds_area);
    agents_table(frame, agents_area, status, view.palette);
    frame.render_widget(Paragraph::new(footer_line(view)), footer);
}

fn header_line(view: &View<'_>) -> Line<'static> {
    let model = view.model;
    let name = model.status.as_ref().map_or("", |s| s.name.as_str());
    let state = if model.state.is_empty() { "connecting" } else { model.state.as_str() };
    let state_style = match state {
        "passed" => view.palette.good(),
        "failed" | "error" | "aborted" | "cancelled" => view.palette.bad(),
        _ => Style::new().add_modifier(Modifier::BOLD),
    };
    let mut spans = vec![
        Span::styled("stampede ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!("run {} ", model.run_id)),
        Span::raw(if name.is_empty() { String::new() } else { format!("({name}) ") }),
        Span::styled(state.to_string(), state_style),
    ];
    let message = model.status.as_ref().map(|s| s.message.as_str()).filter(|m| !m.is_empty());
    if let Some(message) = message.or(Some(model.message.as_str()).filter(|m| !m.is_empty())) {
        spans.push(Span::styled(format!("  {message}"), view.palette.fg(Color::Yellow)));
    }
    if model.unreadable > 0 {
        spans.push(Span::styled(format!("  ({} unreadable updates)", model.unreadable), view.palette.bad()));
    }
    Line::from(spans)
}

fn progress_gauge(view: &View<'_>) -> Gauge<'static> {
    let model = view.model;
    if let Some((label, done)) = &model.phase {
        return Gauge::default()
            .ratio(done.unwrap_or(0.0).clamp(0.0, 1.0))
            .label(label.clone())
            .gauge_style(view.palette.fg(Color::Yellow));
    }
    let (_, done) = model.progress();
    let label = model.progress_label();
    Gauge::default().ratio(done.clamp(0.0, 1.0)).label(label).gauge_style(view.palette.fg(Color::Cyan))
}

/// `12,345` operations per second (one decimal below 10).
fn rate(per_second: f64) -> String {
    if per_second < 10.0 {
        return format!("{per_second:.1}");
    }
    let whole = per_second.round() as u64;
    let digits = whole.to_string();
    let mut text = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push(',');
        }
        text.push(c);
    }
    text
}

fn mebibytes(bytes: u64) -> String {
    if bytes == 0 { "-".to_string() } else { format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0)) }
}

fn axis_labels(low: f64, high: f64, format: impl Fn(f64) -> String) -> Vec<Span<'static>> {
    vec![Span::raw(format(low)), Span::raw(format((low + high) / 2.0)), Span::raw(format(high))]
}

fn top(points: &[&Points]) -> f64 {
    let max = points.iter().flat_map(|p| p.iter()).map(|(_, y)| *y).fold(0.0, f64::max);
    if max > 0.0 { max * 1.1 } else { 1.0 }
}

fn throughput_chart(frame: &mut Frame<'_>, area: Rect, view: &View<'_>) {
    let model = view.model;
    let (ops, errors) = model.throughput();
    let (from, to) = model.time_span();
    let high = top(&[&ops]);
    let current = model.status.as_ref().map_or(0.0, |s| s.current_rate);
    let title = format!(" Throughput: {} ops/s now ", rate(current));
    let mut datasets = vec![
        Dataset::default()
            .name("ops/s")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(view.palette.fg(Color::Cyan))
            .data(&ops),
    ];
    if errors.iter().any(|(_, y)| *y > 0.0) {
        datasets.push(
            Dataset::default()
                .name("errors/s")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(view.palette.fg(Color::Red))
                .data(&errors),
        );
    }
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(title))
        .x_axis(Axis::default().bounds([from, to]).labels(axis_labels(from, to, |s| format!("{s:.0}s"))))
        .y_axis(Axis::default().bounds([0.0, high]).labels(axis_labels(0.0, high, rate)));
    frame.render_widget(chart, area);
}

fn latency_chart(frame: &mut Frame<'_>, area: Rect, view: &View<'_>) {
    let model = view.model;
    let lines = model.latency();
    let (from, to) = model.time_span();
    let high = top(&[&lines[0], &lines[1], &lines[2]]);
    let operation = model.shown_operation().unwrap_or("-").to_string();
    let newest = |i: usize| lines[i].last().map_or("-".to_string(), |(_, y)| format_micros(*y));
    let title = format!(" Latency of {operation}: p50 {} p99 {} p99.9 {} ", newest(0), newest(1), newest(2));
    let colours = [Color::Green, Color::Yellow, Color::Magenta];
    let names = ["p50", "p99", "p99.9"];
    let datasets = lines
        .iter()
        .zip(colours.into_iter().zip(names))
        .map(|(points, (colour, name))| {
            Dataset::default()
                .name(name)
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(view.palette.fg(colour))
                .data(points)
        })
        .collect();
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(title))
        .x_axis(Axis::default().bounds([from, to]).labels(axis_labels(from, to, |s| format!("{s:.0}s"))))
        .y_axis(Axis::default().bounds([0.0, high]).labels(axis_labels(0.0, high, format_micros)));
    frame.render_widget(chart, area);
}

fn latency_line(latency: &LiveLatency) -> Vec<Line<'static>> {
    vec![
        Line::raw(format!(
            " p50 {:>8}  p99 {:>8}",
            format_micros(latency.p50 as f64),
            format_micros(latency.p99 as f64)
        )),
        Line::raw(format!(
            " p99.9 {:>6}  max {:>8}",
            format_micros(latency.p999 as f64),
            format_micros(latency.max as f64)
        )),
    ]
}

fn rates_panel(status: Option<&LiveStatus>, palette: Palette) -> Paragraph<'static> {
    let block = Block::bordered().title(" Rate ");
    let Some(s) = status else { return Paragraph::new(" no figures yet").block(block) };
    let mut lines = vec![
        Line::raw(format!(" current {:>12} ops/s", rate(s.current_rate))),
        Line::raw(format!(" average {:>12} ops/s", rate(s.average_rate))),
        Line::raw(format!(" ops {:<10} errors {}", s.ops, s.errors)),
    ];
    lines.extend(latency_line(&s.latency_us));
    let late = format!(" late starts {}", s.late_starts);
    lines.push(if s.late_starts > 0 { Line::styled(late, palette.fg(Color::Yellow)) } else { Line::raw(late) });
    if s.generator_saturated > 0 {
        lines.push(Line::styled(format!(" generator-saturated {}", s.generator_saturated), palette.bad()));
    }
    Paragraph::new(lines).block(block)
}

fn nodes_panel(status: Option<&LiveStatus>, width: u16, palette: Palette) -> Paragraph<'static> {
    let block = Block::bordered().title(" Nodes: share (expected) ");
    let Some(s) = status.filter(|s| !s.nodes.is_empty()) else {
        return Paragraph::new(" no requests yet").block(block);
    };
    let name_width = s.nodes.iter().map(|n| n.name.chars().count()).max().unwrap_or(4).min(24);
    let bar_width = usize::from(width).saturating_sub(name_width + 36).max(4);
    let lines = s
        .nodes
        .iter()
        .map(|node| {
            let filled = ((node.share * bar_width as f64).round() as usize).min(bar_width);
            let marker = node.expected_share.map(|e| ((e * bar_width as f64).round() as usize).min(bar_width - 1));
            let mut bar = String::with_capacity(bar_width * 3);
            for i in 0..bar_width {
                bar.push(match (i < filled, marker == Some(i)) {
                    (_, true) => '|',
                    (true, false) => '█',
                    (false, false) => '░',
                });
            }
            let expected = node.expected_share.map_or(String::new(), |e| format!(" ({:.1}%)", e * 100.0));
            let off = node.expected_share.is_some_and(|e| (node.share - e).abs() > 0.05);
            let style = if off { palette.fg(Color::Yellow) } else { palette.fg(Color::Cyan) };
            let name: String = node.name.chars().take(name_width).collect();
            Line::from(vec![
                Span::raw(format!(" {name:<name_width$} ")),
                Span::styled(bar, style),
                Span::raw(format!(" {:>5.1}%{expected} {:>10} req", node.share * 100.0, rate(node.count as f64))),
            ])
        })
        .collect::<Vec<_>>();
    Paragraph::new(lines).block(block)
}

fn errors_panel(status: Option<&LiveStatus>, palette: Palette) -> Paragraph<'static> {
    let block = Block::bordered().title(" Errors by kind ");
    let mut by_kind: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (operation, op) in status.map(|s| &s.operations).into_iter().flatten() {
        for (kind, count) in &op.errors_by_kind {
            *by_kind.entry((operation.clone(), kind.clone())).or_default() += count;
        }
    }
    if by_kind.is_empty() {
        return Paragraph::new(Line::styled(" none", palette.good())).block(block);
    }
    let lines = by_kind
        .into_iter()
        .map(|((operation, kind), count)| Line::styled(format!(" {operation} {kind}: {count}"), palette.bad()))
        .collect::<Vec<_>>();
    Paragraph::new(lines).block(block)
}

fn threshold_value(t: &ThresholdResult) -> String {
    match (t.observed, t.unit.as_str()) {
        (None, _) => "no data".to_string(),
        (Some(v), "us") => format_micros(v),
        (Some(v), "ratio") => format!("{:.3}%", v * 100.0),
        (Some(v), "ops/s" | "/s") => format!("{}/s", rate(v)),
        (Some(v), _) => format!("{v}"),
    }
}

fn thresholds_panel(status: Option<&LiveStatus>, palette: Palette) -> Paragraph<'static> {
    let block = Block::bordered().title(" Thresholds so far ");
    let Some(s) = status.filter(|s| !s.thresholds.is_empty()) else {
        return Paragraph::new(" none set").block(block);
    };
    let lines = s
        .thresholds
        .iter()
        .map(|t| {
            let (mark, style) = if t.passed { ("pass", palette.good()) } else { ("FAIL", palette.bad()) };
            Line::from(vec![
                Span::styled(format!(" {mark} "), style),
                Span::raw(format!("{}  ", t.expr)),
                Span::styled(threshold_value(t), palette.dim()),
            ])
        })
        .collect::<Vec<_>>();
    Paragraph::new(lines).block(block)
}

fn agents_table(frame: &mut Frame<'_>, area: Rect, status: Option<&LiveStatus>, palette: Palette) {
    let agents = status.map(|s| s.agents.as_slice()).unwrap_or_default();
    let shown = usize::from(area.height.saturating_sub(3));
    let title = if agents.len() > shown {
        format!(" Agents ({} of {} shown) ", shown, agents.len())
    } else {
        format!(" Agents ({}) ", agents.len())
    };
    let header = Row::new(["agent", "host", "planned", "achieved", "now", "late", "lag", "CPU", "memory"])
        .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = agents.iter().take(shown).map(|a| {
        let row = Row::new([
            a.id.clone(),
            a.host.clone(),
            a.planned_rate.map_or("closed".to_string(), rate),
            rate(a.achieved_rate),
            rate(a.current_rate),
            a.late_starts.to_string(),
            format_micros(a.schedule_lag_us as f64),
            format!("{:.0}%", a.cpu_percent),
            mebibytes(a.rss_bytes),
        ]);
        let behind = a.planned_rate.is_some_and(|p| p > 0.0 && a.achieved_rate < 0.95 * p);
        if behind || a.saturated_intervals > 0 { row.style(palette.fg(Color::Yellow)) } else { row }
    });
    let widest = |f: fn(&stampede_common::live::LiveAgent) -> &str| {
        agents.iter().map(|a| f(a).chars().count()).max().unwrap_or(0).clamp(5, 32) as u16
    };
    let widths = [
        Constraint::Length(widest(|a| &a.id)),
        Constraint::Length(widest(|a| &a.host)),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(8),
    ];
    let table = Table::new(rows, widths).header(header).block(Block::bordered().title(title));
    frame.render_widget(table, area);
}

fn footer_line(view: &View<'_>) -> Line<'static> {
    let model = view.model;
    if model.prompt == Some(Prompt::Cancel) {
        return Line::styled(
            format!(" Cancel run {}? y: cancel it (its report still prints)  n: go on watching", model.run_id),
            view.palette.bad(),
        );
    }
    let leave = match view.mode {
        Mode::Watch => "q: leave (the run goes on)",
        Mode::Run => "q: cancel the run",
    };
    if model.held {
        return Line::styled(" the run has ended: press any key for its report", view.palette.good());
    }
    let mut spans =
        vec![Span::styled(format!(" {leave}   p: pause   o: next operation   l: redraw"), view.palette.dim())];
    if model.cancelling {
        spans.push(Span::styled("   cancelling: waiting for the report", view.palette.bad()));
    }
    if view.paused {
        spans.push(Span::styled("   PAUSED (p resumes)", view.palette.fg(Color::Yellow).add_modifier(Modifier::BOLD)));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::model::clock;

    #[test]
    fn rates_have_thousands_separators() {
        assert_eq!(rate(0.5), "0.5");
        assert_eq!(rate(999.4), "999");
        assert_eq!(rate(12_345.6), "12,346");
        assert_eq!(rate(1_000_000.0), "1,000,000");
        assert_eq!(clock(75), "75 s");
        assert_eq!(clock(725), "12m05s");
        assert_eq!(clock(11_040), "3h04m");
    }
}
