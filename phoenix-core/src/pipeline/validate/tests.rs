use super::*;

const GOOD: &str = r#"
extensions:
  health_check:
    endpoint: localhost:13133
receivers:
  hostmetrics:
    collection_interval: 10s
    scrapers:
      process: {}
  prometheus/node:
    config:
      scrape_configs:
        - job_name: node
          scrape_interval: 15s
          static_configs:
            - targets: ["localhost:9100"]
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 512
  filter/x:
    metrics:
      datapoint:
        - 'metric.name == "a" and IsMatch(resource.attributes["k"], "^x(y)\\z")'
  batch:
exporters:
  prometheus:
    endpoint: 0.0.0.0:9464
  otlphttp:
    endpoint: http://collector:4318
service:
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [hostmetrics, prometheus/node]
      processors: [memory_limiter, filter/x, batch]
      exporters: [prometheus, otlphttp]
"#;

fn issues(text: &str) -> Vec<(String, String, Option<u32>)> {
    validate_collector_yaml(text)
        .unwrap_err()
        .into_iter()
        .map(|i| (i.path, i.message, i.line))
        .collect()
}

#[test]
fn a_stock_config_passes_and_is_summarised() {
    let summary = validate_collector_yaml(GOOD).unwrap();
    assert_eq!(summary.pipelines.len(), 1);
    assert_eq!(
        summary.pipelines[0].processors,
        ["memory_limiter", "filter/x", "batch"]
    );
}

#[test]
fn graph_errors_are_reported_with_paths_and_lines() {
    let bad = GOOD
        .replace("[prometheus, otlphttp]", "[prometheus, otlp]")
        .replace(
            "[memory_limiter, filter/x, batch]",
            "[memory_limiter, batch, batch]",
        );
    let found = issues(&bad);
    let paths: Vec<&str> = found.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "service.pipelines.metrics.processors[2]",
            "service.pipelines.metrics.exporters[1]"
        ]
    );
    assert_eq!(found[1].2, Some(37));
}

#[test]
fn unknown_and_forbidden_components_are_refused() {
    let with = |section: &str, entry: &str| {
        GOOD.replacen(
            &format!("{section}:\n"),
            &format!("{section}:\n{entry}\n"),
            1,
        )
    };
    let found = issues(&with("exporters", "  file:\n    path: /etc/cron.d/x"));
    assert_eq!(found[0].0, "exporters.file");
    assert!(found[0].1.contains("file exporter"));
    let found = issues(&with("processors", "  topk:\n    k: 10"));
    assert_eq!(found[0].0, "processors.topk");
    let found = issues(&with("receivers", "  filelog:\n    include: [/var/log/*]"));
    assert_eq!(found[0].0, "receivers.filelog");
    let found = issues(&format!("{GOOD}connectors:\n  forward:\n"));
    assert_eq!(found[0].0, "connectors.forward");
    let found = issues(&format!("{GOOD}extra: 1\n"));
    assert_eq!(found[0].0, "extra");
}

#[test]
fn settings_are_checked() {
    let cases = [
        (
            "collection_interval: 10s",
            "collection_interval: ten",
            "receivers.hostmetrics.collection_interval",
        ),
        (
            "endpoint: 0.0.0.0:9464",
            "endpoint: 0.0.0.0",
            "exporters.prometheus.endpoint",
        ),
        (
            "endpoint: http://collector:4318",
            "endpoint: collector:4318",
            "exporters.otlphttp.endpoint",
        ),
        (
            "\"localhost:9100\"",
            "\"localhost\"",
            "receivers.prometheus/node.config.scrape_configs[0].static_configs[0].targets[0]",
        ),
        (
            "      process: {}",
            "      gpu: {}",
            "receivers.hostmetrics.scrapers.gpu",
        ),
        ("    limit_mib: 512\n", "", "processors.memory_limiter"),
        (
            "IsMatch(resource",
            "IsMatch((resource",
            "processors.filter/x.metrics.datapoint[0]",
        ),
        ("job_name: node", "job_name: ${file:/etc/shadow}", ""),
    ];
    for (from, to, path) in cases {
        let found = issues(&GOOD.replace(from, to));
        assert_eq!(found[0].0, path, "{to}");
    }
    // env expansion and escaped dollars are fine.
    assert!(
        validate_collector_yaml(&GOOD.replace("job_name: node", "job_name: ${env:JOB}$$x")).is_ok()
    );
}

