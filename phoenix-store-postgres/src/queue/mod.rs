//! [`TaskQueue`] on the `tasks` table.
//!
//! Every statement computes time with `phoenix_now(shift)`, the database clock plus the
//! store's shift. Claims are a single `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
//! LOCKED LIMIT n)`: concurrent claimers skip each other's rows instead of waiting, and
//! each claim is one round trip. Operations on a lease are fenced in their `WHERE` clause
//! (state leased, token *and* `lease_expires_at > now`: `lease_fence!`, written once),
//! so a stale worker changes nothing. Expired leases are found by `lease_expired!`.
//! `fail` and `requeue_expired` lock the rows, ask the [`RetryPolicy`] (Rust) and write
//! its decision, in one transaction.
//!
//! By concept: [`enqueue`] (batch insert, duplicates explained), [`lease`] (claim and the
//! fenced operations on a lease), [`sweep`] (expired leases, cancel, re-drive, prune),
//! [`listing`] (get, list, stats). The trait implementation below only delegates.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use phoenix_core::ids::{AgentId, TaskId};
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::{StoreError, TaskQueue};
use phoenix_core::task::{
    EnqueueResult, LeaseRef, LeasedTask, NewTask, QueueStats, RetryPolicy, Task, TaskFilter,
};
use sqlx::{Postgres, QueryBuilder};

use crate::PgStore;
use crate::codec;

/// The columns of [`TaskRow`], optionally qualified (`task_columns!("t.")`).
macro_rules! task_columns {
    () => {
        task_columns!("")
    };
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "agent_id, ",
            $p,
            "payload, ",
            $p,
            "priority, ",
            $p,
            "unique_key, ",
            $p,
            "state, ",
            $p,
            "run_at, ",
            $p,
            "attempts, ",
            $p,
            "max_attempts, ",
            $p,
            "lease_token, ",
            $p,
            "lease_expires_at, ",
            $p,
            "last_error, ",
            $p,
            "result, ",
            $p,
            "created_at, ",
            $p,
            "updated_at"
        )
    };
}

/// The fence of every operation on a lease, written once: the task is leased, under the
/// given token, and the lease has not expired by the database clock plus the store's
/// shift. A parenthesised SQL condition; the arguments are SQL (placeholders or columns):
/// `lease_fence!("$2", "$4")`, or `lease_fence!("t.", "c.token", "$4")` with the task's
/// columns qualified. `NULL` (no lease) never passes: callers either filter on it or ask
/// `… IS TRUE`.
macro_rules! lease_fence {
    ($token:literal, $shift:literal) => {
        lease_fence!("", $token, $shift)
    };
    ($p:literal, $token:literal, $shift:literal) => {
        concat!(
            "(",
            $p,
            "state = 'leased' AND ",
            $p,
            "lease_token = ",
            $token,
            " AND ",
            $p,
            "lease_expires_at > phoenix_now(",
            $shift,
            "))"
        )
    };
}

/// The complement for the sweeper: leased and past its expiry (database clock plus the
/// shift given as a placeholder), `lease_expired!("$1")`.
macro_rules! lease_expired {
    ($shift:literal) => {
        concat!(
            "(state = 'leased' AND lease_expires_at <= phoenix_now(",
            $shift,
            "))"
        )
    };
}

mod enqueue;
mod lease;
mod listing;
mod sweep;

pub(crate) use enqueue::enqueue_in;
pub(crate) use sweep::{Cancelled, cancel_in};

fn millis(duration: Duration) -> i64 {
    duration.num_milliseconds()
}

/// Appends `filter`'s conditions (states only when `with_states`) to a `WHERE` clause.
fn push_filter(qb: &mut QueryBuilder<Postgres>, filter: &TaskFilter, with_states: bool) {
    if let Some(agent) = filter.agent_id {
        qb.push(" AND agent_id = ").push_bind(agent.0);
    }
    if let Some(experiment) = filter.experiment_id {
        qb.push(" AND experiment_id = ").push_bind(experiment.0);
    }
    if let Some(deployment) = filter.deployment_id {
        qb.push(" AND deployment_id = ").push_bind(deployment.0);
    }
    if let Some(kind) = filter.kind {
        qb.push(" AND kind = ").push_bind(kind.as_str());
    }
    if with_states && !filter.states.is_empty() {
        let states: Vec<&'static str> = filter
            .states
            .iter()
            .map(|s| codec::task_state(*s))
            .collect();
        qb.push(" AND state = ANY(").push_bind(states).push(")");
    }
}

