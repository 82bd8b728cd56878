//! The otelcol runtime's measurement tap: a loopback OTLP/HTTP receiver for what the real
//! Collector produces, cut into measurement windows.
//!
//! The Collector runs the deployed config plus the tap overlay rendered by core
//! ([`phoenix_core::pipeline::render::tap`]): its `input`, `baseline` and `candidate`
//! exporters post protobuf `ExportMetricsServiceRequest`s to
//! `/tap/<generation>/<stream>/v1/metrics` on a listener bound to `127.0.0.1:0`, with a
//! bearer token drawn at random when the runtime starts. Anything else is refused: another
//! path or generation (404), a missing or wrong token (401), a body over
//! [`MAX_BODY_BYTES`] (413), a body that is not an OTLP request (400).
//!
//! **Windows.** Every data point keeps the timestamp the receiver gave it through every
//! processor, so a point is assigned to a window by its own time, not by when it arrived:
//! window `k` holds the points stamped within half an interval of `anchor + k x interval`,
//! where `anchor` is the first point seen after the Collector started (a scrape time). The
//! input and both outputs of one scrape therefore land in the same window whatever a batch
//! processor delays. A window is closed `grace` after its end (the longest batch timeout of
//! the pipelines, plus two seconds); points arriving later for it are dropped and counted.
//! Within a window each stream keeps one point per series (the first) and counts every
//! point. At most [`MAX_BUFFERED_POINTS`] points are buffered; beyond, points are dropped and
//! the windows they belonged to are marked incomplete (never reported).

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use phoenix_core::pipeline::render::tap::TapStream;
use phoenix_core::pipeline::sample::{Labels, ResourceId, Symbol, names};
use phoenix_core::pipeline::{Sample, SampleBuilder};
use prost::Message as _;
use tokio::net::TcpListener;

use crate::otlp;

/// Largest request body the tap accepts, bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Most data points buffered across open windows and streams.
pub const MAX_BUFFERED_POINTS: usize = 4_000_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One stream's points in one window.
#[derive(Debug)]
struct StreamWindow {
    builder: SampleBuilder,
    seen: HashSet<(ResourceId, Symbol, Labels)>,
    points: u64,
}

impl StreamWindow {
    fn new(timestamp_ms: i64) -> Self {
        Self {
            builder: SampleBuilder::new(timestamp_ms),
            seen: HashSet::new(),
            points: 0,
        }
    }
}

#[derive(Debug)]
struct Window {
    streams: [StreamWindow; 3],
    overflowed: bool,
}

fn index_of(stream: TapStream) -> usize {
    match stream {
        TapStream::Input => 0,
        TapStream::Variant(phoenix_core::measure::Variant::Baseline) => 1,
        TapStream::Variant(phoenix_core::measure::Variant::Candidate) => 2,
    }
}

/// A closed window: what each stream produced from the same scrapes.
#[derive(Debug)]
pub struct ClosedWindow {
    /// The window's centre, milliseconds since the epoch.
    pub at_ms: i64,
    /// Input, baseline and candidate samples (one point per series).
    pub samples: [Sample; 3],
    /// Points received per stream (every point, repeats of a series included).
    pub points: [u64; 3],
    /// False when points were dropped for lack of buffer space.
    pub complete: bool,
}

impl ClosedWindow {
    /// The sample of `stream`.
    #[must_use]
    pub fn sample(&self, stream: TapStream) -> &Sample {
        &self.samples[index_of(stream)]
    }

    /// The points of `stream`.
    #[must_use]
    pub fn points(&self, stream: TapStream) -> u64 {
        self.points[index_of(stream)]
    }

    /// True when the input carries CPU utilisation (which the process scraper reports only
    /// from its second scrape on).
    #[must_use]
    pub fn input_has_utilization(&self) -> bool {
        let input = &self.samples[0];
        input
            .symbols()
            .get(names::PROCESS_CPU_UTILIZATION)
            .is_some_and(|m| input.series().iter().any(|s| s.metric == m))
    }
}

/// Counters of what the tap did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Requests accepted.
    pub requests: u64,
    /// Points accepted into a window.
    pub points: u64,
    /// Points dropped: their window was already closed, or before the first window.
    pub late: u64,
    /// Points dropped for lack of buffer space.
    pub overflow: u64,
}

