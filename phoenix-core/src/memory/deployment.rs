//! [`DeploymentStore`] on the in-memory state.

use async_trait::async_trait;

use super::MemoryStore;
use super::queue::parse_cursor;
use crate::deployment::Deployment;
use crate::error::StoreError;
use crate::ids::DeploymentId;
use crate::page::{Page, PageRequest};
use crate::store::{BusEvent, DeploymentStore};
use crate::task::{EnqueueResult, NewTask, TaskFilter};

#[async_trait]
impl DeploymentStore for MemoryStore {
    async fn create_deployment(
        &self,
        deployment: &Deployment,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError> {
        let now = self.now();
        let results = {
            let mut state = self.lock();
            if state.deployments.contains_key(&deployment.id) {
                return Err(StoreError::conflict("deployment", deployment.id));
            }
            state.deployments.insert(deployment.id, deployment.clone());
            state.enqueue_locked(tasks, now)
        };
        self.emit(
            [BusEvent::DeploymentUpdated {
                deployment_id: deployment.id,
            }]
            .into_iter()
            .chain(BusEvent::tasks_enqueued(tasks, &results)),
        );
        Ok(results)
    }

    async fn get_deployment(&self, id: DeploymentId) -> Result<Deployment, StoreError> {
        self.lock()
            .deployments
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("deployment", id))
    }

    async fn list_deployments(&self, page: &PageRequest) -> Result<Page<Deployment>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<DeploymentId> = parse_cursor(page.after.as_deref())?;
        let state = self.lock();
        let items: Vec<Deployment> = state
            .deployments
            .values()
            .rev()
            .filter(|d| after.is_none_or(|a| d.id < a))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(items, limit, |d| d.id.to_string()))
    }

    async fn update_deployment(
        &self,
        deployment: &Deployment,
        cancel_open_tasks: bool,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError> {
        let now = self.now();
        let results = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let stored = state
                .deployments
                .get_mut(&deployment.id)
                .ok_or_else(|| StoreError::not_found("deployment", deployment.id))?;
            if stored.version + 1 != deployment.version {
                return Err(StoreError::conflict("deployment", deployment.id));
            }
            *stored = deployment.clone();
            if cancel_open_tasks {
                state.cancel_locked(
                    &TaskFilter {
                        deployment_id: Some(deployment.id),
                        ..TaskFilter::default()
                    },
                    now,
                );
            }
            state.enqueue_locked(tasks, now)
        };
        self.emit(
            [BusEvent::DeploymentUpdated {
                deployment_id: deployment.id,
            }]
            .into_iter()
            .chain(BusEvent::tasks_enqueued(tasks, &results)),
        );
        Ok(results)
    }
}
