//! User routes.

use phoenix_api::agent::{Agent, AgentHealth, AgentPage, AgentStatus, FleetStatus, SelectedAgents};
use phoenix_api::analysis::SnapshotRefresh;
use phoenix_api::experiment::{
    EventPage, Experiment, ExperimentPage, NewExperiment, Phase, PhaseInfo, PromoteRequest,
    RollbackRequest, StopRequest, TargetSelector,
};
use phoenix_api::task::{Task, TaskKind, TaskPage, TaskState};
use phoenix_api::token::{CreatedToken, NewToken, TokenList, WhoAmI};
use reqwest::Method;
use uuid::Uuid;

use crate::{Client, ClientError};

/// Filters and page of `list_experiments`.
#[derive(Debug, Clone, Default)]
pub struct ExperimentQuery {
    /// Only these phases.
    pub phases: Vec<Phase>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

/// Filters and page of `list_agents`.
#[derive(Debug, Clone, Default)]
pub struct AgentQuery {
    /// Only these statuses.
    pub statuses: Vec<AgentStatus>,
    /// Include revoked agents.
    pub include_revoked: bool,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

/// Filters and page of `list_tasks`.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// Only this agent's tasks.
    pub agent_id: Option<Uuid>,
    /// Only this experiment's tasks.
    pub experiment_id: Option<Uuid>,
    /// Only this deployment's tasks.
    pub deployment_id: Option<Uuid>,
    /// Only these states.
    pub states: Vec<TaskState>,
    /// Only this kind.
    pub kind: Option<TaskKind>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

fn page_params(cursor: &Option<String>, limit: Option<u32>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(c) = cursor {
        q.push(("cursor", c.clone()));
    }
    if let Some(l) = limit {
        q.push(("limit", l.to_string()));
    }
    q
}

impl Client {
    /// `POST /api/v1/experiments`.
    pub async fn create_experiment(
        &self,
        request: &NewExperiment,
    ) -> Result<Experiment, ClientError> {
        self.json(
            self.request(Method::POST, "api/v1/experiments")?
                .json(request),
        )
        .await
    }

    /// `GET /api/v1/experiments`.
    pub async fn list_experiments(
        &self,
        query: &ExperimentQuery,
    ) -> Result<ExperimentPage, ClientError> {
        let mut q = page_params(&query.cursor, query.limit);
        q.extend(
            query
                .phases
                .iter()
                .map(|p| ("phase", p.as_str().to_owned())),
        );
        self.json(self.request(Method::GET, "api/v1/experiments")?.query(&q))
            .await
    }

    /// `GET /api/v1/experiments/phases`.
    pub async fn experiment_phases(&self) -> Result<Vec<PhaseInfo>, ClientError> {
        self.json(self.request(Method::GET, "api/v1/experiments/phases")?)
            .await
    }

    /// `GET /api/v1/experiments/{id}`.
    pub async fn get_experiment(&self, id: Uuid) -> Result<Experiment, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/experiments/{id}"))?)
            .await
    }

    /// `DELETE /api/v1/experiments/{id}`.
    pub async fn delete_experiment(&self, id: Uuid) -> Result<(), ClientError> {
        self.empty(self.request(Method::DELETE, &format!("api/v1/experiments/{id}"))?)
            .await
    }

    /// `POST /api/v1/experiments/{id}/start`.
    pub async fn start_experiment(&self, id: Uuid) -> Result<Experiment, ClientError> {
        self.json(self.request(Method::POST, &format!("api/v1/experiments/{id}/start"))?)
            .await
    }

    /// `POST /api/v1/experiments/{id}/stop`.
    pub async fn stop_experiment(
        &self,
        id: Uuid,
        reason: Option<String>,
    ) -> Result<Experiment, ClientError> {
        self.json(
            self.request(Method::POST, &format!("api/v1/experiments/{id}/stop"))?
                .json(&StopRequest { reason }),
        )
        .await
    }

    /// `POST /api/v1/experiments/{id}/rollback`.
    pub async fn rollback_experiment(
        &self,
        id: Uuid,
        request: &RollbackRequest,
    ) -> Result<Experiment, ClientError> {
        self.json(
            self.request(Method::POST, &format!("api/v1/experiments/{id}/rollback"))?
                .json(request),
        )
        .await
    }

    /// `POST /api/v1/experiments/{id}/promote`.
    pub async fn promote_experiment(
        &self,
        id: Uuid,
        request: &PromoteRequest,
    ) -> Result<Experiment, ClientError> {
        self.json(
            self.request(Method::POST, &format!("api/v1/experiments/{id}/promote"))?
                .json(request),
        )
        .await
    }

