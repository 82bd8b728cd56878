//! Claims and the operations on a lease: extend, complete (one or a batch), fail,
//! release. Every one after the claim is fenced by `lease_fence!` in its `WHERE`; when
//! the fence matches nothing, `PgStore::lease_failure` tells `LeaseLost` from `NotFound`.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use phoenix_core::ids::{AgentId, LeaseToken, TaskId};
use phoenix_core::store::{BusEvent, StoreError};
use phoenix_core::task::{FailDecision, LeaseRef, LeasedTask, RetryPolicy, Task, TaskState};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use super::millis;
use crate::codec::{self, TaskRow};
use crate::error::store_error;
use crate::{PgStore, settle};

/// `fail` inside a transaction: lock the task, check the lease, ask the policy, write.
async fn fail_in(
    conn: &mut PgConnection,
    lease: &LeaseRef,
    error: &str,
    retryable: bool,
    policy: &RetryPolicy,
    shift: i64,
) -> Result<TaskRow, StoreError> {
    let current: Option<(i32, i32, bool)> = sqlx::query_as(concat!(
        "SELECT attempts, max_attempts, ",
        lease_fence!("$2", "$3"),
        " IS TRUE FROM tasks WHERE id = $1 FOR UPDATE"
    ))
    .bind(lease.task_id.0)
    .bind(lease.token.0)
    .bind(shift)
    .fetch_optional(&mut *conn)
    .await
    .map_err(store_error)?;
    let Some((attempts, max_attempts, valid)) = current else {
        return Err(StoreError::not_found("task", lease.task_id));
    };
    if !valid {
        return Err(StoreError::LeaseLost {
            task: lease.task_id,
        });
    }
    let attempts = u32::try_from(attempts).unwrap_or(0);
    let max_attempts = u32::try_from(max_attempts).unwrap_or(1);
    let (next, delay) = if retryable {
        match policy.decide(lease.task_id, attempts, max_attempts) {
            FailDecision::Retry { delay } => (TaskState::Pending, millis(delay)),
            FailDecision::DeadLetter => (TaskState::DeadLettered, 0),
        }
    } else {
        (TaskState::Failed, 0)
    };
    sqlx::query_as(concat!(
        "UPDATE tasks SET state = $2, run_at = phoenix_now($5) + $3 * interval '1 millisecond', \
                 last_error = $4, lease_token = NULL, lease_expires_at = NULL, \
                 updated_at = phoenix_now($5) \
             WHERE id = $1 \
             RETURNING ",
        task_columns!()
    ))
    .bind(lease.task_id.0)
    .bind(codec::task_state(next))
    .bind(delay)
    .bind(phoenix_core::task::truncate_error(error))
    .bind(shift)
    .fetch_one(&mut *conn)
    .await
    .map_err(store_error)
}

