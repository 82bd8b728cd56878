//! `/api/v1/queries`: the query inventory over HTTP, on every backend.

use phoenix_client::api::query::{NewQuerySource, QueryRole, SourceKind};
use phoenix_client::api::token::Role;
use phoenix_server::ServerConfig;

use crate::harness::{ADMIN, Backend, TestServer};

crate::backends!(query_sources_import_list_delete);

const RULES: &str = "groups:\n  - name: node\n    rules:\n      - alert: NodeDown\n        expr: up{job=\"node\"} == 0\n      - record: job:cpu:rate5m\n        expr: sum by (job) (rate(node_cpu_seconds_total[5m]))\n";

fn source(name: &str, kind: SourceKind, content: &str) -> NewQuerySource {
    NewQuerySource {
        name: name.to_owned(),
        kind,
        content: content.to_owned(),
    }
}

async fn query_sources_import_list_delete(backend: Backend) {
    let server = TestServer::start_on(backend, ServerConfig::default()).await;
    let viewer = server.user(Role::Viewer).await;
    let operator = server.user(Role::Operator).await;
    let rules = source("node.rules.yml", SourceKind::RuleFile, RULES);

    // Operators write, viewers read.
    let refused = viewer.import_query_source(&rules).await.unwrap_err();
    assert_eq!(refused.status(), Some(403));
    let imported = operator.import_query_source(&rules).await.unwrap();
    assert_eq!(imported.queries.len(), 2);
    let alert = &imported.queries[0];
    assert_eq!(
        (alert.name.as_str(), alert.role),
        ("NodeDown", QueryRole::Alert)
    );
    assert_eq!(alert.selectors, ["up{job=\"node\"}"]);
    assert_eq!(imported.queries[1].labels, ["job"]);
    assert_eq!(imported.queries[1].metrics, ["node_cpu_seconds_total"]);
    let list = viewer.list_query_sources().await.unwrap();
    assert_eq!(list.items, std::slice::from_ref(&imported));

    // A query that does not parse: 422 naming the file, the rule and the position;
    // nothing changes.
    let bad = source(
        "node.rules.yml",
        SourceKind::RuleFile,
        "groups:\n  - name: node\n    rules:\n      - alert: NodeDown\n        expr: up{job=\"node\" == 0\n",
    );
    let error = operator.import_query_source(&bad).await.unwrap_err();
    assert_eq!(error.status(), Some(422));
    let fields = error.api_error().unwrap().details.fields.clone().unwrap();
    assert_eq!(fields[0].path, "content");
    assert!(
        fields[0].message.starts_with(
            "node.rules.yml:5:15: group \"node\", alert \"NodeDown\": PromQL does not parse"
        ),
        "{fields:?}"
    );
    assert_eq!(
        viewer.list_query_sources().await.unwrap().items,
        std::slice::from_ref(&imported)
    );

    // Unknown fields are refused by name.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/queries", server.base))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"name": "x", "kind": "promql_list", "content": "up", "owner": "me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("owner"), "{body}");

    // Same name: replaced, same id.
    let replaced = operator
        .import_query_source(&source("node.rules.yml", SourceKind::PromqlList, "up\n"))
        .await
        .unwrap();
    assert_eq!(replaced.id, imported.id);
    assert_eq!(replaced.queries.len(), 1);

    assert_eq!(
        viewer
            .delete_query_source(imported.id)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    operator.delete_query_source(imported.id).await.unwrap();
    assert!(viewer.list_query_sources().await.unwrap().items.is_empty());
    assert_eq!(
        operator
            .delete_query_source(imported.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}
