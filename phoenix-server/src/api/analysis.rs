//! KPIs, cost analysis, cardinality and cost flow: core computations over stored
//! measurements and snapshots.

use std::sync::Arc;

use phoenix_api::analysis::{CardinalityReport, CostAnalysis, CostFlowReport, KpiReport};
use phoenix_api::convert::FromCore;
use phoenix_core::agent::AgentFilter;
use phoenix_core::auth::Role;
use phoenix_core::cardinality::{self, AnalysisOptions, Dimension, RecommendOptions};
use phoenix_core::cost::{self, Catalogue, Usage};
use phoenix_core::ids::ExperimentId;
use phoenix_core::kpi;
use phoenix_core::measure::CardinalitySnapshot;
use phoenix_core::store::MAX_SAMPLES_PER_EXPERIMENT;
use phoenix_core::validation::FieldError;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;

use super::ApiTags;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, UserToken};

/// Analysis operations.
#[derive(Debug)]
pub struct AnalysisApi {
    state: Arc<AppState>,
}

impl AnalysisApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

fn usage(summary: &kpi::VariantSummary, hosts: u64, basis: &str) -> Usage {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a non-negative series mean"
    )]
    let series_mean = summary.series_mean.max(0.0).ceil() as u64;
    Usage {
        hosts,
        series_p95: summary.series_p95,
        series_mean,
        points_per_minute: summary.points_per_minute,
        bytes_per_month: summary.bytes_per_month,
        basis: basis.to_owned(),
    }
}

fn dimensions(values: Vec<String>) -> ApiResult<Vec<Dimension>> {
    values
        .into_iter()
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            v.parse::<Dimension>().map_err(|_| {
                ApiError::bad_request(format!(
                    "unknown dimension `{}` (metric, host, service, namespace or label:<key>)",
                    v.chars().take(64).collect::<String>()
                ))
            })
        })
        .collect()
}

fn model<'a>(catalogue: &'a Catalogue, id: &str) -> ApiResult<&'a cost::PricingModel> {
    catalogue.get(id).map_err(|_| {
        ApiError::validation(vec![FieldError::new(
            "pricing_model",
            format!(
                "unknown pricing model `{}` (available: {})",
                id.chars().take(64).collect::<String>(),
                catalogue
                    .models()
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )])
    })
}

