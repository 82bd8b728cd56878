//! The HTTP/1.1 server loop: accepts connections and serves poem requests on each with
//! hyper's HTTP/1 connection directly (upgrades enabled, for the WebSocket).
//!
//! Why not `poem::Server`: an agent's long-poll keeps one connection and one request
//! waiting for up to `max_poll_wait_secs`, so what a waiting request holds is what 10,000
//! agents cost (design target: at most 16 KiB per agent). poem's server goes through
//! hyper-util's protocol-sniffing builder and a per-request box around the endpoint, and
//! every request keeps the block hyper read its head into alive (header values and the
//! URI are slices of it) while hyper reserves a second block for the next read. Here:
//! - HTTP/1.1 only (no sniffing; Phoenix's clients speak HTTP/1.1 over plain TCP);
//! - the request head is copied out of hyper's read block before the endpoint runs, so
//!   hyper reuses that block for the next read instead of allocating another;
//! - one box per request: the handler's future.
//!
//! Graceful shutdown: when `shutdown` resolves the loop stops accepting, every connection
//! finishes its in-flight request and closes, and after `grace` whatever is left is
//! dropped.
//!
//! Edge limits ([`ConnectionLimits`]), applied before any request is read:
//! - a connection beyond `max_connections` in all, or beyond `max_connections_per_client`
//!   from one client address, is answered `503` with `Retry-After` and closed at once, so
//!   idle or hostile connections cannot exhaust the process's descriptors and starve
//!   health checks and agents;
//! - `header_read_timeout`: a client has this long to send a whole request head, counted
//!   from when the connection starts waiting for it, so it also closes a kept-alive
//!   connection left idle between requests (hyper's timer, which needs the Tokio timer
//!   set here). A request in flight (a long-poll) is not idle and is not cut.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::Addr;
use poem::http::{HeaderMap, HeaderValue, Request, Uri};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What answers requests: called once per request, returns the response's future.
pub(crate) type Handler =
    Arc<dyn Fn(poem::Request) -> BoxFuture<'static, poem::Response> + Send + Sync>;

/// A connection's view of the server's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ConnPhase {
    Serving,
    /// Finish the in-flight request, then close.
    Draining,
    /// The grace period is over: stop now.
    Abort,
}

/// Limits on connections, enforced by the accept loop and each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionLimits {
    /// Time a client has to send a whole request head, from when the connection starts
    /// waiting for it (also the longest a kept-alive connection may stay idle).
    pub(crate) header_read_timeout: Duration,
    /// Connections open at once, in all; more are answered 503 and closed.
    pub(crate) max_connections: usize,
    /// Connections open at once from one client IP address; more are answered 503.
    pub(crate) max_connections_per_client: usize,
}

/// Connections open now, in all and per client address.
#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// One admitted connection; gives its place back when dropped.
struct Admitted {
    open: Arc<Mutex<OpenConnections>>,
    client: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

/// Admits a connection from `client` unless a limit is reached.
fn admit(
    open: &Arc<Mutex<OpenConnections>>,
    limits: &ConnectionLimits,
    client: IpAddr,
) -> Option<Admitted> {
    let mut guard = open.lock().unwrap_or_else(PoisonError::into_inner);
    let from_client = guard.per_client.get(&client).copied().unwrap_or(0);
    if guard.total >= limits.max_connections || from_client >= limits.max_connections_per_client {
        return None;
    }
    guard.total += 1;
    *guard.per_client.entry(client).or_insert(0) += 1;
    drop(guard);
    Some(Admitted {
        open: Arc::clone(open),
        client,
    })
}

/// The body of the answer to a connection over a limit, in the server's error shape.
const OVER_CAPACITY_BODY: &str =
    r#"{"error":{"code":"over_capacity","message":"too many connections: try again later"}}"#;

/// The whole answer to a connection over a limit: 503, `Retry-After`, then close.
fn over_capacity() -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{OVER_CAPACITY_BODY}",
        OVER_CAPACITY_BODY.len()
    )
    .into_bytes()
}

