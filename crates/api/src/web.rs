//! The staff dashboard (`web/`, built into `web/dist` and embedded at compile time) and the
//! browsable API docs, both served from the binary with no CDN.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/dashboard.rs"));
}

fn file(path: &str) -> Option<(&'static str, &'static [u8])> {
    embedded::FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, ct, bytes)| (*ct, *bytes))
}

/// What the dashboard may load: only its own files, only its own API.
const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /` and any other non-API path: the dashboard's files, with `index.html` for paths that
/// are not files (client-side routes).
pub async fn dashboard(uri: Uri) -> Response {
    let path = uri.path();
    if let Some((ct, bytes)) = file(path).filter(|_| path != "/") {
        let mut resp = bytes.into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        // Vite names assets by content hash: cache them for good.
        let cache = if path.starts_with("/assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        return resp;
    }
    if path.starts_with("/assets/") || path.starts_with("/api/") {
        return crate::error::problem_response(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such resource".into(),
        );
    }
    match file("/index.html") {
        Some((ct, bytes)) => {
            let mut resp = bytes.into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // The dashboard has no inline code and talks only to its own origin.
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DASHBOARD_CSP));
            resp
        }
        None => Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Flagpost</title></head>\
             <body><h1>Flagpost</h1><p>This binary was built without the dashboard. Build it with \
             <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>, then rebuild Flagpost. \
             The API is at <a href=\"/docs\">/docs</a>.</p></body></html>",
        )
        .into_response(),
    }
}

/// `GET /docs`: a small, dependency-free reader of `/openapi.json`.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
