//! Decoding script replies and records; mapping driver errors to [`StoreError`].
//!
//! Everything Redis returns is checked: a missing field, a malformed number or JSON that
//! does not decode is `Corrupt`, never a panic.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use phoenix_core::error::StoreError;
use phoenix_core::ids::{LeaseToken, TaskId};
use phoenix_core::task::{EnqueueResult, LeasedTask, NewTask, Task, TaskState};
use redis::Value;
use serde::de::DeserializeOwned;

/// Maps a driver error: a reply we cannot read is `Corrupt`; everything else (IO, timeouts,
/// a server refusing while loading or out of memory, a script error) is `Unavailable`.
pub(crate) fn map_error(error: redis::RedisError) -> StoreError {
    match error.kind() {
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
            StoreError::corrupt(error)
        }
        _ => StoreError::unavailable(error),
    }
}

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::corrupt(what.into())
}

/// A script's status (the first element of its reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    NotFound,
    Conflict,
    LeaseLost,
    Invalid,
}

/// A script reply: its status and the rest.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: Status,
    pub(crate) rest: std::vec::IntoIter<Value>,
}

impl Reply {
    pub(crate) fn parse(value: Value) -> Result<Self, StoreError> {
        let Value::Array(items) = value else {
            return Err(corrupt(format!("script replied {value:?}, not an array")));
        };
        let mut rest = items.into_iter();
        let status = match rest.next().as_ref().map(text).transpose()?.as_deref() {
            Some("ok") => Status::Ok,
            Some("not_found") => Status::NotFound,
            Some("conflict") => Status::Conflict,
            Some("lease_lost") => Status::LeaseLost,
            Some("invalid") => Status::Invalid,
            other => return Err(corrupt(format!("unknown script status {other:?}"))),
        };
        Ok(Self { status, rest })
    }

    /// The next element, or `Corrupt`.
    pub(crate) fn next(&mut self) -> Result<Value, StoreError> {
        self.rest
            .next()
            .ok_or_else(|| corrupt("script reply is shorter than expected"))
    }

    pub(crate) fn next_text(&mut self) -> Result<String, StoreError> {
        text(&self.next()?)
    }

    pub(crate) fn next_int(&mut self) -> Result<i64, StoreError> {
        int(&self.next()?)
    }
}

/// A string reply.
pub(crate) fn text(value: &Value) -> Result<String, StoreError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes.clone()).map_err(|_| corrupt("reply is not UTF-8"))
        }
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(n) => Ok(n.to_string()),
        other => Err(corrupt(format!("expected a string, got {other:?}"))),
    }
}

/// An integer reply (or a string holding one).
pub(crate) fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => text(other)?
            .parse()
            .map_err(|_| corrupt(format!("expected an integer, got {other:?}"))),
    }
}

/// The elements of an array reply.
pub(crate) fn array(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(corrupt(format!("expected an array, got {other:?}"))),
    }
}

/// A hash, from an `HGETALL` reply.
#[derive(Debug, Default)]
pub(crate) struct Fields(HashMap<String, String>);

impl Fields {
    pub(crate) fn parse(value: Value) -> Result<Self, StoreError> {
        let items = array(value)?;
        if items.len() % 2 != 0 {
            return Err(corrupt("hash reply has an odd number of elements"));
        }
        let mut map = HashMap::with_capacity(items.len() / 2);
        let mut it = items.iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            map.insert(text(k)?, text(v)?);
        }
        Ok(Self(map))
    }

    pub(crate) fn opt(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub(crate) fn get(&self, field: &str) -> Result<&str, StoreError> {
        self.opt(field)
            .ok_or_else(|| corrupt(format!("stored record has no field `{field}`")))
    }

    pub(crate) fn parse_field<T: FromStr>(&self, field: &str) -> Result<T, StoreError> {
        let raw = self.get(field)?;
        raw.parse()
            .map_err(|_| corrupt(format!("field `{field}` holds `{raw}`")))
    }

    pub(crate) fn json<T: DeserializeOwned>(&self, field: &str) -> Result<T, StoreError> {
        decode_json(self.get(field)?)
    }

    pub(crate) fn opt_json<T: DeserializeOwned>(
        &self,
        field: &str,
    ) -> Result<Option<T>, StoreError> {
        self.opt(field).map(decode_json).transpose()
    }
}

pub(crate) fn decode_json<T: DeserializeOwned>(raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(StoreError::corrupt)
}

pub(crate) fn encode_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    // Serializing Phoenix's own types cannot fail (string keys, no custom serializers that
    // error), but a typed error is still better than a panic.
    serde_json::to_string(value).map_err(StoreError::corrupt)
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| corrupt(format!("timestamp {ms} out of range")))
}

/// A task's scalars, from the `h` field of its hash (see `lua/lib.lua`).
pub(crate) struct Header<'a> {
    pub(crate) state: TaskState,
    pub(crate) attempts: u32,
    pub(crate) max_attempts: u32,
    priority: i16,
    run_at: i64,
    created: i64,
    updated: i64,
    lease_expires: Option<i64>,
    lease_token: Option<&'a str>,
    agent: &'a str,
}

