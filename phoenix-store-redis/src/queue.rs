//! [`TaskQueue`] on Redis: one script per step (see `lua/lib.lua` for the key layout).
//!
//! Decisions stay in Rust: `fail` and `requeue_expired` read the attempts, ask the
//! [`RetryPolicy`], then a script applies the decision only if the lease it was decided on
//! is still the current one.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use phoenix_core::error::StoreError;
use phoenix_core::ids::{AgentId, LeaseToken, TaskId};
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::TaskQueue;
use phoenix_core::task::{
    EnqueueResult, FailDecision, LeaseRef, LeasedTask, NewTask, QueueStats, RetryPolicy, Task,
    TaskFilter, TaskState,
};

use crate::RedisStore;
use crate::codec::{
    self, Fields, Header, Status, corrupt, enqueue_results, from_millis, parse_cursor, payloads,
    push_tasks, task_value, truncate_error,
};
use crate::scripts::SCRIPTS;

/// Most tasks handed out by one claim, whatever is asked.
pub(crate) const MAX_CLAIM: usize = 1_000;

/// Index entries a list scans per script call (bounds the time Redis spends in one call).
const SCAN_BUDGET: usize = 2_000;

fn millis(d: Duration) -> i64 {
    d.num_milliseconds()
}

/// The `Status` of a fenced task operation as an error.
fn fenced(status: &Status, task: TaskId) -> StoreError {
    match status {
        Status::NotFound => StoreError::not_found("task", task),
        Status::LeaseLost => StoreError::LeaseLost { task },
        other => corrupt(format!("unexpected script status {other:?}")),
    }
}

