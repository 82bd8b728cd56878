//! KPIs, cost analysis, cardinality and cost flow: the facade decides
//! (`phoenix_core::phoenix::analysis`), these handlers translate HTTP to it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use phoenix_api::analysis::{
    CardinalityReport, CostAnalysis, CostFlowReport, CostHistory, HistoryBreakdown,
    HistoryGranularity, KpiReport,
};
use phoenix_api::convert::FromCore;
use phoenix_core::auth::Role;
use phoenix_core::cardinality::{AnalysisOptions, Dimension};
use phoenix_core::history::{BreakdownKind, Granularity};
use phoenix_core::ids::ExperimentId;
use phoenix_core::phoenix::HistoryQuery;
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
        let (experiment, kpis) = self
            .state
            .phoenix
            .experiment_kpis(ExperimentId(id.0))
            .await?;
        Ok(Json(KpiReport {
            phase: experiment.phase.into(),
            verdict: experiment.verdict.map(Into::into),
            kpis: kpis.into(),
        }))
    }

    /// An experiment's cost analysis
    ///
    /// Both variants priced on the measured hosts (per minute, month, year), the saving,
    /// the projection to a fleet of `fleet_hosts` hosts (default: the host set every fleet view uses), and
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
        /// Hosts to project to (default: the fleet views' host set, `coverage.hosts`).
        #[oai(validator(minimum(value = "1"), maximum(value = "10000000")))]
        fleet_hosts: Query<Option<u64>>,
    ) -> ApiResult<Json<CostAnalysis>> {
        self.state.user(&auth, Role::Viewer).await?;
        let analysis = self
            .state
            .phoenix
            .cost_analysis(ExperimentId(id.0), fleet_hosts.0)
            .await?;
        Ok(Json(CostAnalysis {
            experiment_id: analysis.experiment_id.0,
            pricing_model: analysis.pricing_model,
            measured: analysis.measured.map(Into::into),
            fleet: analysis.fleet.map(Into::into),
            recommendations: FromCore::from_core(analysis.recommendations),
            coverage: analysis.coverage.into(),
            notes: analysis.notes,
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
        let report = self
            .state
            .phoenix
            .cardinality_report(&options, pricing_model.0.as_deref())
            .await?;
        Ok(Json(report.into()))
    }

    /// Cost flow
    ///
    /// Where the money goes under `pricing_model`: cost by metric, service, namespace and
    /// host (or the given dimensions), top contributors, and recommendations with their
    /// projected saving. With a query inventory, only actions under which every inventoried
    /// query still answers as before are recommended (each listing the queries it keeps);
    /// `allow_changed_queries=true` also recommends those under which some query answers
    /// differently, listing those queries and why. An action that breaks a query is never
    /// recommended.
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
        /// Also recommend actions under which an inventoried query answers differently
        /// (default: false).
        allow_changed_queries: Query<Option<bool>>,
    ) -> ApiResult<Json<CostFlowReport>> {
        self.state.user(&auth, Role::Viewer).await?;
        let view = self
            .state
            .phoenix
            .cost_flow(
                pricing_model.0.as_deref(),
                dimensions(dimension.0)?,
                allow_changed_queries.0.unwrap_or(false),
            )
            .await?;
        Ok(Json(CostFlowReport {
            hosts: view.hosts,
            coverage: view.coverage.into(),
            total_series: view.total_series,
            cost_flow: view.cost_flow.into(),
            recommendations: FromCore::from_core(view.recommendations),
            shipped: FromCore::from_core(view.shipped),
        }))
    }
    /// Cost history
    ///
    /// The fleet's series, data points per minute, estimated bytes and monthly cost over
    /// time, in hourly or daily buckets (each the mean of its recorded observations), in
    /// total and by `breakdown` (top keys, then `(other)` and `(none)`), with the
    /// promotions and rollbacks of experiments and quick deployments in the range, and what
    /// a month and a year cost, each `measured` (a full window recorded) or `projected`
    /// (from the trend, saying from how many days). A range is at most 1,000 buckets.
    #[oai(path = "/cost/history", method = "get", operation_id = "cost_history")]
    async fn cost_history(
        &self,
        auth: UserToken,
        /// `hour` (default) or `day`.
        granularity: Query<Option<HistoryGranularity>>,
        /// Rows besides the total (default: `total`, the total only).
        breakdown: Query<Option<HistoryBreakdown>>,
        /// Catalogue entry (default: grafana-cloud-pro).
        pricing_model: Query<Option<String>>,
        /// Start, RFC 3339 (default: 7 days before `to` for hours, 90 days for days).
        from: Query<Option<DateTime<Utc>>>,
        /// End, exclusive, RFC 3339 (default: now).
        to: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<CostHistory>> {
        self.state.user(&auth, Role::Viewer).await?;
        let view = self
            .state
            .phoenix
            .cost_history(&HistoryQuery {
                granularity: granularity.0.map_or(Granularity::Hour, Into::into),
                breakdown: breakdown.0.map_or(BreakdownKind::Total, Into::into),
                pricing_model: pricing_model.0,
                from: from.0,
                to: to.0,
            })
            .await?;
        Ok(Json(view.into()))
    }
}
