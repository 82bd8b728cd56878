//! What the analysis and fleet views show, decided once: an experiment's KPIs and cost
//! analysis (one path from measured samples to priced usage: the usage the KPIs priced is
//! the usage the fleet projection scales), the fleet's cardinality and cost flow, and the
//! fleet summary (one definition of a live agent, [`AgentFilter::live`], and of an
//! experiment that occupies agents, [`Phase::occupies_agents`]). Servers translate these
//! to their wire types and nothing more.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::agent::{Agent, AgentFilter, AgentStatus, PipelineHealth};
use crate::cardinality::{
    self, AnalysisOptions, CardinalityReport, CostFlow, Dimension, HostTable, RawVsShipped,
    RecommendOptions, Recommendation,
};
use crate::cost::{FleetProjection, PricingModel, Savings, project_fleet};
use crate::experiment::{DEFAULT_PRICING_MODEL, Experiment, Phase};
use crate::ids::{AgentId, ExperimentId};
use crate::kpi::{self, ExperimentKpis};
use crate::measure::{CardinalitySnapshot, SnapshotMeta, SnapshotSource};
use crate::store::{ExperimentFilter, MAX_SAMPLES_PER_EXPERIMENT, SnapshotVersion};
use crate::task::{EnqueueResult, NewTask, TaskPayload};
use crate::validation::ValidationErrors;

use super::fleet_cache::{CachedView, ViewTables};
use super::{Phoenix, PhoenixError};

/// An experiment's cost: both variants priced on the measured hosts, projected to the
/// fleet, and what the targets' raw series could still save.
#[derive(Debug, Clone, PartialEq)]
pub struct CostAnalysis {
    /// The experiment.
    pub experiment_id: ExperimentId,
    /// The catalogue entry it is priced under.
    pub pricing_model: String,
    /// Both variants priced on the measured hosts (`None` before any judged sample or
    /// with a pricing model the catalogue lacks).
    pub measured: Option<Savings>,
    /// The measured per-host usage projected to the fleet.
    pub fleet: Option<FleetProjection>,
    /// Changes to the targets' raw series, best saving first.
    pub recommendations: Vec<Recommendation>,
    /// The fleet's host set (the projection's default size is its `hosts`).
    pub coverage: Coverage,
    /// Why something is missing.
    pub notes: Vec<String>,
}

/// How much of the fleet a view saw: every fleet view (cost flow, cardinality,
/// recommendations, fleet projection) reads one host set, [`Phoenix::fleet_snapshots`], and
/// states it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    /// Hosts in the view's host set: every live agent, plus agents no longer live (lost,
    /// revoked) whose last snapshot is within the snapshot retention.
    pub hosts: u64,
    /// Live agents ([`AgentFilter::live`]).
    pub live_hosts: u64,
    /// Hosts of the set whose snapshot the view used.
    pub reporting: u64,
    /// Live agents with a snapshot.
    pub reporting_live: u64,
    /// `reporting_live / live_hosts` in percent (`None` without a live agent).
    pub percent: Option<f64>,
    /// The oldest snapshot used.
    pub oldest_snapshot_at: Option<DateTime<Utc>>,
    /// Its age when the view was computed, seconds.
    pub oldest_snapshot_age_secs: Option<u64>,
    /// Hosts of the set that report a current shipped output (the output of the pipeline
    /// deployed or promoted on them, [`shipped_is_current`]).
    pub reporting_shipped: u64,
    /// The instant the view was computed for (the snapshots stored then). Fleet views are
    /// memoized per replica for at most [`super::PhoenixConfig::fleet_view_staleness`].
    pub computed_at: DateTime<Utc>,
}

/// The snapshots a fleet view uses and the coverage they give.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSnapshots {
    /// One input snapshot per host of the set that has one, ordered by agent id.
    pub snapshots: Vec<CardinalitySnapshot>,
    /// The current shipped outputs of those hosts ([`shipped_is_current`]), ordered by
    /// agent id.
    pub shipped: Vec<CardinalitySnapshot>,
    /// What they cover.
    pub coverage: Coverage,
}

