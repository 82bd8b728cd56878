//! Storage traits: one small trait per aggregate, and the [`Stores`] bundle.
//!
//! Backends implement atomic primitives (insert, get, list with cursor, compare-and-set,
//! claim with lease, conditional complete, requeue expired). Every rule (which transition is
//! legal, when a task is retried, when an agent is lost) lives in `phoenix-core` and is
//! never repeated in SQL or Lua. Each method documents its contract; a new backend author
//! should need nothing else, and `phoenix-conformance` checks every contract.
//!
//! All traits are `#[async_trait]`, take `&self`, are `Send + Sync + 'static` and are used as
//! `Arc<dyn Trait>`, so a server picks its backend at runtime.

mod agent;
mod bus;
mod deployment;
mod experiment;
mod history;
mod metric;
mod query;
mod queue;
mod token;

use std::sync::Arc;

pub use agent::{AgentRegistry, MAX_HEALTH_POINTS_PER_AGENT};
pub use bus::{BusEvent, EventBus};
pub use deployment::DeploymentStore;
pub use experiment::{Commit, CommitReceipt, ExperimentFilter, ExperimentStore};
pub use history::HistoryStore;
pub use metric::{
    AppendReport, MAX_SAMPLES_PER_EXPERIMENT, MetricStore, SnapshotVersion, VersionedSnapshot,
    content_version,
};
pub use query::QueryStore;
pub use queue::TaskQueue;
pub use token::TokenStore;

pub use crate::error::StoreError;

/// Handles to every store of one backend. Cheap to clone.
#[derive(Clone)]
pub struct Stores {
    /// Experiments, their events, and atomic commits of transitions.
    pub experiments: Arc<dyn ExperimentStore>,
    /// The task queue.
    pub queue: Arc<dyn TaskQueue>,
    /// Enrolled agents.
    pub agents: Arc<dyn AgentRegistry>,
    /// Measurements and cardinality snapshots.
    pub metrics: Arc<dyn MetricStore>,
    /// Cost history rollups.
    pub history: Arc<dyn HistoryStore>,
    /// Quick deployments.
    pub deployments: Arc<dyn DeploymentStore>,
    /// User API tokens.
    pub tokens: Arc<dyn TokenStore>,
    /// The query inventory.
    pub queries: Arc<dyn QueryStore>,
    /// Domain events across processes.
    pub bus: Arc<dyn EventBus>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    /// Every handle from one backend value that implements every trait.
    pub fn from_backend<B>(backend: B) -> Self
    where
        B: ExperimentStore
            + TaskQueue
            + AgentRegistry
            + MetricStore
            + HistoryStore
            + DeploymentStore
            + TokenStore
            + QueryStore
            + EventBus
            + Clone,
    {
        Self {
            experiments: Arc::new(backend.clone()),
            queue: Arc::new(backend.clone()),
            agents: Arc::new(backend.clone()),
            metrics: Arc::new(backend.clone()),
            history: Arc::new(backend.clone()),
            deployments: Arc::new(backend.clone()),
            tokens: Arc::new(backend.clone()),
            queries: Arc::new(backend.clone()),
            bus: Arc::new(backend),
        }
    }
}
