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
//! [`Authenticated`](super::auth::Authenticated), the permissions it
//! checks (below), and every response), then register it with
//! `.routes(routes!(handler))` in [`super::api_routes`]. Schemas referenced
//! from the annotation are collected automatically.
//!
//! # Errors
//!
//! An error answer is annotated with its status and description only
//! (`(status = 409, description = "Name taken (node-name-taken)")`):
//! [`document_errors`] gives every `4xx` and `5xx` answer of every
//! operation the one problem response, `application/problem+json` with
//! the [`Problem`] schema, whose `code` lists the [`Code`] table. It also
//! adds what every operation of a kind can answer, so annotations do not
//! repeat it: `401` ("Not authenticated") for an operation with the
//! `bearer` security requirement, and the extractors' `400`, `415`, `422`
//! and the request limits' `429` (see [`document_errors`]).
//!
//! # Permissions
//!
//! An operation names the permissions it checks as variants of the
//! catalogue ([`Permission`], never as strings), in two extensions:
//!
//! - `extensions(("x-permissions" = json!([Permission::AdminNodes])))`:
//!   a caller lacking one the request needs is refused with `403
//!   forbidden`;
//! - `("x-permissions-visibility" = json!([…]))`: permissions that change
//!   what the operation shows, without refusing (`admin.servers` shows
//!   every server).
//!
//! [`document_permissions`] writes the rest from the catalogue: a
//! paragraph of the operation's description naming each permission with
//! its scope and description, and the `403` answer ("Lacks `admin.nodes`
//! (forbidden)", followed by the annotation's own `403` text, which lists
//! only the other reasons). The `Permission` schema lists the catalogue.

use axum::Extension;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{Code, FieldError, FieldLocation, PROBLEM_JSON, Problem};
use crate::identity::permissions::Permission;

/// The extension naming the permissions an operation refuses without.
pub const PERMISSIONS: &str = "x-permissions";
/// The extension naming the permissions that change what an operation
/// shows.
pub const PERMISSIONS_VISIBILITY: &str = "x-permissions-visibility";

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
    components(schemas(Problem, FieldError, FieldLocation, Permission)),
    modifiers(&BearerAuth, &ProblemCodes),
    tags(
        (name = "system", description = "Health, metrics and this document"),
        (name = "audit", description = "The audit log"),
        (name = "settings", description = "Panel-wide settings"),
        (name = "ui", description = "Plugin-contributed UI: contributions, rendered trees, actions"),
        (name = "eggs", description = "Game types imported from Pterodactyl and Pelican eggs"),
        (name = "files", description = "A server's files: operations run on its node's Agent, contents move through signed URLs to and from the Agent directly"),
        (name = "backups", description = "A server's backups: tar.zst archives made by its node's Agent, kept on the node or in S3-compatible storage, downloaded through signed URLs"),
        (name = "databases", description = "A server's MySQL/MariaDB and PostgreSQL databases, created by the Panel on the database hosts administrators register"),
        (name = "allocations", description = "A server's allocations (its network): the primary the game runs on, extra ones taken from its node's pool within the server's limit, and their notes"),
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

/// Lists the stable codes, from the [`Code`] table, in the description of
/// the `Problem` schema's `code`.
struct ProblemCodes;

impl Modify for ProblemCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::{RefOr, schema::Object};
        let Some(RefOr::T(Schema::Object(problem))) = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("Problem"))
        else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(code))) = problem.properties.get_mut("code") {
            let code: &mut Object = code;
            code.description = Some(code_list());
        }
    }
}

/// The `code` description: every code with its status.
fn code_list() -> String {
    let mut seen = std::collections::BTreeSet::new();
    let codes: Vec<String> = Code::ALL
        .iter()
        .filter(|c| seen.insert((c.as_str(), c.status())))
        .map(|c| format!("`{}` ({})", c.as_str(), c.status().as_u16()))
        .collect();
    format!(
        "The stable, machine-readable error code: one of {}.",
        codes.join(", ")
    )
}

/// The operations of a path item, with their methods.
fn operations_of(
    item: &mut utoipa::openapi::PathItem,
) -> [(
    axum::http::Method,
    &mut Option<utoipa::openapi::path::Operation>,
); 5] {
    [
        (axum::http::Method::GET, &mut item.get),
        (axum::http::Method::PUT, &mut item.put),
        (axum::http::Method::POST, &mut item.post),
        (axum::http::Method::DELETE, &mut item.delete),
        (axum::http::Method::PATCH, &mut item.patch),
    ]
}

/// Whether `operation` names the `bearer` security scheme.
fn needs_bearer(operation: &utoipa::openapi::path::Operation) -> bool {
    operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement)
            .ok()
            .is_some_and(|v| v.get("bearer").is_some())
    })
}