/// The fleet's cardinality with its coverage.
#[derive(Debug, Clone, PartialEq)]
pub struct CardinalityView {
    /// The analysis.
    pub report: CardinalityReport,
    /// Hosts it covers.
    pub coverage: Coverage,
}

/// Whether a host's shipped snapshot describes what it ships now: taken no more than one
/// snapshot interval before its input snapshot (both are taken on the same schedule, so a
/// host whose pipeline was removed stops counting one interval after).
#[must_use]
pub fn shipped_is_current(input: &CardinalitySnapshot, shipped: &CardinalitySnapshot) -> bool {
    shipped_meta_is_current(&input.meta(), &shipped.meta())
}

/// [`shipped_is_current`] on what the stores list of each snapshot.
fn shipped_meta_is_current(input: &SnapshotMeta, shipped: &SnapshotMeta) -> bool {
    shipped.taken_at + chrono::Duration::seconds(i64::from(input.interval_secs.max(1)))
        >= input.taken_at
}

/// The host set chosen from stored snapshots' metadata ([`select_hosts`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostSelection {
    /// Positions (in the snapshots given) of the input snapshots kept, ordered by agent id.
    pub(crate) inputs: Vec<usize>,
    /// Positions of the shipped snapshots kept, ordered by agent id.
    pub(crate) shipped: Vec<usize>,
    /// What they cover.
    pub(crate) coverage: Coverage,
    /// Agents whose snapshots are out (deleted agents, retention passed), each once.
    pub(crate) out: Vec<AgentId>,
}

/// Which snapshots a fleet view keeps, decided once, on what the stores list of each
/// snapshot (agent, source, taken_at, interval): a host's input snapshot counts while its
/// agent exists and is live, or, for an agent no longer live, while the snapshot is younger
/// than `retention`; its shipped output counts with it while current
/// ([`shipped_is_current`]). Both the uncached path ([`select_snapshots`]) and the fleet
/// cache choose their host set here. `coverage.computed_at` is `now`.
pub(crate) fn select_hosts(
    agents: &[Agent],
    snapshots: &[SnapshotMeta],
    now: DateTime<Utc>,
    retention: chrono::Duration,
) -> HostSelection {
    let live = AgentFilter::live();
    let by_id: BTreeMap<AgentId, &Agent> = agents.iter().map(|a| (a.id, a)).collect();
    let mut coverage = Coverage {
        live_hosts: agents.iter().filter(|a| live.matches(a)).count() as u64,
        computed_at: now,
        ..Coverage::default()
    };
    let mut kept: Vec<usize> = Vec::new();
    let mut shipped: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for (i, snapshot) in snapshots.iter().enumerate() {
        let Some(agent) = by_id.get(&snapshot.agent_id) else {
            out.push(snapshot.agent_id);
            continue;
        };
        if snapshot.source != SnapshotSource::Input {
            shipped.push(i);
            continue;
        }
        if live.matches(agent) {
            coverage.reporting_live += 1;
        } else if now - snapshot.taken_at > retention {
            out.push(snapshot.agent_id);
            continue;
        }
        kept.push(i);
    }
    kept.sort_by_key(|&i| snapshots[i].agent_id);
    out.sort();
    out.dedup();
    let inputs: BTreeMap<AgentId, &SnapshotMeta> = kept
        .iter()
        .map(|&i| (snapshots[i].agent_id, &snapshots[i]))
        .collect();
    shipped.retain(|&i| {
        inputs
            .get(&snapshots[i].agent_id)
            .is_some_and(|input| shipped_meta_is_current(input, &snapshots[i]))
    });
    shipped.sort_by_key(|&i| snapshots[i].agent_id);
    coverage.reporting_shipped = shipped.len() as u64;
    coverage.reporting = kept.len() as u64;
    coverage.hosts = coverage.live_hosts + (coverage.reporting - coverage.reporting_live);
    coverage.percent = (coverage.live_hosts > 0)
        .then(|| coverage.reporting_live as f64 * 100.0 / coverage.live_hosts as f64);
    coverage.oldest_snapshot_at = kept.iter().map(|&i| snapshots[i].taken_at).min();
    coverage.oldest_snapshot_age_secs = coverage
        .oldest_snapshot_at
        .map(|t| u64::try_from((now - t).num_seconds()).unwrap_or(0));
    HostSelection {
        inputs: kept,
        shipped,
        coverage,
        out,
    }
}

