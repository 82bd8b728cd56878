//! A control plane over an in-process [`Phoenix`] facade: the agent and the control plane
//! in one program, without HTTP.
//!
//! For applications that embed `phoenix-core` and want a real agent measuring the host
//! they run on (see the `embed-core` example), and for tests. The calls are the facade's
//! own, so authentication, leases and fencing behave exactly as behind the server.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::agent::{AgentRegistration, Heartbeat};
use phoenix_core::ids::AgentId;
use phoenix_core::measure::{CardinalitySnapshot, MeasurementSample, PackedSnapshot};
use phoenix_core::phoenix::TaskReport;
use phoenix_core::task::{LeaseRef, LeasedTask};
use phoenix_core::{Phoenix, PhoenixError, StoreError};

use crate::control::{ControlError, ControlPlane, Enrollment, HeartbeatAck, MetricsAck};

/// The facade, reached directly. Enrollment checks `enrollment_token` as the server would.
#[derive(Debug, Clone)]
pub struct InProcessControlPlane {
    phoenix: Phoenix,
    enrollment_token: String,
}

impl InProcessControlPlane {
    /// A control plane over `phoenix` that enrolls agents presenting `enrollment_token`.
    #[must_use]
    pub fn new(phoenix: Phoenix, enrollment_token: impl Into<String>) -> Self {
        Self {
            phoenix,
            enrollment_token: enrollment_token.into(),
        }
    }

    /// The facade.
    #[must_use]
    pub fn phoenix(&self) -> &Phoenix {
        &self.phoenix
    }

    async fn agent(&self, credential: &str) -> Result<AgentId, ControlError> {
        self.phoenix
            .authenticate_agent(credential)
            .await
            .map(|a| a.id)
            .map_err(map)
    }
}

fn map(e: PhoenixError) -> ControlError {
    match e {
        PhoenixError::Unauthenticated => ControlError::Unauthenticated,
        PhoenixError::Store(StoreError::LeaseLost { .. }) => ControlError::LeaseLost,
        PhoenixError::Store(StoreError::NotFound { .. }) => ControlError::Rejected {
            status: 404,
            message: "not found".to_owned(),
        },
        PhoenixError::Validation(v) => ControlError::Rejected {
            status: 422,
            message: v
                .errors
                .iter()
                .map(|f| format!("{}: {}", f.path, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        },
        PhoenixError::Forbidden(message) => ControlError::Rejected {
            status: 403,
            message,
        },
        other => ControlError::unavailable(other),
    }
}

#[async_trait]
impl ControlPlane for InProcessControlPlane {
    async fn enroll(
        &self,
        enrollment_token: &str,
        registration: &AgentRegistration,
    ) -> Result<Enrollment, ControlError> {
        if enrollment_token != self.enrollment_token {
            return Err(ControlError::Unauthenticated);
        }
        let (agent, credential) = self
            .phoenix
            .enroll(registration.clone())
            .await
            .map_err(map)?;
        Ok(Enrollment {
            agent_id: agent.id,
            credential: credential.to_token(),
            heartbeat_interval: None,
        })
    }

    async fn heartbeat(
        &self,
        credential: &str,
        heartbeat: &Heartbeat,
    ) -> Result<HeartbeatAck, ControlError> {
        let id = self.agent(credential).await?;
        self.phoenix
            .heartbeat(id, heartbeat.clone())
            .await
            .map_err(map)?;
        Ok(HeartbeatAck {
            snapshot_interval: self.phoenix.config().snapshot_interval.to_std().ok(),
        })
    }

    async fn poll_tasks(
        &self,
        credential: &str,
        wait: Duration,
        max: usize,
    ) -> Result<Vec<LeasedTask>, ControlError> {
        let id = self.agent(credential).await?;
        self.phoenix
            .wait_for_tasks(id, max, wait)
            .await
            .map_err(map)
    }

    async fn report_task(
        &self,
        credential: &str,
        lease: LeaseRef,
        report: TaskReport,
    ) -> Result<Option<DateTime<Utc>>, ControlError> {
        let id = self.agent(credential).await?;
        self.phoenix
            .report_task(id, lease, report)
            .await
            .map(|r| r.lease_expires_at)
            .map_err(map)
    }

    async fn release_task(&self, credential: &str, lease: LeaseRef) -> Result<(), ControlError> {
        let id = self.agent(credential).await?;
        self.phoenix.release_task(id, lease).await.map_err(map)?;
        Ok(())
    }

    async fn report_metrics(
        &self,
        credential: &str,
        samples: &[MeasurementSample],
        snapshot: Option<&CardinalitySnapshot>,
    ) -> Result<MetricsAck, ControlError> {
        let id = self.agent(credential).await?;
        // Packed, as the HTTP control sends it.
        let packed = snapshot.map(PackedSnapshot::pack);
        let (report, _) = self
            .phoenix
            .report_metrics(id, samples, packed.as_ref().map(Into::into))
            .await
            .map_err(map)?;
        Ok(MetricsAck {
            inserted: report.inserted,
            duplicates: report.duplicates,
        })
    }
}
