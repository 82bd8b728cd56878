//! The interned, columnar form of a set of cardinality snapshots.
//!
//! Building it reads each snapshot series once, interning metric names, label keys and
//! label values (values per key) into dense ids, and lays the series out grouped by metric.
//! Every analysis then runs over `u32` columns: no string is hashed, compared or allocated
//! per series on the analysis path.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::interner::Interner;
use crate::ids::AgentId;
use crate::measure::CardinalitySnapshot;

/// Why snapshots could not be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardinalityError {
    /// More than `u32::MAX` series, labels or distinct strings.
    #[error("too many series or labels to analyse at once (limit 4,294,967,295)")]
    TooLarge,
    /// A snapshot says its interval is zero seconds, so no rate can be derived.
    #[error("snapshot of host `{host}` has an interval of 0 seconds")]
    ZeroInterval {
        /// The host.
        host: String,
    },
}

/// A label of one series, as ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label {
    pub(crate) key: u32,
    /// Id in the key's own value interner.
    pub(crate) value: u32,
}

/// One snapshot's host.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostInfo {
    pub(crate) agent_id: AgentId,
    pub(crate) host: String,
    pub(crate) taken_at: DateTime<Utc>,
    pub(crate) interval_secs: u32,
}

impl HostInfo {
    /// The host of a snapshot of `meta`, named `host`.
    pub(crate) fn of(meta: crate::measure::SnapshotMeta, host: &str) -> Self {
        Self {
            agent_id: meta.agent_id,
            host: host.to_owned(),
            taken_at: meta.taken_at,
            interval_secs: meta.interval_secs,
        }
    }
}

/// Snapshots in interned, columnar form, series grouped by metric.
#[derive(Debug, Clone)]
pub struct SeriesTable {
    pub(crate) metrics: Interner,
    pub(crate) keys: Interner,
    /// One value interner per key id.
    pub(crate) values: Vec<Interner>,
    pub(crate) hosts: Vec<HostInfo>,
    /// Per series (grouped by metric): its host index.
    pub(crate) series_host: Vec<u32>,
    /// Per series: data points in its snapshot's interval.
    pub(crate) series_points: Vec<u64>,
    /// Per series: start of its labels in `labels`; one extra entry at the end.
    pub(crate) label_offsets: Vec<u32>,
    /// Labels of every series, each series' labels sorted by key string.
    pub(crate) labels: Vec<Label>,
    /// Per metric id: `start..end` of its series.
    pub(crate) metric_ranges: Vec<(u32, u32)>,
}