/// [`select_hosts`] over the snapshots themselves: returns the snapshots kept, the
/// coverage, and the agents whose snapshots are out (deleted agents, retention passed):
/// the controller deletes those.
#[must_use]
pub fn select_snapshots(
    agents: &[Agent],
    snapshots: Vec<CardinalitySnapshot>,
    now: DateTime<Utc>,
    retention: chrono::Duration,
) -> (FleetSnapshots, Vec<AgentId>) {
    let metas: Vec<SnapshotMeta> = snapshots.iter().map(CardinalitySnapshot::meta).collect();
    let selection = select_hosts(agents, &metas, now, retention);
    let mut slots: Vec<Option<CardinalitySnapshot>> = snapshots.into_iter().map(Some).collect();
    let mut take = |positions: &[usize]| -> Vec<CardinalitySnapshot> {
        positions.iter().filter_map(|&i| slots[i].take()).collect()
    };
    let kept = take(&selection.inputs);
    let shipped = take(&selection.shipped);
    (
        FleetSnapshots {
            snapshots: kept,
            shipped,
            coverage: selection.coverage,
        },
        selection.out,
    )
}

/// What an on-demand snapshot refresh asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotRefresh {
    /// Live agents asked for a snapshot now (a `CollectSnapshot` task each).
    pub requested: u64,
    /// Live agents that had one pending already (not asked twice).
    pub already_pending: u64,
}

/// Where the fleet's money goes under one pricing model.
#[derive(Debug, Clone, PartialEq)]
pub struct CostFlowView {
    /// Hosts whose snapshots were analysed.
    pub hosts: u64,
    /// Hosts the view covers.
    pub coverage: Coverage,
    /// Series.
    pub total_series: u64,
    /// The flow.
    pub cost_flow: CostFlow,
    /// Best savings first.
    pub recommendations: Vec<Recommendation>,
    /// The hosts that report a shipped output: their raw input beside what they ship,
    /// priced under the same model (`None` when no host reports one).
    pub shipped: Option<RawVsShipped>,
}

/// Totals over the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetSummary {
    /// Agents not revoked.
    pub total: u64,
    /// Healthy agents.
    pub healthy: u64,
    /// Degraded agents (a pipeline unhealthy).
    pub degraded: u64,
    /// Lost agents (heartbeats missed).
    pub lost: u64,
    /// Revoked agents.
    pub revoked: u64,
    /// Agents per version.
    pub versions: BTreeMap<String, u64>,
    /// Active pipelines per template.
    pub pipelines_by_template: BTreeMap<String, u64>,
    /// Agents with an unhealthy pipeline.
    pub unhealthy_pipelines: u64,
    /// Reports refused, all agents.
    pub refused_reports: u64,
    /// Agents with at least one refused report.
    pub agents_with_refused_reports: u64,
    /// Experiments occupying agents ([`Phase::occupies_agents`]).
    pub active_experiments: u64,
    /// Experiments promoted.
    pub promoted_experiments: u64,
}

/// The fleet: its totals and every agent not revoked.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetOverview {
    /// Totals.
    pub summary: FleetSummary,
    /// Agents not revoked.
    pub agents: Vec<Agent>,
}

/// A 422 on `field`.
fn invalid(field: &str, message: String) -> PhoenixError {
    let mut errors = ValidationErrors::new();
    errors.push(field, message);
    PhoenixError::Validation(errors)
}

