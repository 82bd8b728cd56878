//! Agents: enrollment, heartbeats, fleet.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use phoenix_core::agent as core;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::measure::HostStats;

mirror_enum! {
    /// Health of an agent.
    AgentStatus => core::AgentStatus {
        /// Heartbeating, every pipeline healthy.
        Healthy,
        /// Heartbeating, some pipeline unhealthy.
        Degraded,
        /// Missed 3 heartbeats.
        Lost,
    }
}

mirror_enum! {
    /// Health of one pipeline on an agent.
    PipelineHealth => core::PipelineHealth {
        /// Running and producing.
        Healthy,
        /// Starting.
        Starting,
        /// Failing.
        Unhealthy,
    }
}

/// A pipeline an agent runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct ActivePipeline {
    /// Name (`experiment/<id>/candidate`, `fleet`).
    pub name: String,
    /// The experiment it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<Uuid>,
    /// The template it was rendered from.
    pub template: String,
    /// Hash of the configuration it runs.
    pub config_hash: String,
    /// Health.
    pub health: PipelineHealth,
    /// Error detail when unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<core::ActivePipeline> for ActivePipeline {
    fn from(p: core::ActivePipeline) -> Self {
        Self {
            name: p.name,
            experiment_id: p.experiment_id.map(|e| e.0),
            template: p.template,
            config_hash: p.config_hash,
            health: p.health.into(),
            detail: p.detail,
        }
    }
}

impl From<ActivePipeline> for core::ActivePipeline {
    fn from(p: ActivePipeline) -> Self {
        Self {
            name: p.name,
            experiment_id: p.experiment_id.map(phoenix_core::ids::ExperimentId),
            template: p.template,
            config_hash: p.config_hash,
            health: p.health.into(),
            detail: p.detail,
        }
    }
}

/// What an agent says about itself when enrolling (with the enrollment token as bearer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct AgentRegistration {
    /// Host name.
    pub host: String,
    /// Labels for target selection.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub labels: BTreeMap<String, String>,
    /// Agent version.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub version: String,
    /// Capabilities (runtimes, receivers).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub capabilities: Vec<String>,
    /// Operating system.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub os: String,
}

impl From<AgentRegistration> for core::AgentRegistration {
    fn from(r: AgentRegistration) -> Self {
        Self {
            host: r.host,
            labels: r.labels,
            version: r.version,
            capabilities: r.capabilities,
            os: r.os,
        }
    }
}

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct Agent {
    /// Id.
    pub id: Uuid,
    /// Host name.
    pub host: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Agent version.
    pub version: String,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Operating system.
    pub os: String,
    /// Enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// When the agent process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Last heartbeat.
    pub last_heartbeat: DateTime<Utc>,
    /// Status.
    pub status: AgentStatus,
    /// Resource usage from the last heartbeat.
    pub resources: HostStats,
    /// Pipelines from the last heartbeat.
    pub pipelines: Vec<ActivePipeline>,
    /// A revoked agent can no longer authenticate.
    pub revoked: bool,
    /// Reports of this agent the server refused (out of bounds or implausible).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub refused_reports: u64,
    /// Why the last refused report was refused (its first field error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refusal_reason: Option<String>,
    /// When the last report was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refusal_at: Option<DateTime<Utc>>,
}

impl From<core::Agent> for Agent {
    fn from(a: core::Agent) -> Self {
        Self {
            id: a.id.0,
            host: a.host,
            labels: a.labels,
            version: a.version,
            capabilities: a.capabilities,
            os: a.os,
            enrolled_at: a.enrolled_at,
            started_at: a.started_at,
            last_heartbeat: a.last_heartbeat,
            status: a.status.into(),
            resources: a.resources.into(),
            pipelines: a.pipelines.into_iter().map(Into::into).collect(),
            revoked: a.revoked,
            refused_reports: a.refused.count,
            last_refusal_reason: a.refused.last_reason,
            last_refusal_at: a.refused.last_at,
        }
    }
}

/// One heartbeat in an agent's health history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct HealthPoint {
    /// When the server received the heartbeat.
    pub at: DateTime<Utc>,
    /// The status it implied (`degraded` when a pipeline was unhealthy).
    pub status: AgentStatus,
    /// Pipelines reported healthy.
    pub pipelines_healthy: u32,
    /// Pipelines reported starting.
    pub pipelines_starting: u32,
    /// Pipelines reported unhealthy.
    pub pipelines_unhealthy: u32,
    /// Host and agent resources as reported.
    pub resources: HostStats,
}

