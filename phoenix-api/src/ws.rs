//! WebSocket messages on `/api/v1/ws`: JSON text frames, tagged by `type`.
//!
//! The client subscribes to topics; the server sends the matching domain events:
//! - `experiments`: every experiment message; `experiment:<id>`: one experiment's;
//! - `agents`: `agent.status`; `tasks`: `task.updated`; `deployments`: `deployment.updated`.
//!
//! The server pings (`heartbeat`) every interval; a client that does not keep up with its
//! bounded buffer is disconnected (close code 1008) and re-reads state after reconnecting.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::agent::AgentStatus;
use crate::experiment::{Actor, Cause, ExperimentEvent, Phase};
use crate::task::TaskState;

/// A subscription topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Every experiment.
    Experiments,
    /// One experiment.
    Experiment(Uuid),
    /// Agent status changes.
    Agents,
    /// Task state changes.
    Tasks,
    /// Quick deployments.
    Deployments,
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Experiments => f.write_str("experiments"),
            Self::Experiment(id) => write!(f, "experiment:{id}"),
            Self::Agents => f.write_str("agents"),
            Self::Tasks => f.write_str("tasks"),
            Self::Deployments => f.write_str("deployments"),
        }
    }
}

impl std::str::FromStr for Topic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "experiments" => Ok(Self::Experiments),
            "agents" => Ok(Self::Agents),
            "tasks" => Ok(Self::Tasks),
            "deployments" => Ok(Self::Deployments),
            other => other
                .strip_prefix("experiment:")
                .and_then(|id| id.parse().ok())
                .map(Self::Experiment)
                .ok_or_else(|| {
                    format!(
                        "unknown topic `{other}` (experiments, experiment:<id>, agents, tasks, deployments)"
                    )
                }),
        }
    }
}

impl Serialize for Topic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// From client to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Start receiving these topics.
    Subscribe {
        /// Topics.
        topics: Vec<Topic>,
    },
    /// Stop receiving these topics.
    Unsubscribe {
        /// Topics.
        topics: Vec<Topic>,
    },
    /// Application-level ping; answered by `pong` with the same id.
    Ping {
        /// Echoed back.
        #[serde(default)]
        id: u64,
    },
}

/// From server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerMessage {
    /// First message after connecting.
    #[serde(rename = "hello")]
    Hello {
        /// Server time.
        server_time: DateTime<Utc>,
        /// The server sends `heartbeat` this often.
        heartbeat_secs: u64,
    },
    /// The current subscription after a subscribe or unsubscribe.
    #[serde(rename = "subscribed")]
    Subscribed {
        /// Topics now subscribed.
        topics: Vec<Topic>,
    },
    /// An experiment changed phase.
    #[serde(rename = "experiment.phase_changed")]
    PhaseChanged {
        /// The experiment.
        experiment_id: Uuid,
        /// Event sequence number (ordered per experiment).
        seq: u64,
        /// Phase before.
        from: Phase,
        /// Phase after.
        to: Phase,
        /// Why.
        cause: Cause,
        /// Who.
        actor: Actor,
        /// Reason in words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
        /// Experiment version after the change.
        version: u64,
    },
    /// Progress within a phase (an agent acknowledged, a target was lost...).
    #[serde(rename = "experiment.progress")]
    Progress {
        /// The event.
        event: ExperimentEvent,
        /// Experiment version after it.
        version: u64,
    },
    /// An experiment was deleted.
    #[serde(rename = "experiment.deleted")]
    ExperimentDeleted {
        /// The experiment.
        experiment_id: Uuid,
    },
    /// New measurements arrived for an experiment (re-read `/kpis`).
    #[serde(rename = "experiment.kpis")]
    Kpis {
        /// The experiment.
        experiment_id: Uuid,
    },
    /// An agent's status changed (enrolled, heartbeat, lost, revoked).
    #[serde(rename = "agent.status")]
    AgentStatus {
        /// The agent.
        agent_id: Uuid,
        /// Its status.
        status: AgentStatus,
    },
    /// A task changed state.
    #[serde(rename = "task.updated")]
    TaskUpdated {
        /// The task.
        task_id: Uuid,
        /// Its agent.
        agent_id: Uuid,
        /// Its experiment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        experiment_id: Option<Uuid>,
        /// New state.
        state: TaskState,
    },
    /// A quick deployment changed.
    #[serde(rename = "deployment.updated")]
    DeploymentUpdated {
        /// The deployment.
        deployment_id: Uuid,
    },
    /// Sent every heartbeat interval.
    #[serde(rename = "heartbeat")]
    Heartbeat {
        /// Server time.
        server_time: DateTime<Utc>,
    },
    /// Answer to `ping`.
    #[serde(rename = "pong")]
    Pong {
        /// The ping's id.
        id: u64,
    },
    /// Events were lost for this client (the server's bus lagged): re-read state.
    #[serde(rename = "lagged")]
    Lagged {
        /// How many.
        missed: u64,
    },
    /// The last client message was refused.
    #[serde(rename = "error")]
    Error {
        /// Machine-readable code (`bad_request`, `payload_too_large`).
        code: crate::ErrorCode,
        /// Explanation.
        message: String,
    },
}

