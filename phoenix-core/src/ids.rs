//! Strongly typed identifiers. Every id is a UUID; entity ids are v7 (time ordered, so
//! ordering by id is ordering by creation), lease tokens are v4 (unguessable).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $new:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::$new())
            }

            /// The underlying UUID.
            #[must_use]
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }
    };
}

uuid_id!(
    /// Identifies an experiment (UUID v7).
    ExperimentId,
    now_v7
);
uuid_id!(
    /// Identifies a task in the queue (UUID v7).
    TaskId,
    now_v7
);
uuid_id!(
    /// Identifies an enrolled agent (UUID v7).
    AgentId,
    now_v7
);
uuid_id!(
    /// Identifies a quick deployment (UUID v7).
    DeploymentId,
    now_v7
);
uuid_id!(
    /// The fencing token of one lease (UUID v4). A task's token changes at every claim, so
    /// a worker whose lease expired cannot complete, fail or extend the task any more.
    LeaseToken,
    new_v4
);
