//! `/api/v1/auth/redirect`: signing in (and linking identities) through
//! redirect providers — OAuth2 and OpenID Connect plugins such as `oidc`.
//! The flow and its decisions are [`crate::identity::redirect`]'s; this
//! module is its HTTP face.
//!
//! | Step | Route | Answer |
//! | --- | --- | --- |
//! | begin, to sign in | `POST /auth/redirect/{provider}/begin` | `{authorize_url}` and the binding cookie; send the browser there |
//! | begin, to link to the caller | `POST /account/identities/{provider}/link` (bearer) | the same |
//! | the provider's return | `GET /auth/redirect/{provider}/callback` | `303` to the Web UI: `#/login?ticket=…` (signing in) or `#/account?linked=…` |
//! | a session for the ticket | `POST /auth/redirect/exchange` | [`TokenResponse`], or `202` and a second-factor challenge |
//!
//! The callback URL given to the provider is built from the Panel's
//! configured base URL only ([`crate::config::Config::base_url`]), never
//! from a `Host` or `X-Forwarded-*` header. The binding cookie
//! ([`BINDING_COOKIE`]) is HttpOnly, SameSite=Lax (it must come back with
//! the provider's top-level redirect), limited to this path, `Secure` when
//! the base URL is `https`, and lives as long as a pending sign-in.
//!
//! Refusals are problem documents; at the callback, a browser (a request
//! that accepts `text/html`) is sent to `#/login?error=<code>` instead,
//! where the sign-in page says what happened:
//!
//! | Status | Code | When |
//! | --- | --- | --- |
//! | 401 | `sign-in-refused` | the state or ticket is unknown, used, expired or from another browser; the provider refused; the ID token failed a check (the reason is logged, never sent) |
//! | 403 | `account-not-linked` | no account is linked to the identity and the provider does not let it create one |
//! | 403 | `account-disabled` | the user is disabled |
//! | 403 | `hook-denied` | a `user.create` or `user.login` before-hook refused |
//! | 409 | `identity-linked-elsewhere` | linking: the identity is another account's |
//! | 409 | `username-taken` | a first sign-in's username is another account's |
//! | 429 | `rate-limited` | too many sign-ins from this address |
//! | 503 | `provider-unavailable` | the provider is down or answered nonsense |
//! | 503 | `provider-failed` | the provider plugin trapped, timed out or is quarantined |

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cap_runtime::api::{AuthError, KeyValue};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::auth_routes::{Client, SecondFactorChallengeBody, TokenResponse, check_len, identity};
use super::error::{ApiError, ApiResult, Code};
use super::extract::ApiJson;
use crate::identity::redirect::{Completed, Intent, PENDING_TTL, RedirectError};

/// The cookie that binds a sign-in to the browser that began it.
pub const BINDING_COOKIE: &str = "cap_sign_in";

/// The path the cookie is sent to: the callback and the exchange.
const COOKIE_PATH: &str = "/api/v1/auth/redirect";

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(begin))
        .routes(routes!(link))
        .routes(routes!(callback))
        .routes(routes!(exchange))
}

/// Where to send the browser.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BeginResponse {
    /// The provider's authorization URL.
    pub authorize_url: String,
}

/// A ticket from the callback's redirect.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The `ticket` of `#/login?ticket=…`.
    pub ticket: String,
}

fn callback_url(state: &AppState, provider: &str) -> String {
    let provider: String = url::form_urlencoded::byte_serialize(provider.as_bytes()).collect();
    format!(
        "{}/api/v1/auth/redirect/{provider}/callback",
        state.config().base_url()
    )
}

