//! WebSocket credentials: no token in the URL, a browser's token as a subprotocol, a cap
//! per token, and sessions closed (1008) once their token is revoked.

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use phoenix_client::api::token::{NewToken, Role};
use phoenix_server::ServerConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::harness::{Backend, TestServer};

crate::backends!(websocket_credentials_and_revocation);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(server: &TestServer, query: &str) -> String {
    format!("{}/api/v1/ws{query}", server.base.replacen("http", "ws", 1))
}

/// Opens a session with `headers`; the HTTP status of a refusal otherwise.
async fn open(
    url: &str,
    headers: &[(&'static str, String)],
) -> Result<(Socket, Option<String>), u16> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok((socket, protocol))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("unexpected WebSocket error: {e}"),
    }
}

fn bearer(secret: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {secret}"))
}

fn subprotocols(secret: &str) -> (&'static str, String) {
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    (
        "sec-websocket-protocol",
        format!("phoenix.v1, phoenix.bearer.{encoded}"),
    )
}

/// Reads until the server closes; the close code.
async fn close_code(socket: &mut Socket) -> Option<CloseCode> {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| f.code),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the server closes the session")
}

async fn websocket_credentials_and_revocation(backend: Backend) {
    let server = TestServer::start_on(
        backend,
        ServerConfig {
            ws_heartbeat_secs: 1,
            ws_max_per_token: 2,
            ..ServerConfig::default()
        },
    )
    .await;
    let admin = server.admin();
    let created = admin
        .create_token(&NewToken {
            name: "ws-viewer".to_owned(),
            role: Role::Viewer,
        })
        .await
        .unwrap();
    let url = ws_url(&server, "");

    // A token in the URL is refused, even a valid one.
    let in_url = ws_url(&server, &format!("?token={}", created.secret));
    assert_eq!(open(&in_url, &[]).await.err(), Some(401));
    assert_eq!(open(&url, &[]).await.err(), Some(401));
    assert_eq!(
        open(&url, &[subprotocols("phx_user_not-a-real-token")])
            .await
            .err(),
        Some(401)
    );

    // A browser's token as a subprotocol: accepted, and `phoenix.v1` selected.
    let (mut first, protocol) = open(&url, &[subprotocols(&created.secret)])
        .await
        .expect("subprotocol token accepted");
    assert_eq!(protocol.as_deref(), Some("phoenix.v1"));
    let (mut second, _) = open(&url, &[bearer(&created.secret)])
        .await
        .expect("header token accepted");

    // At most two sessions per token; others are unaffected.
    assert_eq!(
        open(&url, &[bearer(&created.secret)]).await.err(),
        Some(429)
    );
    let (mut other, _) = open(&url, &[bearer(crate::harness::ADMIN)])
        .await
        .expect("another token has its own sessions");

    // Revoked: both of its sessions are closed with 1008 at the next heartbeat.
    admin.revoke_token(created.token.id).await.unwrap();
    assert_eq!(close_code(&mut first).await, Some(CloseCode::Policy));
    assert_eq!(close_code(&mut second).await, Some(CloseCode::Policy));
    // The other token's session is still served: a heartbeat arrives.
    let next = tokio::time::timeout(Duration::from_secs(10), other.next())
        .await
        .expect("a message")
        .expect("open")
        .expect("readable");
    assert!(matches!(next, Message::Text(_)), "{next:?}");
    // And a revoked token cannot open a new one.
    assert_eq!(
        open(&url, &[bearer(&created.secret)]).await.err(),
        Some(401)
    );
    server.stop().await;
}
