//! The Web UI: a single page of plain ES modules and CSS, compiled into the
//! binary from `host/panel/web/` with `include_str!`, so the Panel needs no
//! separate server, build step or front-end dependency.
//!
//! | Path | What |
//! | --- | --- |
//! | `/` | `index.html`, the page shell |
//! | `/assets/{file}` | the scripts, the style sheet and the icon |
//!
//! The UI routes with the URL fragment (`/#/servers/…`), so no path but
//! these two needs serving and nothing shadows `/api` or `/metrics`;
//! unknown paths stay `404` problem documents.
//!
//! Every answer carries a strict Content-Security-Policy — `default-src
//! 'self'`, no inline script or style, no `eval`, no framing — plus
//! `nosniff` and `no-referrer`. Assets are revalidated on every load
//! (`Cache-Control: no-cache`) against a strong `ETag` (a hash of their
//! bytes), so an upgraded Panel is never served stale scripts and an
//! unchanged one answers `304` with no body.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;

/// The Content-Security-Policy of every Web UI answer (the page itself
/// adds the connected nodes' file-transfer origins to `connect-src`: see
/// [`content_security_policy`]).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// [`CONTENT_SECURITY_POLICY`] with `origins` added to `connect-src`: the
/// page's file manager uploads to and reads from the Agents' transfer URLs
/// directly. Each origin is the scheme, host and port of a URL an Agent
/// announced (never anything from a request), re-serialised so nothing but
/// an origin reaches the header.
pub fn content_security_policy(origins: &[String]) -> String {
    let mut extra: Vec<String> = origins
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.origin().ascii_serialization())
        // A host may hold characters that end a CSP directive (`;`, `,`):
        // only what a host name or an IP address is spelt with passes.
        .filter(|o| {
            o != "null"
                && o.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":/.-[]".contains(c))
        })
        .collect();
    extra.sort();
    extra.dedup();
    if extra.is_empty() {
        return CONTENT_SECURITY_POLICY.to_owned();
    }
    CONTENT_SECURITY_POLICY.replace(
        "connect-src 'self'",
        &format!("connect-src 'self' {}", extra.join(" ")),
    )
}

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The page shell.
const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../../web/index.html"),
};

/// Everything under `/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/dom.js"),
    },
    Asset {
        name: "pages.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/pages.js"),
    },
    Asset {
        name: "server.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/server.js"),
    },
    Asset {
        name: "files.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/files.js"),
    },
    Asset {
        name: "backups.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/backups.js"),
    },
    Asset {
        name: "databases.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/databases.js"),
    },
    Asset {
        name: "allocations.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/allocations.js"),
    },
    Asset {
        name: "editor.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/editor.js"),
    },
    Asset {
        name: "transfer.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/transfer.js"),
    },
    Asset {
        name: "text-codec.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/text-codec.js"),
    },
    Asset {
        name: "admin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/admin.js"),
    },
    Asset {
        name: "eggs.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/eggs.js"),
    },
    Asset {
        name: "plugin-ui.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/plugin-ui.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../web/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../web/icon.svg"),
    },
];

/// The Web UI's routes (merged into the application router, outside the
/// API and its OpenAPI document).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut response = serve(&INDEX, &headers);
    let policy = content_security_policy(&state.agents().files_urls());
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::NotFound(format!("no asset {file}")).into_response(),
    }
}

fn etag(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    format!("\"{}\"", hex::encode(&digest[..16]))
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset.body);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
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
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_may_connect_to_the_agents_transfer_origins_and_nothing_else_they_say() {
        let policy = content_security_policy(&[
            "https://node1.example.com:8443/".into(),
            "http://127.0.0.1:9000".into(),
            "https://node1.example.com:8443/other/path?x=1".into(),
            "javascript:alert(1)".into(),
            "https://evil.example.com; script-src *".into(),
            "not a url".into(),
            "https://a;b".into(),
            "https://a,b".into(),
        ]);
        assert!(
            policy.contains(
                "connect-src 'self' http://127.0.0.1:9000 https://node1.example.com:8443;"
            ),
            "{policy}"
        );
        assert!(!policy.contains("evil"), "{policy}");
        assert!(
            !policy.contains("a;b") && !policy.contains("a,b"),
            "{policy}"
        );
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert_eq!(content_security_policy(&[]), CONTENT_SECURITY_POLICY);
    }

    #[test]
    fn no_embedded_file_has_inline_script_or_handlers() {
        for asset in std::iter::once(&INDEX).chain(ASSETS) {
            let body = asset.body.to_ascii_lowercase();
            assert!(!body.contains("innerhtml"), "{} uses innerHTML", asset.name);
            assert!(!body.contains("eval("), "{} uses eval", asset.name);
            assert!(
                !body.contains(" onclick=") && !body.contains(" onload="),
                "{} has an inline handler",
                asset.name
            );
        }
        assert!(
            !INDEX.body.contains("<script>"),
            "index.html has inline script"
        );
        assert!(
            !INDEX.body.contains("<style"),
            "index.html has inline style"
        );
    }

    /// The UI asks `GET /api/v1/permissions` for the list it offers (the
    /// role editor) and `GET /api/v1/auth/me` for what the caller holds; the
    /// names it tests to show a link or a button must be in the catalogue.
    #[test]
    fn every_permission_the_ui_names_is_in_the_catalogue() {
        use crate::identity::permissions::{Permission, RETIRED};
        let resources: std::collections::BTreeSet<&str> = Permission::ALL
            .iter()
            .map(|p| p.as_str())
            .chain(RETIRED.iter().map(|(name, _)| *name))
            .filter_map(|name| name.split('.').next())
            .collect();
        let mut named = 0;
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            // Every quoted `resource.action` whose resource is one of the
            // catalogue's (or a removed permission's): whatever stands
            // between a quote and the next one of its kind.
            let body = asset.body;
            let quoted = body.char_indices().filter_map(|(at, quote)| {
                let rest = body.get(at + 1..)?;
                ['\'', '"', '`']
                    .contains(&quote)
                    .then(|| rest.split(quote).next())
                    .flatten()
            });
            for literal in quoted {
                let Some((resource, _)) = literal.split_once('.') else {
                    continue;
                };
                if !resources.contains(resource)
                    || !crate::identity::permissions::is_valid_permission(literal)
                {
                    continue;
                }
                named += 1;
                assert!(
                    literal.parse::<Permission>().is_ok(),
                    "{} names {literal:?}, which is not in the permission catalogue",
                    asset.name
                );
            }
        }
        assert!(named > 10, "the scan found only {named} names");
    }

    #[test]
    fn the_etag_changes_with_the_content() {
        assert_ne!(etag("a"), etag("b"));
        assert_eq!(etag("a"), etag("a"));
    }
}
