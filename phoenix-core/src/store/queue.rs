//! The task queue.
//!
//! Semantics every backend shows (each one is a conformance case):
//! - **Claim** is atomic and exclusive: two concurrent claims never return the same task
//!   while its lease is valid. Order: priority desc, then `run_at`, then id (creation).
//! - **Leases are fenced**: a claim returns a fresh token; `extend`, `complete`, `fail` and
//!   `release` require it and a lease that is still valid (`now < lease_expires_at`), and
//!   otherwise fail with `StoreError::LeaseLost` and change nothing.
//! - **Expiry**: `requeue_expired` returns expired leases to `Pending` (the attempt counted
//!   at claim stays counted) or dead-letters them when out of attempts.
//! - **Retries**: `fail` asks the [`RetryPolicy`] for the decision; backends do not decide.
//! - **At-least-once**: a task is delivered again only after its lease expired.
//! - **Time** is the store's single time source (database clock in Postgres, `TIME` in
//!   Redis, the injected `Clock` in memory), never the caller's.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::error::StoreError;
use crate::ids::{AgentId, TaskId};
use crate::page::{Page, PageRequest};
use crate::task::{
    EnqueueResult, LeaseRef, LeasedTask, NewTask, QueueStats, RetryPolicy, Task, TaskFilter,
};

/// The task queue.
#[async_trait]
pub trait TaskQueue: Send + Sync + 'static {
    /// Enqueues a batch, all or nothing. A task whose `unique_key` is held by an open
    /// (pending or leased) task, or by an earlier task of the same batch, is not stored and
    /// is reported as [`EnqueueResult::Duplicate`]. Results are in input order. Publishes
    /// `TasksAvailable` for the agents that received tasks.
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<Vec<EnqueueResult>, StoreError>;

    /// Claims up to `max` claimable tasks of `agent` (pending, `run_at <= now`), in order
    /// (priority desc, `run_at`, id). Each becomes `Leased` with a fresh token,
    /// `attempts + 1`, and `lease_expires_at = now + lease`. Atomic and exclusive.
    async fn claim(
        &self,
        agent: AgentId,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedTask>, StoreError>;

    /// Extends a valid lease to `now + by`; returns the new expiry.
    async fn extend(&self, lease: &LeaseRef, by: Duration) -> Result<DateTime<Utc>, StoreError>;

    /// Marks a leased task `Succeeded` with its result.
    async fn complete(
        &self,
        lease: &LeaseRef,
        result: Option<serde_json::Value>,
    ) -> Result<Task, StoreError>;

    /// Completes several leased tasks, each exactly as [`TaskQueue::complete`] would: each
    /// is fenced on its own token, so one stale or unknown lease (`LeaseLost`, `NotFound`
    /// in its slot) does not affect the others. The outer error is for failures of the
    /// whole call (`Unavailable`, `Corrupt`), after which any subset may have been applied.
    /// Results are in input order. Backends override it to use one round trip; the
    /// default calls `complete` for each.
    async fn complete_batch(
        &self,
        completions: &[(LeaseRef, Option<serde_json::Value>)],
    ) -> Result<Vec<Result<Task, StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(completions.len());
        for (lease, result) in completions {
            out.push(match self.complete(lease, result.clone()).await {
                Ok(task) => Ok(task),
                Err(e @ (StoreError::LeaseLost { .. } | StoreError::NotFound { .. })) => Err(e),
                Err(e) => return Err(e),
            });
        }
        Ok(out)
    }

    /// Records a failed attempt. Non-retryable failures become `Failed`. Retryable ones
    /// follow `policy.decide(task, attempts, max_attempts)`: back to `Pending` with
    /// `run_at = now + delay`, or `DeadLettered`.
    async fn fail(
        &self,
        lease: &LeaseRef,
        error: &str,
        retryable: bool,
        policy: &RetryPolicy,
    ) -> Result<Task, StoreError>;

    /// Gives a leased task back (agent shutting down): `Pending` now, and the attempt the
    /// claim counted is not counted.
    async fn release(&self, lease: &LeaseRef) -> Result<Task, StoreError>;

    /// Cancels every open task passing `filter` (its `states` are ignored); leases are
    /// invalidated. Returns how many were cancelled.
    async fn cancel(&self, filter: &TaskFilter) -> Result<u64, StoreError>;

    /// Returns up to `limit` expired leases to `Pending` (or `DeadLettered` per
    /// `policy.on_lease_expired`) and returns the tasks changed. Safe to run concurrently
    /// from several processes: each expired lease is handled once.
    async fn requeue_expired(
        &self,
        policy: &RetryPolicy,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError>;

    /// Re-drives a `DeadLettered` or `Failed` task: `Pending` now with zero attempts.
    /// `Invalid` in any other state (nothing changes); `Conflict` if its unique key is held
    /// by another open task.
    async fn redrive(&self, id: TaskId) -> Result<Task, StoreError>;

    /// The task, or `NotFound`.
    async fn get(&self, id: TaskId) -> Result<Task, StoreError>;

    /// Tasks passing `filter`, newest first, one page at a time.
    async fn list(&self, filter: &TaskFilter, page: &PageRequest)
    -> Result<Page<Task>, StoreError>;

    /// Depth per state, oldest claimable pending task, expired leases.
    async fn stats(&self) -> Result<QueueStats, StoreError>;

    /// Deletes `Succeeded` and `Cancelled` tasks last updated before `before`, at most
    /// `limit`; returns how many. Dead-lettered and failed tasks are kept for inspection.
    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError>;
}
