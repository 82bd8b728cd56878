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

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use poem::Addr;
use poem::http::{HeaderMap, HeaderValue, Request, Uri};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What answers requests: called once per request, returns the response's future.
pub(crate) type Handler =
    Arc<dyn Fn(poem::Request) -> BoxFuture<'static, poem::Response> + Send + Sync>;

/// A connection's view of the server's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    /// Finish the in-flight request, then close.
    Draining,
    /// The grace period is over: stop now.
    Abort,
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains for up to
/// `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    handler: Handler,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let (phase, watch_phase) = watch::channel(Phase::Serving);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    // Answers are small single writes: do not wait for more to coalesce.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(
                        stream,
                        handler.clone(),
                        local.clone(),
                        remote,
                        watch_phase.clone(),
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
    phase.send_replace(Phase::Draining);
    // `closed` resolves once every connection has dropped its receiver.
    if tokio::time::timeout(grace, phase.closed()).await.is_err() {
        tracing::warn!(
            connections = phase.receiver_count(),
            "shutdown grace period over: closing the remaining connections"
        );
        phase.send_replace(Phase::Abort);
    }
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    handler: Handler,
    local: LocalAddr,
    remote: SocketAddr,
    mut phase: watch::Receiver<Phase>,
) {
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
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            log_connection_end(result);
            return;
        }
        _ = phase.wait_for(|p| *p >= Phase::Draining) => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        result = conn => log_connection_end(result),
        _ = phase.wait_for(|p| *p >= Phase::Abort) => {}
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
        ));
        (addr, stop, task)
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