    /// `GET /api/v1/experiments/{id}/events`.
    pub async fn experiment_events(
        &self,
        id: Uuid,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<EventPage, ClientError> {
        self.json(
            self.request(Method::GET, &format!("api/v1/experiments/{id}/events"))?
                .query(&page_params(&cursor, limit)),
        )
        .await
    }

    /// `GET /api/v1/fleet/status`.
    pub async fn fleet_status(&self) -> Result<FleetStatus, ClientError> {
        self.json(self.request(Method::GET, "api/v1/fleet/status")?)
            .await
    }

    /// `POST /api/v1/fleet/snapshots`: every live agent snapshots its inputs now.
    pub async fn refresh_snapshots(&self) -> Result<SnapshotRefresh, ClientError> {
        self.json(self.request(Method::POST, "api/v1/fleet/snapshots")?)
            .await
    }

    /// `GET /api/v1/agents`.
    pub async fn list_agents(&self, query: &AgentQuery) -> Result<AgentPage, ClientError> {
        let mut q = page_params(&query.cursor, query.limit);
        q.extend(query.statuses.iter().map(|s| {
            (
                "status",
                serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            )
        }));
        if query.include_revoked {
            q.push(("include_revoked", "true".to_owned()));
        }
        self.json(self.request(Method::GET, "api/v1/agents")?.query(&q))
            .await
    }

    /// `GET /api/v1/agents/{id}`.
    pub async fn get_agent(&self, id: Uuid) -> Result<Agent, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/agents/{id}"))?)
            .await
    }

    /// `GET /api/v1/agents/{id}/health`: the agent's recent heartbeats, oldest first (the
    /// newest `limit` when given).
    pub async fn agent_health(
        &self,
        id: Uuid,
        limit: Option<u32>,
    ) -> Result<AgentHealth, ClientError> {
        let mut request = self.request(Method::GET, &format!("api/v1/agents/{id}/health"))?;
        if let Some(limit) = limit {
            request = request.query(&[("limit", limit)]);
        }
        self.json(request).await
    }

    /// `POST /api/v1/agents/matching`: the live agents `selector` picks now.
    pub async fn match_agents(
        &self,
        selector: &TargetSelector,
    ) -> Result<SelectedAgents, ClientError> {
        self.json(
            self.request(Method::POST, "api/v1/agents/matching")?
                .json(selector),
        )
        .await
    }

    /// `POST /api/v1/agents/{id}/revoke`.
    pub async fn revoke_agent(&self, id: Uuid) -> Result<(), ClientError> {
        self.empty(self.request(Method::POST, &format!("api/v1/agents/{id}/revoke"))?)
            .await
    }

    /// `GET /api/v1/tasks`.
    pub async fn list_tasks(&self, query: &TaskQuery) -> Result<TaskPage, ClientError> {
        let mut q = page_params(&query.cursor, query.limit);
        if let Some(a) = query.agent_id {
            q.push(("agent_id", a.to_string()));
        }
        if let Some(e) = query.experiment_id {
            q.push(("experiment_id", e.to_string()));
        }
        if let Some(d) = query.deployment_id {
            q.push(("deployment_id", d.to_string()));
        }
        for s in &query.states {
            q.push(("state", enum_str(s)));
        }
        if let Some(k) = &query.kind {
            q.push(("kind", enum_str(k)));
        }
        self.json(self.request(Method::GET, "api/v1/tasks")?.query(&q))
            .await
    }

    /// `GET /api/v1/tasks/{id}`.
    pub async fn get_task(&self, id: Uuid) -> Result<Task, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/tasks/{id}"))?)
            .await
    }

    /// `POST /api/v1/tasks/{id}/redrive`.
    pub async fn redrive_task(&self, id: Uuid) -> Result<Task, ClientError> {
        self.json(self.request(Method::POST, &format!("api/v1/tasks/{id}/redrive"))?)
            .await
    }

    /// `GET /api/v1/whoami`.
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.json(self.request(Method::GET, "api/v1/whoami")?).await
    }

    /// `POST /api/v1/tokens`.
    pub async fn create_token(&self, request: &NewToken) -> Result<CreatedToken, ClientError> {
        self.json(self.request(Method::POST, "api/v1/tokens")?.json(request))
            .await
    }

    /// `GET /api/v1/tokens`.
    pub async fn list_tokens(&self) -> Result<TokenList, ClientError> {
        self.json(self.request(Method::GET, "api/v1/tokens")?).await
    }

    /// `DELETE /api/v1/tokens/{id}`.
    pub async fn revoke_token(&self, id: Uuid) -> Result<(), ClientError> {
        self.empty(self.request(Method::DELETE, &format!("api/v1/tokens/{id}"))?)
            .await
    }

    /// `POST /api/v1/queries`: imports a query source (replacing one of the same name).
    pub async fn import_query_source(
        &self,
        request: &phoenix_api::query::NewQuerySource,
    ) -> Result<phoenix_api::query::QuerySource, ClientError> {
        self.json(self.request(Method::POST, "api/v1/queries")?.json(request))
            .await
    }

    /// `GET /api/v1/queries`.
    pub async fn list_query_sources(
        &self,
    ) -> Result<phoenix_api::query::QuerySourceList, ClientError> {
        self.json(self.request(Method::GET, "api/v1/queries")?)
            .await
    }

    /// `DELETE /api/v1/queries/{id}`.
    pub async fn delete_query_source(&self, id: Uuid) -> Result<(), ClientError> {
        self.empty(self.request(Method::DELETE, &format!("api/v1/queries/{id}"))?)
            .await
    }
}

fn enum_str<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