impl PgStore {
    /// `LeaseLost` if the task exists, `NotFound` otherwise (after a fenced statement
    /// matched nothing).
    async fn lease_failure(&self, task: TaskId) -> StoreError {
        let exists =
            sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $1)")
                .bind(task.0)
                .fetch_one(self.pool_ref())
                .await;
        match exists {
            Ok(true) => StoreError::LeaseLost { task },
            Ok(false) => StoreError::not_found("task", task),
            Err(e) => store_error(e),
        }
    }

    /// Completes several leases in one statement (an agent reporting a batch). Each lease
    /// is fenced like [`TaskQueue::complete`]; the result per lease is in input order.
    pub async fn complete_batch(
        &self,
        leases: &[(LeaseRef, Option<serde_json::Value>)],
    ) -> Result<Vec<Result<Task, StoreError>>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = leases.iter().map(|(l, _)| l.task_id.0).collect();
        let tokens: Vec<Uuid> = leases.iter().map(|(l, _)| l.token.0).collect();
        let results: Vec<Option<Json<&serde_json::Value>>> =
            leases.iter().map(|(_, r)| r.as_ref().map(Json)).collect();
        let rows: Vec<TaskRow> = sqlx::query_as(concat!(
            "UPDATE tasks t SET state = 'succeeded', result = c.result, lease_token = NULL, \
                 lease_expires_at = NULL, updated_at = phoenix_now($4) \
             FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[]) AS c(id, token, result) \
             WHERE t.id = c.id AND ",
            lease_fence!("t.", "c.token", "$4"),
            " RETURNING ",
            task_columns!("t.")
        ))
        .bind(&ids)
        .bind(&tokens)
        .bind(&results)
        .bind(self.shift_ms())
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        let mut done: HashMap<TaskId, Task> = HashMap::with_capacity(rows.len());
        for row in rows {
            let task = row.into_task()?;
            done.insert(task.id, task);
        }
        self.emit(done.values().map(BusEvent::task_updated));
        let mut out = Vec::with_capacity(leases.len());
        for (lease, _) in leases {
            out.push(match done.remove(&lease.task_id) {
                Some(task) => Ok(task),
                None => Err(self.lease_failure(lease.task_id).await),
            });
        }
        Ok(out)
    }

    /// [`TaskQueue::claim`](phoenix_core::store::TaskQueue::claim).
    pub(super) async fn claim_leases(
        &self,
        agent: AgentId,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedTask>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let rows: Vec<TaskRow> = sqlx::query_as(concat!(
            "UPDATE tasks SET state = 'leased', attempts = attempts + 1, \
                 lease_token = gen_random_uuid(), \
                 lease_expires_at = phoenix_now($4) + $3 * interval '1 millisecond', \
                 updated_at = phoenix_now($4) \
             WHERE id IN ( \
                 SELECT id FROM tasks \
                 WHERE agent_id = $1 AND state = 'pending' AND run_at <= phoenix_now($4) \
                 ORDER BY priority DESC, run_at, id \
                 LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) \
             RETURNING ",
            task_columns!()
        ))
        .bind(agent.0)
        .bind(limit)
        .bind(millis(lease))
        .bind(self.shift_ms())
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let token = row.lease_token;
            let task = row.into_task()?;
            let (Some(token), Some(expires)) = (token, task.lease_expires_at) else {
                return Err(crate::error::corrupt("a claimed task has no lease"));
            };
            claimed.push(LeasedTask {
                task,
                lease_token: LeaseToken(token),
                lease_expires_at: expires,
            });
        }
        // UPDATE … RETURNING has no order: restore the claim order.
        claimed.sort_by(|a, b| {
            (std::cmp::Reverse(a.task.priority), a.task.run_at, a.task.id).cmp(&(
                std::cmp::Reverse(b.task.priority),
                b.task.run_at,
                b.task.id,
            ))
        });
        self.emit(claimed.iter().map(|l| BusEvent::task_updated(&l.task)));
        Ok(claimed)
    }

    /// [`TaskQueue::extend`](phoenix_core::store::TaskQueue::extend).
    pub(super) async fn extend_lease(
        &self,
        lease: &LeaseRef,
        by: Duration,
    ) -> Result<DateTime<Utc>, StoreError> {
        let expires: Option<DateTime<Utc>> = sqlx::query_scalar(concat!(
            "UPDATE tasks SET lease_expires_at = phoenix_now($4) + $3 * interval '1 millisecond', \
                 updated_at = phoenix_now($4) \
             WHERE id = $1 AND ",
            lease_fence!("$2", "$4"),
            " RETURNING lease_expires_at"
        ))
        .bind(lease.task_id.0)
        .bind(lease.token.0)
        .bind(millis(by))
        .bind(self.shift_ms())
        .fetch_optional(self.pool_ref())
        .await
        .map_err(store_error)?;
        match expires {
            Some(expires) => Ok(expires),
            None => Err(self.lease_failure(lease.task_id).await),
        }
    }

    /// [`TaskQueue::complete`](phoenix_core::store::TaskQueue::complete).
    pub(super) async fn complete_lease(
        &self,
        lease: &LeaseRef,
        result: Option<serde_json::Value>,
    ) -> Result<Task, StoreError> {
        let row: Option<TaskRow> = sqlx::query_as(concat!(
            "UPDATE tasks SET state = 'succeeded', result = $3, lease_token = NULL, \
                 lease_expires_at = NULL, updated_at = phoenix_now($4) \
             WHERE id = $1 AND ",
            lease_fence!("$2", "$4"),
            " RETURNING ",
            task_columns!()
        ))
        .bind(lease.task_id.0)
        .bind(lease.token.0)
        .bind(result.as_ref().map(Json))
        .bind(self.shift_ms())
        .fetch_optional(self.pool_ref())
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Err(self.lease_failure(lease.task_id).await);
        };
        let task = row.into_task()?;
        self.emit([BusEvent::task_updated(&task)]);
        Ok(task)
    }

    /// [`TaskQueue::fail`](phoenix_core::store::TaskQueue::fail).
    pub(super) async fn fail_lease(
        &self,
        lease: &LeaseRef,
        error: &str,
        retryable: bool,
        policy: &RetryPolicy,
    ) -> Result<Task, StoreError> {
        let mut tx = self.begin().await?;
        let outcome = fail_in(&mut tx, lease, error, retryable, policy, self.shift_ms()).await;
        let row = settle(tx, outcome).await?;
        let task = row.into_task()?;
        self.emit(BusEvent::task_changes(std::slice::from_ref(&task)));
        Ok(task)
    }

    /// [`TaskQueue::release`](phoenix_core::store::TaskQueue::release).
    pub(super) async fn release_lease(&self, lease: &LeaseRef) -> Result<Task, StoreError> {
        let row: Option<TaskRow> = sqlx::query_as(concat!(
            "UPDATE tasks SET state = 'pending', attempts = greatest(attempts - 1, 0), \
                 run_at = phoenix_now($3), lease_token = NULL, lease_expires_at = NULL, \
                 updated_at = phoenix_now($3) \
             WHERE id = $1 AND ",
            lease_fence!("$2", "$3"),
            " RETURNING ",
            task_columns!()
        ))
        .bind(lease.task_id.0)
        .bind(lease.token.0)
        .bind(self.shift_ms())
        .fetch_optional(self.pool_ref())
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Err(self.lease_failure(lease.task_id).await);
        };
        let task = row.into_task()?;
        self.emit(BusEvent::task_changes(std::slice::from_ref(&task)));
        Ok(task)
    }
}
