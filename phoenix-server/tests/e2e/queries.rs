//! `/api/v1/queries`: the query inventory over HTTP, on every backend.

use phoenix_client::api::pipeline::{PipelineRef, PreviewRequest};
use phoenix_client::api::query::{NewQuerySource, QueryRole, QueryStatus, SourceKind};
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

    // Template previews evaluate the inventory on the sample and the pipeline's output.
    let mut exposition = String::from("# TYPE process_cpu_time gauge\n");
    for pid in 0..6 {
        exposition.push_str(&format!(
            "process_cpu_time{{process_pid=\"{pid}\",process_executable_name=\"p{}\"}} {}\n",
            pid % 2,
            pid * 10
        ));
    }
    let processes = operator
        .import_query_source(&source(
            "processes",
            SourceKind::PromqlList,
            "sum by (process_executable_name) (process_cpu_time)\nprocess_cpu_time{process_pid=\"3\"}\n",
        ))
        .await
        .unwrap();
    let preview = |template: &str| PreviewRequest {
        pipeline: PipelineRef::new(template),
        critical_processes: Vec::new(),
        critical_metrics: Vec::new(),
        exposition: Some(exposition.clone()),
        interval_secs: None,
        agent_id: None,
        pricing_model: None,
    };
    let aggregated = viewer
        .preview_pipeline(&preview("aggregate"))
        .await
        .unwrap();
    let kept = aggregated.queries.expect("an inventory exists");
    // The rule file replaced by `up` earlier selects nothing in this sample.
    assert_eq!(
        (kept.answered, kept.broken, kept.unobserved),
        (1, 1, 1),
        "{kept:?}"
    );
    assert_eq!(kept.affected[0].name, "processes:2");
    assert_eq!(kept.affected[0].status, QueryStatus::Broken);
    let baseline = viewer.preview_pipeline(&preview("baseline")).await.unwrap();
    assert_eq!(baseline.queries.unwrap().broken, 0);
    operator.delete_query_source(processes.id).await.unwrap();

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
