//! [`MetricStore`] on Redis.
//!
//! `smp:<experiment>` is a zset of `<sort key>|<sample JSON>` members with score 0, so that
//! Redis orders them by (taken_at, agent, seq) lexically; `smpseen:<experiment>` remembers
//! `<agent>:<seq>` for idempotence; `smprc:<experiment>` is a hash of agent -> JSON array
//! of that agent's [`RECENT_SAMPLES`] members with the highest `seq` (kept by the append
//! script, for the plausibility check's history); `snap` is a hash of the current snapshot
//! per agent and source: field `<agent>` for the input (the only field written before
//! sources existed), `<agent>:shipped` for the shipped output ([`snap_field`]).

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::error::StoreError;
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::measure::{CardinalitySnapshot, MeasurementSample, SnapshotSource};
use phoenix_core::store::{AppendReport, BusEvent, MAX_SAMPLES_PER_EXPERIMENT, MetricStore};

use crate::RedisStore;
use crate::bus::event_line;
use crate::codec::{corrupt, decode_json, encode_json};
use crate::scripts::SCRIPTS;

/// A fixed-width key whose byte order is the order of (taken_at, agent, seq).
fn sort_key(taken_at: DateTime<Utc>, agent: AgentId, seq: u64) -> String {
    // Flipping the sign bit maps i64 seconds onto u64 in the same order.
    #[allow(
        clippy::cast_sign_loss,
        reason = "a bit-level reinterpretation, made order-preserving by the flip"
    )]
    let seconds = (taken_at.timestamp() as u64) ^ (1 << 63);
    format!(
        "{seconds:020}.{:09}|{agent}|{seq:020}|",
        taken_at.timestamp_subsec_nanos()
    )
}

/// The `snap` field of an agent's snapshot of `source`.
fn snap_field(agent: AgentId, source: SnapshotSource) -> String {
    match source {
        SnapshotSource::Input => agent.to_string(),
        SnapshotSource::Shipped => format!("{agent}:shipped"),
    }
}

/// Members kept per agent and experiment in `smprc` (what `recent_samples` can return).
pub(crate) const RECENT_SAMPLES: usize = phoenix_core::plausibility::HISTORY_SAMPLES;

/// Length of [`sort_key`]'s output.
const SORT_KEY_LEN: usize = 20 + 1 + 9 + 1 + 36 + 1 + 20 + 1;

#[async_trait]
impl MetricStore for RedisStore {
    async fn append_samples(
        &self,
        samples: &[MeasurementSample],
    ) -> Result<AppendReport, StoreError> {
        if samples.is_empty() {
            return Ok(AppendReport::default());
        }
        let packed = samples
            .iter()
            .map(|s| {
                Ok((
                    s.experiment_id.to_string(),
                    format!("{}:{}", s.agent_id, s.seq),
                    sort_key(s.taken_at, s.agent_id, s.seq) + &encode_json(s)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let experiments: BTreeSet<ExperimentId> = samples.iter().map(|s| s.experiment_id).collect();
        let announcements = experiments
            .iter()
            .map(|e| {
                Ok((
                    e.to_string(),
                    event_line(&BusEvent::KpisUpdated { experiment_id: *e })?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut reply = self
            .run(&SCRIPTS.samples_append, |inv| {
                inv.arg(MAX_SAMPLES_PER_EXPERIMENT)
                    .arg(RECENT_SAMPLES)
                    .arg(packed.len())
                    .arg(announcements.len());
                for (experiment, dedup, member) in &packed {
                    inv.arg(experiment).arg(dedup).arg(member);
                }
                for (experiment, announce) in &announcements {
                    inv.arg(experiment).arg(announce);
                }
            })
            .await?;
        let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("negative count"));
        Ok(AppendReport {
            inserted: count(reply.next_int()?)?,
            duplicates: count(reply.next_int()?)?,
        })
    }

    async fn samples(
        &self,
        experiment: ExperimentId,
        limit: usize,
    ) -> Result<Vec<MeasurementSample>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let members: Vec<String> = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.key(&["smp", &experiment.to_string()]))
                    .arg(0)
                    .arg(limit.saturating_sub(1)),
            )
            .await?;
        members
            .iter()
            .map(|m| {
                let json = m
                    .get(SORT_KEY_LEN..)
                    .ok_or_else(|| corrupt("sample member shorter than its sort key"))?;
                decode_json(json)
            })
            .collect()
    }

    async fn recent_samples(
        &self,
        experiment: ExperimentId,
        agent: AgentId,
        limit: usize,
    ) -> Result<Vec<MeasurementSample>, StoreError> {
        let json: Option<String> = self
            .query(
                redis::cmd("HGET")
                    .arg(self.key(&["smprc", &experiment.to_string()]))
                    .arg(agent.to_string()),
            )
            .await?;
        let Some(json) = json else {
            return Ok(Vec::new());
        };
        let members: Vec<String> = decode_json(&json)?;
        members
            .iter()
            .take(limit)
            .map(|m| {
                let json = m
                    .get(SORT_KEY_LEN..)
                    .ok_or_else(|| corrupt("sample member shorter than its sort key"))?;
                decode_json(json)
            })
            .collect()
    }

    async fn put_snapshot(&self, snapshot: &CardinalitySnapshot) -> Result<(), StoreError> {
        let json = encode_json(snapshot)?;
        let _: i64 = self
            .query(
                redis::cmd("HSET")
                    .arg(self.key(&["snap"]))
                    .arg(snap_field(snapshot.agent_id, snapshot.source))
                    .arg(json),
            )
            .await?;
        Ok(())
    }

    async fn snapshots(&self) -> Result<Vec<CardinalitySnapshot>, StoreError> {
        let all: Vec<(String, String)> = self
            .query(redis::cmd("HGETALL").arg(self.key(&["snap"])))
            .await?;
        let mut snapshots = all
            .iter()
            .map(|(_, json)| decode_json::<CardinalitySnapshot>(json))
            .collect::<Result<Vec<_>, _>>()?;
        snapshots.sort_by_key(|s| (s.agent_id, s.source));
        Ok(snapshots)
    }

    async fn snapshot(&self, agent: AgentId) -> Result<Option<CardinalitySnapshot>, StoreError> {
        let json: Option<String> = self
            .query(
                redis::cmd("HGET")
                    .arg(self.key(&["snap"]))
                    .arg(snap_field(agent, SnapshotSource::Input)),
            )
            .await?;
        json.as_deref().map(decode_json).transpose()
    }

    async fn delete_snapshots(&self, agents: &[AgentId]) -> Result<u64, StoreError> {
        if agents.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.key(&["snap"]));
        for agent in agents {
            for source in SnapshotSource::ALL {
                cmd.arg(snap_field(*agent, source));
            }
        }
        let deleted: u64 = self.query(&cmd).await?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_have_a_fixed_width_and_follow_time_agent_seq() {
        let a = AgentId::new();
        let b = AgentId::new();
        let t = |s: i64, ns: u32| DateTime::from_timestamp(s, ns).unwrap();
        let keys = [
            sort_key(t(-5, 0), b, 9),
            sort_key(t(0, 1), a, 1),
            sort_key(t(1_700_000_000, 0), a.min(b), 2),
            sort_key(t(1_700_000_000, 0), a.max(b), 1),
            sort_key(t(1_700_000_000, 0), a.max(b), 10),
            sort_key(t(1_700_000_000, 5), a, u64::MAX),
        ];
        for key in &keys {
            assert_eq!(key.len(), SORT_KEY_LEN);
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
    }
}
