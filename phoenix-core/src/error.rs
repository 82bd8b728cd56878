//! The one error type every store returns. Backends box their driver errors as sources;
//! `Display` describes this layer only (the source chain is logged, not inlined).

use crate::ids::TaskId;

/// A boxed error from a backend driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a store. The server maps these to HTTP statuses without knowing
/// which backend produced them: `NotFound` 404, `Conflict` 409, `LeaseLost` 409,
/// `Unavailable` 503, `Corrupt` 500, `Invalid` 422.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such record.
    #[error("{entity} {id} not found")]
    NotFound {
        /// The kind of record ("experiment", "task", "agent", ...).
        entity: &'static str,
        /// Its id as text.
        id: String,
    },
    /// A compare-and-set failed (version mismatch) or a record with this id already exists.
    #[error("{entity} {id} was changed concurrently or already exists")]
    Conflict {
        /// The kind of record.
        entity: &'static str,
        /// Its id as text.
        id: String,
    },
    /// The lease token does not match the task's current lease: the lease expired and the
    /// task was (or may be) claimed again. Nothing was changed.
    #[error("lease on task {task} is no longer held")]
    LeaseLost {
        /// The task whose lease was lost.
        task: TaskId,
    },
    /// The operation is not allowed in the record's current state (e.g. re-driving a task
    /// that is not dead-lettered).
    #[error("{0}")]
    Invalid(String),
    /// The backend could not be reached or timed out. Retrying later may succeed.
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
    /// The backend returned data that Phoenix cannot decode.
    #[error("store returned corrupt data")]
    Corrupt(#[source] BoxError),
}

impl StoreError {
    /// A `NotFound` for `entity` with `id`.
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// A `Conflict` for `entity` with `id`.
    pub fn conflict(entity: &'static str, id: impl ToString) -> Self {
        Self::Conflict {
            entity,
            id: id.to_string(),
        }
    }

    /// Wraps a driver error as `Unavailable`.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable(source.into())
    }

    /// Wraps a decoding error as `Corrupt`.
    pub fn corrupt(source: impl Into<BoxError>) -> Self {
        Self::Corrupt(source.into())
    }

    /// True for `Conflict`.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}
