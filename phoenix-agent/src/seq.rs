//! Measurement sequence numbers that survive restarts.
//!
//! The server deduplicates measurements on (experiment, agent, seq), so a retried report
//! is never counted twice. The other half of "nothing counted twice, nothing lost" is that
//! a restarted agent must never reuse a number it already sent: numbers are reserved in
//! blocks written to the state directory *before* any of them is used, and a restart
//! continues after the last reserved block (leaving a gap, which is harmless).

use std::collections::BTreeMap;
use std::sync::Mutex;

use phoenix_core::ids::ExperimentId;

use crate::state::{StateDir, StateError};

/// Numbers reserved per write.
pub const BLOCK: u64 = 64;
/// Experiments remembered (oldest forgotten first; ids are time-ordered).
pub const KEPT: usize = 1024;

/// Hands out sequence numbers per experiment, starting at 1.
#[derive(Debug)]
pub struct Sequences {
    state: StateDir,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Next number to hand out.
    next: BTreeMap<ExperimentId, u64>,
    /// Highest number reserved on disk.
    reserved: BTreeMap<ExperimentId, u64>,
}

impl Sequences {
    /// Loads the reservations from `state`; numbers continue after them.
    ///
    /// # Errors
    /// When the reservations cannot be read.
    pub fn load(state: StateDir) -> Result<Self, StateError> {
        let reserved = state.sequences()?;
        let next = reserved.iter().map(|(k, v)| (*k, v + 1)).collect();
        Ok(Self {
            state,
            inner: Mutex::new(Inner { next, reserved }),
        })
    }

    /// The next number for `experiment`.
    ///
    /// # Errors
    /// When a new block cannot be reserved on disk (no number is handed out then).
    pub fn next(&self, experiment: ExperimentId) -> Result<u64, StateError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = *inner.next.get(&experiment).unwrap_or(&1);
        let reserved = inner.reserved.get(&experiment).copied().unwrap_or(0);
        if n > reserved {
            let mut reservations = inner.reserved.clone();
            reservations.insert(experiment, n + BLOCK - 1);
            while reservations.len() > KEPT {
                reservations.pop_first();
            }
            self.state.save_sequences(&reservations)?;
            inner.next.retain(|k, _| reservations.contains_key(k));
            inner.reserved = reservations;
        }
        inner.next.insert(experiment, n + 1);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let e = ExperimentId::new();
        let other = ExperimentId::new();
        let seqs = Sequences::load(StateDir::open(dir.path()).unwrap()).unwrap();
        let first: Vec<u64> = (0..70).map(|_| seqs.next(e).unwrap()).collect();
        assert_eq!(first, (1..=70).collect::<Vec<_>>());
        assert_eq!(seqs.next(other).unwrap(), 1);
        drop(seqs);
        // A crash after handing out 70: the restart continues after the reserved block.
        let seqs = Sequences::load(StateDir::open(dir.path()).unwrap()).unwrap();
        let after = seqs.next(e).unwrap();
        assert!(after > 70, "{after} reused a number");
        assert_eq!(after, 2 * BLOCK + 1);
        assert_eq!(seqs.next(other).unwrap(), BLOCK + 1);
    }
}
