//! `experiment status --watch`: follows one experiment over the WebSocket until it
//! completes, is promoted, or ends.
//!
//! The subscription is opened before the experiment is read, so no change falls between
//! the read and the first event. Every experiment event triggers a re-read of the
//! experiment (the decision to stop is taken on the committed phase, never on an event:
//! a verdict and the automatic rollback it causes arrive as two events but commit as one
//! change); `experiment.kpis` triggers a re-read of the KPIs. A periodic re-read covers a
//! lagging or silent connection, and a closed connection is reopened a few times.

use std::io::IsTerminal as _;
use std::time::Duration;

use phoenix_api::analysis::KpiReport;
use phoenix_api::experiment::{Experiment, Phase};
use phoenix_api::ws::{ServerMessage, Topic};
use phoenix_client::Subscription;
use uuid::Uuid;

use crate::commands::experiment::{kpi_line, progress};
use crate::error::CliError;
use crate::output::{self, time};
use crate::{Context, cli::OutputFormat};

/// Re-read the experiment at least this often, even without events.
const REREAD: Duration = Duration::from_secs(10);
/// Reconnection attempts after the server closed the WebSocket.
const RECONNECTS: u32 = 5;

/// Where watching stops, and whether that is a success: the server says whether the
/// experiment rests (waits for an operator: a success) or ended for good (terminal: not
/// a success); anything else is still moving.
fn finished(e: &Experiment) -> Option<bool> {
    if e.resting {
        Some(true)
    } else if e.terminal {
        Some(false)
    } else {
        None
    }
}