impl From<core::HealthPoint> for HealthPoint {
    fn from(p: core::HealthPoint) -> Self {
        Self {
            at: p.at,
            status: p.status.into(),
            pipelines_healthy: p.pipelines_healthy,
            pipelines_starting: p.pipelines_starting,
            pipelines_unhealthy: p.pipelines_unhealthy,
            resources: p.resources.into(),
        }
    }
}

/// `GET /agents/{id}/health`: the agent's recent heartbeats, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AgentHealth {
    /// The agent.
    pub agent_id: Uuid,
    /// How far back the server keeps health points, seconds.
    pub retention_secs: u64,
    /// The most points the server keeps per agent.
    pub max_points: u32,
    /// One point per heartbeat within the retention, oldest first (the newest `limit`).
    pub items: Vec<HealthPoint>,
}

page_type!(
    /// A page of agents.
    AgentPage,
    Agent
);

/// The answer to `POST /agents/matching`: the live agents a selector picks now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct SelectedAgents {
    /// The agents, by host name.
    pub items: Vec<Agent>,
}

/// The answer to an enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct EnrollResponse {
    /// The agent record.
    pub agent: Agent,
    /// The agent's credential (`phx_agent.<id>.<secret>`), shown once: send it as bearer
    /// token on every agent route.
    pub credential: String,
    /// Heartbeat every this many seconds (lost after 3 missed).
    pub heartbeat_interval_secs: u64,
    /// Default long-poll wait, seconds.
    pub poll_wait_secs: u64,
}

/// A heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct Heartbeat {
    /// Host and agent resource usage.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub resources: HostStats,
    /// Pipelines running.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub pipelines: Vec<ActivePipeline>,
    /// When the agent process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
}

impl From<Heartbeat> for core::Heartbeat {
    fn from(h: Heartbeat) -> Self {
        Self {
            resources: h.resources.into(),
            pipelines: h.pipelines.into_iter().map(Into::into).collect(),
            started_at: h.started_at,
        }
    }
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct HeartbeatResponse {
    /// The agent's status after the heartbeat.
    pub status: AgentStatus,
    /// Heartbeat every this many seconds.
    pub heartbeat_interval_secs: u64,
    /// Take a cardinality snapshot of the host's inputs every this many seconds.
    #[serde(default)]
    pub snapshot_interval_secs: u64,
    /// The server's time (the agent's clock may differ).
    pub server_time: DateTime<Utc>,
}

/// Agents per status and version, for the fleet view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct FleetSummary {
    /// Enrolled, not revoked.
    pub total: u64,
    /// Healthy.
    pub healthy: u64,
    /// Degraded.
    pub degraded: u64,
    /// Lost.
    pub lost: u64,
    /// Revoked.
    pub revoked: u64,
    /// Agents per version.
    pub versions: BTreeMap<String, u64>,
    /// Pipelines running across the fleet, per template.
    pub pipelines_by_template: BTreeMap<String, u64>,
    /// Agents whose pipelines include an unhealthy one.
    pub unhealthy_pipelines: u64,
    /// Reports refused across the fleet (out of bounds or implausible).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub refused_reports: u64,
    /// Agents with at least one refused report.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub agents_with_refused_reports: u64,
    /// Experiments currently deployed or running.
    pub active_experiments: u64,
    /// Experiments whose candidate was promoted.
    pub promoted_experiments: u64,
}

impl From<phoenix_core::FleetSummary> for FleetSummary {
    fn from(s: phoenix_core::FleetSummary) -> Self {
        Self {
            total: s.total,
            healthy: s.healthy,
            degraded: s.degraded,
            lost: s.lost,
            revoked: s.revoked,
            versions: s.versions,
            pipelines_by_template: s.pipelines_by_template,
            unhealthy_pipelines: s.unhealthy_pipelines,
            refused_reports: s.refused_reports,
            agents_with_refused_reports: s.agents_with_refused_reports,
            active_experiments: s.active_experiments,
            promoted_experiments: s.promoted_experiments,
        }
    }
}

/// `GET /fleet/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct FleetStatus {
    /// Totals.
    pub summary: FleetSummary,
    /// Every non-revoked agent, newest first.
    pub agents: Vec<Agent>,
}
