//! Group commit of task completions.
//!
//! Agents report their tasks one by one over HTTP, so a replica serving many agents sees
//! many concurrent `succeeded` reports. Each would be its own store write (one transaction
//! on PostgreSQL, one script on Redis); grouped, they are one [`TaskQueue::complete_batch`]
//! call, which fences every lease on its own token and expiry exactly as
//! [`TaskQueue::complete`] does, so a stale lease in a group is refused alone.
//!
//! No wait is added to buy a group: the first completion to arrive starts a flush at once;
//! completions that arrive while a flush is in flight queue up and go together in the next
//! one (at most [`MAX_GROUP`] per call). Under no concurrency every completion is its own
//! flush, as before; under load the group grows with the store's latency. The flush runs
//! as its own task, so a request cancelled mid-flush (a client that hung up) cannot strand
//! the completions queued behind it.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::store::TaskQueue;
use crate::task::{LeaseRef, Task};

/// Most completions one store call carries.
pub const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<Task, StoreError>>;

/// One replica's queue of completions waiting for a flush.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queued: Vec<(LeaseRef, Option<serde_json::Value>, Reply)>,
    flushing: bool,
}

impl GroupCommit {
    /// Completes `lease` with `result`, grouped with whatever else is completing: the
    /// task, or the error [`TaskQueue::complete`] would have given. A failure of the whole
    /// store call (`Unavailable`, `Corrupt`) is every member's error.
    pub(crate) async fn complete(
        self: &Arc<Self>,
        queue: &Arc<dyn TaskQueue>,
        lease: LeaseRef,
        result: Option<serde_json::Value>,
    ) -> Result<Task, StoreError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.queued.push((lease, result, reply));
            !std::mem::replace(&mut state.flushing, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).flush(Arc::clone(queue)));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the store call completing this task was abandoned".into(),
            ))
        })
    }

    /// Flushes groups until nothing is queued.
    async fn flush(self: Arc<Self>, queue: Arc<dyn TaskQueue>) {
        // Should a store call panic, the guard hands the flush on (and drops the replies
        // of the group in flight, which then read as `Unavailable`).
        let _guard = FlushGuard(&self);
        loop {
            let group: Vec<_> = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if state.queued.is_empty() {
                    state.flushing = false;
                    return;
                }
                let n = state.queued.len().min(MAX_GROUP);
                state.queued.drain(..n).collect()
            };
            let (completions, replies): (Vec<_>, Vec<_>) = group
                .into_iter()
                .map(|(lease, result, reply)| ((lease, result), reply))
                .unzip();
            match queue.complete_batch(&completions).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(match &e {
                            StoreError::Corrupt(_) => StoreError::Corrupt(message.clone().into()),
                            _ => StoreError::Unavailable(message.clone().into()),
                        }));
                    }
                }
            }
        }
    }
}

