//! [`ExperimentStore`] on Redis.
//!
//! `exp:<id>` is a hash (j record JSON, v version, ph phase); `exps` and `exps:<phase>` are
//! lex indexes of ids (all, and per phase); `ev:<id>` is a zset of event JSON by sequence
//! number. A commit is one script: compare-and-set, events, cancellation and enqueue.

use async_trait::async_trait;
use phoenix_core::error::StoreError;
use phoenix_core::experiment::{Experiment, ExperimentEvent, Phase};
use phoenix_core::ids::ExperimentId;
use phoenix_core::page::{Page, PageRequest};
use phoenix_core::store::{BusEvent, Commit, CommitReceipt, ExperimentFilter, ExperimentStore};

use crate::bus::event_line;
use crate::codec::{
    Status, corrupt, decode_json, encode_json, enqueue_results, parse_cursor, payloads, push_tasks,
    text,
};
use crate::scripts::SCRIPTS;
use crate::{MAX_EVENTS_PER_EXPERIMENT, RedisStore};

fn status_error(status: &Status, id: ExperimentId) -> StoreError {
    match status {
        Status::NotFound => StoreError::not_found("experiment", id),
        Status::Conflict => StoreError::conflict("experiment", id),
        other => corrupt(format!("unexpected script status {other:?}")),
    }
}

#[async_trait]
impl ExperimentStore for RedisStore {
    async fn create(
        &self,
        experiment: &Experiment,
        event: &ExperimentEvent,
    ) -> Result<(), StoreError> {
        let json = encode_json(experiment)?;
        let event_json = encode_json(event)?;
        let announce = event_line(&BusEvent::Experiment {
            event: event.clone(),
            version: experiment.version,
        })?;
        let reply = self
            .run(&SCRIPTS.experiment_create, |inv| {
                inv.arg(experiment.id.to_string())
                    .arg(&json)
                    .arg(experiment.version)
                    .arg(experiment.phase.as_str())
                    .arg(event.seq)
                    .arg(&event_json)
                    .arg(&announce);
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(()),
            ref other => Err(status_error(other, experiment.id)),
        }
    }

    async fn get(&self, id: ExperimentId) -> Result<Experiment, StoreError> {
        let json: Option<String> = self
            .query(
                redis::cmd("HGET")
                    .arg(self.key(&["exp", &id.to_string()]))
                    .arg("j"),
            )
            .await?;
        match json {
            Some(json) => decode_json(&json),
            None => Err(StoreError::not_found("experiment", id)),
        }
    }

    async fn list(
        &self,
        filter: &ExperimentFilter,
        page: &PageRequest,
    ) -> Result<Page<Experiment>, StoreError> {
        let limit = page.effective_limit();
        let after: Option<ExperimentId> = parse_cursor(page.after.as_deref())?;
        let mut phases: Vec<Phase> = filter.phases.clone();
        phases.sort_by_key(|p| p.as_str());
        phases.dedup();
        let reply = self
            .run(&SCRIPTS.experiment_list, |inv| {
                inv.arg(after.map(|a| a.to_string()).unwrap_or_default())
                    .arg(limit + 1);
                for phase in &phases {
                    inv.arg(phase.as_str());
                }
            })
            .await?;
        let items = reply
            .rest
            .map(|v| decode_json::<Experiment>(&text(&v)?))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, limit, |e| e.id.to_string()))
    }

    async fn commit(&self, commit: &Commit) -> Result<CommitReceipt, StoreError> {
        let id = commit.experiment.id;
        let json = encode_json(&commit.experiment)?;
        let events = commit
            .events
            .iter()
            .map(|event| {
                Ok((
                    event.seq,
                    encode_json(event)?,
                    event_line(&BusEvent::Experiment {
                        event: event.clone(),
                        version: commit.experiment.version,
                    })?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let payloads = payloads(&commit.tasks)?;
        let mut reply = self
            .run(&SCRIPTS.experiment_commit, |inv| {
                inv.arg(id.to_string())
                    .arg(commit.expected_version)
                    .arg(&json)
                    .arg(commit.experiment.version)
                    .arg(commit.experiment.phase.as_str())
                    .arg(if commit.cancel_open_tasks { "1" } else { "0" })
                    .arg(events.len())
                    .arg(MAX_EVENTS_PER_EXPERIMENT);
                for (seq, event, announce) in &events {
                    inv.arg(*seq).arg(event).arg(announce);
                }
                push_tasks(inv, &commit.tasks, &payloads);
            })
            .await?;
        if reply.status != Status::Ok {
            return Err(status_error(&reply.status, id));
        }
        let cancelled =
            u64::try_from(reply.next_int()?).map_err(|_| corrupt("negative cancel count"))?;
        let enqueued = enqueue_results(&commit.tasks, reply.next()?)?;
        Ok(CommitReceipt {
            cancelled,
            enqueued,
        })
    }

    async fn delete(&self, id: ExperimentId, expected_version: u64) -> Result<(), StoreError> {
        let announce = event_line(&BusEvent::ExperimentDeleted { experiment_id: id })?;
        let reply = self
            .run(&SCRIPTS.experiment_delete, |inv| {
                inv.arg(id.to_string()).arg(expected_version).arg(&announce);
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(()),
            ref other => Err(status_error(other, id)),
        }
    }

    async fn events(
        &self,
        id: ExperimentId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ExperimentEvent>, StoreError> {
        let key = self.key(&["exp", &id.to_string()]);
        let events_key = self.key(&["ev", &id.to_string()]);
        let (exists, events): (bool, Vec<String>) = self
            .query_pipeline(
                redis::pipe()
                    .cmd("EXISTS")
                    .arg(&key)
                    .cmd("ZRANGEBYSCORE")
                    .arg(&events_key)
                    .arg(format!("({after_seq}"))
                    .arg("+inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await?;
        if !exists {
            return Err(StoreError::not_found("experiment", id));
        }
        events.iter().map(|e| decode_json(e)).collect()
    }
}