/// Writes the 503 to a refused connection (briefly: a client that does not read it is
/// dropped) and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&over_capacity()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains for up to
/// `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    handler: Handler,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let (phase, watch_phase) = watch::channel(ConnPhase::Serving);
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let Some(admitted) = admit(&open, &limits, remote.ip()) else {
                        tracing::debug!(client = %remote.ip(), "connection refused: over capacity");
                        tokio::spawn(refuse(stream));
                        continue;
                    };
                    // Answers are small single writes: do not wait for more to coalesce.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(
                        stream,
                        handler.clone(),
                        local.clone(),
                        remote,
                        watch_phase.clone(),
                        limits.header_read_timeout,
                        admitted,
                    ));
                }
                Err(e) => {
                    // Out of file descriptors, or the peer reset before accept: keep
                    // serving the others, without spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    drop(watch_phase);
    phase.send_replace(ConnPhase::Draining);
    // `closed` resolves once every connection has dropped its receiver.
    if tokio::time::timeout(grace, phase.closed()).await.is_err() {
        tracing::warn!(
            connections = phase.receiver_count(),
            "shutdown grace period over: closing the remaining connections"
        );
        phase.send_replace(ConnPhase::Abort);
    }
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    handler: Handler,
    local: LocalAddr,
    remote: SocketAddr,
    mut phase: watch::Receiver<ConnPhase>,
    header_read_timeout: Duration,
    admitted: Admitted,
) {
    // Held for the connection's life: its place is given back when this returns.
    let _admitted = admitted;
    let remote = RemoteAddr(Addr::SocketAddr(remote));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let req = poem::Request::from((
            detach_head(req),
            local.clone(),
            remote.clone(),
            poem::http::uri::Scheme::HTTP,
        ));
        // The handler's future is the request's only box: hyper keeps this `Map` of it.
        handler(req).map(|resp| Ok::<_, Infallible>(hyper::Response::from(resp)))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            log_connection_end(result);
            return;
        }
        _ = phase.wait_for(|p| *p >= ConnPhase::Draining) => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        result = conn => log_connection_end(result),
        _ = phase.wait_for(|p| *p >= ConnPhase::Abort) => {}
    }
}

