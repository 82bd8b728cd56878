//! The OTLP/HTTP metrics receiver (`--otlp-receiver`): what applications on the host send
//! over OTLP is an input of the host, measured into its cardinality snapshots, and (with
//! `--otlp-receiver-forward`) passed on unchanged to where it was going.
//!
//! It speaks OTLP/HTTP as the Collector's `otlp` receiver does, for metrics: `POST
//! /v1/metrics` with a protobuf `ExportMetricsServiceRequest`, answered `200` with an
//! `ExportMetricsServiceResponse`. Refused, each with a `google.rpc.Status` body whose
//! message says why (what OTLP exporters log): a body that is not such a request (400), a
//! body over [`MAX_BODY_BYTES`], sent or inflated (413), a content type other than protobuf
//! or a content encoding other than gzip, deflate or identity (415: OTLP/JSON is not
//! decoded); another path is
//! 404 (traces and logs included), another method 405.
//!
//! **Forwarding.** With a forward URL the receiver is a tee: every request it accepts is
//! posted unchanged (body and end-to-end headers) to `<forward>/v1/metrics` and the
//! application gets the upstream's answer (status, body, `Retry-After`). When the upstream
//! cannot be reached or does not answer within the timeout, the answer is 503 with
//! `Retry-After` ([`RETRY_AFTER_SECS`]), which OTLP exporters retry: nothing is acknowledged
//! that the upstream did not acknowledge. Only acknowledged requests are measured, so a
//! retried request counts once. Without a forward URL (`off`), the receiver is a
//! measurement-only sink: it measures and acknowledges, and the data goes nowhere.
//!
//! **Measurement.** Each data point is flattened as the measurement tap flattens it
//! ([`crate::otlp::for_each_request_point`]: histograms into `_bucket`/`_sum`/`_count`
//! series, and so on) and identified by its metric name and labels (resource attributes,
//! then point attributes: [`SnapshotSeries::labels_of`]). [`OtlpInputs`] counts the points of
//! each series until the next snapshot takes them. At most [`MAX_SERIES`] distinct series
//! (and [`MAX_SERIES_BYTES`] of their names and labels) are held per snapshot period; the
//! points of further series, and of series the server could not hold (a metric name or
//! label key too long, too many labels), are counted as left out, and the snapshot's
//! collection reports them.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use phoenix_core::inputs;
use phoenix_core::measure::SnapshotSeries;
use phoenix_core::validation::ValidationErrors;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::otlp::{self, PROTOBUF};

/// Largest request body accepted, bytes (the Collector's `otlp` receiver default).
pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// Largest upstream answer passed back to the application, bytes.
pub const MAX_UPSTREAM_ANSWER_BYTES: usize = 1024 * 1024;

/// Distinct series held per snapshot period.
pub const MAX_SERIES: usize = 100_000;

/// Bytes of metric names, label keys and values held per snapshot period.
pub const MAX_SERIES_BYTES: usize = 64 * 1024 * 1024;

/// Requests read, decoded and forwarded at once (the others wait).
pub const MAX_IN_FLIGHT: usize = 8;

/// Connections held open at once (further ones are closed at once).
pub const MAX_CONNECTIONS: usize = 256;

/// How long a request's head and body may take to arrive.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `Retry-After` of a 503 when the upstream cannot be reached, seconds.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The path of the metrics signal.
pub const METRICS_PATH: &str = "/v1/metrics";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A series' points in the current period.
#[derive(Debug, Clone, Copy)]
struct Held {
    points: u64,
    value: Option<f64>,
}

type SeriesKey = (String, BTreeMap<String, String>);

#[derive(Debug)]
struct Period {
    opened: Instant,
    series: HashMap<SeriesKey, Held>,
    bytes: usize,
    over_cap: u64,
    unfit: u64,
}

impl Period {
    fn new(now: Instant) -> Self {
        Self {
            opened: now,
            series: HashMap::new(),
            bytes: 0,
            over_cap: 0,
            unfit: 0,
        }
    }
}

/// What one snapshot takes of the OTLP received since the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpTake {
    /// The series, `points` expressed over the snapshot period (see [`OtlpInputs::take`]).
    pub series: Vec<SnapshotSeries>,
    /// Points of series left out because [`MAX_SERIES`] or [`MAX_SERIES_BYTES`] was reached.
    pub over_cap_points: u64,
    /// Points of series left out because the server could not hold them.
    pub unfit_points: u64,
    /// The series cap they were held under.
    pub max_series: usize,
}