/// Parses a list cursor (an id); a malformed cursor is the caller's error.
pub(crate) fn parse_cursor<T: std::str::FromStr>(
    cursor: Option<&str>,
) -> Result<Option<T>, StoreError> {
    cursor
        .map(|c| {
            c.parse()
                .map_err(|_| StoreError::Invalid(format!("malformed cursor `{c}`")))
        })
        .transpose()
}

#[async_trait]
impl TaskQueue for PgStore {
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<Vec<EnqueueResult>, StoreError> {
        self.enqueue_tasks(tasks).await
    }

    async fn claim(
        &self,
        agent: AgentId,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedTask>, StoreError> {
        self.claim_leases(agent, max, lease).await
    }

    async fn extend(&self, lease: &LeaseRef, by: Duration) -> Result<DateTime<Utc>, StoreError> {
        self.extend_lease(lease, by).await
    }

    async fn complete(
        &self,
        lease: &LeaseRef,
        result: Option<serde_json::Value>,
    ) -> Result<Task, StoreError> {
        self.complete_lease(lease, result).await
    }

    async fn fail(
        &self,
        lease: &LeaseRef,
        error: &str,
        retryable: bool,
        policy: &RetryPolicy,
    ) -> Result<Task, StoreError> {
        self.fail_lease(lease, error, retryable, policy).await
    }

    async fn release(&self, lease: &LeaseRef) -> Result<Task, StoreError> {
        self.release_lease(lease).await
    }

    async fn cancel(&self, filter: &TaskFilter) -> Result<u64, StoreError> {
        self.cancel_tasks(filter).await
    }

    async fn requeue_expired(
        &self,
        policy: &RetryPolicy,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        self.requeue_expired_leases(policy, limit).await
    }

    async fn redrive(&self, id: TaskId) -> Result<Task, StoreError> {
        self.redrive_task(id).await
    }

    async fn get(&self, id: TaskId) -> Result<Task, StoreError> {
        self.get_task(id).await
    }

    async fn list(
        &self,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> Result<Page<Task>, StoreError> {
        self.list_tasks(filter, page).await
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.queue_stats().await
    }

    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        self.prune_tasks(before, limit).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fence_is_leased_token_and_unexpired() {
        assert_eq!(
            lease_fence!("$2", "$4"),
            "(state = 'leased' AND lease_token = $2 AND lease_expires_at > phoenix_now($4))"
        );
        assert_eq!(
            lease_fence!("t.", "c.token", "$4"),
            "(t.state = 'leased' AND t.lease_token = c.token \
             AND t.lease_expires_at > phoenix_now($4))"
        );
        assert_eq!(
            lease_expired!("$1"),
            "(state = 'leased' AND lease_expires_at <= phoenix_now($1))"
        );
    }

    /// No statement of the queue spells the fence or the expiry out again: every lease
    /// condition goes through the macros above.
    #[test]
    fn lease_conditions_are_written_once() {
        let this = include_str!("mod.rs");
        let sources = [
            // This file up to its tests: the macro definitions.
            ("mod.rs", &this[..this.find("#[cfg(test)]").unwrap()], 1),
            ("enqueue.rs", include_str!("enqueue.rs"), 0),
            ("lease.rs", include_str!("lease.rs"), 0),
            ("listing.rs", include_str!("listing.rs"), 0),
            ("sweep.rs", include_str!("sweep.rs"), 0),
        ];
        for (file, text, definitions) in sources {
            for needle in [
                "lease_expires_at > phoenix_now",
                "lease_expires_at <= phoenix_now",
            ] {
                assert_eq!(
                    text.matches(needle).count(),
                    definitions,
                    "{file} spells `{needle}` outside the lease macros"
                );
            }
            assert!(
                !text.contains("lease_token = $") && !text.contains("lease_token = c."),
                "{file} compares a lease token outside `lease_fence!`"
            );
        }
    }
}