impl ServerMessage {
    /// The experiment a message concerns, if any.
    #[must_use]
    pub fn experiment_id(&self) -> Option<Uuid> {
        match self {
            Self::PhaseChanged { experiment_id, .. }
            | Self::ExperimentDeleted { experiment_id }
            | Self::Kpis { experiment_id } => Some(*experiment_id),
            Self::Progress { event, .. } => Some(event.experiment_id),
            Self::TaskUpdated { experiment_id, .. } => *experiment_id,
            _ => None,
        }
    }

    /// Converts a domain event.
    #[must_use]
    pub fn from_bus(event: phoenix_core::store::BusEvent) -> Option<Self> {
        use phoenix_core::store::BusEvent;
        Some(match event {
            BusEvent::Experiment { event, version } => {
                if event.from == event.to {
                    Self::Progress {
                        event: event.into(),
                        version,
                    }
                } else {
                    Self::PhaseChanged {
                        experiment_id: event.experiment_id.0,
                        seq: event.seq,
                        from: event.from.into(),
                        to: event.to.into(),
                        cause: event.cause.into(),
                        actor: event.actor.into(),
                        reason: event.reason,
                        at: event.at,
                        version,
                    }
                }
            }
            BusEvent::ExperimentDeleted { experiment_id } => Self::ExperimentDeleted {
                experiment_id: experiment_id.0,
            },
            BusEvent::KpisUpdated { experiment_id } => Self::Kpis {
                experiment_id: experiment_id.0,
            },
            BusEvent::AgentUpdated { agent_id, status } => Self::AgentStatus {
                agent_id: agent_id.0,
                status: status.into(),
            },
            BusEvent::TaskUpdated {
                task_id,
                agent_id,
                experiment_id,
                state,
            } => Self::TaskUpdated {
                task_id: task_id.0,
                agent_id: agent_id.0,
                experiment_id: experiment_id.map(|e| e.0),
                state: state.into(),
            },
            BusEvent::DeploymentUpdated { deployment_id } => Self::DeploymentUpdated {
                deployment_id: deployment_id.0,
            },
            BusEvent::TasksAvailable { .. } => return None,
        })
    }

    /// True when a client subscribed to `topics` should receive this message.
    #[must_use]
    pub fn matches(&self, topics: &std::collections::BTreeSet<Topic>) -> bool {
        match self {
            Self::PhaseChanged { .. }
            | Self::Progress { .. }
            | Self::ExperimentDeleted { .. }
            | Self::Kpis { .. } => {
                topics.contains(&Topic::Experiments)
                    || self
                        .experiment_id()
                        .is_some_and(|id| topics.contains(&Topic::Experiment(id)))
            }
            Self::AgentStatus { .. } => topics.contains(&Topic::Agents),
            Self::TaskUpdated { .. } => topics.contains(&Topic::Tasks),
            Self::DeploymentUpdated { .. } => topics.contains(&Topic::Deployments),
            _ => true,
        }
    }
}
