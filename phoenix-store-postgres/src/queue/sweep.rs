//! What the controller and operators do to tasks in bulk or after the fact: requeue
//! expired leases (found by `lease_expired!`), cancel by filter, re-drive a dead letter,
//! prune finished tasks.

use chrono::{DateTime, Utc};
use phoenix_core::ids::{AgentId, ExperimentId, TaskId};
use phoenix_core::store::{BusEvent, StoreError};
use phoenix_core::task::{FailDecision, RetryPolicy, Task, TaskFilter, TaskState};
use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;

use super::{millis, push_filter};
use crate::codec::{self, TaskRow};
use crate::error::{UNIQUE_VIOLATION, store_error};
use crate::{PgStore, settle};

/// A task cancelled by [`cancel_in`]: enough for its bus event.
pub(crate) struct Cancelled {
    id: Uuid,
    agent_id: Uuid,
    experiment_id: Option<Uuid>,
}

impl Cancelled {
    pub(crate) fn event(&self) -> BusEvent {
        BusEvent::TaskUpdated {
            task_id: TaskId(self.id),
            agent_id: AgentId(self.agent_id),
            experiment_id: self.experiment_id.map(ExperimentId),
            state: TaskState::Cancelled,
        }
    }
}

/// Cancels every open task passing `filter` on `conn`; returns them.
pub(crate) async fn cancel_in(
    conn: &mut PgConnection,
    filter: &TaskFilter,
    shift_ms: i64,
) -> Result<Vec<Cancelled>, StoreError> {
    let mut qb = QueryBuilder::new(
        "UPDATE tasks SET state = 'cancelled', lease_token = NULL, lease_expires_at = NULL, \
         updated_at = phoenix_now(",
    );
    qb.push_bind(shift_ms)
        .push(") WHERE state IN ('pending', 'leased')");
    push_filter(&mut qb, filter, false);
    qb.push(" RETURNING id, agent_id, experiment_id");
    let rows: Vec<(Uuid, Uuid, Option<Uuid>)> = qb
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|(id, agent_id, experiment_id)| Cancelled {
            id,
            agent_id,
            experiment_id,
        })
        .collect())
}

/// `requeue_expired` inside a transaction: lock expired leases (skipping rows another
/// process is handling), ask the policy about each, write the decisions in one statement.
async fn requeue_in(
    conn: &mut PgConnection,
    policy: &RetryPolicy,
    limit: usize,
    shift: i64,
) -> Result<Vec<TaskRow>, StoreError> {
    let expired: Vec<(Uuid, i32, i32)> = sqlx::query_as(concat!(
        "SELECT id, attempts, max_attempts FROM tasks \
             WHERE ",
        lease_expired!("$1"),
        " ORDER BY lease_expires_at \
             LIMIT $2 \
             FOR UPDATE SKIP LOCKED"
    ))
    .bind(shift)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(expired.len());
    let mut states = Vec::with_capacity(expired.len());
    let mut delays = Vec::with_capacity(expired.len());
    for (id, attempts, max_attempts) in expired {
        let decision = policy.on_lease_expired(
            u32::try_from(attempts).unwrap_or(0),
            u32::try_from(max_attempts).unwrap_or(1),
        );
        let (state, delay) = match decision {
            FailDecision::Retry { delay } => (TaskState::Pending, millis(delay)),
            FailDecision::DeadLetter => (TaskState::DeadLettered, 0),
        };
        ids.push(id);
        states.push(codec::task_state(state));
        delays.push(delay);
    }
    sqlx::query_as(concat!(
        "UPDATE tasks t SET state = u.state, \
                 run_at = CASE WHEN u.state = 'pending' \
                          THEN phoenix_now($4) + u.delay_ms * interval '1 millisecond' \
                          ELSE t.run_at END, \
                 last_error = 'lease expired', lease_token = NULL, lease_expires_at = NULL, \
                 updated_at = phoenix_now($4) \
             FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS u(id, state, delay_ms) \
             WHERE t.id = u.id \
             RETURNING ",
        task_columns!("t.")
    ))
    .bind(&ids)
    .bind(&states)
    .bind(&delays)
    .bind(shift)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)
}

/// `redrive` inside a transaction.
async fn redrive_in(
    conn: &mut PgConnection,
    id: TaskId,
    shift: i64,
) -> Result<TaskRow, StoreError> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
    let Some(state) = state else {
        return Err(StoreError::not_found("task", id));
    };
    let state: TaskState = codec::parse("task state", &state)?;
    if !matches!(state, TaskState::DeadLettered | TaskState::Failed) {
        return Err(StoreError::Invalid(format!(
            "task {id} is {state} and only dead-lettered or failed tasks can be re-driven"
        )));
    }
    let row: Result<TaskRow, sqlx::Error> = sqlx::query_as(concat!(
        "UPDATE tasks SET state = 'pending', attempts = 0, run_at = phoenix_now($2), \
                 updated_at = phoenix_now($2) \
             WHERE id = $1 \
             RETURNING ",
        task_columns!()
    ))
    .bind(id.0)
    .bind(shift)
    .fetch_one(&mut *conn)
    .await;
    match row {
        Ok(row) => Ok(row),
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            // Its unique key is held by another open task.
            Err(StoreError::conflict("task", id))
        }
        Err(e) => Err(store_error(e)),
    }
}

impl PgStore {
    /// [`TaskQueue::cancel`](phoenix_core::store::TaskQueue::cancel).
    pub(super) async fn cancel_tasks(&self, filter: &TaskFilter) -> Result<u64, StoreError> {
        let mut conn = self.pool_ref().acquire().await.map_err(store_error)?;
        let cancelled = cancel_in(&mut conn, filter, self.shift_ms()).await?;
        drop(conn);
        self.emit(cancelled.iter().map(Cancelled::event));
        Ok(cancelled.len() as u64)
    }

    /// [`TaskQueue::requeue_expired`](phoenix_core::store::TaskQueue::requeue_expired).
    pub(super) async fn requeue_expired_leases(
        &self,
        policy: &RetryPolicy,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The usual answer is "nothing expired": learn it in one round trip (an index-only
        // probe of the lease index) before opening a transaction.
        let any: bool = sqlx::query_scalar(concat!(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE ",
            lease_expired!("$1"),
            ")"
        ))
        .bind(self.shift_ms())
        .fetch_one(self.pool_ref())
        .await
        .map_err(store_error)?;
        if !any {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let outcome = requeue_in(&mut tx, policy, limit, self.shift_ms()).await;
        let rows = settle(tx, outcome).await?;
        let changed = codec::tasks(rows)?;
        self.emit(BusEvent::task_changes(&changed));
        Ok(changed)
    }

    /// [`TaskQueue::redrive`](phoenix_core::store::TaskQueue::redrive).
    pub(super) async fn redrive_task(&self, id: TaskId) -> Result<Task, StoreError> {
        let mut tx = self.begin().await?;
        let outcome = redrive_in(&mut tx, id, self.shift_ms()).await;
        let row = settle(tx, outcome).await?;
        let task = row.into_task()?;
        self.emit(BusEvent::task_changes(std::slice::from_ref(&task)));
        Ok(task)
    }

    /// [`TaskQueue::prune`](phoenix_core::store::TaskQueue::prune).
    pub(super) async fn prune_tasks(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM tasks WHERE id IN ( \
                 SELECT id FROM tasks \
                 WHERE state IN ('succeeded', 'cancelled') AND updated_at < $1 \
                 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(self.pool_ref())
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
