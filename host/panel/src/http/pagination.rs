//! Pagination for list endpoints: `?limit=&cursor=` in, `next_cursor` out.
//!
//! Lists are keyset-paginated: a page ends with an opaque `next_cursor`,
//! which the client passes back as `cursor` to get the next page; the last
//! page has `next_cursor: null`. `limit` is 1 to [`MAX_LIMIT`] (default
//! [`DEFAULT_LIMIT`]); out-of-range values are refused with a per-field
//! `422`, not silently clamped, so a client learns the bound.
//!
//! A handler takes [`Pagination`] as an extractor, documents
//! [`PageParams`] in its `params(…)`, and turns the store's next position
//! into a cursor with [`Cursor::encode`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, FieldError, FieldLocation};
use super::extract::parse_query;

/// The page size when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page size a client may ask for.
pub const MAX_LIMIT: u32 = 200;

/// The pagination query parameters, as documented in OpenAPI.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many items to return: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Where to continue: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated page request: the extractor for list handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    /// How many items, 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// Where to continue, if not at the start.
    pub cursor: Option<Cursor>,
}

impl Pagination {
    /// Validates raw parameters.
    ///
    /// # Errors
    ///
    /// [`ApiError::Validation`] naming `limit` or `cursor`.
    pub fn from_params(params: &PageParams) -> Result<Pagination, ApiError> {
        let mut errors = Vec::new();
        let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                FieldLocation::Query,
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let cursor = match params.cursor.as_deref() {
            None => None,
            Some(text) => match Cursor::decode(text) {
                Some(cursor) => Some(cursor),
                None => {
                    errors.push(FieldError::new(
                        FieldLocation::Query,
                        "cursor",
                        "is not a cursor returned by this API",
                    ));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Pagination { limit, cursor })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let params: PageParams = parse_query(parts.uri.query().unwrap_or_default())?;
        Pagination::from_params(&params)
    }
}

/// An opaque position in a list. Today it wraps the last item's numeric
/// key; clients must treat the encoded form as opaque so that can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub i64);

const CURSOR_PREFIX: &str = "v1:";

impl Cursor {
    /// The cursor's wire form.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", self.0))
    }

    /// Parses a wire form made by [`Cursor::encode`]; `None` for anything
    /// else.
    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let key = text.strip_prefix(CURSOR_PREFIX)?.parse().ok()?;
        Some(Cursor(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_cursor() {
        for key in [0, 1, 42, i64::MAX, -7] {
            assert_eq!(Cursor::decode(&Cursor(key).encode()), Some(Cursor(key)));
        }
    }

    #[test]
    fn refuses_forged_cursors() {
        for text in [
            "",
            "42",
            "djE6",
            "djE6eA",
            "!!!",
            &URL_SAFE_NO_PAD.encode("v2:1"),
        ] {
            assert_eq!(Cursor::decode(text), None, "{text:?}");
        }
    }

    #[test]
    fn defaults_the_limit_and_refuses_it_out_of_range() {
        let page = Pagination::from_params(&PageParams::default()).expect("defaults are valid");
        assert_eq!(
            page,
            Pagination {
                limit: DEFAULT_LIMIT,
                cursor: None
            }
        );
        for limit in [0, MAX_LIMIT + 1] {
            let params = PageParams {
                limit: Some(limit),
                cursor: Some("bad".into()),
            };
            match Pagination::from_params(&params) {
                Err(ApiError::Validation(errors)) => {
                    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
                    assert_eq!(fields, ["limit", "cursor"]);
                }
                other => panic!("expected a validation error, got {other:?}"),
            }
        }
    }
}
