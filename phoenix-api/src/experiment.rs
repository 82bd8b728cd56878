//! Experiments: definitions, state, events and commands.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use phoenix_core::experiment as core;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::pipeline::{PipelineRef, RenderedPipeline};
use crate::task::RemovalMode;

mirror_enum! {
    /// Where an experiment is in its life (see the state machine in the docs).
    Phase => core::Phase {
        /// Defined, nothing deployed.
        Created,
        /// Deploy tasks sent; waiting for every target agent.
        Deploying,
        /// Both pipelines run on every target; samples are collected.
        Running,
        /// Duration elapsed; KPIs are being judged.
        Analyzing,
        /// Judged; waiting for promote or rollback.
        Completed,
        /// The candidate is replacing the baseline.
        Promoting,
        /// The candidate is the only pipeline.
        Promoted,
        /// Pipelines are being removed after a stop.
        Stopping,
        /// Stopped (terminal).
        Stopped,
        /// The candidate is being removed.
        RollingBack,
        /// Rolled back (terminal).
        RolledBack,
        /// Failed (terminal); see `failure_reason`.
        Failed,
    }
}

impl Phase {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        core::Phase::from(self).as_str()
    }

    /// Nothing leaves a terminal phase.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        core::Phase::from(self).is_terminal()
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Phase {
    type Err = core::UnknownPhase;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<core::Phase>().map(Into::into)
    }
}

/// What a phase means in the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct PhaseInfo {
    /// The phase.
    pub phase: Phase,
    /// Nothing leaves it.
    pub terminal: bool,
    /// Only an operator command leaves it.
    pub resting: bool,
    /// Phoenix drives it forward on its own (timers, agents' answers, agent loss).
    pub active: bool,
    /// The phases that follow when nothing intervenes, in order.
    pub ahead: Vec<Phase>,
}

impl From<core::Phase> for PhaseInfo {
    fn from(p: core::Phase) -> Self {
        Self {
            phase: p.into(),
            terminal: p.is_terminal(),
            resting: p.is_resting(),
            active: p.is_active(),
            ahead: p.ahead().iter().map(|a| (*a).into()).collect(),
        }
    }
}

mirror_enum! {
    /// An operator command, by name: what `allowed_actions` lists.
    ExperimentAction => core::Action {
        /// `POST .../start`.
        Start,
        /// `POST .../stop`.
        Stop,
        /// `POST .../rollback`.
        Rollback,
        /// `POST .../promote` (needs a passing verdict).
        Promote,
        /// `POST .../promote` with `force` (admin).
        ForcePromote,
        /// `DELETE .../{id}`.
        Delete,
    }
}

impl ExperimentAction {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        core::Action::from(self).as_str()
    }
}

impl std::fmt::Display for ExperimentAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

mirror_enum! {
    /// Kind of principal behind an event.
    ActorKind => core::ActorKind {
        /// A user token.
        User,
        /// An agent.
        Agent,
        /// Phoenix itself.
        System,
    }
}

mirror_enum! {
    /// What caused an event.
    Cause => core::Cause {
        /// Created.
        Created,
        /// `start`.
        Start,
        /// `stop`.
        Stop,
        /// `rollback` (or automatic rollback).
        Rollback,
        /// `promote` (or automatic promotion).
        Promote,
        /// An agent acknowledged its task.
        TaskSucceeded,
        /// An agent's task failed for good.
        TaskFailed,
        /// An agent stopped heartbeating.
        AgentLost,
        /// The run's duration elapsed.
        DurationElapsed,
        /// The judge decided.
        VerdictComputed,
    }
}

mirror_enum! {
    /// Progress of one target agent.
    TargetState => core::TargetState {
        /// Deploy task sent.
        Deploying,
        /// Both pipelines run.
        Deployed,
        /// Deploy failed.
        Failed,
        /// A stop, rollback or promote task was sent.
        Finishing,
        /// The stop, rollback or promote was acknowledged.
        Finished,
        /// Stopped heartbeating.
        Lost,
    }
}

