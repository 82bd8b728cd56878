//! The experiment event log: every transition, who caused it, why.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Phase;
use crate::ids::ExperimentId;

/// What kind of principal acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person or script with an API token.
    User,
    /// An agent reporting a task outcome.
    Agent,
    /// Phoenix itself (controller: timers, judge, agent loss).
    System,
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// Kind of principal.
    pub kind: ActorKind,
    /// Its name (token name, agent host, `controller`).
    pub name: String,
}

impl Actor {
    /// A user.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::User,
            name: name.into(),
        }
    }

    /// An agent.
    pub fn agent(name: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Agent,
            name: name.into(),
        }
    }

    /// The controller.
    #[must_use]
    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            name: "controller".to_owned(),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ActorKind::User => "user",
            ActorKind::Agent => "agent",
            ActorKind::System => "system",
        };
        write!(f, "{kind}:{}", self.name)
    }
}

/// What caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The experiment was created.
    Created,
    /// `start` command.
    Start,
    /// `stop` command.
    Stop,
    /// `rollback` command (or automatic rollback after a failing verdict).
    Rollback,
    /// `promote` command (or automatic promotion after a passing verdict).
    Promote,
    /// An agent acknowledged its task.
    TaskSucceeded,
    /// An agent's task failed for good.
    TaskFailed,
    /// An agent stopped heartbeating.
    AgentLost,
    /// The run's duration elapsed.
    DurationElapsed,
    /// The judge decided.
    VerdictComputed,
}

/// One entry of an experiment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentEvent {
    /// The experiment.
    pub experiment_id: ExperimentId,
    /// 1, 2, 3... without gaps: replaying the log gives the current phase.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Phase before.
    pub from: Phase,
    /// Phase after (equal to `from` for progress events such as one agent's ack).
    pub to: Phase,
    /// What caused it.
    pub cause: Cause,
    /// Who.
    pub actor: Actor,
    /// Why, in words.
    pub reason: Option<String>,
    /// Structured detail (agent, error, verdict, counts).
    pub details: serde_json::Value,
}
