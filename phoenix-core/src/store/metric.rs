//! Measurements and cardinality snapshots.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ids::{AgentId, ExperimentId};
use crate::measure::{MeasurementSample, PackedSnapshot, SnapshotMeta, SnapshotSource};

/// Samples kept per experiment; older ones are dropped first.
pub const MAX_SAMPLES_PER_EXPERIMENT: usize = 100_000;

/// Where one stored snapshot (one agent and source) stands: what the fleet's host set is
/// chosen from, and what a cache compares to know what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotVersion {
    /// The agent.
    pub agent_id: AgentId,
    /// What the snapshot describes.
    pub source: SnapshotSource,
    /// When the snapshot was taken.
    pub taken_at: chrono::DateTime<chrono::Utc>,
    /// The interval it covers, seconds.
    pub interval_secs: u32,
    /// A stamp that changes whenever this (agent, source) snapshot changes. The built-in
    /// backends draw a new one from one counter per store on every write (a re-sent
    /// identical snapshot included); [`content_version`] is the default.
    pub version: u64,
}

impl SnapshotVersion {
    /// The stamp of `snapshot` under `version`.
    #[must_use]
    pub fn of(snapshot: &PackedSnapshot, version: u64) -> Self {
        let SnapshotMeta {
            agent_id,
            source,
            taken_at,
            interval_secs,
        } = snapshot.meta();
        Self {
            agent_id,
            source,
            taken_at,
            interval_secs,
            version,
        }
    }

    /// What the host set is chosen by.
    #[must_use]
    pub fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            agent_id: self.agent_id,
            source: self.source,
            taken_at: self.taken_at,
            interval_secs: self.interval_secs,
        }
    }
}

/// A snapshot with the stamp it was stored under.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedSnapshot {
    /// The stamp ([`SnapshotVersion::version`]).
    pub version: u64,
    /// The snapshot.
    pub snapshot: PackedSnapshot,
}

/// The default version stamp of a snapshot: the first 8 bytes of the SHA-256 of its JSON,
/// for stores that keep no stamp of their own (it changes whenever the content does).
#[must_use]
pub fn content_version(snapshot: &PackedSnapshot) -> u64 {
    use sha2::Digest;
    let json = serde_json::to_vec(snapshot).unwrap_or_default();
    let digest = sha2::Sha256::digest(&json);
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

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
    /// source; the other source is left alone). Snapshots are kept packed, as agents send
    /// them: a host's strings once.
    async fn put_snapshot(&self, snapshot: &PackedSnapshot) -> Result<(), StoreError>;

    /// The current snapshot of every agent and source that sent one, ordered by agent id,
    /// then source (input first).
    async fn snapshots(&self) -> Result<Vec<PackedSnapshot>, StoreError>;

    /// The current input snapshot of one agent ([`SnapshotSource::Input`](crate::measure::SnapshotSource::Input)).
    async fn snapshot(&self, agent: AgentId) -> Result<Option<PackedSnapshot>, StoreError>;

    /// The version of every stored snapshot (each agent and source), ordered by agent id,
    /// then source (input first): one cheap read (no snapshot body) that the fleet's host
    /// set is chosen from and a cache compares with what it holds. Atomic: one consistent
    /// view. The default reads every snapshot and stamps it with [`content_version`]; the
    /// built-in backends override it with a stamp stored beside the body.
    async fn snapshot_versions(&self) -> Result<Vec<SnapshotVersion>, StoreError> {
        Ok(self
            .snapshots()
            .await?
            .iter()
            .map(|s| SnapshotVersion::of(s, content_version(s)))
            .collect())
    }

    /// The current snapshots of `keys` (agent, source) with their versions, ordered by
    /// agent id, then source; keys without one are skipped, a key named twice is answered
    /// once. Each snapshot and its version are read together, so the version is the one
    /// [`MetricStore::snapshot_versions`] reports for that body.
    async fn snapshots_of(
        &self,
        keys: &[(AgentId, SnapshotSource)],
    ) -> Result<Vec<VersionedSnapshot>, StoreError> {
        let wanted: std::collections::BTreeSet<(AgentId, SnapshotSource)> =
            keys.iter().copied().collect();
        let mut out: Vec<VersionedSnapshot> = self
            .snapshots()
            .await?
            .into_iter()
            .filter(|s| wanted.contains(&(s.agent_id, s.source)))
            .map(|snapshot| VersionedSnapshot {
                version: content_version(&snapshot),
                snapshot,
            })
            .collect();
        out.sort_by_key(|v| (v.snapshot.agent_id, v.snapshot.source));
        Ok(out)
    }

    /// Deletes every snapshot (all sources) of `agents` (the facade's retention decides
    /// which). Idempotent: an agent without a snapshot is skipped. Returns how many
    /// snapshots were deleted.
    async fn delete_snapshots(&self, agents: &[AgentId]) -> Result<u64, StoreError>;
}
