//! Quick deployments: create (resolve targets, render, plan the first batch), operator
//! commands, and task outcomes, each decided by `deployment::apply` and stored with
//! compare-and-set.

use super::{Phoenix, PhoenixError};
use crate::deployment::{
    self, Deployment, DeploymentError, DeploymentInput, DeploymentState, NewDeployment,
    RolloutStrategy,
};
use crate::experiment::{Actor, TargetSelector};
use crate::ids::{DeploymentId, ExperimentId};
use crate::inputs;
use crate::page::{MAX_PAGE_SIZE, Page, PageRequest};
use crate::pipeline::{PipelineRef, RenderContext};
use crate::store::StoreError;
use crate::task::{TaskFilter, TaskState};
use crate::validation::ValidationErrors;

/// A request to roll a pipeline out to the agents of a selector.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRequest {
    /// Human name.
    pub name: String,
    /// What to deploy; with `experiment_id` and no pipeline, the experiment's candidate.
    pub pipeline: Option<PipelineRef>,
    /// What rollback restores (default: the experiment's baseline, else `baseline`).
    pub rollback_to: Option<PipelineRef>,
    /// Which agents (live ones matching it at creation).
    pub selector: TargetSelector,
    /// The experiment whose winner this rolls out.
    pub experiment_id: Option<ExperimentId>,
    /// Batch growth.
    pub strategy: RolloutStrategy,
}

impl Phoenix {
    /// Creates a deployment and sends its first batch.
    pub async fn create_deployment(
        &self,
        request: DeploymentRequest,
        actor: &Actor,
    ) -> Result<Deployment, PhoenixError> {
        let mut errors = ValidationErrors::new();
        inputs::name(&mut errors, "name", &request.name, inputs::MAX_NAME_CHARS);
        inputs::selector(&mut errors, "selector", &request.selector);
        let s = &request.strategy;
        for (field, value) in [
            ("strategy.initial_batch", s.initial_batch),
            ("strategy.growth_factor", s.growth_factor),
            ("strategy.max_batch", s.max_batch),
        ] {
            if !(1..=deployment::MAX_BATCH).contains(&value) {
                errors.push(
                    field,
                    format!("must be between 1 and {}", deployment::MAX_BATCH),
                );
            }
        }
        let experiment = match request.experiment_id {
            Some(id) => match self.experiment(id).await {
                Ok(e) => Some(e),
                Err(PhoenixError::Store(StoreError::NotFound { .. })) => {
                    errors.push("experiment_id", "no such experiment");
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let pipeline = request
            .pipeline
            .clone()
            .or_else(|| experiment.as_ref().map(|e| e.spec.candidate.clone()));
        let rollback_to = request
            .rollback_to
            .clone()
            .or_else(|| experiment.as_ref().map(|e| e.spec.baseline.clone()))
            .unwrap_or_else(|| PipelineRef::new("baseline"));
        let Some(pipeline) = pipeline else {
            errors.push("pipeline", "required unless experiment_id is given");
            return Err(errors.into());
        };
        errors.into_result()?;
        let context = RenderContext {
            variant: None,
            critical_processes: experiment
                .as_ref()
                .map(|e| e.spec.critical_processes.clone())
                .unwrap_or_default(),
            critical_metrics: experiment
                .as_ref()
                .map(|e| e.spec.critical_metrics.clone())
                .unwrap_or_default(),
        };
        let templates = self.templates();
        let mut errors = ValidationErrors::new();
        errors.extend(templates.validate_ref(&pipeline, "pipeline"));
        errors.extend(templates.validate_ref(&rollback_to, "rollback_to"));
        errors.into_result()?;
        let rendered = templates.render(&pipeline, &context)?;
        let rollback = templates.render(&rollback_to, &context)?;
        let targets = self.resolve_targets(&request.selector).await?;
        let (deployment, tasks) = deployment::plan(
            NewDeployment {
                name: request.name,
                pipeline,
                rendered,
                rollback_pipeline: Some(rollback),
                selector: request.selector,
                experiment_id: request.experiment_id,
                strategy: request.strategy,
            },
            &targets,
            &actor.name,
            self.now(),
        )?;
        self.stores()
            .deployments
            .create_deployment(&deployment, &tasks)
            .await?;
        Ok(deployment)
    }

    /// One deployment.
    pub async fn deployment(&self, id: DeploymentId) -> Result<Deployment, PhoenixError> {
        Ok(self.stores().deployments.get_deployment(id).await?)
    }

    /// A page of deployments, newest first.
    pub async fn deployments(&self, page: &PageRequest) -> Result<Page<Deployment>, PhoenixError> {
        Ok(self.stores().deployments.list_deployments(page).await?)
    }

    /// Applies a command or outcome: read, decide, compare-and-set, re-decide on conflict.
    pub async fn apply_deployment(
        &self,
        id: DeploymentId,
        input: &DeploymentInput,
    ) -> Result<Deployment, PhoenixError> {
        for _ in 0..self.config().max_conflict_retries {
            let current = self.deployment(id).await?;
            let outcome = deployment::apply(&current, input, self.now())?;
            match self
                .stores()
                .deployments
                .update_deployment(
                    &outcome.deployment,
                    outcome.cancel_open_tasks,
                    &outcome.tasks,
                )
                .await
            {
                Ok(_) => return Ok(outcome.deployment),
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::conflict("deployment", id).into())
    }

    /// Feeds a finished task to its deployment (idempotent; stale outcomes are ignored).
    pub async fn feed_deployment_task(
        &self,
        task: &crate::task::Task,
    ) -> Result<bool, PhoenixError> {
        let Some((id, input)) = deployment::input_from_task(task) else {
            return Ok(false);
        };
        match self.apply_deployment(id, &input).await {
            Ok(_) => Ok(true),
            Err(
                PhoenixError::Deployment(DeploymentError::Stale)
                | PhoenixError::Store(StoreError::NotFound { .. }),
            ) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Level-triggered repair: feeds every finished task of every active deployment (a
    /// crash between a task's completion and its outcome being applied, or a lease that
    /// expired into dead-letter). Returns the outcomes applied.
    pub async fn reconcile_deployments(&self) -> Result<usize, PhoenixError> {
        let mut applied = 0;
        let mut page = PageRequest::with_limit(MAX_PAGE_SIZE);
        loop {
            let batch = self.deployments(&page).await?;
            for d in &batch.items {
                if !matches!(
                    d.state,
                    DeploymentState::Rolling
                        | DeploymentState::Paused
                        | DeploymentState::RollingBack
                ) {
                    continue;
                }
                let finished = self
                    .tasks(
                        &TaskFilter {
                            deployment_id: Some(d.id),
                            states: vec![
                                TaskState::Succeeded,
                                TaskState::Failed,
                                TaskState::DeadLettered,
                            ],
                            ..TaskFilter::default()
                        },
                        &PageRequest::with_limit(MAX_PAGE_SIZE),
                    )
                    .await?;
                for task in finished.items.iter().rev() {
                    let current = d.targets.iter().any(|t| t.task_id == Some(task.id));
                    if current {
                        applied += usize::from(self.feed_deployment_task(task).await?);
                    }
                }
            }
            match batch.next_cursor {
                Some(c) => page.after = Some(c),
                None => return Ok(applied),
            }
        }
    }
}
