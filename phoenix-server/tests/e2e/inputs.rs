//! Bad inputs get the right 4xx, in the one error shape, never a 500.

use phoenix_client::ExperimentQuery;
use phoenix_client::api::experiment::{ExperimentSpec, NewExperiment, Phase, PromoteRequest};
use phoenix_client::api::pipeline::PipelineRef;
use phoenix_client::api::token::Role;
use phoenix_client::api::{ErrorBody, ErrorCode};
use phoenix_server::ServerConfig;

use crate::harness::{ADMIN, TestServer, new_experiment};

async fn raw(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<reqwest::Body>,
    content_type: &str,
) -> (u16, ErrorBody) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(ADMIN)
        .header("content-type", content_type);
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.expect("the error shape");
    (status, body)
}

#[tokio::test]
async fn malformed_requests_are_400_in_the_error_shape() {
    let server = TestServer::start().await;
    let post = reqwest::Method::POST;
    let json = "application/json";
    // Not JSON.
    let (s, b) = raw(
        &server,
        post.clone(),
        "/api/v1/experiments",
        Some("{nope".into()),
        json,
    )
    .await;
    assert_eq!((s, b.error.code), (400, ErrorCode::BadRequest));
    // Wrong types.
    let wrong = r#"{"name": 5, "spec": {"baseline": {"template": "baseline"}, "candidate": {"template": "topk"}, "duration_secs": "long"}}"#;
    let (s, b) = raw(
        &server,
        post.clone(),
        "/api/v1/experiments",
        Some(wrong.into()),
        json,
    )
    .await;
    assert_eq!((s, b.error.code), (400, ErrorCode::BadRequest));
    // Not a UUID in the path.
    let (s, b) = raw(
        &server,
        reqwest::Method::GET,
        "/api/v1/experiments/not-a-uuid",
        None,
        json,
    )
    .await;
    assert_eq!((s, b.error.code), (400, ErrorCode::BadRequest));
    // Bad enum and out-of-range parameters.
    let (s, _) = raw(
        &server,
        reqwest::Method::GET,
        "/api/v1/experiments?phase=sideways",
        None,
        json,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = raw(
        &server,
        reqwest::Method::GET,
        "/api/v1/experiments?limit=0",
        None,
        json,
    )
    .await;
    assert_eq!(s, 400);
    // Unknown route: 404 in the same shape.
    let (s, b) = raw(&server, reqwest::Method::GET, "/api/v1/nope", None, json).await;
    assert_eq!((s, b.error.code), (404, ErrorCode::NotFound));
    // Wrong content type.
    let (s, _) = raw(
        &server,
        post,
        "/api/v1/experiments",
        Some("name=x".into()),
        "text/plain",
    )
    .await;
    assert!(s == 400 || s == 415, "{s}");
    server.stop().await;
}

#[tokio::test]
async fn oversize_bodies_are_413_whether_declared_or_streamed() {
    let server = TestServer::start_with(ServerConfig {
        max_body_bytes: 4096,
        ..ServerConfig::default()
    })
    .await;
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(10_000));
    // Declared by Content-Length.
    let (s, b) = raw(
        &server,
        reqwest::Method::POST,
        "/api/v1/experiments",
        Some(big.clone().into()),
        "application/json",
    )
    .await;
    assert_eq!((s, b.error.code), (413, ErrorCode::PayloadTooLarge));
    // Chunked, no Content-Length: refused while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = futures::stream::iter(chunks);
    let (s, b) = raw(
        &server,
        reqwest::Method::POST,
        "/api/v1/experiments",
        Some(reqwest::Body::wrap_stream(stream)),
        "application/json",
    )
    .await;
    assert_eq!((s, b.error.code), (413, ErrorCode::PayloadTooLarge));
    server.stop().await;
}

