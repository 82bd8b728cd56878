//! WebSocket `/api/v1/ws`: typed JSON messages from the core event bus, per-topic
//! subscriptions, heartbeats, bounded per-client buffers (a client that falls behind is
//! disconnected, never waited for), capped message sizes, and a close on shutdown.
//!
//! Authentication: a user token (viewer or above) as `Authorization: Bearer` or, for
//! browsers that cannot set headers on a WebSocket, as the subprotocol
//! `phoenix.bearer.<base64url of the token>` offered beside `phoenix.v1` (which the
//! server selects). Tokens in the URL are refused: URLs end up in proxy and access logs.
//! The token is checked again at every heartbeat, and a session whose token was revoked
//! (or whose role no longer allows it) is closed with code 1008; at most
//! `ws_max_per_token` sessions are open per token.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;

use futures::{SinkExt as _, StreamExt as _};
use phoenix_api::ErrorCode;
use phoenix_api::ws::{ClientMessage, ServerMessage, Topic};
use phoenix_core::auth::Role;
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::web::{Data, Query};
use poem::{Endpoint, EndpointExt, IntoResponse, handler};
use serde::Deserialize;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::error::ApiError;
use crate::state::AppState;

/// Most topics one client may hold.
const MAX_TOPICS: usize = 256;

/// The subprotocol the server selects.
pub const PROTOCOL: &str = "phoenix.v1";

/// Prefix of the subprotocol that carries a browser's token (base64url, no padding).
pub const BEARER_PROTOCOL_PREFIX: &str = "phoenix.bearer.";

/// The token offered as a `phoenix.bearer.*` subprotocol, if any.
fn protocol_token(req: &poem::Request) -> Option<String> {
    req.headers()
        .get_all(poem::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(BEARER_PROTOCOL_PREFIX))
        .and_then(|encoded| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// The WebSocket endpoint.
pub fn endpoint(state: Arc<AppState>) -> impl Endpoint {
    upgrade.data(state)
}

#[handler]
async fn upgrade(
    req: &poem::Request,
    ws: WebSocket,
    Data(state): Data<&Arc<AppState>>,
    Query(query): Query<WsQuery>,
) -> poem::Result<poem::Response> {
    let header_token = crate::front::bearer(req);
    if query.token.is_some() {
        return Ok(ApiError::unauthenticated(
            "tokens are not accepted in the URL (URLs are logged): send Authorization: Bearer <token>, or offer the subprotocols phoenix.v1 and phoenix.bearer.<base64url token>",
        )
        .into_response());
    }
    let Some(secret) = header_token.or_else(|| protocol_token(req)) else {
        return Ok(ApiError::unauthenticated(
            "missing credential: send Authorization: Bearer <token>, or offer the subprotocols phoenix.v1 and phoenix.bearer.<base64url token>",
        )
        .into_response());
    };
    if let Err(e) = state.user_secret(&secret, Role::Viewer).await {
        return Ok(e.into_response());
    }
    let Some(slot) = state.ws_session_slot(&secret) else {
        return Ok(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "this token already has {} WebSocket sessions open (ws_max_per_token)",
                state.config.ws_max_per_token
            ),
        )
        .into_response());
    };
    if state.shutting_down() {
        return Ok(
            ApiError::new(ErrorCode::Unavailable, "the server is shutting down").into_response(),
        );
    }
    let cap = state.config.ws_max_message_bytes;
    let config = WebSocketConfig::default()
        .max_message_size(Some(cap))
        .max_frame_size(Some(cap))
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(cap.max(64 * 1024));
    let state = state.clone();
    Ok(ws
        .config(config)
        .protocols([PROTOCOL])
        .on_upgrade(move |socket| session(state, socket, secret, slot))
        .into_response())
}

fn encode(message: &ServerMessage) -> Message {
    Message::Text(serde_json::to_string(message).unwrap_or_default())
}