/// Clears the flushing flag if a flush ends by panicking, so that the next completion
/// starts a new one.
struct FlushGuard<'a>(&'a GroupCommit);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.flushing = false;
            state.queued.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::MemoryStore;
    use crate::ids::{AgentId, LeaseToken, TaskId};
    use crate::page::{Page, PageRequest};
    use crate::store::Stores;
    use crate::task::{
        EnqueueResult, LeasedTask, NewTask, QueueStats, RetryPolicy, TaskFilter, TaskPayload,
    };

    fn lease_of(t: &LeasedTask) -> LeaseRef {
        LeaseRef {
            task_id: t.task.id,
            token: t.lease_token,
        }
    }

    /// A queue that counts `complete_batch` calls and the largest group, and is slow
    /// enough for completions to pile up behind a flush.
    struct Counting {
        inner: Arc<dyn TaskQueue>,
        calls: AtomicUsize,
        largest: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TaskQueue for Counting {
        async fn enqueue(&self, tasks: &[NewTask]) -> Result<Vec<EnqueueResult>, StoreError> {
            self.inner.enqueue(tasks).await
        }
        async fn claim(
            &self,
            agent: AgentId,
            max: usize,
            lease: Duration,
        ) -> Result<Vec<LeasedTask>, StoreError> {
            self.inner.claim(agent, max, lease).await
        }
        async fn extend(
            &self,
            lease: &LeaseRef,
            by: Duration,
        ) -> Result<DateTime<Utc>, StoreError> {
            self.inner.extend(lease, by).await
        }
        async fn complete(
            &self,
            lease: &LeaseRef,
            result: Option<serde_json::Value>,
        ) -> Result<Task, StoreError> {
            self.inner.complete(lease, result).await
        }
        async fn complete_batch(
            &self,
            completions: &[(LeaseRef, Option<serde_json::Value>)],
        ) -> Result<Vec<Result<Task, StoreError>>, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(completions.len(), Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            self.inner.complete_batch(completions).await
        }
        async fn fail(
            &self,
            lease: &LeaseRef,
            error: &str,
            retryable: bool,
            policy: &RetryPolicy,
        ) -> Result<Task, StoreError> {
            self.inner.fail(lease, error, retryable, policy).await
        }
        async fn release(&self, lease: &LeaseRef) -> Result<Task, StoreError> {
            self.inner.release(lease).await
        }
        async fn cancel(&self, filter: &TaskFilter) -> Result<u64, StoreError> {
            self.inner.cancel(filter).await
        }
        async fn requeue_expired(
            &self,
            policy: &RetryPolicy,
            limit: usize,
        ) -> Result<Vec<Task>, StoreError> {
            self.inner.requeue_expired(policy, limit).await
        }
        async fn redrive(&self, id: TaskId) -> Result<Task, StoreError> {
            self.inner.redrive(id).await
        }
        async fn get(&self, id: TaskId) -> Result<Task, StoreError> {
            self.inner.get(id).await
        }
        async fn list(
            &self,
            filter: &TaskFilter,
            page: &PageRequest,
        ) -> Result<Page<Task>, StoreError> {
            self.inner.list(filter, page).await
        }
        async fn stats(&self) -> Result<QueueStats, StoreError> {
            self.inner.stats().await
        }
        async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
            self.inner.prune(before, limit).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_completions_share_store_calls_and_keep_their_own_fences() {
        let stores: Stores = MemoryStore::new().stores();
        let counting = Arc::new(Counting {
            inner: stores.queue.clone(),
            calls: AtomicUsize::new(0),
            largest: AtomicUsize::new(0),
        });
        let queue: Arc<dyn TaskQueue> = counting.clone();
        let agent = AgentId::new();
        let tasks: Vec<_> = (0..40)
            .map(|_| NewTask::new(agent, TaskPayload::CollectSnapshot {}, 0))
            .collect();
        queue.enqueue(&tasks).await.unwrap();
        let leased = queue.claim(agent, 40, Duration::seconds(60)).await.unwrap();
        assert_eq!(leased.len(), 40);
        let group = Arc::new(GroupCommit::default());
        // The last one reports with a lease token that is not the task's: refused alone.
        let completions = leased.iter().enumerate().map(|(i, t)| {
            let mut lease = lease_of(t);
            if i == 39 {
                lease.token = LeaseToken::new();
            }
            let (group, queue) = (group.clone(), queue.clone());
            async move { group.complete(&queue, lease, None).await }
        });
        let results = futures::future::join_all(completions).await;
        for (i, r) in results.iter().enumerate() {
            if i == 39 {
                assert!(matches!(r, Err(StoreError::LeaseLost { .. })), "{r:?}");
            } else {
                let task = r.as_ref().unwrap();
                assert_eq!(task.id, leased[i].task.id);
                assert_eq!(task.state, crate::task::TaskState::Succeeded);
            }
        }
        let calls = counting.calls.load(Ordering::SeqCst);
        assert!(calls < 40, "grouped into {calls} store calls");
        assert!(counting.largest.load(Ordering::SeqCst) > 1);
        // Idle again: a lone completion is flushed at once, on its own.
        queue
            .enqueue(&[NewTask::new(agent, TaskPayload::CollectSnapshot {}, 0)])
            .await
            .unwrap();
        let lone = queue
            .claim(agent, 1, Duration::seconds(60))
            .await
            .unwrap()
            .remove(0);
        let task = group.complete(&queue, lease_of(&lone), None).await.unwrap();
        assert_eq!(task.id, lone.task.id);
        assert_eq!(counting.calls.load(Ordering::SeqCst), calls + 1);
    }
}
