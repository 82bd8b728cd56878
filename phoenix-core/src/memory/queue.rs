//! [`TaskQueue`] on the in-memory state.

use std::cmp::Reverse;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{MemoryStore, State, StoredTask};
use crate::error::StoreError;
use crate::ids::{AgentId, LeaseToken, TaskId};
pub(super) use crate::page::parse_cursor;
use crate::page::{Page, PageRequest};
use crate::store::{BusEvent, TaskQueue};
use crate::task::{
    EnqueueResult, FailDecision, LeaseRef, LeasedTask, NewTask, QueueStats, RetryPolicy, Task,
    TaskFilter, TaskState, truncate_error,
};

impl State {
    /// Enqueues under the lock (see [`TaskQueue::enqueue`]).
    pub(super) fn enqueue_locked(
        &mut self,
        tasks: &[NewTask],
        now: DateTime<Utc>,
    ) -> Vec<EnqueueResult> {
        tasks
            .iter()
            .map(|new| {
                if self.tasks.contains_key(&new.id) {
                    return EnqueueResult::Duplicate {
                        id: new.id,
                        existing: new.id,
                    };
                }
                if let Some(existing) = new.unique_key.as_ref().and_then(|k| self.unique.get(k)) {
                    return EnqueueResult::Duplicate {
                        id: new.id,
                        existing: *existing,
                    };
                }
                let task = Task::from_new(new, now);
                if let Some(key) = &task.unique_key {
                    self.unique.insert(key.clone(), task.id);
                }
                self.index_pending(&task);
                self.tasks.insert(task.id, StoredTask { task, token: None });
                EnqueueResult::Enqueued { id: new.id }
            })
            .collect()
    }

    fn index_pending(&mut self, task: &Task) {
        self.pending.entry(task.agent_id).or_default().insert((
            Reverse(task.priority),
            task.run_at,
            task.id,
        ));
    }

    fn unindex(&mut self, task: &Task) {
        match task.state {
            TaskState::Pending => {
                if let Some(set) = self.pending.get_mut(&task.agent_id) {
                    set.remove(&(Reverse(task.priority), task.run_at, task.id));
                }
            }
            TaskState::Leased => {
                if let Some(expires) = task.lease_expires_at {
                    self.leases.remove(&(expires, task.id));
                }
            }
            _ => {}
        }
    }

    fn release_unique(&mut self, task: &Task) {
        if let Some(key) = &task.unique_key
            && self.unique.get(key) == Some(&task.id)
        {
            self.unique.remove(key);
        }
    }

    /// Moves a task to `state`, keeping every index right. `run_at` is used when the new
    /// state is `Pending`.
    fn move_task(
        &mut self,
        id: TaskId,
        state: TaskState,
        now: DateTime<Utc>,
        run_at: DateTime<Utc>,
    ) -> Task {
        let mut stored = self.tasks.remove(&id).expect("task exists");
        self.unindex(&stored.task);
        stored.task.state = state;
        stored.task.updated_at = now;
        stored.task.lease_expires_at = None;
        stored.token = None;
        match state {
            TaskState::Pending => {
                stored.task.run_at = run_at;
                self.index_pending(&stored.task);
            }
            TaskState::Leased => unreachable!("leases are taken by claim"),
            TaskState::Succeeded
            | TaskState::Failed
            | TaskState::DeadLettered
            | TaskState::Cancelled => {
                self.release_unique(&stored.task);
            }
        }
        let task = stored.task.clone();
        self.tasks.insert(id, stored);
        task
    }

    /// Cancels open tasks passing `filter`; returns them.
    pub(super) fn cancel_locked(&mut self, filter: &TaskFilter, now: DateTime<Utc>) -> Vec<Task> {
        let filter = TaskFilter {
            states: vec![TaskState::Pending, TaskState::Leased],
            ..filter.clone()
        };
        let ids: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|s| filter.matches(&s.task))
            .map(|s| s.task.id)
            .collect();
        ids.into_iter()
            .map(|id| self.move_task(id, TaskState::Cancelled, now, now))
            .collect()
    }

    fn check_lease(&self, lease: &LeaseRef, now: DateTime<Utc>) -> Result<&Task, StoreError> {
        let stored = self
            .tasks
            .get(&lease.task_id)
            .ok_or_else(|| StoreError::not_found("task", lease.task_id))?;
        let valid = stored.task.state == TaskState::Leased
            && stored.token == Some(lease.token)
            && stored.task.lease_expires_at.is_some_and(|e| now < e);
        if valid {
            Ok(&stored.task)
        } else {
            Err(StoreError::LeaseLost {
                task: lease.task_id,
            })
        }
    }
}