/// Points cut into windows (see the module docs).
#[derive(Debug)]
pub struct TapWindows {
    interval_ms: i64,
    grace_ms: i64,
    anchor_ms: Option<i64>,
    /// Windows below this index are closed.
    closed_below: i64,
    windows: BTreeMap<i64, Window>,
    buffered: usize,
    stats: TapStats,
}

impl TapWindows {
    /// Windows of `interval_ms`, closed `grace_ms` after their end.
    #[must_use]
    pub fn new(interval_ms: i64, grace_ms: i64) -> Self {
        Self {
            interval_ms: interval_ms.max(1),
            grace_ms: grace_ms.max(0),
            anchor_ms: None,
            closed_below: 0,
            windows: BTreeMap::new(),
            buffered: 0,
            stats: TapStats::default(),
        }
    }

    /// The window length, milliseconds.
    #[must_use]
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// What happened so far.
    #[must_use]
    pub fn stats(&self) -> TapStats {
        self.stats
    }

    /// Forgets every open window and the anchor (the Collector restarted: its scrapes now
    /// run at another phase).
    pub fn reset(&mut self) {
        self.anchor_ms = None;
        self.closed_below = 0;
        self.windows.clear();
        self.buffered = 0;
    }

    fn window_of(&mut self, ts_ms: i64) -> i64 {
        let anchor = *self.anchor_ms.get_or_insert(ts_ms);
        (ts_ms - anchor + self.interval_ms / 2).div_euclid(self.interval_ms)
    }

    /// Adds every point of `request` to `stream`.
    pub fn ingest(&mut self, stream: TapStream, request: &ExportMetricsServiceRequest) {
        self.stats.requests += 1;
        let s = index_of(stream);
        otlp::for_each_request_point(request, |resource, p| self.add(s, resource, &p));
    }

    fn add(&mut self, s: usize, resource: &[(String, String)], p: &otlp::DecodedPoint<'_>) {
        let k = self.window_of(p.timestamp_ms);
        if k < self.closed_below {
            self.stats.late += 1;
            return;
        }
        let center = self.anchor_ms.unwrap_or(p.timestamp_ms) + k * self.interval_ms;
        let window = self.windows.entry(k).or_insert_with(|| Window {
            streams: [
                StreamWindow::new(center),
                StreamWindow::new(center),
                StreamWindow::new(center),
            ],
            overflowed: false,
        });
        if self.buffered >= MAX_BUFFERED_POINTS {
            window.overflowed = true;
            self.stats.overflow += 1;
            return;
        }
        let w = &mut window.streams[s];
        w.points += 1;
        self.stats.points += 1;
        let resource = w.builder.resource(resource.iter().map(|(k, v)| (k, v)));
        let metric = w.builder.symbols_mut().intern(&p.metric);
        let attributes = Labels::from_pairs(
            w.builder.symbols_mut(),
            p.attributes.iter().map(|(k, v)| (k, v)),
        );
        if w.seen.insert((resource, metric, attributes.clone())) {
            w.builder.push_symbols(
                resource,
                metric,
                p.kind,
                attributes,
                p.value,
                p.timestamp_ms,
            );
            self.buffered += 1;
        }
    }

    /// Closes and returns, oldest first, every window whose end plus grace is before
    /// `now_ms`.
    pub fn close_due(&mut self, now_ms: i64) -> Vec<ClosedWindow> {
        let Some(anchor) = self.anchor_ms else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some((&k, _)) = self.windows.first_key_value() {
            let end = anchor + k * self.interval_ms + self.interval_ms / 2;
            if now_ms < end + self.grace_ms {
                break;
            }
            let Some(window) = self.windows.remove(&k) else {
                break;
            };
            self.closed_below = k + 1;
            let points = [0, 1, 2].map(|i| window.streams[i].points);
            let buffered: usize = window.streams.iter().map(|s| s.builder.len()).sum();
            self.buffered = self.buffered.saturating_sub(buffered);
            let [a, b, c] = window.streams;
            out.push(ClosedWindow {
                at_ms: anchor + k * self.interval_ms,
                samples: [a.builder.build(), b.builder.build(), c.builder.build()],
                points,
                complete: !window.overflowed,
            });
        }
        out
    }
}

