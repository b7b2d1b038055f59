//! Extractors whose rejections are [`ApiError`]s, so bad input always gets
//! a problem document with per-field errors instead of axum's plain text.
//!
//! - [`ApiJson<T>`]: a JSON body. Wrong or missing content type → `415
//!   unsupported-media-type`; over the body limit → `413
//!   payload-too-large`; not JSON → `400 malformed-json`; JSON of the wrong
//!   shape → `422 validation-failed` naming the field's path.
//! - [`OptionalApiJson<T>`]: an optional JSON body: an empty body (with
//!   or without a content type) or a JSON `null` is `T::default()`,
//!   anything else is read as [`ApiJson<T>`] reads it.
//! - [`ApiQuery<T>`]: the query string. Anything that does not deserialize
//!   → `422 validation-failed` naming the parameter.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError, FieldLocation};

/// A JSON request body deserialized into `T`; see the module docs for the
/// rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !has_json_content_type(request.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be JSON, sent with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON request body: `T::default()` when the body is empty
/// or `null`, else as [`ApiJson<T>`] (see the module docs). For routes that take
/// options, so that a client sending nothing keeps working.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalApiJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalApiJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = has_json_content_type(request.headers());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })?;
        // `null` is no body too (the document's schema of an optional
        // body is "this, or null").
        if bytes.trim_ascii().is_empty() || (json && bytes.trim_ascii() == b"null") {
            return Ok(OptionalApiJson(T::default()));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be JSON, sent with Content-Type: application/json (or empty)".into(),
            ));
        }
        parse_json(&bytes).map(OptionalApiJson)
    }
}

/// True if and only if the content type is `application/json` or
/// `application/<something>+json`, with any parameters.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserializes a JSON document, telling malformed JSON (`400`) from
/// well-formed JSON of the wrong shape (`422`, with the field's path).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                let field = field_path(&path, &message);
                ApiError::Validation(vec![FieldError::new(FieldLocation::Body, field, message)])
            }
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => ApiError::MalformedJson(inner.to_string()),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// serde_json appends " at line L column C" to data errors; the path says
/// more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The path of the offending field. serde reports a missing or unknown
/// field at its parent's path, with the name only in the message; put it
/// back in the path. The root path `.` becomes the empty string.
fn field_path(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    let missing = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))
        .and_then(|rest| rest.split('`').next());
    match (parent, missing) {
        ("", Some(name)) => name.to_owned(),
        // Some formats already report the field itself.
        (parent, Some(name)) if parent == name || parent.ends_with(&format!(".{name}")) => {
            parent.to_owned()
        }
        (parent, Some(name)) => format!("{parent}.{name}"),
        (parent, None) => parent.to_owned(),
    }
}

/// The query string deserialized into `T`; unknown parameters are ignored
/// unless `T` denies them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Deserializes a query string, naming the parameter that failed.
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        let field = field_path(&path, &message);
        ApiError::Validation(vec![FieldError::new(FieldLocation::Query, field, message)])
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        limits: Limits,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Limits {
        memory: u32,
    }

    fn field_errors(error: ApiError) -> Vec<(String, String)> {
        match error {
            ApiError::Validation(errors) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn tells_malformed_json_from_json_of_the_wrong_shape() {
        assert!(matches!(
            parse_json::<Body>(b"{\"name\": "),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json::<serde_json::Value>(b"{} trailing"),
            Err(ApiError::MalformedJson(_))
        ));
        let errors = field_errors(
            parse_json::<Body>(br#"{"name": "x", "limits": {"memory": "lots"}}"#)
                .expect_err("invalid input is refused"),
        );
        assert_eq!(errors[0].0, "limits.memory");
        assert!(
            errors[0].1.starts_with("invalid type: string"),
            "{errors:?}"
        );
    }

    #[test]
    fn names_a_missing_field_by_its_full_path() {
        let errors = field_errors(
            parse_json::<Body>(br#"{"limits": {"memory": 1}}"#)
                .expect_err("invalid input is refused"),
        );
        assert_eq!(errors[0].0, "name");
        let errors = field_errors(
            parse_json::<Body>(br#"{"name": "x", "limits": {}}"#)
                .expect_err("invalid input is refused"),
        );
        assert_eq!(errors[0].0, "limits.memory");
    }

    #[test]
    fn names_an_unknown_field_once() {
        let errors = field_errors(
            parse_json::<Body>(br#"{"name": "x", "limits": {"memory": 1}, "extra": 1}"#)
                .expect_err("unknown fields are refused"),
        );
        assert_eq!(errors[0].0, "extra");
    }

    #[test]
    fn names_the_query_parameter_that_does_not_parse() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Query {
            limit: Option<u32>,
        }
        let errors =
            field_errors(parse_query::<Query>("limit=ten").expect_err("invalid input is refused"));
        assert_eq!(errors[0].0, "limit");
        assert!(parse_query::<Query>("").is_ok());
    }

    #[test]
    fn accepts_json_and_json_suffixed_content_types_only() {
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().expect("valid header"));
            has_json_content_type(&headers)
        };
        assert!(check("application/json"));
        assert!(check("Application/JSON; charset=utf-8"));
        assert!(check("application/merge-patch+json"));
        assert!(!check("text/plain"));
        assert!(!check("application/jsonx"));
        assert!(!has_json_content_type(&HeaderMap::new()));
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        #[serde(default)]
        wipe: bool,
    }

    async fn optional(content_type: Option<&str>, body: &'static str) -> Result<Options, ApiError> {
        let mut request = axum::http::Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(axum::body::Body::from(body))
            .expect("a request");
        OptionalApiJson::<Options>::from_request(request, &())
            .await
            .map(|OptionalApiJson(options)| options)
    }

    #[tokio::test]
    async fn an_optional_body_may_be_empty_or_null_and_is_otherwise_read_as_json() {
        const JSON: Option<&str> = Some("application/json");
        for (content_type, body) in [(None, ""), (JSON, ""), (JSON, " null ")] {
            assert_eq!(
                optional(content_type, body).await.expect("no options"),
                Options::default(),
                "{body:?}"
            );
        }
        assert_eq!(
            optional(JSON, r#"{"wipe": true}"#).await.expect("options"),
            Options { wipe: true }
        );
        assert!(matches!(
            optional(None, r#"{"wipe": true}"#).await,
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            optional(Some("text/plain"), "null").await,
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            optional(JSON, "{").await,
            Err(ApiError::MalformedJson(_))
        ));
        let wrong = optional(JSON, r#"{"wipe": "yes"}"#)
            .await
            .expect_err("not a boolean");
        assert_eq!(field_errors(wrong)[0].0, "wipe");
        let unknown = optional(JSON, r#"{"wip": true}"#)
            .await
            .expect_err("an unknown field");
        assert_eq!(field_errors(unknown)[0].0, "wip");
    }
}
