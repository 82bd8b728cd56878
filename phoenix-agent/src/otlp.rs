//! The OTLP/HTTP exporter (protobuf): a pipeline's output as an
//! `ExportMetricsServiceRequest`, posted to `<endpoint>/v1/metrics`.
//!
//! Mapping: one `ResourceMetrics` per sample resource (its attributes, plus
//! `phoenix.pipeline` naming the pipeline), one scope `phoenix-agent`, one `Metric` per
//! metric name within a resource: gauges as `Gauge`, counters as monotonic cumulative
//! `Sum`, up-down counters as non-monotonic cumulative `Sum`. Point attributes become data
//! point attributes.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use phoenix_core::pipeline::Sample;
use phoenix_core::pipeline::sample::{Labels, MetricKind, Symbol};
use prost::Message as _;

/// The protobuf media type OTLP/HTTP uses.
pub const PROTOBUF: &str = "application/x-protobuf";

fn kv(sample: &Sample, labels: &Labels) -> Vec<KeyValue> {
    labels
        .pairs()
        .iter()
        .map(|(k, v)| string_kv(sample.resolve(*k), sample.resolve(*v)))
        .collect()
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
    }
}

/// The request carrying `sample`; `start_unix_nano` is the start of cumulative sums (the
/// agent's start).
#[must_use]
pub fn encode_request(
    sample: &Sample,
    pipeline: &str,
    start_unix_nano: u64,
) -> ExportMetricsServiceRequest {
    // Resource index -> (metric symbol -> metric index in that resource).
    let mut resources: Vec<Option<(ResourceMetrics, HashMap<Symbol, usize>)>> =
        vec![None; sample.resources().len()];
    let mut order = Vec::new();
    for s in sample.series() {
        let slot = &mut resources[s.resource.0 as usize];
        let (rm, index) = slot.get_or_insert_with(|| {
            order.push(s.resource.0 as usize);
            let mut attributes = kv(sample, sample.resource(s.resource));
            attributes.push(string_kv("phoenix.pipeline", pipeline));
            (
                ResourceMetrics {
                    resource: Some(Resource {
                        attributes,
                        ..Resource::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "phoenix-agent".to_owned(),
                            version: env!("CARGO_PKG_VERSION").to_owned(),
                            ..InstrumentationScope::default()
                        }),
                        ..ScopeMetrics::default()
                    }],
                    ..ResourceMetrics::default()
                },
                HashMap::new(),
            )
        });
        let metrics = &mut rm.scope_metrics[0].metrics;
        let i = *index.entry(s.metric).or_insert_with(|| {
            let data = match s.kind {
                MetricKind::Gauge => metric::Data::Gauge(Gauge::default()),
                MetricKind::Counter | MetricKind::UpDownCounter => metric::Data::Sum(Sum {
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: s.kind == MetricKind::Counter,
                    ..Sum::default()
                }),
            };
            metrics.push(Metric {
                name: sample.resolve(s.metric).to_owned(),
                data: Some(data),
                ..Metric::default()
            });
            metrics.len() - 1
        });
        let point = NumberDataPoint {
            attributes: kv(sample, &s.attributes),
            start_time_unix_nano: if s.kind == MetricKind::Gauge {
                0
            } else {
                start_unix_nano
            },
            time_unix_nano: u64::try_from(s.timestamp_ms).unwrap_or(0) * 1_000_000,
            value: Some(number_data_point::Value::AsDouble(s.value)),
            ..NumberDataPoint::default()
        };
        match &mut metrics[i].data {
            Some(metric::Data::Gauge(g)) => g.data_points.push(point),
            Some(metric::Data::Sum(sum)) => sum.data_points.push(point),
            _ => {}
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: order
            .into_iter()
            .filter_map(|r| resources[r].take().map(|(rm, _)| rm))
            .collect(),
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The request failed.
    #[error("OTLP export request failed")]
    Request(#[source] reqwest::Error),
    /// The receiver answered with an error status.
    #[error("OTLP receiver answered {0}")]
    Status(u16),
}

/// Posts an encoded request to `<endpoint>/v1/metrics`.
///
/// # Errors
/// A transport error or a non-2xx answer.
pub async fn export(
    client: &reqwest::Client,
    endpoint: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), ExportError> {
    let url = format!("{}/v1/metrics", endpoint.trim_end_matches('/'));
    let response = client
        .post(url)
        .header(http::header::CONTENT_TYPE, PROTOBUF)
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(ExportError::Request)?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(ExportError::Status(response.status().as_u16()))
    }
}

