//! Driver errors to [`StoreError`]: the one place where sqlx's errors are classified.
//!
//! - The server could not be reached, a connection died, the pool timed out, the server
//!   is shutting down or out of resources, a transaction was chosen as a deadlock or
//!   serialization victim: `Unavailable` (HTTP 503; trying again later may succeed).
//! - A row did not decode into the Rust type (schema drift, corrupted JSON): `Corrupt`.
//! - The data itself was refused (class 22, e.g. a NUL character in a JSON string):
//!   `Invalid`, so that bad input is a 4xx and never a 500. The facade validates every
//!   input first (`phoenix_core::inputs`), so this is a safety net, not a rule.
//! - A unique violation outside the statements that expect one: `Conflict`.
//!
//! No message built here quotes the driver, a constraint or a schema name: they reach
//! HTTP clients. The driver's error goes to the log.
//!
//! Nothing here panics; unknown classes are `Unavailable` (the operation did not happen as
//! far as the caller can know, and retrying is the only sensible reaction).

use phoenix_core::store::StoreError;

/// The message of a value the database refused (the details are logged).
pub(crate) const REFUSED: &str = "a value cannot be stored (out of range or not representable)";

/// SQLSTATE of a unique violation.
pub(crate) const UNIQUE_VIOLATION: &str = "23505";

/// Classifies a driver error.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.get(..2) {
                _ if code == UNIQUE_VIOLATION => {
                    tracing::info!(error = %db, "unique violation");
                    StoreError::Conflict {
                        entity: "record",
                        id: "with this key".to_owned(),
                    }
                }
                Some("22") => {
                    tracing::warn!(error = %db, "the database refused a value");
                    StoreError::Invalid(REFUSED.to_owned())
                }
                // Integrity (other than unique), syntax or undefined objects: the schema is
                // not the one this code expects.
                Some("23" | "42") => StoreError::corrupt(sqlx::Error::Database(db)),
                _ => StoreError::unavailable(sqlx::Error::Database(db)),
            }
        }
        e @ (sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)) => StoreError::corrupt(e),
        e @ (sqlx::Error::Encode(_) | sqlx::Error::InvalidArgument(_)) => {
            tracing::warn!(error = %e, "a value cannot be encoded");
            StoreError::Invalid(REFUSED.to_owned())
        }
        other => StoreError::unavailable(other),
    }
}

/// Decoding failures of values read from a row (enum names, JSON bodies).
pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::corrupt(CorruptValue(what.into()))
}

/// A stored value that does not decode.
#[derive(Debug)]
struct CorruptValue(String);

impl std::fmt::Display for CorruptValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CorruptValue {}

/// Converts a count or size that does not fit the column type into `Invalid`.
pub(crate) fn out_of_range(what: &str) -> StoreError {
    StoreError::Invalid(format!("{what} is out of range"))
}
