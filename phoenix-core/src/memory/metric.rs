//! [`MetricStore`] on the in-memory state.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::MemoryStore;
use crate::error::StoreError;
use crate::ids::{AgentId, ExperimentId};
use crate::measure::{MeasurementSample, PackedSnapshot, SnapshotSource};
use crate::store::{
    AppendReport, BusEvent, MAX_SAMPLES_PER_EXPERIMENT, MetricStore, SnapshotVersion,
    VersionedSnapshot,
};

#[async_trait]
impl MetricStore for MemoryStore {
    async fn append_samples(
        &self,
        samples: &[MeasurementSample],
    ) -> Result<AppendReport, StoreError> {
        let mut report = AppendReport::default();
        let mut touched = BTreeSet::new();
        {
            let mut state = self.lock();
            for sample in samples {
                let log = state.samples.entry(sample.experiment_id).or_default();
                if !log.seen.insert((sample.agent_id, sample.seq)) {
                    report.duplicates += 1;
                    continue;
                }
                log.samples.insert(
                    (sample.taken_at, sample.agent_id, sample.seq),
                    sample.clone(),
                );
                while log.samples.len() > MAX_SAMPLES_PER_EXPERIMENT {
                    // The dedup key stays in `seen`: a dropped sample re-sent is still old.
                    log.samples.pop_first();
                }
                report.inserted += 1;
                touched.insert(sample.experiment_id);
            }
        }
        self.emit(
            touched
                .into_iter()
                .map(|experiment_id| BusEvent::KpisUpdated { experiment_id }),
        );
        Ok(report)
    }

    async fn samples(
        &self,
        experiment: ExperimentId,
        limit: usize,
    ) -> Result<Vec<MeasurementSample>, StoreError> {
        Ok(self
            .lock()
            .samples
            .get(&experiment)
            .map(|log| log.samples.values().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn recent_samples(
        &self,
        experiment: ExperimentId,
        agent: AgentId,
        limit: usize,
    ) -> Result<Vec<MeasurementSample>, StoreError> {
        let state = self.lock();
        let Some(log) = state.samples.get(&experiment) else {
            return Ok(Vec::new());
        };
        let mut mine: Vec<&MeasurementSample> = log
            .samples
            .values()
            .filter(|s| s.agent_id == agent)
            .collect();
        mine.sort_by_key(|s| std::cmp::Reverse(s.seq));
        Ok(mine.into_iter().take(limit).cloned().collect())
    }

    async fn put_snapshot(&self, snapshot: &PackedSnapshot) -> Result<(), StoreError> {
        // Cloned outside the lock: a snapshot can hold thousands of series. Held behind an
        // Arc, so readers copy a pointer under the lock.
        let copy = Arc::new(snapshot.clone());
        let mut state = self.lock();
        state.snapshot_seq += 1;
        let version = state.snapshot_seq;
        state
            .snapshots
            .insert((snapshot.agent_id, snapshot.source), (version, copy));
        Ok(())
    }

    async fn snapshots(&self) -> Result<Vec<PackedSnapshot>, StoreError> {
        let held: Vec<Arc<PackedSnapshot>> = self
            .lock()
            .snapshots
            .values()
            .map(|(_, s)| Arc::clone(s))
            .collect();
        Ok(held.iter().map(|s| PackedSnapshot::clone(s)).collect())
    }

    async fn snapshot(&self, agent: AgentId) -> Result<Option<PackedSnapshot>, StoreError> {
        let held = self
            .lock()
            .snapshots
            .get(&(agent, SnapshotSource::Input))
            .map(|(_, s)| Arc::clone(s));
        Ok(held.map(|s| PackedSnapshot::clone(&s)))
    }

    async fn snapshot_versions(&self) -> Result<Vec<SnapshotVersion>, StoreError> {
        Ok(self
            .lock()
            .snapshots
            .values()
            .map(|(version, s)| SnapshotVersion::of(s, *version))
            .collect())
    }

    async fn snapshots_of(
        &self,
        keys: &[(AgentId, SnapshotSource)],
    ) -> Result<Vec<VersionedSnapshot>, StoreError> {
        let wanted: BTreeSet<(AgentId, SnapshotSource)> = keys.iter().copied().collect();
        let held: Vec<(u64, Arc<PackedSnapshot>)> = {
            let state = self.lock();
            wanted
                .iter()
                .filter_map(|key| state.snapshots.get(key))
                .map(|(version, snapshot)| (*version, Arc::clone(snapshot)))
                .collect()
        };
        Ok(held
            .into_iter()
            .map(|(version, snapshot)| VersionedSnapshot {
                version,
                snapshot: PackedSnapshot::clone(&snapshot),
            })
            .collect())
    }

    async fn delete_snapshots(&self, agents: &[AgentId]) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let mut deleted = 0;
        for agent in agents {
            for source in SnapshotSource::ALL {
                deleted += u64::from(state.snapshots.remove(&(*agent, source)).is_some());
            }
        }
        Ok(deleted)
    }
}
