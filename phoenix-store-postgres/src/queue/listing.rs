//! Reading the queue: one task, a filtered page, the per-state counts.

use chrono::{DateTime, Utc};
use phoenix_core::ids::TaskId;
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::StoreError;
use phoenix_core::task::{QueueStats, Task, TaskFilter, TaskState};
use sqlx::QueryBuilder;

use super::{parse_cursor, push_filter};
use crate::PgStore;
use crate::codec::{self, TaskRow};
use crate::error::store_error;

impl PgStore {
    /// [`TaskQueue::get`](phoenix_core::store::TaskQueue::get).
    pub(super) async fn get_task(&self, id: TaskId) -> Result<Task, StoreError> {
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

    /// [`TaskQueue::list`](phoenix_core::store::TaskQueue::list).
    pub(super) async fn list_tasks(
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

    /// [`TaskQueue::stats`](phoenix_core::store::TaskQueue::stats).
    pub(super) async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
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
}
