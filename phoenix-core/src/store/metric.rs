//! Measurements and cardinality snapshots.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ids::{AgentId, ExperimentId};
use crate::measure::{CardinalitySnapshot, MeasurementSample};

/// Samples kept per experiment; older ones are dropped first.
pub const MAX_SAMPLES_PER_EXPERIMENT: usize = 100_000;

/// What an append did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// New samples stored.
    pub inserted: u64,
    /// Samples already stored under the same (experiment, agent, seq), ignored.
    pub duplicates: u64,
}

/// Measurements of experiments and the latest host snapshots.
#[async_trait]
pub trait MetricStore: Send + Sync + 'static {
    /// Stores samples. Idempotent on (experiment, agent, seq): a retried report is counted
    /// as a duplicate, never stored twice. Keeps at most [`MAX_SAMPLES_PER_EXPERIMENT`] per
    /// experiment (oldest dropped). Publishes `KpisUpdated` for each experiment touched.
    async fn append_samples(
        &self,
        samples: &[MeasurementSample],
    ) -> Result<AppendReport, StoreError>;

    /// Samples of the experiment ordered by (taken_at, agent, seq), at most `limit`.
    async fn samples(
        &self,
        experiment: ExperimentId,
        limit: usize,
    ) -> Result<Vec<MeasurementSample>, StoreError>;

    /// The agent's samples of the experiment with the highest sequence numbers, highest
    /// first, at most `limit` (the plausibility check's history; `limit` is small). May
    /// include samples the per-experiment cap has since dropped.
    async fn recent_samples(
        &self,
        experiment: ExperimentId,
        agent: AgentId,
        limit: usize,
    ) -> Result<Vec<MeasurementSample>, StoreError>;

    /// Replaces the agent's current snapshot of `snapshot.source` (one per agent and
    /// source; the other source is left alone).
    async fn put_snapshot(&self, snapshot: &CardinalitySnapshot) -> Result<(), StoreError>;

    /// The current snapshot of every agent and source that sent one, ordered by agent id,
    /// then source (input first).
    async fn snapshots(&self) -> Result<Vec<CardinalitySnapshot>, StoreError>;

    /// The current input snapshot of one agent ([`SnapshotSource::Input`](crate::measure::SnapshotSource::Input)).
    async fn snapshot(&self, agent: AgentId) -> Result<Option<CardinalitySnapshot>, StoreError>;

    /// Deletes every snapshot (all sources) of `agents` (the facade's retention decides
    /// which). Idempotent: an agent without a snapshot is skipped. Returns how many
    /// snapshots were deleted.
    async fn delete_snapshots(&self, agents: &[AgentId]) -> Result<u64, StoreError>;
}
