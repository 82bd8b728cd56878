//! Experiment commands and facts: read, decide with the pure state machine, compare-and-set.

use super::{Phoenix, PhoenixError};
use crate::agent::{Agent, AgentFilter};
use crate::experiment::{
    Actor, Command, Experiment, ExperimentEvent, ExperimentPipelines, Fact, Input, NewExperiment,
    Outcome, TargetAgent, TargetSelector, TransitionError, transition,
};
use crate::ids::ExperimentId;
use crate::inputs;
use crate::page::{Page, PageRequest};
use crate::store::{Commit, CommitReceipt, ExperimentFilter, StoreError};
use crate::task::RemovalMode;
use crate::validation::ValidationErrors;

/// A transition that was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The experiment after it (`None` when it was deleted).
    pub experiment: Option<Experiment>,
    /// Events appended.
    pub events: Vec<ExperimentEvent>,
    /// What the commit did to the queue.
    pub receipt: CommitReceipt,
}

/// A command's reason, checked before anything is read or written.
fn check_reason(reason: Option<&str>) -> Result<(), PhoenixError> {
    let mut errors = ValidationErrors::new();
    inputs::reason(&mut errors, "reason", reason);
    Ok(errors.into_result()?)
}

impl Phoenix {
    /// Validates and creates an experiment in `Created`.
    pub async fn create_experiment(
        &self,
        request: NewExperiment,
        actor: &Actor,
    ) -> Result<Experiment, PhoenixError> {
        let mut errors = request.validate().err().unwrap_or_default();
        let templates = self.templates();
        errors.extend(templates.validate_ref(&request.spec.baseline, "spec.baseline"));
        errors.extend(templates.validate_ref(&request.spec.candidate, "spec.candidate"));
        if errors.errors.is_empty() {
            // Both variants must render together (they share the receivers: same input).
            let spec = &request.spec;
            if let Err(PhoenixError::Validation(v)) = templates
                .render_experiment(
                    &spec.baseline,
                    &spec.candidate,
                    &spec.critical_processes,
                    &spec.critical_metrics,
                )
                .map_err(|e| under_spec(e.into()))
            {
                errors.extend(v.errors);
            }
        }
        let model = request.spec.pricing_model.trim();
        if !model.is_empty() && self.catalogue().get(model).is_err() {
            let known: Vec<&str> = self
                .catalogue()
                .models()
                .iter()
                .map(|m| m.id.as_str())
                .collect();
            errors.push(
                "spec.pricing_model",
                format!(
                    "unknown pricing model {model:?}; available: {}",
                    known.join(", ")
                ),
            );
        }
        // The inventory as it is now is what the experiment is judged on.
        let sources = self.stores().queries.list_query_sources().await?;
        let queries = match crate::queries::freeze(&sources) {
            Ok(queries) => queries,
            Err(too_large) => {
                errors.push("spec", too_large.to_string());
                Vec::new()
            }
        };
        if queries.is_empty() && !sources.iter().any(|s| !s.queries.is_empty()) {
            request
                .spec
                .criteria_without_queries_into("spec", &mut errors);
        }
        errors.into_result()?;
        let (experiment, event) = Experiment::create(request, actor, self.now());
        let experiment = experiment.with_queries(queries);
        self.stores()
            .experiments
            .create(&experiment, &event)
            .await?;
        Ok(experiment)
    }

    /// One experiment.
    pub async fn experiment(&self, id: ExperimentId) -> Result<Experiment, PhoenixError> {
        Ok(self.stores().experiments.get(id).await?)
    }

    /// A page of experiments.
    pub async fn experiments(
        &self,
        filter: &ExperimentFilter,
        page: &PageRequest,
    ) -> Result<Page<Experiment>, PhoenixError> {
        Ok(self.stores().experiments.list(filter, page).await?)
    }