/// Encodes `request` as protobuf bytes.
#[must_use]
pub fn to_bytes(request: &ExportMetricsServiceRequest) -> Vec<u8> {
    request.encode_to_vec()
}

/// One data point of a decoded request, as the Prometheus exporter would expose it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedPoint<'a> {
    /// The metric name (`_bucket`, `_sum`, `_count` added for histograms and summaries).
    pub metric: std::borrow::Cow<'a, str>,
    /// Gauge, counter or up-down counter.
    pub kind: MetricKind,
    /// The data point's attributes (`le` or `quantile` added for buckets and quantiles).
    pub attributes: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The point's own time, milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// An attribute value as text: strings as they are, numbers and booleans as written in
/// Prometheus labels, arrays and maps in a JSON-like form.
fn any_value_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex_text(b),
        Some(any_value::Value::ArrayValue(a)) => format!(
            "[{}]",
            a.values
                .iter()
                .map(|v| any_value_text(Some(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Some(any_value::Value::KvlistValue(l)) => format!(
            "{{{}}}",
            l.values
                .iter()
                .map(|kv| format!("{}:{}", kv.key, any_value_text(kv.value.as_ref())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        #[allow(
            unreachable_patterns,
            reason = "newer protocol versions add value kinds"
        )]
        Some(_) => String::new(),
    }
}

fn hex_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Attributes as (key, text) pairs.
#[must_use]
pub fn attributes_text(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), any_value_text(kv.value.as_ref())))
        .collect()
}

fn millis(time_unix_nano: u64) -> i64 {
    i64::try_from(time_unix_nano / 1_000_000).unwrap_or(i64::MAX)
}

/// Calls `f` with each data point of `request` and its resource's attributes (as text),
/// flattened as [`for_each_point`] does: the one OTLP to series conversion of the agent,
/// which the otelcol runtime's measurement tap and the OTLP receiver both use.
pub fn for_each_request_point<'a>(
    request: &'a ExportMetricsServiceRequest,
    mut f: impl FnMut(&[(String, String)], DecodedPoint<'a>),
) {
    for rm in &request.resource_metrics {
        let resource = rm
            .resource
            .as_ref()
            .map(|r| attributes_text(&r.attributes))
            .unwrap_or_default();
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                for_each_point(metric, |p| f(&resource, p));
            }
        }
    }
}

/// The "no recorded value" data point flag (a staleness marker, not a value).
const NO_RECORDED_VALUE: u32 = 1;