/// The cost flow's analysis options: `breakdowns`, or the default ones when empty.
fn flow_options(breakdowns: Vec<Dimension>) -> AnalysisOptions {
    let mut options = AnalysisOptions::default();
    if !breakdowns.is_empty() {
        options.breakdowns = breakdowns;
    }
    options
}

fn recommend_options(allow_changed_queries: bool) -> RecommendOptions {
    RecommendOptions {
        allow_changed_queries,
        ..RecommendOptions::default()
    }
}

/// A stamp of the query inventory's content (part of a memoized cost flow's key).
fn inventory_version(inventory: &[crate::queries::InventoryQuery]) -> u64 {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(format!("{inventory:?}").as_bytes());
    let digest = digest.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A cost flow view from its analysis.
fn flow_view(
    report: CardinalityReport,
    recommendations: Vec<Recommendation>,
    shipped: Option<RawVsShipped>,
    coverage: Coverage,
) -> Result<CostFlowView, PhoenixError> {
    let cost_flow = report.cost_flow.ok_or_else(|| {
        invalid(
            "pricing_model",
            "the cost flow could not be priced under this model".to_owned(),
        )
    })?;
    Ok(CostFlowView {
        hosts: report.hosts,
        coverage,
        total_series: report.total_series,
        cost_flow,
        recommendations,
        shipped,
    })
}

impl Phoenix {
    /// The catalogue entry `id`, or a 422 on `pricing_model` listing the known ones.
    pub fn pricing_model(&self, id: &str) -> Result<&PricingModel, PhoenixError> {
        let catalogue = self.catalogue();
        catalogue.get(id).map_err(|_| {
            invalid(
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
            )
        })
    }

    /// Live agents: healthy or degraded, not revoked (the agents an experiment or a
    /// deployment may target).
    pub async fn live_agents(&self) -> Result<Vec<Agent>, PhoenixError> {
        self.all_agents(&AgentFilter::live()).await
    }

    /// The snapshots every fleet view uses and their coverage ([`select_snapshots`] under
    /// [`super::PhoenixConfig::snapshot_retention`]).
    pub async fn fleet_snapshots(&self) -> Result<FleetSnapshots, PhoenixError> {
        let agents = self
            .all_agents(&AgentFilter {
                statuses: Vec::new(),
                include_revoked: true,
            })
            .await?;
        let snapshots = self.snapshots().await?;
        Ok(select_snapshots(
            &agents,
            snapshots,
            self.now(),
            self.config().snapshot_retention,
        )
        .0)
    }

    /// Asks every live agent for a fresh cardinality snapshot now rather than at its next
    /// scheduled one: one `CollectSnapshot` task per agent, at most one open per agent.
    pub async fn refresh_snapshots(&self) -> Result<SnapshotRefresh, PhoenixError> {
        let agents = self.live_agents().await?;
        let mut refresh = SnapshotRefresh::default();
        for chunk in agents.chunks(500) {
            let tasks: Vec<NewTask> = chunk
                .iter()
                .map(|a| {
                    NewTask::new(a.id, TaskPayload::CollectSnapshot {}, 0)
                        .with_unique_key(format!("collect_snapshot:{}", a.id))
                })
                .collect();
            for result in self.stores().queue.enqueue(&tasks).await? {
                match result {
                    EnqueueResult::Enqueued { .. } => refresh.requested += 1,
                    EnqueueResult::Duplicate { .. } => refresh.already_pending += 1,
                }
            }
        }
        Ok(refresh)
    }

    /// Deletes the snapshots no fleet view uses any more (agents deleted, or not live and
    /// past the retention); returns how many. The controller runs it.
    pub async fn prune_snapshots(&self) -> Result<u64, PhoenixError> {
        // The rule needs no snapshot body: the versions list what it decides on.
        let agents = self
            .all_agents(&AgentFilter {
                statuses: Vec::new(),
                include_revoked: true,
            })
            .await?;
        let metas: Vec<SnapshotMeta> = self
            .stores()
            .metrics
            .snapshot_versions()
            .await?
            .iter()
            .map(SnapshotVersion::meta)
            .collect();
        let out = select_hosts(
            &agents,
            &metas,
            self.now(),
            self.config().snapshot_retention,
        )
        .out;
        if out.is_empty() {
            return Ok(0);
        }
        Ok(self.stores().metrics.delete_snapshots(&out).await?)
    }

    /// An experiment and its KPIs from every stored sample.
    pub async fn experiment_kpis(
        &self,
        id: ExperimentId,
    ) -> Result<(Experiment, ExperimentKpis), PhoenixError> {
        let experiment = self.experiment(id).await?;
        let samples = self
            .stores()
            .metrics
            .samples(experiment.id, MAX_SAMPLES_PER_EXPERIMENT)
            .await?;
        let kpis = kpi::compute(&experiment, &samples, self.catalogue());
        Ok((experiment, kpis))
    }

    /// An experiment's cost analysis, projected to `fleet_hosts` hosts (default: the live
    /// agents).
    pub async fn cost_analysis(
        &self,
        id: ExperimentId,
        fleet_hosts: Option<u64>,
    ) -> Result<CostAnalysis, PhoenixError> {
        let (experiment, kpis) = self.experiment_kpis(id).await?;
        let mut notes = Vec::new();
        let pricing = self.catalogue().get(&experiment.spec.pricing_model).ok();
        if pricing.is_none() {
            notes.push(format!(
                "pricing model `{}` is not in the catalogue",
                experiment.spec.pricing_model
            ));
        }
        let measured = kpis.cost.as_ref();
        if measured.is_none() && pricing.is_some() {
            notes.push("no judged sample yet: nothing to price".to_owned());
        }
        let fleet_hosts_now = self.cached_fleet_hosts().await?;
        let coverage = fleet_hosts_now.coverage.clone();
        let fleet_size = fleet_hosts.unwrap_or(coverage.hosts);
        let fleet = match (pricing, measured) {
            (Some(model), Some(cost)) if fleet_size > 0 => {
                match project_fleet(
                    model,
                    &cost.baseline_usage,
                    &cost.candidate_usage,
                    fleet_size,
                ) {
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
        let hosts: Vec<Arc<HostTable>> = fleet_hosts_now
            .inputs
            .into_iter()
            .filter(|t| targets.contains(&t.agent_id()))
            .collect();
        let recommendations = match pricing {
            Some(model) if !hosts.is_empty() => {
                let inventory = self.query_inventory().await?;
                self.merge_hosts(hosts)
                    .await?
                    .recommend_with_queries(model, &RecommendOptions::default(), &inventory)
                    .map_err(|e| invalid("snapshots", e.to_string()))?
            }
            _ => {
                if hosts.is_empty() {
                    notes.push("no cardinality snapshot from the targets yet".to_owned());
                }
                Vec::new()
            }
        };
        Ok(CostAnalysis {
            experiment_id: experiment.id,
            pricing_model: experiment.spec.pricing_model.clone(),
            measured: measured.map(|c| c.measured.clone()),
            fleet,
            recommendations,
            coverage,
            notes,
        })
    }

    /// The fleet's raw series from the host set's snapshots ([`Phoenix::fleet_snapshots`]),
    /// priced under `pricing_model` when given; memoized per replica within
    /// [`super::PhoenixConfig::fleet_view_staleness`] (the coverage states the instant).
    pub async fn cardinality_report(
        &self,
        options: &AnalysisOptions,
        pricing_model: Option<&str>,
    ) -> Result<CardinalityView, PhoenixError> {
        let model = pricing_model
            .map(|id| self.pricing_model(id).cloned())
            .transpose()?;
        let key = format!("cardinality|{pricing_model:?}|{options:?}");
        let options = options.clone();
        let memo = self
            .fleet_view(
                key,
                Arc::new(move |tables: &ViewTables<'_>| {
                    tables
                        .inputs()?
                        .analyze(&options, model.as_ref())
                        .map(CachedView::Report)
                        .map_err(|e| invalid("snapshots", e.to_string()))
                }),
            )
            .await?;
        let CachedView::Report(report) = &*memo.view else {
            unreachable!("a cardinality key holds a report");
        };
        Ok(CardinalityView {
            report: report.clone(),
            coverage: memo.coverage,
        })
    }

    /// The uncached [`Phoenix::cardinality_report`]: reads every snapshot from the store
    /// and analyses them now (what the cached views must equal).
    pub async fn cardinality_report_uncached(
        &self,
        options: &AnalysisOptions,
        pricing_model: Option<&str>,
    ) -> Result<CardinalityView, PhoenixError> {
        let model = pricing_model.map(|id| self.pricing_model(id)).transpose()?;
        let FleetSnapshots {
            snapshots,
            coverage,
            ..
        } = self.fleet_snapshots().await?;
        let report = cardinality::analyze(&snapshots, options, model)
            .map_err(|e| invalid("snapshots", e.to_string()))?;
        Ok(CardinalityView { report, coverage })
    }

    /// Where the fleet's money goes under `pricing_model` (default: the default of an
    /// experiment, [`DEFAULT_PRICING_MODEL`]), by `breakdowns` (default: metric, service,
    /// namespace, host), with recommendations that keep the query inventory answering
    /// (and, with `allow_changed_queries`, also those under which some query answers
    /// differently, listing them), and raw vs shipped; memoized per replica within
    /// [`super::PhoenixConfig::fleet_view_staleness`] (the coverage states the instant; the
    /// inventory is part of the memo's key).
    pub async fn cost_flow(
        &self,
        pricing_model: Option<&str>,
        breakdowns: Vec<Dimension>,
        allow_changed_queries: bool,
    ) -> Result<CostFlowView, PhoenixError> {
        let id = pricing_model.unwrap_or(DEFAULT_PRICING_MODEL);
        let model = self.pricing_model(id)?.clone();
        let options = flow_options(breakdowns);
        let inventory = self.query_inventory().await?;
        let key = format!(
            "cost_flow|{id}|{options:?}|{allow_changed_queries}|{:016x}",
            inventory_version(&inventory)
        );
        let memo = self
            .fleet_view(
                key,
                Arc::new(move |tables: &ViewTables<'_>| {
                    let inputs = tables.inputs()?;
                    let report = inputs
                        .analyze(&options, Some(&model))
                        .map_err(|e| invalid("snapshots", e.to_string()))?;
                    let shipped = tables
                        .raw_and_shipped()?
                        .map(|(raw, shipped)| {
                            cardinality::raw_vs_shipped_tables(&raw, &shipped, &model)
                        })
                        .transpose()
                        .map_err(|e| invalid("snapshots", e.to_string()))?;
                    let recommendations = if inputs.hosts() == 0 {
                        Vec::new()
                    } else {
                        inputs
                            .recommend_with_queries(
                                &model,
                                &recommend_options(allow_changed_queries),
                                &inventory,
                            )
                            .map_err(|e| invalid("snapshots", e.to_string()))?
                    };
                    Ok(CachedView::Flow(report, recommendations, shipped))
                }),
            )
            .await?;
        let CachedView::Flow(report, recommendations, shipped) = &*memo.view else {
            unreachable!("a cost flow key holds a flow");
        };
        flow_view(
            report.clone(),
            recommendations.clone(),
            shipped.clone(),
            memo.coverage,
        )
    }

    /// The uncached [`Phoenix::cost_flow`]: reads every snapshot from the store and
    /// analyses them now (what the cached views must equal).
    pub async fn cost_flow_uncached(
        &self,
        pricing_model: Option<&str>,
        breakdowns: Vec<Dimension>,
        allow_changed_queries: bool,
    ) -> Result<CostFlowView, PhoenixError> {
        let model = self.pricing_model(pricing_model.unwrap_or(DEFAULT_PRICING_MODEL))?;
        let options = flow_options(breakdowns);
        let FleetSnapshots {
            snapshots,
            shipped,
            coverage,
        } = self.fleet_snapshots().await?;
        let report = cardinality::analyze(&snapshots, &options, Some(model))
            .map_err(|e| invalid("snapshots", e.to_string()))?;
        let shipped = cardinality::raw_vs_shipped(&snapshots, &shipped, model)
            .map_err(|e| invalid("snapshots", e.to_string()))?;
        let recommendations = if snapshots.is_empty() {
            Vec::new()
        } else {
            let inventory = self.query_inventory().await?;
            cardinality::recommend_with_queries(
                &snapshots,
                model,
                &recommend_options(allow_changed_queries),
                &inventory,
            )
            .map_err(|e| invalid("snapshots", e.to_string()))?
        };
        flow_view(report, recommendations, shipped, coverage)
    }

    /// The fleet: totals per status, version and template, refused reports, experiments
    /// occupying agents, and every agent not revoked.
    pub async fn fleet_overview(&self) -> Result<FleetOverview, PhoenixError> {
        let all = self
            .all_agents(&AgentFilter {
                statuses: Vec::new(),
                include_revoked: true,
            })
            .await?;
        let mut summary = FleetSummary::default();
        let mut agents = Vec::new();
        for agent in all {
            if agent.revoked {
                summary.revoked += 1;
                continue;
            }
            summary.total += 1;
            match agent.status {
                AgentStatus::Healthy => summary.healthy += 1,
                AgentStatus::Degraded => summary.degraded += 1,
                AgentStatus::Lost => summary.lost += 1,
            }
            *summary.versions.entry(agent.version.clone()).or_default() += 1;
            for p in &agent.pipelines {
                *summary
                    .pipelines_by_template
                    .entry(p.template.clone())
                    .or_default() += 1;
            }
            if agent
                .pipelines
                .iter()
                .any(|p| p.health == PipelineHealth::Unhealthy)
            {
                summary.unhealthy_pipelines += 1;
            }
            summary.refused_reports += agent.refused.count;
            if agent.refused.count > 0 {
                summary.agents_with_refused_reports += 1;
            }
            agents.push(agent);
        }
        summary.active_experiments = self
            .all_experiments(&ExperimentFilter::phases(
                Phase::ALL.into_iter().filter(|p| p.occupies_agents()),
            ))
            .await?
            .len() as u64;
        summary.promoted_experiments = self
            .all_experiments(&ExperimentFilter::phases([Phase::Promoted]))
            .await?
            .len() as u64;
        Ok(FleetOverview { summary, agents })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentRegistration;

    fn agent(host: &str, status: AgentStatus, revoked: bool, now: DateTime<Utc>) -> Agent {
        let mut a = Agent::enroll(
            AgentRegistration {
                host: host.to_owned(),
                ..AgentRegistration::default()
            },
            now,
        );
        a.status = status;
        a.revoked = revoked;
        a
    }

    fn snap(agent: &Agent, taken_at: DateTime<Utc>) -> CardinalitySnapshot {
        CardinalitySnapshot {
            agent_id: agent.id,
            source: SnapshotSource::Input,
            host: agent.host.clone(),
            taken_at,
            interval_secs: 60,
            series: Vec::new(),
        }
    }

    #[test]
    fn the_host_set_keeps_live_hosts_and_non_live_ones_within_the_retention() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let retention = chrono::Duration::minutes(15);
        let live = agent("live", AgentStatus::Healthy, false, now);
        let silent = agent("silent", AgentStatus::Degraded, false, now);
        let lost_recent = agent("lost-recent", AgentStatus::Lost, false, now);
        let lost_old = agent("lost-old", AgentStatus::Lost, false, now);
        let revoked_old = agent("revoked-old", AgentStatus::Healthy, true, now);
        let deleted = agent("deleted", AgentStatus::Healthy, false, now);
        let agents = vec![
            live.clone(),
            silent,
            lost_recent.clone(),
            lost_old.clone(),
            revoked_old.clone(),
        ];
        let snapshots = vec![
            // A live host's snapshot counts however old it is.
            snap(&live, now - chrono::Duration::hours(2)),
            snap(&lost_recent, now - chrono::Duration::minutes(5)),
            snap(&lost_old, now - chrono::Duration::minutes(16)),
            snap(&revoked_old, now - chrono::Duration::minutes(20)),
            snap(&deleted, now),
        ];
        let (set, out) = select_snapshots(&agents, snapshots, now, retention);
        let mut kept: Vec<_> = set.snapshots.iter().map(|s| s.agent_id).collect();
        kept.sort();
        let mut expected = vec![live.id, lost_recent.id];
        expected.sort();
        assert_eq!(kept, expected);
        let mut out = out;
        out.sort();
        let mut gone = vec![lost_old.id, revoked_old.id, deleted.id];
        gone.sort();
        assert_eq!(out, gone);
        let c = set.coverage;
        assert_eq!(c.live_hosts, 2);
        assert_eq!(c.reporting_live, 1);
        assert_eq!(c.reporting, 2);
        assert_eq!(c.hosts, 3);
        assert_eq!(c.percent, Some(50.0));
        assert_eq!(c.oldest_snapshot_at, Some(now - chrono::Duration::hours(2)));
        assert_eq!(c.oldest_snapshot_age_secs, Some(7200));
        assert_eq!(c.reporting_shipped, 0);
    }

    #[test]
    fn a_shipped_output_counts_with_its_hosts_current_input_only() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let retention = chrono::Duration::minutes(15);
        let shipping = agent("shipping", AgentStatus::Healthy, false, now);
        let stopped = agent("stopped", AgentStatus::Healthy, false, now);
        let no_input = agent("no-input", AgentStatus::Healthy, false, now);
        let lost_old = agent("lost-old", AgentStatus::Lost, false, now);
        let deleted = agent("deleted", AgentStatus::Healthy, false, now);
        let shipped = |a: &Agent, at| CardinalitySnapshot {
            source: SnapshotSource::Shipped,
            ..snap(a, at)
        };
        let agents = vec![
            shipping.clone(),
            stopped.clone(),
            no_input.clone(),
            lost_old.clone(),
        ];
        let snapshots = vec![
            snap(&shipping, now),
            // One interval (60 s) behind its input: still what the host ships.
            shipped(&shipping, now - chrono::Duration::seconds(60)),
            snap(&stopped, now),
            // Older than one interval: the pipeline was removed since.
            shipped(&stopped, now - chrono::Duration::seconds(61)),
            shipped(&no_input, now),
            snap(&lost_old, now - chrono::Duration::minutes(16)),
            shipped(&lost_old, now - chrono::Duration::minutes(16)),
            shipped(&deleted, now),
        ];
        let (set, out) = select_snapshots(&agents, snapshots, now, retention);
        assert_eq!(
            set.snapshots.iter().map(|s| s.agent_id).collect::<Vec<_>>(),
            {
                let mut v = vec![shipping.id, stopped.id];
                v.sort();
                v
            }
        );
        assert!(
            set.snapshots
                .iter()
                .all(|s| s.source == SnapshotSource::Input)
        );
        assert_eq!(set.shipped.len(), 1);
        assert_eq!(set.shipped[0].agent_id, shipping.id);
        assert_eq!(set.shipped[0].source, SnapshotSource::Shipped);
        assert_eq!(set.coverage.reporting, 2);
        assert_eq!(set.coverage.reporting_shipped, 1);
        // Each agent named once, whatever number of its snapshots are out.
        let mut gone = vec![lost_old.id, deleted.id];
        gone.sort();
        assert_eq!(out, gone);
    }
}
