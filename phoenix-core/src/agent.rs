//! Agents: enrollment, credentials and health rules.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::ids::{AgentId, ExperimentId};
use crate::measure::HostStats;

/// Heartbeats older than this many intervals mark an agent `Lost`.
pub const LOST_AFTER_MISSED_HEARTBEATS: i32 = 3;

/// Health of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Heartbeating, every pipeline healthy.
    Healthy,
    /// Heartbeating, some pipeline unhealthy.
    Degraded,
    /// Missed [`LOST_AFTER_MISSED_HEARTBEATS`] heartbeats.
    Lost,
}

impl AgentStatus {
    /// Every status.
    pub const ALL: [AgentStatus; 3] = [
        AgentStatus::Healthy,
        AgentStatus::Degraded,
        AgentStatus::Lost,
    ];

    /// The wire and storage name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Lost => "lost",
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown agent status `{s}`"))
    }
}

/// Health of one pipeline on an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineHealth {
    /// Running and producing.
    Healthy,
    /// Starting.
    Starting,
    /// Failing.
    Unhealthy,
}

/// A pipeline an agent runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivePipeline {
    /// Name (e.g. `experiment/<id>/candidate`, `fleet`).
    pub name: String,
    /// The experiment, when it belongs to one.
    pub experiment_id: Option<ExperimentId>,
    /// The template it was rendered from.
    pub template: String,
    /// Hash of the configuration it runs.
    pub config_hash: String,
    /// Health.
    pub health: PipelineHealth,
    /// Error detail when unhealthy.
    pub detail: Option<String>,
}

/// What an agent says about itself when enrolling.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentRegistration {
    /// Host name.
    pub host: String,
    /// Labels for target selection.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Agent version.
    pub version: String,
    /// Capabilities (runtimes, receivers).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Operating system.
    pub os: String,
}

/// A heartbeat.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Host and agent resource usage.
    pub resources: HostStats,
    /// Pipelines running.
    #[serde(default)]
    pub pipelines: Vec<ActivePipeline>,
    /// When the agent process started.
    pub started_at: Option<DateTime<Utc>>,
}

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Id (UUID v7).
    pub id: AgentId,
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
    /// When the agent process started (from its last heartbeat).
    pub started_at: Option<DateTime<Utc>>,
    /// Last heartbeat (enrollment counts as one).
    pub last_heartbeat: DateTime<Utc>,
    /// Status.
    pub status: AgentStatus,
    /// Resource usage from the last heartbeat.
    pub resources: HostStats,
    /// Pipelines from the last heartbeat.
    pub pipelines: Vec<ActivePipeline>,
    /// A revoked agent can no longer authenticate.
    pub revoked: bool,
    /// Reports of this agent the server refused (bounds or plausibility).
    #[serde(default)]
    pub refused: RefusedReports,
}

/// The reports of one agent that the facade refused: heartbeats and measurements out of
/// bounds ([`crate::inputs`]) or implausible ([`crate::plausibility`]). Each
/// refusal is counted atomically by the store
/// ([`crate::store::AgentRegistry::record_refusal`]); a refused report changes nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RefusedReports {
    /// Reports refused since enrollment.
    pub count: u64,
    /// Why the last one was refused (its first field error, with the field's path).
    pub last_reason: Option<String>,
    /// When the last one was refused.
    pub last_at: Option<DateTime<Utc>>,
}

/// Longest `RefusedReports::last_reason` kept, in characters.
pub const MAX_REFUSAL_REASON_CHARS: usize = 512;

/// The reason recorded for a refused report: its first field error (`path: message`), with
/// how many more there were, cut to [`MAX_REFUSAL_REASON_CHARS`].
#[must_use]
pub fn refusal_reason(errors: &crate::validation::ValidationErrors) -> String {
    let first = errors.errors.first().map_or_else(
        || "refused".to_owned(),
        |e| format!("{}: {}", e.path, e.message),
    );
    let mut reason = match errors.errors.len() {
        0 | 1 => first,
        n => format!("{first} (and {} more)", n - 1),
    };
    if reason.chars().count() > MAX_REFUSAL_REASON_CHARS {
        reason = reason.chars().take(MAX_REFUSAL_REASON_CHARS - 1).collect();
        reason.push('…');
    }
    reason
}

impl Agent {
    /// A new agent from its registration.
    #[must_use]
    pub fn enroll(registration: AgentRegistration, now: DateTime<Utc>) -> Self {
        Self {
            id: AgentId::new(),
            host: registration.host,
            labels: registration.labels,
            version: registration.version,
            capabilities: registration.capabilities,
            os: registration.os,
            enrolled_at: now,
            started_at: None,
            last_heartbeat: now,
            status: AgentStatus::Healthy,
            resources: HostStats::default(),
            pipelines: Vec::new(),
            revoked: false,
            refused: RefusedReports::default(),
        }
    }

    /// Applies a heartbeat received at `now`: the status becomes `Degraded` when a pipeline
    /// is unhealthy, `Healthy` otherwise (a lost agent that heartbeats again is back).
    pub fn apply_heartbeat(&mut self, heartbeat: Heartbeat, now: DateTime<Utc>) {
        self.status = heartbeat_status(&heartbeat);
        self.resources = heartbeat.resources;
        self.pipelines = heartbeat.pipelines;
        if heartbeat.started_at.is_some() {
            self.started_at = heartbeat.started_at;
        }
        self.last_heartbeat = now;
    }

    /// True when the agent should be marked lost at `now` with heartbeats every `interval`.
    #[must_use]
    pub fn is_overdue(&self, now: DateTime<Utc>, interval: Duration) -> bool {
        self.status != AgentStatus::Lost
            && now - self.last_heartbeat > interval * LOST_AFTER_MISSED_HEARTBEATS
    }

