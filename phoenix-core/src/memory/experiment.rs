//! [`ExperimentStore`] on the in-memory state.

use async_trait::async_trait;

use super::MemoryStore;
use super::queue::parse_cursor;
use crate::error::StoreError;
use crate::experiment::{Experiment, ExperimentEvent};
use crate::ids::ExperimentId;
use crate::page::{Page, PageRequest};
use crate::store::{BusEvent, Commit, CommitReceipt, ExperimentFilter, ExperimentStore};
use crate::task::TaskFilter;

#[async_trait]
impl ExperimentStore for MemoryStore {
    async fn create(
        &self,
        experiment: &Experiment,
        event: &ExperimentEvent,
    ) -> Result<(), StoreError> {
        {
            let mut state = self.lock();
            if state.experiments.contains_key(&experiment.id) {
                return Err(StoreError::conflict("experiment", experiment.id));
            }
            state.experiments.insert(experiment.id, experiment.clone());
            state.events.insert(experiment.id, vec![event.clone()]);
        }
        self.emit([BusEvent::Experiment {
            event: event.clone(),
            version: experiment.version,
        }]);
        Ok(())
    }

    async fn get(&self, id: ExperimentId) -> Result<Experiment, StoreError> {
        self.lock()
            .experiments
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("experiment", id))
    }

    async fn list(
        &self,
        filter: &ExperimentFilter,
        page: &PageRequest,
    ) -> Result<Page<Experiment>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<ExperimentId> = parse_cursor(page.after.as_deref())?;
        let state = self.lock();
        let items: Vec<Experiment> = state
            .experiments
            .values()
            .rev()
            .filter(|e| after.is_none_or(|a| e.id < a))
            .filter(|e| filter.matches(e))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(items, limit, |e| e.id.to_string()))
    }

    async fn commit(&self, commit: &Commit) -> Result<CommitReceipt, StoreError> {
        let now = self.now();
        let id = commit.experiment.id;
        let (receipt, cancelled) = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let stored = state
                .experiments
                .get_mut(&id)
                .ok_or_else(|| StoreError::not_found("experiment", id))?;
            if stored.version != commit.expected_version
                || commit.experiment.version != commit.expected_version + 1
            {
                return Err(StoreError::conflict("experiment", id));
            }
            *stored = commit.experiment.clone();
            state
                .events
                .entry(id)
                .or_default()
                .extend(commit.events.iter().cloned());
            let cancelled = if commit.cancel_open_tasks {
                state.cancel_locked(
                    &TaskFilter {
                        experiment_id: Some(id),
                        ..TaskFilter::default()
                    },
                    now,
                )
            } else {
                Vec::new()
            };
            let enqueued = state.enqueue_locked(&commit.tasks, now);
            (
                CommitReceipt {
                    cancelled: cancelled.len() as u64,
                    enqueued,
                },
                cancelled,
            )
        };
        let version = commit.experiment.version;
        self.emit(
            commit
                .events
                .iter()
                .map(|event| BusEvent::Experiment {
                    event: event.clone(),
                    version,
                })
                .chain(cancelled.iter().map(|t| BusEvent::TaskUpdated {
                    task_id: t.id,
                    agent_id: t.agent_id,
                    experiment_id: t.experiment_id(),
                    state: t.state,
                }))
                .chain(BusEvent::tasks_enqueued(&commit.tasks, &receipt.enqueued)),
        );
        Ok(receipt)
    }

    async fn delete(&self, id: ExperimentId, expected_version: u64) -> Result<(), StoreError> {
        let now = self.now();
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            let stored = state
                .experiments
                .get(&id)
                .ok_or_else(|| StoreError::not_found("experiment", id))?;
            if stored.version != expected_version {
                return Err(StoreError::conflict("experiment", id));
            }
            state.experiments.remove(&id);
            state.events.remove(&id);
            state.samples.remove(&id);
            state.cancel_locked(
                &TaskFilter {
                    experiment_id: Some(id),
                    ..TaskFilter::default()
                },
                now,
            );
        }
        self.emit([BusEvent::ExperimentDeleted { experiment_id: id }]);
        Ok(())
    }

    async fn events(
        &self,
        id: ExperimentId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ExperimentEvent>, StoreError> {
        let state = self.lock();
        if !state.experiments.contains_key(&id) {
            return Err(StoreError::not_found("experiment", id));
        }
        Ok(state
            .events
            .get(&id)
            .map(|events| {
                events
                    .iter()
                    .filter(|e| e.seq > after_seq)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}
