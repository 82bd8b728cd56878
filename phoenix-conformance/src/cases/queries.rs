//! The query inventory.

use phoenix_core::PhoenixError;
use phoenix_core::queries::{QueryRole, SourceKind};
use phoenix_core::store::StoreError;

use crate::TestBackend;
use crate::fixtures::phoenix;

const RULES: &str = "groups:\n  - name: node\n    rules:\n      - alert: NodeDown\n        expr: up{job=\"node\"} == 0\n      - record: job:up:sum\n        expr: sum by (job) (up)\n";

const DASHBOARD: &str = r#"{"title": "Node", "panels": [{"title": "CPU", "targets": [{"refId": "A", "expr": "sum by (mode) (rate(node_cpu_seconds_total{instance=~\"$instance\"}[$__rate_interval]))"}]}]}"#;

/// Sources are imported (parsed, needs derived), listed by name, replaced by name keeping
/// their id, and deleted; a source with a query that does not parse changes nothing.
pub async fn query_sources_import_list_replace_delete(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let rules = p
        .import_query_source("node.rules.yml", SourceKind::RuleFile, RULES, "ops")
        .await
        .unwrap();
    assert_eq!(rules.queries.len(), 2);
    let dashboard = p
        .import_query_source("cpu.json", SourceKind::GrafanaDashboard, DASHBOARD, "ops")
        .await
        .unwrap();
    let list = p.query_sources().await.unwrap();
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cpu.json", "node.rules.yml"]);
    assert_eq!(list[1], rules, "a source round-trips exactly");
    assert_eq!(list[0].id, dashboard.id);
    assert_eq!(list[0].queries[0].role, QueryRole::Panel);

    // Importing under the same name replaces the source and keeps its id.
    let replaced = p
        .import_query_source(
            "node.rules.yml",
            SourceKind::PromqlList,
            "up\nnode_load1 > 4\nsum(rate(x[5m]))\n",
            "ops",
        )
        .await
        .unwrap();
    assert_eq!(replaced.id, rules.id);
    let list = p.query_sources().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1], replaced);
    assert_eq!(p.query_inventory().await.unwrap().len(), 4);

    // A query that does not parse refuses the source, naming the rule and the position.
    let bad =
        "groups:\n  - name: g\n    rules:\n      - alert: Oops\n        expr: sum(rate(x[5m])\n";
    let Err(PhoenixError::Validation(errors)) = p
        .import_query_source("node.rules.yml", SourceKind::RuleFile, bad, "ops")
        .await
    else {
        panic!("a query that does not parse is refused");
    };
    assert_eq!(errors.errors[0].path, "content");
    assert!(
        errors.errors[0]
            .message
            .starts_with("node.rules.yml:5:15: group \"g\", alert \"Oops\": PromQL does not parse"),
        "{:?}",
        errors.errors
    );
    for (name, content) in [("", "up"), ("x", ""), ("x", "up\u{0}"), ("a\u{7}", "up")] {
        assert!(matches!(
            p.import_query_source(name, SourceKind::PromqlList, content, "ops")
                .await,
            Err(PhoenixError::Validation(_))
        ));
    }
    assert_eq!(
        p.query_sources().await.unwrap()[1],
        replaced,
        "nothing changed"
    );

    p.delete_query_source(dashboard.id).await.unwrap();
    let list = p.query_sources().await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(matches!(
        p.delete_query_source(dashboard.id).await,
        Err(PhoenixError::Store(StoreError::NotFound { .. }))
    ));
    // A deleted name is free again, under a new id.
    let again = p
        .import_query_source("cpu.json", SourceKind::GrafanaDashboard, DASHBOARD, "ops")
        .await
        .unwrap();
    assert_ne!(again.id, dashboard.id);
    assert_eq!(p.query_sources().await.unwrap().len(), 2);
}

/// An experiment created with an inventory holds the inventory's queries as they were
/// (a later import changes nothing) and the default `queries_broken <= 0` criterion; a
/// sample's query statuses read back intact; without an inventory a criterion on
/// `queries_broken` is refused and nothing is stored.
pub async fn queries_frozen_into_experiments_and_samples(backend: &dyn TestBackend) {
    use phoenix_core::judge::{Criterion, KpiName};
    use phoenix_core::queries::{QueryReasons, SampleQueries};

    use crate::fixtures::{new_experiment, operator, sample};

    let p = phoenix(backend);
    let mut asks = new_experiment("asks for queries");
    asks.spec.criteria.push(Criterion::queries_kept());
    let err = p.create_experiment(asks, &operator()).await.unwrap_err();
    let PhoenixError::Validation(errors) = err else {
        panic!("{err:?}")
    };
    assert_eq!(errors.errors[0].path, "spec.criteria[4].kpi");
    assert!(
        p.experiments(&Default::default(), &Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    p.import_query_source("node.rules.yml", SourceKind::RuleFile, RULES, "ops")
        .await
        .unwrap();
    p.import_query_source("node.json", SourceKind::GrafanaDashboard, DASHBOARD, "ops")
        .await
        .unwrap();
    let created = p
        .create_experiment(new_experiment("judged on queries"), &operator())
        .await
        .unwrap();
    let names: Vec<&str> = created.queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["CPU [A]", "NodeDown", "job:up:sum"]);
    assert_eq!(created.queries[1].role, QueryRole::Alert);
    assert!(created.queries[1].location.starts_with("node.rules.yml: "));
    assert!(created.spec.criteria.contains(&Criterion::queries_kept()));
    assert_eq!(
        created
            .spec
            .criteria
            .iter()
            .filter(|c| c.kpi == KpiName::QueriesBroken)
            .count(),
        1
    );
    p.import_query_source("more.txt", SourceKind::PromqlList, "up\n", "ops")
        .await
        .unwrap();
    assert_eq!(p.experiment(created.id).await.unwrap(), created);

    let mut s = sample(
        backend.clock().now(),
        created.id,
        phoenix_core::ids::AgentId::new(),
        1,
    );
    s.queries = Some(SampleQueries {
        statuses: "abu".to_owned(),
        reasons: vec![QueryReasons {
            query: 1,
            reasons: vec![
                "`up{job=\"node\"}` matches no series: the candidate drops `up`".to_owned(),
            ],
        }],
    });
    let old = sample(
        backend.clock().now(),
        created.id,
        phoenix_core::ids::AgentId::new(),
        1,
    );
    let m = backend.stores().metrics;
    m.append_samples(&[s.clone(), old.clone()]).await.unwrap();
    let stored = m.samples(created.id, 10).await.unwrap();
    assert!(stored.contains(&s), "{stored:?}");
    assert!(stored.contains(&old));
}
