//! [`TaskQueue`] on the `tasks` table.
//!
//! Every statement computes time with `phoenix_now(shift)`, the database clock plus the
//! store's shift. Claims are a single `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
//! LOCKED LIMIT n)`: concurrent claimers skip each other's rows instead of waiting, and
//! each claim is one round trip. Operations on a lease are fenced in their `WHERE` clause
//! (state leased, token *and* `lease_expires_at > now`: [`lease_fence!`], written once),
//! so a stale worker changes nothing. Expired leases are found by [`lease_expired!`].
//! `fail` and `requeue_expired` lock the rows, ask the [`RetryPolicy`] (Rust) and write
//! its decision, in one transaction.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use phoenix_core::ids::{AgentId, ExperimentId, LeaseToken, TaskId};
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::{BusEvent, StoreError, TaskQueue};
use phoenix_core::task::{
    EnqueueResult, FailDecision, LeaseRef, LeasedTask, NewTask, QueueStats, RetryPolicy, Task,
    TaskFilter, TaskState,
};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::codec::{self, TaskRow, to_i32};
use crate::error::{UNIQUE_VIOLATION, store_error};
use crate::{PgStore, settle};

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

fn millis(duration: Duration) -> i64 {
    duration.num_milliseconds()
}

/// Column arrays of a batch of new tasks, for one `INSERT … SELECT FROM unnest(…)`.
#[derive(Default)]
struct NewTaskColumns {
    ids: Vec<Uuid>,
    agents: Vec<Uuid>,
    kinds: Vec<&'static str>,
    experiments: Vec<Option<Uuid>>,
    deployments: Vec<Option<Uuid>>,
    priorities: Vec<i16>,
    keys: Vec<Option<String>>,
    delays: Vec<i64>,
    max_attempts: Vec<i32>,
    payloads: Vec<Json<serde_json::Value>>,
}

impl NewTaskColumns {
    fn of<'a>(tasks: impl IntoIterator<Item = &'a NewTask>) -> Result<Self, StoreError> {
        let mut c = Self::default();
        for t in tasks {
            c.ids.push(t.id.0);
            c.agents.push(t.agent_id.0);
            c.kinds.push(t.payload.kind().as_str());
            c.experiments.push(t.payload.experiment_id().map(|e| e.0));
            c.deployments.push(t.payload.deployment_id().map(|d| d.0));
            c.priorities.push(t.priority);
            c.keys.push(t.unique_key.clone());
            c.delays.push(i64::try_from(t.delay_ms).unwrap_or(i64::MAX));
            c.max_attempts
                .push(to_i32("max_attempts", t.max_attempts.max(1))?);
            c.payloads.push(Json(codec::body(&t.payload)?));
        }
        Ok(c)
    }
}

/// Inserts the tasks that do not conflict; returns the ids inserted.
async fn insert_new(
    conn: &mut PgConnection,
    tasks: &[&NewTask],
    shift_ms: i64,
) -> Result<HashSet<Uuid>, StoreError> {
    let c = NewTaskColumns::of(tasks.iter().copied())?;
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO tasks (id, agent_id, kind, experiment_id, deployment_id, priority, \
             unique_key, state, run_at, attempts, max_attempts, payload, created_at, updated_at) \
         SELECT t.id, t.agent_id, t.kind, t.experiment_id, t.deployment_id, t.priority, \
             t.unique_key, 'pending', n.now + t.delay_ms * interval '1 millisecond', 0, \
             t.max_attempts, t.payload, n.now, n.now \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::int2[], \
                     $7::text[], $8::int8[], $9::int4[], $10::jsonb[]) \
                AS t(id, agent_id, kind, experiment_id, deployment_id, priority, unique_key, \
                     delay_ms, max_attempts, payload), \
              (SELECT phoenix_now($11) AS now) AS n \
         ON CONFLICT DO NOTHING \
         RETURNING id",
    )
    .bind(&c.ids)
    .bind(&c.agents)
    .bind(&c.kinds)
    .bind(&c.experiments)
    .bind(&c.deployments)
    .bind(&c.priorities)
    .bind(&c.keys)
    .bind(&c.delays)
    .bind(&c.max_attempts)
    .bind(&c.payloads)
    .bind(shift_ms)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    Ok(inserted.into_iter().collect())
}

