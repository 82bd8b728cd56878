//! OTLP an application sends through the agent is an input of the host: the real server
//! (in-process on 127.0.0.1:0), a real `phoenix-agent` process with `--otlp-receiver` and
//! `--otlp-receiver-forward` pointing at a recording sink, and the real OpenTelemetry
//! Collector (`support::collector::collector_binary()`) as the application: its
//! `hostmetrics` receiver collecting every 2 s, a `resource` processor naming the service,
//! and two `otlphttp` exporters with the same data, one through the agent and one straight
//! to a second recording sink.
//!
//! Asserted: the host's input snapshot carries the Collector's series with the points the
//! agent actually received in the snapshot period (one per collection), the fleet's views
//! price them under the service's name at ~30 points per minute per series, and the sink
//! behind the agent received, byte for byte, every request the Collector sent (the same
//! multiset of bodies as the direct sink).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use phoenix_core::PhoenixConfig;
use phoenix_core::measure::SnapshotSource;
use tokio::process::{Child, Command};

mod support;
use support::collector::collector_binary;
use support::harness::{RunningCollector, free_port};
use support::stand::{ENROLL, Stand, eventually};

/// The server's snapshot interval (told to agents in heartbeat answers).
const SNAPSHOT_SECS: u64 = 20;
/// The Collector's collection interval.
const COLLECTION_SECS: u64 = 2;
const SERVICE: &str = "phoenix-otlp-e2e";
const HOST: &str = "otlp-host";

/// What a sink received: each request's headers and body.
type Received = Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>;

