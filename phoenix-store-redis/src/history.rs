//! [`HistoryStore`] on Redis: hash `hrb:<granularity>:<start seconds>` (`v` version, `j`
//! the bucket as JSON) per bucket and `hri:<granularity>`, a sorted set of starts. The
//! compare-and-set write, the range read and retention are one script each
//! (`lua/history_*.lua`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::error::StoreError;
use phoenix_core::history::{Granularity, RollupBucket};
use phoenix_core::store::HistoryStore;

use crate::RedisStore;
use crate::codec::{Status, corrupt, decode_json, encode_json};
use crate::scripts::SCRIPTS;

fn decode(version: i64, json: &str) -> Result<RollupBucket, StoreError> {
    let mut bucket: RollupBucket = decode_json(json)?;
    bucket.version =
        u64::try_from(version).map_err(|_| corrupt(format!("rollup version {version}")))?;
    Ok(bucket)
}

/// `t` in whole seconds, rounded up: bucket starts are whole seconds, so `start >= t` and
/// `start < t` are the same on the rounded value.
fn ceil_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

#[async_trait]
impl HistoryStore for RedisStore {
    async fn rollup(
        &self,
        granularity: Granularity,
        start: DateTime<Utc>,
    ) -> Result<Option<RollupBucket>, StoreError> {
        let key = self.key(&[
            "hrb",
            &format!("{}:{}", granularity.as_str(), start.timestamp()),
        ]);
        let (version, json): (Option<i64>, Option<String>) = self
            .query(redis::cmd("HMGET").arg(key).arg("v").arg("j"))
            .await?;
        match (version, json) {
            (Some(v), Some(j)) => decode(v, &j).map(Some),
            _ => Ok(None),
        }
    }

    async fn put_rollup(&self, bucket: &RollupBucket, expected: u64) -> Result<u64, StoreError> {
        let json = encode_json(bucket)?;
        let mut reply = self
            .run(&SCRIPTS.history_put, |inv| {
                inv.arg(bucket.granularity.as_str())
                    .arg(bucket.start.timestamp())
                    .arg(expected)
                    .arg(&json);
            })
            .await?;
        match reply.status {
            Status::Ok => {
                u64::try_from(reply.next_int()?).map_err(|_| corrupt("negative rollup version"))
            }
            Status::Conflict => Err(StoreError::conflict(
                "rollup",
                format!("{} {}", bucket.granularity, bucket.start),
            )),
            other => Err(corrupt(format!("unexpected script status {other:?}"))),
        }
    }

    async fn rollups(
        &self,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RollupBucket>, StoreError> {
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        let mut reply = self
            .run(&SCRIPTS.history_range, |inv| {
                inv.arg(granularity.as_str())
                    .arg(ceil_secs(from))
                    .arg(ceil_secs(to))
                    .arg(limit);
            })
            .await?;
        let mut buckets = Vec::new();
        while reply.rest.len() >= 2 {
            let version = reply.next_int()?;
            let json = reply.next_text()?;
            buckets.push(decode(version, &json)?);
        }
        Ok(buckets)
    }

    async fn prune_rollups(
        &self,
        granularity: Granularity,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut reply = self
            .run(&SCRIPTS.history_prune, |inv| {
                inv.arg(granularity.as_str()).arg(ceil_secs(before));
            })
            .await?;
        u64::try_from(reply.next_int()?).map_err(|_| corrupt("negative count"))
    }
}