impl RedisStore {
    /// Enqueue replies: results per task.
    pub(crate) async fn enqueue_tasks(
        &self,
        tasks: &[NewTask],
    ) -> Result<Vec<EnqueueResult>, StoreError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let payloads = payloads(tasks)?;
        let mut reply = self
            .run(&SCRIPTS.enqueue, |inv| push_tasks(inv, tasks, &payloads))
            .await?;
        enqueue_results(tasks, reply.next()?)
    }

    /// The filters of a task list, as the `scan` script takes them, and the owner index to
    /// walk (the narrowest one the filter names).
    fn task_scan(filter: &TaskFilter) -> (String, Vec<(&'static str, String)>) {
        let index = if let Some(agent) = filter.agent_id {
            format!("ta:{agent}")
        } else if let Some(experiment) = filter.experiment_id {
            format!("tx:{experiment}")
        } else if let Some(deployment) = filter.deployment_id {
            format!("td:{deployment}")
        } else {
            "tasks".to_owned()
        };
        let opt = |v: Option<String>| v.unwrap_or_default();
        let filters = vec![
            ("a", opt(filter.agent_id.map(|a| a.to_string()))),
            ("x", opt(filter.experiment_id.map(|e| e.to_string()))),
            ("d", opt(filter.deployment_id.map(|d| d.to_string()))),
            (
                "s",
                filter
                    .states
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("kd", opt(filter.kind.map(|k| k.as_str().to_owned()))),
        ];
        (index, filters)
    }
}

#[async_trait]
impl TaskQueue for RedisStore {
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<Vec<EnqueueResult>, StoreError> {
        self.enqueue_tasks(tasks).await
    }

    async fn claim(
        &self,
        agent: AgentId,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedTask>, StoreError> {
        let max = max.min(MAX_CLAIM);
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut reply = self
            .run(&SCRIPTS.claim, |inv| {
                inv.arg(agent.to_string()).arg(max).arg(millis(lease));
                for _ in 0..max {
                    inv.arg(LeaseToken::new().to_string());
                }
            })
            .await?;
        if reply.status != Status::Ok {
            return Err(corrupt(format!("claim replied {:?}", reply.status)));
        }
        reply.rest.by_ref().map(codec::leased_task).collect()
    }

    async fn extend(&self, lease: &LeaseRef, by: Duration) -> Result<DateTime<Utc>, StoreError> {
        let mut reply = self
            .run(&SCRIPTS.extend, |inv| {
                inv.arg(lease.task_id.to_string())
                    .arg(lease.token.to_string())
                    .arg(millis(by));
            })
            .await?;
        match reply.status {
            Status::Ok => from_millis(reply.next_int()?),
            ref other => Err(fenced(other, lease.task_id)),
        }
    }

    async fn complete(
        &self,
        lease: &LeaseRef,
        result: Option<serde_json::Value>,
    ) -> Result<Task, StoreError> {
        let result = result.as_ref().map(codec::encode_json).transpose()?;
        let mut reply = self
            .run(&SCRIPTS.complete, |inv| {
                inv.arg(lease.task_id.to_string())
                    .arg(lease.token.to_string())
                    .arg(if result.is_some() { "1" } else { "0" })
                    .arg(result.as_deref().unwrap_or(""));
            })
            .await?;
        match reply.status {
            Status::Ok => task_value(reply.next()?),
            ref other => Err(fenced(other, lease.task_id)),
        }
    }

    async fn complete_batch(
        &self,
        completions: &[(LeaseRef, Option<serde_json::Value>)],
    ) -> Result<Vec<Result<Task, StoreError>>, StoreError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let results = completions
            .iter()
            .map(|(_, result)| result.as_ref().map(codec::encode_json).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let mut reply = self
            .run(&SCRIPTS.complete_batch, |inv| {
                for ((lease, _), result) in completions.iter().zip(&results) {
                    inv.arg(lease.task_id.to_string())
                        .arg(lease.token.to_string())
                        .arg(if result.is_some() { "1" } else { "0" })
                        .arg(result.as_deref().unwrap_or(""));
                }
            })
            .await?;
        if reply.status != Status::Ok {
            return Err(corrupt("complete_batch replied with a failure status"));
        }
        let mut out = Vec::with_capacity(completions.len());
        for (lease, _) in completions {
            let status = reply.next_text()?;
            let value = reply.next()?;
            out.push(match status.as_str() {
                "ok" => Ok(task_value(value)?),
                "not_found" => Err(StoreError::not_found("task", lease.task_id)),
                "lease_lost" => Err(StoreError::LeaseLost {
                    task: lease.task_id,
                }),
                other => return Err(corrupt(format!("complete_batch status `{other}`"))),
            });
        }
        Ok(out)
    }

    async fn fail(
        &self,
        lease: &LeaseRef,
        error: &str,
        retryable: bool,
        policy: &RetryPolicy,
    ) -> Result<Task, StoreError> {
        let (attempts, state, delay) = if retryable {
            let scalars: Option<String> = self
                .query(
                    redis::cmd("HGET")
                        .arg(self.key(&["t", &lease.task_id.to_string()]))
                        .arg("h"),
                )
                .await?;
            let Some(scalars) = scalars else {
                return Err(StoreError::not_found("task", lease.task_id));
            };
            let header = Header::parse(&scalars)?;
            let (attempts, max) = (header.attempts, header.max_attempts);
            match policy.decide(lease.task_id, attempts, max) {
                FailDecision::Retry { delay } => {
                    (attempts.to_string(), TaskState::Pending, millis(delay))
                }
                FailDecision::DeadLetter => (attempts.to_string(), TaskState::DeadLettered, 0),
            }
        } else {
            (String::new(), TaskState::Failed, 0)
        };
        let error = truncate_error(error);
        let mut reply = self
            .run(&SCRIPTS.fail, |inv| {
                inv.arg(lease.task_id.to_string())
                    .arg(lease.token.to_string())
                    .arg(&attempts)
                    .arg(state.as_str())
                    .arg(delay)
                    .arg(&error);
            })
            .await?;
        match reply.status {
            Status::Ok => task_value(reply.next()?),
            ref other => Err(fenced(other, lease.task_id)),
        }
    }

    async fn release(&self, lease: &LeaseRef) -> Result<Task, StoreError> {
        let mut reply = self
            .run(&SCRIPTS.release, |inv| {
                inv.arg(lease.task_id.to_string())
                    .arg(lease.token.to_string());
            })
            .await?;
        match reply.status {
            Status::Ok => task_value(reply.next()?),
            ref other => Err(fenced(other, lease.task_id)),
        }
    }

    async fn cancel(&self, filter: &TaskFilter) -> Result<u64, StoreError> {
        let (index, filters) = Self::task_scan(filter);
        let index = if index == "tasks" {
            "open".to_owned()
        } else {
            index
        };
        let mut reply = self
            .run(&SCRIPTS.cancel, |inv| {
                inv.arg(&index);
                for (field, values) in filters.iter().filter(|(f, _)| *f != "s") {
                    inv.arg(*field).arg(values);
                }
            })
            .await?;
        u64::try_from(reply.next_int()?).map_err(|_| corrupt("negative count"))
    }

    async fn requeue_expired(
        &self,
        policy: &RetryPolicy,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut read = self
            .run(&SCRIPTS.expired, |inv| {
                inv.arg(limit);
            })
            .await?;
        let mut decisions = Vec::new();
        while let Some(id) = read.rest.next() {
            let id = codec::text(&id)?;
            let token = read.next_text()?;
            let attempts: u32 = read
                .next_text()?
                .parse()
                .map_err(|_| corrupt("bad attempts"))?;
            let max: u32 = read
                .next_text()?
                .parse()
                .map_err(|_| corrupt("bad max attempts"))?;
            let (state, delay) = match policy.on_lease_expired(attempts, max) {
                FailDecision::Retry { delay } => (TaskState::Pending, millis(delay)),
                FailDecision::DeadLetter => (TaskState::DeadLettered, 0),
            };
            decisions.push((id, token, state, delay));
        }
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        let applied = self
            .run(&SCRIPTS.requeue, |inv| {
                for (id, token, state, delay) in &decisions {
                    inv.arg(id).arg(token).arg(state.as_str()).arg(*delay);
                }
            })
            .await?;
        applied.rest.map(task_value).collect()
    }

    async fn redrive(&self, id: TaskId) -> Result<Task, StoreError> {
        let mut reply = self
            .run(&SCRIPTS.redrive, |inv| {
                inv.arg(id.to_string());
            })
            .await?;
        match reply.status {
            Status::Ok => task_value(reply.next()?),
            Status::NotFound => Err(StoreError::not_found("task", id)),
            Status::Conflict => Err(StoreError::conflict("task", id)),
            Status::Invalid => Err(StoreError::Invalid(format!(
                "task {id} is {} and only dead-lettered or failed tasks can be re-driven",
                reply.next_text()?
            ))),
            Status::LeaseLost => Err(corrupt("redrive replied lease_lost")),
        }
    }

    async fn get(&self, id: TaskId) -> Result<Task, StoreError> {
        let value: redis::Value = self
            .query(redis::cmd("HGETALL").arg(self.key(&["t", &id.to_string()])))
            .await?;
        let fields = Fields::parse(value)?;
        if fields.opt("h").is_none() {
            return Err(StoreError::not_found("task", id));
        }
        codec::task(&fields)
    }

    async fn list(
        &self,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> Result<Page<Task>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<TaskId> = parse_cursor(page.after.as_deref())?;
        let (index, filters) = Self::task_scan(filter);
        let records = self
            .scan(
                &index,
                "t",
                after.map(|a| a.to_string()),
                limit + 1,
                &filters,
            )
            .await?;
        let items = records
            .iter()
            .map(codec::task)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, limit, |t| t.id.to_string()))
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let mut reply = self.run(&SCRIPTS.stats, |_| {}).await?;
        let mut stats = QueueStats::default();
        for state in TaskState::ALL {
            let n = u64::try_from(reply.next_int()?).map_err(|_| corrupt("negative count"))?;
            stats.by_state.insert(state, n);
        }
        let oldest = reply.next_text()?;
        if !oldest.is_empty() {
            let ms: i64 = oldest
                .parse()
                .map_err(|_| corrupt(format!("bad run_at `{oldest}`")))?;
            stats.oldest_pending_run_at = Some(from_millis(ms)?);
        }
        stats.expired_leases =
            u64::try_from(reply.next_int()?).map_err(|_| corrupt("negative count"))?;
        Ok(stats)
    }

    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let mut reply = self
            .run(&SCRIPTS.prune, |inv| {
                inv.arg(before.timestamp_millis()).arg(limit);
            })
            .await?;
        u64::try_from(reply.next_int()?).map_err(|_| corrupt("negative count"))
    }
}

impl RedisStore {
    /// Reads up to `want` records from the lex index `index`, newest id first, after
    /// `after`, passing `filters`; several script calls when the filters are selective.
    pub(crate) async fn scan(
        &self,
        index: &str,
        record: &str,
        mut after: Option<String>,
        mut want: usize,
        filters: &[(&str, String)],
    ) -> Result<Vec<Fields>, StoreError> {
        let mut out = Vec::new();
        while want > 0 {
            let mut reply = self
                .run(&SCRIPTS.scan, |inv| {
                    inv.arg(index)
                        .arg(record)
                        .arg(after.as_deref().unwrap_or(""))
                        .arg(want)
                        .arg(SCAN_BUDGET);
                    for (field, values) in filters {
                        inv.arg(*field).arg(values);
                    }
                })
                .await?;
            let resume = reply.next_text()?;
            for value in reply.rest.by_ref() {
                out.push(Fields::parse(value)?);
                want = want.saturating_sub(1);
            }
            if resume.is_empty() {
                break;
            }
            after = Some(resume);
        }
        Ok(out)
    }
}
