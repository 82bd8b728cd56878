//! KPIs, cost, cardinality and pipeline routes.

use phoenix_api::analysis::{CardinalityReport, CostAnalysis, CostFlowReport, KpiReport};
use phoenix_api::pipeline::{
    Preview, PreviewRequest, RenderRequest, RenderResponse, TemplateList, ValidateRequest,
    ValidationResult,
};
use reqwest::Method;
use uuid::Uuid;

use crate::{Client, ClientError};

impl Client {
    /// `GET /api/v1/experiments/{id}/kpis`.
    pub async fn experiment_kpis(&self, id: Uuid) -> Result<KpiReport, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/experiments/{id}/kpis"))?)
            .await
    }

    /// `GET /api/v1/experiments/{id}/cost-analysis`.
    pub async fn cost_analysis(
        &self,
        id: Uuid,
        fleet_hosts: Option<u64>,
    ) -> Result<CostAnalysis, ClientError> {
        let q: Vec<(&str, String)> = fleet_hosts
            .map(|n| vec![("fleet_hosts", n.to_string())])
            .unwrap_or_default();
        self.json(
            self.request(
                Method::GET,
                &format!("api/v1/experiments/{id}/cost-analysis"),
            )?
            .query(&q),
        )
        .await
    }

    /// `GET /api/v1/metrics/cardinality`.
    pub async fn cardinality(
        &self,
        dimensions: &[&str],
        top: Option<u32>,
        pricing_model: Option<&str>,
    ) -> Result<CardinalityReport, ClientError> {
        let mut q: Vec<(&str, String)> = dimensions
            .iter()
            .map(|d| ("dimension", (*d).to_owned()))
            .collect();
        if let Some(t) = top {
            q.push(("top", t.to_string()));
        }
        if let Some(m) = pricing_model {
            q.push(("pricing_model", m.to_owned()));
        }
        self.json(
            self.request(Method::GET, "api/v1/metrics/cardinality")?
                .query(&q),
        )
        .await
    }

    /// `GET /api/v1/metrics/cost-flow`.
    pub async fn cost_flow(
        &self,
        pricing_model: Option<&str>,
        dimensions: &[&str],
    ) -> Result<CostFlowReport, ClientError> {
        let mut q: Vec<(&str, String)> = dimensions
            .iter()
            .map(|d| ("dimension", (*d).to_owned()))
            .collect();
        if let Some(m) = pricing_model {
            q.push(("pricing_model", m.to_owned()));
        }
        self.json(
            self.request(Method::GET, "api/v1/metrics/cost-flow")?
                .query(&q),
        )
        .await
    }

    /// `GET /api/v1/pipelines/templates`.
    pub async fn templates(&self) -> Result<TemplateList, ClientError> {
        self.json(self.request(Method::GET, "api/v1/pipelines/templates")?)
            .await
    }

    /// `POST /api/v1/pipelines/render`.
    pub async fn render_pipeline(
        &self,
        request: &RenderRequest,
    ) -> Result<RenderResponse, ClientError> {
        self.json(
            self.request(Method::POST, "api/v1/pipelines/render")?
                .json(request),
        )
        .await
    }

    /// `POST /api/v1/pipelines/validate`.
    pub async fn validate_pipeline(
        &self,
        collector_yaml: &str,
    ) -> Result<ValidationResult, ClientError> {
        self.json(
            self.request(Method::POST, "api/v1/pipelines/validate")?
                .json(&ValidateRequest {
                    collector_yaml: collector_yaml.to_owned(),
                }),
        )
        .await
    }

    /// `POST /api/v1/pipelines/preview`.
    pub async fn preview_pipeline(&self, request: &PreviewRequest) -> Result<Preview, ClientError> {
        self.json(
            self.request(Method::POST, "api/v1/pipelines/preview")?
                .json(request),
        )
        .await
    }
}

impl Client {
    /// `POST /api/v1/pipelines/deployments`.
    pub async fn create_deployment(
        &self,
        request: &phoenix_api::deployment::NewDeployment,
    ) -> Result<phoenix_api::deployment::Deployment, ClientError> {
        self.json(
            self.request(Method::POST, "api/v1/pipelines/deployments")?
                .json(request),
        )
        .await
    }

    /// `GET /api/v1/pipelines/deployments`.
    pub async fn list_deployments(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<phoenix_api::deployment::DeploymentPage, ClientError> {
        let mut q = Vec::new();
        if let Some(c) = cursor {
            q.push(("cursor", c));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.json(
            self.request(Method::GET, "api/v1/pipelines/deployments")?
                .query(&q),
        )
        .await
    }

    /// `GET /api/v1/pipelines/deployments/{id}`.
    pub async fn get_deployment(
        &self,
        id: Uuid,
    ) -> Result<phoenix_api::deployment::Deployment, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/pipelines/deployments/{id}"))?)
            .await
    }

    /// `POST /api/v1/pipelines/deployments/{id}/{pause|resume|rollback}`.
    pub async fn deployment_command(
        &self,
        id: Uuid,
        command: DeploymentCommand,
    ) -> Result<phoenix_api::deployment::Deployment, ClientError> {
        let verb = match command {
            DeploymentCommand::Pause => "pause",
            DeploymentCommand::Resume => "resume",
            DeploymentCommand::Rollback => "rollback",
        };
        self.json(self.request(
            Method::POST,
            &format!("api/v1/pipelines/deployments/{id}/{verb}"),
        )?)
        .await
    }
}

/// An operator command on a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentCommand {
    /// Start no new batch.
    Pause,
    /// Continue, retrying failed agents.
    Resume,
    /// Restore the previous pipeline.
    Rollback,
}
