//! The leases this agent holds, kept in the state directory (`leases.json`) so that an
//! agent killed while it held tasks gives them back as soon as it is running again,
//! instead of leaving them to expire (a full lease, 60 s by default).
//!
//! A lease is recorded when the poll hands the task over, before it runs, and forgotten
//! when its outcome is reported, it is released, or it is lost. At start the agent
//! releases every recorded lease with its token: the server's release is fenced on the
//! token (a lease that expired or went to another agent meanwhile is refused and left
//! alone), and a released task is pending again at once, without its attempt counted, so
//! the next poll delivers it. Tasks are idempotent by id (the applied-task ledger), so one
//! that had been applied before the kill is answered from the record.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use phoenix_core::ids::TaskId;
use phoenix_core::task::LeaseRef;

use crate::control::{ControlError, ControlPlane};
use crate::state::{StateDir, StateError};
use crate::tasks::error_chain;

/// The leases in hand, mirrored to `leases.json`.
#[derive(Debug)]
pub struct HeldLeases {
    state: StateDir,
    held: Mutex<BTreeMap<TaskId, LeaseRef>>,
}

impl HeldLeases {
    /// The leases recorded by the previous run of this agent (none when it stopped
    /// cleanly or never held one).
    ///
    /// # Errors
    /// When `leases.json` exists but cannot be read.
    pub fn load(state: StateDir) -> Result<Self, StateError> {
        let held = state
            .held_leases()?
            .into_iter()
            .map(|l| (l.task_id, l))
            .collect();
        Ok(Self {
            state,
            held: Mutex::new(held),
        })
    }

    /// The recorded leases, by task id.
    #[must_use]
    pub fn leases(&self) -> Vec<LeaseRef> {
        self.lock().values().copied().collect()
    }

    /// Records a lease just received.
    pub fn hold(&self, lease: LeaseRef) {
        let mut held = self.lock();
        held.insert(lease.task_id, lease);
        self.save(&held);
    }

    /// Forgets a lease that was reported, released or lost.
    pub fn forget(&self, task_id: TaskId) {
        let mut held = self.lock();
        if held.remove(&task_id).is_some() {
            self.save(&held);
        }
    }

    /// Gives back every lease the previous run held, fenced by its token; forgets each one
    /// the server answered for (released, or refused because it is no longer ours), and
    /// keeps the rest (server unreachable) for the next start. Returns how many were
    /// released.
    pub async fn release_previous(&self, control: &dyn ControlPlane, credential: &str) -> usize {
        let mut released = 0;
        for lease in self.leases() {
            match control.release_task(credential, lease).await {
                Ok(()) => {
                    released += 1;
                    tracing::info!(task = %lease.task_id, "released a task held before the restart");
                    self.forget(lease.task_id);
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(task = %lease.task_id, error = %error_chain(&e), "cannot release a task held before the restart now; its lease will expire");
                }
                Err(e) => {
                    if !matches!(e, ControlError::LeaseLost) {
                        tracing::warn!(task = %lease.task_id, error = %error_chain(&e), "a task held before the restart was not released");
                    }
                    self.forget(lease.task_id);
                }
            }
        }
        released
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<TaskId, LeaseRef>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn save(&self, held: &BTreeMap<TaskId, LeaseRef>) {
        let leases: Vec<LeaseRef> = held.values().copied().collect();
        if let Err(e) = self.state.save_held_leases(&leases) {
            // Losing this record costs only time after a crash (the lease expires).
            tracing::warn!(error = %e, "cannot record the leases in hand");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_core::ids::LeaseToken;

    #[test]
    fn leases_survive_a_restart_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("s")).unwrap();
        let a = LeaseRef {
            task_id: TaskId::new(),
            token: LeaseToken::new(),
        };
        let b = LeaseRef {
            task_id: TaskId::new(),
            token: LeaseToken::new(),
        };
        let held = HeldLeases::load(state.clone()).unwrap();
        assert!(held.leases().is_empty());
        held.hold(a);
        held.hold(b);
        held.forget(a.task_id);
        let again = HeldLeases::load(state).unwrap();
        assert_eq!(again.leases(), vec![b]);
    }
}
