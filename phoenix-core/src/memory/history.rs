//! [`HistoryStore`] on the in-memory state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::error::StoreError;
use crate::history::{Granularity, RollupBucket};
use crate::store::HistoryStore;

#[async_trait]
impl HistoryStore for MemoryStore {
    async fn rollup(
        &self,
        granularity: Granularity,
        start: DateTime<Utc>,
    ) -> Result<Option<RollupBucket>, StoreError> {
        Ok(self.lock().rollups.get(&(granularity, start)).cloned())
    }

    async fn put_rollup(&self, bucket: &RollupBucket, expected: u64) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let key = (bucket.granularity, bucket.start);
        let stored = state.rollups.get(&key).map_or(0, |b| b.version);
        if stored != expected {
            return Err(StoreError::conflict(
                "rollup",
                format!("{} {}", bucket.granularity, bucket.start),
            ));
        }
        let mut next = bucket.clone();
        next.version = expected + 1;
        state.rollups.insert(key, next);
        Ok(expected + 1)
    }

    async fn rollups(
        &self,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RollupBucket>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .lock()
            .rollups
            .range((granularity, from)..(granularity, to))
            .take(limit)
            .map(|(_, b)| b.clone())
            .collect())
    }

    async fn prune_rollups(
        &self,
        granularity: Granularity,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let before_len = state.rollups.len();
        state
            .rollups
            .retain(|(g, start), _| *g != granularity || *start >= before);
        Ok((before_len - state.rollups.len()) as u64)
    }
}
