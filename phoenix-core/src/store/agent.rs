//! Enrolled agents.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::agent::{Agent, AgentFilter, AgentStatus, HealthPoint, Heartbeat, SecretHash};
use crate::error::StoreError;
use crate::ids::AgentId;
use crate::page::{Page, PageRequest};

/// Health points kept per agent (one per heartbeat, newest kept): an hour of heartbeats at
/// the default 10 s interval. Older ones also go with the facade's health retention.
pub const MAX_HEALTH_POINTS_PER_AGENT: usize = 360;

/// The agent registry.
#[async_trait]
pub trait AgentRegistry: Send + Sync + 'static {
    /// Stores a newly enrolled agent with the hash of its secret. `Conflict` if the id exists.
    async fn register(&self, agent: &Agent, secret: &SecretHash) -> Result<(), StoreError>;

    /// The agent, or `NotFound`.
    async fn get_agent(&self, id: AgentId) -> Result<Agent, StoreError>;

    /// The stored secret hash, or `NotFound`.
    async fn secret_hash(&self, id: AgentId) -> Result<SecretHash, StoreError>;

    /// Records a heartbeat received at `at` with the status the core derived from it:
    /// sets resources, pipelines, started_at (when given), `last_heartbeat = at`, status.
    /// `NotFound` if absent. Returns the updated agent.
    async fn record_heartbeat(
        &self,
        id: AgentId,
        heartbeat: &Heartbeat,
        status: AgentStatus,
        at: DateTime<Utc>,
    ) -> Result<Agent, StoreError>;

    /// Marks the agent `Lost` if it is not lost already and its `last_heartbeat` is still
    /// `seen_heartbeat` (so a heartbeat racing the check wins). Returns whether it changed.
    async fn mark_lost(
        &self,
        id: AgentId,
        seen_heartbeat: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Counts one refused report of the agent, atomically: `refused.count` goes up by one
    /// and `refused.last_reason` / `refused.last_at` become `reason` / `at`; nothing else
    /// changes. Concurrent calls each count. Publishes `AgentUpdated` (the record changed).
    /// `NotFound` if absent. Returns the new count.
    async fn record_refusal(
        &self,
        id: AgentId,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Revokes the agent: it can no longer authenticate. Idempotent. `NotFound` if absent.
    async fn revoke(&self, id: AgentId) -> Result<(), StoreError>;

    /// Agents passing `filter`, newest first, one page at a time.
    async fn list_agents(
        &self,
        filter: &AgentFilter,
        page: &PageRequest,
    ) -> Result<Page<Agent>, StoreError>;

    /// Appends one point to the agent's health history (the facade calls it once per
    /// heartbeat) and drops the agent's oldest points beyond
    /// [`MAX_HEALTH_POINTS_PER_AGENT`], atomically with the append: whichever replica
    /// records it, the history never holds more. `NotFound` if the agent is absent.
    async fn append_health(&self, id: AgentId, point: &HealthPoint) -> Result<(), StoreError>;

    /// The agent's health points at or after `since`, oldest first; the newest `limit` when
    /// there are more. An agent without points (or unknown) has none.
    async fn health_history(
        &self,
        id: AgentId,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HealthPoint>, StoreError>;

    /// Deletes every agent's health points taken before `before` (the facade's retention
    /// decides it). Idempotent. Returns how many were deleted.
    async fn prune_health(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
