//! Enqueueing: one `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING` per batch,
//! then the conflicts explained (a duplicate id, or a unique key held by an open task).

use std::collections::{HashMap, HashSet};

use phoenix_core::ids::TaskId;
use phoenix_core::store::{BusEvent, StoreError};
use phoenix_core::task::{EnqueueResult, NewTask};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::codec::{self, to_i32};
use crate::error::store_error;
use crate::{PgStore, settle};

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

impl PgStore {
    /// [`TaskQueue::enqueue`](phoenix_core::store::TaskQueue::enqueue).
    pub(super) async fn enqueue_tasks(
        &self,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let outcome = enqueue_in(&mut tx, tasks, self.shift_ms()).await;
        let results = settle(tx, outcome).await?;
        self.emit(BusEvent::tasks_enqueued(tasks, &results));
        Ok(results)
    }
}
