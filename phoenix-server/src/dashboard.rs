//! The web dashboard at `ui/`: static HTML, CSS and JavaScript compiled into the binary
//! (`include_bytes!` of `phoenix-server/dashboard/`), so there is no build step and nothing
//! is fetched from another origin. The page calls the REST API and the WebSocket with the
//! user token it keeps in `sessionStorage`; the server holds no dashboard state.
//!
//! Every asset is served with its content type and a Content-Security-Policy that allows
//! scripts, styles and connections to this origin only (no inline script or style, no
//! framing). See `docs/dashboard.md`.

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::web::Path;
use poem::{IntoResponse, Request, Response, handler};

use crate::error::ApiError;

/// The policy every dashboard response carries: scripts, styles, images (the favicon) and
/// connections from this origin only (`'self'` covers the page's own `ws:`/`wss:` origin
/// in CSP 3), nothing else loadable, no framing, no `<base>` rewriting, no form posts
/// anywhere (forms are handled by script).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Path below `ui/`.
    pub path: &'static str,
    /// `Content-Type` it is served with.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../dashboard/", $path)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of the dashboard. `index.html` is served at `ui/`.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/live.js", JS),
    asset!("js/backoff.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/experiments.js", JS),
    asset!("js/experiment.js", JS),
    asset!("js/fleet.js", JS),
    asset!("js/cost.js", JS),
    asset!("js/templates.js", JS),
    asset!("js/forms.js", JS),
    asset!("js/new-experiment.js", JS),
    asset!("js/deployments.js", JS),
    asset!("js/agent.js", JS),
    asset!("js/queries.js", JS),
];

/// The asset at `path` (below `ui/`), if there is one.
#[must_use]
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// A strong validator for an asset: FNV-1a over its bytes (stable across builds of the
/// same content, so caches revalidate cheaply after a restart).
fn etag(body: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

/// Adds the dashboard's security headers to `resp`.
fn secure(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

fn serve(req: &Request, path: &str) -> Response {
    let Some(asset) = asset(path) else {
        return secure(
            ApiError::new(phoenix_api::ErrorCode::NotFound, "no such dashboard file")
                .into_response(),
        );
    };
    let tag = etag(asset.body);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let builder = Response::builder()
        .header(header::ETAG, tag)
        // Revalidate every time: the files change with the binary, and a 304 is cheap.
        .header(header::CACHE_CONTROL, "no-cache");
    let resp = if fresh {
        builder.status(StatusCode::NOT_MODIFIED).finish()
    } else {
        builder.content_type(asset.content_type).body(asset.body)
    };
    secure(resp)
}

/// Whether `req` asks for the root (relative to where the API is nested), which leads to
/// the dashboard.
pub(crate) fn is_root(req: &Request) -> bool {
    req.uri().path() == "/" && (req.method() == Method::GET || req.method() == Method::HEAD)
}

/// `ui/`: the page.
#[handler]
pub(crate) fn index(req: &Request) -> Response {
    serve(req, "index.html")
}

/// `ui/*path`: one file.
#[handler]
pub(crate) fn file(req: &Request, Path(path): Path<String>) -> Response {
    serve(req, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_type_and_content() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            let ext = a.path.rsplit('.').next().unwrap_or_default();
            let expected = match ext {
                "html" => HTML,
                "js" => JS,
                "css" => CSS,
                "svg" => SVG,
                other => panic!("no content type for .{other}"),
            };
            assert_eq!(a.content_type, expected, "{}", a.path);
        }
    }

    #[test]
    fn the_page_loads_only_embedded_files() {
        let page = std::str::from_utf8(asset("").unwrap().body).unwrap();
        for reference in page
            .split(['"', '\''])
            .filter(|s| s.ends_with(".js") || s.ends_with(".css") || s.ends_with(".svg"))
        {
            assert!(
                asset(reference).is_some(),
                "index.html refers to missing {reference}"
            );
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("<style") && !page.contains(" style="));
    }

    #[test]
    fn every_module_import_is_embedded() {
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line
                    .split(['"', '\''])
                    .nth(1)
                    .unwrap_or_else(|| panic!("{}: unparsable import {line}", a.path));
                let resolved = target.strip_prefix("./").expect("relative import");
                assert!(
                    asset(&format!("js/{resolved}")).is_some(),
                    "{} imports missing {target}",
                    a.path
                );
            }
        }
    }

    #[test]
    fn etags_differ_by_content() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
    }

    /// The dashboard's reconnect follows core's `Backoff::default()`: same numbers, same
    /// (equal) jitter.
    #[test]
    fn the_reconnect_backoff_is_cores() {
        use phoenix_core::backoff::{Backoff, Jitter};
        let js = std::str::from_utf8(asset("js/backoff.js").unwrap().body).unwrap();
        let constant = |name: &str| -> u128 {
            let prefix = format!("export const {name} = ");
            let line = js
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("backoff.js has no {name}"));
            line.trim_end_matches(';').parse().unwrap()
        };
        let core = Backoff::default();
        assert_eq!(constant("INITIAL_MS"), core.initial().as_millis());
        assert_eq!(constant("MAX_MS"), core.max().as_millis());
        assert_eq!(constant("MULTIPLIER"), u128::from(core.multiplier()));
        assert_eq!(core.jitter(), Jitter::Equal);
        assert!(
            js.contains("return c / 2 + (c / 2) * draw;"),
            "equal jitter"
        );
        let live = std::str::from_utf8(asset("js/live.js").unwrap().body).unwrap();
        assert!(live.contains("from './backoff.js'"));
    }
}