/// Declares the error answers once for every operation, so that the
/// document lists each status code the API can send and each error has
/// the one problem response:
///
/// - `401` ("Not authenticated") for operations with the `bearer`
///   security requirement;
/// - the answers of the extractors, before the handler runs: with a JSON
///   body, `400` (not JSON), `415` (not `application/json`) and `422` (a
///   field is invalid); with path or query parameters, `400` and `422` (a
///   parameter does not parse or is out of range);
/// - `429` for the operations the per-address request limits cover
///   ([`super::client_addr`]);
/// - and for every `4xx` and `5xx` answer without content, the
///   `application/problem+json` content with the `Problem` schema.
///
/// Handlers document their own outcomes; this adds only what is missing.
pub fn document_errors(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations_of(item) {
            let Some(operation) = operation else {
                continue;
            };
            if needs_bearer(operation) {
                operation
                    .responses
                    .responses
                    .entry("401".to_owned())
                    .or_insert_with(|| problem("Not authenticated"));
            }
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
            for (status, response) in responses.iter_mut() {
                let is_error = status.starts_with('4') || status.starts_with('5');
                if let utoipa::openapi::RefOr::T(response) = response
                    && is_error
                    && response.content.is_empty()
                {
                    response
                        .content
                        .insert(PROBLEM_JSON.to_owned(), problem_content());
                }
            }
        }
    }
}

/// The content of every error answer: a [`Problem`].
fn problem_content() -> utoipa::openapi::Content {
    utoipa::openapi::ContentBuilder::new()
        .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
        .build()
}

/// A problem-document answer described by `description`.
fn problem(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::response::Response> {
    use utoipa::openapi::{RefOr, ResponseBuilder};
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, problem_content())
            .build(),
    )
}

