//! [`MetricStore`] on the `samples`, `sample_counts` and `snapshots` tables.
//!
//! An append is one transaction: insert (duplicates on (experiment, agent, seq) are
//! skipped by the primary key), bump the per-experiment count, and trim the oldest
//! samples of an experiment past [`MAX_SAMPLES_PER_EXPERIMENT`]. A trimmed sample keeps
//! its row without a body, so a re-sent old sample is still a duplicate.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::measure::{MeasurementSample, PackedSnapshot, SnapshotSource};
use phoenix_core::store::{
    AppendReport, BusEvent, MAX_SAMPLES_PER_EXPERIMENT, MetricStore, SnapshotVersion, StoreError,
    VersionedSnapshot,
};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::codec::{self, to_i64};
use crate::error::{corrupt, store_error};
use crate::{PgStore, settle};

/// `append_samples` inside a transaction; returns the samples inserted per experiment.
async fn append_in(
    conn: &mut PgConnection,
    experiments: &[Uuid],
    agents: &[Uuid],
    seqs: &[i64],
    taken: &[DateTime<Utc>],
    bodies: &[Json<serde_json::Value>],
) -> Result<BTreeMap<Uuid, i64>, StoreError> {
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO samples (experiment_id, agent_id, seq, taken_at, body) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::timestamptz[], \
                                  $5::jsonb[]) \
             ON CONFLICT DO NOTHING \
             RETURNING experiment_id",
    )
    .bind(experiments)
    .bind(agents)
    .bind(seqs)
    .bind(taken)
    .bind(bodies)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    let mut per_experiment: BTreeMap<Uuid, i64> = BTreeMap::new();
    for id in &inserted {
        *per_experiment.entry(*id).or_default() += 1;
    }
    if !per_experiment.is_empty() {
        let (ids, added): (Vec<Uuid>, Vec<i64>) =
            per_experiment.iter().map(|(k, v)| (*k, *v)).unzip();
        let cap = to_i64("sample cap", MAX_SAMPLES_PER_EXPERIMENT as u64)?;
        let over: Vec<(Uuid, i64)> = sqlx::query_as(
                "INSERT INTO sample_counts (experiment_id, kept) \
                 SELECT * FROM unnest($1::uuid[], $2::int8[]) \
                 ON CONFLICT (experiment_id) DO UPDATE SET kept = sample_counts.kept + excluded.kept \
                 RETURNING experiment_id, kept",
            )
            .bind(&ids)
            .bind(&added)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        for (experiment, kept) in over.into_iter().filter(|(_, kept)| *kept > cap) {
            let trimmed = sqlx::query(
                "UPDATE samples SET body = NULL \
                     WHERE (experiment_id, agent_id, seq) IN ( \
                         SELECT experiment_id, agent_id, seq FROM samples \
                         WHERE experiment_id = $1 AND body IS NOT NULL \
                         ORDER BY taken_at, agent_id, seq LIMIT $2)",
            )
            .bind(experiment)
            .bind(kept - cap)
            .execute(&mut *conn)
            .await
            .map_err(store_error)?
            .rows_affected();
            sqlx::query("UPDATE sample_counts SET kept = kept - $2 WHERE experiment_id = $1")
                .bind(experiment)
                .bind(i64::try_from(trimmed).unwrap_or(0))
                .execute(&mut *conn)
                .await
                .map_err(store_error)?;
        }
    }
    Ok(per_experiment)
}

#[async_trait]
impl MetricStore for PgStore {
    async fn append_samples(
        &self,
        samples: &[MeasurementSample],
    ) -> Result<AppendReport, StoreError> {
        if samples.is_empty() {
            return Ok(AppendReport::default());
        }
        let mut experiments = Vec::with_capacity(samples.len());
        let mut agents = Vec::with_capacity(samples.len());
        let mut seqs = Vec::with_capacity(samples.len());
        let mut taken = Vec::with_capacity(samples.len());
        let mut bodies = Vec::with_capacity(samples.len());
        for s in samples {
            experiments.push(s.experiment_id.0);
            agents.push(s.agent_id.0);
            seqs.push(to_i64("sample seq", s.seq)?);
            taken.push(s.taken_at);
            bodies.push(Json(codec::body(s)?));
        }
        let mut tx = self.begin().await?;
        let outcome = append_in(&mut tx, &experiments, &agents, &seqs, &taken, &bodies).await;
        let per_experiment = settle(tx, outcome).await?;
        let inserted: i64 = per_experiment.values().sum();
        let report = AppendReport {
            inserted: codec::to_u64("count", inserted)?,
            duplicates: (samples.len() as u64).saturating_sub(codec::to_u64("count", inserted)?),
        };
        self.emit(per_experiment.keys().map(|id| BusEvent::KpisUpdated {
            experiment_id: ExperimentId(*id),
        }));
        Ok(report)
    }