mirror_enum! {
    /// A KPI a criterion tests.
    KpiName => phoenix_core::judge::KpiName {
        /// Percent fewer series than the baseline.
        CardinalityReductionPct,
        /// Percent fewer data points.
        DataPointReductionPct,
        /// Percent lower cost under the experiment's pricing model.
        CostReductionPct,
        /// Share of host CPU and memory the candidate still carries.
        FidelityPct,
        /// Share of critical processes and patterns present.
        CriticalCoveragePct,
        /// Extra agent CPU of the candidate, percent.
        AgentCpuOverheadPct,
        /// Withdrawn: no agent measures per-variant memory, so a criterion on it is
        /// refused (422 at `spec.criteria[i].kpi`); the name stays so stored experiments
        /// still read.
        AgentRssOverheadPct,
        /// Inventoried queries the candidate breaks, a count (not a percentage): decided
        /// on every host's samples, so a query broken on any host is broken. An experiment
        /// created with a query inventory gets `queries_broken <= 0` (critical) unless its
        /// spec states a criterion on it; without an inventory such a criterion is a 422.
        QueriesBroken,
    }
}

mirror_enum! {
    /// Direction of a criterion.
    Comparison => phoenix_core::judge::Comparison {
        /// Measured >= threshold.
        AtLeast,
        /// Measured <= threshold.
        AtMost,
    }
}

mirror_enum! {
    /// The judge's overall answer.
    VerdictOutcome => phoenix_core::judge::VerdictOutcome {
        /// Every criterion met.
        Pass,
        /// Critical criteria met, some other missed.
        Marginal,
        /// A critical criterion missed.
        Fail,
        /// Not enough evidence.
        Inconclusive,
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Actor {
    /// Kind of principal.
    pub kind: ActorKind,
    /// Token name, agent id or `controller`.
    pub name: String,
}

impl From<core::Actor> for Actor {
    fn from(a: core::Actor) -> Self {
        Self {
            kind: a.kind.into(),
            name: a.name,
        }
    }
}

/// Which agents an experiment runs on: every label must match, and when `hosts` is not
/// empty the host name or agent id must be listed. Empty: every live agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct TargetSelector {
    /// Labels the agent must carry.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub labels: BTreeMap<String, String>,
    /// Host names or agent ids.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub hosts: Vec<String>,
}

impl From<core::TargetSelector> for TargetSelector {
    fn from(s: core::TargetSelector) -> Self {
        Self {
            labels: s.labels,
            hosts: s.hosts,
        }
    }
}

impl From<TargetSelector> for core::TargetSelector {
    fn from(s: TargetSelector) -> Self {
        Self {
            labels: s.labels,
            hosts: s.hosts,
        }
    }
}

/// One success criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct Criterion {
    /// The KPI tested.
    pub kpi: KpiName,
    /// Direction.
    pub comparison: Comparison,
    /// Threshold in the KPI's unit (percent).
    pub threshold: f64,
    /// A missed critical criterion fails the verdict; another makes it marginal.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub critical: bool,
}

impl From<phoenix_core::judge::Criterion> for Criterion {
    fn from(c: phoenix_core::judge::Criterion) -> Self {
        Self {
            kpi: c.kpi.into(),
            comparison: c.comparison.into(),
            threshold: c.threshold,
            critical: c.critical,
        }
    }
}

impl From<Criterion> for phoenix_core::judge::Criterion {
    fn from(c: Criterion) -> Self {
        Self {
            kpi: c.kpi.into(),
            comparison: c.comparison.into(),
            threshold: c.threshold,
            critical: c.critical,
        }
    }
}

fn defaults() -> core::ExperimentSpec {
    use phoenix_core::pipeline::PipelineRef as CoreRef;
    core::ExperimentSpec::new(CoreRef::new(""), CoreRef::new(""), 0)
}

fn default_criteria() -> Vec<Criterion> {
    defaults().criteria.into_iter().map(Into::into).collect()
}

fn default_pricing_model() -> String {
    defaults().pricing_model
}

fn default_min_agents() -> u32 {
    defaults().min_agents
}

fn default_auto_promote_min_hosts() -> u32 {
    defaults().auto_promote_min_hosts
}

