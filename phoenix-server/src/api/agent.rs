//! `/api/v1/agent/*`: what agents call, with their own credential only.

use std::sync::Arc;
use std::time::Duration;

use phoenix_api::agent::{AgentRegistration, EnrollResponse, Heartbeat, HeartbeatResponse};
use phoenix_api::measure::{MetricsReceipt, MetricsReport};
use phoenix_api::task::{
    ReleaseRequest, Task, TaskBatch, TaskReportStatus, TaskStatusReceipt, TaskStatusReport,
};
use phoenix_core::ids::{LeaseToken, TaskId};
use phoenix_core::measure as core_measure;
use phoenix_core::phoenix::PhoenixError;
use phoenix_core::phoenix::TaskReport;
use phoenix_core::task::LeaseRef;
use phoenix_core::validation::{FieldError, ValidationErrors};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use crate::error::{ApiError, ApiResult};
use crate::payload::StrictJson;
use crate::state::{AgentToken, AppState, EnrollmentToken};

/// The long-poll (`GET /api/v1/agent/tasks`): the operation's body, shared with the
/// server's direct route for well-formed polls (`front.rs`).
pub(crate) async fn poll_tasks(
    state: &AppState,
    auth: &AgentToken,
    wait: Option<u64>,
    max: Option<u32>,
) -> ApiResult<Poll> {
    // Only the id is kept across the wait (the record is not needed there).
    let agent = state.agent(auth).await?.id;
    let config = &state.config;
    let wait = Duration::from_secs(
        wait.unwrap_or(config.poll_wait_secs)
            .min(config.max_poll_wait_secs),
    );
    let max = max.unwrap_or(DEFAULT_POLL_MAX) as usize;
    if state.shutting_down() {
        return Ok(Poll::NoTasks);
    }
    let tasks = tokio::select! {
        tasks = state.phoenix.wait_for_tasks(agent, max, wait) => tasks?,
        () = state.shutdown_signal() => Vec::new(),
    };
    if tasks.is_empty() {
        Ok(Poll::NoTasks)
    } else {
        Ok(Poll::Tasks(Json(TaskBatch {
            tasks: tasks.into_iter().map(Into::into).collect(),
        })))
    }
}

/// Most tasks one poll claims when the agent does not say.
const DEFAULT_POLL_MAX: u32 = 16;
/// Bounds of the poll's `wait` (seconds) and `max` parameters, as the operation declares.
pub(crate) const POLL_WAIT_MAX: u64 = 600;
pub(crate) const POLL_MAX_RANGE: std::ops::RangeInclusive<u32> = 1..=64;

/// A long-poll the server may answer directly: `GET /api/v1/agent/tasks` with one
/// `Authorization: Bearer <credential>` and at most one valid `wait` and `max` each.
/// Anything else (another parameter, a value out of range, a missing or odd header) is
/// `None` and goes through the operation, which answers it with its usual errors.
pub(crate) fn direct_poll(req: &poem::Request) -> Option<(AgentToken, Option<u64>, Option<u32>)> {
    if req.method() != poem::http::Method::GET || req.uri().path() != "/api/v1/agent/tasks" {
        return None;
    }
    let mut auth = req
        .headers()
        .get_all(poem::http::header::AUTHORIZATION)
        .iter();
    let token = auth.next()?.to_str().ok()?.strip_prefix("Bearer ")?;
    if auth.next().is_some() || token.is_empty() || token.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let (mut wait, mut max) = (None, None);
    for pair in req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=')? {
            ("wait", v) if wait.is_none() => {
                wait = Some(digits(v)?).filter(|w| *w <= POLL_WAIT_MAX);
                wait?;
            }
            ("max", v) if max.is_none() => {
                max = u32::try_from(digits(v)?)
                    .ok()
                    .filter(|m| POLL_MAX_RANGE.contains(m));
                max?;
            }
            _ => return None,
        }
    }
    let bearer = poem_openapi::auth::Bearer {
        token: token.to_owned(),
    };
    Some((AgentToken(bearer), wait, max))
}

