//! The committed OpenAPI document matches the server's. Regenerate with
//! `PHOENIX_UPDATE_OPENAPI=1 cargo test -p phoenix-server --test e2e openapi`.

#[test]
fn openapi_snapshot_is_current() {
    let generated = phoenix_server::openapi_document();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    if std::env::var_os("PHOENIX_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run PHOENIX_UPDATE_OPENAPI=1 cargo test -p phoenix-server --test e2e openapi"
    );
}

#[test]
fn every_seed_route_is_documented() {
    let doc: serde_json::Value = serde_json::from_str(&phoenix_server::openapi_document()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/experiments", "post"),
        ("/api/v1/experiments", "get"),
        ("/api/v1/experiments/{id}", "get"),
        ("/api/v1/experiments/{id}", "delete"),
        ("/api/v1/experiments/{id}/start", "post"),
        ("/api/v1/experiments/{id}/stop", "post"),
        ("/api/v1/experiments/{id}/rollback", "post"),
        ("/api/v1/experiments/{id}/promote", "post"),
        ("/api/v1/experiments/{id}/events", "get"),
        ("/api/v1/agent/enroll", "post"),
        ("/api/v1/agent/tasks", "get"),
        ("/api/v1/agent/heartbeat", "post"),
        ("/api/v1/agent/metrics", "post"),
        ("/api/v1/agent/tasks/{id}/status", "post"),
        ("/api/v1/fleet/status", "get"),
        ("/api/v1/experiments/{id}/kpis", "get"),
        ("/api/v1/experiments/{id}/cost-analysis", "get"),
        ("/api/v1/metrics/cost-flow", "get"),
        ("/api/v1/metrics/cardinality", "get"),
        ("/api/v1/pipelines/templates", "get"),
        ("/api/v1/pipelines/render", "post"),
        ("/api/v1/pipelines/validate", "post"),
        ("/api/v1/pipelines/preview", "post"),
        ("/api/v1/pipelines/deployments", "post"),
        ("/api/v1/pipelines/deployments", "get"),
        ("/api/v1/pipelines/deployments/{id}", "get"),
        ("/api/v1/pipelines/deployments/{id}/pause", "post"),
        ("/api/v1/pipelines/deployments/{id}/resume", "post"),
        ("/api/v1/pipelines/deployments/{id}/rollback", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not in the document"
        );
    }
}
