//! The in-memory backend: the embedded default, and the reference implementation of every
//! store contract.
//!
//! All state sits behind one `std::sync::Mutex`: every operation is a short, non-async
//! critical section, so a std mutex is both correct and faster than an async one (no
//! operation holds it across an `.await`). One lock also makes multi-aggregate operations
//! (a transition's commit with its task enqueue) trivially atomic. Time comes from the
//! injected [`Clock`], which is the single time source of an in-memory deployment.

mod agent;
mod bus;
mod deployment;
mod experiment;
mod history;
mod metric;
mod query;
mod queue;
mod token;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::agent::{Agent, SecretHash};
use crate::auth::ApiToken;
use crate::clock::{SharedClock, SystemClock};
use crate::deployment::Deployment;
use crate::experiment::{Experiment, ExperimentEvent};
use crate::ids::{AgentId, DeploymentId, ExperimentId, LeaseToken, TaskId};
use crate::measure::{MeasurementSample, PackedSnapshot, SnapshotSource};
use crate::store::{BusEvent, Stores};
use crate::task::Task;

/// Capacity of the in-process event channel. A subscriber lagging further loses the oldest.
const BUS_CAPACITY: usize = 4096;

/// The in-memory store. Clone it freely: clones share state.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

struct Inner {
    state: Mutex<State>,
    clock: SharedClock,
    bus: broadcast::Sender<BusEvent>,
}

/// Ordering key of a pending task within its agent: priority desc, run_at, id.
type PendingKey = (Reverse<i16>, DateTime<Utc>, TaskId);

#[derive(Default)]
struct State {
    experiments: BTreeMap<ExperimentId, Experiment>,
    events: HashMap<ExperimentId, Vec<ExperimentEvent>>,
    tasks: BTreeMap<TaskId, StoredTask>,
    /// Unique key -> the open task holding it.
    unique: HashMap<String, TaskId>,
    /// Pending tasks per agent, in claim order.
    pending: HashMap<AgentId, BTreeSet<PendingKey>>,
    /// Leased tasks by expiry.
    leases: BTreeSet<(DateTime<Utc>, TaskId)>,
    agents: BTreeMap<AgentId, (Agent, SecretHash)>,
    samples: HashMap<ExperimentId, SampleLog>,
    /// The current snapshot per agent and source, with its version.
    snapshots: BTreeMap<(AgentId, SnapshotSource), (u64, Arc<PackedSnapshot>)>,
    /// The last snapshot version handed out.
    snapshot_seq: u64,
    rollups: BTreeMap<(crate::history::Granularity, DateTime<Utc>), crate::history::RollupBucket>,
    /// Health history per agent, oldest first.
    health: HashMap<AgentId, std::collections::VecDeque<crate::agent::HealthPoint>>,
    deployments: BTreeMap<DeploymentId, Deployment>,
    tokens: Vec<ApiToken>,
    query_sources: BTreeMap<uuid::Uuid, crate::queries::QuerySource>,
}

struct StoredTask {
    task: Task,
    token: Option<LeaseToken>,
}

#[derive(Default)]
struct SampleLog {
    seen: HashSet<(AgentId, u64)>,
    samples: BTreeMap<(DateTime<Utc>, AgentId, u64), MeasurementSample>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store on the wall clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A store whose time source is `clock` (e.g. a `ManualClock` in tests).
    #[must_use]
    pub fn with_clock(clock: SharedClock) -> Self {
        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                clock,
                bus,
            }),
        }
    }

    /// Handles to every store trait, backed by this store.
    #[must_use]
    pub fn stores(&self) -> Stores {
        Stores::from_backend(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave state half-updated in a way later
        // operations rely on more than the panic itself would; keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn emit(&self, events: impl IntoIterator<Item = BusEvent>) {
        for event in events {
            // No subscriber is not an error.
            let _ = self.inner.bus.send(event);
        }
    }
}