/// Enqueues on `conn` (inside the caller's transaction when there is one), with the
/// semantics of [`TaskQueue::enqueue`].
pub(crate) async fn enqueue_in(
    conn: &mut PgConnection,
    tasks: &[NewTask],
    shift_ms: i64,
) -> Result<Vec<EnqueueResult>, StoreError> {
    let mut results: Vec<Option<EnqueueResult>> = vec![None; tasks.len()];
    // Within the batch, the first task with an id or a key is the candidate; later ones
    // are duplicates of whatever holds the key once the first is settled.
    let mut seen_ids = HashSet::new();
    let mut first_with_key: HashMap<&str, usize> = HashMap::new();
    let mut later: Vec<(usize, usize)> = Vec::new();
    let mut pending: Vec<usize> = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        if !seen_ids.insert(task.id) {
            results[i] = Some(EnqueueResult::Duplicate {
                id: task.id,
                existing: task.id,
            });
            continue;
        }
        if let Some(key) = task.unique_key.as_deref() {
            if let Some(&first) = first_with_key.get(key) {
                later.push((i, first));
                continue;
            }
            first_with_key.insert(key, i);
        }
        pending.push(i);
    }
    // A conflicting key may be freed between the insert and the look-up that explains
    // the conflict; such tasks are simply inserted again.
    for _ in 0..8 {
        if pending.is_empty() {
            break;
        }
        let batch: Vec<&NewTask> = pending.iter().map(|&i| &tasks[i]).collect();
        let inserted = insert_new(conn, &batch, shift_ms).await?;
        let missed: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&i| {
                let hit = inserted.contains(&tasks[i].id.0);
                if hit {
                    results[i] = Some(EnqueueResult::Enqueued { id: tasks[i].id });
                }
                !hit
            })
            .collect();
        if missed.is_empty() {
            pending.clear();
            break;
        }
        let ids: Vec<Uuid> = missed.iter().map(|&i| tasks[i].id.0).collect();
        let keys: Vec<String> = missed
            .iter()
            .filter_map(|&i| tasks[i].unique_key.clone())
            .collect();
        let existing: HashSet<Uuid> =
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM tasks WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await
                .map_err(store_error)?
                .into_iter()
                .collect();
        let holders: HashMap<String, Uuid> = sqlx::query_as::<_, (String, Uuid)>(
            "SELECT unique_key, id FROM tasks \
             WHERE unique_key = ANY($1) AND state IN ('pending', 'leased')",
        )
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?
        .into_iter()
        .collect();
        pending = missed
            .into_iter()
            .filter(|&i| {
                let task = &tasks[i];
                let holder = if existing.contains(&task.id.0) {
                    Some(task.id.0)
                } else {
                    task.unique_key
                        .as_ref()
                        .and_then(|k| holders.get(k).copied())
                };
                if let Some(holder) = holder {
                    results[i] = Some(EnqueueResult::Duplicate {
                        id: task.id,
                        existing: TaskId(holder),
                    });
                }
                holder.is_none()
            })
            .collect();
    }
    if let Some(&i) = pending.first() {
        // A key kept changing hands under us: give up rather than loop forever.
        return Err(StoreError::conflict("task", tasks[i].id));
    }
    for (i, first) in later {
        let existing = match results[first] {
            Some(EnqueueResult::Enqueued { id }) => id,
            Some(EnqueueResult::Duplicate { existing, .. }) => existing,
            None => tasks[first].id,
        };
        results[i] = Some(EnqueueResult::Duplicate {
            id: tasks[i].id,
            existing,
        });
    }
    Ok(results
        .into_iter()
        .zip(tasks)
        .map(|(r, t)| {
            r.unwrap_or(EnqueueResult::Duplicate {
                id: t.id,
                existing: t.id,
            })
        })
        .collect())
}

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
}

#[async_trait]
impl TaskQueue for PgStore {
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<Vec<EnqueueResult>, StoreError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let outcome = enqueue_in(&mut tx, tasks, self.shift_ms()).await;
        let results = settle(tx, outcome).await?;
        self.emit(BusEvent::tasks_enqueued(tasks, &results));
        Ok(results)
    }

    async fn claim(
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

    async fn extend(&self, lease: &LeaseRef, by: Duration) -> Result<DateTime<Utc>, StoreError> {
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

    async fn complete(
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

    async fn fail(
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

    async fn release(&self, lease: &LeaseRef) -> Result<Task, StoreError> {
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

    async fn cancel(&self, filter: &TaskFilter) -> Result<u64, StoreError> {
        let mut conn = self.pool_ref().acquire().await.map_err(store_error)?;
        let cancelled = cancel_in(&mut conn, filter, self.shift_ms()).await?;
        drop(conn);
        self.emit(cancelled.iter().map(Cancelled::event));
        Ok(cancelled.len() as u64)
    }

    async fn requeue_expired(
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

    async fn redrive(&self, id: TaskId) -> Result<Task, StoreError> {
        let mut tx = self.begin().await?;
        let outcome = redrive_in(&mut tx, id, self.shift_ms()).await;
        let row = settle(tx, outcome).await?;
        let task = row.into_task()?;
        self.emit(BusEvent::task_changes(std::slice::from_ref(&task)));
        Ok(task)
    }

    async fn get(&self, id: TaskId) -> Result<Task, StoreError> {
        let row: Option<TaskRow> = sqlx::query_as(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(self.pool_ref())
        .await
        .map_err(store_error)?;
        row.ok_or_else(|| StoreError::not_found("task", id))?
            .into_task()
    }

    async fn list(
        &self,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> Result<Page<Task>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<TaskId> = parse_cursor(page.after.as_deref())?;
        let mut qb = QueryBuilder::new(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE true"
        ));
        push_filter(&mut qb, filter, true);
        if let Some(after) = after {
            qb.push(" AND id < ").push_bind(after.0);
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<TaskRow> = qb
            .build_query_as()
            .fetch_all(self.pool_ref())
            .await
            .map_err(store_error)?;
        Ok(Page::from_overfetch(codec::tasks(rows)?, limit, |t| {
            t.id.to_string()
        }))
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM tasks GROUP BY state")
                .fetch_all(self.pool_ref())
                .await
                .map_err(store_error)?;
        let (oldest, expired): (Option<DateTime<Utc>>, i64) = sqlx::query_as(concat!(
            "SELECT (SELECT min(run_at) FROM tasks WHERE state = 'pending'), \
                    (SELECT count(*) FROM tasks WHERE ",
            lease_expired!("$1"),
            ")"
        ))
        .bind(self.shift_ms())
        .fetch_one(self.pool_ref())
        .await
        .map_err(store_error)?;
        let mut stats = QueueStats::default();
        for state in TaskState::ALL {
            stats.by_state.insert(state, 0);
        }
        for (state, count) in counts {
            stats.by_state.insert(
                codec::parse("task state", &state)?,
                codec::to_u64("count", count)?,
            );
        }
        stats.oldest_pending_run_at = oldest;
        stats.expired_leases = codec::to_u64("count", expired)?;
        Ok(stats)
    }

    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
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
}