/// A plain decimal number (no sign, no percent-encoding, at most 19 digits).
fn digits(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Agent operations.
#[derive(Debug)]
pub struct AgentApi {
    state: Arc<AppState>,
}

impl AgentApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// 201 with the credential.
#[derive(Debug, ApiResponse)]
pub enum Enrolled {
    /// Enrolled; the credential is shown once.
    #[oai(status = 201)]
    Enrolled(Json<EnrollResponse>),
}

/// The long-poll's answer.
#[derive(Debug, ApiResponse)]
pub enum Poll {
    /// Tasks were claimed for this agent under a lease.
    #[oai(status = 200)]
    Tasks(Json<TaskBatch>),
    /// Nothing arrived before the wait ended (or a newer poll of this agent replaced
    /// this one, or the server is shutting down): poll again.
    #[oai(status = 204)]
    NoTasks,
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Agent")]
impl AgentApi {
    /// Enroll an agent
    ///
    /// Authenticated with the enrollment token; returns the agent's own credential
    /// (shown once) for every other agent route.
    #[oai(path = "/agent/enroll", method = "post", operation_id = "agent_enroll")]
    async fn enroll(
        &self,
        auth: EnrollmentToken,
        body: StrictJson<AgentRegistration>,
    ) -> ApiResult<Enrolled> {
        self.state.enrollment(&auth)?;
        let (agent, credential) = self.state.phoenix.enroll(body.0.into()).await?;
        tracing::info!(agent = %agent.id, host = %agent.host, "agent enrolled");
        Ok(Enrolled::Enrolled(Json(EnrollResponse {
            agent: agent.into(),
            credential: credential.to_token(),
            heartbeat_interval_secs: heartbeat_secs(&self.state),
            poll_wait_secs: self.state.config.poll_wait_secs,
        })))
    }

    /// Heartbeat
    ///
    /// Resource usage and running pipelines; an agent missing 3 intervals is lost.
    #[oai(
        path = "/agent/heartbeat",
        method = "post",
        operation_id = "agent_heartbeat"
    )]
    async fn heartbeat(
        &self,
        auth: AgentToken,
        body: StrictJson<Heartbeat>,
    ) -> ApiResult<Json<HeartbeatResponse>> {
        let agent = self.state.agent(&auth).await?;
        let agent = self
            .state
            .phoenix
            .heartbeat(agent.id, body.0.into())
            .await?;
        Ok(Json(HeartbeatResponse {
            status: agent.status.into(),
            heartbeat_interval_secs: heartbeat_secs(&self.state),
            snapshot_interval_secs: u64::try_from(
                self.state.phoenix.config().snapshot_interval.num_seconds(),
            )
            .unwrap_or(60),
            server_time: self.state.phoenix.clock().now(),
        }))
    }

    /// Long-poll for tasks
    ///
    /// Returns as soon as tasks are claimable for this agent (claimed under a lease: report
    /// each with its lease token), or 204 when `wait` seconds pass. One outstanding poll
    /// per agent: a new poll ends the previous one with 204. `wait` is capped by the
    /// server's `max_poll_wait_secs`.
    #[oai(
        path = "/agent/tasks",
        method = "get",
        operation_id = "agent_poll_tasks"
    )]
    async fn poll(
        &self,
        auth: AgentToken,
        /// Seconds to wait (default: the server's `poll_wait_secs`, 30).
        #[oai(validator(maximum(value = "600")))]
        wait: Query<Option<u64>>,
        /// Most tasks to claim at once.
        #[oai(validator(minimum(value = "1"), maximum(value = "64")))]
        max: Query<Option<u32>>,
    ) -> ApiResult<Poll> {
        poll_tasks(&self.state, &auth, wait.0, max.0).await
    }

    /// Report a task's status
    ///
    /// `running` extends the lease; `succeeded` and `failed` finish the attempt. The lease
    /// token must be the one the poll returned: a stale one gets 409 `lease_lost` and
    /// changes nothing.
    #[oai(
        path = "/agent/tasks/:id/status",
        method = "post",
        operation_id = "agent_report_task"
    )]
    async fn report(
        &self,
        auth: AgentToken,
        id: Path<Uuid>,
        body: StrictJson<TaskStatusReport>,
    ) -> ApiResult<Json<TaskStatusReceipt>> {
        let agent = self.state.agent(&auth).await?;
        let report = body.0;
        let lease = LeaseRef {
            task_id: TaskId(id.0),
            token: LeaseToken(report.lease_token),
        };
        let core_report = match report.status {
            TaskReportStatus::Running => TaskReport::Running,
            TaskReportStatus::Succeeded => TaskReport::Succeeded {
                result: report.result,
            },
            TaskReportStatus::Failed => {
                let Some(error) = report.error else {
                    return Err(ApiError::validation(vec![FieldError::new(
                        "error",
                        "required when status is failed",
                    )]));
                };
                TaskReport::Failed {
                    error,
                    retryable: report.retryable.unwrap_or(true),
                }
            }
        };
        let receipt = self
            .state
            .phoenix
            .report_task(agent.id, lease, core_report)
            .await?;
        Ok(Json(TaskStatusReceipt {
            task: receipt.task.into(),
            lease_expires_at: receipt.lease_expires_at,
        }))
    }

    /// Release a task
    ///
    /// Gives a held task back (the agent is shutting down): pending again at once, and
    /// the attempt is not counted.
    #[oai(
        path = "/agent/tasks/:id/release",
        method = "post",
        operation_id = "agent_release_task"
    )]
    async fn release(
        &self,
        auth: AgentToken,
        id: Path<Uuid>,
        body: StrictJson<ReleaseRequest>,
    ) -> ApiResult<Json<Task>> {
        let agent = self.state.agent(&auth).await?;
        let lease = LeaseRef {
            task_id: TaskId(id.0),
            token: LeaseToken(body.0.lease_token),
        };
        let task = self.state.phoenix.release_task(agent.id, lease).await?;
        Ok(Json(task.into()))
    }

    /// Report measurements
    ///
    /// Per-variant samples of the experiments this agent runs (idempotent per
    /// experiment, agent and `seq`) and the host's cardinality snapshot.
    #[oai(
        path = "/agent/metrics",
        method = "post",
        operation_id = "agent_report_metrics"
    )]
    async fn metrics(
        &self,
        auth: AgentToken,
        body: StrictJson<MetricsReport>,
    ) -> ApiResult<Json<MetricsReceipt>> {
        let agent = self.state.agent(&auth).await?;
        let report = body.0;
        if report.snapshot.is_some() && report.packed_snapshot.is_some() {
            let mut errors = ValidationErrors::new();
            errors.push(
                "packed_snapshot",
                "at most one of `snapshot` and `packed_snapshot` (one snapshot per report)",
            );
            return Err(PhoenixError::Validation(errors).into());
        }
        let samples: Vec<_> = report.samples.into_iter().map(Into::into).collect();
        let spelled_out: Option<core_measure::CardinalitySnapshot> =
            report.snapshot.map(Into::into);
        let packed: Option<core_measure::PackedSnapshot> = report.packed_snapshot.map(Into::into);
        let snapshot = match (&packed, &spelled_out) {
            (Some(p), _) => Some(core_measure::ReportedSnapshot::Packed(p)),
            (None, Some(s)) => Some(core_measure::ReportedSnapshot::SpelledOut(s)),
            (None, None) => None,
        };
        let (appended, snapshot_stored) = self
            .state
            .phoenix
            .report_metrics(agent.id, &samples, snapshot)
            .await?;
        Ok(Json(MetricsReceipt {
            inserted: appended.inserted,
            duplicates: appended.duplicates,
            snapshot_stored,
        }))
    }
}

fn heartbeat_secs(state: &AppState) -> u64 {
    u64::try_from(state.phoenix.config().heartbeat_interval.num_seconds()).unwrap_or(10)
}
