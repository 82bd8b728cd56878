//! [`AgentRegistry`] on Redis.
//!
//! `ag:<id>` is a hash: `j` the record at enrollment and `sec` the secret hash, plus the
//! fields later changes write and reads overlay on the record (`hb` last heartbeat, `st`
//! status, `rev` revoked, `res` resources, `pl` pipelines, `sa` started_at, `rfc` refused
//! reports counted with `HINCRBY`, `rfr` and `rfa` the last refusal's reason and time).
//! Keeping them
//! apart lets the scripts update an agent without rewriting (or parsing) its JSON.
//!
//! `hl:<id>` is the agent's health history, a sorted set of point JSON scored by time
//! (ms), trimmed to [`MAX_HEALTH_POINTS_PER_AGENT`] by the script that appends; `hl` is
//! the set of agents that have one (the retention's walk).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::agent::{
    Agent, AgentFilter, AgentStatus, HealthPoint, Heartbeat, RefusedReports, SecretHash,
};
use phoenix_core::error::StoreError;
use phoenix_core::ids::AgentId;
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::{AgentRegistry, MAX_HEALTH_POINTS_PER_AGENT};

use crate::RedisStore;
use crate::codec::{Fields, Status, corrupt, encode_json, parse_cursor};
use crate::scripts::SCRIPTS;

/// An agent from its hash.
fn agent(fields: &Fields) -> Result<Agent, StoreError> {
    let mut agent: Agent = fields.json("j")?;
    agent.last_heartbeat = fields.json("hb")?;
    agent.status = fields.parse_field("st")?;
    agent.revoked = fields.get("rev")? == "1";
    if let Some(resources) = fields.opt_json("res")? {
        agent.resources = resources;
    }
    if let Some(pipelines) = fields.opt_json("pl")? {
        agent.pipelines = pipelines;
    }
    if let Some(started_at) = fields.opt_json("sa")? {
        agent.started_at = Some(started_at);
    }
    if let Some(count) = fields.opt("rfc") {
        agent.refused = RefusedReports {
            count: count
                .parse()
                .map_err(|_| corrupt("agent refused count is not a number"))?,
            last_reason: fields.opt("rfr").map(str::to_owned),
            last_at: fields.opt_json("rfa")?,
        };
    }
    Ok(agent)
}

fn status_error(status: &Status, id: AgentId) -> StoreError {
    match status {
        Status::NotFound => StoreError::not_found("agent", id),
        Status::Conflict => StoreError::conflict("agent", id),
        other => corrupt(format!("unexpected script status {other:?}")),
    }
}