pub(crate) async fn watch(cx: &Context, id: Uuid) -> Result<(), CliError> {
    let mut sub = subscribe(cx, id).await?;
    let mut experiment = cx.client.get_experiment(id).await.map_err(|e| cx.err(e))?;
    let mut kpis = read_kpis(cx, &experiment).await?;
    let mut display = Display::new(cx.printer.format);
    display.show(&experiment, kpis.as_ref());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut since_read = Duration::ZERO;
    let mut reconnects = 0;
    // Reconnects wait as every client of the control plane does (core's `Backoff`).
    let mut backoff = phoenix_core::backoff::Backoff::default().sequence();
    loop {
        if let Some(success) = finished(&experiment) {
            display.finish(&experiment, kpis.as_ref());
            return if success {
                Ok(())
            } else {
                Err(CliError::Unsuccessful(format!(
                    "experiment {} ended {}{}",
                    experiment.id,
                    experiment.phase,
                    experiment
                        .failure_reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )))
            };
        }
        let mut reread = false;
        tokio::select! {
            message = sub.next() => match message {
                Ok(Some(ServerMessage::PhaseChanged { .. } | ServerMessage::Progress { .. } | ServerMessage::Lagged { .. })) => reread = true,
                Ok(Some(ServerMessage::Kpis { .. })) => {
                    kpis = read_kpis(cx, &experiment).await?;
                    display.show(&experiment, kpis.as_ref());
                }
                Ok(Some(ServerMessage::ExperimentDeleted { .. })) => {
                    return Err(CliError::Unsuccessful(format!("experiment {id} was deleted")));
                }
                Ok(Some(ServerMessage::Error { message, .. })) => {
                    return Err(CliError::Unsuccessful(format!("the server refused the subscription: {message}")));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    reconnects += 1;
                    if reconnects > RECONNECTS {
                        return Err(CliError::Unsuccessful(format!(
                            "lost the WebSocket to {} {RECONNECTS} times; giving up",
                            cx.server
                        )));
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                    sub = subscribe(cx, id).await?;
                    reread = true;
                }
            },
            _ = tick.tick() => {
                since_read += Duration::from_secs(1);
                display.tick(&experiment, kpis.as_ref());
            }
        }
        if reread || since_read >= REREAD {
            since_read = Duration::ZERO;
            let before = (experiment.phase, experiment.version);
            experiment = cx.client.get_experiment(id).await.map_err(|e| cx.err(e))?;
            if (experiment.phase, experiment.version) != before {
                kpis = read_kpis(cx, &experiment).await?;
                display.show(&experiment, kpis.as_ref());
            }
        }
    }
}

async fn subscribe(cx: &Context, id: Uuid) -> Result<Subscription, CliError> {
    cx.client
        .subscribe(&[Topic::Experiment(id)])
        .await
        .map_err(|e| cx.err(e))
}

async fn read_kpis(cx: &Context, e: &Experiment) -> Result<Option<KpiReport>, CliError> {
    if e.started_at.is_none() || cx.printer.is_json() {
        return Ok(None);
    }
    cx.client
        .experiment_kpis(e.id)
        .await
        .map(Some)
        .map_err(|err| cx.err(err))
}

/// The live display. On a terminal: a block of short lines (phase and time, then the
/// KPIs), each cut to the terminal's width and redrawn in place every second; a phase
/// change keeps the previous block and starts a new one. On a pipe: one line per change.
/// In JSON mode: nothing but the final experiment.
struct Display {
    format: OutputFormat,
    /// Columns, when standard output is a terminal.
    terminal: Option<usize>,
    /// Lines of the block drawn last (terminal), or the last line printed (pipe).
    drawn: Vec<String>,
    last_phase: Option<Phase>,
}

impl Display {
    fn new(format: OutputFormat) -> Self {
        let terminal = std::io::stdout().is_terminal().then(|| {
            terminal_size::terminal_size()
                .map_or(80, |(terminal_size::Width(w), _)| usize::from(w).max(20))
        });
        Self {
            format,
            terminal,
            drawn: Vec::new(),
            last_phase: None,
        }
    }

    fn lines(e: &Experiment, kpis: Option<&KpiReport>) -> Vec<String> {
        vec![
            format!(
                "{}  {:<11}  {}",
                time(&chrono::Utc::now()),
                e.phase.to_string(),
                progress(e)
            ),
            format!(
                "{:22}kpis: {}",
                "",
                kpis.map(kpi_line).unwrap_or_else(|| "-".to_owned())
            ),
        ]
    }

    /// After a change.
    fn show(&mut self, e: &Experiment, kpis: Option<&KpiReport>) {
        if self.format == OutputFormat::Json {
            return;
        }
        let lines = Self::lines(e, kpis);
        match self.terminal {
            Some(width) => {
                let mut out = String::new();
                if self.last_phase.is_some_and(|p| p != e.phase) {
                    // Keep the previous phase's block on screen.
                    out.push('\n');
                } else if self.drawn.len() > 1 {
                    out.push_str(&format!("\x1b[{}A", self.drawn.len() - 1));
                }
                let cut: Vec<String> = lines.iter().map(|l| fit(l, width)).collect();
                for (n, line) in cut.iter().enumerate() {
                    if n > 0 {
                        out.push('\n');
                    }
                    out.push_str("\r\x1b[2K");
                    out.push_str(line);
                }
                output::out(&out);
                self.drawn = cut;
            }
            None => {
                let line = lines.concat();
                let changed = self
                    .drawn
                    .first()
                    .is_none_or(|last| strip_time(last) != strip_time(&line));
                if changed {
                    output::out(&format!("{}\n", lines.join("\n")));
                }
                self.drawn = vec![line];
            }
        }
        self.last_phase = Some(e.phase);
    }

    /// Every second: on a terminal the clock and the remaining time move.
    fn tick(&mut self, e: &Experiment, kpis: Option<&KpiReport>) {
        if self.terminal.is_some() {
            self.show(e, kpis);
        }
    }

    fn finish(&mut self, e: &Experiment, kpis: Option<&KpiReport>) {
        match self.format {
            OutputFormat::Json => output::out(&output::json(e)),
            OutputFormat::Table => {
                self.show(e, kpis);
                if self.terminal.is_some() {
                    output::out("\n");
                }
                let verdict = e
                    .verdict
                    .as_ref()
                    .map(|v| format!(", verdict {}", output::wire(&v.outcome)))
                    .unwrap_or_default();
                output::out(&format!("experiment {} {}{verdict}\n", e.id, e.phase));
            }
        }
    }
}

/// `line` cut to `width` characters (a wrapped line would break the redraw).
fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        line.to_owned()
    } else {
        let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The line without its leading clock (lines that differ only in time are not repeated).
fn strip_time(line: &str) -> &str {
    line.get(21..).unwrap_or(line)
}
