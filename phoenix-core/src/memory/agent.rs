//! [`AgentRegistry`] on the in-memory state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use super::queue::parse_cursor;
use crate::agent::{Agent, AgentFilter, AgentStatus, HealthPoint, Heartbeat, SecretHash};
use crate::error::StoreError;
use crate::ids::AgentId;
use crate::page::{Page, PageRequest};
use crate::store::{AgentRegistry, BusEvent, MAX_HEALTH_POINTS_PER_AGENT};

#[async_trait]
impl AgentRegistry for MemoryStore {
    async fn register(&self, agent: &Agent, secret: &SecretHash) -> Result<(), StoreError> {
        {
            let mut state = self.lock();
            if state.agents.contains_key(&agent.id) {
                return Err(StoreError::conflict("agent", agent.id));
            }
            state
                .agents
                .insert(agent.id, (agent.clone(), secret.clone()));
        }
        self.emit([BusEvent::AgentUpdated {
            agent_id: agent.id,
            status: agent.status,
        }]);
        Ok(())
    }

    async fn get_agent(&self, id: AgentId) -> Result<Agent, StoreError> {
        self.lock()
            .agents
            .get(&id)
            .map(|(a, _)| a.clone())
            .ok_or_else(|| StoreError::not_found("agent", id))
    }

    async fn secret_hash(&self, id: AgentId) -> Result<SecretHash, StoreError> {
        self.lock()
            .agents
            .get(&id)
            .map(|(_, h)| h.clone())
            .ok_or_else(|| StoreError::not_found("agent", id))
    }

    async fn record_heartbeat(
        &self,
        id: AgentId,
        heartbeat: &Heartbeat,
        status: AgentStatus,
        at: DateTime<Utc>,
    ) -> Result<Agent, StoreError> {
        let (agent, changed) = {
            let mut state = self.lock();
            let (agent, _) = state
                .agents
                .get_mut(&id)
                .ok_or_else(|| StoreError::not_found("agent", id))?;
            let before = agent.status;
            agent.resources = heartbeat.resources.clone();
            agent.pipelines = heartbeat.pipelines.clone();
            if heartbeat.started_at.is_some() {
                agent.started_at = heartbeat.started_at;
            }
            agent.last_heartbeat = at;
            agent.status = status;
            (agent.clone(), before != status)
        };
        if changed {
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
        let changed = {
            let mut state = self.lock();
            let (agent, _) = state
                .agents
                .get_mut(&id)
                .ok_or_else(|| StoreError::not_found("agent", id))?;
            if agent.status == AgentStatus::Lost || agent.last_heartbeat != seen_heartbeat {
                false
            } else {
                agent.status = AgentStatus::Lost;
                true
            }
        };
        if changed {
            self.emit([BusEvent::AgentUpdated {
                agent_id: id,
                status: AgentStatus::Lost,
            }]);
        }
        Ok(changed)
    }

    async fn record_refusal(
        &self,
        id: AgentId,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (count, status) = {
            let mut state = self.lock();
            let (agent, _) = state
                .agents
                .get_mut(&id)
                .ok_or_else(|| StoreError::not_found("agent", id))?;
            agent.refused.count += 1;
            agent.refused.last_reason = Some(reason.to_owned());
            agent.refused.last_at = Some(at);
            (agent.refused.count, agent.status)
        };
        self.emit([BusEvent::AgentUpdated {
            agent_id: id,
            status,
        }]);
        Ok(count)
    }

    async fn revoke(&self, id: AgentId) -> Result<(), StoreError> {
        let status = {
            let mut state = self.lock();
            let (agent, _) = state
                .agents
                .get_mut(&id)
                .ok_or_else(|| StoreError::not_found("agent", id))?;
            agent.revoked = true;
            agent.status
        };
        self.emit([BusEvent::AgentUpdated {
            agent_id: id,
            status,
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
        let state = self.lock();
        let items: Vec<Agent> = state
            .agents
            .values()
            .rev()
            .map(|(a, _)| a)
            .filter(|a| after.is_none_or(|c| a.id < c))
            .filter(|a| filter.matches(a))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(items, limit, |a| a.id.to_string()))
    }

    async fn append_health(&self, id: AgentId, point: &HealthPoint) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.agents.contains_key(&id) {
            return Err(StoreError::not_found("agent", id));
        }
        let history = state.health.entry(id).or_default();
        // Ordered by time even when two replicas' points arrive out of order.
        let at = history.partition_point(|p| p.at <= point.at);
        history.insert(at, point.clone());
        while history.len() > MAX_HEALTH_POINTS_PER_AGENT {
            history.pop_front();
        }
        Ok(())
    }

    async fn health_history(
        &self,
        id: AgentId,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HealthPoint>, StoreError> {
        let state = self.lock();
        let Some(history) = state.health.get(&id) else {
            return Ok(Vec::new());
        };
        let from = history.partition_point(|p| p.at < since);
        let skip = (history.len() - from).saturating_sub(limit);
        Ok(history.iter().skip(from + skip).cloned().collect())
    }

    async fn prune_health(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let mut deleted = 0_u64;
        state.health.retain(|_, history| {
            let old = history.partition_point(|p| p.at < before);
            history.drain(..old);
            deleted += old as u64;
            !history.is_empty()
        });
        Ok(deleted)
    }
}
