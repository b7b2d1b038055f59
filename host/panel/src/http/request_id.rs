//! Request ids: one per request, taken from `x-request-id` when the client
//! (or a proxy) sent a sane one, generated otherwise.
//!
//! The id is echoed in the `x-request-id` response header, recorded in the
//! request's tracing span, put into problem documents and stored with every
//! event the request causes. "Sane" means 1 to 128 characters from
//! `A-Z a-z 0-9 - _ . : @ +`: enough for UUIDs, trace ids and the usual
//! proxy formats, and nothing that could forge a log line or header.

use std::convert::Infallible;
use std::fmt;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the request id, in both directions.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest accepted incoming id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The current request's id. Also an extractor; it never fails (behind the
/// [`assign`] middleware the id is always there; without it, a fresh one is
/// generated).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh random id (a UUID v4 without dashes).
    pub fn generate() -> RequestId {
        RequestId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// `candidate` as a request id, if it is sane (see the module docs).
    pub fn parse(candidate: &str) -> Option<RequestId> {
        let sane = (1..=MAX_REQUEST_ID_LEN).contains(&candidate.len())
            && candidate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:@+".contains(&b));
        sane.then(|| RequestId(candidate.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate))
    }
}

/// Middleware: decides the request id, stores it in the request's
/// extensions and header (replacing an insane one), and echoes it in the
/// response header.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    // Sane ids are visible ASCII, so they are always valid header values.
    let value = HeaderValue::from_str(id.as_str()).ok();
    if let Some(value) = &value {
        request
            .headers_mut()
            .insert(&REQUEST_ID_HEADER, value.clone());
    }
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    if let Some(value) = value {
        response.headers_mut().insert(&REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_and_trace_ids() {
        for id in [
            "0b5c4bd6-a3f0-4c1c-9d1e-2f3a4b5c6d7e",
            "abc",
            "req:1@edge+2.x_y",
        ] {
            assert_eq!(RequestId::parse(id).map(|i| i.0), Some(id.to_owned()));
        }
    }

    #[test]
    fn refuses_empty_long_and_odd_ids() {
        for id in [
            "",
            "has space",
            "new\nline",
            "semi;colon",
            "ü",
            &"a".repeat(129),
        ] {
            assert_eq!(RequestId::parse(id), None, "{id:?}");
        }
    }

    #[test]
    fn generates_sane_distinct_ids() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a, b);
        assert!(RequestId::parse(a.as_str()).is_some());
    }
}