/// What the listener feeds: the windows of the current generation.
#[derive(Debug)]
pub struct TapSink {
    token: String,
    current: Mutex<Option<(u64, TapWindows)>>,
}

impl TapSink {
    /// A sink accepting requests that carry `token`.
    #[must_use]
    pub fn new(token: String) -> Self {
        Self {
            token,
            current: Mutex::new(None),
        }
    }

    /// The bearer token the Collector must send.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Accepts generation `generation` from now on, into fresh windows.
    pub fn start(&self, generation: u64, windows: TapWindows) {
        *lock(&self.current) = Some((generation, windows));
    }

    /// Accepts nothing any more.
    pub fn stop(&self) {
        *lock(&self.current) = None;
    }

    /// The current generation, if any.
    #[must_use]
    pub fn generation(&self) -> Option<u64> {
        lock(&self.current).as_ref().map(|(g, _)| *g)
    }

    /// Runs `f` on the current windows, if `generation` is current.
    pub fn with_windows<T>(
        &self,
        generation: u64,
        f: impl FnOnce(&mut TapWindows) -> T,
    ) -> Option<T> {
        let mut current = lock(&self.current);
        match current.as_mut() {
            Some((g, w)) if *g == generation => Some(f(w)),
            _ => None,
        }
    }

    fn authorized(&self, header: Option<&http::HeaderValue>) -> bool {
        let expected = format!("Bearer {}", self.token);
        let Some(got) = header.map(http::HeaderValue::as_bytes) else {
            return false;
        };
        // Constant time over the expected length: the token is a local secret.
        got.len() == expected.len()
            && got
                .iter()
                .zip(expected.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

/// `/tap/<generation>/<stream>/v1/metrics` → (generation, stream).
fn route(path: &str) -> Option<(u64, TapStream)> {
    let rest = path.strip_prefix("/tap/")?.strip_suffix("/v1/metrics")?;
    let (generation, stream) = rest.split_once('/')?;
    Some((generation.parse().ok()?, TapStream::from_name(stream)?))
}

async fn handle(sink: Arc<TapSink>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some((generation, stream)) = route(req.uri().path()) else {
        return reply(StatusCode::NOT_FOUND, "no such tap\n");
    };
    if req.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    if !sink.authorized(req.headers().get(http::header::AUTHORIZATION)) {
        return reply(StatusCode::UNAUTHORIZED, "missing or wrong token\n");
    }
    if sink.generation() != Some(generation) {
        return reply(StatusCode::NOT_FOUND, "not the current collector\n");
    }
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
        }
        Err(_) => return reply(StatusCode::BAD_REQUEST, "body could not be read\n"),
    };
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        return reply(StatusCode::BAD_REQUEST, "not an OTLP metrics request\n");
    };
    let ingest = {
        let sink = Arc::clone(&sink);
        tokio::task::spawn_blocking(move || {
            sink.with_windows(generation, |w| w.ingest(stream, &request))
        })
    };
    match ingest.await {
        Ok(Some(())) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(otlp::PROTOBUF),
            );
            r
        }
        Ok(None) => reply(StatusCode::NOT_FOUND, "not the current collector\n"),
        Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
    }
}

/// Binds the tap listener on `127.0.0.1:0` and serves `sink` until the returned task is
/// aborted. Must be called within a Tokio runtime.
///
/// # Errors
/// When the port cannot be bound.
pub fn serve(sink: Arc<TapSink>) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let sink = Arc::clone(&sink);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let sink = Arc::clone(&sink);
                    async move { Ok::<_, Infallible>(handle(sink, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, task))
}