#[async_trait]
impl AgentRegistry for RedisStore {
    async fn register(&self, agent: &Agent, secret: &SecretHash) -> Result<(), StoreError> {
        let json = encode_json(agent)?;
        let heartbeat = encode_json(&agent.last_heartbeat)?;
        let reply = self
            .run(&SCRIPTS.agent_register, |inv| {
                inv.arg(agent.id.to_string())
                    .arg(&json)
                    .arg(&secret.0)
                    .arg(&heartbeat)
                    .arg(agent.status.as_str());
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(()),
            ref other => Err(status_error(other, agent.id)),
        }
    }

    async fn get_agent(&self, id: AgentId) -> Result<Agent, StoreError> {
        let value: redis::Value = self
            .query(redis::cmd("HGETALL").arg(self.key(&["ag", &id.to_string()])))
            .await?;
        let fields = Fields::parse(value)?;
        if fields.opt("j").is_none() {
            return Err(StoreError::not_found("agent", id));
        }
        agent(&fields)
    }

    async fn secret_hash(&self, id: AgentId) -> Result<SecretHash, StoreError> {
        let hash: Option<String> = self
            .query(
                redis::cmd("HGET")
                    .arg(self.key(&["ag", &id.to_string()]))
                    .arg("sec"),
            )
            .await?;
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
        let at = encode_json(&at)?;
        let resources = encode_json(&heartbeat.resources)?;
        let pipelines = encode_json(&heartbeat.pipelines)?;
        let started_at = heartbeat
            .started_at
            .as_ref()
            .map(encode_json)
            .transpose()?
            .unwrap_or_default();
        let mut reply = self
            .run(&SCRIPTS.agent_heartbeat, |inv| {
                inv.arg(id.to_string())
                    .arg(&at)
                    .arg(status.as_str())
                    .arg(&resources)
                    .arg(&pipelines)
                    .arg(&started_at);
            })
            .await?;
        match reply.status {
            Status::Ok => agent(&Fields::parse(reply.next()?)?),
            ref other => Err(status_error(other, id)),
        }
    }

    async fn mark_lost(
        &self,
        id: AgentId,
        seen_heartbeat: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let seen = encode_json(&seen_heartbeat)?;
        let mut reply = self
            .run(&SCRIPTS.agent_mark_lost, |inv| {
                inv.arg(id.to_string()).arg(&seen);
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(reply.next_int()? == 1),
            ref other => Err(status_error(other, id)),
        }
    }

    async fn record_refusal(
        &self,
        id: AgentId,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let at = encode_json(&at)?;
        let mut reply = self
            .run(&SCRIPTS.agent_refusal, |inv| {
                inv.arg(id.to_string()).arg(reason).arg(&at);
            })
            .await?;
        match reply.status {
            Status::Ok => u64::try_from(reply.next_int()?)
                .map_err(|_| corrupt("agent refused count is negative")),
            ref other => Err(status_error(other, id)),
        }
    }

    async fn revoke(&self, id: AgentId) -> Result<(), StoreError> {
        let reply = self
            .run(&SCRIPTS.agent_revoke, |inv| {
                inv.arg(id.to_string());
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(()),
            ref other => Err(status_error(other, id)),
        }
    }

    async fn list_agents(
        &self,
        filter: &AgentFilter,
        page: &PageRequest,
    ) -> Result<Page<Agent>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<AgentId> = parse_cursor(page.after.as_deref())?;
        let statuses = filter
            .statuses
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let revoked = if filter.include_revoked { "" } else { "0" };
        let filters = [("st", statuses), ("rev", revoked.to_owned())];
        let records = self
            .scan(
                "agents",
                "ag",
                after.map(|a| a.to_string()),
                limit + 1,
                &filters,
            )
            .await?;
        let items = records.iter().map(agent).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, limit, |a| a.id.to_string()))
    }

    async fn append_health(&self, id: AgentId, point: &HealthPoint) -> Result<(), StoreError> {
        let json = encode_json(point)?;
        let reply = self
            .run(&SCRIPTS.agent_health_append, |inv| {
                inv.arg(MAX_HEALTH_POINTS_PER_AGENT)
                    .arg(id.to_string())
                    .arg(point.at.timestamp_millis())
                    .arg(&json);
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(()),
            ref other => Err(status_error(other, id)),
        }
    }

    async fn health_history(
        &self,
        id: AgentId,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HealthPoint>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut newest: Vec<String> = self
            .query(
                redis::cmd("ZREVRANGEBYSCORE")
                    .arg(self.key(&["hl", &id.to_string()]))
                    .arg("+inf")
                    .arg(since.timestamp_millis())
                    .arg("LIMIT")
                    .arg(0)
                    .arg(i64::try_from(limit).unwrap_or(i64::MAX)),
            )
            .await?;
        newest.reverse();
        newest
            .iter()
            .map(|json| {
                let point: HealthPoint = serde_json::from_str(json)
                    .map_err(|e| corrupt(format!("health point: {e}")))?;
                Ok(point)
            })
            // A point within the same millisecond as `since` but before it.
            .filter(|p| p.as_ref().map_or(true, |p| p.at >= since))
            .collect()
    }

    async fn prune_health(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut reply = self
            .run(&SCRIPTS.agent_health_prune, |inv| {
                inv.arg(before.timestamp_millis());
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(u64::try_from(reply.next_int()?).unwrap_or(0)),
            other => Err(corrupt(format!("unexpected script status {other:?}"))),
        }
    }
}
