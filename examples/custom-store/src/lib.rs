//! A custom store for Phoenix: measurements (the largest data, and the one a team may
//! want on its own disk) in append-only files; every other store from [`MemoryStore`].
//!
//! A backend is a set of trait objects ([`Stores`]), so it can replace one store and keep
//! the others. What makes it correct is the shared conformance suite: `tests/conformance.rs`
//! stamps every case of `phoenix-conformance` against this composition, plus the queue
//! history check and the life-cycle model test, exactly as the PostgreSQL and Redis
//! backends do.
//!
//! Run: `cargo test -p example-custom-store`.
//!
//! Layout under the directory: `samples.jsonl` (one JSON sample per line, appended and
//! flushed to disk before an append is acknowledged) and `snapshots/<agent>.json` (the input snapshot;
//! `<agent>.shipped.json` the shipped output; each written
//! to a temporary file, synced, then renamed over the old one). Opening the directory
//! replays both, so an acknowledged sample survives a restart. Single process only: a
//! store shared by replicas needs a database (see the PostgreSQL and Redis backends). The
//! writes are small appends done on the calling task under one lock, which keeps the
//! example short; a store on slow disks would move them to `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use phoenix_core::MemoryStore;
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::measure::{MeasurementSample, PackedSnapshot, SnapshotSource};
use phoenix_core::store::{
    AppendReport, BusEvent, EventBus, MAX_SAMPLES_PER_EXPERIMENT, MetricStore, StoreError, Stores,
};

type SampleKey = (chrono::DateTime<chrono::Utc>, AgentId, u64);

#[derive(Default)]
struct Log {
    seen: HashSet<(AgentId, u64)>,
    samples: BTreeMap<SampleKey, MeasurementSample>,
}

struct State {
    file: File,
    logs: HashMap<ExperimentId, Log>,
    snapshots: BTreeMap<(AgentId, SnapshotSource), PackedSnapshot>,
}

/// Measurements and snapshots in files under one directory.
pub struct FileMetricStore {
    dir: PathBuf,
    bus: Arc<dyn EventBus>,
    state: Mutex<State>,
}

impl std::fmt::Debug for FileMetricStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMetricStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::unavailable(e.to_string())
}

fn corrupt(path: &Path, line: usize, e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(format!("{}:{line}: {e}", path.display()))
}

impl FileMetricStore {
    /// Opens (or creates) the store in `dir`, replaying what is there. `KpisUpdated` is
    /// published on `bus`, the deployment's event bus.
    ///
    /// # Errors
    /// `Unavailable` when the directory cannot be used, `Corrupt` when a file does not
    /// parse (with the file and line).
    pub fn open(dir: impl Into<PathBuf>, bus: Arc<dyn EventBus>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("snapshots")).map_err(io)?;
        let path = dir.join("samples.jsonl");
        let mut logs: HashMap<ExperimentId, Log> = HashMap::new();
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(io)?);
            for (n, line) in reader.lines().enumerate() {
                let line = line.map_err(io)?;
                if line.trim().is_empty() {
                    continue;
                }
                let sample: MeasurementSample =
                    serde_json::from_str(&line).map_err(|e| corrupt(&path, n + 1, e))?;
                insert(logs.entry(sample.experiment_id).or_default(), sample);
            }
        }
        let mut snapshots = BTreeMap::new();
        for entry in std::fs::read_dir(dir.join("snapshots")).map_err(io)? {
            let p = entry.map_err(io)?.path();
            if p.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&p).map_err(io)?;
                let s = PackedSnapshot::from_stored_json(&text).map_err(|e| corrupt(&p, 1, e))?;
                snapshots.insert((s.agent_id, s.source), s);
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(Self {
            dir,
            bus,
            state: Mutex::new(State {
                file,
                logs,
                snapshots,
            }),
        })
    }

    /// [`MemoryStore`]'s stores with this one as the metric store.
    #[must_use]
    pub fn compose(memory: &MemoryStore, metrics: Arc<Self>) -> Stores {
        let mut stores = memory.stores();
        stores.metrics = metrics;
        stores
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `<agent>.json` for the input (the name it had before sources existed),
    /// `<agent>.shipped.json` for the shipped output.
    fn snapshot_path(&self, agent: AgentId, source: SnapshotSource) -> PathBuf {
        let name = match source {
            SnapshotSource::Input => format!("{agent}.json"),
            SnapshotSource::Shipped => format!("{agent}.shipped.json"),
        };
        self.dir.join("snapshots").join(name)
    }
}

