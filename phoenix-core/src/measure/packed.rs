//! A cardinality snapshot with every string once: [`PackedSnapshot`], the form agents send
//! and stores keep.
//!
//! A host's snapshot repeats the same few hundred strings (metric names, label keys, a
//! host's executables, services and namespaces) across thousands of series. Spelled out
//! ([`CardinalitySnapshot`]), 5,000 hostmetrics series are about 1 MiB of JSON and 60,000
//! strings to parse, allocate, check, copy and free; packed, the strings are a dictionary
//! of distinct strings written once and each series is a few integers into it (about a
//! fifth of the bytes, a few hundred strings). The server checks each distinct string
//! once, stores the packed body as it came, and the fleet cache interns from the
//! dictionary ([`crate::cardinality::HostTable::from_packed`]).
//!
//! **Canonical form.** [`PackedSnapshot::pack`] lists strings in order of first use
//! (series by series: metric, then each label's key and value, keys ascending), so
//! packing what [`PackedSnapshot::unpack`] gives back is the same value. Ingest holds
//! every packed snapshot to the same shape ([`crate::inputs::packed_snapshot`]): one entry
//! per series in each column, indexes in range, keys ascending and distinct, every string
//! distinct and used.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CardinalitySnapshot, SnapshotMeta, SnapshotSeries, SnapshotSource};
use crate::ids::AgentId;

/// A cardinality snapshot with its strings in a dictionary: series `i` is the metric
/// `strings[metrics[i]]` with labels `strings[labels[i][0]] = strings[labels[i][1]]`, …,
/// `points[i]` points in the interval and value `values[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackedSnapshot {
    /// The agent that took it.
    pub agent_id: AgentId,
    /// What it describes.
    #[serde(default)]
    pub source: SnapshotSource,
    /// The host name.
    pub host: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Interval covered, seconds.
    pub interval_secs: u32,
    /// Every metric name, label key and label value of the series, each once.
    pub strings: Vec<String>,
    /// Per series: its metric name, an index into `strings`.
    pub metrics: Vec<u32>,
    /// Per series: its labels as indexes into `strings`, key then value, keys ascending.
    pub labels: Vec<Vec<u32>>,
    /// Per series: data points in the interval.
    pub points: Vec<u64>,
    /// Per series: its value when the snapshot was taken, if it has one.
    pub values: Vec<Option<f64>>,
}

/// One series of a [`PackedSnapshot`], borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct PackedSeries<'a> {
    snapshot: &'a PackedSnapshot,
    index: usize,
}

impl<'a> PackedSeries<'a> {
    /// Metric name.
    #[must_use]
    pub fn metric(&self) -> &'a str {
        self.snapshot
            .string(self.snapshot.metrics.get(self.index).copied())
    }

    /// Labels, keys ascending.
    pub fn labels(self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + 'a {
        let snapshot = self.snapshot;
        snapshot
            .labels
            .get(self.index)
            .map_or(&[][..], Vec::as_slice)
            .chunks(2)
            .map(move |pair| {
                (
                    snapshot.string(pair.first().copied()),
                    snapshot.string(pair.get(1).copied()),
                )
            })
    }

    /// Data points in the interval.
    #[must_use]
    pub fn points(&self) -> u64 {
        self.snapshot.points.get(self.index).copied().unwrap_or(0)
    }

    /// The series' value, if it has one.
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        self.snapshot.values.get(self.index).copied().flatten()
    }
}

impl PackedSnapshot {
    /// Packs a snapshot: strings in order of first use.
    #[must_use]
    pub fn pack(snapshot: &CardinalitySnapshot) -> Self {
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut strings: Vec<String> = Vec::new();
        let n = snapshot.series.len();
        let (mut metrics, mut labels, mut points, mut values) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for series in &snapshot.series {
            metrics.push(intern(&series.metric, &mut ids, &mut strings));
            let mut pairs = Vec::with_capacity(series.labels.len() * 2);
            for (k, v) in &series.labels {
                pairs.push(intern(k, &mut ids, &mut strings));
                pairs.push(intern(v, &mut ids, &mut strings));
            }
            labels.push(pairs);
            points.push(series.points);
            values.push(series.value);
        }
        Self {
            agent_id: snapshot.agent_id,
            source: snapshot.source,
            host: snapshot.host.clone(),
            taken_at: snapshot.taken_at,
            interval_secs: snapshot.interval_secs,
            strings,
            metrics,
            labels,
            points,
            values,
        }
    }

