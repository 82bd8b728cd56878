//! Long-poll wake-ups: one in-process [`Notify`] per waiting agent, fed by the event bus.
//!
//! Waiting holds no database connection: a waiter sleeps on its `Notify` and claims only
//! when woken (by a `TasksAvailable` event from any replica) or when the slow safety poll
//! fires (which recovers a lost bus message). One outstanding poll per agent: registering
//! a new waiter wakes and retires the previous one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{Notify, broadcast};

use crate::ids::AgentId;
use crate::store::BusEvent;

#[derive(Debug, Default)]
struct Slot {
    generation: u64,
    notify: Arc<Notify>,
}

/// The registry of waiting agents.
#[derive(Debug, Default)]
pub struct Waiters {
    slots: Mutex<HashMap<AgentId, Slot>>,
}

/// A registered waiter. Dropping it unregisters it (if still current).
#[derive(Debug)]
pub struct WaitTicket {
    waiters: Arc<Waiters>,
    agent: AgentId,
    generation: u64,
    /// Notified on new tasks, and when a newer poll supersedes this one.
    pub notify: Arc<Notify>,
}

impl WaitTicket {
    /// False once a newer poll of the same agent has registered.
    #[must_use]
    pub fn is_current(&self) -> bool {
        self.waiters
            .lock()
            .get(&self.agent)
            .is_some_and(|s| s.generation == self.generation)
    }
}

impl Drop for WaitTicket {
    fn drop(&mut self) {
        let mut slots = self.waiters.lock();
        if slots
            .get(&self.agent)
            .is_some_and(|s| s.generation == self.generation)
        {
            slots.remove(&self.agent);
        }
    }
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentId, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a waiter for `agent`, retiring (and waking) any previous one.
    #[must_use]
    pub fn register(self: &Arc<Self>, agent: AgentId) -> WaitTicket {
        let notify = Arc::new(Notify::new());
        let generation = {
            let mut slots = self.lock();
            let slot = slots.entry(agent).or_default();
            slot.notify.notify_one();
            slot.generation += 1;
            slot.notify = notify.clone();
            slot.generation
        };
        WaitTicket {
            waiters: self.clone(),
            agent,
            generation,
            notify,
        }
    }

    /// Wakes the waiter of `agent`, if any. A wake-up with nobody waiting is kept as a
    /// permit, so a waiter that registered but has not started sleeping does not miss it.
    pub fn wake(&self, agent: AgentId) {
        if let Some(slot) = self.lock().get(&agent) {
            slot.notify.notify_one();
        }
    }

    /// Wakes every waiter (after the bus lagged and events may have been lost).
    pub fn wake_all(&self) {
        for slot in self.lock().values() {
            slot.notify.notify_one();
        }
    }

    /// Number of agents currently waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nobody waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Feeds `waiters` from the bus until the waiters are dropped or the bus closes.
pub(crate) async fn pump(waiters: Weak<Waiters>, mut events: broadcast::Receiver<BusEvent>) {
    loop {
        let event = events.recv().await;
        let Some(waiters) = waiters.upgrade() else {
            return;
        };
        match event {
            Ok(BusEvent::TasksAvailable { agents }) => {
                for agent in agents {
                    waiters.wake(agent);
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => waiters.wake_all(),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
