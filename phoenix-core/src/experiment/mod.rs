//! Experiments: the model, its phases, and the pure transition function.

mod action;
mod event;
mod phase;
mod spec;
mod transition;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use action::{Action, UnknownAction, allowed_actions};
pub use event::{Actor, ActorKind, Cause, ExperimentEvent};
pub use phase::{Phase, UnknownPhase};
pub use spec::{
    DEFAULT_AUTO_PROMOTE_MIN_HOSTS, DEFAULT_PRICING_MODEL, ExperimentSpec,
    MAX_AUTO_PROMOTE_MIN_HOSTS, MAX_CRITICAL_ENTRIES, MAX_DESCRIPTION_CHARS, MAX_DURATION_SECS,
    MAX_NAME_CHARS, MAX_TOKEN_CHARS, MIN_DURATION_SECS, NewExperiment, TargetSelector,
};
pub use transition::{
    Command, Fact, Input, Outcome, TargetAgent, TransitionError, fact_from_task, transition,
};

use crate::ids::{AgentId, ExperimentId};
use crate::judge::{Criterion, KpiName, Verdict};
use crate::pipeline::RenderedPipeline;
use crate::queries::ExperimentQuery;
use crate::task::RemovalMode;

/// One agent an experiment runs on, and what it last acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The agent.
    pub agent_id: AgentId,
    /// Its host name when the experiment started.
    pub host: String,
    /// Progress of the current operation on this agent.
    pub state: TargetState,
    /// The operation (event sequence number) whose task this agent was last sent.
    pub op_seq: u64,
    /// What the agent last reported (success detail or error), for provenance.
    pub detail: Option<String>,
    /// When `state` last changed.
    pub updated_at: DateTime<Utc>,
}

/// Progress of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Deploy task sent, not yet acknowledged.
    Deploying,
    /// Both pipelines run.
    Deployed,
    /// Deploy failed.
    Failed,
    /// A stop, rollback or promote task was sent and not yet acknowledged.
    Finishing,
    /// The stop, rollback or promote was acknowledged (successfully or not: see `detail`).
    Finished,
    /// Stopped heartbeating; excluded from every denominator.
    Lost,
}

impl TargetState {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploying => "deploying",
            Self::Deployed => "deployed",
            Self::Failed => "failed",
            Self::Finishing => "finishing",
            Self::Finished => "finished",
            Self::Lost => "lost",
        }
    }
}

/// Who asked for a rollback, why, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRecord {
    /// Graceful or instant.
    pub mode: RemovalMode,
    /// Who asked.
    pub actor: Actor,
    /// Why.
    pub reason: Option<String>,
    /// The phase it was asked in.
    pub from: Phase,
    /// When.
    pub requested_at: DateTime<Utc>,
}

/// The two rendered pipelines an experiment deployed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// An experiment and everything decided about it so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Id (UUID v7).
    pub id: ExperimentId,
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
    /// Incremented by exactly one at every applied transition; the compare-and-set key.
    pub version: u64,
    /// The definition.
    pub spec: ExperimentSpec,
    /// Current phase.
    pub phase: Phase,
    /// The agents it runs on (resolved at start).
    pub targets: Vec<Target>,
    /// The rendered pipelines (set at start).
    pub pipelines: Option<ExperimentPipelines>,
    /// When `start` was accepted.
    pub started_at: Option<DateTime<Utc>>,
    /// When every target had deployed.
    pub running_since: Option<DateTime<Utc>>,
    /// Samples before this are not judged.
    pub warmup_until: Option<DateTime<Utc>>,
    /// When the run ends and analysis starts.
    pub ends_at: Option<DateTime<Utc>>,
    /// When a terminal or resting phase was reached.
    pub finished_at: Option<DateTime<Utc>>,
    /// The judge's verdict.
    pub verdict: Option<Verdict>,
    /// Why it failed, when it did.
    pub failure_reason: Option<String>,
    /// Rollback provenance, when rolled back.
    pub rollback: Option<RollbackRecord>,
    /// Sequence number of the last event appended.
    pub last_event_seq: u64,
    /// The query inventory as it was when the experiment was created (see
    /// [`Experiment::with_queries`]); empty without an inventory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<ExperimentQuery>,
}

impl Experiment {
    /// A new experiment in `Created`, and its creation event.
    #[must_use]
    pub fn create(
        request: NewExperiment,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> (Self, ExperimentEvent) {
        let experiment = Self {
            id: ExperimentId::new(),
            name: request.name,
            description: request.description,
            owner: actor.name.clone(),
            created_at: now,
            updated_at: now,
            version: 1,
            spec: request.spec,
            phase: Phase::Created,
            targets: Vec::new(),
            pipelines: None,
            started_at: None,
            running_since: None,
            warmup_until: None,
            ends_at: None,
            finished_at: None,
            verdict: None,
            failure_reason: None,
            rollback: None,
            last_event_seq: 1,
            queries: Vec::new(),
        };
        let event = ExperimentEvent {
            experiment_id: experiment.id,
            seq: 1,
            at: now,
            from: Phase::Created,
            to: Phase::Created,
            cause: Cause::Created,
            actor: actor.clone(),
            reason: None,
            details: serde_json::Value::Null,
        };
        (experiment, event)
    }

    /// The experiment judged on `queries` (the inventory frozen at creation): they reach
    /// the agents with the deploy tasks, and, unless the spec states a criterion on
    /// `queries_broken`, the default critical criterion `queries_broken <= 0` is added
    /// ([`Criterion::queries_kept`]). Without queries the experiment is unchanged.
    #[must_use]
    pub fn with_queries(mut self, queries: Vec<ExperimentQuery>) -> Self {
        if queries.is_empty() {
            return self;
        }
        let criteria = &mut self.spec.criteria;
        if criteria.is_empty() {
            *criteria = Criterion::defaults();
        }
        if !criteria.iter().any(|c| c.kpi == KpiName::QueriesBroken) {
            criteria.push(Criterion::queries_kept());
        }
        self.queries = queries;
        self
    }

    /// Targets not lost and not failed: the denominator of every rollout rule.
    pub fn live_targets(&self) -> impl Iterator<Item = &Target> {
        self.targets
            .iter()
            .filter(|t| !matches!(t.state, TargetState::Lost | TargetState::Failed))
    }

    /// The target for `agent`.
    #[must_use]
    pub fn target(&self, agent: AgentId) -> Option<&Target> {
        self.targets.iter().find(|t| t.agent_id == agent)
    }

    /// The run's duration.
    #[must_use]
    pub fn duration(&self) -> Duration {
        Duration::seconds(i64::try_from(self.spec.duration_secs).unwrap_or(i64::MAX / 1000))
    }
}