fn default_sample_interval() -> u32 {
    defaults().sample_interval_secs
}

/// The experiment definition. Omitted fields take the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct ExperimentSpec {
    /// The pipeline in use today.
    pub baseline: PipelineRef,
    /// The cheaper pipeline under test.
    pub candidate: PipelineRef,
    /// Where it runs (resolved against live agents at start).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub targets: TargetSelector,
    /// How long both pipelines run side by side, seconds (warm-up included).
    pub duration_secs: u64,
    /// Samples in the first `warmup_secs` are not judged.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub warmup_secs: u64,
    /// Processes that must stay visible (executable names, `*` globs).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub critical_processes: Vec<String>,
    /// Metric name patterns that must stay visible.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub critical_metrics: Vec<String>,
    /// Success criteria (default: cardinality -50%, critical coverage 100%, fidelity 80%,
    /// agent CPU overhead at most 50%).
    #[serde(default = "default_criteria")]
    #[cfg_attr(feature = "openapi", oai(default = "default_criteria"))]
    pub criteria: Vec<Criterion>,
    /// Roll back automatically on a failing verdict.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub auto_rollback: bool,
    /// Promote automatically on a passing verdict.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub auto_promote: bool,
    /// Automatic promotion also needs at least this many hosts whose own values each
    /// meet every critical criterion (1 to 10,000); with fewer, a pass waits for an
    /// operator's promote.
    #[serde(default = "default_auto_promote_min_hosts")]
    #[cfg_attr(feature = "openapi", oai(default = "default_auto_promote_min_hosts"))]
    pub auto_promote_min_hosts: u32,
    /// Pricing catalogue entry the cost is reported in.
    #[serde(default = "default_pricing_model")]
    #[cfg_attr(feature = "openapi", oai(default = "default_pricing_model"))]
    pub pricing_model: String,
    /// Fail when fewer live agents remain.
    #[serde(default = "default_min_agents")]
    #[cfg_attr(feature = "openapi", oai(default = "default_min_agents"))]
    pub min_agents: u32,
    /// Agents sample both pipelines every this many seconds.
    #[serde(default = "default_sample_interval")]
    #[cfg_attr(feature = "openapi", oai(default = "default_sample_interval"))]
    pub sample_interval_secs: u32,
}

impl ExperimentSpec {
    /// A spec with defaults for everything but the two pipelines and the duration.
    #[must_use]
    pub fn new(baseline: PipelineRef, candidate: PipelineRef, duration_secs: u64) -> Self {
        Self {
            baseline,
            candidate,
            targets: TargetSelector::default(),
            duration_secs,
            warmup_secs: 0,
            critical_processes: Vec::new(),
            critical_metrics: Vec::new(),
            criteria: default_criteria(),
            auto_rollback: false,
            auto_promote: false,
            auto_promote_min_hosts: default_auto_promote_min_hosts(),
            pricing_model: default_pricing_model(),
            min_agents: default_min_agents(),
            sample_interval_secs: default_sample_interval(),
        }
    }

    /// The core spec; pipeline parameters that are not valid values are reported with
    /// their field paths under `path`.
    pub fn into_core(
        self,
        path: &str,
    ) -> Result<core::ExperimentSpec, Vec<phoenix_core::validation::FieldError>> {
        let mut errors = Vec::new();
        let baseline = self.baseline.into_core(&format!("{path}.baseline"));
        let candidate = self.candidate.into_core(&format!("{path}.candidate"));
        let (baseline, candidate) = match (baseline, candidate) {
            (Ok(b), Ok(c)) => (b, c),
            (b, c) => {
                errors.extend(b.err().unwrap_or_default());
                errors.extend(c.err().unwrap_or_default());
                return Err(errors);
            }
        };
        Ok(core::ExperimentSpec {
            baseline,
            candidate,
            targets: self.targets.into(),
            duration_secs: self.duration_secs,
            warmup_secs: self.warmup_secs,
            critical_processes: self.critical_processes,
            critical_metrics: self.critical_metrics,
            criteria: self.criteria.into_iter().map(Into::into).collect(),
            auto_rollback: self.auto_rollback,
            auto_promote: self.auto_promote,
            auto_promote_min_hosts: self.auto_promote_min_hosts,
            pricing_model: self.pricing_model,
            min_agents: self.min_agents,
            sample_interval_secs: self.sample_interval_secs,
        })
    }
}