/// An OTLP/HTTP receiver that records every request and acknowledges it with an empty
/// `ExportMetricsServiceResponse`.
async fn recording_sink() -> (SocketAddr, Received, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let recorded = Arc::clone(&received);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let recorded = Arc::clone(&recorded);
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<Incoming>| {
                    let recorded = Arc::clone(&recorded);
                    async move {
                        let (head, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes());
                        let mut answer = http::Response::new(Full::new(Bytes::new()));
                        match body {
                            Ok(body) if head.uri.path() == "/v1/metrics" => {
                                recorded.lock().unwrap().push((head.headers, body));
                                answer.headers_mut().insert(
                                    http::header::CONTENT_TYPE,
                                    http::HeaderValue::from_static("application/x-protobuf"),
                                );
                            }
                            _ => *answer.status_mut() = http::StatusCode::NOT_FOUND,
                        }
                        Ok::<_, Infallible>(answer)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received, task)
}

fn start_agent(
    stand: &Stand,
    state_dir: &Path,
    receiver: SocketAddr,
    forward: SocketAddr,
) -> Child {
    stand
        .agent(state_dir, HOST)
        .args(["--otlp-receiver", &receiver.to_string()])
        .args(["--otlp-receiver-forward", &format!("http://{forward}")])
        .spawn()
}

/// The application: the Collector's host metrics, named as a service, exported over
/// OTLP/HTTP (protobuf, gzip as the exporter sends by default, no queue so that each collection is one request to
/// each exporter) through the agent and straight to the reference sink.
fn collector_config(agent: SocketAddr, direct: SocketAddr, health_port: u16) -> String {
    format!(
        r"receivers:
  hostmetrics:
    collection_interval: {COLLECTION_SECS}s
    scrapers:
      load: {{}}
      memory: {{}}
processors:
  resource:
    attributes:
      - key: service.name
        value: {SERVICE}
        action: upsert
      - key: service.instance.id
        value: collector-under-test
        action: upsert
exporters:
  otlphttp/agent:
    endpoint: http://{agent}
    sending_queue:
      enabled: false
  otlphttp/direct:
    endpoint: http://{direct}
    sending_queue:
      enabled: false
extensions:
  health_check:
    endpoint: 127.0.0.1:{health_port}
service:
  telemetry:
    metrics:
      level: none
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [hostmetrics]
      processors: [resource]
      exporters: [otlphttp/agent, otlphttp/direct]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_through_the_agent_is_measured_in_the_host_snapshot_and_forwarded_unchanged() {
    let Some(collector) = collector_binary() else {
        return;
    };
    let (forward_addr, forwarded, _forward_sink) = recording_sink().await;
    let (direct_addr, direct, _direct_sink) = recording_sink().await;

    let stand = Stand::start(PhoenixConfig {
        heartbeat_interval: chrono::Duration::seconds(1),
        safety_poll: chrono::Duration::milliseconds(200),
        snapshot_interval: chrono::Duration::seconds(i64::try_from(SNAPSHOT_SECS).unwrap()),
        ..PhoenixConfig::default()
    })
    .await;
    let (client, phoenix) = (&stand.client, &stand.phoenix);
    let dir = tempfile::tempdir().unwrap();
    let receiver: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut agent = start_agent(&stand, &dir.path().join("agent"), receiver, forward_addr);
    eventually("the agent's OTLP receiver to listen", 60, async || {
        tokio::net::TcpStream::connect(receiver).await.ok()
    })
    .await;
    eventually("the agent to report", 60, async || {
        let flow = client.cost_flow(None, &["host"]).await.ok()?;
        (flow.coverage.reporting_live == 1).then_some(())
    })
    .await;

    let health_port = free_port();
    let running = RunningCollector::start(
        &collector,
        &collector_config(receiver, direct_addr, health_port),
        health_port,
    )
    .await;
    let started = chrono::Utc::now();

    // A snapshot whose whole period ran while the Collector sent (the previous snapshot
    // was taken after the Collector's first collection).
    let full_period_after =
        started + chrono::Duration::seconds(i64::try_from(SNAPSHOT_SECS).unwrap() + 4);
    let snapshot = eventually(
        "a snapshot covering a full period of OTLP",
        120,
        async || {
            phoenix.snapshots().await.unwrap().into_iter().find(|s| {
                s.source == SnapshotSource::Input
                    && s.host == HOST
                    && s.taken_at > full_period_after
            })
        },
    )
    .await;
    assert_eq!(
        snapshot.interval_secs,
        u32::try_from(SNAPSHOT_SECS).unwrap()
    );
    let otlp: Vec<_> = snapshot
        .series
        .iter()
        .filter(|s| s.labels.get("service.name").map(String::as_str) == Some(SERVICE))
        .collect();
    let metrics: BTreeMap<&str, usize> = otlp.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.metric.as_str()).or_default() += 1;
        m
    });
    eprintln!("OTLP series in the snapshot, by metric: {metrics:?}");
    assert!(
        metrics.contains_key("system.cpu.load_average.1m"),
        "{metrics:?}"
    );
    assert!(
        metrics.get("system.memory.usage").is_some_and(|n| *n >= 2),
        "{metrics:?}"
    );
    assert!(
        otlp.iter()
            .all(|s| s.labels["service.instance.id"] == "collector-under-test")
    );
    // One point per collection: 20 s / 2 s = 10 per series, give or take the collection
    // that falls on a boundary.
    let expected = SNAPSHOT_SECS / COLLECTION_SECS;
    let points: Vec<u64> = otlp.iter().map(|s| s.points).collect();
    eprintln!("points per OTLP series in a {SNAPSHOT_SECS} s snapshot: {points:?}");
    assert!(
        points
            .iter()
            .all(|p| (expected - 2..=expected + 2).contains(p)),
        "expected ~{expected} points per series, got {points:?}"
    );

    // The fleet's views: the service's series priced, at the Collector's real rate.
    let report = client
        .cardinality(&["service"], Some(1000), None)
        .await
        .unwrap();
    let group = report.breakdowns[0]
        .groups
        .iter()
        .find(|g| g.value == SERVICE)
        .unwrap_or_else(|| panic!("{SERVICE} missing from {:#?}", report.breakdowns[0]));
    assert_eq!(group.series, otlp.len() as u64);
    let per_series = group.points_per_minute as f64 / group.series as f64;
    eprintln!(
        "{SERVICE}: {} series, {} points per minute ({per_series:.1} per series; collection every {COLLECTION_SECS} s)",
        group.series, group.points_per_minute
    );
    assert!(
        (24.0..=36.0).contains(&per_series),
        "expected ~{} points per minute per series, got {per_series}",
        60 / COLLECTION_SECS
    );
    let flow = client
        .cost_flow(Some("generic-per-million"), &["service", "host"])
        .await
        .unwrap();
    let by = |dimension: &str| {
        flow.cost_flow
            .flows
            .iter()
            .find(|f| f.dimension == dimension)
            .unwrap()
            .groups
            .clone()
    };
    let priced = by("service")
        .into_iter()
        .find(|g| g.value == SERVICE)
        .unwrap_or_else(|| panic!("{SERVICE} missing from the cost flow"));
    eprintln!(
        "{SERVICE} priced: {} a month (generic-per-million)",
        priced.monthly
    );
    assert!(priced.monthly.parse::<f64>().unwrap() > 0.0, "{priced:#?}");
    assert!(by("host").iter().any(|g| g.value == HOST));

    // Everything the Collector sent went through, byte for byte: stop it (it flushes),
    // then the sink behind the agent holds the same bodies as the direct one.
    let status = running.stop().await;
    assert!(status.success(), "{status}");
    let bodies = |received: &Received| {
        let mut b: Vec<Bytes> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| body.clone())
            .collect();
        b.sort();
        b
    };
    let through_agent = bodies(&forwarded);
    let reference = bodies(&direct);
    eprintln!(
        "requests: {} through the agent, {} straight to the sink",
        through_agent.len(),
        reference.len()
    );
    assert!(reference.len() >= usize::try_from(SNAPSHOT_SECS / COLLECTION_SECS).unwrap());
    assert!(
        through_agent == reference,
        "the bodies forwarded by the agent differ from what the Collector sent"
    );
    for (headers, _) in forwarded.lock().unwrap().iter() {
        assert_eq!(
            headers[http::header::CONTENT_TYPE],
            "application/x-protobuf"
        );
        assert_eq!(headers[http::header::CONTENT_ENCODING], "gzip");
        let agent = headers[http::header::USER_AGENT].to_str().unwrap();
        assert!(agent.contains("OpenTelemetry Collector"), "{agent}");
    }

    let _ = agent.kill().await;
    stand.stop().await;
}

/// The agent binary's exit status and standard error, run with `args` (no server needed:
/// both failures come before the agent reaches one).
async fn agent_fails(state_dir: &Path, args: &[&str]) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_phoenix-agent"))
            .args([
                "--server",
                "http://127.0.0.1:9",
                "--enrollment-token",
                ENROLL,
            ])
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--listen", "off"])
            .args(args)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the agent exits at once")
    .unwrap();
    assert!(!output.status.success(), "{args:?} started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_receiver_that_cannot_run_stops_the_agent_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = agent_fails(
        dir.path(),
        &["--otlp-receiver", &addr, "--otlp-receiver-forward", "off"],
    )
    .await;
    assert!(
        stderr.contains(&format!("cannot start the OTLP receiver on {addr}"))
            && stderr.contains("in use"),
        "{stderr}"
    );
    // A receiver without a decision on where its data goes is refused, naming the choice.
    let stderr = agent_fails(dir.path(), &["--otlp-receiver", "127.0.0.1:0"]).await;
    assert!(
        stderr.contains("otlp_receiver_forward") && stderr.contains("measurement-only"),
        "{stderr}"
    );
}