fn log_connection_end(result: hyper::Result<()>) {
    if let Err(e) = result {
        // Clients that go away mid-request are routine; nothing for an operator to do.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Copies the request's URI and header values out of the block hyper read them into, so
/// that block is free for hyper's next read while the request waits (a long-poll waits
/// for up to minutes).
fn detach_head<B>(req: Request<B>) -> Request<B> {
    let (mut parts, body) = req.into_parts();
    // Origin-form (`/path?query`) is what clients send to a server; other forms keep
    // their shared URI.
    if parts.uri.scheme().is_none()
        && parts.uri.authority().is_none()
        && let Some(pq) = parts.uri.path_and_query()
        && let Ok(uri) = Uri::try_from(pq.as_str().to_owned())
    {
        parts.uri = uri;
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    let mut current = None;
    for (name, value) in std::mem::take(&mut parts.headers) {
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = current.clone() else {
            continue;
        };
        let sensitive = value.is_sensitive();
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or(value);
        copy.set_sensitive(sensitive);
        headers.append(name, copy);
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENEROUS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 1000,
        max_connections_per_client: 1000,
    };

    /// A server whose every answer takes `delay`; returns its address, a trigger for
    /// shutdown and the serve task.
    async fn slow_server(
        delay: Duration,
        grace: Duration,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        limited_server(delay, grace, GENEROUS).await
    }

    async fn limited_server(
        delay: Duration,
        grace: Duration,
        limits: ConnectionLimits,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handler: Handler = Arc::new(move |req: poem::Request| {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                poem::Response::builder().body(req.uri().path().to_owned())
            })
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            handler,
            async move {
                let _ = stopped.await;
            },
            grace,
            limits,
        ));
        (addr, stop, task)
    }

    /// Reads what the server sends until it closes the connection (or 10 s pass).
    async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt as _;
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
            .await
            .expect("the server closes the connection")
            .expect("read");
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn get(stream: &mut tokio::net::TcpStream, path: &str) -> String {
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .expect("write");
        read_to_close(stream).await
    }

    #[tokio::test]
    async fn connections_over_the_per_client_cap_are_answered_503_and_closed() {
        let (addr, _stop, _task) = limited_server(
            Duration::ZERO,
            Duration::from_secs(1),
            ConnectionLimits {
                max_connections_per_client: 2,
                ..GENEROUS
            },
        )
        .await;
        let first = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut second = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut third = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let refused = read_to_close(&mut third).await;
        assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
        assert!(refused.contains("retry-after: 1"), "{refused}");
        let body = refused.split("\r\n\r\n").nth(1).expect("body");
        let json: serde_json::Value = serde_json::from_str(body).expect("the error shape");
        assert_eq!(json["error"]["code"], "over_capacity");
        // The admitted ones are served; a closed one gives its place back.
        assert!(get(&mut second, "/ok").await.starts_with("HTTP/1.1 200 "));
        drop(first);
        let answer = loop {
            let mut again = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let answer = get(&mut again, "/again").await;
            if !answer.starts_with("HTTP/1.1 503 ") {
                break answer;
            }
            // The server has not yet seen the close of `first` and `second`.
            tokio::task::yield_now().await;
        };
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }

    #[tokio::test]
    async fn connections_over_the_total_cap_are_answered_503() {
        let (addr, _stop, _task) = limited_server(
            Duration::ZERO,
            Duration::from_secs(1),
            ConnectionLimits {
                max_connections: 1,
                ..GENEROUS
            },
        )
        .await;
        let mut first = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut second = tokio::net::TcpStream::connect(addr).await.expect("connect");
        assert!(
            read_to_close(&mut second)
                .await
                .starts_with("HTTP/1.1 503 ")
        );
        assert!(get(&mut first, "/ok").await.starts_with("HTTP/1.1 200 "));
    }

    #[tokio::test]
    async fn a_slow_request_head_is_cut_but_a_slow_answer_is_not() {
        let (addr, _stop, _task) = limited_server(
            Duration::from_millis(1500),
            Duration::from_secs(1),
            ConnectionLimits {
                header_read_timeout: Duration::from_millis(500),
                ..GENEROUS
            },
        )
        .await;
        // Slowloris: a head that never ends is closed.
        let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("write");
        let answer = read_to_close(&mut slow).await;
        assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
        // An idle connection that never sends anything is closed too.
        let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
        assert_eq!(read_to_close(&mut idle).await, "");
        // A request whose answer takes longer than the timeout (a long-poll) is answered.
        let mut waiting = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let answer = get(&mut waiting, "/long-poll").await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        assert!(answer.ends_with("/long-poll"), "{answer}");
    }

    #[tokio::test]
    async fn shutdown_finishes_the_request_in_flight_then_stops() {
        let (addr, stop, task) =
            slow_server(Duration::from_millis(300), Duration::from_secs(10)).await;
        let request = tokio::spawn(async move {
            reqwest::get(format!("http://{addr}/in-flight"))
                .await?
                .text()
                .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).expect("stop");
        let body = request.await.expect("join").expect("the answer arrives");
        assert_eq!(body, "/in-flight");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returns once drained")
            .expect("join")
            .expect("serve");
        // Nothing listens any more.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn shutdown_gives_up_on_requests_after_the_grace_period() {
        let (addr, stop, task) =
            slow_server(Duration::from_secs(600), Duration::from_millis(200)).await;
        let request = tokio::spawn(async move { reqwest::get(format!("http://{addr}/")).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returns after the grace period")
            .expect("join")
            .expect("serve");
        let dropped = tokio::time::timeout(Duration::from_secs(5), request)
            .await
            .expect("the request ends")
            .expect("join");
        assert!(dropped.is_err(), "the abandoned request fails: {dropped:?}");
    }

    #[test]
    fn detached_head_keeps_uri_and_every_header_value() {
        let mut token = HeaderValue::from_static("Bearer abc");
        token.set_sensitive(true);
        let req = Request::builder()
            .uri("/api/v1/agent/tasks?wait=30&max=8")
            .header("authorization", token)
            .header("accept", "application/json")
            .header("x-multi", "a")
            .header("x-multi", "b")
            .body(())
            .expect("request");
        let before = req.headers().clone();
        let after = detach_head(req);
        assert_eq!(after.uri().to_string(), "/api/v1/agent/tasks?wait=30&max=8");
        assert_eq!(after.headers(), &before);
        let multi: Vec<_> = after.headers().get_all("x-multi").iter().collect();
        assert_eq!(multi, ["a", "b"]);
        assert!(after.headers()["authorization"].is_sensitive());
    }

    #[test]
    fn absolute_form_uri_is_kept_whole() {
        let req = Request::builder()
            .uri("http://example.com/healthz")
            .body(())
            .expect("request");
        assert_eq!(
            detach_head(req).uri().to_string(),
            "http://example.com/healthz"
        );
    }
}