impl OtlpTake {
    /// Why this take is partial, if it is.
    #[must_use]
    pub fn partial(&self) -> Option<String> {
        (self.over_cap_points > 0 || self.unfit_points > 0).then(|| {
            format!(
                "otlp receiver: {} points of series beyond the cap of {} series per period and {} points of series the server cannot hold (metric name or label key too long, too many labels) are not in this snapshot",
                self.over_cap_points, self.max_series, self.unfit_points
            )
        })
    }
}

/// The OTLP series received since the last snapshot (see the module docs).
#[derive(Debug)]
pub struct OtlpInputs {
    period: Mutex<Period>,
    max_series: usize,
    max_bytes: usize,
}

impl Default for OtlpInputs {
    fn default() -> Self {
        Self::new()
    }
}

impl OtlpInputs {
    /// Nothing received yet; the first period opens now.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(MAX_SERIES, MAX_SERIES_BYTES)
    }

    /// [`new`](Self::new) holding at most `max_series` series and `max_bytes` of their
    /// names and labels per period.
    #[must_use]
    pub fn with_limits(max_series: usize, max_bytes: usize) -> Self {
        Self {
            period: Mutex::new(Period::new(Instant::now())),
            max_series,
            max_bytes,
        }
    }

    /// Counts every data point of `request`; returns how many were counted.
    pub fn ingest(&self, request: &ExportMetricsServiceRequest) -> u64 {
        let mut period = lock(&self.period);
        let mut counted = 0;
        otlp::for_each_request_point(request, |resource, p| {
            let labels = SnapshotSeries::labels_of(
                resource.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                p.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let value = SnapshotSeries::value_of(p.value);
            let key = (p.metric.into_owned(), labels);
            if let Some(held) = period.series.get_mut(&key) {
                held.points += 1;
                held.value = value;
                counted += 1;
                return;
            }
            // A new series: made to fit what the server holds, or left out.
            let mut series = SnapshotSeries {
                metric: key.0,
                labels: key.1,
                points: 1,
                value,
            };
            inputs::fit_series(&mut series);
            let mut errors = ValidationErrors::new();
            inputs::snapshot_series(&mut errors, "series", &series);
            if !errors.errors.is_empty() {
                period.unfit += 1;
                return;
            }
            let bytes = 64
                + series.metric.len()
                + series
                    .labels
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>();
            if period.series.len() >= self.max_series || period.bytes + bytes > self.max_bytes {
                period.over_cap += 1;
                return;
            }
            period.bytes += bytes;
            period
                .series
                .insert((series.metric, series.labels), Held { points: 1, value });
            counted += 1;
        });
        counted
    }

    /// Takes the series received since the previous take and opens a new period.
    ///
    /// Each series' `points` are the points received for it, expressed over `period`:
    /// `received x period / elapsed` (rounded, at least 1), where `elapsed` is the time since
    /// the previous take but at least half of `period`. A full period's count is therefore
    /// reported as it is; a snapshot taken early (the first one, or one taken at once because
    /// what is deployed changed) errs low rather than extrapolating a second's worth.
    pub fn take(&self, period: Duration) -> OtlpTake {
        let now = Instant::now();
        let taken = std::mem::replace(&mut *lock(&self.period), Period::new(now));
        let elapsed = now
            .duration_since(taken.opened)
            .max(period / 2)
            .as_millis()
            .max(1);
        let period_ms = period.as_millis();
        let series = taken
            .series
            .into_iter()
            .map(|((metric, labels), held)| {
                let scaled = (u128::from(held.points) * period_ms + elapsed / 2) / elapsed;
                SnapshotSeries {
                    metric,
                    labels,
                    points: u64::try_from(scaled)
                        .unwrap_or(inputs::MAX_POINTS)
                        .clamp(1, inputs::MAX_POINTS),
                    value: held.value,
                }
            })
            .collect();
        OtlpTake {
            series,
            over_cap_points: taken.over_cap,
            unfit_points: taken.unfit,
            max_series: self.max_series,
        }
    }
}

/// Where accepted requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forward {
    /// Nowhere: a measurement-only sink.
    Off,
    /// Posted unchanged to `<base>/v1/metrics`.
    To(String),
}

/// Counters of what the receiver did.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Requests acknowledged (2xx answered).
    pub accepted: AtomicU64,
    /// Points counted from them.
    pub points: AtomicU64,
    /// Requests refused by the receiver itself (4xx).
    pub refused: AtomicU64,
    /// Requests the upstream answered with an error (passed back to the application).
    pub upstream_errors: AtomicU64,
    /// Requests the upstream could not be reached for (answered 503).
    pub forward_failures: AtomicU64,
}