fn secure(state: &AppState) -> &'static str {
    if state.config().base_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let text = format!(
        "{BINDING_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        secure(state)
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The binding cookie of the request, if any.
fn binding(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == BINDING_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The answer to a redirect step that failed.
fn refusal(error: RedirectError) -> ApiError {
    match error {
        RedirectError::UnknownProvider(id) => {
            ApiError::NotFound(format!("there is no active auth provider {id:?}"))
        }
        RedirectError::StateMismatch => ApiError::refused(
            Code::SignInRefused,
            "this sign-in is unknown, used, expired or was begun in another browser; sign in again",
        ),
        RedirectError::Refused(AuthError::ProviderUnavailable(reason)) => {
            tracing::warn!(%reason, "redirect provider unavailable");
            ApiError::refused(
                Code::ProviderUnavailable,
                "the sign-in provider is unavailable; try again later",
            )
        }
        RedirectError::Refused(AuthError::Unsupported) => {
            ApiError::BadRequest("this provider does not sign in by redirect".into())
        }
        RedirectError::Refused(reason) => {
            tracing::warn!(?reason, "redirect sign-in refused");
            ApiError::refused(
                Code::SignInRefused,
                "the sign-in provider's answer did not verify; sign in again",
            )
        }
        RedirectError::ProviderFailed(error) => {
            tracing::warn!(%error, "redirect provider plugin failed");
            ApiError::refused(
                Code::ProviderFailed,
                "the sign-in provider failed; try again later",
            )
        }
        RedirectError::NotLinked => ApiError::refused(
            Code::AccountNotLinked,
            "no Panel account is linked to this identity, and this provider does not create \
             accounts for it; ask an administrator",
        ),
        RedirectError::LinkedElsewhere => ApiError::refused(
            Code::IdentityLinkedElsewhere,
            "this identity is linked to another account",
        ),
        RedirectError::UsernameTaken(name) => ApiError::refused(
            Code::UsernameTaken,
            format!(
                "an account named {name:?} exists already; sign in to it and link this identity \
                 from your account page"
            ),
        ),
        RedirectError::Disabled => {
            ApiError::refused(Code::AccountDisabled, "this account is disabled")
        }
        RedirectError::SecondFactorRequired(_) => ApiError::refused(
            Code::SecondFactorRequired,
            "complete the sign-in with your second factor",
        ),
        RedirectError::Busy => ApiError::rate_limited(std::time::Duration::from_secs(5)),
        RedirectError::HookDenied(denied) => ApiError::from(denied),
        RedirectError::Db(error) => ApiError::from(error),
    }
}

async fn start(
    state: &AppState,
    client: &Client,
    provider: &str,
    intent: Intent,
) -> ApiResult<Response> {
    let service = identity(state)?;
    let mut errors = Vec::new();
    check_len(&mut errors, "provider", provider, 128);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    client.limit_address(service, "login", service.options().rate_limits.login_per_ip)?;
    let _slot = service
        .address_slots()
        .try_acquire(&client.ip_key())
        .ok_or_else(|| ApiError::rate_limited(std::time::Duration::from_secs(1)))?;
    let begun = service
        .begin_redirect(provider, intent, &callback_url(state, provider))
        .await
        .map_err(refusal)?;
    let mut response = Json(BeginResponse {
        authorize_url: begun.authorize_url,
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(state, &begun.binding, PENDING_TTL.as_secs()),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Begins signing in through a redirect provider: answers the provider's
/// authorization URL and sets the cookie that binds the sign-in to this
/// browser.
#[utoipa::path(
    post,
    path = "/auth/redirect/{provider}/begin",
    tag = "auth",
    params(("provider" = String, Path, description = "The auth-provider plugin's id")),
    responses(
        (status = 200, description = "Send the browser to authorize_url", body = BeginResponse),
        (status = 400, description = "The provider does not sign in by redirect"),
        (status = 404, description = "No such active provider"),
        (status = 429, description = "Too many sign-ins from this address"),
        (status = 503, description = "The provider is unavailable or failed"),
    )
)]
pub(super) async fn begin(
    State(state): State<AppState>,
    client: Client,
    Path(provider): Path<String>,
) -> ApiResult<Response> {
    start(&state, &client, &provider, Intent::SignIn).await
}

/// Begins linking an identity at a redirect provider to the caller's
/// account: as `begin`, and the callback links instead of signing in.
#[utoipa::path(
    post,
    path = "/account/identities/{provider}/link",
    tag = "auth",
    security(("bearer" = [])),
    params(("provider" = String, Path, description = "The auth-provider plugin's id")),
    responses(
        (status = 200, description = "Send the browser to authorize_url", body = BeginResponse),
        (status = 400, description = "The provider does not sign in by redirect"),
        (status = 404, description = "No such active provider"),
        (status = 429, description = "Too many sign-ins from this address"),
        (status = 503, description = "The provider is unavailable or failed"),
    )
)]
pub(super) async fn link(
    auth: Authenticated,
    State(state): State<AppState>,
    client: Client,
    Path(provider): Path<String>,
) -> ApiResult<Response> {
    let user_id = auth.principal.user_id().to_owned();
    start(&state, &client, &provider, Intent::Link { user_id }).await
}

/// Where the provider sends the browser back: completes the sign-in and
/// redirects to the Web UI with a ticket (or, linking, to the account
/// page).
#[utoipa::path(
    get,
    path = "/auth/redirect/{provider}/callback",
    tag = "auth",
    params(
        ("provider" = String, Path, description = "The auth-provider plugin's id"),
        ("state" = String, Query, description = "The state the sign-in began with"),
    ),
    responses(
        (status = 303, description = "Signed in (to `#/login?ticket=…`), linked (to `#/account?linked=…`), or, for a browser, refused (to `#/login?error=<code>`)"),
        (status = 401, description = "The sign-in did not verify (sign-in-refused)"),
        (status = 403, description = "No account is linked and none may be created, or a plugin refused"),
        (status = 409, description = "The identity is another account's, or the username is taken"),
        (status = 429, description = "Too many sign-ins from this address"),
        (status = 503, description = "The provider is unavailable or failed"),
    )
)]
pub(super) async fn callback(
    State(state): State<AppState>,
    client: Client,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    match complete(&state, &client, &provider, query, &headers).await {
        Ok(response) => Ok(response),
        // A browser is sent back to the sign-in page, which says why.
        Err(error) if browser => Ok(no_store(Redirect::to(&format!(
            "{}/#/login?error={}",
            state.config().base_url(),
            error.code().as_str()
        )))),
        Err(error) => Err(error),
    }
}