impl SeriesTable {
    /// Interns `snapshots`. Each snapshot series is one series (series identity is host,
    /// metric and labels: two hosts emitting the same labels are two series).
    pub fn from_snapshots(snapshots: &[CardinalitySnapshot]) -> Result<Self, CardinalityError> {
        let total: usize = snapshots.iter().map(|s| s.series.len()).sum();
        let too_large = |_| CardinalityError::TooLarge;
        u32::try_from(total).map_err(too_large)?;

        let mut metrics = Interner::default();
        let mut hosts = Vec::with_capacity(snapshots.len());
        // Pass 1: metric ids (consecutive series often share one: cache the last) and
        // label counts, in input order.
        let mut input_metric = Vec::with_capacity(total);
        let mut metric_counts: Vec<u32> = Vec::new();
        let mut metric_label_counts: Vec<u64> = Vec::new();
        for snapshot in snapshots {
            if snapshot.interval_secs == 0 {
                return Err(CardinalityError::ZeroInterval {
                    host: snapshot.host.clone(),
                });
            }
            hosts.push(HostInfo::of(snapshot.meta(), &snapshot.host));
            let mut last: Option<(&str, u32)> = None;
            for series in &snapshot.series {
                let id = match last {
                    Some((name, id)) if name == series.metric => id,
                    _ => {
                        let id = metrics
                            .intern(&series.metric)
                            .ok_or(CardinalityError::TooLarge)?;
                        last = Some((&series.metric, id));
                        id
                    }
                };
                if id as usize == metric_counts.len() {
                    metric_counts.push(0);
                    metric_label_counts.push(0);
                }
                metric_counts[id as usize] += 1;
                metric_label_counts[id as usize] += series.labels.len() as u64;
                input_metric.push(id);
            }
        }
        let total_labels: u64 = metric_label_counts.iter().sum();
        // Where each metric's series and labels start in the grouped layout.
        let (metric_ranges, mut next_series, mut next_label) =
            grouped_layout(&metric_counts, &metric_label_counts)?;

        // Pass 2: intern labels and scatter every series into its metric's group.
        let mut keys = Interner::default();
        let mut values: Vec<Interner> = Vec::new();
        let mut series_host = vec![0_u32; total];
        let mut series_points = vec![0_u64; total];
        let mut label_offsets = vec![0_u32; total + 1];
        let mut labels = vec![Label { key: 0, value: 0 }; total_labels as usize];
        // The previous series' label map and key ids, to skip key lookups when the key set
        // repeats; and per key, the last value seen, to skip value lookups when it repeats.
        let mut prev_map: Option<&BTreeMap<String, String>> = None;
        let mut prev_keys: Vec<u32> = Vec::new();
        let mut cur_keys: Vec<u32> = Vec::new();
        let mut last_value: Vec<Option<(&str, u32)>> = Vec::new();
        let mut input_index = 0_usize;
        for (host_index, snapshot) in snapshots.iter().enumerate() {
            let host_index = u32::try_from(host_index).map_err(too_large)?;
            for series in &snapshot.series {
                let metric = input_metric[input_index] as usize;
                input_index += 1;
                let dest = next_series[metric] as usize;
                next_series[metric] += 1;
                let start = next_label[metric];
                next_label[metric] += u32::try_from(series.labels.len()).map_err(too_large)?;
                series_host[dest] = host_index;
                series_points[dest] = series.points;
                label_offsets[dest] = start;

                let same_shape = prev_map.is_some_and(|p| p.len() == series.labels.len());
                cur_keys.clear();
                for (i, (key, value)) in series.labels.iter().enumerate() {
                    // Same position in a map of the same size: compare the key text
                    // instead of hashing it.
                    let key_id = if same_shape && keys.resolve(prev_keys[i]) == key {
                        prev_keys[i]
                    } else {
                        keys.intern(key).ok_or(CardinalityError::TooLarge)?
                    };
                    cur_keys.push(key_id);
                    let k = key_id as usize;
                    if k == values.len() {
                        values.push(Interner::default());
                        last_value.push(None);
                    }
                    let value_id = match last_value[k] {
                        Some((text, id)) if text == value => id,
                        _ => {
                            let id = values[k].intern(value).ok_or(CardinalityError::TooLarge)?;
                            last_value[k] = Some((value, id));
                            id
                        }
                    };
                    labels[(start as usize) + i] = Label {
                        key: key_id,
                        value: value_id,
                    };
                }
                std::mem::swap(&mut prev_keys, &mut cur_keys);
                prev_map = Some(&series.labels);
            }
        }
        label_offsets[total] = u32::try_from(total_labels).map_err(too_large)?;
        // Within a metric group, series and their labels are both in input order, and the
        // groups' label ranges follow each other: offset `i + 1` ends series `i`.
        Ok(Self {
            metrics,
            keys,
            values,
            hosts,
            series_host,
            series_points,
            label_offsets,
            labels,
            metric_ranges,
        })
    }

    /// Series held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.series_host.len()
    }

    /// True when no series is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.series_host.is_empty()
    }

    /// Snapshots (hosts) held.
    #[must_use]
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Labels of series `index`.
    #[inline]
    pub(crate) fn series_labels(&self, index: usize) -> &[Label] {
        let start = self.label_offsets[index] as usize;
        let end = self.label_offsets[index + 1] as usize;
        &self.labels[start..end]
    }

    /// The key id of `key`, if any series carries it.
    pub(crate) fn key_id(&self, key: &str) -> Option<u32> {
        self.keys.get_id(key)
    }
}

/// The grouped layout of a table from each metric's series and label counts: each metric's
/// series range, and where its next series and next label go (the scatter's cursors).
pub(crate) type GroupedLayout = (Vec<(u32, u32)>, Vec<u32>, Vec<u32>);

/// [`GroupedLayout`] of `metric_counts` series and `metric_label_counts` labels per metric.
///
/// # Errors
/// [`CardinalityError::TooLarge`] when the labels do not fit the table's 32-bit indexes.
pub(crate) fn grouped_layout(
    metric_counts: &[u32],
    metric_label_counts: &[u64],
) -> Result<GroupedLayout, CardinalityError> {
    let too_large = |_| CardinalityError::TooLarge;
    let total_labels: u64 = metric_label_counts.iter().sum();
    u32::try_from(total_labels).map_err(too_large)?;
    let mut metric_ranges = Vec::with_capacity(metric_counts.len());
    let mut next_series = Vec::with_capacity(metric_counts.len());
    let mut next_label = Vec::with_capacity(metric_counts.len());
    let (mut s, mut l) = (0_u32, 0_u32);
    for (count, labels) in metric_counts.iter().zip(metric_label_counts) {
        metric_ranges.push((s, s + count));
        next_series.push(s);
        next_label.push(l);
        s += count;
        l += u32::try_from(*labels).map_err(too_large)?;
    }
    Ok((metric_ranges, next_series, next_label))
}