    /// Live: not lost and not revoked.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.status != AgentStatus::Lost && !self.revoked
    }
}

/// The status a heartbeat implies.
#[must_use]
pub fn heartbeat_status(heartbeat: &Heartbeat) -> AgentStatus {
    if heartbeat
        .pipelines
        .iter()
        .any(|p| p.health == PipelineHealth::Unhealthy)
    {
        AgentStatus::Degraded
    } else {
        AgentStatus::Healthy
    }
}

/// One heartbeat as an agent's health history keeps it: when the server received it, the
/// status it implied and what the agent reported (every figure already within
/// [`crate::inputs::heartbeat`]'s bounds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthPoint {
    /// When the heartbeat was received (server time).
    pub at: DateTime<Utc>,
    /// The status the heartbeat implied ([`heartbeat_status`]).
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

impl HealthPoint {
    /// The point a heartbeat received at `at` adds to the history.
    #[must_use]
    pub fn of(heartbeat: &Heartbeat, at: DateTime<Utc>) -> Self {
        let count = |health: PipelineHealth| {
            let n = heartbeat
                .pipelines
                .iter()
                .filter(|p| p.health == health)
                .count();
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        Self {
            at,
            status: heartbeat_status(heartbeat),
            pipelines_healthy: count(PipelineHealth::Healthy),
            pipelines_starting: count(PipelineHealth::Starting),
            pipelines_unhealthy: count(PipelineHealth::Unhealthy),
            resources: heartbeat.resources.clone(),
        }
    }
}

/// Selects agents for listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFilter {
    /// Only these statuses (empty: all).
    pub statuses: Vec<AgentStatus>,
    /// Include revoked agents.
    pub include_revoked: bool,
}

impl AgentFilter {
    /// Live agents: healthy or degraded, not revoked (what experiments and deployments
    /// target, and the fleet a cost projection defaults to). The one definition.
    #[must_use]
    pub fn live() -> Self {
        Self {
            statuses: vec![AgentStatus::Healthy, AgentStatus::Degraded],
            include_revoked: false,
        }
    }

    /// True when `agent` passes.
    #[must_use]
    pub fn matches(&self, agent: &Agent) -> bool {
        (self.include_revoked || !agent.revoked)
            && (self.statuses.is_empty() || self.statuses.contains(&agent.status))
    }
}

/// The SHA-256 (hex) of an agent secret, as stored. Secrets are 256 random bits, so a
/// fast hash is enough: there is nothing to brute-force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(pub String);

impl SecretHash {
    /// Hashes `secret`.
    #[must_use]
    pub fn of(secret: &str) -> Self {
        Self(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    /// Compares with the hash of `secret` in constant time.
    #[must_use]
    pub fn verify(&self, secret: &str) -> bool {
        self.verify_hash(&Self::of(secret))
    }

    /// Compares two hashes in constant time.
    #[must_use]
    pub fn verify_hash(&self, other: &SecretHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// An agent's credential: `phx_agent.<agent id>.<secret>`. Handed out once at enrollment.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentCredential {
    /// The agent.
    pub agent_id: AgentId,
    /// The secret (256 random bits, base64url).
    pub secret: String,
}

impl fmt::Debug for AgentCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCredential")
            .field("agent_id", &self.agent_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

const CREDENTIAL_PREFIX: &str = "phx_agent.";

impl AgentCredential {
    /// A fresh credential for `agent_id`.
    #[must_use]
    pub fn generate(agent_id: AgentId) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            agent_id,
            secret: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    /// The hash to store.
    #[must_use]
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.secret)
    }

    /// The token form.
    #[must_use]
    pub fn to_token(&self) -> String {
        format!("{CREDENTIAL_PREFIX}{}.{}", self.agent_id, self.secret)
    }

    /// Parses the token form; `None` when it is not an agent credential.
    #[must_use]
    pub fn parse(token: &str) -> Option<Self> {
        let rest = token.strip_prefix(CREDENTIAL_PREFIX)?;
        let (id, secret) = rest.split_once('.')?;
        let agent_id = id.parse().ok()?;
        if secret.is_empty() || secret.len() > 128 {
            return None;
        }
        Some(Self {
            agent_id,
            secret: secret.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_verify() {
        let cred = AgentCredential::generate(AgentId::new());
        let parsed = AgentCredential::parse(&cred.to_token()).unwrap();
        assert_eq!(parsed, cred);
        let hash = cred.hash();
        assert!(hash.verify(&cred.secret));
        assert!(!hash.verify("nope"));
        assert!(AgentCredential::parse("Bearer x").is_none());
        assert!(AgentCredential::parse("phx_agent.not-a-uuid.x").is_none());
        assert!(!format!("{cred:?}").contains(&cred.secret));
    }

    #[test]
    fn overdue_after_three_intervals() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let agent = Agent::enroll(AgentRegistration::default(), t0);
        let interval = Duration::seconds(10);
        assert!(!agent.is_overdue(t0 + Duration::seconds(30), interval));
        assert!(agent.is_overdue(t0 + Duration::seconds(31), interval));
    }

    #[test]
    fn unhealthy_pipeline_degrades() {
        let mut hb = Heartbeat::default();
        assert_eq!(heartbeat_status(&hb), AgentStatus::Healthy);
        hb.pipelines.push(ActivePipeline {
            name: "x".to_owned(),
            experiment_id: None,
            template: "topk".to_owned(),
            config_hash: "h".to_owned(),
            health: PipelineHealth::Unhealthy,
            detail: Some("crashed".to_owned()),
        });
        assert_eq!(heartbeat_status(&hb), AgentStatus::Degraded);
    }
}