/// A redirect that no cache keeps and that passes no referrer on.
fn no_store(redirect: Redirect) -> Response {
    let mut response = redirect.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The callback's work: the state checked, the sign-in completed.
async fn complete(
    state: &AppState,
    client: &Client,
    provider: &str,
    query: Option<String>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let service = identity(state)?;
    client.limit_address(service, "login", service.options().rate_limits.login_per_ip)?;
    let params: Vec<KeyValue> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .take(32)
        .map(|(key, value)| KeyValue {
            key: key.into_owned(),
            value: value.into_owned(),
        })
        .collect();
    let oversized = params
        .iter()
        .any(|p| p.key.len() > 64 || p.value.len() > 4096);
    let state_param = params
        .iter()
        .find(|p| p.key == "state")
        .map(|p| p.value.clone());
    let Some(sign_in_state) = state_param.filter(|_| !oversized) else {
        return Err(refusal(RedirectError::StateMismatch));
    };
    let _slot = service
        .address_slots()
        .try_acquire(&client.ip_key())
        .ok_or_else(|| ApiError::rate_limited(std::time::Duration::from_secs(1)))?;
    let completed = service
        .complete_redirect(
            provider,
            &sign_in_state,
            &params,
            binding(headers).as_deref(),
            &client.actor,
        )
        .await
        .map_err(refusal)?;
    let base = state.config().base_url();
    let to = match completed {
        Completed::SignedIn { ticket } => format!("{base}/#/login?ticket={ticket}"),
        Completed::Linked { .. } => {
            let provider: String =
                url::form_urlencoded::byte_serialize(provider.as_bytes()).collect();
            format!("{base}/#/account?linked={provider}")
        }
    };
    Ok(no_store(Redirect::to(&to)))
}

/// Exchanges the callback's ticket, in the browser that began the
/// sign-in, for a session, as `/auth/login` gives one.
#[utoipa::path(
    post,
    path = "/auth/redirect/exchange",
    tag = "auth",
    request_body = ExchangeRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 202, description = "The user has TOTP on: complete at /auth/login/second-factor", body = SecondFactorChallengeBody),
        (status = 401, description = "The ticket is unknown, used, expired or from another browser"),
        (status = 403, description = "The account is disabled, or a plugin refused the login"),
        (status = 422, description = "A field is invalid"),
        (status = 429, description = "Too many attempts"),
    )
)]
pub(super) async fn exchange(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ExchangeRequest>,
) -> ApiResult<Response> {
    let service = identity(&state)?;
    let mut errors = Vec::new();
    check_len(&mut errors, "ticket", &body.ticket, 128);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    client.limit_address(service, "login", service.options().rate_limits.login_per_ip)?;
    let answer = service
        .exchange_ticket(&body.ticket, binding(&headers).as_deref(), &client.actor)
        .await;
    let mut response = match answer {
        Ok(tokens) => Json(TokenResponse::from(tokens)).into_response(),
        Err(RedirectError::SecondFactorRequired(challenge)) => (
            StatusCode::ACCEPTED,
            Json(SecondFactorChallengeBody::from(challenge)),
        )
            .into_response(),
        Err(error) => return Err(refusal(error)),
    };
    // The binding has done its work.
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, "", 0));
    Ok(response)
}