/// The receiver: what it counts into and where it forwards.
#[derive(Debug)]
pub struct OtlpReceiver {
    inputs: Arc<OtlpInputs>,
    forward: Forward,
    http: reqwest::Client,
    timeout: Duration,
    in_flight: Semaphore,
    stats: ReceiverStats,
}

impl OtlpReceiver {
    /// A receiver counting into `inputs` and forwarding per `forward`, each forward given
    /// `timeout`.
    #[must_use]
    pub fn new(inputs: Arc<OtlpInputs>, forward: Forward, timeout: Duration) -> Self {
        Self {
            inputs,
            forward,
            http: reqwest::Client::new(),
            timeout,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            stats: ReceiverStats::default(),
        }
    }

    /// What it did so far.
    #[must_use]
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// What it counts into.
    #[must_use]
    pub fn inputs(&self) -> &Arc<OtlpInputs> {
        &self.inputs
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC status codes used in error bodies.
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn status(status: StatusCode, code: i32, message: String) -> Response<Full<Bytes>> {
    let body = RpcStatus { code, message }.encode_to_vec();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
    r
}

fn unavailable(message: String) -> Response<Full<Bytes>> {
    let mut r = status(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

/// Headers that belong to one connection, not to the request: never forwarded.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != header::CONTENT_LENGTH {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Why the head of a request refuses it, if it does.
fn refuse_head(req: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    if req.uri().path() != METRICS_PATH {
        return Some(text(
            StatusCode::NOT_FOUND,
            "not found: this receiver takes OTLP metrics at POST /v1/metrics only\n",
        ));
    }
    if req.method() != Method::POST {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Some(r);
    }
    let headers = req.headers();
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING)
        && Encoding::of(encoding.as_bytes()).is_none()
    {
        return Some(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_ARGUMENT,
            format!(
                "content encoding {:?} is not supported: send gzip, deflate or uncompressed protobuf (the otlphttp exporter's compression gzip or none)",
                String::from_utf8_lossy(encoding.as_bytes())
            ),
        ));
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !media.eq_ignore_ascii_case(PROTOBUF) {
        return Some(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_ARGUMENT,
            format!(
                "content type {media:?} is not supported: send {PROTOBUF} (OTLP/JSON is not decoded)"
            ),
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Some(too_large());
    }
    None
}

/// A request body's content encoding: what the Collector's `otlphttp` exporter sends by
/// default (`gzip`), zlib (`deflate`) or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// Why a compressed body could not be inflated.
#[derive(Debug)]
enum Inflate {
    /// Inflated, it is over [`MAX_BODY_BYTES`].
    TooLarge,
    /// It is not valid data of its encoding.
    Invalid(std::io::Error),
}

impl Encoding {
    fn of(value: &[u8]) -> Option<Self> {
        let value = std::str::from_utf8(value).ok()?.trim();
        if value.is_empty() || value.eq_ignore_ascii_case("identity") {
            Some(Self::Identity)
        } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
            Some(Self::Gzip)
        } else if value.eq_ignore_ascii_case("deflate") {
            Some(Self::Deflate)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Identity => "protobuf",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
        }
    }

    /// The body inflated, at most [`MAX_BODY_BYTES`] (a small body must not inflate into
    /// an unbounded one).
    fn decode(self, body: &Bytes) -> Result<Bytes, Inflate> {
        use std::io::Read as _;
        let reader: Box<dyn std::io::Read + '_> = match self {
            Self::Identity => return Ok(body.clone()),
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
            Self::Deflate => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        };
        let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(MAX_BODY_BYTES));
        reader
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .map_err(Inflate::Invalid)?;
        if out.len() > MAX_BODY_BYTES {
            return Err(Inflate::TooLarge);
        }
        Ok(Bytes::from(out))
    }
}

fn too_large() -> Response<Full<Bytes>> {
    status(
        StatusCode::PAYLOAD_TOO_LARGE,
        RESOURCE_EXHAUSTED,
        format!("request body over {MAX_BODY_BYTES} bytes: send smaller batches"),
    )
}

async fn handle(receiver: Arc<OtlpReceiver>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match answer(&receiver, req).await {
        Ok(answer) => answer,
        Err(refused) => {
            receiver.stats.refused.fetch_add(1, Ordering::Relaxed);
            refused
        }
    }
}

/// The answer to `req`; `Err` when the receiver itself refuses it.
async fn answer(
    receiver: &Arc<OtlpReceiver>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
    if let Some(refused) = refuse_head(&req) {
        return Err(refused);
    }
    let Ok(_permit) = receiver.in_flight.acquire().await else {
        return Ok(unavailable("the receiver is stopping".to_owned()));
    };
    let (head, body) = req.into_parts();
    let body = match tokio::time::timeout(
        READ_TIMEOUT,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(_)) => {
            return Err(status(
                StatusCode::BAD_REQUEST,
                INVALID_ARGUMENT,
                "the request body could not be read".to_owned(),
            ));
        }
        Err(_) => {
            return Err(status(
                StatusCode::REQUEST_TIMEOUT,
                INVALID_ARGUMENT,
                format!("the request body did not arrive within {READ_TIMEOUT:?}"),
            ));
        }
    };
    let encoding = head
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|e| Encoding::of(e.as_bytes()))
        .unwrap_or(Encoding::Identity);
    // Inflating and decoding up to 20 MiB is CPU work: off the async workers.
    let raw = body.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let decoded = encoding.decode(&raw).map_err(|e| {
            Box::new(match e {
                Inflate::TooLarge => too_large(),
                Inflate::Invalid(e) => status(
                    StatusCode::BAD_REQUEST,
                    INVALID_ARGUMENT,
                    format!("the body is not valid {} data: {e}", encoding.name()),
                ),
            })
        })?;
        ExportMetricsServiceRequest::decode(decoded).map_err(|e| {
            Box::new(status(
                StatusCode::BAD_REQUEST,
                INVALID_ARGUMENT,
                format!("the body is not a protobuf OTLP ExportMetricsServiceRequest: {e}"),
            ))
        })
    })
    .await;
    let request = match decoded {
        Ok(decoded) => decoded.map_err(|refused| *refused)?,
        Err(_) => return Ok(unavailable("the receiver is stopping".to_owned())),
    };
    let answer = match &receiver.forward {
        Forward::Off => {
            let mut r = Response::new(Full::new(Bytes::from(
                ExportMetricsServiceResponse::default().encode_to_vec(),
            )));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
            r
        }
        Forward::To(base) => match forward(receiver, base, &head.headers, body).await {
            Ok(r) => r,
            Err(message) => {
                receiver
                    .stats
                    .forward_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(upstream = %base, error = %message, "OTLP forward failed; answered 503 for the application to retry");
                return Ok(unavailable(format!(
                    "the upstream OTLP receiver failed: {message}"
                )));
            }
        },
    };
    if !answer.status().is_success() {
        receiver
            .stats
            .upstream_errors
            .fetch_add(1, Ordering::Relaxed);
        return Ok(answer);
    }
    // Acknowledged (by the upstream, when forwarding): measured, once.
    let inputs = Arc::clone(&receiver.inputs);
    let points = tokio::task::spawn_blocking(move || inputs.ingest(&request))
        .await
        .unwrap_or(0);
    receiver.stats.accepted.fetch_add(1, Ordering::Relaxed);
    receiver.stats.points.fetch_add(points, Ordering::Relaxed);
    Ok(answer)
}