#[tokio::test]
async fn validation_lists_every_field_unknown_ids_and_illegal_transitions() {
    let server = TestServer::start().await;
    let operator = server.user(Role::Operator).await;
    let mut spec = ExperimentSpec::new(
        PipelineRef::new("baseline"),
        PipelineRef::new("no-such-template"),
        1,
    );
    spec.min_agents = 0;
    let invalid = NewExperiment {
        name: String::new(),
        description: String::new(),
        spec,
    };
    let err = operator.create_experiment(&invalid).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    let fields: Vec<String> = err
        .api_error()
        .and_then(|e| e.details.fields.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|f| f.path)
        .collect();
    for path in [
        "name",
        "spec.duration_secs",
        "spec.min_agents",
        "spec.candidate.template",
    ] {
        assert!(
            fields.iter().any(|f| f == path),
            "{path} missing from {fields:?}"
        );
    }
    // A parameter value of an unsupported type is a field error too.
    let mut odd = new_experiment("odd");
    odd.spec.candidate = PipelineRef::new("topk").with_param("k", serde_json::json!({"a": 1}));
    let err = operator.create_experiment(&odd).await.unwrap_err();
    assert_eq!(err.status(), Some(422));

    // Unknown ids: 404.
    let unknown = uuid::Uuid::now_v7();
    for r in [
        operator.get_experiment(unknown).await.map(|_| ()),
        operator.start_experiment(unknown).await.map(|_| ()),
        operator
            .experiment_events(unknown, None, None)
            .await
            .map(|_| ()),
        operator.get_task(unknown).await.map(|_| ()),
        operator.get_agent(unknown).await.map(|_| ()),
    ] {
        assert_eq!(r.unwrap_err().code(), Some(ErrorCode::NotFound));
    }

    // Bad cursors: 422 on the field `cursor`.
    let bad = operator
        .list_experiments(&ExperimentQuery {
            cursor: Some("garbage".to_owned()),
            ..ExperimentQuery::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::ValidationFailed));
    let exp = operator
        .create_experiment(&new_experiment("x"))
        .await
        .unwrap();
    let bad = operator
        .experiment_events(exp.id, Some("-1".to_owned()), None)
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::ValidationFailed));
    let fields = bad.api_error().unwrap().details.fields.clone().unwrap();
    assert_eq!(fields[0].path, "cursor");

    // Illegal transitions: 409 with the current phase; nothing changes.
    let err = operator
        .promote_experiment(exp.id, &PromoteRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    assert_eq!(err.api_error().unwrap().details.phase, Some(Phase::Created));
    // Start without any live agent: 409.
    let err = operator.start_experiment(exp.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    assert_eq!(
        operator.get_experiment(exp.id).await.unwrap().phase,
        Phase::Created
    );

    // Pagination: pages do not overlap and end.
    for i in 0..4 {
        operator
            .create_experiment(&new_experiment(&format!("p{i}")))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut query = ExperimentQuery {
        limit: Some(2),
        ..ExperimentQuery::default()
    };
    loop {
        let page = operator.list_experiments(&query).await.unwrap();
        seen.extend(page.items.iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len());
    assert_eq!(seen.len(), 5);
    server.stop().await;
}

#[tokio::test]
async fn configs_the_collector_could_not_start_are_422_at_create_and_create_nothing() {
    let server = TestServer::start().await;
    let operator = server.user(Role::Operator).await;
    let cases = [
        // The candidate on the baseline's port (its default 9465 taken explicitly).
        (
            PipelineRef::new("baseline").with_param("prometheus_port", serde_json::json!(9465)),
            PipelineRef::new("topk"),
            "spec.candidate.params.prometheus_port",
        ),
        // An exporter on the Collector's own health check port.
        (
            PipelineRef::new("baseline").with_param("prometheus_port", serde_json::json!(13133)),
            PipelineRef::new("topk"),
            "spec.baseline.params.prometheus_port",
        ),
    ];
    for (baseline, candidate, path) in cases {
        let mut request = new_experiment("clash");
        request.spec.baseline = baseline;
        request.spec.candidate = candidate;
        let err = operator.create_experiment(&request).await.unwrap_err();
        assert_eq!(err.status(), Some(422));
        let fields: Vec<String> = err
            .api_error()
            .and_then(|e| e.details.fields.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(fields, [path]);
    }
    let listed = operator
        .list_experiments(&ExperimentQuery::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "nothing was created");
}
