//! Quick deployments.

use async_trait::async_trait;

use crate::deployment::Deployment;
use crate::error::StoreError;
use crate::ids::DeploymentId;
use crate::page::{Page, PageRequest};
use crate::task::{EnqueueResult, NewTask};

/// Quick deployments (staged rollouts of one pipeline to the agents of a selector).
#[async_trait]
pub trait DeploymentStore: Send + Sync + 'static {
    /// Inserts a deployment and enqueues its first tasks, atomically. `Conflict` if the id
    /// exists. Publishes `DeploymentUpdated` and `TasksAvailable`.
    async fn create_deployment(
        &self,
        deployment: &Deployment,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError>;

    /// The deployment, or `NotFound`.
    async fn get_deployment(&self, id: DeploymentId) -> Result<Deployment, StoreError>;

    /// Deployments, newest first.
    async fn list_deployments(&self, page: &PageRequest) -> Result<Page<Deployment>, StoreError>;

    /// Replaces the deployment if its stored version is `deployment.version - 1`
    /// (`Conflict` otherwise), cancels its open tasks if `cancel_open_tasks`, then enqueues
    /// `tasks`, atomically. Publishes `DeploymentUpdated` and `TasksAvailable`.
    async fn update_deployment(
        &self,
        deployment: &Deployment,
        cancel_open_tasks: bool,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError>;
}