impl From<core::ExperimentSpec> for ExperimentSpec {
    fn from(s: core::ExperimentSpec) -> Self {
        Self {
            baseline: s.baseline.into(),
            candidate: s.candidate.into(),
            targets: s.targets.into(),
            duration_secs: s.duration_secs,
            warmup_secs: s.warmup_secs,
            critical_processes: s.critical_processes,
            critical_metrics: s.critical_metrics,
            criteria: s.criteria.into_iter().map(Into::into).collect(),
            auto_rollback: s.auto_rollback,
            auto_promote: s.auto_promote,
            auto_promote_min_hosts: s.auto_promote_min_hosts,
            pricing_model: s.pricing_model,
            min_agents: s.min_agents,
            sample_interval_secs: s.sample_interval_secs,
        }
    }
}

/// A request to create an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct NewExperiment {
    /// Short human name.
    pub name: String,
    /// Longer description.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub description: String,
    /// The definition.
    pub spec: ExperimentSpec,
}

impl NewExperiment {
    /// The core request, or the field errors of parameters that are not valid values.
    pub fn into_core(
        self,
    ) -> Result<core::NewExperiment, Vec<phoenix_core::validation::FieldError>> {
        Ok(core::NewExperiment {
            name: self.name,
            description: self.description,
            spec: self.spec.into_core("spec")?,
        })
    }
}

/// One agent an experiment runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct Target {
    /// The agent.
    pub agent_id: Uuid,
    /// Its host name at start.
    pub host: String,
    /// Progress of the current operation on it.
    pub state: TargetState,
    /// The operation (event sequence number) it was last sent.
    pub op_seq: u64,
    /// What it last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When `state` last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<core::Target> for Target {
    fn from(t: core::Target) -> Self {
        Self {
            agent_id: t.agent_id.0,
            host: t.host,
            state: t.state.into(),
            op_seq: t.op_seq,
            detail: t.detail,
            updated_at: t.updated_at,
        }
    }
}

/// Who asked for a rollback, why and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct RollbackRecord {
    /// Graceful or instant.
    pub mode: RemovalMode,
    /// Who asked.
    pub actor: Actor,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The phase it was asked in.
    pub from: Phase,
    /// When.
    pub requested_at: DateTime<Utc>,
}

impl From<core::RollbackRecord> for RollbackRecord {
    fn from(r: core::RollbackRecord) -> Self {
        Self {
            mode: r.mode.into(),
            actor: r.actor.into(),
            reason: r.reason,
            from: r.from.into(),
            requested_at: r.requested_at,
        }
    }
}

/// How one criterion fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct CriterionResult {
    /// The criterion.
    pub criterion: Criterion,
    /// The measured value, when measurable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<f64>,
    /// Whether it was met; absent when undecidable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    /// The measured value next to the threshold, in words.
    pub reason: String,
    /// The KPI over every host's samples pooled (context; the median decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled: Option<f64>,
    /// Each host's own value.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub per_host: Vec<HostCriterion>,
}

impl From<phoenix_core::judge::CriterionResult> for CriterionResult {
    fn from(c: phoenix_core::judge::CriterionResult) -> Self {
        Self {
            criterion: c.criterion.into(),
            measured: c.measured,
            passed: c.passed,
            reason: c.reason,
            pooled: c.pooled,
            per_host: c.per_host.into_iter().map(Into::into).collect(),
        }
    }
}

/// One host's own value for a criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct HostCriterion {
    /// The agent.
    pub agent_id: Uuid,
    /// Its host name.
    pub host: String,
    /// Whether it counts in the fleet median (enough judged samples).
    pub voting: bool,
    /// Its value, when measurable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<f64>,
    /// Whether its value meets the criterion; absent when undecidable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
}

