//! [`AgentRegistry`] on the `agents` table.
//!
//! The agent is a JSONB body; `status` and `revoked` are also columns (filters) and are
//! always written together with the body. Heartbeats merge the reported fields into the
//! body in one statement, so a heartbeat costs one round trip. The health history is the
//! `agent_health` table: an append inserts, then trims the agent's rows to the newest
//! [`MAX_HEALTH_POINTS_PER_AGENT`] in a second statement, whose fresh snapshot sees every
//! append committed before it (concurrent appends each trim; the last one leaves the cap).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::agent::{Agent, AgentFilter, AgentStatus, HealthPoint, Heartbeat, SecretHash};
use phoenix_core::ids::AgentId;
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::{AgentRegistry, BusEvent, MAX_HEALTH_POINTS_PER_AGENT, StoreError};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use crate::PgStore;
use crate::codec;
use crate::error::store_error;
use crate::queue::parse_cursor;

impl PgStore {
    async fn agent_exists(&self, id: AgentId) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1)")
            .bind(id.0)
            .fetch_one(self.pool_ref())
            .await
            .map_err(store_error)
    }
}

#[async_trait]
impl AgentRegistry for PgStore {
    async fn register(&self, agent: &Agent, secret: &SecretHash) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO agents (id, status, revoked, secret_hash, body) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(agent.id.0)
        .bind(codec::agent_status(agent.status))
        .bind(agent.revoked)
        .bind(&secret.0)
        .bind(Json(codec::body(agent)?))
        .execute(self.pool_ref())
        .await
        .map_err(store_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::conflict("agent", agent.id));
        }
        self.emit([BusEvent::AgentUpdated {
            agent_id: agent.id,
            status: agent.status,
        }]);
        Ok(())
    }

    async fn get_agent(&self, id: AgentId) -> Result<Agent, StoreError> {
        let body: Option<Json<serde_json::Value>> =
            sqlx::query_scalar("SELECT body FROM agents WHERE id = $1")
                .bind(id.0)
                .fetch_optional(self.pool_ref())
                .await
                .map_err(store_error)?;
        let Json(body) = body.ok_or_else(|| StoreError::not_found("agent", id))?;
        codec::from_body("agent", body)
    }

    async fn secret_hash(&self, id: AgentId) -> Result<SecretHash, StoreError> {
        let hash: Option<String> =
            sqlx::query_scalar("SELECT secret_hash FROM agents WHERE id = $1")
                .bind(id.0)
                .fetch_optional(self.pool_ref())
                .await
                .map_err(store_error)?;
        hash.map(SecretHash)
            .ok_or_else(|| StoreError::not_found("agent", id))
    }

    async fn record_heartbeat(
        &self,
        id: AgentId,
        heartbeat: &Heartbeat,
        status: AgentStatus,
        at: DateTime<Utc>,
    ) -> Result<Agent, StoreError> {
        let started_at = match heartbeat.started_at {
            Some(started) => serde_json::json!({ "started_at": codec::body(&started)? }),
            None => serde_json::json!({}),
        };
        let row: Option<(String, Json<serde_json::Value>)> = sqlx::query_as(
            "UPDATE agents a SET status = $2, \
                 body = a.body || jsonb_build_object('resources', $3::jsonb, \
                     'pipelines', $4::jsonb, 'last_heartbeat', $5::jsonb, 'status', $6::jsonb) \
                     || $7::jsonb \
             FROM (SELECT id, status FROM agents WHERE id = $1 FOR UPDATE) AS old \
             WHERE a.id = old.id \
             RETURNING old.status, a.body",
        )
        .bind(id.0)
        .bind(codec::agent_status(status))
        .bind(Json(codec::body(&heartbeat.resources)?))
        .bind(Json(codec::body(&heartbeat.pipelines)?))
        .bind(Json(codec::body(&at)?))
        .bind(Json(codec::body(&status)?))
        .bind(Json(started_at))
        .fetch_optional(self.pool_ref())
        .await
        .map_err(store_error)?;
        let (before, Json(body)) = row.ok_or_else(|| StoreError::not_found("agent", id))?;
        let agent: Agent = codec::from_body("agent", body)?;
        if codec::parse::<AgentStatus>("agent status", &before)? != status {
            self.emit([BusEvent::AgentUpdated {
                agent_id: id,
                status,
            }]);
        }
        Ok(agent)
    }

    async fn mark_lost(
        &self,
        id: AgentId,
        seen_heartbeat: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // The heartbeat is compared as stored in the body (serde's RFC 3339 with
        // nanoseconds), so the comparison is exact.
        let changed = sqlx::query(
            "UPDATE agents SET status = 'lost', body = jsonb_set(body, '{status}', $3::jsonb) \
             WHERE id = $1 AND status <> 'lost' AND body -> 'last_heartbeat' = $2::jsonb",
        )
        .bind(id.0)
        .bind(Json(codec::body(&seen_heartbeat)?))
        .bind(Json(codec::body(&AgentStatus::Lost)?))
        .execute(self.pool_ref())
        .await
        .map_err(store_error)?
        .rows_affected()
            > 0;
        if changed {
            self.emit([BusEvent::AgentUpdated {
                agent_id: id,
                status: AgentStatus::Lost,
            }]);
            return Ok(true);
        }
        if self.agent_exists(id).await? {
            Ok(false)
        } else {
            Err(StoreError::not_found("agent", id))
        }
    }

    async fn record_refusal(
        &self,
        id: AgentId,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // One UPDATE: the row lock serialises concurrent refusals, and each re-reads the
        // count the previous one wrote.
        let row: Option<(i64, String)> = sqlx::query_as(
            "UPDATE agents SET body = jsonb_set(body, '{refused}', jsonb_build_object( \
                 'count', COALESCE((body #>> '{refused,count}')::bigint, 0) + 1, \
                 'last_reason', $2::text, 'last_at', $3::jsonb)) \
             WHERE id = $1 RETURNING (body #>> '{refused,count}')::bigint, status",
        )
        .bind(id.0)
        .bind(reason)
        .bind(Json(codec::body(&at)?))
        .fetch_optional(self.pool_ref())
        .await
        .map_err(store_error)?;
        let (count, status) = row.ok_or_else(|| StoreError::not_found("agent", id))?;
        self.emit([BusEvent::AgentUpdated {
            agent_id: id,
            status: codec::parse("agent status", &status)?,
        }]);
        u64::try_from(count).map_err(|_| StoreError::corrupt("negative refused count"))
    }

    async fn revoke(&self, id: AgentId) -> Result<(), StoreError> {
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE agents SET revoked = true, body = jsonb_set(body, '{revoked}', 'true') \
             WHERE id = $1 RETURNING status",
        )
        .bind(id.0)
        .fetch_optional(self.pool_ref())
        .await
        .map_err(store_error)?;
        let status = status.ok_or_else(|| StoreError::not_found("agent", id))?;
        self.emit([BusEvent::AgentUpdated {
            agent_id: id,
            status: codec::parse("agent status", &status)?,
        }]);
        Ok(())
    }

    async fn list_agents(
        &self,
        filter: &AgentFilter,
        page: &PageRequest,
    ) -> Result<Page<Agent>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<AgentId> = parse_cursor(page.after.as_deref())?;
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT body FROM agents WHERE true");
        if !filter.include_revoked {
            qb.push(" AND NOT revoked");
        }
        if !filter.statuses.is_empty() {
            let statuses: Vec<&'static str> = filter
                .statuses
                .iter()
                .map(|s| codec::agent_status(*s))
                .collect();
            qb.push(" AND status = ANY(").push_bind(statuses).push(")");
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
        let agents = rows
            .into_iter()
            .map(|Json(body)| codec::from_body("agent", body))
            .collect::<Result<Vec<Agent>, _>>()?;
        Ok(Page::from_overfetch(agents, limit, |a| a.id.to_string()))
    }

    async fn append_health(&self, id: AgentId, point: &HealthPoint) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO agent_health (agent_id, at, body) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM agents WHERE id = $1)",
        )
        .bind(id.0)
        .bind(point.at)
        .bind(Json(codec::body(point)?))
        .execute(self.pool_ref())
        .await
        .map_err(store_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::not_found("agent", id));
        }
        sqlx::query(
            "DELETE FROM agent_health WHERE id IN (SELECT id FROM agent_health \
                 WHERE agent_id = $1 ORDER BY at DESC, id DESC OFFSET $2)",
        )
        .bind(id.0)
        .bind(i64::try_from(MAX_HEALTH_POINTS_PER_AGENT).unwrap_or(i64::MAX))
        .execute(self.pool_ref())
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn health_history(
        &self,
        id: AgentId,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HealthPoint>, StoreError> {
        let rows: Vec<Json<serde_json::Value>> = sqlx::query_scalar(
            "SELECT body FROM (SELECT id, at, body FROM agent_health \
                 WHERE agent_id = $1 AND at >= $2 ORDER BY at DESC, id DESC LIMIT $3) newest \
             ORDER BY at, id",
        )
        .bind(id.0)
        .bind(since)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool_ref())
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|Json(body)| codec::from_body("health point", body))
            .collect()
    }

    async fn prune_health(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM agent_health WHERE at < $1")
            .bind(before)
            .execute(self.pool_ref())
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
