//! [`ExperimentStore`] on the `experiments` and `experiment_events` tables.
//!
//! `commit` is one transaction: the compare-and-set on `version`, the events, the
//! cancellation of open tasks and the enqueue of new ones (transactional enqueue: a
//! transition's tasks exist if and only if the transition does).

use async_trait::async_trait;
use phoenix_core::experiment::{Experiment, ExperimentEvent};
use phoenix_core::ids::ExperimentId;
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::{
    BusEvent, Commit, CommitReceipt, ExperimentFilter, ExperimentStore, StoreError,
};
use phoenix_core::task::{EnqueueResult, TaskFilter};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::codec::{self, to_i64};
use crate::error::store_error;
use crate::queue::{Cancelled, cancel_in, enqueue_in, parse_cursor};
use crate::{PgStore, settle};

/// Appends events on `conn`.
async fn insert_events(
    conn: &mut PgConnection,
    id: ExperimentId,
    events: &[ExperimentEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut seqs = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for event in events {
        seqs.push(to_i64("event seq", event.seq)?);
        bodies.push(Json(codec::body(event)?));
    }
    let inserted = sqlx::query(
        "INSERT INTO experiment_events (experiment_id, seq, body) \
         SELECT $1, e.seq, e.body FROM unnest($2::int8[], $3::jsonb[]) AS e(seq, body) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id.0)
    .bind(&seqs)
    .bind(&bodies)
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    if inserted.rows_affected() == events.len() as u64 {
        Ok(())
    } else {
        // A sequence number already taken: the log would not replay. The caller decided
        // on stale state.
        Err(StoreError::conflict("experiment", id))
    }
}

async fn create_in(
    conn: &mut PgConnection,
    experiment: &Experiment,
    event: &ExperimentEvent,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO experiments (id, phase, version, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(experiment.id.0)
    .bind(codec::phase(experiment.phase))
    .bind(to_i64("version", experiment.version)?)
    .bind(Json(codec::body(experiment)?))
    .bind(experiment.created_at)
    .bind(experiment.updated_at)
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::conflict("experiment", experiment.id));
    }
    insert_events(conn, experiment.id, std::slice::from_ref(event)).await
}

/// `commit` inside a transaction; returns the cancelled tasks and the enqueue results.
async fn commit_in(
    conn: &mut PgConnection,
    commit: &Commit,
    shift: i64,
) -> Result<(Vec<Cancelled>, Vec<EnqueueResult>), StoreError> {
    let experiment = &commit.experiment;
    let id = experiment.id;
    let swapped = sqlx::query(
        "UPDATE experiments SET phase = $2, version = $3, body = $4, updated_at = $5 \
             WHERE id = $1 AND version = $6",
    )
    .bind(id.0)
    .bind(codec::phase(experiment.phase))
    .bind(to_i64("version", experiment.version)?)
    .bind(Json(codec::body(experiment)?))
    .bind(experiment.updated_at)
    .bind(to_i64("version", commit.expected_version)?)
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    if swapped.rows_affected() == 0 {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM experiments WHERE id = $1)")
                .bind(id.0)
                .fetch_one(&mut *conn)
                .await
                .map_err(store_error)?;
        return Err(if exists {
            StoreError::conflict("experiment", id)
        } else {
            StoreError::not_found("experiment", id)
        });
    }
    insert_events(conn, id, &commit.events).await?;
    let cancelled = if commit.cancel_open_tasks {
        let filter = TaskFilter {
            experiment_id: Some(id),
            ..TaskFilter::default()
        };
        cancel_in(conn, &filter, shift).await?
    } else {
        Vec::new()
    };
    let enqueued = if commit.tasks.is_empty() {
        Vec::new()
    } else {
        enqueue_in(conn, &commit.tasks, shift).await?
    };
    Ok((cancelled, enqueued))
}

/// `delete` inside a transaction; returns the cancelled tasks.
async fn delete_in(
    conn: &mut PgConnection,
    id: ExperimentId,
    expected_version: u64,
    shift: i64,
) -> Result<Vec<Cancelled>, StoreError> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM experiments WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
    let Some(version) = version else {
        return Err(StoreError::not_found("experiment", id));
    };
    if codec::to_u64("version", version)? != expected_version {
        return Err(StoreError::conflict("experiment", id));
    }
    // Events go with the experiment (ON DELETE CASCADE).
    sqlx::query("DELETE FROM experiments WHERE id = $1")
        .bind(id.0)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    sqlx::query("DELETE FROM samples WHERE experiment_id = $1")
        .bind(id.0)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    sqlx::query("DELETE FROM sample_counts WHERE experiment_id = $1")
        .bind(id.0)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    let filter = TaskFilter {
        experiment_id: Some(id),
        ..TaskFilter::default()
    };
    cancel_in(conn, &filter, shift).await
}

