//! The agent's state directory: its credential, its last-known-good pipelines, the
//! sequence numbers it reserved, and the tasks it already applied.
//!
//! The directory is created `0700` and every file is written `0600` through a temporary
//! file, `fsync` and `rename`, so a crash leaves either the old or the new version, never a
//! torn one. Layout:
//!
//! | file | content |
//! |---|---|
//! | `credential.json` | agent id, credential token, server URL, enrollment time |
//! | `pipelines.json` | the deployments that last ran healthy (restored at start) |
//! | `sequences.json` | per experiment, the highest measurement sequence number reserved |
//! | `applied.json` | the last tasks applied, with their results (idempotency by task id) |
//! | `otelcol/` | the otelcol runtime's rendered and last-known-good configs |

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use phoenix_core::ids::{AgentId, ExperimentId, TaskId};
use phoenix_core::task::LeaseRef;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::runtime::Deployments;

/// How many applied tasks are remembered.
pub const APPLIED_TASKS_KEPT: usize = 512;

/// A state-directory failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {path} could not be accessed")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but does not parse.
    #[error("state file {path} is corrupt")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The credential an agent received at enrollment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    /// The agent.
    pub agent_id: AgentId,
    /// The bearer token.
    pub credential: String,
    /// The server it belongs to (a different server means enrolling again).
    pub server_url: String,
    /// When it was issued.
    pub enrolled_at: DateTime<Utc>,
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredential")
            .field("agent_id", &self.agent_id)
            .field("credential", &"<redacted>")
            .field("server_url", &self.server_url)
            .finish_non_exhaustive()
    }
}

/// A task applied by this agent and what it reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedTask {
    /// The task.
    pub task_id: TaskId,
    /// The result reported (or to report) as success.
    pub result: serde_json::Value,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating it `0700` if needed) the state directory at `root`.
    ///
    /// # Errors
    /// When it cannot be created or its permissions cannot be set.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let root = root.into();
        let io = |source| StateError::Io {
            path: root.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(io)?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).map_err(io)?;
        Ok(Self { root })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A subdirectory, created `0700`.
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn subdir(&self, name: &str) -> Result<PathBuf, StateError> {
        let dir = self.root.join(name);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| StateError::Io {
                path: dir.clone(),
                source,
            })?;
        Ok(dir)
    }

    /// The stored credential, if any.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn credential(&self) -> Result<Option<StoredCredential>, StateError> {
        self.read("credential.json")
    }

    /// Stores the credential (`0600`).
    ///
    /// # Errors
    /// When it cannot be written.
    pub fn save_credential(&self, credential: &StoredCredential) -> Result<(), StateError> {
        self.write("credential.json", credential)
    }

    /// Forgets the credential (it was revoked or belongs to another server).
    ///
    /// # Errors
    /// When it exists and cannot be removed.
    pub fn remove_credential(&self) -> Result<(), StateError> {
        let path = self.root.join("credential.json");
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// The last-known-good deployments (empty when none were saved).
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn deployments(&self) -> Result<Deployments, StateError> {
        Ok(self.read("pipelines.json")?.unwrap_or_default())
    }

    /// Saves the deployments as last-known-good.
    ///
    /// # Errors
    /// When they cannot be written.
    pub fn save_deployments(&self, deployments: &Deployments) -> Result<(), StateError> {
        self.write("pipelines.json", deployments)
    }

    /// Per experiment, the highest sequence number reserved so far.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn sequences(&self) -> Result<BTreeMap<ExperimentId, u64>, StateError> {
        Ok(self.read("sequences.json")?.unwrap_or_default())
    }

    /// Saves the sequence reservations.
    ///
    /// # Errors
    /// When they cannot be written.
    pub fn save_sequences(
        &self,
        sequences: &BTreeMap<ExperimentId, u64>,
    ) -> Result<(), StateError> {
        self.write("sequences.json", sequences)
    }

    /// The tasks applied recently, oldest first.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn applied(&self) -> Result<VecDeque<AppliedTask>, StateError> {
        Ok(self.read("applied.json")?.unwrap_or_default())
    }

    /// Saves the applied-task ledger.
    ///
    /// # Errors
    /// When it cannot be written.
    pub fn save_applied(&self, applied: &VecDeque<AppliedTask>) -> Result<(), StateError> {
        self.write("applied.json", applied)
    }

    /// The leases recorded as held (`leases.json`; empty when none).
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn held_leases(&self) -> Result<Vec<LeaseRef>, StateError> {
        Ok(self.read("leases.json")?.unwrap_or_default())
    }

    /// Saves the leases held.
    ///
    /// # Errors
    /// When they cannot be written.
    pub fn save_held_leases(&self, leases: &[LeaseRef]) -> Result<(), StateError> {
        self.write("leases.json", &leases)
    }

    fn read<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        let path = self.root.join(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    fn write<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Corrupt {
            path: self.root.join(name),
            source,
        })?;
        write_private(&self.root.join(name), &bytes)
    }
}

/// Writes `bytes` to `path` atomically with mode `0600`.
///
/// # Errors
/// When any step fails.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    // `mode` applies only when the file is created; a leftover temporary keeps its mode.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        // Persist the rename; a failure here only weakens durability, not correctness.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        assert!(state.credential().unwrap().is_none());
        let cred = StoredCredential {
            agent_id: AgentId::new(),
            credential: "phx_agent.x.secret".to_owned(),
            server_url: "http://127.0.0.1:1".to_owned(),
            enrolled_at: Utc::now(),
        };
        state.save_credential(&cred).unwrap();
        assert_eq!(state.credential().unwrap(), Some(cred.clone()));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state.path().join("credential.json")), 0o600);
        assert_eq!(mode(state.path()), 0o700);
        assert!(!format!("{cred:?}").contains("secret"));
        state.remove_credential().unwrap();
        state.remove_credential().unwrap();
        assert!(state.credential().unwrap().is_none());
    }

    #[test]
    fn corrupt_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        fs::write(dir.path().join("sequences.json"), b"{not json").unwrap();
        assert!(matches!(state.sequences(), Err(StateError::Corrupt { .. })));
        let mut seqs = BTreeMap::new();
        seqs.insert(ExperimentId::new(), 64);
        state.save_sequences(&seqs).unwrap();
        assert_eq!(state.sequences().unwrap(), seqs);
    }
}
