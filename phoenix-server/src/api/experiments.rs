//! `/api/v1/experiments`.

use std::sync::Arc;

use phoenix_api::experiment::{
    EventPage, Experiment, ExperimentPage, NewExperiment, Phase, PhaseInfo, PromoteRequest,
    RollbackRequest, StopRequest,
};
use phoenix_core::auth::Role;
use phoenix_core::experiment::Action;
use phoenix_core::ids::ExperimentId;
use phoenix_core::page::{MAX_PAGE_SIZE, Page};
use phoenix_core::store::ExperimentFilter;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::{ApiTags, uuid_page};
use crate::error::{ApiError, ApiResult};
use crate::payload::StrictJson;
use crate::state::{AppState, UserToken};

/// Experiment operations.
#[derive(Debug)]
pub struct ExperimentsApi {
    state: Arc<AppState>,
}

impl ExperimentsApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// 201 with the created experiment.
#[derive(Debug, ApiResponse)]
pub enum Created {
    /// Created in phase `created`.
    #[oai(status = 201)]
    Created(Json<Experiment>),
}

/// 204.
#[derive(Debug, ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Experiments")]
impl ExperimentsApi {
    /// Create an experiment
    ///
    /// Validates the whole spec at once: 422 lists every invalid field with its path.
    /// Operator role.
    #[oai(
        path = "/experiments",
        method = "post",
        operation_id = "create_experiment"
    )]
    async fn create(&self, auth: UserToken, body: StrictJson<NewExperiment>) -> ApiResult<Created> {
        let user = self.state.user(&auth, Role::Operator).await?;
        let request = body.0.into_core().map_err(ApiError::validation)?;
        let experiment = self
            .state
            .phoenix
            .create_experiment(request, &user.actor())
            .await?;
        Ok(Created::Created(Json(Experiment::for_role(
            experiment, user.role,
        ))))
    }

    /// List experiments
    ///
    /// Newest first, optionally only in the given phases (repeat `phase`).
    #[oai(
        path = "/experiments",
        method = "get",
        operation_id = "list_experiments"
    )]
    async fn list(
        &self,
        auth: UserToken,
        /// Only these phases.
        phase: Query<Vec<Phase>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<ExperimentPage>> {
        let user = self.state.user(&auth, Role::Viewer).await?;
        let page = uuid_page(cursor.0, limit.0)?;
        let filter = ExperimentFilter::phases(phase.0.into_iter().map(Into::into));
        let page = self.state.phoenix.experiments(&filter, &page).await?;
        Ok(Json(ExperimentPage::for_role(page, user.role)))
    }

    /// The experiment phases
    ///
    /// Every phase in life order and what it means in the state machine: terminal,
    /// resting (waits for an operator), active (driven forward by Phoenix), and the phases
    /// that follow when nothing intervenes. Clients render phases from this instead of
    /// keeping their own lists.
    #[oai(
        path = "/experiments/phases",
        method = "get",
        operation_id = "experiment_phases"
    )]
    async fn phases(&self, auth: UserToken) -> ApiResult<Json<Vec<PhaseInfo>>> {
        self.state.user(&auth, Role::Viewer).await?;
        Ok(Json(
            phoenix_core::experiment::Phase::ALL
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// Get an experiment
    #[oai(
        path = "/experiments/:id",
        method = "get",
        operation_id = "get_experiment"
    )]
    async fn get(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<Experiment>> {
        let user = self.state.user(&auth, Role::Viewer).await?;
        let experiment = self.state.phoenix.experiment(ExperimentId(id.0)).await?;
        Ok(Json(Experiment::for_role(experiment, user.role)))
    }

    /// Delete an experiment
    ///
    /// Only in `created` or a terminal phase (409 otherwise). Operator role.
    #[oai(
        path = "/experiments/:id",
        method = "delete",
        operation_id = "delete_experiment"
    )]
    async fn delete(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Deleted> {
        let user = self
            .state
            .user(&auth, Action::Delete.required_role())
            .await?;
        self.state
            .phoenix
            .delete_experiment(ExperimentId(id.0), &user.actor())
            .await?;
        Ok(Deleted::Deleted)
    }

    /// Start an experiment
    ///
    /// Resolves the target selector against live agents and sends each a deploy task.
    /// 409 when the phase forbids it or no live agent matches. Operator role.
    #[oai(
        path = "/experiments/:id/start",
        method = "post",
        operation_id = "start_experiment"
    )]
    async fn start(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<Experiment>> {
        let user = self
            .state
            .user(&auth, Action::Start.required_role())
            .await?;
        let experiment = self
            .state
            .phoenix
            .start(ExperimentId(id.0), &user.actor())
            .await?;
        Ok(Json(Experiment::for_role(experiment, user.role)))
    }

    /// Stop an experiment
    ///
    /// Removes everything it deployed; `stopping` until every live agent acknowledged.
    /// Operator role.
    #[oai(
        path = "/experiments/:id/stop",
        method = "post",
        operation_id = "stop_experiment"
    )]
    async fn stop(
        &self,
        auth: UserToken,
        id: Path<Uuid>,
        body: StrictJson<StopRequest>,
    ) -> ApiResult<Json<Experiment>> {
        let user = self.state.user(&auth, Action::Stop.required_role()).await?;
        let experiment = self
            .state
            .phoenix
            .stop(ExperimentId(id.0), &user.actor(), body.0.reason)
            .await?;
        Ok(Json(Experiment::for_role(experiment, user.role)))
    }

    /// Roll an experiment back
    ///
    /// `graceful` keeps the candidate until every agent confirms the baseline alone
    /// serves; `instant` removes it at once with the highest priority. Who, why and each
    /// agent's answer are recorded. Operator role.
    #[oai(
        path = "/experiments/:id/rollback",
        method = "post",
        operation_id = "rollback_experiment"
    )]
    async fn rollback(
        &self,
        auth: UserToken,
        id: Path<Uuid>,
        body: StrictJson<RollbackRequest>,
    ) -> ApiResult<Json<Experiment>> {
        let user = self
            .state
            .user(&auth, Action::Rollback.required_role())
            .await?;
        let experiment = self
            .state
            .phoenix
            .rollback(
                ExperimentId(id.0),
                body.0.mode.into(),
                &user.actor(),
                body.0.reason,
            )
            .await?;
        Ok(Json(Experiment::for_role(experiment, user.role)))
    }

    /// Promote an experiment's candidate
    ///
    /// Needs a passing verdict, unless `force` (admin role). Operator role.
    #[oai(
        path = "/experiments/:id/promote",
        method = "post",
        operation_id = "promote_experiment"
    )]
    async fn promote(
        &self,
        auth: UserToken,
        id: Path<Uuid>,
        body: StrictJson<PromoteRequest>,
    ) -> ApiResult<Json<Experiment>> {
        let action = if body.0.force {
            Action::ForcePromote
        } else {
            Action::Promote
        };
        let user = self.state.user(&auth, action.required_role()).await?;
        let experiment = self
            .state
            .phoenix
            .promote(
                ExperimentId(id.0),
                &user.actor(),
                body.0.force,
                body.0.reason,
            )
            .await?;
        Ok(Json(Experiment::for_role(experiment, user.role)))
    }

    /// An experiment's event history
    ///
    /// Oldest first: every transition and acknowledgement, who caused it and why
    /// (rollback provenance included). The cursor is the last sequence number seen.
    #[oai(
        path = "/experiments/:id/events",
        method = "get",
        operation_id = "experiment_events"
    )]
    async fn events(
        &self,
        auth: UserToken,
        id: Path<Uuid>,
        /// `next_cursor` of the previous page (a sequence number).
        cursor: Query<Option<String>>,
        /// Page size (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<EventPage>> {
        self.state.user(&auth, Role::Viewer).await?;
        let after = super::seq_cursor(cursor.0.as_deref())?;
        let limit = limit.0.map_or(50, |l| (l as usize).min(MAX_PAGE_SIZE));
        let events = self
            .state
            .phoenix
            .experiment_events(ExperimentId(id.0), after, limit + 1)
            .await?;
        let page = Page::from_overfetch(events, limit, |e| e.seq.to_string());
        Ok(Json(page.into()))
    }
}
