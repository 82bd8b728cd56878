//! `/api/v1/pipelines/*`: templates, rendering, validation, preview.

use std::sync::Arc;

use phoenix_api::pipeline::{
    Preview, PreviewRequest, RenderRequest, RenderResponse, TemplateList, ValidateRequest,
    ValidationResult,
};
use phoenix_core::auth::Role;
use phoenix_core::pipeline::validate;
use poem_openapi::OpenApi;
use poem_openapi::payload::Json;

use super::ApiTags;
use crate::error::{ApiError, ApiResult};
use crate::payload::StrictJson;
use crate::state::{AppState, UserToken};

/// Pipeline operations.
#[derive(Debug)]
pub struct PipelinesApi {
    state: Arc<AppState>,
}

impl PipelinesApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

fn pipeline_error(e: phoenix_core::pipeline::PipelineError) -> ApiError {
    use phoenix_core::pipeline::PipelineError as E;
    match e {
        E::Invalid(fields) => ApiError::validation(fields),
        other => {
            tracing::error!(error = %crate::error::error_chain(&other), "template failed");
            ApiError::new(phoenix_api::ErrorCode::Internal, "internal error")
        }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Pipelines")]
impl PipelinesApi {
    /// Pipeline templates
    ///
    /// Built-in and registered templates with their parameter schemas.
    #[oai(
        path = "/pipelines/templates",
        method = "get",
        operation_id = "list_templates"
    )]
    async fn templates(&self, auth: UserToken) -> ApiResult<Json<TemplateList>> {
        self.state.user(&auth, Role::Viewer).await?;
        Ok(Json(TemplateList {
            items: self
                .state
                .phoenix
                .templates()
                .infos()
                .into_iter()
                .map(Into::into)
                .collect(),
        }))
    }

    /// Render a pipeline
    ///
    /// Template + parameters to the typed spec and the OpenTelemetry Collector YAML, with
    /// the YAML's validation. Invalid parameters: 422 with their paths.
    #[oai(
        path = "/pipelines/render",
        method = "post",
        operation_id = "render_pipeline"
    )]
    async fn render(
        &self,
        auth: UserToken,
        body: StrictJson<RenderRequest>,
    ) -> ApiResult<Json<RenderResponse>> {
        self.state.user(&auth, Role::Viewer).await?;
        let request = body.0;
        let ctx = request.context();
        let reference = request
            .pipeline
            .into_core("pipeline")
            .map_err(ApiError::validation)?;
        let rendered = self
            .state
            .phoenix
            .templates()
            .render(&reference, &ctx)
            .map_err(pipeline_error)?;
        let validation = validate::validate_collector_yaml(&rendered.collector_yaml).into();
        Ok(Json(RenderResponse {
            rendered: rendered.into(),
            validation,
        }))
    }

    /// Validate a Collector config
    ///
    /// Parses the YAML with bounded limits and checks the pipeline graph and component
    /// allow-list; every issue with its path and line. Always 200 for YAML that could be
    /// read: `valid` tells.
    #[oai(
        path = "/pipelines/validate",
        method = "post",
        operation_id = "validate_pipeline"
    )]
    async fn validate(
        &self,
        auth: UserToken,
        body: StrictJson<ValidateRequest>,
    ) -> ApiResult<Json<ValidationResult>> {
        self.state.user(&auth, Role::Viewer).await?;
        Ok(Json(
            validate::validate_collector_yaml(&body.0.collector_yaml).into(),
        ))
    }

    /// Preview a pipeline on a recorded sample or an agent's snapshot
    ///
    /// Evaluates the pipeline with the native engine on exactly one of a pasted sample
    /// (`exposition`, Prometheus text) and an agent's latest cardinality snapshot
    /// (`agent_id`, what the agent sends on its schedule), and reports projected series,
    /// points, bytes, fidelity and critical coverage; with a query inventory, which queries
    /// the output still answers; with `pricing_model`, the input and the output priced.
    /// 404: unknown agent; 409: the agent has sent no snapshot yet; 422: anything else
    /// wrong with the request (both or neither source, unknown pricing model, a pipeline
    /// that ranks by value on a snapshot without values).
    #[oai(
        path = "/pipelines/preview",
        method = "post",
        operation_id = "preview_pipeline"
    )]
    async fn preview(
        &self,
        auth: UserToken,
        body: StrictJson<PreviewRequest>,
    ) -> ApiResult<Json<Preview>> {
        self.state.user(&auth, Role::Viewer).await?;
        let request = body.0.into_core().map_err(ApiError::validation)?;
        let result = self.state.phoenix.preview_pipeline(request).await?;
        Ok(Json(result.into()))
    }
}