/// A random token for the tap (32 bytes, hex).
#[must_use]
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use phoenix_core::measure::Variant;

    use super::*;

    fn request(points: &[(&str, i64, f64)]) -> ExportMetricsServiceRequest {
        let rms = points
            .iter()
            .map(|(exe, ts, value)| ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "process.executable.name".to_owned(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue((*exe).to_owned())),
                        }),
                    }],
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "process.memory.usage".to_owned(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: u64::try_from(*ts).unwrap() * 1_000_000,
                                value: Some(number_data_point::Value::AsInt(*value as i64)),
                                ..NumberDataPoint::default()
                            }],
                        })),
                        ..Metric::default()
                    }],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            })
            .collect();
        ExportMetricsServiceRequest {
            resource_metrics: rms,
        }
    }

    #[test]
    fn points_land_in_the_window_of_their_own_time_whatever_their_arrival() {
        let mut w = TapWindows::new(10_000, 1_000);
        let input = TapStream::Input;
        let candidate = TapStream::Variant(Variant::Candidate);
        // Scrape 0 at t=100_000 (processes stamped over 300 ms), scrape 1 at 110_000.
        w.ingest(input, &request(&[("a", 100_000, 1.0), ("b", 100_300, 2.0)]));
        w.ingest(input, &request(&[("a", 110_000, 1.0), ("b", 110_200, 2.0)]));
        // The candidate's output of scrape 0 arrives after scrape 1's input (a batch delay).
        w.ingest(candidate, &request(&[("a", 100_000, 1.0)]));
        assert!(w.close_due(105_000 + 999).is_empty());
        let closed = w.close_due(105_000 + 1_000);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].at_ms, 100_000);
        assert_eq!(closed[0].sample(input).len(), 2);
        assert_eq!(closed[0].sample(candidate).len(), 1);
        assert_eq!(closed[0].points(TapStream::Variant(Variant::Baseline)), 0);
        assert!(closed[0].complete);
        // Late for a closed window: dropped, counted.
        w.ingest(candidate, &request(&[("b", 100_300, 2.0)]));
        assert_eq!(w.stats().late, 1);
        let closed = w.close_due(200_000);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].at_ms, 110_000);
        assert_eq!(closed[0].sample(input).len(), 2);
    }

    #[test]
    fn a_series_repeated_in_a_window_is_one_series_and_two_points() {
        let mut w = TapWindows::new(10_000, 0);
        w.ingest(
            TapStream::Input,
            &request(&[("a", 0, 1.0), ("a", 2_000, 3.0)]),
        );
        let closed = w.close_due(10_000);
        assert_eq!(closed[0].sample(TapStream::Input).len(), 1);
        assert_eq!(closed[0].points(TapStream::Input), 2);
        assert!(!closed[0].input_has_utilization());
    }

    #[test]
    fn routes_and_tokens() {
        assert_eq!(
            route("/tap/3/candidate/v1/metrics"),
            Some((3, TapStream::Variant(Variant::Candidate)))
        );
        assert_eq!(route("/tap/x/input/v1/metrics"), None);
        assert_eq!(route("/tap/3/other/v1/metrics"), None);
        assert_eq!(route("/v1/metrics"), None);
        let sink = TapSink::new("abc".to_owned());
        assert!(sink.authorized(Some(&http::HeaderValue::from_static("Bearer abc"))));
        assert!(!sink.authorized(Some(&http::HeaderValue::from_static("Bearer abd"))));
        assert!(!sink.authorized(None));
        assert_eq!(random_token().len(), 64);
        assert_ne!(random_token(), random_token());
    }

    #[tokio::test]
    async fn the_listener_accepts_only_the_current_generation_with_the_token() {
        let sink = Arc::new(TapSink::new(random_token()));
        let (addr, task) = serve(Arc::clone(&sink)).unwrap();
        assert!(addr.ip().is_loopback());
        sink.start(5, TapWindows::new(10_000, 0));
        let client = reqwest::Client::new();
        let body = request(&[("a", 1_000, 1.0)]).encode_to_vec();
        let post = |path: String, token: Option<String>, body: Vec<u8>| {
            let mut r = client.post(format!("http://{addr}{path}")).body(body);
            if let Some(t) = token {
                r = r.header("authorization", format!("Bearer {t}"));
            }
            r.send()
        };
        let token = Some(sink.token().to_owned());
        let path = |g: u64| format!("/tap/{g}/input/v1/metrics");
        assert_eq!(
            post(path(5), None, body.clone()).await.unwrap().status(),
            401
        );
        assert_eq!(
            post(path(4), token.clone(), body.clone())
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            post(path(5), token.clone(), b"\xff\xff".to_vec())
                .await
                .unwrap()
                .status(),
            400
        );
        assert_eq!(
            post(path(5), token.clone(), body).await.unwrap().status(),
            200
        );
        let points = sink.with_windows(5, |w| w.stats().points).unwrap();
        assert_eq!(points, 1);
        task.abort();
    }
}