    async fn samples(
        &self,
        experiment: ExperimentId,
        limit: usize,
    ) -> Result<Vec<MeasurementSample>, StoreError> {
        let rows: Vec<Json<serde_json::Value>> = sqlx::query_scalar(
            "SELECT body FROM samples WHERE experiment_id = $1 AND body IS NOT NULL \
             ORDER BY taken_at, agent_id, seq LIMIT $2",
        )
        .bind(experiment.0)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|Json(body)| codec::from_body("sample", body))
            .collect()
    }

    async fn recent_samples(
        &self,
        experiment: ExperimentId,
        agent: AgentId,
        limit: usize,
    ) -> Result<Vec<MeasurementSample>, StoreError> {
        // The primary key (experiment_id, agent_id, seq) serves this backwards.
        let rows: Vec<Json<serde_json::Value>> = sqlx::query_scalar(
            "SELECT body FROM samples \
             WHERE experiment_id = $1 AND agent_id = $2 AND body IS NOT NULL \
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(experiment.0)
        .bind(agent.0)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|Json(body)| codec::from_body("sample", body))
            .collect()
    }

    async fn put_snapshot(&self, snapshot: &PackedSnapshot) -> Result<(), StoreError> {
        // Serialized straight to JSON text (no `serde_json::Value` on the way): a snapshot
        // can hold thousands of series. Kept packed, as agents send it.
        let json = serde_json::to_string(snapshot)
            .map_err(|e| StoreError::Invalid(format!("value cannot be serialized: {e}")))?;
        sqlx::query(
            "INSERT INTO snapshots (agent_id, source, body, taken_at, interval_secs) \
             VALUES ($1, $2, $3::jsonb, $4, $5) \
             ON CONFLICT (agent_id, source) DO UPDATE SET body = excluded.body, \
             taken_at = excluded.taken_at, interval_secs = excluded.interval_secs, \
             version = nextval('snapshot_versions')",
        )
        .bind(snapshot.agent_id.0)
        .bind(snapshot.source.as_str())
        .bind(json)
        .bind(snapshot.taken_at)
        .bind(i32::try_from(snapshot.interval_secs).unwrap_or(i32::MAX))
        .execute(self.pool_ref())
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn snapshots(&self) -> Result<Vec<PackedSnapshot>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT body::text FROM snapshots ORDER BY agent_id, source")
                .fetch_all(self.pool_ref())
                .await
                .map_err(store_error)?;
        rows.iter().map(|body| decode_snapshot(body)).collect()
    }

    async fn snapshot(&self, agent: AgentId) -> Result<Option<PackedSnapshot>, StoreError> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body::text FROM snapshots WHERE agent_id = $1 AND source = $2",
        )
        .bind(agent.0)
        .bind(SnapshotSource::Input.as_str())
        .fetch_optional(self.pool_ref())
        .await
        .map_err(store_error)?;
        body.as_deref().map(decode_snapshot).transpose()
    }

    async fn snapshot_versions(&self) -> Result<Vec<SnapshotVersion>, StoreError> {
        let rows: Vec<(Uuid, String, DateTime<Utc>, i32, i64)> = sqlx::query_as(
            "SELECT agent_id, source, taken_at, interval_secs, version FROM snapshots \
             ORDER BY agent_id, source",
        )
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|(agent, source, taken_at, interval_secs, version)| {
                Ok(SnapshotVersion {
                    agent_id: AgentId(agent),
                    source: source
                        .parse()
                        .map_err(|_| corrupt("unknown snapshot source"))?,
                    taken_at,
                    interval_secs: u32::try_from(interval_secs)
                        .map_err(|_| corrupt("negative snapshot interval"))?,
                    version: u64::try_from(version)
                        .map_err(|_| corrupt("negative snapshot version"))?,
                })
            })
            .collect()
    }

    async fn snapshots_of(
        &self,
        keys: &[(AgentId, SnapshotSource)],
    ) -> Result<Vec<VersionedSnapshot>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let agents: Vec<Uuid> = keys.iter().map(|(a, _)| a.0).collect();
        let sources: Vec<&str> = keys.iter().map(|(_, s)| s.as_str()).collect();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, body::text FROM snapshots \
             WHERE (agent_id, source) IN (SELECT * FROM unnest($1::uuid[], $2::text[])) \
             ORDER BY agent_id, source",
        )
        .bind(agents)
        .bind(sources)
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|(version, body)| {
                Ok(VersionedSnapshot {
                    version: u64::try_from(*version)
                        .map_err(|_| corrupt("negative snapshot version"))?,
                    snapshot: decode_snapshot(body)?,
                })
            })
            .collect()
    }

    async fn delete_snapshots(&self, agents: &[AgentId]) -> Result<u64, StoreError> {
        if agents.is_empty() {
            return Ok(0);
        }
        let ids: Vec<uuid::Uuid> = agents.iter().map(|a| a.0).collect();
        let done = sqlx::query("DELETE FROM snapshots WHERE agent_id = ANY($1)")
            .bind(ids)
            .execute(self.pool_ref())
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}

/// A stored snapshot body, parsed from its text: packed, or spelled out as bodies stored
/// before packing are ([`PackedSnapshot::from_stored_json`]).
fn decode_snapshot(body: &str) -> Result<PackedSnapshot, StoreError> {
    PackedSnapshot::from_stored_json(body)
        .map_err(|e| corrupt(format!("stored snapshot does not decode: {e}")))
}
