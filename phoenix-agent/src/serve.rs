//! The agent's exposition listener (the otelcol runtime adds its loopback measurement tap,
//! `runtime::tap`): the Prometheus exposition of each variant, bound to
//! `127.0.0.1` by default. Routes:
//!
//! | path | what |
//! |---|---|
//! | `/metrics/baseline`, `/metrics/candidate` | the latest experiment's variants (empty once removed) |
//! | `/metrics/experiments/<id>/baseline` (`/candidate`) | a given experiment's variants |
//! | `/metrics` | the host's pipeline (after a promotion or quick deploy), else the latest experiment's baseline |
//! | `/healthz` | `ok` |
//!
//! Every response is rendered from the last interval's output: scraping never evaluates
//! anything, so a scrape costs a copy of a string.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use phoenix_core::ids::ExperimentId;
use phoenix_core::measure::Variant;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::exposition::CONTENT_TYPE;
use crate::runtime::PipelineKey;

/// The latest exposition of every running pipeline.
#[derive(Debug, Default)]
pub struct Expositions {
    inner: RwLock<Published>,
}

#[derive(Debug, Default)]
struct Published {
    texts: BTreeMap<PipelineKey, Bytes>,
    /// Pipelines that may publish: a tick that finishes after its pipeline was removed
    /// must not bring it back.
    allowed: Vec<PipelineKey>,
    latest: Option<ExperimentId>,
}

impl Expositions {
    /// Publishes the output of `key`, unless `key` was removed meanwhile.
    pub fn publish(&self, key: PipelineKey, text: String) {
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.allowed.contains(&key) {
            inner.texts.insert(key, Bytes::from(text));
        }
    }

    /// Keeps only `keys` (removed pipelines stop serving at once) and records the latest
    /// experiment, which `/metrics/<variant>` serves.
    pub fn retain(&self, keys: &[PipelineKey], latest: Option<ExperimentId>) {
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.texts.retain(|k, _| keys.contains(k));
        inner.allowed = keys.to_vec();
        inner.latest = latest;
    }

    /// The exposition served at `path`, `None` for an unknown path.
    #[must_use]
    pub fn for_path(&self, path: &str) -> Option<Bytes> {
        let inner = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let get = |key: Option<PipelineKey>| {
            key.and_then(|k| inner.texts.get(&k).cloned())
                .unwrap_or_default()
        };
        let latest = |variant| inner.latest.map(|id| PipelineKey::Experiment(id, variant));
        match path.trim_end_matches('/') {
            "/metrics" => Some(if inner.texts.contains_key(&PipelineKey::Host) {
                get(Some(PipelineKey::Host))
            } else {
                get(latest(Variant::Baseline))
            }),
            "/metrics/baseline" => Some(get(latest(Variant::Baseline))),
            "/metrics/candidate" => Some(get(latest(Variant::Candidate))),
            other => {
                let rest = other.strip_prefix("/metrics/experiments/")?;
                let (id, variant) = rest.split_once('/')?;
                let id: ExperimentId = id.parse().ok()?;
                let variant: Variant = variant.parse().ok()?;
                Some(get(Some(PipelineKey::Experiment(id, variant))))
            }
        }
    }
}

fn respond(expositions: &Expositions, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let path = req.uri().path();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok\n");
    }
    match expositions.for_path(path) {
        Some(body) => {
            let mut r = Response::new(Full::new(body));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(CONTENT_TYPE),
            );
            r
        }
        None => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Serves `expositions` on `listener` until `shutdown` resolves; open connections are
/// closed then.
pub async fn serve(
    listener: TcpListener,
    expositions: Arc<Expositions>,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let expositions = Arc::clone(&expositions);
                connections.spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let response = respond(&expositions, &req);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}
