//! `/api/v1/pipelines/deployments`: quick deployments.

use std::sync::Arc;

use phoenix_api::deployment::{Deployment, DeploymentPage, NewDeployment};
use phoenix_core::auth::Role;
use phoenix_core::deployment::DeploymentInput;
use phoenix_core::ids::{DeploymentId, ExperimentId};
use phoenix_core::phoenix::DeploymentRequest;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::{ApiTags, uuid_page};
use crate::error::{ApiError, ApiResult};
use crate::payload::StrictJson;
use crate::state::{AppState, UserToken};

/// Deployment operations.
#[derive(Debug)]
pub struct DeploymentsApi {
    state: Arc<AppState>,
}

impl DeploymentsApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    async fn command(
        &self,
        auth: &UserToken,
        id: Uuid,
        input: DeploymentInput,
    ) -> ApiResult<Json<Deployment>> {
        let user = self.state.user(auth, Role::Operator).await?;
        let d = self
            .state
            .phoenix
            .apply_deployment(DeploymentId(id), &input)
            .await?;
        Ok(Json(Deployment::for_role(d, user.role)))
    }
}

/// 201 with the deployment.
#[derive(Debug, ApiResponse)]
pub enum Created {
    /// Created; the first batch was sent.
    #[oai(status = 201)]
    Created(Json<Deployment>),
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Pipelines")]
impl DeploymentsApi {
    /// Quick deploy
    ///
    /// Rolls a template with parameters out to the live agents matching a selector, in
    /// growing batches that pause at the first agent error. With `experiment_id`, rolls
    /// a promoted candidate out to the fleet. Operator role.
    #[oai(
        path = "/pipelines/deployments",
        method = "post",
        operation_id = "create_deployment"
    )]
    async fn create(&self, auth: UserToken, body: StrictJson<NewDeployment>) -> ApiResult<Created> {
        let user = self.state.user(&auth, Role::Operator).await?;
        let request = body.0;
        let mut errors = Vec::new();
        let pipeline = match request
            .pipeline
            .map(|p| p.into_core("pipeline"))
            .transpose()
        {
            Ok(p) => p,
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let rollback_to = match request
            .rollback_to
            .map(|p| p.into_core("rollback_to"))
            .transpose()
        {
            Ok(p) => p,
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let deployment = self
            .state
            .phoenix
            .create_deployment(
                DeploymentRequest {
                    name: request.name,
                    pipeline,
                    rollback_to,
                    selector: request.selector.into(),
                    experiment_id: request.experiment_id.map(ExperimentId),
                    strategy: request.strategy.into(),
                },
                &user.actor(),
            )
            .await?;
        Ok(Created::Created(Json(Deployment::for_role(
            deployment, user.role,
        ))))
    }

    /// List deployments
    #[oai(
        path = "/pipelines/deployments",
        method = "get",
        operation_id = "list_deployments"
    )]
    async fn list(
        &self,
        auth: UserToken,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<DeploymentPage>> {
        let user = self.state.user(&auth, Role::Viewer).await?;
        let page = uuid_page(cursor.0, limit.0)?;
        Ok(Json(DeploymentPage::for_role(
            self.state.phoenix.deployments(&page).await?,
            user.role,
        )))
    }

    /// Deployment status
    ///
    /// State, per-agent progress (completed, errors, in progress, pending) and the error
    /// it paused at.
    #[oai(
        path = "/pipelines/deployments/:id",
        method = "get",
        operation_id = "get_deployment"
    )]
    async fn get(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<Deployment>> {
        let user = self.state.user(&auth, Role::Viewer).await?;
        Ok(Json(Deployment::for_role(
            self.state.phoenix.deployment(DeploymentId(id.0)).await?,
            user.role,
        )))
    }

    /// Pause a deployment
    ///
    /// No new batch starts. Operator role.
    #[oai(
        path = "/pipelines/deployments/:id/pause",
        method = "post",
        operation_id = "pause_deployment"
    )]
    async fn pause(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<Deployment>> {
        self.command(&auth, id.0, DeploymentInput::Pause).await
    }

    /// Resume a deployment
    ///
    /// Failed agents are retried with the next batch. Operator role.
    #[oai(
        path = "/pipelines/deployments/:id/resume",
        method = "post",
        operation_id = "resume_deployment"
    )]
    async fn resume(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<Deployment>> {
        self.command(&auth, id.0, DeploymentInput::Resume).await
    }

    /// Roll a deployment back
    ///
    /// Restores the previous pipeline on every agent that received the new one.
    /// Operator role.
    #[oai(
        path = "/pipelines/deployments/:id/rollback",
        method = "post",
        operation_id = "rollback_deployment"
    )]
    async fn rollback(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<Deployment>> {
        self.command(&auth, id.0, DeploymentInput::Rollback).await
    }
}