/// Calls `f` with each data point of `metric`, flattened the way the Collector's Prometheus
/// exporter exposes it: gauges and sums as one series per point; histograms as cumulative
/// `_bucket` counters (with `le`, `+Inf` last), `_sum` and `_count`; exponential histograms
/// as `_sum` and `_count`; summaries as `quantile` gauges, `_sum` and `_count`. Points
/// flagged "no recorded value" are skipped.
#[allow(
    clippy::cast_precision_loss,
    reason = "counts above 2^53 lose precision in f64 as they do in Prometheus"
)]
pub fn for_each_point<'a>(metric: &'a Metric, mut f: impl FnMut(DecodedPoint<'a>)) {
    use std::borrow::Cow;
    let name = metric.name.as_str();
    let suffixed = |suffix: &str| Cow::Owned(format!("{name}{suffix}"));
    let number = |p: &NumberDataPoint| match p.value {
        Some(number_data_point::Value::AsDouble(d)) => Some(d),
        Some(number_data_point::Value::AsInt(i)) => Some(i as f64),
        None => None,
    };
    match &metric.data {
        Some(metric::Data::Gauge(g)) => {
            for p in &g.data_points {
                if let Some(value) = number(p).filter(|_| p.flags & NO_RECORDED_VALUE == 0) {
                    f(DecodedPoint {
                        metric: Cow::Borrowed(name),
                        kind: MetricKind::Gauge,
                        attributes: attributes_text(&p.attributes),
                        value,
                        timestamp_ms: millis(p.time_unix_nano),
                    });
                }
            }
        }
        Some(metric::Data::Sum(s)) => {
            let kind = if s.is_monotonic {
                MetricKind::Counter
            } else {
                MetricKind::UpDownCounter
            };
            for p in &s.data_points {
                if let Some(value) = number(p).filter(|_| p.flags & NO_RECORDED_VALUE == 0) {
                    f(DecodedPoint {
                        metric: Cow::Borrowed(name),
                        kind,
                        attributes: attributes_text(&p.attributes),
                        value,
                        timestamp_ms: millis(p.time_unix_nano),
                    });
                }
            }
        }
        Some(metric::Data::Histogram(h)) => {
            for p in h
                .data_points
                .iter()
                .filter(|p| p.flags & NO_RECORDED_VALUE == 0)
            {
                let attributes = attributes_text(&p.attributes);
                let ts = millis(p.time_unix_nano);
                let mut cumulative = 0u64;
                for (i, count) in p.bucket_counts.iter().enumerate() {
                    cumulative = cumulative.saturating_add(*count);
                    let le = p
                        .explicit_bounds
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), ToString::to_string);
                    let mut a = attributes.clone();
                    a.push(("le".to_owned(), le));
                    f(DecodedPoint {
                        metric: suffixed("_bucket"),
                        kind: MetricKind::Counter,
                        attributes: a,
                        value: cumulative as f64,
                        timestamp_ms: ts,
                    });
                }
                if let Some(sum) = p.sum {
                    f(DecodedPoint {
                        metric: suffixed("_sum"),
                        kind: MetricKind::Counter,
                        attributes: attributes.clone(),
                        value: sum,
                        timestamp_ms: ts,
                    });
                }
                f(DecodedPoint {
                    metric: suffixed("_count"),
                    kind: MetricKind::Counter,
                    attributes,
                    value: p.count as f64,
                    timestamp_ms: ts,
                });
            }
        }
        Some(metric::Data::ExponentialHistogram(h)) => {
            for p in h
                .data_points
                .iter()
                .filter(|p| p.flags & NO_RECORDED_VALUE == 0)
            {
                let attributes = attributes_text(&p.attributes);
                let ts = millis(p.time_unix_nano);
                if let Some(sum) = p.sum {
                    f(DecodedPoint {
                        metric: suffixed("_sum"),
                        kind: MetricKind::Counter,
                        attributes: attributes.clone(),
                        value: sum,
                        timestamp_ms: ts,
                    });
                }
                f(DecodedPoint {
                    metric: suffixed("_count"),
                    kind: MetricKind::Counter,
                    attributes,
                    value: p.count as f64,
                    timestamp_ms: ts,
                });
            }
        }
        Some(metric::Data::Summary(s)) => {
            for p in s
                .data_points
                .iter()
                .filter(|p| p.flags & NO_RECORDED_VALUE == 0)
            {
                let attributes = attributes_text(&p.attributes);
                let ts = millis(p.time_unix_nano);
                for q in &p.quantile_values {
                    let mut a = attributes.clone();
                    a.push(("quantile".to_owned(), q.quantile.to_string()));
                    f(DecodedPoint {
                        metric: Cow::Borrowed(name),
                        kind: MetricKind::Gauge,
                        attributes: a,
                        value: q.value,
                        timestamp_ms: ts,
                    });
                }
                f(DecodedPoint {
                    metric: suffixed("_sum"),
                    kind: MetricKind::Counter,
                    attributes: attributes.clone(),
                    value: p.sum,
                    timestamp_ms: ts,
                });
                f(DecodedPoint {
                    metric: suffixed("_count"),
                    kind: MetricKind::Counter,
                    attributes,
                    value: p.count as f64,
                    timestamp_ms: ts,
                });
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use phoenix_core::pipeline::ProcessRecord;
    use phoenix_core::pipeline::sample::CpuStates;
    use prost::Message as _;

    use super::*;

    #[test]
    fn decodes_points_as_the_prometheus_exporter_exposes_them() {
        use opentelemetry_proto::tonic::metrics::v1::{
            Histogram, HistogramDataPoint, Summary, SummaryDataPoint, summary_data_point,
        };
        let attrs = vec![string_kv("path", "/a")];
        let histogram = Metric {
            name: "latency".to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: attrs.clone(),
                    time_unix_nano: 2_000_000_000,
                    count: 6,
                    sum: Some(1.5),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![0.1, 0.5],
                    ..HistogramDataPoint::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Metric::default()
        };
        let mut seen = Vec::new();
        for_each_point(&histogram, |p| {
            seen.push((
                p.metric.into_owned(),
                p.attributes,
                p.value,
                p.kind,
                p.timestamp_ms,
            ));
        });
        let le = |v: &str| {
            vec![
                ("path".to_owned(), "/a".to_owned()),
                ("le".to_owned(), v.to_owned()),
            ]
        };
        let plain = vec![("path".to_owned(), "/a".to_owned())];
        let c = MetricKind::Counter;
        assert_eq!(
            seen,
            vec![
                ("latency_bucket".to_owned(), le("0.1"), 1.0, c, 2_000),
                ("latency_bucket".to_owned(), le("0.5"), 3.0, c, 2_000),
                ("latency_bucket".to_owned(), le("+Inf"), 6.0, c, 2_000),
                ("latency_sum".to_owned(), plain.clone(), 1.5, c, 2_000),
                ("latency_count".to_owned(), plain.clone(), 6.0, c, 2_000),
            ]
        );
        let summary = Metric {
            name: "rpc".to_owned(),
            data: Some(metric::Data::Summary(Summary {
                data_points: vec![
                    SummaryDataPoint {
                        count: 2,
                        sum: 0.3,
                        quantile_values: vec![summary_data_point::ValueAtQuantile {
                            quantile: 0.5,
                            value: 0.1,
                        }],
                        ..SummaryDataPoint::default()
                    },
                    // A staleness marker is no value.
                    SummaryDataPoint {
                        flags: 1,
                        ..SummaryDataPoint::default()
                    },
                ],
            })),
            ..Metric::default()
        };
        let mut names = Vec::new();
        for_each_point(&summary, |p| names.push((p.metric.into_owned(), p.kind)));
        assert_eq!(
            names,
            vec![
                ("rpc".to_owned(), MetricKind::Gauge),
                ("rpc_sum".to_owned(), c),
                ("rpc_count".to_owned(), c),
            ]
        );
        let ints = Metric {
            name: "up".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    value: Some(number_data_point::Value::AsInt(7)),
                    attributes: vec![KeyValue {
                        key: "n".to_owned(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::IntValue(3)),
                        }),
                    }],
                    ..NumberDataPoint::default()
                }],
                is_monotonic: false,
                ..Sum::default()
            })),
            ..Metric::default()
        };
        let mut got = Vec::new();
        for_each_point(&ints, |p| got.push((p.kind, p.value, p.attributes)));
        assert_eq!(
            got,
            vec![(
                MetricKind::UpDownCounter,
                7.0,
                vec![("n".to_owned(), "3".to_owned())]
            )]
        );
    }

    #[test]
    fn encodes_one_resource_per_process_and_round_trips() {
        let processes: Vec<ProcessRecord> = (1..=3)
            .map(|pid| ProcessRecord {
                pid,
                executable_name: format!("p{pid}"),
                cpu_time: CpuStates {
                    user: 1.0,
                    system: 2.0,
                    wait: Some(0.5),
                },
                memory_usage_bytes: 100,
                memory_virtual_bytes: 200,
                ..ProcessRecord::default()
            })
            .collect();
        let sample = Sample::from_processes(1_700_000_000_000, &processes);
        let request = encode_request(&sample, "experiment/x/baseline", 1);
        let decoded = ExportMetricsServiceRequest::decode(to_bytes(&request).as_slice()).unwrap();
        assert_eq!(decoded, request);
        assert_eq!(decoded.resource_metrics.len(), 3);
        let points: usize = decoded
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics[0].metrics)
            .map(|m| match &m.data {
                Some(metric::Data::Gauge(g)) => g.data_points.len(),
                Some(metric::Data::Sum(s)) => s.data_points.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(points, sample.len());
        let cpu = decoded.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == "process.cpu.time")
            .unwrap();
        let Some(metric::Data::Sum(sum)) = &cpu.data else {
            panic!("cpu time is a sum")
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points.len(), 3);
        let attrs = &decoded.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert!(attrs.iter().any(|a| a.key == "process.pid"));
        assert!(attrs.iter().any(|a| a.key == "phoenix.pipeline"));
    }
}