/// One client's life.
async fn session(
    state: Arc<AppState>,
    socket: WebSocketStream,
    secret: String,
    slot: crate::state::WsSessionSlot,
) {
    // Held for the session's life: the token's place is given back when this returns.
    let _slot = slot;
    state.metrics.ws_clients.inc();
    let (mut sink, mut stream) = socket.split();
    let topics: Arc<Mutex<BTreeSet<Topic>>> = Arc::default();
    let (tx, mut rx) = mpsc::channel::<ServerMessage>(state.config.ws_buffer);
    let overflow = Arc::new(Notify::new());
    let forwarder = tokio::spawn(forward(
        state.phoenix.subscribe(),
        topics.clone(),
        tx.clone(),
        overflow.clone(),
    ));
    let heartbeat_every = Duration::from_secs(state.config.ws_heartbeat_secs);
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + heartbeat_every,
        heartbeat_every,
    );
    let hello = ServerMessage::Hello {
        server_time: state.phoenix.clock().now(),
        heartbeat_secs: state.config.ws_heartbeat_secs,
    };
    let mut close: Option<(CloseCode, &str)> = None;
    if sink.send(encode(&hello)).await.is_err() {
        close = Some((CloseCode::Normal, ""));
    }
    while close.is_none() {
        let outgoing = tokio::select! {
            message = rx.recv() => match message {
                Some(m) => Some(encode(&m)),
                None => { close = Some((CloseCode::Normal, "")); None }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    reply(&text, &topics).map(|m| encode(&m))
                }
                Some(Ok(Message::Binary(_))) => Some(encode(&ServerMessage::Error {
                    code: ErrorCode::BadRequest,
                    message: "send JSON text messages".to_owned(),
                })),
                Some(Ok(Message::Ping(p))) => Some(Message::Pong(p)),
                Some(Ok(Message::Pong(_))) => None,
                Some(Ok(Message::Close(_))) | None => { close = Some((CloseCode::Normal, "")); None }
                Some(Err(_)) => { close = Some((CloseCode::Size, "message too large or malformed")); None }
            },
            _ = heartbeat.tick() => {
                // Revocation, expiry or a lowered role ends the session within one
                // heartbeat; a store that cannot answer now does not.
                match state.user_secret(&secret, Role::Viewer).await {
                    Err(e) if e.is_auth_failure() => {
                        close = Some((CloseCode::Policy, "token revoked or no longer allowed"));
                        None
                    }
                    _ => Some(encode(&ServerMessage::Heartbeat {
                        server_time: state.phoenix.clock().now(),
                    })),
                }
            }
            () = overflow.notified() => {
                state.metrics.ws_dropped.inc();
                close = Some((CloseCode::Policy, "too slow: buffer full"));
                None
            }
            () = state.shutdown_signal() => { close = Some((CloseCode::Away, "server shutting down")); None }
        };
        if let Some(message) = outgoing {
            // A client that does not read stalls this send; the forwarder then fills the
            // buffer and signals overflow, which ends the session.
            tokio::select! {
                sent = sink.send(message) => if sent.is_err() { close = Some((CloseCode::Normal, "")); },
                () = overflow.notified() => {
                    state.metrics.ws_dropped.inc();
                    close = Some((CloseCode::Policy, "too slow: buffer full"));
                }
            }
        }
    }
    forwarder.abort();
    if let Some((code, reason)) = close {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            sink.send(Message::Close(Some((code, reason.to_owned())))),
        )
        .await;
    }
    state.metrics.ws_clients.dec();
}

/// Applies a client message; returns the answer.
fn reply(text: &str, topics: &Mutex<BTreeSet<Topic>>) -> Option<ServerMessage> {
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => m,
        Err(e) => {
            return Some(ServerMessage::Error {
                code: ErrorCode::BadRequest,
                message: format!("unreadable message: {e}"),
            });
        }
    };
    let mut topics = topics.lock().unwrap_or_else(PoisonError::into_inner);
    match message {
        ClientMessage::Subscribe { topics: add } => {
            if topics.len() + add.len() > MAX_TOPICS {
                return Some(ServerMessage::Error {
                    code: ErrorCode::BadRequest,
                    message: format!("at most {MAX_TOPICS} topics per connection"),
                });
            }
            topics.extend(add);
        }
        ClientMessage::Unsubscribe { topics: remove } => {
            for t in remove {
                topics.remove(&t);
            }
        }
        ClientMessage::Ping { id } => return Some(ServerMessage::Pong { id }),
    }
    Some(ServerMessage::Subscribed {
        topics: topics.iter().copied().collect(),
    })
}

/// Bus -> client buffer, filtered by topic. Never waits for the client: a full buffer
/// signals overflow and ends forwarding.
async fn forward(
    mut events: broadcast::Receiver<phoenix_core::store::BusEvent>,
    topics: Arc<Mutex<BTreeSet<Topic>>>,
    tx: mpsc::Sender<ServerMessage>,
    overflow: Arc<Notify>,
) {
    loop {
        let message = match events.recv().await {
            Ok(event) => match ServerMessage::from_bus(event) {
                Some(m) => m,
                None => continue,
            },
            Err(broadcast::error::RecvError::Lagged(missed)) => ServerMessage::Lagged { missed },
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let wanted = {
            let topics = topics.lock().unwrap_or_else(PoisonError::into_inner);
            message.matches(&topics)
        };
        if !wanted {
            continue;
        }
        match tx.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                overflow.notify_one();
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_core::ids::ExperimentId;
    use phoenix_core::store::BusEvent;

    #[tokio::test]
    async fn a_client_that_does_not_drain_its_buffer_is_dropped() {
        let (bus, rx) = broadcast::channel(64);
        let topics: Arc<Mutex<BTreeSet<Topic>>> = Arc::new(Mutex::new([Topic::Experiments].into()));
        let (tx, _unread) = mpsc::channel(2);
        let overflow = Arc::new(Notify::new());
        let forwarder = tokio::spawn(forward(rx, topics, tx, overflow.clone()));
        for _ in 0..3 {
            bus.send(BusEvent::KpisUpdated {
                experiment_id: ExperimentId::new(),
            })
            .unwrap();
        }
        // The third message does not fit: overflow is signalled and forwarding ends.
        overflow.notified().await;
        forwarder.await.unwrap();
    }

    #[tokio::test]
    async fn unsubscribed_topics_are_not_forwarded() {
        let (bus, rx) = broadcast::channel(64);
        let topics: Arc<Mutex<BTreeSet<Topic>>> = Arc::new(Mutex::new([Topic::Agents].into()));
        let (tx, mut out) = mpsc::channel(8);
        let overflow = Arc::new(Notify::new());
        let forwarder = tokio::spawn(forward(rx, topics, tx, overflow));
        bus.send(BusEvent::KpisUpdated {
            experiment_id: ExperimentId::new(),
        })
        .unwrap();
        bus.send(BusEvent::AgentUpdated {
            agent_id: phoenix_core::ids::AgentId::new(),
            status: phoenix_core::agent::AgentStatus::Lost,
        })
        .unwrap();
        let first = out.recv().await.unwrap();
        assert!(matches!(first, ServerMessage::AgentStatus { .. }));
        drop(bus);
        forwarder.await.unwrap();
    }
}
