//! The terminal dashboard of `stampede watch`, `stampede run --dashboard`
//! and `stampede submit --wait --dashboard`: the run's live figures from
//! the coordinator's `WatchLive` stream (the web dashboard's events), drawn
//! with ratatui until the run's report arrives on its `WatchRun` stream.
//!
//! The terminal is restored however the dashboard ends: the report, `q`,
//! Ctrl-C, a signal, an error, or a panic ([`Screen`]'s drop and ratatui's
//! panic hook).

mod draw;
mod model;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::bail;
use crossterm::event::{Event as TermEvent, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::StreamExt;
use stampede_proto::v1 as pb;

use crate::client::{Client, explain};
use model::{Model, Prompt};

/// Who is watching: `watch` (and `submit`) leave the run running on `q`;
/// `run` owns the run, so `q` asks before cancelling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Watch,
    Run,
}

/// How the dashboard behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// Keep the final figures on the screen when the run has ended, until
    /// a key is pressed; then the report.
    pub hold: bool,
}

/// How the dashboard ended.
pub enum Outcome {
    /// The run ended: its JSON report.
    Report(String),
    /// The user left; the run goes on.
    Left,
}

/// Whether the dashboard can be drawn: stdout is a terminal.
pub fn available() -> bool {
    std::io::stdout().is_terminal() && std::env::var("TERM").is_ok_and(|t| t != "dumb")
}

/// Colours unless `NO_COLOR` is set (to anything but the empty string).
pub fn colour_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The terminal in raw mode on the alternate screen, restored on drop.
struct Screen {
    terminal: ratatui::DefaultTerminal,
}

