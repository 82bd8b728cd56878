//! The storage boundary: where Rust enums become text columns and back, and where rows
//! become domain values. Every enum name stored comes from the enum's own `as_str` (or
//! its serde name), and every name read is parsed by its `FromStr`; a name the code does
//! not know is `Corrupt`, never a panic.

use chrono::{DateTime, Utc};
use phoenix_core::agent::AgentStatus;
use phoenix_core::deployment::DeploymentState;
use phoenix_core::experiment::Phase;
use phoenix_core::ids::{AgentId, TaskId};
use phoenix_core::store::StoreError;
use phoenix_core::task::{Task, TaskPayload, TaskState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use uuid::Uuid;

use crate::error::{corrupt, out_of_range};

/// Parses a stored enum name.
pub(crate) fn parse<T: std::str::FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| corrupt(format!("unknown {column} `{value}` in the database")))
}

/// The stored name of a phase.
pub(crate) fn phase(phase: Phase) -> &'static str {
    phase.as_str()
}

/// The stored name of a task state.
pub(crate) fn task_state(state: TaskState) -> &'static str {
    state.as_str()
}

/// The stored name of an agent status.
pub(crate) fn agent_status(status: AgentStatus) -> &'static str {
    status.as_str()
}

/// The stored name of a deployment state (its serde name; the enum has no `as_str`).
pub(crate) fn deployment_state(state: DeploymentState) -> Result<String, StoreError> {
    match serde_json::to_value(state) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        _ => Err(corrupt("a deployment state has no string name")),
    }
}

/// A value as a JSONB body.
pub(crate) fn body<T: Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value)
        .map_err(|e| StoreError::Invalid(format!("value cannot be serialized: {e}")))
}

/// A JSONB body as a value.
pub(crate) fn from_body<T: DeserializeOwned>(
    what: &str,
    value: serde_json::Value,
) -> Result<T, StoreError> {
    serde_json::from_value(value)
        .map_err(|e| corrupt(format!("stored {what} does not decode: {e}")))
}

/// `u64` to a `bigint` column.
pub(crate) fn to_i64(what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| out_of_range(what))
}

/// A `bigint` column to `u64`.
pub(crate) fn to_u64(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("negative {what} in the database")))
}

/// `u32` to an `integer` column.
pub(crate) fn to_i32(what: &str, value: u32) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| out_of_range(what))
}

/// A task as stored (the columns of `queue::task_columns!`, in order).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TaskRow {
    pub(crate) id: Uuid,
    pub(crate) agent_id: Uuid,
    pub(crate) payload: Json<TaskPayload>,
    pub(crate) priority: i16,
    pub(crate) unique_key: Option<String>,
    pub(crate) state: String,
    pub(crate) run_at: DateTime<Utc>,
    pub(crate) attempts: i32,
    pub(crate) max_attempts: i32,
    pub(crate) lease_token: Option<Uuid>,
    pub(crate) lease_expires_at: Option<DateTime<Utc>>,
    pub(crate) last_error: Option<String>,
    pub(crate) result: Option<Json<serde_json::Value>>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl TaskRow {
    /// The domain task.
    pub(crate) fn into_task(self) -> Result<Task, StoreError> {
        let attempts = u32::try_from(self.attempts)
            .map_err(|_| corrupt("negative task attempts in the database"))?;
        let max_attempts = u32::try_from(self.max_attempts)
            .map_err(|_| corrupt("negative task max_attempts in the database"))?;
        Ok(Task {
            id: TaskId(self.id),
            agent_id: AgentId(self.agent_id),
            payload: self.payload.0,
            priority: self.priority,
            unique_key: self.unique_key,
            state: parse("task state", &self.state)?,
            run_at: self.run_at,
            attempts,
            max_attempts,
            lease_expires_at: self.lease_expires_at,
            last_error: self.last_error,
            result: self.result.map(|r| r.0),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Decodes task rows.
pub(crate) fn tasks(rows: Vec<TaskRow>) -> Result<Vec<Task>, StoreError> {
    rows.into_iter().map(TaskRow::into_task).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_states_have_names() {
        for state in [
            DeploymentState::Rolling,
            DeploymentState::Paused,
            DeploymentState::Completed,
            DeploymentState::RollingBack,
            DeploymentState::RolledBack,
        ] {
            let name = deployment_state(state).unwrap();
            assert_eq!(
                serde_json::from_value::<DeploymentState>(serde_json::Value::String(name)).unwrap(),
                state
            );
        }
    }

    #[test]
    fn unknown_names_are_corrupt() {
        assert!(matches!(
            parse::<Phase>("phase", "exploded"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse::<TaskState>("task state", "done"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
