use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
    }
}

fn gauge(name: &str, points: &[(&str, f64)]) -> Metric {
    Metric {
        name: name.to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points
                .iter()
                .map(|(state, v)| NumberDataPoint {
                    attributes: vec![kv("state", state)],
                    time_unix_nano: 1_700_000_000_000_000_000,
                    value: Some(number_data_point::Value::AsDouble(*v)),
                    ..NumberDataPoint::default()
                })
                .collect(),
        })),
        ..Metric::default()
    }
}

fn request(service: &str, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", service),
                    kv("service.instance.id", "i-1"),
                ],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn by_metric(take: &OtlpTake) -> BTreeMap<(String, Option<String>), u64> {
    take.series
        .iter()
        .map(|s| {
            (
                (
                    s.metric.clone(),
                    s.labels
                        .get("state")
                        .or_else(|| s.labels.get("le"))
                        .cloned(),
                ),
                s.points,
            )
        })
        .collect()
}

#[test]
fn points_are_counted_per_series_with_the_resource_in_its_identity() {
    let inputs = OtlpInputs::new();
    let histogram = Metric {
        name: "latency".to_owned(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                count: 3,
                sum: Some(1.0),
                bucket_counts: vec![1, 2],
                explicit_bounds: vec![0.5],
                ..HistogramDataPoint::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Metric::default()
    };
    let first = request(
        "api",
        vec![gauge("mem", &[("used", 1.0), ("free", 2.0)]), histogram],
    );
    // The same series again (the next collection), and one of another service.
    let second = request("api", vec![gauge("mem", &[("used", 3.0)])]);
    let other = request("worker", vec![gauge("mem", &[("used", 4.0)])]);
    // mem used + mem free + 2 buckets + sum + count.
    assert_eq!(inputs.ingest(&first), 6);
    assert_eq!(inputs.ingest(&second), 1);
    assert_eq!(inputs.ingest(&other), 1);
    let period = Duration::from_secs(60);
    let take = inputs.take(period);
    assert_eq!(take.series.len(), 7);
    assert_eq!(take.partial(), None);
    let used: Vec<&SnapshotSeries> = take
        .series
        .iter()
        .filter(|s| s.metric == "mem" && s.labels["state"] == "used")
        .collect();
    assert_eq!(used.len(), 2, "one series per service");
    let api = used
        .iter()
        .find(|s| s.labels["service.name"] == "api")
        .unwrap();
    assert_eq!(api.labels["service.instance.id"], "i-1");
    assert_eq!(api.value, Some(3.0), "the last value received");
    // Taken at once: the count is expressed over the period from half of it at least, so a
    // series received twice counts 2 x 60 / 30 = 4, never a second's worth extrapolated.
    assert_eq!(api.points, 4);
    let points = by_metric(&take);
    assert_eq!(
        points[&("latency_bucket".to_owned(), Some("+Inf".to_owned()))],
        2
    );
    assert_eq!(points[&("latency_count".to_owned(), None)], 2);
    // The period is reset by the take.
    assert!(inputs.take(period).series.is_empty());
}

#[test]
fn a_full_period_reports_what_was_received() {
    let inputs = OtlpInputs::new();
    for _ in 0..3 {
        inputs.ingest(&request("api", vec![gauge("mem", &[("used", 1.0)])]));
    }
    // A period of 2 ms has elapsed (and more) by now: the count is scaled down to it at
    // the rate received, at least 1.
    std::thread::sleep(Duration::from_millis(20));
    let take = inputs.take(Duration::from_millis(2));
    assert_eq!(take.series[0].points, 1);
}

#[test]
fn series_beyond_the_caps_or_the_servers_bounds_are_left_out_and_counted() {
    let inputs = OtlpInputs::with_limits(2, MAX_SERIES_BYTES);
    inputs.ingest(&request(
        "api",
        vec![gauge(
            "mem",
            &[("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0)],
        )],
    ));
    // A series already held still counts.
    inputs.ingest(&request("api", vec![gauge("mem", &[("a", 1.0)])]));
    let long_key = "k".repeat(inputs::MAX_LABEL_KEY_CHARS + 1);
    let mut unfit = request("api", vec![gauge("mem", &[("a", 1.0)])]);
    unfit.resource_metrics[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv(&long_key, "x"));
    let mut long_value = request("api", vec![gauge("mem", &[("a", 1.0)])]);
    long_value.resource_metrics[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("cmd", &"v".repeat(10_000)));
    assert_eq!(inputs.ingest(&unfit), 0);
    assert_eq!(inputs.ingest(&long_value), 0, "over the cap");
    let take = inputs.take(Duration::from_secs(10));
    assert_eq!(take.series.len(), 2);
    assert_eq!(take.over_cap_points, 3);
    assert_eq!(take.unfit_points, 1);
    let why = take.partial().unwrap();
    assert!(
        why.contains("3 points") && why.contains("cap of 2 series") && why.contains("1 points"),
        "{why}"
    );

    // A long label value is cut to what the server holds, not left out.
    let fits = OtlpInputs::new();
    long_value.resource_metrics[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("bad\u{7}value", "x"));
    assert_eq!(fits.ingest(&long_value), 0, "a control character in a key");
    long_value.resource_metrics[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .pop();
    assert_eq!(fits.ingest(&long_value), 1);
    let take = fits.take(Duration::from_secs(10));
    assert_eq!(
        take.series[0].labels["cmd"].chars().count(),
        inputs::MAX_DETAIL_CHARS
    );

    // The byte cap holds too.
    let small = OtlpInputs::with_limits(MAX_SERIES, 100);
    small.ingest(&request(
        "api",
        vec![gauge("mem", &[("a", 1.0), ("b", 1.0)])],
    ));
    assert_eq!(small.take(Duration::from_secs(10)).over_cap_points, 2);
}

/// A test upstream: records each request (headers, body) and answers `status` with
/// `body` and optionally `Retry-After`.
struct Upstream {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn upstream(
    status: u16,
    answer: &'static [u8],
    retry_after: Option<&'static str>,
) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&got);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let recorded = Arc::clone(&recorded);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let recorded = Arc::clone(&recorded);
                    async move {
                        let (head, body) = req.into_parts();
                        let got = body.collect().await.unwrap().to_bytes();
                        lock(&recorded).push((head.headers, got));
                        let mut r = Response::new(Full::new(Bytes::from_static(answer)));
                        *r.status_mut() = StatusCode::from_u16(status).unwrap();
                        r.headers_mut()
                            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
                        if let Some(after) = retry_after {
                            r.headers_mut()
                                .insert(header::RETRY_AFTER, HeaderValue::from_static(after));
                        }
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream { addr, got, task }
}

async fn start(forward: Forward) -> (SocketAddr, Arc<OtlpReceiver>, watch::Sender<bool>) {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = Arc::new(OtlpReceiver::new(
        Arc::new(OtlpInputs::new()),
        forward,
        Duration::from_secs(2),
    ));
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(serve(listener, Arc::clone(&receiver), stopped));
    (addr, receiver, stop)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn rpc_message(body: &[u8]) -> String {
    RpcStatus::decode(body).unwrap().message
}

#[tokio::test]
async fn status_codes_follow_otlp_http() {
    let (addr, receiver, _stop) = start(Forward::Off).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/metrics");
    let body = request("api", vec![gauge("mem", &[("used", 1.0)])]).encode_to_vec();

    let get = client.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()[header::ALLOW], "POST");
    let traces = client
        .post(format!("http://{addr}/v1/traces"))
        .header(header::CONTENT_TYPE, PROTOBUF)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(traces.status(), 404);

    let json = client
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    assert!(rpc_message(&json.bytes().await.unwrap()).contains("OTLP/JSON"));
    let zstd = client
        .post(&url)
        .header(header::CONTENT_TYPE, PROTOBUF)
        .header(header::CONTENT_ENCODING, "zstd")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(zstd.status(), 415);
    assert!(rpc_message(&zstd.bytes().await.unwrap()).contains("compression gzip or none"));
    // Declared gzip but not gzip data.
    let not_gzip = client
        .post(&url)
        .header(header::CONTENT_TYPE, PROTOBUF)
        .header(header::CONTENT_ENCODING, "gzip")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(not_gzip.status(), 400);
    assert!(rpc_message(&not_gzip.bytes().await.unwrap()).contains("not valid gzip"));
    // A small body that inflates beyond the cap.
    let bomb = client
        .post(&url)
        .header(header::CONTENT_TYPE, PROTOBUF)
        .header(header::CONTENT_ENCODING, "gzip")
        .body(gzip(&vec![0u8; MAX_BODY_BYTES + 1]))
        .send()
        .await
        .unwrap();
    assert_eq!(bomb.status(), 413);

    let garbage = client
        .post(&url)
        .header(header::CONTENT_TYPE, PROTOBUF)
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    assert_eq!(garbage.headers()[header::CONTENT_TYPE], PROTOBUF);
    let message = rpc_message(&garbage.bytes().await.unwrap());
    assert!(message.contains("not a protobuf OTLP"), "{message}");

    let huge = client
        .post(&url)
        .header(header::CONTENT_TYPE, PROTOBUF)
        .body(vec![0u8; MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);

    // Nothing refused was counted.
    assert!(
        receiver
            .inputs()
            .take(Duration::from_secs(10))
            .series
            .is_empty()
    );
    assert_eq!(receiver.stats().refused.load(Ordering::Relaxed), 8);

    let ok = client
        .post(&url)
        .header(
            header::CONTENT_TYPE,
            "application/x-protobuf; charset=binary",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()[header::CONTENT_TYPE], PROTOBUF);
    let answer = ExportMetricsServiceResponse::decode(ok.bytes().await.unwrap()).unwrap();
    assert_eq!(answer, ExportMetricsServiceResponse::default());
    let take = receiver.inputs().take(Duration::from_secs(10));
    assert_eq!(take.series.len(), 1);
    assert_eq!(take.series[0].labels["service.name"], "api");
    assert_eq!(receiver.stats().accepted.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_tee_forwards_bodies_unchanged_and_answers_what_the_upstream_answered() {
    let up = upstream(200, b"", None).await;
    let (addr, receiver, _stop) = start(Forward::To(format!("http://{}/", up.addr))).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/metrics");
    let body = request("api", vec![gauge("mem", &[("used", 1.0)])]).encode_to_vec();
    let ok = client
        .post(&url)
        .header(header::CONTENT_TYPE, PROTOBUF)
        .header(header::AUTHORIZATION, "Bearer upstream-secret")
        .header("x-tenant", "t1")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    {
        let got = lock(&up.got);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.as_ref(), body.as_slice(), "byte for byte");
        assert_eq!(got[0].0[header::AUTHORIZATION], "Bearer upstream-secret");
        assert_eq!(got[0].0["x-tenant"], "t1");
        assert_eq!(got[0].0[header::CONTENT_TYPE], PROTOBUF);
    }
    assert_eq!(
        receiver.inputs().take(Duration::from_secs(10)).series.len(),
        1
    );
    // What the Collector's otlphttp exporter sends by default: gzip, measured inflated and
    // forwarded as sent.
    let compressed = gzip(&body);
    let ok = client
        .post(&url)
        .header(header::CONTENT_TYPE, PROTOBUF)
        .header(header::CONTENT_ENCODING, "gzip")
        .body(compressed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    {
        let got = lock(&up.got);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1.as_ref(), compressed.as_slice(), "byte for byte");
        assert_eq!(got[1].0[header::CONTENT_ENCODING], "gzip");
    }
    let take = receiver.inputs().take(Duration::from_secs(10));
    assert_eq!(take.series.len(), 1);
    assert_eq!(take.series[0].labels["service.name"], "api");
    // A refused request is not forwarded.
    let bad = client
        .post(&url)
        .header(header::CONTENT_TYPE, PROTOBUF)
        .body(vec![0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(lock(&up.got).len(), 2);
}

#[tokio::test]
async fn the_upstreams_errors_are_passed_back_and_not_measured() {
    let up = upstream(429, b"", Some("7")).await;
    let (addr, receiver, _stop) = start(Forward::To(format!("http://{}", up.addr))).await;
    let body = request("api", vec![gauge("mem", &[("used", 1.0)])]).encode_to_vec();
    let throttled = reqwest::Client::new()
        .post(format!("http://{addr}/v1/metrics"))
        .header(header::CONTENT_TYPE, PROTOBUF)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()[header::RETRY_AFTER], "7");
    assert_eq!(lock(&up.got).len(), 1);
    // Not acknowledged, so the application sends it again: counted then, not now.
    assert!(
        receiver
            .inputs()
            .take(Duration::from_secs(10))
            .series
            .is_empty()
    );
    assert_eq!(receiver.stats().upstream_errors.load(Ordering::Relaxed), 1);
    assert_eq!(receiver.stats().refused.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_503_with_retry_after() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (addr, receiver, _stop) = start(Forward::To(format!("http://{closed}"))).await;
    let body = request("api", vec![gauge("mem", &[("used", 1.0)])]).encode_to_vec();
    let failed = reqwest::Client::new()
        .post(format!("http://{addr}/v1/metrics"))
        .header(header::CONTENT_TYPE, PROTOBUF)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    assert_eq!(
        failed.headers()[header::RETRY_AFTER],
        RETRY_AFTER_SECS.to_string().as_str()
    );
    let message = rpc_message(&failed.bytes().await.unwrap());
    assert!(
        message.contains("upstream OTLP receiver failed"),
        "{message}"
    );
    assert!(
        receiver
            .inputs()
            .take(Duration::from_secs(10))
            .series
            .is_empty()
    );
    assert_eq!(receiver.stats().forward_failures.load(Ordering::Relaxed), 1);
}
