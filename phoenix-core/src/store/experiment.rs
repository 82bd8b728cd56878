//! Experiments, their event log, and the atomic commit of a transition.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::experiment::{Experiment, ExperimentEvent, Phase};
use crate::ids::ExperimentId;
use crate::page::{Page, PageRequest};
use crate::task::{EnqueueResult, NewTask};

/// Selects experiments for listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentFilter {
    /// Only these phases (empty: all).
    pub phases: Vec<Phase>,
}

impl ExperimentFilter {
    /// Experiments in any of `phases`.
    #[must_use]
    pub fn phases(phases: impl IntoIterator<Item = Phase>) -> Self {
        Self {
            phases: phases.into_iter().collect(),
        }
    }

    /// True when `experiment` passes.
    #[must_use]
    pub fn matches(&self, experiment: &Experiment) -> bool {
        self.phases.is_empty() || self.phases.contains(&experiment.phase)
    }
}

/// One transition to apply atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The experiment after the transition; its `version` is `expected_version + 1`.
    pub experiment: Experiment,
    /// The version the transition was decided on.
    pub expected_version: u64,
    /// Events to append (sequence numbers already assigned, contiguous).
    pub events: Vec<ExperimentEvent>,
    /// Cancel every open task of the experiment before enqueueing.
    pub cancel_open_tasks: bool,
    /// Tasks to enqueue, honouring unique keys.
    pub tasks: Vec<NewTask>,
}

/// What a commit did besides replacing the experiment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReceipt {
    /// Open tasks cancelled.
    pub cancelled: u64,
    /// One result per task, in order.
    pub enqueued: Vec<EnqueueResult>,
}

/// Experiments and their events.
#[async_trait]
pub trait ExperimentStore: Send + Sync + 'static {
    /// Inserts a new experiment and its creation event.
    ///
    /// Atomic. Fails with `Conflict` if the id exists (nothing changes). Publishes
    /// [`BusEvent::Experiment`](crate::store::BusEvent::Experiment) for the event.
    async fn create(
        &self,
        experiment: &Experiment,
        event: &ExperimentEvent,
    ) -> Result<(), StoreError>;

    /// The experiment with `id`, or `NotFound`.
    async fn get(&self, id: ExperimentId) -> Result<Experiment, StoreError>;

    /// Experiments passing `filter`, newest first (by id), one page at a time. A cursor
    /// stays valid under concurrent inserts and deletes: nothing is returned twice.
    async fn list(
        &self,
        filter: &ExperimentFilter,
        page: &PageRequest,
    ) -> Result<Page<Experiment>, StoreError>;

    /// Applies a transition, all or nothing:
    /// 1. compare-and-set: if the stored version is not `expected_version`, fail with
    ///    `Conflict` and change nothing (`NotFound` if it is gone);
    /// 2. replace the experiment and append `events`;
    /// 3. if `cancel_open_tasks`, cancel every pending or leased task of the experiment
    ///    (leases are invalidated: later completes get `LeaseLost`);
    /// 4. enqueue `tasks` with the semantics of [`TaskQueue::enqueue`](crate::store::TaskQueue::enqueue).
    ///
    /// A crash at any point leaves either the whole commit or none of it. After it is
    /// durable, publishes one `BusEvent::Experiment` per event and `TasksAvailable` for the
    /// agents that received tasks (in one bus message per commit where the bus allows).
    async fn commit(&self, commit: &Commit) -> Result<CommitReceipt, StoreError>;

    /// Deletes the experiment, its events and its samples if its version is still
    /// `expected_version` (`Conflict` otherwise, `NotFound` if absent), and cancels its open
    /// tasks. Whether deletion is allowed is decided by the caller.
    async fn delete(&self, id: ExperimentId, expected_version: u64) -> Result<(), StoreError>;

    /// Events of the experiment with `seq > after_seq`, in `seq` order, at most `limit`.
    /// `NotFound` if the experiment does not exist.
    async fn events(
        &self,
        id: ExperimentId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ExperimentEvent>, StoreError>;
}
