//! Agent routes (with an agent credential).

use std::time::Duration;

use phoenix_api::agent::{AgentRegistration, EnrollResponse, Heartbeat, HeartbeatResponse};
use phoenix_api::measure::{MetricsReceipt, MetricsReport};
use phoenix_api::task::{
    LeasedTask, ReleaseRequest, Task, TaskBatch, TaskStatusReceipt, TaskStatusReport,
};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::{Client, ClientError, REQUEST_TIMEOUT};

impl Client {
    /// `POST /api/v1/agent/enroll` with `enrollment_token`; returns the agent's credential.
    /// Use [`Client::with_token`] with `credential` afterwards.
    pub async fn enroll(
        &self,
        enrollment_token: &str,
        registration: &AgentRegistration,
    ) -> Result<EnrollResponse, ClientError> {
        let builder = self
            .http
            .post(self.url("api/v1/agent/enroll")?)
            .timeout(REQUEST_TIMEOUT)
            .bearer_auth(enrollment_token)
            .json(registration);
        self.json(builder).await
    }

    /// `POST /api/v1/agent/heartbeat`.
    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<HeartbeatResponse, ClientError> {
        self.json(
            self.request(Method::POST, "api/v1/agent/heartbeat")?
                .json(heartbeat),
        )
        .await
    }

    /// `GET /api/v1/agent/tasks`: long-polls up to `wait` (server default when `None`);
    /// returns the claimed tasks, empty when the wait ended without any.
    pub async fn poll_tasks(
        &self,
        wait: Option<Duration>,
        max: Option<u32>,
    ) -> Result<Vec<LeasedTask>, ClientError> {
        let mut q = Vec::new();
        if let Some(w) = wait {
            q.push(("wait", w.as_secs().to_string()));
        }
        if let Some(m) = max {
            q.push(("max", m.to_string()));
        }
        let budget = wait.unwrap_or(Duration::from_secs(60)) + REQUEST_TIMEOUT;
        let builder = self
            .request(Method::GET, "api/v1/agent/tasks")?
            .query(&q)
            .timeout(budget);
        let response = self.send(builder).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(ClientError::Transport)?;
        let batch: TaskBatch = serde_json::from_slice(&bytes)
            .map_err(|source| ClientError::Decode { status, source })?;
        Ok(batch.tasks)
    }

    /// `POST /api/v1/agent/tasks/{id}/status`.
    pub async fn report_task(
        &self,
        task_id: Uuid,
        report: &TaskStatusReport,
    ) -> Result<TaskStatusReceipt, ClientError> {
        self.json(
            self.request(
                Method::POST,
                &format!("api/v1/agent/tasks/{task_id}/status"),
            )?
            .json(report),
        )
        .await
    }

    /// Reports `succeeded` for a leased task.
    pub async fn complete_task(
        &self,
        task: &LeasedTask,
        result: Option<serde_json::Value>,
    ) -> Result<TaskStatusReceipt, ClientError> {
        self.report_task(
            task.task.id,
            &TaskStatusReport::succeeded(task.lease_token, result),
        )
        .await
    }

    /// Reports `failed` for a leased task.
    pub async fn fail_task(
        &self,
        task: &LeasedTask,
        error: &str,
        retryable: bool,
    ) -> Result<TaskStatusReceipt, ClientError> {
        self.report_task(
            task.task.id,
            &TaskStatusReport::failed(task.lease_token, error, retryable),
        )
        .await
    }

    /// Reports `running` (extends the lease).
    pub async fn extend_task(&self, task: &LeasedTask) -> Result<TaskStatusReceipt, ClientError> {
        self.report_task(task.task.id, &TaskStatusReport::running(task.lease_token))
            .await
    }

    /// `POST /api/v1/agent/tasks/{id}/release`.
    pub async fn release_task(&self, task: &LeasedTask) -> Result<Task, ClientError> {
        self.json(
            self.request(
                Method::POST,
                &format!("api/v1/agent/tasks/{}/release", task.task.id),
            )?
            .json(&ReleaseRequest {
                lease_token: task.lease_token,
            }),
        )
        .await
    }

    /// `POST /api/v1/agent/tasks/{id}/release` by task id and lease token (for callers that
    /// keep the lease, not the whole [`LeasedTask`]).
    pub async fn release_lease(
        &self,
        task_id: Uuid,
        lease_token: Uuid,
    ) -> Result<Task, ClientError> {
        self.json(
            self.request(
                Method::POST,
                &format!("api/v1/agent/tasks/{task_id}/release"),
            )?
            .json(&ReleaseRequest { lease_token }),
        )
        .await
    }

    /// `POST /api/v1/agent/metrics`.
    pub async fn report_metrics(
        &self,
        report: &MetricsReport,
    ) -> Result<MetricsReceipt, ClientError> {
        self.json(
            self.request(Method::POST, "api/v1/agent/metrics")?
                .json(report),
        )
        .await
    }
}