impl Screen {
    fn enter() -> anyhow::Result<Self> {
        match ratatui::try_init() {
            Ok(terminal) => Ok(Self { terminal }),
            Err(error) => {
                ratatui::restore();
                bail!("cannot draw the dashboard on this terminal ({error}); watch without --dashboard instead")
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// How long to wait before asking for the live figures again when their
/// stream broke (the coordinator dropped a slow viewer, or restarted).
const RECONNECT: Duration = Duration::from_secs(1);

/// Shows the run until it ends (its report arrives on `updates`) or the
/// user leaves.
pub async fn show(
    mut client: Client,
    run_id: &str,
    mut updates: tonic::Streaming<pb::WatchRunResponse>,
    options: Options,
) -> anyhow::Result<Outcome> {
    let mode = options.mode;
    let mut screen = Screen::enter()?;
    let mut keys = EventStream::new();
    let mut model = Model::new(run_id);
    let mut frozen: Option<Model> = None;
    let palette = draw::Palette { colour: colour_wanted() };
    let mut live = open_live(&mut client, run_id, &mut model).await;
    let mut retry = tokio::time::interval(RECONNECT);
    // With `hold`, the report waits here until a key is pressed.
    let mut held: Option<String> = None;
    let signal = crate::daemons::shutdown_signal();
    tokio::pin!(signal);
    loop {
        // A paused display still shows the question it asks and what it
        // waits for.
        if let Some(frozen) = frozen.as_mut() {
            frozen.prompt = model.prompt;
            frozen.cancelling = model.cancelling;
        }
        let view = draw::View { model: frozen.as_ref().unwrap_or(&model), mode, paused: frozen.is_some(), palette };
        screen.terminal.draw(|frame| draw::frame(frame, &view))?;
        tokio::select! {
            update = updates.message(), if held.is_none() => match update {
                // Held only when there is something to hold: a run that had
                // ended before the watch began has no live figures here.
                Ok(Some(update)) if !update.report_json.is_empty() && options.hold && model.status.is_some() => {
                    held = Some(update.report_json);
                    model.held = true;
                    frozen = None;
                }
                Ok(Some(update)) if !update.report_json.is_empty() => return Ok(Outcome::Report(update.report_json)),
                Ok(Some(update)) => {
                    model.phase(update.phase.as_ref());
                    if update.phase.is_none() {
                        model.watched(&update.state, &update.message);
                    }
                }
                Ok(None) => bail!(
                    "the coordinator closed the watch of run {run_id} before it ended; \
                     `stampede report {run_id}` shows it later"
                ),
                Err(status) => bail!("lost the coordinator while watching run {run_id}: {}", explain(&status)),
            },
            event = next_live(&mut live) => match event {
                Some(event) => model.apply(&event.name, &event.data_json),
                None => live = None,
            },
            _ = retry.tick(), if live.is_none() => {
                live = open_live(&mut client, run_id, &mut model).await;
            }
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(key))) if key.kind == KeyEventKind::Press => {
                    let any_leaves = key.code != KeyCode::Char('o') && key.code != KeyCode::Char('l');
                    if let Some(report) = held.take_if(|_| any_leaves) {
                        return Ok(Outcome::Report(report));
                    }
                    if let Some(outcome) = on_key(key, mode, &mut model, &mut frozen, &mut client).await {
                        return Ok(outcome);
                    }
                    if key.code == KeyCode::Char('l') {
                        screen.terminal.clear()?;
                    }
                }
                Some(Ok(TermEvent::Resize(..))) => screen.terminal.clear()?,
                Some(Ok(_)) => {}
                Some(Err(error)) => bail!("cannot read the keyboard: {error}"),
                None => bail!("the terminal closed"),
            },
            () = &mut signal, if mode == Mode::Watch || held.is_some() => {
                return Ok(held.map_or(Outcome::Left, Outcome::Report));
            }
        }
    }
}

/// The live figures' stream, or `None` (with the reason on the screen)
/// when the coordinator cannot give it now.
async fn open_live(client: &mut Client, run_id: &str, model: &mut Model) -> Option<tonic::Streaming<pb::LiveEvent>> {
    match client.watch_live(pb::WatchLiveRequest { run_id: run_id.to_string() }).await {
        Ok(response) => Some(response.into_inner()),
        Err(status) => {
            model.message = format!("no live figures: {}", explain(&status));
            None
        }
    }
}

async fn next_live(live: &mut Option<tonic::Streaming<pb::LiveEvent>>) -> Option<pb::LiveEvent> {
    match live {
        Some(stream) => stream.message().await.ok().flatten(),
        None => std::future::pending().await,
    }
}

/// Acts on one key; `Some` when the dashboard ends.
async fn on_key(
    key: KeyEvent,
    mode: Mode,
    model: &mut Model,
    frozen: &mut Option<Model>,
    client: &mut Client,
) -> Option<Outcome> {
    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
    if model.prompt == Some(Prompt::Cancel) {
        match key.code {
            KeyCode::Char('y' | 'Y') => cancel(model, client).await,
            _ if ctrl_c => cancel(model, client).await,
            _ => model.prompt = None,
        }
        return None;
    }
    match (key.code, mode) {
        // Raw mode turns Ctrl-C into a key: it does what it does without
        // the dashboard (leave a watch, cancel a run of one's own).
        _ if ctrl_c && mode == Mode::Watch => return Some(Outcome::Left),
        _ if ctrl_c => cancel(model, client).await,
        (KeyCode::Char('q') | KeyCode::Esc, Mode::Watch) => return Some(Outcome::Left),
        (KeyCode::Char('q') | KeyCode::Esc, Mode::Run) if !model.cancelling => model.prompt = Some(Prompt::Cancel),
        (KeyCode::Char('p'), _) => {
            *frozen = match frozen.take() {
                Some(_) => None,
                None => Some(model.clone()),
            };
        }
        (KeyCode::Char('o'), _) => {
            model.next_operation();
            if let Some(frozen) = frozen {
                frozen.next_operation();
            }
        }
        _ => {}
    }
    None
}

async fn cancel(model: &mut Model, client: &mut Client) {
    model.prompt = None;
    if model.cancelling {
        return;
    }
    model.cancelling = true;
    if let Err(status) = client.cancel_run(pb::CancelRunRequest { run_id: model.run_id.clone() }).await {
        model.cancelling = false;
        model.message = format!("cannot cancel: {}", explain(&status));
    }
}