/// Posts `body` to `<base>/v1/metrics` and turns the upstream's answer into the
/// application's. `Err` when there is no answer to pass on.
async fn forward(
    receiver: &OtlpReceiver,
    base: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    let url = format!("{}{METRICS_PATH}", base.trim_end_matches('/'));
    let mut upstream = receiver
        .http
        .post(url)
        .headers(end_to_end(headers))
        .timeout(receiver.timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| error_text(&e))?;
    let mut answer = Response::builder().status(upstream.status());
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(v) = upstream.headers().get(&name) {
            answer = answer.header(name, v.clone());
        }
    }
    let mut collected = Vec::new();
    while let Some(chunk) = upstream.chunk().await.map_err(|e| error_text(&e))? {
        if collected.len() + chunk.len() > MAX_UPSTREAM_ANSWER_BYTES {
            return Err(format!(
                "its answer is over {MAX_UPSTREAM_ANSWER_BYTES} bytes"
            ));
        }
        collected.extend_from_slice(&chunk);
    }
    answer
        .body(Full::new(Bytes::from(collected)))
        .map_err(|e| e.to_string())
}

fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Binds the receiver's listener on `addr`.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `receiver` on `listener` until `stop` turns true (or its sender is gone);
/// requests in progress finish on their own.
pub async fn serve(
    listener: TcpListener,
    receiver: Arc<OtlpReceiver>,
    mut stop: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|v| *v) => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors or similar: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let receiver = Arc::clone(&receiver);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let receiver = Arc::clone(&receiver);
                async move { Ok::<_, Infallible>(handle(receiver, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests;
