//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `GET /api/v1/openapi.json`.
//!
//! Routes are registered through [`utoipa_axum::router::OpenApiRouter`]
//! (see [`super::api_routes`]), so a route cannot be served without being
//! documented, and the document cannot list a route that is not served.
//!
//! To add a route: annotate the handler with `#[utoipa::path(…)]` (method,
//! path relative to its router, `tag`, `params(…)`, `request_body`,
//! `security(("bearer" = []))` when it takes
//! [`Authenticated`](super::auth::Authenticated), and every response,
//! errors as `body = Problem, content_type = "application/problem+json"`),
//! then register it with `.routes(routes!(handler))` in
//! [`super::api_routes`]. Schemas referenced from the annotation are
//! collected automatically.

use axum::Extension;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{FieldError, FieldLocation, Problem};

/// The document's static parts: info, tags, the security scheme and the
/// shared schemas. Paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ctrl-Alt-Play Panel API",
        description = "The Panel's REST API. Errors are RFC 9457 problem documents \
                       (application/problem+json) with a stable `code`; lists are \
                       keyset-paginated with `limit` and `cursor`; every response carries \
                       an `x-request-id` header."
    ),
    components(schemas(Problem, FieldError, FieldLocation)),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health, metrics and this document"),
        (name = "audit", description = "The audit log"),
        (name = "settings", description = "Panel-wide settings"),
        (name = "ui", description = "Plugin-contributed UI: contributions, rendered trees, actions"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme protected routes name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token or API key (issued by the identity module).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Documents the error answers every operation can give before its handler
/// runs, so that the document lists each status code the API can send:
/// with a JSON body, `400` (not JSON), `415` (not `application/json`) and
/// `422` (a field is invalid); with path or query parameters, `400` and
/// `422` (a parameter does not parse or is out of range); and `429` for the
/// operations the per-address request limits cover
/// ([`super::client_addr`]). Handlers document their own outcomes; this adds
/// only what is missing.
pub fn document_extractor_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (axum::http::Method::GET, &mut item.get),
            (axum::http::Method::PUT, &mut item.put),
            (axum::http::Method::POST, &mut item.post),
            (axum::http::Method::DELETE, &mut item.delete),
            (axum::http::Method::PATCH, &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else {
                continue;
            };
            if super::client_addr::RouteClass::of(&method, path).is_some() {
                operation
                    .responses
                    .responses
                    .entry("429".to_owned())
                    .or_insert_with(|| {
                        problem("Too many requests from this address; see Retry-After")
                    });
            }
            let has_body = operation.request_body.is_some();
            let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let responses = &mut operation.responses.responses;
            if has_body || has_parameters {
                responses
                    .entry("400".to_owned())
                    .or_insert_with(|| problem("Malformed request"));
                responses
                    .entry("422".to_owned())
                    .or_insert_with(|| problem("A field or parameter is invalid"));
            }
            if has_body {
                responses
                    .entry("415".to_owned())
                    .or_insert_with(|| problem("The body is not application/json"));
            }
        }
    }
}

/// The rendered document, shared by the router.
#[derive(Debug, Clone)]
pub(crate) struct RenderedDocument(pub(crate) Bytes);

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "system",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub(super) async fn document(Extension(doc): Extension<RenderedDocument>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0)
}