impl<'a> Header<'a> {
    pub(crate) fn parse(raw: &'a str) -> Result<Self, StoreError> {
        let bad = || corrupt(format!("task scalars `{raw}`"));
        let mut words = raw.split(' ');
        let mut word = || words.next().ok_or_else(bad);
        let state: TaskState = word()?.parse().map_err(|_| bad())?;
        let attempts = word()?.parse().map_err(|_| bad())?;
        let max_attempts = word()?.parse().map_err(|_| bad())?;
        let priority = word()?.parse().map_err(|_| bad())?;
        let run_at = word()?.parse().map_err(|_| bad())?;
        let created = word()?.parse().map_err(|_| bad())?;
        let updated = word()?.parse().map_err(|_| bad())?;
        let lease_expires = match word()? {
            "-" => None,
            l => Some(l.parse().map_err(|_| bad())?),
        };
        let lease_token = match word()? {
            "-" => None,
            k => Some(k),
        };
        let agent = word()?;
        // The experiment (last word) is for the scripts' bus lines and filters.
        word()?;
        if words.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            state,
            attempts,
            max_attempts,
            priority,
            run_at,
            created,
            updated,
            lease_expires,
            lease_token,
            agent,
        })
    }
}

/// A task from its hash.
pub(crate) fn task(fields: &Fields) -> Result<Task, StoreError> {
    let h = Header::parse(fields.get("h")?)?;
    Ok(Task {
        id: fields.parse_field("id")?,
        agent_id: h
            .agent
            .parse()
            .map_err(|_| corrupt(format!("bad agent id `{}`", h.agent)))?,
        payload: fields.json("pl")?,
        priority: h.priority,
        unique_key: fields.opt("u").map(str::to_owned),
        state: h.state,
        run_at: from_millis(h.run_at)?,
        attempts: h.attempts,
        max_attempts: h.max_attempts,
        lease_expires_at: h.lease_expires.map(from_millis).transpose()?,
        last_error: fields.opt("e").map(str::to_owned),
        result: fields.opt_json("res")?,
        created_at: from_millis(h.created)?,
        updated_at: from_millis(h.updated)?,
    })
}

/// A task from an `HGETALL`-style reply.
pub(crate) fn task_value(value: Value) -> Result<Task, StoreError> {
    task(&Fields::parse(value)?)
}

/// A claimed task and its lease, from an `HGETALL`-style reply.
pub(crate) fn leased_task(value: Value) -> Result<LeasedTask, StoreError> {
    let fields = Fields::parse(value)?;
    let task = task(&fields)?;
    let raw = fields.get("h")?;
    let token = Header::parse(raw)?
        .lease_token
        .ok_or_else(|| corrupt("a leased task has no lease token"))?;
    let lease_token: LeaseToken = token
        .parse()
        .map_err(|_| corrupt(format!("bad lease token `{token}`")))?;
    let lease_expires_at = task
        .lease_expires_at
        .ok_or_else(|| corrupt("a leased task has no lease expiry"))?;
    Ok(LeasedTask {
        task,
        lease_token,
        lease_expires_at,
    })
}

/// Longest delay accepted for a task (a century): keeps script arithmetic exact.
const MAX_DELAY_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

pub(crate) use phoenix_core::page::parse_cursor;
pub(crate) use phoenix_core::task::truncate_error;

/// Appends the `enqueue` fields of `tasks` (see `lua/lib.lua`) to a script invocation.
pub(crate) fn push_tasks(
    invocation: &mut redis::ScriptInvocation<'_>,
    tasks: &[NewTask],
    payloads: &[String],
) {
    invocation.arg(tasks.len());
    for (task, payload) in tasks.iter().zip(payloads) {
        invocation
            .arg(task.id.to_string())
            .arg(task.agent_id.to_string())
            .arg(task.priority)
            .arg(task.unique_key.as_deref().unwrap_or(""))
            .arg(task.delay_ms.min(MAX_DELAY_MS))
            .arg(task.max_attempts.max(1))
            .arg(payload.as_str())
            .arg(task.payload.kind().as_str())
            .arg(
                task.payload
                    .experiment_id()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            )
            .arg(
                task.payload
                    .deployment_id()
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
            );
    }
}

/// Serializes the payloads of `tasks` (before the script call, so that an error leaves
/// nothing half-done).
pub(crate) fn payloads(tasks: &[NewTask]) -> Result<Vec<String>, StoreError> {
    tasks.iter().map(|t| encode_json(&t.payload)).collect()
}

/// The per-task results of an enqueue.
pub(crate) fn enqueue_results(
    tasks: &[NewTask],
    value: Value,
) -> Result<Vec<EnqueueResult>, StoreError> {
    let items = array(value)?;
    if items.len() != tasks.len() {
        return Err(corrupt("enqueue returned a result count unlike the batch"));
    }
    tasks
        .iter()
        .zip(items)
        .map(|(task, item)| {
            let existing = text(&item)?;
            if existing.is_empty() {
                Ok(EnqueueResult::Enqueued { id: task.id })
            } else {
                let existing: TaskId = existing
                    .parse()
                    .map_err(|_| corrupt(format!("bad task id `{existing}`")))?;
                Ok(EnqueueResult::Duplicate {
                    id: task.id,
                    existing,
                })
            }
        })
        .collect()
}
