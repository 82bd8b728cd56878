//! The experiment state machine: one pure function from (experiment, input, now) to an
//! [`Outcome`] or a typed [`TransitionError`]. Nothing here does IO; the facade applies an
//! outcome atomically with compare-and-set on the experiment's version.

mod builder;
mod commands;
mod facts;

use chrono::{DateTime, Utc};

use super::{Action, Actor, Experiment, ExperimentEvent, ExperimentPipelines, Phase};
use crate::ids::{AgentId, ExperimentId};
use crate::judge::{Verdict, VerdictOutcome};
use crate::task::{NewTask, RemovalMode, Task, TaskState};

use builder::Builder;
use commands::apply_command;
use facts::apply_fact;

/// An agent chosen as a target at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAgent {
    /// The agent.
    pub agent_id: AgentId,
    /// Its host name.
    pub host: String,
}

/// An operator command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Deploy to the resolved targets (resolution and rendering happen before the call,
    /// so the function stays pure).
    Start {
        /// Live agents matching the selector.
        targets: Vec<TargetAgent>,
        /// Both rendered pipelines.
        pipelines: Box<ExperimentPipelines>,
    },
    /// Stop and remove everything the experiment deployed.
    Stop {
        /// Why.
        reason: Option<String>,
    },
    /// Remove the candidate (or restore the baseline after a promotion).
    Rollback {
        /// Graceful or instant.
        mode: RemovalMode,
        /// Why.
        reason: Option<String>,
    },
    /// Make the candidate the only pipeline.
    Promote {
        /// Promote without a passing verdict (admin only; checked by the caller).
        force: bool,
        /// Why.
        reason: Option<String>,
    },
    /// Delete the experiment (only when `Created` or terminal).
    Delete,
}

impl Command {
    /// The action this command is, by name (what [`Action::check`] and
    /// [`allowed_actions`](super::allowed_actions) speak of).
    #[must_use]
    pub fn action(&self) -> Action {
        match self {
            Self::Start { .. } => Action::Start,
            Self::Stop { .. } => Action::Stop,
            Self::Rollback { .. } => Action::Rollback,
            Self::Promote { force: false, .. } => Action::Promote,
            Self::Promote { force: true, .. } => Action::ForcePromote,
            Self::Delete => Action::Delete,
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// An agent completed the task of operation `op_seq`.
    TaskSucceeded {
        /// The agent.
        agent: AgentId,
        /// The operation the task belonged to.
        op_seq: u64,
        /// What it reported.
        detail: Option<String>,
    },
    /// An agent's task of operation `op_seq` failed for good (dead-lettered or permanent).
    TaskFailed {
        /// The agent.
        agent: AgentId,
        /// The operation the task belonged to.
        op_seq: u64,
        /// The error.
        error: String,
    },
    /// The agent stopped heartbeating.
    AgentLost {
        /// The agent.
        agent: AgentId,
    },
    /// The run's duration elapsed.
    DurationElapsed,
    /// The judge decided.
    VerdictComputed {
        /// The verdict.
        verdict: Verdict,
    },
}

/// A command or a fact.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// From an operator.
    Command(Command),
    /// From the controller or an agent.
    Fact(Fact),
}

/// What a transition decided. Applied atomically by the store: the experiment replaces the
/// stored one if its version is still `experiment.version - 1`, the events are appended,
/// open tasks of the experiment are cancelled if asked, then the tasks are enqueued.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The experiment after the transition (version incremented by one).
    pub experiment: Experiment,
    /// Events to append, in order (at least one unless `delete`).
    pub events: Vec<ExperimentEvent>,
    /// Cancel every open task of this experiment before enqueueing `tasks`.
    pub cancel_open_tasks: bool,
    /// Tasks to enqueue.
    pub tasks: Vec<NewTask>,
    /// Delete the experiment instead of storing it.
    pub delete: bool,
}

impl Outcome {
    /// The phase after the transition.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.experiment.phase
    }
}

/// Why an input was refused. Nothing changes when a transition errs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransitionError {
    /// The command is not allowed in this phase.
    #[error("cannot {command} an experiment that is {phase}")]
    IllegalInPhase {
        /// The command.
        command: &'static str,
        /// The current phase.
        phase: Phase,
    },
    /// Start found no live agent matching the selector.
    #[error("no live agent matches the experiment's targets")]
    NoMatchingAgents,
    /// Start found fewer live agents than `min_agents`.
    #[error("{found} live agent(s) match the targets but the spec requires at least {required}")]
    NotEnoughAgents {
        /// Matching live agents.
        found: usize,
        /// `spec.min_agents`.
        required: u32,
    },
    /// Promotion needs a passing verdict unless forced.
    #[error("promotion requires a passing verdict (verdict: {}); an admin may force it", outcome.map_or("none", VerdictOutcome::as_str))]
    PromoteRequiresPass {
        /// The verdict, if any.
        outcome: Option<VerdictOutcome>,
    },
    /// The fact names an agent the experiment does not target.
    #[error("agent {agent} is not a target of this experiment")]
    UnknownTarget {
        /// The agent.
        agent: AgentId,
    },
    /// The fact was already applied, belongs to an older operation, or no longer applies
    /// in the current phase. Safe to ignore.
    #[error("the fact was already applied or no longer applies")]
    Stale,
    /// The run has not ended yet.
    #[error("the run ends at {ends_at}")]
    TooEarly {
        /// When it ends.
        ends_at: DateTime<Utc>,
    },
}

impl TransitionError {
    /// True for errors that only mean "nothing to do" (late or repeated facts).
    #[must_use]
    pub fn is_noop(&self) -> bool {
        matches!(self, Self::Stale | Self::TooEarly { .. })
    }
}

/// The state machine. Pure: same inputs, same outcome.
pub fn transition(
    experiment: &Experiment,
    input: &Input,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Outcome, TransitionError> {
    let mut b = Builder {
        next: experiment.clone(),
        events: Vec::new(),
        tasks: Vec::new(),
        cancel_open_tasks: false,
        delete: false,
        actor,
        now,
    };
    match input {
        Input::Command(command) => apply_command(&mut b, command)?,
        Input::Fact(fact) => apply_fact(&mut b, fact)?,
    }
    Ok(b.finish())
}

/// The fact a finished task reports to its experiment, if any: `Succeeded` becomes
/// [`Fact::TaskSucceeded`], `Failed` and `DeadLettered` become [`Fact::TaskFailed`].
#[must_use]
pub fn fact_from_task(task: &Task) -> Option<(ExperimentId, Fact)> {
    let experiment = task.experiment_id()?;
    let op_seq = task.payload.op_seq();
    let fact = match task.state {
        TaskState::Succeeded => Fact::TaskSucceeded {
            agent: task.agent_id,
            op_seq,
            detail: task.result.as_ref().map(summarize_result),
        },
        TaskState::Failed | TaskState::DeadLettered => Fact::TaskFailed {
            agent: task.agent_id,
            op_seq,
            error: task
                .last_error
                .clone()
                .unwrap_or_else(|| format!("task {} {}", task.id, task.state)),
        },
        TaskState::Pending | TaskState::Leased | TaskState::Cancelled => return None,
    };
    Some((experiment, fact))
}

fn summarize_result(result: &serde_json::Value) -> String {
    let text = match result.get("message").and_then(serde_json::Value::as_str) {
        Some(message) => message.to_owned(),
        None => result.to_string(),
    };
    text.chars().take(512).collect()
}

#[cfg(test)]
mod tests;