    /// Events of an experiment after `after_seq`.
    pub async fn experiment_events(
        &self,
        id: ExperimentId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ExperimentEvent>, PhoenixError> {
        Ok(self
            .stores()
            .experiments
            .events(id, after_seq, limit)
            .await?)
    }

    /// Starts an experiment: resolves its targets among live agents, renders both
    /// pipelines, and moves it to `Deploying` with one deploy task per agent, atomically.
    pub async fn start(&self, id: ExperimentId, actor: &Actor) -> Result<Experiment, PhoenixError> {
        for _ in 0..self.config().max_conflict_retries {
            let experiment = self.experiment(id).await?;
            let targets = self.resolve_targets(&experiment.spec.targets).await?;
            let pipelines = self.render_pipelines(&experiment)?;
            let input = Input::Command(Command::Start {
                targets,
                pipelines: Box::new(pipelines),
            });
            let outcome = transition(&experiment, &input, actor, self.now())?;
            match self.commit_outcome(&experiment, outcome).await {
                Ok(applied) => return Ok(applied.experiment.expect("start does not delete")),
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::conflict("experiment", id).into())
    }

    /// Stops an experiment.
    pub async fn stop(
        &self,
        id: ExperimentId,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<Experiment, PhoenixError> {
        check_reason(reason.as_deref())?;
        self.command(id, Command::Stop { reason }, actor).await
    }

    /// Rolls an experiment back.
    pub async fn rollback(
        &self,
        id: ExperimentId,
        mode: RemovalMode,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<Experiment, PhoenixError> {
        check_reason(reason.as_deref())?;
        self.command(id, Command::Rollback { mode, reason }, actor)
            .await
    }

    /// Promotes an experiment's candidate (`force` without a passing verdict: the caller
    /// checks that the actor is an admin).
    pub async fn promote(
        &self,
        id: ExperimentId,
        actor: &Actor,
        force: bool,
        reason: Option<String>,
    ) -> Result<Experiment, PhoenixError> {
        check_reason(reason.as_deref())?;
        self.command(id, Command::Promote { force, reason }, actor)
            .await
    }

    /// Deletes an experiment (only when `Created` or terminal).
    pub async fn delete_experiment(
        &self,
        id: ExperimentId,
        actor: &Actor,
    ) -> Result<(), PhoenixError> {
        self.apply(id, &Input::Command(Command::Delete), actor)
            .await?;
        Ok(())
    }

    async fn command(
        &self,
        id: ExperimentId,
        command: Command,
        actor: &Actor,
    ) -> Result<Experiment, PhoenixError> {
        let applied = self.apply(id, &Input::Command(command), actor).await?;
        Ok(applied
            .experiment
            .expect("only delete removes the experiment"))
    }

    /// Applies an input: read, decide, compare-and-set; on a conflict, re-read and
    /// re-decide (the input may have become illegal, which is then the answer).
    pub async fn apply(
        &self,
        id: ExperimentId,
        input: &Input,
        actor: &Actor,
    ) -> Result<Applied, PhoenixError> {
        for _ in 0..self.config().max_conflict_retries {
            let experiment = self.experiment(id).await?;
            let outcome = transition(&experiment, input, actor, self.now())?;
            match self.commit_outcome(&experiment, outcome).await {
                Ok(applied) => return Ok(applied),
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::conflict("experiment", id).into())
    }

    /// Applies a fact, treating "already applied / no longer applies" and vanished
    /// experiments as nothing to do (`Ok(None)`).
    pub async fn apply_fact(
        &self,
        id: ExperimentId,
        fact: Fact,
        actor: &Actor,
    ) -> Result<Option<Applied>, PhoenixError> {
        match self.apply(id, &Input::Fact(fact), actor).await {
            Ok(applied) => Ok(Some(applied)),
            Err(PhoenixError::Transition(e)) if e.is_noop() => Ok(None),
            Err(PhoenixError::Transition(TransitionError::UnknownTarget { agent })) => {
                tracing::warn!(%id, %agent, "fact about an agent the experiment does not target");
                Ok(None)
            }
            Err(PhoenixError::Store(StoreError::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn commit_outcome(
        &self,
        current: &Experiment,
        outcome: Outcome,
    ) -> Result<Applied, StoreError> {
        if outcome.delete {
            self.stores()
                .experiments
                .delete(current.id, current.version)
                .await?;
            return Ok(Applied {
                experiment: None,
                events: Vec::new(),
                receipt: CommitReceipt::default(),
            });
        }
        let commit = Commit {
            expected_version: current.version,
            experiment: outcome.experiment,
            events: outcome.events,
            cancel_open_tasks: outcome.cancel_open_tasks,
            tasks: outcome.tasks,
        };
        let receipt = self.stores().experiments.commit(&commit).await?;
        Ok(Applied {
            experiment: Some(commit.experiment),
            events: commit.events,
            receipt,
        })
    }

    /// Live agents (healthy or degraded, not revoked) matching `selector`, by host name.
    pub async fn resolve_targets(
        &self,
        selector: &TargetSelector,
    ) -> Result<Vec<TargetAgent>, PhoenixError> {
        Ok(self
            .selected_agents(selector)
            .await?
            .into_iter()
            .map(|a| TargetAgent {
                agent_id: a.id,
                host: a.host,
            })
            .collect())
    }

    /// The agents `selector` picks now, by host name then id: exactly those an experiment
    /// started or a deployment created with it this moment would target (live ones, see
    /// [`AgentFilter::live`]).
    pub async fn selected_agents(
        &self,
        selector: &TargetSelector,
    ) -> Result<Vec<Agent>, PhoenixError> {
        let agents = self.all_agents(&AgentFilter::live()).await?;
        let mut selected: Vec<Agent> = agents
            .into_iter()
            .filter(|a| selector.matches(&a.host, &a.id.to_string(), &a.labels))
            .collect();
        selected.sort_by(|a, b| a.host.cmp(&b.host).then(a.id.cmp(&b.id)));
        Ok(selected)
    }

    /// [`Self::selected_agents`] for a selector a request carries: checked first (field
    /// paths `labels`, `hosts[i]`), as an experiment's targets are.
    pub async fn match_agents(
        &self,
        selector: &TargetSelector,
    ) -> Result<Vec<Agent>, PhoenixError> {
        let mut errors = ValidationErrors::new();
        inputs::selector(&mut errors, "", selector);
        // The selector is the whole request: its fields are at the top (`labels.env`).
        for e in &mut errors.errors {
            e.path = e.path.trim_start_matches('.').to_owned();
        }
        errors.into_result()?;
        self.selected_agents(selector).await
    }

    /// Every agent passing `filter` (all pages).
    pub async fn all_agents(&self, filter: &AgentFilter) -> Result<Vec<Agent>, PhoenixError> {
        let mut out = Vec::new();
        let mut page = PageRequest::with_limit(crate::page::MAX_PAGE_SIZE);
        loop {
            let batch = self.stores().agents.list_agents(filter, &page).await?;
            out.extend(batch.items);
            match batch.next_cursor {
                Some(cursor) => page.after = Some(cursor),
                None => return Ok(out),
            }
        }
    }

    /// Every experiment passing `filter` (all pages).
    pub async fn all_experiments(
        &self,
        filter: &ExperimentFilter,
    ) -> Result<Vec<Experiment>, PhoenixError> {
        let mut out = Vec::new();
        let mut page = PageRequest::with_limit(crate::page::MAX_PAGE_SIZE);
        loop {
            let batch = self.stores().experiments.list(filter, &page).await?;
            out.extend(batch.items);
            match batch.next_cursor {
                Some(cursor) => page.after = Some(cursor),
                None => return Ok(out),
            }
        }
    }

    fn render_pipelines(
        &self,
        experiment: &Experiment,
    ) -> Result<ExperimentPipelines, PhoenixError> {
        let spec = &experiment.spec;
        let rendered = self
            .templates()
            .render_experiment(
                &spec.baseline,
                &spec.candidate,
                &spec.critical_processes,
                &spec.critical_metrics,
            )
            .map_err(|e| under_spec(e.into()))?;
        Ok(ExperimentPipelines {
            baseline: rendered.baseline,
            candidate: rendered.candidate,
            collector_yaml: rendered.collector_yaml,
            config_hash: rendered.config_hash,
        })
    }
}

/// Field errors of an experiment render (`baseline.params.k`) as paths of the request
/// (`spec.baseline.params.k`).
fn under_spec(e: PhoenixError) -> PhoenixError {
    match e {
        PhoenixError::Validation(mut v) => {
            for f in &mut v.errors {
                if !f.path.starts_with("spec.") {
                    f.path = format!("spec.{}", f.path);
                }
            }
            PhoenixError::Validation(v)
        }
        other => other,
    }
}
