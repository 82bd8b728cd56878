//! The edge before routing: no body is read without a known credential, bodies are
//! capped per exact route, share one in-flight budget and must arrive in time, and failed
//! authentications are throttled per client address and per agent.

use std::time::Duration;

use phoenix_client::api::token::{NewToken, Role};
use phoenix_server::ServerConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{Backend, TestServer};

crate::backends!(
    bodies_wait_for_a_known_credential,
    bodies_are_capped_budgeted_and_timed,
    failed_authentications_are_throttled
);

async fn bodies_wait_for_a_known_credential(backend: Backend) {
    let server = TestServer::start_on(backend, ServerConfig::default()).await;
    let addr = server.base.trim_start_matches("http://").to_owned();

    // A 30 MiB upload announced without a token is refused at once: the server answers
    // without waiting for a byte of the body.
    for auth in [
        "",
        "authorization: Bearer phx_user_garbage-garbage-garbage\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "POST /api/v1/agent/metrics HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: 31457280\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut head = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head))
            .await
            .expect("answered without the body")
            .unwrap();
        let head = String::from_utf8_lossy(&head[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    }

    // Malformed JSON under a garbage token is a 401, not a parser error.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/experiments", server.base))
        .bearer_auth("phx_user_garbage-garbage-garbage")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // The same body under a real token reaches the route and its parser.
    let resp = http
        .post(format!("{}/api/v1/experiments", server.base))
        .bearer_auth(crate::harness::ADMIN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let listed = server
        .admin()
        .list_experiments(&Default::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "nothing was created");
    server.stop().await;
}

/// Sends a request head and `sent` bytes of a body announced as `length` bytes, and
/// keeps the connection open without sending the rest.
async fn stall(
    addr: &str,
    path: &str,
    token: &str,
    length: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{}",
                " ".repeat(sent)
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream
}

/// Reads what the server answered on `stream` within `within`.
async fn answer(stream: &mut tokio::net::TcpStream, within: Duration) -> String {
    let mut head = vec![0u8; 1024];
    let n = tokio::time::timeout(within, stream.read(&mut head))
        .await
        .expect("answered in time")
        .unwrap();
    String::from_utf8_lossy(&head[..n]).into_owned()
}

async fn bodies_are_capped_budgeted_and_timed(backend: Backend) {
    let server = TestServer::start_on(
        backend,
        ServerConfig {
            max_body_bytes: 4096,
            max_metrics_body_bytes: 64 * 1024,
            max_bodies_in_flight_bytes: 64 * 1024,
            body_read_timeout_secs: 2,
            ..ServerConfig::default()
        },
    )
    .await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let agent = server.agent("edge-host").await;
    let http = reqwest::Client::new();
    let post = |path: &str, token: &str, body: String| {
        http.post(format!("{}{path}", server.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(10_000));

    // The large cap belongs to the routes that carry a host's sample exactly (the metrics
    // report and the preview of a recorded exposition): there a 10 kB body reaches the
    // parser; on any other route, or a path that merely ends like it, it is too large or
    // no route at all, answered without reading the body.
    for (path, token) in [
        ("/api/v1/agent/metrics", agent.credential.as_str()),
        ("/api/v1/pipelines/preview", crate::harness::ADMIN),
    ] {
        let resp = post(path, token, big.clone()).await.unwrap();
        assert!(
            [400, 422].contains(&resp.status().as_u16()),
            "{path}: {}",
            resp.status()
        );
    }
    let resp = post("/api/v1/experiments", crate::harness::ADMIN, big.clone())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let mut stream = stall(
        &addr,
        "/x/api/v1/agent/metrics",
        &agent.credential,
        31_457_280,
        0,
    )
    .await;
    let head = answer(&mut stream, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");

    // One stalled upload holds the whole in-flight budget: another body does not fit and
    // is told to come back (503, Retry-After), while requests without a body still pass.
    let started = std::time::Instant::now();
    let mut stalled = stall(
        &addr,
        "/api/v1/agent/metrics",
        &agent.credential,
        64 * 1024,
        100,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = post(
        "/api/v1/experiments",
        crate::harness::ADMIN,
        "{not json".into(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: phoenix_client::api::ErrorBody = resp.json().await.unwrap();
    assert_eq!(body.error.code, phoenix_client::api::ErrorCode::Unavailable);
    assert!(body.error.message.contains("65536 bytes"), "{body:?}");
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    // The stalled body misses its deadline: 408, and the connection is closed.
    let head = answer(&mut stalled, Duration::from_secs(10)).await;
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "{waited:?}"
    );

    // Its share of the budget is back: the same request now reaches the route's parser.
    let resp = post(
        "/api/v1/experiments",
        crate::harness::ADMIN,
        "{not json".into(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let listed = server
        .admin()
        .list_experiments(&Default::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "nothing was created");
    server.stop().await;
}

async fn failed_authentications_are_throttled(backend: Backend) {
    let server = TestServer::start_on(
        backend,
        ServerConfig {
            failed_auth_rate_per_sec: 0.5,
            failed_auth_burst: 5,
            ..ServerConfig::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/experiments", server.base);
    // The admin works before the guessing starts; a viewer token is made and not used.
    let unused = server
        .admin()
        .create_token(&NewToken {
            name: "unused".to_owned(),
            role: Role::Viewer,
        })
        .await
        .unwrap();
    assert_eq!(status_of(&http, &url, crate::harness::ADMIN).await, 200);
    let mut statuses = Vec::new();
    for i in 0..8 {
        let resp = http
            .get(&url)
            .bearer_auth(format!("phx_user_guess-{i:020}"))
            .send()
            .await
            .unwrap();
        statuses.push((
            resp.status().as_u16(),
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        ));
    }
    // Five failures pass (401), then the address is held back with 429 and a wait.
    assert!(statuses[..5].iter().all(|(s, _)| *s == 401), "{statuses:?}");
    for (status, retry_after) in &statuses[5..] {
        assert_eq!(*status, 429, "{statuses:?}");
        let secs: u64 = retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=2).contains(&secs), "{statuses:?}");
    }
    // A credential that authenticated before the address was held back still passes, so
    // a guesser sharing an address (a NAT) with real agents and users cannot lock them out;
    // one that never did waits like the guesses.
    assert_eq!(status_of(&http, &url, crate::harness::ADMIN).await, 200);
    assert_eq!(status_of(&http, &url, &unused.secret).await, 429);
    // Requests without a credential (health checks, the docs) are not held back.
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // The server's metrics count both.
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert_eq!(value("phoenix_auth_failures_total "), 5.0);
    assert_eq!(value("phoenix_auth_throttled_total "), 4.0);
    server.stop().await;
}

async fn status_of(http: &reqwest::Client, url: &str, token: &str) -> u16 {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
