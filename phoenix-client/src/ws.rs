//! WebSocket subscriptions.

use futures::{SinkExt as _, StreamExt as _};
use phoenix_api::ws::{ClientMessage, ServerMessage, Topic};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::{Client, ClientError};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A live WebSocket subscription. Read with [`Subscription::next`]; server heartbeats are
/// passed through (filter them if not wanted).
#[derive(Debug)]
pub struct Subscription {
    socket: Socket,
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    ClientError::WebSocket(Box::new(e))
}

impl Client {
    /// Connects to `/api/v1/ws`, subscribes to `topics`, and returns once the server
    /// confirmed the subscription.
    pub async fn subscribe(&self, topics: &[Topic]) -> Result<Subscription, ClientError> {
        let mut url = self.url("api/v1/ws")?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| ClientError::InvalidUrl)?;
        let mut request = url.as_str().into_client_request().map_err(ws_error)?;
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::InvalidUrl)?;
            request.headers_mut().insert("authorization", value);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(ws_error)?;
        let mut sub = Subscription { socket };
        sub.send(&ClientMessage::Subscribe {
            topics: topics.to_vec(),
        })
        .await?;
        loop {
            match sub.next().await? {
                Some(ServerMessage::Subscribed { .. }) => return Ok(sub),
                Some(_) => {}
                None => {
                    return Err(ws_error(
                        tokio_tungstenite::tungstenite::Error::ConnectionClosed,
                    ));
                }
            }
        }
    }
}

impl Subscription {
    /// Sends a message.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let text = serde_json::to_string(message)
            .map_err(|source| ClientError::Decode { status: 0, source })?;
        self.socket
            .send(Message::text(text))
            .await
            .map_err(ws_error)
    }

    /// The next server message; `None` when the server closed the connection.
    pub async fn next(&mut self) -> Result<Option<ServerMessage>, ClientError> {
        loop {
            match self.socket.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .map(Some)
                        .map_err(|source| ClientError::Decode { status: 0, source });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ws_error(e)),
            }
        }
    }

    /// The next message that is not a heartbeat, pong or subscription confirmation.
    pub async fn next_event(&mut self) -> Result<Option<ServerMessage>, ClientError> {
        loop {
            match self.next().await? {
                Some(
                    ServerMessage::Heartbeat { .. }
                    | ServerMessage::Pong { .. }
                    | ServerMessage::Subscribed { .. }
                    | ServerMessage::Hello { .. },
                ) => {}
                other => return Ok(other),
            }
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.socket.close(None).await.map_err(ws_error)
    }
}
