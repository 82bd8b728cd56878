//! [`DeploymentStore`] on Redis: `dep:<id>` hashes (j record, v version) and the `deps`
//! lex index; creating and updating are scripts that also cancel and enqueue tasks.

use async_trait::async_trait;
use phoenix_core::deployment::Deployment;
use phoenix_core::error::StoreError;
use phoenix_core::ids::DeploymentId;
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::{BusEvent, DeploymentStore};
use phoenix_core::task::{EnqueueResult, NewTask};

use crate::RedisStore;
use crate::bus::event_line;
use crate::codec::{
    Status, corrupt, decode_json, encode_json, enqueue_results, parse_cursor, payloads, push_tasks,
};
use crate::scripts::SCRIPTS;

fn status_error(status: &Status, id: DeploymentId) -> StoreError {
    match status {
        Status::NotFound => StoreError::not_found("deployment", id),
        Status::Conflict => StoreError::conflict("deployment", id),
        other => corrupt(format!("unexpected script status {other:?}")),
    }
}

#[async_trait]
impl DeploymentStore for RedisStore {
    async fn create_deployment(
        &self,
        deployment: &Deployment,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError> {
        let json = encode_json(deployment)?;
        let announce = event_line(&BusEvent::DeploymentUpdated {
            deployment_id: deployment.id,
        })?;
        let payloads = payloads(tasks)?;
        let mut reply = self
            .run(&SCRIPTS.deployment_create, |inv| {
                inv.arg(deployment.id.to_string())
                    .arg(&json)
                    .arg(deployment.version)
                    .arg(&announce);
                push_tasks(inv, tasks, &payloads);
            })
            .await?;
        match reply.status {
            Status::Ok => enqueue_results(tasks, reply.next()?),
            ref other => Err(status_error(other, deployment.id)),
        }
    }

    async fn get_deployment(&self, id: DeploymentId) -> Result<Deployment, StoreError> {
        let json: Option<String> = self
            .query(
                redis::cmd("HGET")
                    .arg(self.key(&["dep", &id.to_string()]))
                    .arg("j"),
            )
            .await?;
        match json {
            Some(json) => decode_json(&json),
            None => Err(StoreError::not_found("deployment", id)),
        }
    }

    async fn list_deployments(&self, page: &PageRequest) -> Result<Page<Deployment>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<DeploymentId> = parse_cursor(page.after.as_deref())?;
        let records = self
            .scan("deps", "dep", after.map(|a| a.to_string()), limit + 1, &[])
            .await?;
        let items = records
            .iter()
            .map(|f| f.json("j"))
            .collect::<Result<Vec<Deployment>, _>>()?;
        Ok(Page::from_overfetch(items, limit, |d| d.id.to_string()))
    }

    async fn update_deployment(
        &self,
        deployment: &Deployment,
        cancel_open_tasks: bool,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError> {
        let json = encode_json(deployment)?;
        let announce = event_line(&BusEvent::DeploymentUpdated {
            deployment_id: deployment.id,
        })?;
        let payloads = payloads(tasks)?;
        let mut reply = self
            .run(&SCRIPTS.deployment_update, |inv| {
                inv.arg(deployment.id.to_string())
                    .arg(&json)
                    .arg(deployment.version)
                    .arg(if cancel_open_tasks { "1" } else { "0" })
                    .arg(&announce);
                push_tasks(inv, tasks, &payloads);
            })
            .await?;
        match reply.status {
            Status::Ok => enqueue_results(tasks, reply.next()?),
            ref other => Err(status_error(other, deployment.id)),
        }
    }
}