    /// The snapshot spelled out. A label whose key repeats keeps its last value (a shape
    /// [`crate::inputs::packed_snapshot`] refuses at ingest).
    #[must_use]
    pub fn unpack(&self) -> CardinalitySnapshot {
        CardinalitySnapshot {
            agent_id: self.agent_id,
            source: self.source,
            host: self.host.clone(),
            taken_at: self.taken_at,
            interval_secs: self.interval_secs,
            series: self
                .series()
                .map(|s| SnapshotSeries {
                    metric: s.metric().to_owned(),
                    labels: s
                        .labels()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect::<BTreeMap<_, _>>(),
                    points: s.points(),
                    value: s.value(),
                })
                .collect(),
        }
    }

    /// Series held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.metrics.len()
    }

    /// True when it holds no series.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The series, in order.
    pub fn series(&self) -> impl ExactSizeIterator<Item = PackedSeries<'_>> + '_ {
        (0..self.len()).map(move |index| PackedSeries {
            snapshot: self,
            index,
        })
    }

    /// What the host set is chosen by.
    #[must_use]
    pub fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            agent_id: self.agent_id,
            source: self.source,
            taken_at: self.taken_at,
            interval_secs: self.interval_secs,
        }
    }

    /// What is wrong with the columns' shape, if anything: a column without one entry per
    /// series, an odd label list, an index past the strings. Accessors read a malformed
    /// entry as empty rather than panic; stores refuse such a body as corrupt.
    #[must_use]
    pub fn shape_error(&self) -> Option<(String, String)> {
        let n = self.metrics.len();
        for (name, len) in [
            ("labels", self.labels.len()),
            ("points", self.points.len()),
            ("values", self.values.len()),
        ] {
            if len != n {
                return Some((
                    name.to_owned(),
                    format!("has {len} entries for {n} series (one per series, as `metrics`)"),
                ));
            }
        }
        let strings = self.strings.len();
        let out_of_range = |&i: &u32| i as usize >= strings;
        if let Some(i) = self.metrics.iter().position(out_of_range) {
            return Some((
                format!("metrics[{i}]"),
                format!("is {}, past the {strings} strings", self.metrics[i]),
            ));
        }
        for (i, pairs) in self.labels.iter().enumerate() {
            if pairs.len() % 2 != 0 {
                return Some((
                    format!("labels[{i}]"),
                    format!(
                        "has {} entries; labels are key and value pairs",
                        pairs.len()
                    ),
                ));
            }
            if let Some(j) = pairs.iter().position(out_of_range) {
                return Some((
                    format!("labels[{i}][{j}]"),
                    format!("is {}, past the {strings} strings", pairs[j]),
                ));
            }
        }
        None
    }

    /// Decodes a stored snapshot body: the packed form, or a snapshot spelled out (the form
    /// stores kept before packing), which is packed.
    ///
    /// # Errors
    /// What is wrong with the body.
    pub fn from_stored_json(body: &str) -> Result<Self, String> {
        let packed = match serde_json::from_str::<Self>(body) {
            Ok(packed) => packed,
            Err(packed_error) => match serde_json::from_str::<CardinalitySnapshot>(body) {
                Ok(spelled_out) => Self::pack(&spelled_out),
                Err(_) => return Err(packed_error.to_string()),
            },
        };
        match packed.shape_error() {
            Some((path, message)) => Err(format!("{path}: {message}")),
            None => Ok(packed),
        }
    }

    fn string(&self, index: Option<u32>) -> &str {
        index
            .and_then(|i| self.strings.get(i as usize))
            .map_or("", String::as_str)
    }
}

