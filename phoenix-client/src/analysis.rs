//! KPIs, cost, cardinality and pipeline routes.

use chrono::{DateTime, SecondsFormat, Utc};
use phoenix_api::analysis::{
    CardinalityReport, CostAnalysis, CostFlowReport, CostHistory, HistoryBreakdown,
    HistoryGranularity, KpiReport,
};
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

    /// `GET /api/v1/metrics/cost-flow`: recommendations keep every inventoried query
    /// answering as before.
    pub async fn cost_flow(
        &self,
        pricing_model: Option<&str>,
        dimensions: &[&str],
    ) -> Result<CostFlowReport, ClientError> {
        self.cost_flow_with(pricing_model, dimensions, false).await
    }

    /// `GET /api/v1/metrics/cost-flow`, with `allow_changed_queries`: also recommend actions
    /// under which an inventoried query answers differently.
    pub async fn cost_flow_with(
        &self,
        pricing_model: Option<&str>,
        dimensions: &[&str],
        allow_changed_queries: bool,
    ) -> Result<CostFlowReport, ClientError> {
        let mut q: Vec<(&str, String)> = dimensions
            .iter()
            .map(|d| ("dimension", (*d).to_owned()))
            .collect();
        if let Some(m) = pricing_model {
            q.push(("pricing_model", m.to_owned()));
        }
        if allow_changed_queries {
            q.push(("allow_changed_queries", "true".to_owned()));
        }
        self.json(
            self.request(Method::GET, "api/v1/metrics/cost-flow")?
                .query(&q),
        )
        .await
    }

    /// `GET /api/v1/cost/history`.
    pub async fn cost_history(&self, query: &HistoryParams) -> Result<CostHistory, ClientError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(g) = query.granularity {
            q.push(("granularity", enum_name(&g)));
        }
        if let Some(b) = query.breakdown {
            q.push(("breakdown", enum_name(&b)));
        }
        if let Some(m) = &query.pricing_model {
            q.push(("pricing_model", m.clone()));
        }
        if let Some(t) = query.from {
            q.push(("from", t.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
        }
        if let Some(t) = query.to {
            q.push(("to", t.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
        }
        self.json(self.request(Method::GET, "api/v1/cost/history")?.query(&q))
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

/// The query of [`Client::cost_history`]; `None` leaves the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryParams {
    /// Hour (default) or day buckets.
    pub granularity: Option<HistoryGranularity>,
    /// Rows besides the total.
    pub breakdown: Option<HistoryBreakdown>,
    /// Catalogue entry.
    pub pricing_model: Option<String>,
    /// Start.
    pub from: Option<DateTime<Utc>>,
    /// End, exclusive.
    pub to: Option<DateTime<Utc>>,
}

/// A wire enum's name as serde writes it.
fn enum_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
