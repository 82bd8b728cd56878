//! The dashboard's routes: the root and `ui` redirect to `ui/`, every embedded file is
//! served with its content type and the Content-Security-Policy, unknown files are a 404
//! in the error shape, and the API docs stay at `docs`.

use phoenix_client::api::{ErrorBody, ErrorCode};
use phoenix_server::dashboard::{ASSETS, CONTENT_SECURITY_POLICY};

use crate::harness::TestServer;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn root_and_ui_redirect_to_the_dashboard() {
    let server = TestServer::start().await;
    let http = no_redirects();
    for path in ["/", "/ui"] {
        let resp = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 307, "{path}");
        assert_eq!(header(&resp, "location"), "/ui/", "{path}");
    }
    // The API docs stay where they were.
    let docs = reqwest::get(format!("{}/docs", server.base)).await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    assert!(header(&docs, "content-type").starts_with("text/html"));
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn the_page_and_every_asset_have_their_type_and_the_policy() {
    let server = TestServer::start().await;
    let http = no_redirects();
    let page = http
        .get(format!("{}/ui/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(
        header(&page, "content-security-policy"),
        CONTENT_SECURITY_POLICY
    );
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script type=\"module\" src=\"js/app.js\">"));

    for asset in ASSETS {
        let resp = http
            .get(format!("{}/ui/{}", server.base, asset.path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{}", asset.path);
        assert_eq!(
            header(&resp, "content-type"),
            asset.content_type,
            "{}",
            asset.path
        );
        assert_eq!(
            header(&resp, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        let etag = header(&resp, "etag").to_owned();
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            asset.body,
            "{}",
            asset.path
        );
        // A revalidation with the tag is a bodiless 304.
        let again = http
            .get(format!("{}/ui/{}", server.base, asset.path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 304, "{}", asset.path);
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let types: Vec<&str> = ASSETS.iter().map(|a| a.content_type).collect();
    for expected in [
        "text/html; charset=utf-8",
        "text/css; charset=utf-8",
        "text/javascript; charset=utf-8",
        "image/svg+xml",
    ] {
        assert!(types.contains(&expected), "no asset of type {expected}");
    }
}

#[tokio::test]
async fn unknown_assets_are_404_in_the_error_shape() {
    let server = TestServer::start().await;
    let http = no_redirects();
    // Files are looked up in the embedded list by exact path: nothing else is reachable.
    for path in [
        "/ui/nope.js",
        "/ui/js/",
        "/ui/index.html.bak",
        "/ui/JS/APP.JS",
        "/ui/js/app.js/x",
    ] {
        let resp = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{path}");
        assert!(resp.headers().get("content-security-policy").is_some());
        let body: ErrorBody = resp.json().await.expect("the error shape");
        assert_eq!(body.error.code, ErrorCode::NotFound, "{path}");
    }
    // Only GET (and HEAD) are served.
    let resp = http
        .post(format!("{}/ui/js/app.js", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

#[tokio::test]
async fn the_api_and_its_document_do_not_carry_the_dashboard_policy() {
    let server = TestServer::start().await;
    let resp = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert!(resp.headers().get("content-security-policy").is_none());
}

#[tokio::test]
async fn nested_under_a_prefix_the_redirect_keeps_the_prefix() {
    use poem::EndpointExt as _;

    let store = phoenix_core::MemoryStore::new();
    let phoenix = phoenix_core::Phoenix::new(
        store.stores(),
        std::sync::Arc::new(phoenix_core::clock::SystemClock),
        phoenix_core::PhoenixConfig::default(),
    );
    let state = phoenix_server::AppState::new(phoenix, phoenix_server::ServerConfig::default());
    let app = poem::Route::new()
        .nest(
            "/phoenix",
            phoenix_server::PhoenixEndpoint::new(state).base_path("/phoenix"),
        )
        .boxed();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    let server = tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    let http = no_redirects();
    let resp = http
        .get(format!("http://{addr}/phoenix/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 307);
    assert_eq!(header(&resp, "location"), "/phoenix/ui/");
    let page = http
        .get(format!("http://{addr}/phoenix/ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    server.abort();
}
