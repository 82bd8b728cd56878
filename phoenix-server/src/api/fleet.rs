//! `/api/v1/fleet/status` and `/api/v1/agents`.

use std::sync::Arc;

use phoenix_api::agent::{Agent, AgentHealth, AgentPage, AgentStatus, FleetStatus, SelectedAgents};
use phoenix_api::analysis::SnapshotRefresh;
use phoenix_api::experiment::TargetSelector;
use phoenix_core::agent::AgentFilter;
use phoenix_core::auth::Role;
use phoenix_core::ids::AgentId;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::{ApiTags, uuid_page};
use crate::error::ApiResult;
use crate::payload::StrictJson;
use crate::state::{AppState, UserToken};

/// Fleet operations.
#[derive(Debug)]
pub struct FleetApi {
    state: Arc<AppState>,
}

impl FleetApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

// The `limit` bound of `GET /agents/{id}/health` is written as a literal below.
const _: () = assert!(phoenix_core::store::MAX_HEALTH_POINTS_PER_AGENT == 360);

/// 204.
#[derive(Debug, ApiResponse)]
pub enum Revoked {
    /// Revoked (idempotent).
    #[oai(status = 204)]
    Revoked,
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Fleet")]
impl FleetApi {
    /// Fleet status
    ///
    /// Every non-revoked agent with health, version, resources and active pipelines, and
    /// totals per status, version and template.
    #[oai(path = "/fleet/status", method = "get", operation_id = "fleet_status")]
    async fn status(&self, auth: UserToken) -> ApiResult<Json<FleetStatus>> {
        self.state.user(&auth, Role::Viewer).await?;
        let fleet = self.state.phoenix.fleet_overview().await?;
        Ok(Json(FleetStatus {
            summary: fleet.summary.into(),
            agents: fleet.agents.into_iter().map(Agent::from).collect(),
        }))
    }

    /// Refresh the fleet's snapshots
    ///
    /// Asks every live agent for a cardinality snapshot of its inputs now, rather than at
    /// its next scheduled one (a `collect_snapshot` task each, at most one pending per
    /// agent). The cost and cardinality views show them as they arrive.
    #[oai(
        path = "/fleet/snapshots",
        method = "post",
        operation_id = "refresh_snapshots"
    )]
    async fn refresh_snapshots(&self, auth: UserToken) -> ApiResult<Json<SnapshotRefresh>> {
        self.state.user(&auth, Role::Operator).await?;
        Ok(Json(self.state.phoenix.refresh_snapshots().await?.into()))
    }

    /// List agents
    #[oai(path = "/agents", method = "get", operation_id = "list_agents")]
    async fn list(
        &self,
        auth: UserToken,
        /// Only these statuses.
        status: Query<Vec<AgentStatus>>,
        /// Include revoked agents.
        #[oai(default)]
        include_revoked: Query<bool>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<AgentPage>> {
        self.state.user(&auth, Role::Viewer).await?;
        let page = uuid_page(cursor.0, limit.0)?;
        let filter = AgentFilter {
            statuses: status.0.into_iter().map(Into::into).collect(),
            include_revoked: include_revoked.0,
        };
        Ok(Json(
            self.state.phoenix.agents(&filter, &page).await?.into(),
        ))
    }

    /// Agents a selector picks
    ///
    /// The live agents (healthy or degraded, not revoked) that a target selector picks
    /// now, by host name: those an experiment started, or a deployment created, with this
    /// selector at this moment would target. Reads only.
    #[oai(
        path = "/agents/matching",
        method = "post",
        operation_id = "match_agents"
    )]
    async fn matching(
        &self,
        auth: UserToken,
        body: StrictJson<TargetSelector>,
    ) -> ApiResult<Json<SelectedAgents>> {
        self.state.user(&auth, Role::Viewer).await?;
        let selector = body.0.into();
        let agents = self.state.phoenix.match_agents(&selector).await?;
        Ok(Json(SelectedAgents {
            items: agents.into_iter().map(Agent::from).collect(),
        }))
    }

    /// Get an agent
    #[oai(path = "/agents/:id", method = "get", operation_id = "get_agent")]
    async fn get(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<Agent>> {
        self.state.user(&auth, Role::Viewer).await?;
        Ok(Json(self.state.phoenix.agent(AgentId(id.0)).await?.into()))
    }

    /// An agent's health over time
    ///
    /// One point per heartbeat the server received (status, pipelines by health, host and
    /// agent resources), oldest first, within the server's health retention and at most
    /// `max_points` per agent; `limit` keeps the newest. 404 for an unknown agent.
    #[oai(
        path = "/agents/:id/health",
        method = "get",
        operation_id = "agent_health"
    )]
    async fn health(
        &self,
        auth: UserToken,
        id: Path<Uuid>,
        /// The newest points to return (default: all kept).
        #[oai(validator(minimum(value = "1"), maximum(value = "360")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<AgentHealth>> {
        self.state.user(&auth, Role::Viewer).await?;
        let max = phoenix_core::store::MAX_HEALTH_POINTS_PER_AGENT;
        let limit = limit.0.map_or(max, |l| l as usize);
        let phoenix = &self.state.phoenix;
        let items = phoenix.agent_health(AgentId(id.0), limit).await?;
        Ok(Json(AgentHealth {
            agent_id: id.0,
            retention_secs: u64::try_from(phoenix.config().health_retention.num_seconds())
                .unwrap_or(0),
            max_points: u32::try_from(max).unwrap_or(u32::MAX),
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Revoke an agent's credential
    ///
    /// It can no longer authenticate; its targets count as lost. Admin role.
    #[oai(
        path = "/agents/:id/revoke",
        method = "post",
        operation_id = "revoke_agent"
    )]
    async fn revoke(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Revoked> {
        let user = self.state.user(&auth, Role::Admin).await?;
        self.state.phoenix.revoke_agent(AgentId(id.0)).await?;
        tracing::info!(agent = %id.0, by = %user.name, "agent revoked");
        Ok(Revoked::Revoked)
    }
}
