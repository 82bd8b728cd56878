//! [`MetricStore`] on Redis.
//!
//! `smp:<experiment>` is a zset of `<sort key>|<sample JSON>` members with score 0, so that
//! Redis orders them by (taken_at, agent, seq) lexically; `smpseen:<experiment>` remembers
//! `<agent>:<seq>` for idempotence; `smprc:<experiment>` is a hash of agent -> JSON array
//! of that agent's [`RECENT_SAMPLES`] members with the highest `seq` (kept by the append
//! script, for the plausibility check's history); `snap` is a hash of the current snapshot
//! per agent and source: field `<agent>` for the input (the only field written before
//! sources existed), `<agent>:shipped` for the shipped output ([`snap_field`]); `snapver`
//! holds, under the same field, the snapshot's version stamp "<version> <taken_at> <interval
//! secs>", written with the body in one script (`snapshot_put.lua`, the version drawn from
//! the counter `snapseq`).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::error::StoreError;
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::measure::{MeasurementSample, PackedSnapshot, SnapshotSource};
use phoenix_core::store::{
    AppendReport, BusEvent, MAX_SAMPLES_PER_EXPERIMENT, MetricStore, SnapshotVersion,
    VersionedSnapshot,
};

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

    async fn put_snapshot(&self, snapshot: &PackedSnapshot) -> Result<(), StoreError> {
        // Kept packed, as agents send it.
        let json = encode_json(snapshot)?;
        self.run(&SCRIPTS.snapshot_put, |inv| {
            inv.arg(snap_field(snapshot.agent_id, snapshot.source))
                .arg(
                    snapshot
                        .taken_at
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                )
                .arg(snapshot.interval_secs)
                .arg(json);
        })
        .await?;
        Ok(())
    }

    async fn snapshots(&self) -> Result<Vec<PackedSnapshot>, StoreError> {
        let all: Vec<(String, String)> = self
            .query(redis::cmd("HGETALL").arg(self.key(&["snap"])))
            .await?;
        let mut snapshots = all
            .iter()
            .map(|(_, json)| decode_snapshot(json))
            .collect::<Result<Vec<_>, _>>()?;
        snapshots.sort_by_key(|s| (s.agent_id, s.source));
        Ok(snapshots)
    }

    async fn snapshot(&self, agent: AgentId) -> Result<Option<PackedSnapshot>, StoreError> {
        let json: Option<String> = self
            .query(
                redis::cmd("HGET")
                    .arg(self.key(&["snap"]))
                    .arg(snap_field(agent, SnapshotSource::Input)),
            )
            .await?;
        json.as_deref().map(decode_snapshot).transpose()
    }

    async fn snapshot_versions(&self) -> Result<Vec<SnapshotVersion>, StoreError> {
        // One atomic step: the stamps, and the fields holding a body (a body written before
        // stamps existed has none until its agent's next snapshot: it is read here, under
        // version 0).
        let (stamps, fields): (Vec<(String, String)>, Vec<String>) = self
            .query_pipeline(
                redis::pipe()
                    .atomic()
                    .cmd("HGETALL")
                    .arg(self.key(&["snapver"]))
                    .cmd("HKEYS")
                    .arg(self.key(&["snap"])),
            )
            .await?;
        let stamps: BTreeMap<&str, &str> = stamps
            .iter()
            .map(|(f, v)| (f.as_str(), v.as_str()))
            .collect();
        let mut versions = Vec::with_capacity(fields.len());
        for field in &fields {
            let (agent_id, source) = parse_field(field)?;
            let version = match stamps.get(field.as_str()) {
                Some(stamp) => parse_stamp(agent_id, source, stamp)?,
                None => {
                    let json: Option<String> = self
                        .query(redis::cmd("HGET").arg(self.key(&["snap"])).arg(field))
                        .await?;
                    match json {
                        Some(json) => SnapshotVersion::of(&decode_snapshot(&json)?, 0),
                        None => continue,
                    }
                }
            };
            versions.push(version);
        }
        versions.sort_by_key(|v| (v.agent_id, v.source));
        Ok(versions)
    }

    async fn snapshots_of(
        &self,
        keys: &[(AgentId, SnapshotSource)],
    ) -> Result<Vec<VersionedSnapshot>, StoreError> {
        let keys: BTreeSet<(AgentId, SnapshotSource)> = keys.iter().copied().collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<String> = keys.iter().map(|(a, s)| snap_field(*a, *s)).collect();
        let (bodies, stamps): (Vec<Option<String>>, Vec<Option<String>>) = self
            .query_pipeline(
                redis::pipe()
                    .atomic()
                    .cmd("HMGET")
                    .arg(self.key(&["snap"]))
                    .arg(&fields)
                    .cmd("HMGET")
                    .arg(self.key(&["snapver"]))
                    .arg(&fields),
            )
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        for (((agent, source), body), stamp) in keys.iter().zip(bodies).zip(stamps) {
            let Some(body) = body else { continue };
            let version = match stamp {
                Some(stamp) => parse_stamp(*agent, *source, &stamp)?.version,
                None => 0,
            };
            out.push(VersionedSnapshot {
                version,
                snapshot: decode_snapshot(&body)?,
            });
        }
        Ok(out)
    }

    async fn delete_snapshots(&self, agents: &[AgentId]) -> Result<u64, StoreError> {
        if agents.is_empty() {
            return Ok(0);
        }
        let fields: Vec<String> = agents
            .iter()
            .flat_map(|agent| SnapshotSource::ALL.map(|source| snap_field(*agent, source)))
            .collect();
        // Body and stamp leave together.
        let (deleted, _): (u64, u64) = self
            .query_pipeline(
                redis::pipe()
                    .atomic()
                    .cmd("HDEL")
                    .arg(self.key(&["snap"]))
                    .arg(&fields)
                    .cmd("HDEL")
                    .arg(self.key(&["snapver"]))
                    .arg(&fields),
            )
            .await?;
        Ok(deleted)
    }
}

/// The (agent, source) of a `snap` field ([`snap_field`]).
fn parse_field(field: &str) -> Result<(AgentId, SnapshotSource), StoreError> {
    let (agent, source) = match field.strip_suffix(":shipped") {
        Some(agent) => (agent, SnapshotSource::Shipped),
        None => (field, SnapshotSource::Input),
    };
    let agent = agent
        .parse::<uuid::Uuid>()
        .map_err(|_| corrupt("snapshot hash field is not an agent id"))?;
    Ok((AgentId(agent), source))
}

/// A `snapver` value: "<version> <taken_at RFC 3339> <interval secs>".
fn parse_stamp(
    agent_id: AgentId,
    source: SnapshotSource,
    stamp: &str,
) -> Result<SnapshotVersion, StoreError> {
    let bad = || corrupt("snapshot version stamp is malformed");
    let mut parts = stamp.split(' ');
    let (Some(version), Some(taken_at), Some(interval), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(SnapshotVersion {
        agent_id,
        source,
        taken_at: DateTime::parse_from_rfc3339(taken_at)
            .map_err(|_| bad())?
            .with_timezone(&Utc),
        interval_secs: interval.parse().map_err(|_| bad())?,
        version: version.parse().map_err(|_| bad())?,
    })
}

/// A stored snapshot body: packed, or spelled out as bodies stored before packing are
/// ([`PackedSnapshot::from_stored_json`]).
fn decode_snapshot(json: &str) -> Result<PackedSnapshot, StoreError> {
    PackedSnapshot::from_stored_json(json)
        .map_err(|e| corrupt(format!("stored snapshot does not decode: {e}")))
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
