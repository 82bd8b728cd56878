//! The control plane over HTTP, through `phoenix-client` (the only way the agent talks to
//! the server).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_api::ErrorCode;
use phoenix_api::task::TaskStatusReport;
use phoenix_client::{Client, ClientError};
use phoenix_core::agent::{AgentRegistration, Heartbeat};
use phoenix_core::ids::{AgentId, LeaseToken, TaskId};
use phoenix_core::measure::{CardinalitySnapshot, MeasurementSample, PackedSnapshot};
use phoenix_core::phoenix::TaskReport;
use phoenix_core::task::{LeaseRef, LeasedTask, Task};

use crate::control::{ControlError, ControlPlane, Enrollment, HeartbeatAck, MetricsAck};

/// [`ControlPlane`] over the REST API.
#[derive(Debug, Clone)]
pub struct HttpControlPlane {
    client: Client,
}

impl HttpControlPlane {
    /// A control plane for the server at `base_url`.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(base_url: &str) -> Result<Self, Box<ClientError>> {
        Ok(Self {
            client: Client::new(base_url).map_err(Box::new)?,
        })
    }

    fn with(&self, credential: &str) -> Client {
        self.client.clone().with_token(credential)
    }
}

/// The server's message with the first few invalid fields it names, so that the agent's
/// log says what was refused.
fn rejection_text(error: &phoenix_api::error::ErrorObject) -> String {
    let mut text = error.message.clone();
    let fields = error.details.fields.as_deref().unwrap_or_default();
    for f in fields.iter().take(3) {
        text.push_str(&format!("; {}: {}", f.path, f.message));
    }
    if fields.len() > 3 {
        text.push_str(&format!("; and {} more", fields.len() - 3));
    }
    text
}

fn map(e: ClientError) -> ControlError {
    match &e {
        ClientError::Api {
            status,
            error,
            retry_after,
        } => match error.code {
            ErrorCode::Unauthenticated | ErrorCode::Forbidden => ControlError::Unauthenticated,
            ErrorCode::LeaseLost => ControlError::LeaseLost,
            ErrorCode::RateLimited => ControlError::RateLimited {
                retry_after: retry_after.map(Duration::from_secs),
            },
            ErrorCode::Unavailable | ErrorCode::Internal => ControlError::unavailable(e),
            _ if *status >= 500 => ControlError::unavailable(e),
            _ => ControlError::Rejected {
                status: *status,
                message: rejection_text(error),
            },
        },
        _ => ControlError::unavailable(e),
    }
}

fn to_core(t: phoenix_api::task::LeasedTask) -> Result<LeasedTask, ControlError> {
    let payload = t.task.payload_core().map_err(|e| ControlError::Rejected {
        status: 200,
        message: format!("task payload not understood by this agent version: {e}"),
    })?;
    let task = t.task;
    Ok(LeasedTask {
        task: Task {
            id: TaskId(task.id),
            agent_id: AgentId(task.agent_id),
            payload,
            priority: task.priority,
            unique_key: task.unique_key,
            state: task.state.into(),
            run_at: task.run_at,
            attempts: task.attempts,
            max_attempts: task.max_attempts,
            lease_expires_at: task.lease_expires_at,
            last_error: task.last_error,
            result: task.result,
            created_at: task.created_at,
            updated_at: task.updated_at,
        },
        lease_token: LeaseToken(t.lease_token),
        lease_expires_at: t.lease_expires_at,
    })
}

#[async_trait]
impl ControlPlane for HttpControlPlane {
    async fn enroll(
        &self,
        enrollment_token: &str,
        registration: &AgentRegistration,
    ) -> Result<Enrollment, ControlError> {
        let body = phoenix_api::agent::AgentRegistration {
            host: registration.host.clone(),
            labels: registration.labels.clone(),
            version: registration.version.clone(),
            capabilities: registration.capabilities.clone(),
            os: registration.os.clone(),
        };
        let response = self
            .client
            .enroll(enrollment_token, &body)
            .await
            .map_err(map)?;
        Ok(Enrollment {
            agent_id: AgentId(response.agent.id),
            credential: response.credential,
            heartbeat_interval: Some(Duration::from_secs(response.heartbeat_interval_secs.max(1))),
        })
    }

    async fn heartbeat(
        &self,
        credential: &str,
        heartbeat: &Heartbeat,
    ) -> Result<HeartbeatAck, ControlError> {
        let body = phoenix_api::agent::Heartbeat {
            resources: heartbeat.resources.clone().into(),
            pipelines: heartbeat
                .pipelines
                .iter()
                .cloned()
                .map(Into::into)
                .collect(),
            started_at: heartbeat.started_at,
        };
        let answer = self.with(credential).heartbeat(&body).await.map_err(map)?;
        Ok(HeartbeatAck {
            // An older server does not say (0): keep the agent's own interval.
            snapshot_interval: (answer.snapshot_interval_secs > 0)
                .then(|| Duration::from_secs(answer.snapshot_interval_secs)),
        })
    }

    async fn poll_tasks(
        &self,
        credential: &str,
        wait: Duration,
        max: usize,
    ) -> Result<Vec<LeasedTask>, ControlError> {
        let tasks = self
            .with(credential)
            .poll_tasks(
                Some(wait),
                Some(u32::try_from(max.clamp(1, 64)).unwrap_or(64)),
            )
            .await
            .map_err(map)?;
        tasks.into_iter().map(to_core).collect()
    }

    async fn report_task(
        &self,
        credential: &str,
        lease: LeaseRef,
        report: TaskReport,
    ) -> Result<Option<DateTime<Utc>>, ControlError> {
        let token = lease.token.0;
        let body = match report {
            TaskReport::Running => TaskStatusReport::running(token),
            TaskReport::Succeeded { result } => TaskStatusReport::succeeded(token, result),
            TaskReport::Failed { error, retryable } => {
                let error: String = error.chars().take(4000).collect();
                TaskStatusReport::failed(token, error, retryable)
            }
        };
        let receipt = self
            .with(credential)
            .report_task(lease.task_id.0, &body)
            .await
            .map_err(map)?;
        Ok(receipt.lease_expires_at)
    }

    async fn release_task(&self, credential: &str, lease: LeaseRef) -> Result<(), ControlError> {
        self.with(credential)
            .release_lease(lease.task_id.0, lease.token.0)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn report_metrics(
        &self,
        credential: &str,
        samples: &[MeasurementSample],
        snapshot: Option<&CardinalitySnapshot>,
    ) -> Result<MetricsAck, ControlError> {
        let body = phoenix_api::measure::MetricsReport {
            samples: samples.iter().cloned().map(Into::into).collect(),
            // Packed: a host's strings once (a fifth of the bytes, and a fraction of the
            // server's work to read).
            snapshot: None,
            packed_snapshot: snapshot.map(|s| PackedSnapshot::pack(s).into()),
        };
        let receipt = self
            .with(credential)
            .report_metrics(&body)
            .await
            .map_err(map)?;
        Ok(MetricsAck {
            inserted: receipt.inserted,
            duplicates: receipt.duplicates,
        })
    }
}
