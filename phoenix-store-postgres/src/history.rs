//! [`HistoryStore`] on the `history_rollups` table: one row per (granularity, start), a
//! compare-and-set on `version` per write (an insert that finds the row is a conflict).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::history::{Granularity, RollupBucket};
use phoenix_core::store::{HistoryStore, StoreError};
use sqlx::types::Json;

use crate::PgStore;
use crate::codec::{self, to_i64};
use crate::error::store_error;

fn decode(version: i64, body: serde_json::Value) -> Result<RollupBucket, StoreError> {
    let mut bucket: RollupBucket = codec::from_body("rollup", body)?;
    bucket.version = u64::try_from(version)
        .map_err(|_| crate::error::corrupt(format!("rollup version {version}")))?;
    Ok(bucket)
}

#[async_trait]
impl HistoryStore for PgStore {
    async fn rollup(
        &self,
        granularity: Granularity,
        start: DateTime<Utc>,
    ) -> Result<Option<RollupBucket>, StoreError> {
        let row: Option<(i64, Json<serde_json::Value>)> = sqlx::query_as(
            "SELECT version, body FROM history_rollups WHERE granularity = $1 AND start_at = $2",
        )
        .bind(granularity.as_str())
        .bind(start)
        .fetch_optional(self.pool_ref())
        .await
        .map_err(store_error)?;
        row.map(|(v, Json(body))| decode(v, body)).transpose()
    }

    async fn put_rollup(&self, bucket: &RollupBucket, expected: u64) -> Result<u64, StoreError> {
        let body = Json(codec::body(bucket)?);
        let next = to_i64("rollup version", expected + 1)?;
        let done = if expected == 0 {
            sqlx::query(
                "INSERT INTO history_rollups (granularity, start_at, version, body) \
                 VALUES ($1, $2, 1, $3) ON CONFLICT DO NOTHING",
            )
            .bind(bucket.granularity.as_str())
            .bind(bucket.start)
            .bind(body)
            .execute(self.pool_ref())
            .await
        } else {
            sqlx::query(
                "UPDATE history_rollups SET version = $4, body = $3 \
                 WHERE granularity = $1 AND start_at = $2 AND version = $5",
            )
            .bind(bucket.granularity.as_str())
            .bind(bucket.start)
            .bind(body)
            .bind(next)
            .bind(to_i64("rollup version", expected)?)
            .execute(self.pool_ref())
            .await
        }
        .map_err(store_error)?;
        if done.rows_affected() == 1 {
            Ok(expected + 1)
        } else {
            Err(StoreError::conflict(
                "rollup",
                format!("{} {}", bucket.granularity, bucket.start),
            ))
        }
    }

    async fn rollups(
        &self,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RollupBucket>, StoreError> {
        let rows: Vec<(i64, Json<serde_json::Value>)> = sqlx::query_as(
            "SELECT version, body FROM history_rollups \
             WHERE granularity = $1 AND start_at >= $2 AND start_at < $3 \
             ORDER BY start_at LIMIT $4",
        )
        .bind(granularity.as_str())
        .bind(from)
        .bind(to)
        .bind(to_i64("limit", limit as u64)?)
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|(v, Json(body))| decode(v, body))
            .collect()
    }

    async fn prune_rollups(
        &self,
        granularity: Granularity,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM history_rollups WHERE granularity = $1 AND start_at < $2")
                .bind(granularity.as_str())
                .bind(before)
                .execute(self.pool_ref())
                .await
                .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