#[async_trait]
impl TaskQueue for MemoryStore {
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<Vec<EnqueueResult>, StoreError> {
        let now = self.now();
        let results = self.lock().enqueue_locked(tasks, now);
        self.emit(BusEvent::tasks_enqueued(tasks, &results));
        Ok(results)
    }

    async fn claim(
        &self,
        agent: AgentId,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedTask>, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        let due: Vec<_> = match state.pending.get(&agent) {
            Some(set) => set
                .iter()
                .filter(|(_, run_at, _)| *run_at <= now)
                .take(max)
                .copied()
                .collect(),
            None => return Ok(Vec::new()),
        };
        let expires = now + lease;
        let mut claimed = Vec::with_capacity(due.len());
        for key in due {
            let id = key.2;
            if let Some(set) = state.pending.get_mut(&agent) {
                set.remove(&key);
            }
            let token = LeaseToken::new();
            let stored = state.tasks.get_mut(&id).expect("indexed task exists");
            stored.task.state = TaskState::Leased;
            stored.task.attempts += 1;
            stored.task.lease_expires_at = Some(expires);
            stored.task.updated_at = now;
            stored.token = Some(token);
            let task = stored.task.clone();
            state.leases.insert((expires, id));
            claimed.push(LeasedTask {
                task,
                lease_token: token,
                lease_expires_at: expires,
            });
        }
        drop(state);
        self.emit(claimed.iter().map(|l| BusEvent::task_updated(&l.task)));
        Ok(claimed)
    }

