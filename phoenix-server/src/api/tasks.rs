//! `/api/v1/tasks`: the queue, for operators.

use std::sync::Arc;

use phoenix_api::task::{Task, TaskKind, TaskPage, TaskState};
use phoenix_core::StoreError;
use phoenix_core::auth::Role;
use phoenix_core::ids::{AgentId, DeploymentId, ExperimentId, TaskId};
use phoenix_core::phoenix::PhoenixError;
use phoenix_core::task::TaskFilter;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;

use super::{ApiTags, uuid_page};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, UserToken};

/// Queue operations.
#[derive(Debug)]
pub struct TasksApi {
    state: Arc<AppState>,
}

impl TasksApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Tasks")]
impl TasksApi {
    /// List tasks
    ///
    /// Newest first, filtered by agent, experiment, deployment, state and kind.
    #[oai(path = "/tasks", method = "get", operation_id = "list_tasks")]
    #[allow(
        clippy::too_many_arguments,
        reason = "one argument per query parameter"
    )]
    async fn list(
        &self,
        auth: UserToken,
        /// Only this agent's tasks.
        agent_id: Query<Option<Uuid>>,
        /// Only this experiment's tasks.
        experiment_id: Query<Option<Uuid>>,
        /// Only this quick deployment's tasks.
        deployment_id: Query<Option<Uuid>>,
        /// Only these states.
        state: Query<Vec<TaskState>>,
        /// Only this kind.
        kind: Query<Option<TaskKind>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<TaskPage>> {
        self.state.user(&auth, Role::Viewer).await?;
        let page = uuid_page(cursor.0, limit.0)?;
        let filter = TaskFilter {
            agent_id: agent_id.0.map(AgentId),
            experiment_id: experiment_id.0.map(ExperimentId),
            deployment_id: deployment_id.0.map(DeploymentId),
            states: state.0.into_iter().map(Into::into).collect(),
            kind: kind.0.map(Into::into),
        };
        Ok(Json(self.state.phoenix.tasks(&filter, &page).await?.into()))
    }

    /// Get a task
    #[oai(path = "/tasks/:id", method = "get", operation_id = "get_task")]
    async fn get(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<Task>> {
        self.state.user(&auth, Role::Viewer).await?;
        Ok(Json(self.state.phoenix.task(TaskId(id.0)).await?.into()))
    }

    /// Re-drive a task
    ///
    /// A dead-lettered or failed task becomes pending again with zero attempts (409 in
    /// any other state). Admin role.
    #[oai(
        path = "/tasks/:id/redrive",
        method = "post",
        operation_id = "redrive_task"
    )]
    async fn redrive(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<Task>> {
        self.state.user(&auth, Role::Admin).await?;
        // The store refuses a task in another state as `Invalid`; here the request is
        // well formed and the task's state forbids it, which the API answers 409.
        let task = self
            .state
            .phoenix
            .redrive_task(TaskId(id.0))
            .await
            .map_err(|e| match e {
                PhoenixError::Store(StoreError::Invalid(message)) => {
                    ApiError::new(phoenix_api::ErrorCode::Conflict, message)
                }
                other => other.into(),
            })?;
        Ok(Json(task.into()))
    }
}