#[test]
fn structural_problems_are_reported() {
    assert_eq!(issues("- a\n")[0].1, "the config must be a mapping");
    assert_eq!(issues("receivers: {}\n")[0].0, "service");
    let no_exporters = GOOD.replace("      exporters: [prometheus, otlphttp]\n", "");
    assert_eq!(
        issues(&no_exporters)[0].0,
        "service.pipelines.metrics.exporters"
    );
    let found = issues("a: [1\n");
    assert!(found[0].2.is_some());
}

#[test]
fn billion_laughs_is_rejected() {
    let mut doc =
        String::from("receivers:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        doc.push_str(&format!(
            "  a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    let found = validate_collector_yaml(&doc).unwrap_err();
    assert_eq!(found.len(), 1);
    assert!(
        found[0].message.contains("more than"),
        "{}",
        found[0].message
    );
}

#[test]
fn listeners_on_one_port_are_refused() {
    let paths = |text: &str| -> Vec<String> {
        validate_collector_yaml(text)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.path)
            .collect()
    };
    // The exporter on the health check's port, on the same host or on every address.
    for endpoint in [
        "localhost:13133",
        "0.0.0.0:13133",
        "127.0.0.1:13133",
        ":13133",
    ] {
        assert_eq!(
            paths(&GOOD.replace("0.0.0.0:9464", endpoint)),
            ["exporters.prometheus.endpoint"],
            "{endpoint}"
        );
    }
    // On the Collector's own telemetry port, unless that is configured away.
    assert_eq!(
        paths(&GOOD.replace("0.0.0.0:9464", "0.0.0.0:8888")),
        ["exporters.prometheus.endpoint"]
    );
    let quiet = GOOD.replace(
        "service:\n",
        "service:\n  telemetry:\n    metrics:\n      level: none\n",
    );
    assert!(validate_collector_yaml(&quiet.replace("0.0.0.0:9464", "0.0.0.0:8888")).is_ok());
    // Two exporters of one pipeline on one port.
    let two = GOOD
        .replace(
            "  otlphttp:\n",
            "  prometheus/b:\n    endpoint: 127.0.0.1:9464\n  otlphttp:\n",
        )
        .replace(
            "[prometheus, otlphttp]",
            "[prometheus, prometheus/b, otlphttp]",
        );
    assert_eq!(paths(&two), ["exporters.prometheus/b.endpoint"]);
    // Another host on the same port, or an exporter no pipeline uses, does not listen there.
    let distinct = two.replace("0.0.0.0:9464", "127.0.0.1:9464").replace(
        "endpoint: 127.0.0.1:9464\n  otlphttp",
        "endpoint: 10.0.0.1:9464\n  otlphttp",
    );
    assert!(validate_collector_yaml(&distinct).is_ok());
    let unused = GOOD.replace(
        "  otlphttp:\n",
        "  prometheus/b:\n    endpoint: 0.0.0.0:9464\n  otlphttp:\n",
    );
    assert!(validate_collector_yaml(&unused).is_ok());
}

#[test]
fn unknown_settings_of_flat_components_are_refused() {
    let found = issues(&GOOD.replace(
        "    limit_mib: 512\n",
        "    limit_mib: 512\n    limit_mb: 5\n",
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "processors.memory_limiter.limit_mb");
    let found = issues(&GOOD.replace("  batch:\n", "  batch:\n    send_batch_sise: 10\n"));
    assert_eq!(found[0].0, "processors.batch.send_batch_sise");
    assert!(
        validate_collector_yaml(&GOOD.replace(
            "  batch:\n",
            "  batch:\n    send_batch_size: 10\n    send_batch_max_size: 20\n    timeout: 1s\n"
        ))
        .is_ok()
    );
}
