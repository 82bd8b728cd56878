//! Regressions for what `scripts/schemathesis` found where the server and its document
//! disagreed: each case is a request the document calls valid that the server refused, or
//! one the document calls invalid that the server took.

use phoenix_client::api::experiment::Experiment;
use serde_json::Value;

use crate::harness::{ADMIN, TestServer, new_experiment};

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Page cursors are what the document states (empty, or a hyphenated UUID; empty, or up to
/// 19 digits for events), not whatever `uuid` or `u64` would parse.
#[tokio::test]
async fn page_cursors_are_exactly_what_the_document_states() {
    let server = TestServer::start().await;
    let created: Experiment = server
        .admin()
        .create_experiment(&new_experiment("cursors"))
        .await
        .unwrap();
    let id = created.id;
    let hyphenated = uuid::Uuid::now_v7();
    for list in [
        "/api/v1/experiments",
        "/api/v1/agents",
        "/api/v1/tasks",
        "/api/v1/pipelines/deployments",
    ] {
        for ok in [String::new(), hyphenated.to_string()] {
            let (status, _) = get(&server, &format!("{list}?cursor={ok}")).await;
            assert_eq!(status, 200, "{list}?cursor={ok}");
        }
        // Forms `uuid` parses but no page hands out.
        for other in [
            hyphenated.simple().to_string(),
            hyphenated.braced().to_string(),
            hyphenated.urn().to_string(),
        ] {
            let (status, body) = get(&server, &format!("{list}?cursor={other}")).await;
            assert_eq!(status, 422, "{list}?cursor={other}: {body}");
            assert_eq!(body["error"]["details"]["fields"][0]["path"], "cursor");
        }
    }
    let events = format!("/api/v1/experiments/{id}/events");
    for ok in ["", "0", "1", "9999999999999999999"] {
        let (status, _) = get(&server, &format!("{events}?cursor={ok}")).await;
        assert_eq!(status, 200, "events cursor {ok:?}");
    }
    // `+1` is a u64 to Rust's parser; 20 digits is more than the document states.
    for bad in ["%2B1", "-1", "18446744073709551615", "1a"] {
        let (status, body) = get(&server, &format!("{events}?cursor={bad}")).await;
        assert_eq!(status, 422, "events cursor {bad:?}: {body}");
    }
    server.stop().await;
}
