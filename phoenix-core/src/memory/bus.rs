//! [`EventBus`] on a tokio broadcast channel (one process).

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::MemoryStore;
use crate::error::StoreError;
use crate::store::{BusEvent, EventBus};

#[async_trait]
impl EventBus for MemoryStore {
    async fn publish(&self, event: &BusEvent) -> Result<(), StoreError> {
        self.emit([event.clone()]);
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.inner.bus.subscribe()
    }
}
