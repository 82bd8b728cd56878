//! One host's snapshot in interned form ([`HostTable`]), and the fleet's [`SeriesTable`]
//! merged from many of them ([`SeriesTable::from_hosts`]).
//!
//! A fleet cache keeps one `HostTable` per agent and rebuilds only the hosts whose snapshot
//! changed. Merging then interns each host's distinct strings once (a few thousand per
//! host, not one lookup per label of every series) and copies its label columns with ids
//! remapped. The merged table is the very table [`SeriesTable::from_snapshots`] builds from
//! the same snapshots in the same order: ids are handed out in order of first appearance
//! either way, so every analysis of it is identical.

use super::interner::Interner;
use super::table::{CardinalityError, HostInfo, Label, SeriesTable, grouped_layout};
use crate::ids::AgentId;
use crate::measure::{CardinalitySnapshot, PackedSnapshot, SnapshotMeta, SnapshotSource};

/// One snapshot with its strings interned per host, series in snapshot order.
#[derive(Debug, Clone)]
pub struct HostTable {
    info: HostInfo,
    source: SnapshotSource,
    metrics: Interner,
    keys: Interner,
    /// One value interner per local key id.
    values: Vec<Interner>,
    /// Per series: its local metric id.
    series_metric: Vec<u32>,
    /// Per series: data points in the interval.
    series_points: Vec<u64>,
    /// Per series: start of its labels; one extra entry at the end.
    label_offsets: Vec<u32>,
    /// Labels in local ids, each series' labels in key order.
    labels: Vec<Label>,
}

impl HostTable {
    /// Interns one snapshot.
    pub fn from_snapshot(snapshot: &CardinalitySnapshot) -> Result<Self, CardinalityError> {
        let total_labels: usize = snapshot.series.iter().map(|s| s.labels.len()).sum();
        Self::build(
            HostInfo::of(snapshot.meta(), &snapshot.host),
            snapshot.source,
            total_labels,
            snapshot.series.iter().map(|s| {
                (
                    s.metric.as_str(),
                    s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    s.points,
                )
            }),
        )
    }

    /// Interns one packed snapshot: the table [`HostTable::from_snapshot`] builds from it
    /// spelled out.
    pub fn from_packed(snapshot: &PackedSnapshot) -> Result<Self, CardinalityError> {
        let total_labels: usize = snapshot.labels.iter().map(|l| l.len() / 2).sum();
        Self::build(
            HostInfo::of(snapshot.meta(), &snapshot.host),
            snapshot.source,
            total_labels,
            snapshot
                .series()
                .map(|s| (s.metric(), s.labels(), s.points())),
        )
    }

    /// Interns series (metric, labels in key order, points), ids in order of first
    /// appearance.
    fn build<'a, L>(
        info: HostInfo,
        source: SnapshotSource,
        total_labels: usize,
        series: impl ExactSizeIterator<Item = (&'a str, L, u64)>,
    ) -> Result<Self, CardinalityError>
    where
        L: Iterator<Item = (&'a str, &'a str)>,
    {
        let total = series.len();
        let too_large = |_| CardinalityError::TooLarge;
        u32::try_from(total).map_err(too_large)?;
        u32::try_from(total_labels).map_err(too_large)?;
        let mut table = Self {
            info,
            source,
            metrics: Interner::default(),
            keys: Interner::default(),
            values: Vec::new(),
            series_metric: Vec::with_capacity(total),
            series_points: Vec::with_capacity(total),
            label_offsets: Vec::with_capacity(total + 1),
            labels: Vec::with_capacity(total_labels),
        };
        let mut last_metric: Option<(&str, u32)> = None;
        let mut last_value: Vec<Option<(&str, u32)>> = Vec::new();
        for (metric_name, labels, points) in series {
            let metric = match last_metric {
                Some((name, id)) if name == metric_name => id,
                _ => {
                    let id = table
                        .metrics
                        .intern(metric_name)
                        .ok_or(CardinalityError::TooLarge)?;
                    last_metric = Some((metric_name, id));
                    id
                }
            };
            table.series_metric.push(metric);
            table.series_points.push(points);
            let start = table.labels.len();
            u32::try_from(start).map_err(too_large)?;
            // Fits: checked just above.
            table.label_offsets.push(start as u32);
            for (key, value) in labels {
                let key_id = table.keys.intern(key).ok_or(CardinalityError::TooLarge)?;
                let k = key_id as usize;
                if k == table.values.len() {
                    table.values.push(Interner::default());
                    last_value.push(None);
                }
                let value_id = match last_value[k] {
                    Some((text, id)) if text == value => id,
                    _ => {
                        let id = table.values[k]
                            .intern(value)
                            .ok_or(CardinalityError::TooLarge)?;
                        last_value[k] = Some((value, id));
                        id
                    }
                };
                table.labels.push(Label {
                    key: key_id,
                    value: value_id,
                });
            }
        }
        let end = u32::try_from(table.labels.len()).map_err(too_large)?;
        table.label_offsets.push(end);
        Ok(table)
    }