impl From<phoenix_core::judge::HostCriterion> for HostCriterion {
    fn from(h: phoenix_core::judge::HostCriterion) -> Self {
        Self {
            agent_id: h.agent_id.0,
            host: h.host,
            voting: h.voting,
            measured: h.measured,
            passed: h.passed,
        }
    }
}

/// One host against the critical criteria, on its own values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct HostVerdict {
    /// The agent.
    pub agent_id: Uuid,
    /// Its host name.
    pub host: String,
    /// Its judged samples.
    pub samples: u64,
    /// Whether it counts in the fleet median.
    pub voting: bool,
    /// Whether its own values meet every critical criterion.
    pub passed_critical: bool,
}

impl From<phoenix_core::judge::HostVerdict> for HostVerdict {
    fn from(h: phoenix_core::judge::HostVerdict) -> Self {
        Self {
            agent_id: h.agent_id.0,
            host: h.host,
            samples: h.samples,
            voting: h.voting,
            passed_critical: h.passed_critical,
        }
    }
}

/// The judge's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Verdict {
    /// Overall outcome.
    pub outcome: VerdictOutcome,
    /// Why, in sentences.
    pub reasons: Vec<String>,
    /// Per criterion.
    pub criteria: Vec<CriterionResult>,
    /// Samples judged (after warm-up).
    pub samples: u64,
    /// When it was decided.
    pub decided_at: DateTime<Utc>,
    /// Each host against the critical criteria.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub hosts: Vec<HostVerdict>,
    /// Voting hosts whose own values meet every critical criterion (what
    /// `auto_promote_min_hosts` is compared with).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub hosts_passing_critical: u64,
}

impl From<phoenix_core::judge::Verdict> for Verdict {
    fn from(v: phoenix_core::judge::Verdict) -> Self {
        let hosts_passing_critical = v.hosts_passing_critical();
        Self {
            hosts: v.hosts.into_iter().map(Into::into).collect(),
            hosts_passing_critical,
            outcome: v.outcome.into(),
            reasons: v.reasons,
            criteria: v.criteria.into_iter().map(Into::into).collect(),
            samples: v.samples,
            decided_at: v.decided_at,
        }
    }
}

/// The two rendered pipelines an experiment deployed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ExperimentPipelines {
    /// Baseline.
    pub baseline: RenderedPipeline,
    /// Candidate.
    pub candidate: RenderedPipeline,
    /// Both variants in one Collector config (pipelines `metrics/baseline` and
    /// `metrics/candidate` sharing the receivers): what a host running the Collector runs.
    #[serde(default)]
    pub collector_yaml: String,
    /// Hash of the combined config.
    #[serde(default)]
    pub config_hash: String,
}

impl From<core::ExperimentPipelines> for ExperimentPipelines {
    fn from(p: core::ExperimentPipelines) -> Self {
        Self {
            baseline: p.baseline.into(),
            candidate: p.candidate.into(),
            collector_yaml: p.collector_yaml,
            config_hash: p.config_hash,
        }
    }
}

/// An experiment and everything decided about it so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct Experiment {
    /// Id (UUID v7).
    pub id: Uuid,
    /// Short name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Who created it.
    pub owner: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// +1 at every transition.
    pub version: u64,
    /// The definition.
    pub spec: ExperimentSpec,
    /// Current phase.
    pub phase: Phase,
    /// The commands the requesting token may send now: those its role includes and the
    /// phase (and, for `promote`, the verdict) admits, decided by the state machine itself.
    /// Clients offer these and nothing else.
    #[serde(default)]
    pub allowed_actions: Vec<ExperimentAction>,
    /// Nothing will change any more (`stopped`, `rolled_back`, `failed`).
    #[serde(default)]
    pub terminal: bool,
    /// Waiting for an operator command (`completed`, `promoted`): nothing changes on its
    /// own.
    #[serde(default)]
    pub resting: bool,
    /// The phases still ahead when nothing intervenes, in order (the rest of
    /// `created → deploying → running → analyzing → completed`, or the end of a wind-down).
    #[serde(default)]
    pub ahead: Vec<Phase>,
    /// Agents it runs on (resolved at start).
    pub targets: Vec<Target>,
    /// The rendered pipelines (set at start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipelines: Option<ExperimentPipelines>,
    /// When `start` was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When every target had deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<DateTime<Utc>>,
    /// Samples before this are not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_until: Option<DateTime<Utc>>,
    /// When the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// When a resting or terminal phase was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The judge's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Rollback provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackRecord>,
    /// Sequence number of the last event.
    pub last_event_seq: u64,
    /// Queries of the inventory frozen into it at creation, which it is judged on
    /// (`queries_broken`; how each fared is in its KPIs' `queries`); 0 without an
    /// inventory.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub queries: u32,
}

