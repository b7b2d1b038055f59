//! Pagination for list endpoints: `?limit=&cursor=` in, `next_cursor` out.
//!
//! Lists are keyset-paginated: a page ends with an opaque `next_cursor`,
//! which the client passes back as `cursor` to get the next page; the last
//! page has `next_cursor: null`. `limit` is 1 to [`MAX_LIMIT`] (default
//! [`DEFAULT_LIMIT`]); out-of-range values are refused with a per-field
//! `422`, not silently clamped, so a client learns the bound.
//!
//! This is the one pagination scheme of the Panel's own lists: a handler
//! takes [`Pagination`] as an extractor, documents [`PageParams`] in its
//! `params(…)`, reads where to continue with [`Pagination::after_key`] (a
//! row id: servers, nodes, commands) or [`Pagination::after_number`] (an
//! event id, an offset), and turns the last item's key into the page's
//! `next_cursor` with [`Cursor::encode`].
//!
//! # Cursors
//!
//! A cursor is an opaque key: `base64url("k1:" + key)`, the key 1 to 64
//! characters. Lists keyed by number used to send `base64url("v1:" + n)`;
//! such a cursor is still accepted (as the key `n`), so a client holding
//! one across an upgrade continues where it was. A cursor whose key does
//! not fit the list (a word where a number is expected) is refused like a
//! forged one.
//!
//! The Marketplace's package search (`GET /marketplace/packages`) relays
//! another service's pages; it takes `limit` and `cursor` too and turns
//! them into that service's page numbers (see
//! [`super::marketplace_routes`]).

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
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl Pagination {
    /// Where to continue as a row key (the last item's id), if not at the
    /// start.
    pub fn after_key(&self) -> Option<&str> {
        self.cursor.as_ref().map(Cursor::key)
    }

    /// Where to continue as a number (the last item's numeric key, or an
    /// offset), if not at the start.
    ///
    /// # Errors
    ///
    /// [`ApiError::Validation`] naming `cursor` when its key is not a
    /// number: it was not made by this list.
    pub fn after_number(&self) -> Result<Option<i64>, ApiError> {
        self.cursor
            .as_ref()
            .map(|cursor| cursor.key().parse().map_err(|_| forged_cursor()))
            .transpose()
    }
}

fn forged_cursor() -> ApiError {
    ApiError::field(
        FieldLocation::Query,
        "cursor",
        "is not a cursor returned by this API",
    )
}

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let params: PageParams = parse_query(parts.uri.query().unwrap_or_default())?;
        Pagination::from_params(&params)
    }
}

/// An opaque position in a list: the key of the last item of the previous
/// page. Clients must treat the encoded form as opaque so that it can
/// change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

/// The prefix of a cursor's wire form.
const CURSOR_PREFIX: &str = "k1:";
/// The prefix of the numeric cursors of earlier versions, still accepted.
const LEGACY_NUMBER_PREFIX: &str = "v1:";
/// The longest key a cursor carries.
const MAX_KEY_LEN: usize = 64;

impl Cursor {
    /// A cursor continuing after the item keyed `key` (an id or a number).
    pub fn after(key: impl ToString) -> Cursor {
        Cursor(key.to_string())
    }

    /// The key it continues after.
    pub fn key(&self) -> &str {
        &self.0
    }

    /// The cursor's wire form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", self.0))
    }

    /// Parses a wire form made by [`Cursor::encode`] (or an earlier
    /// numeric cursor); `None` for anything else.
    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let key = match text.strip_prefix(CURSOR_PREFIX) {
            Some(key) => key,
            None => {
                let number = text.strip_prefix(LEGACY_NUMBER_PREFIX)?;
                number.parse::<i64>().ok()?;
                number
            }
        };
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return None;
        }
        Some(Cursor(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_cursor() {
        for key in ["0", "42", "-7", &i64::MAX.to_string(), "srv_0190aa", "ü"] {
            let cursor = Cursor::after(key);
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
    }

    #[test]
    fn accepts_the_numeric_cursors_of_earlier_versions() {
        let old = URL_SAFE_NO_PAD.encode("v1:42");
        let page = Pagination::from_params(&PageParams {
            limit: None,
            cursor: Some(old),
        })
        .expect("an earlier cursor is valid");
        assert_eq!(page.after_number().expect("a number"), Some(42));
        let old_word = URL_SAFE_NO_PAD.encode("v1:abc");
        assert_eq!(Cursor::decode(&old_word), None);
    }

    #[test]
    fn refuses_forged_cursors() {
        let long = URL_SAFE_NO_PAD.encode(format!("k1:{}", "x".repeat(65)));
        for text in [
            "",
            "42",
            "djE6",
            "djE6eA",
            "!!!",
            &URL_SAFE_NO_PAD.encode("v2:1"),
            &URL_SAFE_NO_PAD.encode("k1:"),
            &long,
        ] {
            assert_eq!(Cursor::decode(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_cursor_with_a_word_is_refused_where_a_number_is_expected() {
        let page = Pagination::from_params(&PageParams {
            limit: Some(10),
            cursor: Some(Cursor::after("srv_1").encode()),
        })
        .expect("a well-formed cursor");
        assert_eq!(page.after_key(), Some("srv_1"));
        match page.after_number() {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "cursor"),
            other => panic!("expected a validation error, got {other:?}"),
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