    async fn extend(&self, lease: &LeaseRef, by: Duration) -> Result<DateTime<Utc>, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        let old = state.check_lease(lease, now)?.lease_expires_at;
        let expires = now + by;
        if let Some(old) = old {
            state.leases.remove(&(old, lease.task_id));
        }
        state.leases.insert((expires, lease.task_id));
        let stored = state.tasks.get_mut(&lease.task_id).expect("checked");
        stored.task.lease_expires_at = Some(expires);
        stored.task.updated_at = now;
        Ok(expires)
    }

    async fn complete(
        &self,
        lease: &LeaseRef,
        result: Option<serde_json::Value>,
    ) -> Result<Task, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        state.check_lease(lease, now)?;
        state
            .tasks
            .get_mut(&lease.task_id)
            .expect("checked")
            .task
            .result = result;
        let task = state.move_task(lease.task_id, TaskState::Succeeded, now, now);
        drop(state);
        self.emit([BusEvent::task_updated(&task)]);
        Ok(task)
    }

    async fn complete_batch(
        &self,
        completions: &[(LeaseRef, Option<serde_json::Value>)],
    ) -> Result<Vec<Result<Task, StoreError>>, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        let results: Vec<Result<Task, StoreError>> = completions
            .iter()
            .map(|(lease, result)| {
                state.check_lease(lease, now)?;
                state
                    .tasks
                    .get_mut(&lease.task_id)
                    .expect("checked")
                    .task
                    .result = result.clone();
                Ok(state.move_task(lease.task_id, TaskState::Succeeded, now, now))
            })
            .collect();
        drop(state);
        self.emit(results.iter().flatten().map(BusEvent::task_updated));
        Ok(results)
    }

    async fn fail(
        &self,
        lease: &LeaseRef,
        error: &str,
        retryable: bool,
        policy: &RetryPolicy,
    ) -> Result<Task, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        let current = state.check_lease(lease, now)?;
        let (next, run_at) = if retryable {
            match policy.decide(current.id, current.attempts, current.max_attempts) {
                FailDecision::Retry { delay } => (TaskState::Pending, now + delay),
                FailDecision::DeadLetter => (TaskState::DeadLettered, now),
            }
        } else {
            (TaskState::Failed, now)
        };
        state
            .tasks
            .get_mut(&lease.task_id)
            .expect("checked")
            .task
            .last_error = Some(truncate_error(error));
        let task = state.move_task(lease.task_id, next, now, run_at);
        drop(state);
        self.emit([BusEvent::task_updated(&task)]);
        Ok(task)
    }

    async fn release(&self, lease: &LeaseRef) -> Result<Task, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        state.check_lease(lease, now)?;
        let stored = state.tasks.get_mut(&lease.task_id).expect("checked");
        stored.task.attempts = stored.task.attempts.saturating_sub(1);
        let task = state.move_task(lease.task_id, TaskState::Pending, now, now);
        drop(state);
        self.emit(BusEvent::task_changes(std::slice::from_ref(&task)));
        Ok(task)
    }

    async fn cancel(&self, filter: &TaskFilter) -> Result<u64, StoreError> {
        let now = self.now();
        let cancelled = self.lock().cancel_locked(filter, now);
        self.emit(cancelled.iter().map(BusEvent::task_updated));
        Ok(cancelled.len() as u64)
    }

    async fn requeue_expired(
        &self,
        policy: &RetryPolicy,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        let expired: Vec<TaskId> = state
            .leases
            .iter()
            .take_while(|(expires, _)| *expires <= now)
            .take(limit)
            .map(|(_, id)| *id)
            .collect();
        let mut changed = Vec::with_capacity(expired.len());
        for id in expired {
            let current = &state.tasks[&id].task;
            let decision = policy.on_lease_expired(current.attempts, current.max_attempts);
            state
                .tasks
                .get_mut(&id)
                .expect("leased task exists")
                .task
                .last_error = Some("lease expired".to_owned());
            let task = match decision {
                FailDecision::Retry { delay } => {
                    state.move_task(id, TaskState::Pending, now, now + delay)
                }
                FailDecision::DeadLetter => state.move_task(id, TaskState::DeadLettered, now, now),
            };
            changed.push(task);
        }
        drop(state);
        self.emit(BusEvent::task_changes(&changed));
        Ok(changed)
    }

    async fn redrive(&self, id: TaskId) -> Result<Task, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        let current = &state
            .tasks
            .get(&id)
            .ok_or_else(|| StoreError::not_found("task", id))?
            .task;
        if !matches!(current.state, TaskState::DeadLettered | TaskState::Failed) {
            return Err(StoreError::Invalid(format!(
                "task {id} is {} and only dead-lettered or failed tasks can be re-driven",
                current.state
            )));
        }
        if let Some(key) = current.unique_key.clone() {
            if state.unique.contains_key(&key) {
                return Err(StoreError::conflict("task", id));
            }
            state.unique.insert(key, id);
        }
        state.tasks.get_mut(&id).expect("exists").task.attempts = 0;
        let task = state.move_task(id, TaskState::Pending, now, now);
        drop(state);
        self.emit(BusEvent::task_changes(std::slice::from_ref(&task)));
        Ok(task)
    }

    async fn get(&self, id: TaskId) -> Result<Task, StoreError> {
        self.lock()
            .tasks
            .get(&id)
            .map(|s| s.task.clone())
            .ok_or_else(|| StoreError::not_found("task", id))
    }

    async fn list(
        &self,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> Result<Page<Task>, StoreError> {
        let limit = page.effective_limit();
        let after = parse_cursor(page.after.as_deref())?;
        let state = self.lock();
        let items: Vec<Task> = state
            .tasks
            .values()
            .rev()
            .filter(|s| after.is_none_or(|a| s.task.id < a))
            .filter(|s| filter.matches(&s.task))
            .take(limit + 1)
            .map(|s| s.task.clone())
            .collect();
        Ok(Page::from_overfetch(items, limit, |t| t.id.to_string()))
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let now = self.now();
        let state = self.lock();
        let mut stats = QueueStats::default();
        for s in TaskState::ALL {
            stats.by_state.insert(s, 0);
        }
        for stored in state.tasks.values() {
            *stats.by_state.entry(stored.task.state).or_default() += 1;
            if stored.task.state == TaskState::Pending {
                stats.oldest_pending_run_at = Some(
                    stats
                        .oldest_pending_run_at
                        .map_or(stored.task.run_at, |o| o.min(stored.task.run_at)),
                );
            }
        }
        stats.expired_leases = state.leases.iter().take_while(|(e, _)| *e <= now).count() as u64;
        Ok(stats)
    }

    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let doomed: Vec<TaskId> = state
            .tasks
            .values()
            .filter(|s| {
                matches!(s.task.state, TaskState::Succeeded | TaskState::Cancelled)
                    && s.task.updated_at < before
            })
            .take(limit)
            .map(|s| s.task.id)
            .collect();
        for id in &doomed {
            state.tasks.remove(id);
        }
        Ok(doomed.len() as u64)
    }
}