    /// The agent whose snapshot it is.
    #[must_use]
    pub fn agent_id(&self) -> AgentId {
        self.info.agent_id
    }

    /// What the snapshot describes.
    #[must_use]
    pub fn source(&self) -> SnapshotSource {
        self.source
    }

    /// When the snapshot was taken.
    #[must_use]
    pub fn taken_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.info.taken_at
    }

    /// What the fleet's host set is chosen by.
    #[must_use]
    pub fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            agent_id: self.info.agent_id,
            source: self.source,
            taken_at: self.info.taken_at,
            interval_secs: self.info.interval_secs,
        }
    }

    /// Series held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.series_metric.len()
    }

    /// True when the snapshot has no series.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.series_metric.is_empty()
    }
}

impl SeriesTable {
    /// Merges host tables, in the order given, into the table
    /// [`SeriesTable::from_snapshots`] builds from their snapshots in that order.
    pub fn from_hosts(hosts: &[&HostTable]) -> Result<Self, CardinalityError> {
        let total: usize = hosts.iter().map(|h| h.len()).sum();
        let too_large = |_| CardinalityError::TooLarge;
        u32::try_from(total).map_err(too_large)?;

        // Pass 1: global ids for each host's local ones, in first-appearance order (host by
        // host, local ids in their own first-appearance order), and counts per metric.
        let mut metrics = Interner::default();
        let mut keys = Interner::default();
        let mut values: Vec<Interner> = Vec::new();
        let mut infos = Vec::with_capacity(hosts.len());
        let mut metric_maps: Vec<Vec<u32>> = Vec::with_capacity(hosts.len());
        let mut key_maps: Vec<Vec<u32>> = Vec::with_capacity(hosts.len());
        let mut value_maps: Vec<Vec<Vec<u32>>> = Vec::with_capacity(hosts.len());
        let mut metric_counts: Vec<u32> = Vec::new();
        let mut metric_label_counts: Vec<u64> = Vec::new();
        for host in hosts {
            if host.info.interval_secs == 0 {
                return Err(CardinalityError::ZeroInterval {
                    host: host.info.host.clone(),
                });
            }
            infos.push(host.info.clone());
            let mut metric_map = Vec::with_capacity(host.metrics.len());
            for local in 0..host.metrics.len() as u32 {
                let id = metrics
                    .intern(host.metrics.resolve(local))
                    .ok_or(CardinalityError::TooLarge)?;
                if id as usize == metric_counts.len() {
                    metric_counts.push(0);
                    metric_label_counts.push(0);
                }
                metric_map.push(id);
            }
            for (i, &local) in host.series_metric.iter().enumerate() {
                let m = metric_map[local as usize] as usize;
                metric_counts[m] += 1;
                metric_label_counts[m] +=
                    u64::from(host.label_offsets[i + 1] - host.label_offsets[i]);
            }
            let mut key_map = Vec::with_capacity(host.keys.len());
            let mut value_map = Vec::with_capacity(host.keys.len());
            for local in 0..host.keys.len() as u32 {
                let id = keys
                    .intern(host.keys.resolve(local))
                    .ok_or(CardinalityError::TooLarge)?;
                if id as usize == values.len() {
                    values.push(Interner::default());
                }
                key_map.push(id);
                let local_values = &host.values[local as usize];
                let global_values = &mut values[id as usize];
                value_map.push(
                    (0..local_values.len() as u32)
                        .map(|v| {
                            global_values
                                .intern(local_values.resolve(v))
                                .ok_or(CardinalityError::TooLarge)
                        })
                        .collect::<Result<Vec<u32>, _>>()?,
                );
            }
            metric_maps.push(metric_map);
            key_maps.push(key_map);
            value_maps.push(value_map);
        }
        let total_labels: u64 = metric_label_counts.iter().sum();
        // Where each metric's series and labels start in the grouped layout.
        let (metric_ranges, mut next_series, mut next_label) =
            grouped_layout(&metric_counts, &metric_label_counts)?;

        // Pass 2: scatter every series into its metric's group, labels remapped.
        let mut series_host = vec![0_u32; total];
        let mut series_points = vec![0_u64; total];
        let mut label_offsets = vec![0_u32; total + 1];
        let mut labels = vec![Label { key: 0, value: 0 }; total_labels as usize];
        for (host_index, host) in hosts.iter().enumerate() {
            let host_index = u32::try_from(host_index).map_err(too_large)?;
            let (metric_map, key_map, value_map) = (
                &metric_maps[host_index as usize],
                &key_maps[host_index as usize],
                &value_maps[host_index as usize],
            );
            for (i, &local) in host.series_metric.iter().enumerate() {
                let metric = metric_map[local as usize] as usize;
                let dest = next_series[metric] as usize;
                next_series[metric] += 1;
                let own = &host.labels
                    [host.label_offsets[i] as usize..host.label_offsets[i + 1] as usize];
                let start = next_label[metric];
                next_label[metric] += own.len() as u32;
                series_host[dest] = host_index;
                series_points[dest] = host.series_points[i];
                label_offsets[dest] = start;
                for (j, label) in own.iter().enumerate() {
                    labels[start as usize + j] = Label {
                        key: key_map[label.key as usize],
                        value: value_map[label.key as usize][label.value as usize],
                    };
                }
            }
        }
        label_offsets[total] = u32::try_from(total_labels).map_err(too_large)?;
        Ok(Self {
            metrics,
            keys,
            values,
            hosts: infos,
            series_host,
            series_points,
            label_offsets,
            labels,
            metric_ranges,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::cardinality::{AnalysisOptions, Dimension, RecommendOptions};
    use crate::cost::Catalogue;
    use crate::measure::SnapshotSeries;

    /// Hosts sharing some strings and not others, metrics in varying order, label sets of
    /// varying shape, one host without series.
    fn snapshots() -> Vec<CardinalitySnapshot> {
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        (0..7_u32)
            .map(|h| {
                let mut series = Vec::new();
                if h != 3 {
                    for i in 0..(40 + h * 13) {
                        let metric = ["http_requests_total", "process.cpu.time", "node_load1"]
                            [((i + h) % 3) as usize];
                        let mut labels = BTreeMap::new();
                        labels.insert("service.name".to_owned(), format!("svc-{}", i % 5));
                        labels.insert("host.name".to_owned(), format!("host-{h}"));
                        if i % 4 != 0 {
                            labels.insert("pid".to_owned(), format!("{}", 100 + i * (h + 1)));
                        }
                        if (i + h) % 6 == 0 {
                            labels.insert("k8s.namespace.name".to_owned(), format!("ns-{h}"));
                        }
                        series.push(SnapshotSeries {
                            metric: metric.to_owned(),
                            labels,
                            points: u64::from(1 + i % 4),
                            value: Some(f64::from(i)),
                        });
                    }
                }
                CardinalitySnapshot {
                    agent_id: AgentId::new(),
                    source: SnapshotSource::Input,
                    host: format!("host-{h}"),
                    taken_at: at + chrono::Duration::seconds(i64::from(h)),
                    interval_secs: 30 + h,
                    series,
                }
            })
            .collect()
    }

    #[test]
    fn merged_host_tables_analyse_exactly_as_the_table_from_snapshots() {
        let snapshots = snapshots();
        let direct = SeriesTable::from_snapshots(&snapshots).unwrap();
        // Interned from the packed form, as the fleet cache does.
        let hosts: Vec<HostTable> = snapshots
            .iter()
            .map(|s| HostTable::from_packed(&PackedSnapshot::pack(s)).unwrap())
            .collect();
        let merged = SeriesTable::from_hosts(&hosts.iter().collect::<Vec<_>>()).unwrap();
        // The same columns, id for id.
        assert_eq!(merged.series_host, direct.series_host);
        assert_eq!(merged.series_points, direct.series_points);
        assert_eq!(merged.label_offsets, direct.label_offsets);
        assert_eq!(merged.labels, direct.labels);
        assert_eq!(merged.metric_ranges, direct.metric_ranges);
        assert_eq!(merged.hosts, direct.hosts);
        let catalogue = Catalogue::builtin();
        let options = AnalysisOptions {
            breakdowns: vec![Dimension::Metric, Dimension::Service, Dimension::Host],
            ..AnalysisOptions::default()
        };
        for model in catalogue.models() {
            assert_eq!(
                merged.analyze(&options, Some(model)).unwrap(),
                direct.analyze(&options, Some(model)).unwrap()
            );
            assert_eq!(
                merged
                    .recommend(model, &RecommendOptions::default())
                    .unwrap(),
                direct
                    .recommend(model, &RecommendOptions::default())
                    .unwrap()
            );
        }
        // A subset in another order: the same as from those snapshots in that order.
        let order = [4_usize, 0, 6];
        let subset: Vec<CardinalitySnapshot> =
            order.iter().map(|&i| snapshots[i].clone()).collect();
        let direct = SeriesTable::from_snapshots(&subset).unwrap();
        let merged =
            SeriesTable::from_hosts(&order.iter().map(|&i| &hosts[i]).collect::<Vec<_>>()).unwrap();
        assert_eq!(merged.labels, direct.labels);
        assert_eq!(
            merged.analyze(&options, None).unwrap(),
            direct.analyze(&options, None).unwrap()
        );
    }

    #[test]
    fn a_zero_interval_is_refused_as_from_snapshots_refuses_it() {
        let mut snapshots = snapshots();
        snapshots[2].interval_secs = 0;
        let hosts: Vec<HostTable> = snapshots
            .iter()
            .map(|s| HostTable::from_snapshot(s).unwrap())
            .collect();
        assert_eq!(
            SeriesTable::from_hosts(&hosts.iter().collect::<Vec<_>>()).unwrap_err(),
            SeriesTable::from_snapshots(&snapshots).unwrap_err()
        );
    }
}