/// `text`'s index in `strings`, added at the end on first use.
fn intern<'a>(text: &'a str, ids: &mut HashMap<&'a str, u32>, strings: &mut Vec<String>) -> u32 {
    *ids.entry(text).or_insert_with(|| {
        // A snapshot's strings are bounded far below u32::MAX by the ingest checks;
        // saturating keeps a larger one refusable instead of wrapping.
        let id = u32::try_from(strings.len()).unwrap_or(u32::MAX);
        strings.push(text.to_owned());
        id
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spelled_out() -> CardinalitySnapshot {
        let series = |metric: &str, labels: &[(&str, &str)], points, value| SnapshotSeries {
            metric: metric.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            points,
            value,
        };
        CardinalitySnapshot {
            agent_id: AgentId::new(),
            source: SnapshotSource::Shipped,
            host: "web-1".into(),
            taken_at: Utc::now(),
            interval_secs: 60,
            series: vec![
                series(
                    "process.cpu.time",
                    &[("process.pid", "42"), ("state", "user")],
                    6,
                    Some(1.5),
                ),
                series(
                    "process.cpu.time",
                    &[("process.pid", "42"), ("state", "system")],
                    6,
                    None,
                ),
                series("up", &[], 1, Some(1.0)),
                // A string used as a metric, a key and a value.
                series("state", &[("state", "state")], 0, None),
            ],
        }
    }

    #[test]
    fn packing_writes_each_string_once_in_order_of_first_use_and_unpacks_to_the_same() {
        let s = spelled_out();
        let packed = PackedSnapshot::pack(&s);
        assert_eq!(
            packed.strings,
            [
                "process.cpu.time",
                "process.pid",
                "42",
                "state",
                "user",
                "system",
                "up"
            ]
        );
        assert_eq!(packed.metrics, [0, 0, 6, 3]);
        assert_eq!(
            packed.labels,
            [vec![1, 2, 3, 4], vec![1, 2, 3, 5], vec![], vec![3, 3]]
        );
        assert_eq!(packed.points, [6, 6, 1, 0]);
        assert_eq!(packed.values, [Some(1.5), None, Some(1.0), None]);
        assert_eq!(packed.shape_error(), None);
        assert_eq!(packed.unpack(), s);
        assert_eq!(PackedSnapshot::pack(&packed.unpack()), packed);
        assert_eq!(packed.meta(), s.meta());
        assert_eq!(packed.len(), 4);
    }

    #[test]
    fn stored_bodies_decode_from_either_form_and_malformed_columns_are_named() {
        let s = spelled_out();
        let packed = PackedSnapshot::pack(&s);
        let json = serde_json::to_string(&packed).unwrap();
        assert_eq!(PackedSnapshot::from_stored_json(&json).unwrap(), packed);
        let legacy = serde_json::to_string(&s).unwrap();
        assert_eq!(PackedSnapshot::from_stored_json(&legacy).unwrap(), packed);
        assert!(PackedSnapshot::from_stored_json("{}").is_err());

        let mut short = packed.clone();
        short.points.pop();
        let (path, message) = short.shape_error().unwrap();
        assert_eq!(path, "points");
        assert!(message.contains("has 3 entries for 4 series"), "{message}");
        let mut past = packed.clone();
        past.labels[1][3] = 7;
        assert_eq!(
            past.shape_error().unwrap(),
            ("labels[1][3]".into(), "is 7, past the 7 strings".into())
        );
        let mut odd = packed.clone();
        odd.labels[0].pop();
        assert!(odd.shape_error().unwrap().1.contains("key and value pairs"));
        let mut metric = packed;
        metric.metrics[2] = 99;
        assert_eq!(metric.shape_error().unwrap().0, "metrics[2]");
        // Malformed entries read as empty, never a panic.
        let unpacked = metric.unpack();
        assert_eq!(unpacked.series[2].metric, "");
        assert!(
            PackedSnapshot::from_stored_json(&serde_json::to_string(&metric).unwrap()).is_err()
        );
    }
}