/// Adds a sample unless its (agent, seq) was seen; keeps the newest
/// [`MAX_SAMPLES_PER_EXPERIMENT`]. Returns whether it was new.
fn insert(log: &mut Log, sample: MeasurementSample) -> bool {
    if !log.seen.insert((sample.agent_id, sample.seq)) {
        return false;
    }
    log.samples
        .insert((sample.taken_at, sample.agent_id, sample.seq), sample);
    while log.samples.len() > MAX_SAMPLES_PER_EXPERIMENT {
        log.samples.pop_first();
    }
    true
}

#[async_trait]
impl MetricStore for FileMetricStore {
    async fn append_samples(
        &self,
        samples: &[MeasurementSample],
    ) -> Result<AppendReport, StoreError> {
        let mut report = AppendReport::default();
        let mut touched = BTreeSet::new();
        {
            let mut state = self.lock();
            // Decide first, write second, apply last: a failed write changes nothing.
            let mut lines = String::new();
            let mut new = Vec::new();
            let mut batch_seen = HashSet::new();
            for sample in samples {
                let key = (sample.experiment_id, sample.agent_id, sample.seq);
                let known = state
                    .logs
                    .get(&sample.experiment_id)
                    .is_some_and(|log| log.seen.contains(&(sample.agent_id, sample.seq)));
                if known || !batch_seen.insert(key) {
                    report.duplicates += 1;
                    continue;
                }
                lines.push_str(&serde_json::to_string(sample).map_err(io)?);
                lines.push('\n');
                new.push(sample.clone());
            }
            if !new.is_empty() {
                state.file.write_all(lines.as_bytes()).map_err(io)?;
                state.file.sync_data().map_err(io)?;
            }
            for sample in new {
                touched.insert(sample.experiment_id);
                let log = state.logs.entry(sample.experiment_id).or_default();
                insert(log, sample);
                report.inserted += 1;
            }
        }
        let events: Vec<BusEvent> = touched
            .into_iter()
            .map(|experiment_id| BusEvent::KpisUpdated { experiment_id })
            .collect();
        // Stored is stored: a lost notification only delays a KPI refresh.
        let _ = self.bus.publish_all(&events).await;
        Ok(report)
    }

    async fn samples(
        &self,
        experiment: ExperimentId,
        limit: usize,
    ) -> Result<Vec<MeasurementSample>, StoreError> {
        Ok(self
            .lock()
            .logs
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
        let Some(log) = state.logs.get(&experiment) else {
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
        let text = serde_json::to_vec(snapshot).map_err(io)?;
        let mut state = self.lock();
        let path = self.snapshot_path(snapshot.agent_id, snapshot.source);
        let tmp = path.with_extension("json.tmp");
        {
            let mut f = File::create(&tmp).map_err(io)?;
            f.write_all(&text).map_err(io)?;
            f.sync_data().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        state
            .snapshots
            .insert((snapshot.agent_id, snapshot.source), snapshot.clone());
        Ok(())
    }

    async fn snapshots(&self) -> Result<Vec<PackedSnapshot>, StoreError> {
        Ok(self.lock().snapshots.values().cloned().collect())
    }

    async fn snapshot(&self, agent: AgentId) -> Result<Option<PackedSnapshot>, StoreError> {
        Ok(self
            .lock()
            .snapshots
            .get(&(agent, SnapshotSource::Input))
            .cloned())
    }

    async fn delete_snapshots(&self, agents: &[AgentId]) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let mut deleted = 0;
        for agent in agents {
            for source in SnapshotSource::ALL {
                if state.snapshots.remove(&(*agent, source)).is_some() {
                    std::fs::remove_file(self.snapshot_path(*agent, source)).map_err(io)?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}