/// The permissions an operation's extension `key` names, in order; names
/// that are not in the catalogue are skipped (the annotations name
/// variants, so there are none).
pub fn permissions_of(operation: &utoipa::openapi::path::Operation, key: &str) -> Vec<Permission> {
    operation
        .extensions
        .as_ref()
        .and_then(|e| e.get(key))
        .and_then(|v| v.as_array())
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn mention(permission: Permission) -> String {
    let on = if permission.scope().is_server() {
        " on the server"
    } else {
        ""
    };
    format!("`{}`{on}", permission.as_str())
}

fn list(permissions: &[Permission]) -> String {
    permissions
        .iter()
        .map(|p| format!("{}: {}", mention(*p), p.description()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes, for every operation that names permissions (see the
/// [module documentation](self#permissions)), a description paragraph per
/// extension and its `403` answer, from the catalogue.
pub fn document_permissions(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let required = permissions_of(operation, PERMISSIONS);
            let visibility = permissions_of(operation, PERMISSIONS_VISIBILITY);
            let mut paragraphs: Vec<String> = operation.description.take().into_iter().collect();
            if !required.is_empty() {
                paragraphs.push(format!(
                    "Permissions (`403 forbidden` without the one a request needs): {}.",
                    list(&required)
                ));
            }
            if !visibility.is_empty() {
                paragraphs.push(format!(
                    "Permissions that change what is shown: {}.",
                    list(&visibility)
                ));
            }
            if !paragraphs.is_empty() {
                operation.description = Some(paragraphs.join("\n\n"));
            }
            if required.is_empty() {
                continue;
            }
            let lacks = match required.as_slice() {
                [one] => format!("Lacks {} (forbidden)", mention(*one)),
                several => format!(
                    "Lacks a permission the request needs (forbidden): {}",
                    several
                        .iter()
                        .map(|p| mention(*p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let responses = &mut operation.responses.responses;
            match responses.get_mut("403") {
                Some(RefOr::T(response)) => {
                    response.description = format!("{lacks}; or {}", response.description);
                }
                Some(RefOr::Ref(_)) => {}
                None => {
                    responses.insert("403".to_owned(), problem(&lacks));
                }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::{PERMISSIONS, PERMISSIONS_VISIBILITY};
    use crate::identity::permissions::{Permission, RETIRED};

    /// Every operation of the served document, as `(method path, operation)`.
    fn operations(doc: &Value) -> Vec<(String, &Value)> {
        let mut all = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                all.push((format!("{method} {path}"), operation));
            }
        }
        all
    }

    /// The `resource.action` words of a text.
    fn words(text: &str) -> impl Iterator<Item = &str> {
        text.split(|c: char| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        })
        .map(|w| w.trim_matches('.'))
        .filter(|w| w.contains('.'))
    }

    #[test]
    fn every_documented_permission_is_in_the_catalogue_and_every_catalogue_entry_is_documented() {
        let doc = serde_json::to_value(crate::http::openapi()).expect("serialisable");
        let mut documented = BTreeSet::new();
        let mut gated = 0;
        for (operation_name, operation) in operations(&doc) {
            let mut declared = BTreeSet::new();
            for key in [PERMISSIONS, PERMISSIONS_VISIBILITY] {
                let Some(names) = operation.get(key) else {
                    continue;
                };
                let names = names.as_array().expect("a list of names");
                assert!(!names.is_empty(), "{operation_name}: an empty {key}");
                for name in names {
                    let name = name.as_str().expect("a name");
                    let permission: Permission = name.parse().unwrap_or_else(|_| {
                        panic!("{operation_name} documents {name:?}, not in the catalogue")
                    });
                    declared.insert(permission);
                    documented.insert(permission);
                }
            }
            if let Some(required) = operation.get(PERMISSIONS) {
                gated += 1;
                let forbidden = operation["responses"]["403"]["description"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    forbidden.starts_with("Lacks "),
                    "{operation_name}: 403 is {forbidden:?}"
                );
                for name in required.as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    assert!(
                        forbidden.contains(&format!("`{name}`")),
                        "{operation_name}: 403 {forbidden:?} does not name {name}"
                    );
                }
            }
            // Prose that names a permission names one the operation
            // declares, so descriptions cannot drift from the checks.
            let prose = [&operation["summary"], &operation["description"]]
                .into_iter()
                .chain(
                    operation["responses"]
                        .as_object()
                        .into_iter()
                        .flat_map(|r| r.values())
                        .map(|r| &r["description"]),
                )
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n");
            for word in words(&prose) {
                if let Ok(permission) = word.parse::<Permission>() {
                    assert!(
                        declared.contains(&permission),
                        "{operation_name} mentions {word} but does not declare it"
                    );
                }
            }
        }
        assert!(gated > 50, "only {gated} operations declare permissions");
        // The few a bundled plugin checks gate no route (see
        // `identity::permissions`); the Permission schema names the plugin.
        let undocumented: Vec<&str> = Permission::ALL
            .iter()
            .filter(|p| !documented.contains(p) && p.checked_by().is_none())
            .map(|p| p.as_str())
            .collect();
        assert!(
            undocumented.is_empty(),
            "no operation documents {undocumented:?}"
        );
    }

    #[test]
    fn every_error_answer_is_the_one_problem_response_and_bearer_operations_answer_401() {
        let doc = serde_json::to_value(crate::http::openapi()).expect("serialisable");
        let mut errors = 0;
        for (operation_name, operation) in operations(&doc) {
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                errors += 1;
                let content = response["content"].as_object().expect("content");
                // The health report answers 503 with itself, deliberately.
                if operation_name == "get /api/v1/health" && status == "503" {
                    assert!(content.contains_key("application/json"), "{content:?}");
                    continue;
                }
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    [crate::http::error::PROBLEM_JSON],
                    "{operation_name} {status}"
                );
                assert_eq!(
                    content[crate::http::error::PROBLEM_JSON]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{operation_name} {status}"
                );
            }
            let bearer = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if bearer {
                assert!(responses.contains_key("401"), "{operation_name} has no 401");
            }
        }
        assert!(errors > 200, "only {errors} error answers");
        let codes = doc["components"]["schemas"]["Problem"]["properties"]["code"]["description"]
            .as_str()
            .expect("a description of the codes");
        for code in crate::error_code::Code::ALL {
            assert!(
                codes.contains(&format!("`{}` ({})", code.as_str(), code.status().as_u16())),
                "{code} is not listed"
            );
        }
    }

    #[test]
    fn the_document_names_no_removed_permission_and_lists_the_catalogue_as_a_schema() {
        let doc = serde_json::to_value(crate::http::openapi()).expect("serialisable");
        let text = doc.to_string();
        let found: Vec<&str> = words(&text)
            .filter(|w| RETIRED.iter().any(|(name, _)| name == w))
            .collect();
        assert!(found.is_empty(), "the document names {found:?}");
        let schema = &doc["components"]["schemas"]["Permission"];
        let names: Vec<&str> = schema["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let catalogue: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, catalogue);
        let description = schema["description"].as_str().expect("a description");
        for permission in Permission::ALL {
            assert!(
                description.contains(permission.description()),
                "{permission}"
            );
        }
        assert_eq!(
            doc["components"]["schemas"]["ServerBody"]["properties"]["permissions"]["items"]["$ref"],
            "#/components/schemas/Permission"
        );
    }
}
