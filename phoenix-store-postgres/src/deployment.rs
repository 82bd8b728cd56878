//! [`DeploymentStore`] on the `deployments` table: compare-and-set on `version`, with the
//! deployment's task cancellations and enqueues in the same transaction.

use async_trait::async_trait;
use phoenix_core::deployment::Deployment;
use phoenix_core::ids::DeploymentId;
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::{BusEvent, DeploymentStore, StoreError};
use phoenix_core::task::{EnqueueResult, NewTask, TaskFilter};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::codec::{self, to_i64};
use crate::error::store_error;
use crate::queue::{Cancelled, cancel_in, enqueue_in, parse_cursor};
use crate::{PgStore, settle};

async fn create_in(
    conn: &mut PgConnection,
    deployment: &Deployment,
    tasks: &[NewTask],
    shift: i64,
) -> Result<Vec<EnqueueResult>, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO deployments (id, state, version, body) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
    )
    .bind(deployment.id.0)
    .bind(codec::deployment_state(deployment.state)?)
    .bind(to_i64("version", deployment.version)?)
    .bind(Json(codec::body(deployment)?))
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::conflict("deployment", deployment.id));
    }
    enqueue_in(conn, tasks, shift).await
}

/// `update_deployment` inside a transaction.
async fn update_in(
    conn: &mut PgConnection,
    deployment: &Deployment,
    expected: u64,
    cancel_open_tasks: bool,
    tasks: &[NewTask],
    shift: i64,
) -> Result<(Vec<Cancelled>, Vec<EnqueueResult>), StoreError> {
    let id = deployment.id;
    let swapped = sqlx::query(
        "UPDATE deployments SET state = $2, version = $3, body = $4 \
             WHERE id = $1 AND version = $5",
    )
    .bind(id.0)
    .bind(codec::deployment_state(deployment.state)?)
    .bind(to_i64("version", deployment.version)?)
    .bind(Json(codec::body(deployment)?))
    .bind(to_i64("version", expected)?)
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    if swapped.rows_affected() == 0 {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM deployments WHERE id = $1)")
                .bind(id.0)
                .fetch_one(&mut *conn)
                .await
                .map_err(store_error)?;
        return Err(if exists {
            StoreError::conflict("deployment", id)
        } else {
            StoreError::not_found("deployment", id)
        });
    }
    let cancelled = if cancel_open_tasks {
        let filter = TaskFilter {
            deployment_id: Some(id),
            ..TaskFilter::default()
        };
        cancel_in(conn, &filter, shift).await?
    } else {
        Vec::new()
    };
    let results = enqueue_in(conn, tasks, shift).await?;
    Ok((cancelled, results))
}

#[async_trait]
impl DeploymentStore for PgStore {
    async fn create_deployment(
        &self,
        deployment: &Deployment,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError> {
        let mut tx = self.begin().await?;
        let outcome = create_in(&mut tx, deployment, tasks, self.shift_ms()).await;
        let results = settle(tx, outcome).await?;
        self.emit(
            [BusEvent::DeploymentUpdated {
                deployment_id: deployment.id,
            }]
            .into_iter()
            .chain(BusEvent::tasks_enqueued(tasks, &results)),
        );
        Ok(results)
    }

    async fn get_deployment(&self, id: DeploymentId) -> Result<Deployment, StoreError> {
        let body: Option<Json<serde_json::Value>> =
            sqlx::query_scalar("SELECT body FROM deployments WHERE id = $1")
                .bind(id.0)
                .fetch_optional(self.pool_ref())
                .await
                .map_err(store_error)?;
        let Json(body) = body.ok_or_else(|| StoreError::not_found("deployment", id))?;
        codec::from_body("deployment", body)
    }

    async fn list_deployments(&self, page: &PageRequest) -> Result<Page<Deployment>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<DeploymentId> = parse_cursor(page.after.as_deref())?;
        let rows: Vec<Json<serde_json::Value>> = sqlx::query_scalar(
            "SELECT body FROM deployments WHERE ($1::uuid IS NULL OR id < $1) \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(after.map(|a| a.0))
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        let deployments = rows
            .into_iter()
            .map(|Json(body)| codec::from_body("deployment", body))
            .collect::<Result<Vec<Deployment>, _>>()?;
        Ok(Page::from_overfetch(deployments, limit, |d| {
            d.id.to_string()
        }))
    }

    async fn update_deployment(
        &self,
        deployment: &Deployment,
        cancel_open_tasks: bool,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError> {
        let id = deployment.id;
        let Some(expected) = deployment.version.checked_sub(1) else {
            return Err(StoreError::conflict("deployment", id));
        };
        let mut tx = self.begin().await?;
        let outcome = update_in(
            &mut tx,
            deployment,
            expected,
            cancel_open_tasks,
            tasks,
            self.shift_ms(),
        )
        .await;
        let (cancelled, results) = settle(tx, outcome).await?;
        self.emit(
            [BusEvent::DeploymentUpdated { deployment_id: id }]
                .into_iter()
                .chain(cancelled.iter().map(Cancelled::event))
                .chain(BusEvent::tasks_enqueued(tasks, &results)),
        );
        Ok(results)
    }
}