fn experiments(rows: Vec<Json<serde_json::Value>>) -> Result<Vec<Experiment>, StoreError> {
    rows.into_iter()
        .map(|Json(body)| codec::from_body("experiment", body))
        .collect()
}

#[async_trait]
impl ExperimentStore for PgStore {
    async fn create(
        &self,
        experiment: &Experiment,
        event: &ExperimentEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let outcome = create_in(&mut tx, experiment, event).await;
        settle(tx, outcome).await?;
        self.emit([BusEvent::Experiment {
            event: event.clone(),
            version: experiment.version,
        }]);
        Ok(())
    }

    async fn get(&self, id: ExperimentId) -> Result<Experiment, StoreError> {
        let body: Option<Json<serde_json::Value>> =
            sqlx::query_scalar("SELECT body FROM experiments WHERE id = $1")
                .bind(id.0)
                .fetch_optional(self.pool_ref())
                .await
                .map_err(store_error)?;
        let Json(body) = body.ok_or_else(|| StoreError::not_found("experiment", id))?;
        codec::from_body("experiment", body)
    }

    async fn list(
        &self,
        filter: &ExperimentFilter,
        page: &PageRequest,
    ) -> Result<Page<Experiment>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<ExperimentId> = parse_cursor(page.after.as_deref())?;
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT body FROM experiments WHERE true");
        if !filter.phases.is_empty() {
            let phases: Vec<&'static str> =
                filter.phases.iter().map(|p| codec::phase(*p)).collect();
            qb.push(" AND phase = ANY(").push_bind(phases).push(")");
        }
        if let Some(after) = after {
            qb.push(" AND id < ").push_bind(after.0);
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<Json<serde_json::Value>> = qb
            .build_query_scalar()
            .fetch_all(self.pool_ref())
            .await
            .map_err(store_error)?;
        Ok(Page::from_overfetch(experiments(rows)?, limit, |e| {
            e.id.to_string()
        }))
    }

    async fn commit(&self, commit: &Commit) -> Result<CommitReceipt, StoreError> {
        let experiment = &commit.experiment;
        let id = experiment.id;
        if experiment.version != commit.expected_version + 1 {
            return Err(StoreError::conflict("experiment", id));
        }
        let mut tx = self.begin().await?;
        let outcome = commit_in(&mut tx, commit, self.shift_ms()).await;
        let (cancelled, enqueued) = settle(tx, outcome).await?;
        let version = experiment.version;
        self.emit(
            commit
                .events
                .iter()
                .map(|event| BusEvent::Experiment {
                    event: event.clone(),
                    version,
                })
                .chain(cancelled.iter().map(Cancelled::event))
                .chain(BusEvent::tasks_enqueued(&commit.tasks, &enqueued)),
        );
        Ok(CommitReceipt {
            cancelled: cancelled.len() as u64,
            enqueued,
        })
    }

    async fn delete(&self, id: ExperimentId, expected_version: u64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let outcome = delete_in(&mut tx, id, expected_version, self.shift_ms()).await;
        let cancelled = settle(tx, outcome).await?;
        self.emit(
            [BusEvent::ExperimentDeleted { experiment_id: id }]
                .into_iter()
                .chain(cancelled.iter().map(Cancelled::event)),
        );
        Ok(())
    }

    async fn events(
        &self,
        id: ExperimentId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ExperimentEvent>, StoreError> {
        // One round trip: the existence check rides along (a missing experiment is
        // `NotFound`, an experiment without later events is an empty list).
        let rows: Vec<(Option<i64>, Option<Json<serde_json::Value>>)> = sqlx::query_as(
            "SELECT e.seq, e.body FROM experiments x \
             LEFT JOIN LATERAL ( \
                 SELECT seq, body FROM experiment_events \
                 WHERE experiment_id = x.id AND seq > $2 \
                 ORDER BY seq LIMIT $3) e ON true \
             WHERE x.id = $1 \
             ORDER BY e.seq",
        )
        .bind(id.0)
        .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        if rows.is_empty() {
            return Err(StoreError::not_found("experiment", id));
        }
        rows.into_iter()
            .filter_map(|(_, body)| body)
            .map(|Json(body)| codec::from_body("experiment event", body))
            .collect()
    }
}