impl Experiment {
    /// The wire form of `e` as a token of `role` sees it (its `allowed_actions`).
    #[must_use]
    pub fn for_role(e: core::Experiment, role: phoenix_core::auth::Role) -> Self {
        Self {
            allowed_actions: core::allowed_actions(&e, role)
                .into_iter()
                .map(Into::into)
                .collect(),
            terminal: e.phase.is_terminal(),
            resting: e.phase.is_resting(),
            ahead: e.phase.ahead().iter().map(|p| (*p).into()).collect(),
            id: e.id.0,
            name: e.name,
            description: e.description,
            owner: e.owner,
            created_at: e.created_at,
            updated_at: e.updated_at,
            version: e.version,
            spec: e.spec.into(),
            phase: e.phase.into(),
            targets: e.targets.into_iter().map(Into::into).collect(),
            pipelines: e.pipelines.map(Into::into),
            started_at: e.started_at,
            running_since: e.running_since,
            warmup_until: e.warmup_until,
            ends_at: e.ends_at,
            finished_at: e.finished_at,
            verdict: e.verdict.map(Into::into),
            failure_reason: e.failure_reason,
            rollback: e.rollback.map(Into::into),
            last_event_seq: e.last_event_seq,
            queries: u32::try_from(e.queries.len()).unwrap_or(u32::MAX),
        }
    }

    /// Whether `allowed_actions` lists `action`.
    #[must_use]
    pub fn allows(&self, action: ExperimentAction) -> bool {
        self.allowed_actions.contains(&action)
    }
}

/// A page of experiments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct ExperimentPage {
    /// The records, newest first.
    pub items: Vec<Experiment>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl ExperimentPage {
    /// The wire form of `page` as a token of `role` sees it.
    #[must_use]
    pub fn for_role(
        page: phoenix_core::page::Page<core::Experiment>,
        role: phoenix_core::auth::Role,
    ) -> Self {
        Self {
            items: page
                .items
                .into_iter()
                .map(|e| Experiment::for_role(e, role))
                .collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// One entry of an experiment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct ExperimentEvent {
    /// The experiment.
    pub experiment_id: Uuid,
    /// 1, 2, 3... without gaps.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Phase before.
    pub from: Phase,
    /// Phase after (equal to `from` for progress events).
    pub to: Phase,
    /// What caused it.
    pub cause: Cause,
    /// Who.
    pub actor: Actor,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Structured detail (agent, error, verdict, counts).
    #[serde(default)]
    pub details: serde_json::Value,
}

impl From<core::ExperimentEvent> for ExperimentEvent {
    fn from(e: core::ExperimentEvent) -> Self {
        Self {
            experiment_id: e.experiment_id.0,
            seq: e.seq,
            at: e.at,
            from: e.from.into(),
            to: e.to.into(),
            cause: e.cause.into(),
            actor: e.actor.into(),
            reason: e.reason,
            details: e.details,
        }
    }
}

page_type!(
    /// A page of events, oldest first; the cursor is the last sequence number.
    EventPage,
    ExperimentEvent
);

/// Body of `stop`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct StopRequest {
    /// Why (recorded in the event log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of `rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct RollbackRequest {
    /// `graceful` keeps the candidate until every agent confirms the baseline serves;
    /// `instant` removes it at once with the highest priority.
    pub mode: RemovalMode,
    /// Why (recorded as rollback provenance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of `promote`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct PromoteRequest {
    /// Promote without a passing verdict (admin only).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub force: bool,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