fn analysis_error(e: cardinality::AnalysisError) -> ApiError {
    ApiError::validation(vec![FieldError::new("snapshots", e.to_string())])
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Analysis")]
impl AnalysisApi {
    /// An experiment's KPIs
    ///
    /// KPIs from every sample so far (warm-up excluded and counted), the verdict once
    /// judged, a time series of both variants and the per-host breakdown.
    #[oai(
        path = "/experiments/:id/kpis",
        method = "get",
        operation_id = "experiment_kpis"
    )]
    async fn kpis(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Json<KpiReport>> {
        self.state.user(&auth, Role::Viewer).await?;
        let phoenix = &self.state.phoenix;
        let experiment = phoenix.experiment(ExperimentId(id.0)).await?;
        let samples = phoenix
            .stores()
            .metrics
            .samples(experiment.id, MAX_SAMPLES_PER_EXPERIMENT)
            .await?;
        let kpis = kpi::compute(&experiment, &samples, phoenix.catalogue());
        Ok(Json(KpiReport {
            phase: experiment.phase.into(),
            verdict: experiment.verdict.map(Into::into),
            kpis: kpis.into(),
        }))
    }

    /// An experiment's cost analysis
    ///
    /// Both variants priced on the measured hosts (per minute, month, year), the saving,
    /// the projection to a fleet of `fleet_hosts` hosts (default: every live agent), and
    /// recommendations from the targets' cardinality snapshots.
    #[oai(
        path = "/experiments/:id/cost-analysis",
        method = "get",
        operation_id = "experiment_cost_analysis"
    )]
    async fn cost_analysis(
        &self,
        auth: UserToken,
        id: Path<Uuid>,
        /// Hosts to project to (default: live agents).
        #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
        fleet_hosts: Query<Option<u64>>,
    ) -> ApiResult<Json<CostAnalysis>> {
        self.state.user(&auth, Role::Viewer).await?;
        let phoenix = &self.state.phoenix;
        let experiment = phoenix.experiment(ExperimentId(id.0)).await?;
        let samples = phoenix
            .stores()
            .metrics
            .samples(experiment.id, MAX_SAMPLES_PER_EXPERIMENT)
            .await?;
        let catalogue = phoenix.catalogue();
        let kpis = kpi::compute(&experiment, &samples, catalogue);
        let mut notes = Vec::new();
        let pricing = catalogue.get(&experiment.spec.pricing_model).ok();
        if pricing.is_none() {
            notes.push(format!(
                "pricing model `{}` is not in the catalogue",
                experiment.spec.pricing_model
            ));
        }
        let measured = kpis.cost.as_ref().map(|c| c.measured.clone());
        if measured.is_none() && pricing.is_some() {
            notes.push("no judged sample yet: nothing to price".to_owned());
        }
        let hosts = kpis.hosts.reporting;
        let fleet_size = match fleet_hosts.0 {
            Some(n) => n,
            None => phoenix
                .all_agents(&AgentFilter {
                    statuses: vec![
                        phoenix_core::agent::AgentStatus::Healthy,
                        phoenix_core::agent::AgentStatus::Degraded,
                    ],
                    include_revoked: false,
                })
                .await?
                .len() as u64,
        };
        let fleet = match pricing {
            Some(model) if hosts > 0 && fleet_size > 0 => {
                let b = usage(&kpis.baseline, hosts, "baseline, judged samples");
                let c = usage(&kpis.candidate, hosts, "candidate, judged samples");
                match cost::project_fleet(model, &b, &c, fleet_size) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        notes.push(format!("fleet projection failed: {e}"));
                        None
                    }
                }
            }
            _ => None,
        };
        let targets: std::collections::BTreeSet<_> =
            experiment.targets.iter().map(|t| t.agent_id).collect();
        let snapshots: Vec<CardinalitySnapshot> = phoenix
            .snapshots()
            .await?
            .into_iter()
            .filter(|s| targets.contains(&s.agent_id))
            .collect();
        let recommendations = match pricing {
            Some(model) if !snapshots.is_empty() => {
                cardinality::recommend(&snapshots, model, &RecommendOptions::default())
                    .map_err(analysis_error)?
            }
            _ => {
                if snapshots.is_empty() {
                    notes.push("no cardinality snapshot from the targets yet".to_owned());
                }
                Vec::new()
            }
        };
        Ok(Json(CostAnalysis {
            experiment_id: experiment.id.0,
            pricing_model: experiment.spec.pricing_model.clone(),
            measured: measured.map(Into::into),
            fleet: fleet.map(Into::into),
            recommendations: FromCore::from_core(recommendations),
            notes,
        }))
    }

    /// Cardinality explorer
    ///
    /// The fleet's raw series from every agent's latest snapshot: totals, label
    /// cardinalities and breakdowns by `dimension` (repeatable: `metric`, `host`,
    /// `service`, `namespace`, `label:<key>`), with the cost flow when `pricing_model` is
    /// given.
    #[oai(
        path = "/metrics/cardinality",
        method = "get",
        operation_id = "cardinality"
    )]
    async fn cardinality(
        &self,
        auth: UserToken,
        /// Breakdowns (default: metric, service, namespace, host).
        dimension: Query<Vec<String>>,
        /// Top groups per breakdown.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        top: Query<Option<u32>>,
        /// Price the flow under this catalogue entry.
        pricing_model: Query<Option<String>>,
    ) -> ApiResult<Json<CardinalityReport>> {
        self.state.user(&auth, Role::Viewer).await?;
        let mut options = AnalysisOptions::default();
        let asked = dimensions(dimension.0)?;
        if !asked.is_empty() {
            options.breakdowns = asked;
        }
        if let Some(top) = top.0 {
            options.top = top as usize;
        }
        let catalogue = self.state.phoenix.catalogue();
        let model = pricing_model
            .0
            .as_deref()
            .map(|id| model(catalogue, id))
            .transpose()?;
        let snapshots = self.state.phoenix.snapshots().await?;
        let report = cardinality::analyze(&snapshots, &options, model).map_err(analysis_error)?;
        Ok(Json(report.into()))
    }

    /// Cost flow
    ///
    /// Where the money goes under `pricing_model`: cost by metric, service, namespace and
    /// host (or the given dimensions), top contributors, and recommendations with their
    /// projected saving.
    #[oai(
        path = "/metrics/cost-flow",
        method = "get",
        operation_id = "cost_flow"
    )]
    async fn cost_flow(
        &self,
        auth: UserToken,
        /// Catalogue entry (default: grafana-cloud-pro).
        pricing_model: Query<Option<String>>,
        /// Breakdowns (default: metric, service, namespace, host).
        dimension: Query<Vec<String>>,
    ) -> ApiResult<Json<CostFlowReport>> {
        self.state.user(&auth, Role::Viewer).await?;
        let id = pricing_model.0.unwrap_or_else(|| {
            phoenix_api::experiment::ExperimentSpec::new(
                phoenix_api::pipeline::PipelineRef::new(""),
                phoenix_api::pipeline::PipelineRef::new(""),
                0,
            )
            .pricing_model
        });
        let model = model(self.state.phoenix.catalogue(), &id)?;
        let mut options = AnalysisOptions::default();
        let asked = dimensions(dimension.0)?;
        if !asked.is_empty() {
            options.breakdowns = asked;
        }
        let snapshots = self.state.phoenix.snapshots().await?;
        let report =
            cardinality::analyze(&snapshots, &options, Some(model)).map_err(analysis_error)?;
        let recommendations = if snapshots.is_empty() {
            Vec::new()
        } else {
            cardinality::recommend(&snapshots, model, &RecommendOptions::default())
                .map_err(analysis_error)?
        };
        let Some(flow) = report.cost_flow else {
            return Err(ApiError::new(
                phoenix_api::ErrorCode::Internal,
                "internal error",
            ));
        };
        Ok(Json(CostFlowReport {
            hosts: report.hosts,
            total_series: report.total_series,
            cost_flow: flow.into(),
            recommendations: FromCore::from_core(recommendations),
        }))
    }
}
