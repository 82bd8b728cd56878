//! Cost history: hourly and daily rollup buckets.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::history::{Granularity, RollupBucket};

/// Rollup buckets, one per (granularity, start). The rules that fill them (what an
/// observation adds, when an hour folds into its day, how rows are bounded) are in
/// [`crate::history`]; a store keeps buckets with compare-and-set and nothing more.
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// The bucket of `granularity` starting at `start`, with its version.
    async fn rollup(
        &self,
        granularity: Granularity,
        start: DateTime<Utc>,
    ) -> Result<Option<RollupBucket>, StoreError>;

    /// Writes `bucket` (keyed by its granularity and start) if the stored version is
    /// `expected` (`0`: no bucket stored yet, insert-if-absent). Atomic. Returns the new
    /// version (`expected + 1`); `Conflict` when the stored version differs (another
    /// writer won: re-read and decide again). The version in `bucket` is ignored.
    async fn put_rollup(&self, bucket: &RollupBucket, expected: u64) -> Result<u64, StoreError>;

    /// Buckets of `granularity` whose start is in `[from, to)`, oldest first, at most
    /// `limit`.
    async fn rollups(
        &self,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RollupBucket>, StoreError>;

    /// Deletes the buckets of `granularity` starting before `before`; returns how many.
    /// Idempotent.
    async fn prune_rollups(
        &self,
        granularity: Granularity,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}
