//! Billing over HTTP: prices, payout accounts, Panel instances, checkout,
//! the Stripe webhook and license fetch/renewal.
//!
//! # Panel authentication
//!
//! A Panel registers once (`POST /panels`) and receives an **instance id**
//! (public: it appears in license tokens) and a 256-bit random **token**
//! shown once. The Marketplace stores only a domain-separated sha256 of the
//! token. The Panel sends `Authorization: Bearer <token>` to start
//! checkouts and to fetch or renew licenses; the token identifies the
//! instance, so one Panel can never fetch another's licenses. Publisher
//! tokens and Panel tokens are hashed with different domains and kept in
//! different tables, so neither works in the other's place.
//!
//! # Renewal
//!
//! `GET /panels/me/licenses` issues a fresh token for every active
//! entitlement (and reports revoked ones without a token); each token
//! carries `renew_after`, half its lifetime, so a Panel polling in the
//! background renews long before expiry. `POST
//! /panels/me/licenses/{plugin}/renew` renews one and answers
//! `403 entitlement-revoked` once the purchase was refunded or lost in a
//! dispute.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use cap_marketplace::wire::{
    CheckoutView, LicenseList, LicenseView, NewCheckout, NewPanel, NewPrice, PanelCreated, Payouts,
    PriceEntry, PriceList, PriceTarget, PriceView, WebhookReceipt,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::AppState;
use super::error::{ApiError, ApiResult, FieldError, Problem};
use super::routes::{ApiJson, ApiQuery, Authed, parse_version, random_token, valid_name};
use crate::billing::application_fee;
use crate::billing::stripe::CheckoutRequest;
use crate::billing::webhook::{self, BillingEvent};
use crate::store::Price;
use crate::store::{Checkout, Entitlement, Tx};
use cap_marketplace::license::LicenseClaims;

/// The largest price accepted, minor units (Stripe's limit is 8 digits).
pub const MAX_AMOUNT: i64 = 99_999_999;

fn panel_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "ctrl-alt-play/panel-token/v1\n{token}"
    )))
}

/// The authenticated Panel instance (`Authorization: Bearer <panel token>`).
pub(crate) struct PanelAuthed(pub(crate) String);

impl FromRequestParts<AppState> for PanelAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthenticated("send `Authorization: Bearer <panel token>`".into())
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthenticated("malformed Authorization header".into()))?;
        state
            .store()
            .panel_by_token(&panel_token_hash(token))
            .await?
            .map(PanelAuthed)
            .ok_or_else(|| ApiError::Unauthenticated("unknown Panel token".into()))
    }
}

fn t(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

// ---------------------------------------------------------------- prices

impl From<Price> for PriceView {
    fn from(p: Price) -> Self {
        PriceView {
            amount: p.amount,
            currency: p.currency,
        }
    }
}

async fn owned_package(state: &AppState, publisher_id: &str, id: &str) -> ApiResult<()> {
    let mut tx = state.store().begin().await?;
    let owner = state.store().package_owner(&mut tx, id).await?;
    tx.commit().await?;
    match owner {
        None => Err(ApiError::NotFound(format!("package {id}"))),
        Some(owner) if owner != publisher_id => Err(ApiError::NotOwner(format!(
            "package {id} belongs to another publisher"
        ))),
        Some(_) => Ok(()),
    }
}

async fn price_list(state: &AppState, id: &str) -> ApiResult<Json<PriceList>> {
    let prices = state.store().prices(id).await?;
    Ok(Json(PriceList {
        package: id.to_owned(),
        prices: prices
            .into_iter()
            .map(|p| PriceEntry {
                version: p.version,
                price: p.price.into(),
            })
            .collect(),
    }))
}

/// Sets the price of the caller's package or of one of its versions.
/// Packages are free until priced.
#[utoipa::path(put, path = "/packages/{id}/price", tag = "billing", request_body = NewPrice,
    params(("id" = String, Path, description = "Plugin id")),
    security(("bearer" = [])),
    responses((status = 200, body = PriceList), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn set_price(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewPrice>,
) -> ApiResult<Json<PriceList>> {
    let mut errors = Vec::new();
    if !(1..=MAX_AMOUNT).contains(&body.amount) {
        errors.push(FieldError::new(
            "body",
            "amount",
            format!("minor units from 1 to {MAX_AMOUNT}; clear the price to make it free"),
        ));
    }
    if body.currency.len() != 3 || !body.currency.bytes().all(|b| b.is_ascii_lowercase()) {
        errors.push(FieldError::new(
            "body",
            "currency",
            "an ISO 4217 code in three lowercase letters",
        ));
    }
    let version = match &body.version {
        Some(v) => match semver::Version::parse(v) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(FieldError::new(
                    "body",
                    "version",
                    format!("not a semantic version: {e}"),
                ));
                None
            }
        },
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    owned_package(&state, &publisher.id, &id).await?;
    if let Some(v) = &version
        && state.store().release(&id, v).await?.is_none()
    {
        return Err(ApiError::NotFound(format!("{id} {v}")));
    }
    let version = version.map(|v| v.to_string());
    state
        .store()
        .set_price(
            &id,
            version.as_deref(),
            &Price {
                amount: body.amount,
                currency: body.currency,
            },
            super::now(),
        )
        .await?;
    price_list(&state, &id).await
}

/// Clears a price (the package-wide one, or a version's own).
#[utoipa::path(delete, path = "/packages/{id}/price", tag = "billing", params(("id" = String, Path, description = "Plugin id"), PriceTarget),
    security(("bearer" = [])),
    responses((status = 200, body = PriceList), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn clear_price(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    Path(id): Path<String>,
    ApiQuery(target): ApiQuery<PriceTarget>,
) -> ApiResult<Json<PriceList>> {
    let version = target
        .version
        .as_deref()
        .map(|v| parse_version("version", v))
        .transpose()?
        .map(|v| v.to_string());
    owned_package(&state, &publisher.id, &id).await?;
    if !state.store().clear_price(&id, version.as_deref()).await? {
        return Err(ApiError::NotFound(format!("a price on {id}")));
    }
    price_list(&state, &id).await
}

// ---------------------------------------------------------------- payouts

/// Sets where the caller's sales are paid out (a Stripe Connect account).
#[utoipa::path(put, path = "/publishers/me/payouts", tag = "billing", request_body = Payouts,
    security(("bearer" = [])),
    responses((status = 200, body = Payouts), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn set_payouts(
    State(state): State<AppState>,
    Authed(publisher): Authed,
    ApiJson(body): ApiJson<Payouts>,
) -> ApiResult<Json<Payouts>> {
    let account = body.stripe_account.trim();
    let valid = account.strip_prefix("acct_").is_some_and(|rest| {
        (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !valid {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "stripe_account",
            "a Stripe account id: acct_ followed by letters and digits",
        )]));
    }
    state
        .store()
        .set_payout_account(&publisher.id, account, super::now())
        .await?;
    Ok(Json(Payouts {
        stripe_account: account.to_owned(),
    }))
}

// ---------------------------------------------------------------- panels

/// Registers a Panel instance that can buy plugins and hold licenses.
#[utoipa::path(post, path = "/panels", tag = "billing", request_body = NewPanel,
    responses((status = 201, body = PanelCreated), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn register_panel(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewPanel>,
) -> ApiResult<(StatusCode, Json<PanelCreated>)> {
    let id = match body.instance_id {
        Some(id) if valid_name(&id) => id,
        Some(_) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "body",
                "instance_id",
                "2 to 63 characters: lowercase letters, digits and '-', starting with a letter",
            )]));
        }
        None => format!("panel-{}", &random_token()?[..24]),
    };
    let token = random_token()?;
    match state
        .store()
        .create_panel(&id, &panel_token_hash(&token), super::now())
        .await
    {
        Ok(()) => Ok((
            StatusCode::CREATED,
            Json(PanelCreated {
                instance_id: id,
                token,
            }),
        )),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ApiError::NameTaken(
            format!("Panel instance id {id} is taken"),
        )),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- checkout

fn check_url(field: &str, text: &str, errors: &mut Vec<FieldError>) {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && text.len() <= 2048 => {}
        _ => errors.push(FieldError::new(
            "body",
            field,
            "an absolute http or https URL of at most 2048 characters",
        )),
    }
}

/// Starts buying a paid plugin for the calling Panel instance: a Stripe
/// Checkout Session whose payment goes to the publisher's connected account
/// minus the Marketplace's revenue share.
#[utoipa::path(post, path = "/packages/{id}/checkout", tag = "billing", request_body = NewCheckout,
    params(("id" = String, Path, description = "Plugin id")),
    security(("panel" = [])),
    responses((status = 201, body = CheckoutView), (status = 401, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem), (status = 502, body = Problem),
              (status = 503, body = Problem)))]
pub(crate) async fn checkout(
    State(state): State<AppState>,
    PanelAuthed(panel): PanelAuthed,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewCheckout>,
) -> ApiResult<(StatusCode, Json<CheckoutView>)> {
    let billing = state.billing()?;
    let mut errors = Vec::new();
    check_url("success_url", &body.success_url, &mut errors);
    check_url("cancel_url", &body.cancel_url, &mut errors);
    let version = match body.version.as_deref().map(semver::Version::parse) {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.push(FieldError::new(
                "body",
                "version",
                format!("not a semantic version: {e}"),
            ));
            None
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let store = state.store();
    let package = store
        .package(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("package {id}")))?;
    let version = match version {
        Some(v) => v,
        None => semver::Version::parse(&package.latest_version)
            .map_err(|e| ApiError::Internal(format!("stored version of {id}: {e}")))?,
    };
    if store.release(&id, &version).await?.is_none() {
        return Err(ApiError::NotFound(format!("{id} {version}")));
    }
    let version = version.to_string();
    let prices = store.prices(&id).await?;
    let price = prices
        .iter()
        .find(|p| p.version.as_deref() == Some(version.as_str()))
        .or_else(|| prices.iter().find(|p| p.version.is_none()))
        .map(|p| p.price.clone())
        .ok_or_else(|| ApiError::NotForSale(format!("{id} {version} has no price: it is free")))?;
    if let Some(existing) = store.active_entitlement(&id, &panel).await? {
        return Err(ApiError::AlreadyEntitled(format!(
            "Panel instance {panel} already owns {id} (entitlement {})",
            existing.id
        )));
    }
    let destination = store.payout_account_of_package(&id).await?.ok_or_else(|| {
        ApiError::PayoutsNotConfigured(format!(
            "the publisher of {id} has not connected a payout account"
        ))
    })?;
    let fee = application_fee(price.amount, billing.config.revenue_share_bps).ok_or_else(|| {
        ApiError::Internal(format!(
            "revenue share {} bps does not apply to {}",
            billing.config.revenue_share_bps, price.amount
        ))
    })?;
    let checkout = Checkout {
        id: format!("chk_{}", &random_token()?[..32]),
        session_id: None,
        package_id: id.clone(),
        version: version.clone(),
        panel_instance: panel.clone(),
        amount: price.amount,
        currency: price.currency.clone(),
        application_fee: fee,
        destination: destination.clone(),
        created_at: super::now(),
    };
    store.insert_checkout(&checkout).await?;
    let session = billing
        .gateway
        .create_checkout(&CheckoutRequest {
            checkout_id: checkout.id.clone(),
            plugin: id.clone(),
            plugin_name: package.name.clone(),
            version,
            amount: price.amount,
            currency: price.currency.clone(),
            application_fee: fee,
            destination,
            panel_instance: panel,
            success_url: body.success_url,
            cancel_url: body.cancel_url,
        })
        .await
        .map_err(|e| ApiError::PaymentProvider(e.to_string()))?;
    store
        .set_checkout_session(&checkout.id, &session.id)
        .await?;
    tracing::info!(checkout = %checkout.id, session = %session.id, package = %id, "checkout started");
    Ok((
        StatusCode::CREATED,
        Json(CheckoutView {
            checkout_id: checkout.id,
            session_id: session.id,
            url: session.url,
            amount: price.amount,
            currency: price.currency,
            application_fee: fee,
            expires_at: session.expires_at,
        }),
    ))
}

// ---------------------------------------------------------------- webhook

/// Receives Stripe events. The `Stripe-Signature` header is checked over
/// the raw body (HMAC-SHA256 with the endpoint secret, 300 s tolerance);
/// each event id is processed once. Paid sessions grant entitlements,
/// full refunds and lost disputes revoke them, other events are ignored.
#[utoipa::path(post, path = "/billing/stripe/webhook", tag = "billing",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256>")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe Event"),
    responses((status = 200, body = WebhookReceipt), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookReceipt>> {
    let billing = state.billing()?;
    let now = super::now();
    let signature = headers
        .get(webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    webhook::verify_signature(
        signature,
        &body,
        &billing.config.webhook_secret,
        now,
        billing.config.webhook_tolerance,
    )
    .map_err(|e| ApiError::InvalidWebhookSignature(e.to_string()))?;
    let event = webhook::parse_event(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let store = state.store();
    let mut tx = store.begin().await?;
    if !store
        .record_event(&mut tx, &event.id, &event.event_type, now)
        .await?
    {
        tx.rollback().await?;
        return Ok(Json(WebhookReceipt {
            event: event.id,
            duplicate: true,
            effect: "duplicate".into(),
        }));
    }
    let effect = match &event.meaning {
        BillingEvent::SessionPaid {
            session,
            payment_intent,
            checkout,
        } => match store
            .checkout_for_session(&mut tx, session, checkout.as_deref())
            .await?
        {
            Some(checkout) => {
                let id = format!("ent_{}", &random_token()?[..32]);
                let (entitlement, new) = store
                    .grant_entitlement(&mut tx, &id, &checkout, payment_intent.as_deref(), now)
                    .await?;
                if new {
                    tracing::info!(event = %event.id, entitlement = %entitlement.id, package = %entitlement.package_id,
                        panel = %entitlement.panel_instance, "entitlement granted");
                    "entitlement-granted"
                } else {
                    "unchanged"
                }
            }
            None => {
                tracing::warn!(event = %event.id, %session, "paid session of no known checkout");
                "ignored"
            }
        },
        BillingEvent::Refunded {
            payment_intent,
            charge,
        } => {
            revoke(
                &state,
                &mut tx,
                payment_intent.as_deref(),
                &format!("charge {charge} refunded"),
                now,
            )
            .await?
        }
        BillingEvent::DisputeLost {
            payment_intent,
            charge,
        } => {
            revoke(
                &state,
                &mut tx,
                payment_intent.as_deref(),
                &format!(
                    "dispute over charge {} lost",
                    charge.as_deref().unwrap_or("?")
                ),
                now,
            )
            .await?
        }
        BillingEvent::Ignored => "ignored",
    };
    tx.commit().await?;
    Ok(Json(WebhookReceipt {
        event: event.id,
        duplicate: false,
        effect: effect.into(),
    }))
}

async fn revoke(
    state: &AppState,
    tx: &mut Tx,
    payment_intent: Option<&str>,
    reason: &str,
    now: i64,
) -> ApiResult<&'static str> {
    let Some(pi) = payment_intent else {
        tracing::warn!(reason, "a revoking event without a PaymentIntent");
        return Ok("ignored");
    };
    let n = state
        .store()
        .revoke_by_payment_intent(tx, pi, reason, now)
        .await?;
    tracing::info!(
        payment_intent = pi,
        reason,
        revoked = n,
        "entitlements revoked"
    );
    Ok(if n > 0 {
        "entitlement-revoked"
    } else {
        "ignored"
    })
}

// ---------------------------------------------------------------- licenses

fn license_view(state: &AppState, entitlement: Entitlement, now: i64) -> ApiResult<LicenseView> {
    // A license is checked against the online key valid at its issue time.
    let now = now.max(state.notary().signs_from());
    if !entitlement.active {
        return Ok(LicenseView {
            plugin: entitlement.package_id,
            entitlement: entitlement.id,
            status: "revoked".into(),
            token: None,
            expires_at: None,
            grace_until: None,
            renew_after: None,
            revoke_reason: entitlement.revoke_reason,
        });
    }
    let config = &state.billing()?.config;
    let expires = now.saturating_add(config.license_ttl);
    let claims = LicenseClaims {
        plugin: entitlement.package_id.clone(),
        panel_instance: entitlement.panel_instance.clone(),
        entitlement: entitlement.id.clone(),
        issued_at: t(now),
        expires_at: t(expires),
        grace_seconds: config.license_grace,
    };
    let token = state.notary().issue_license(&claims);
    Ok(LicenseView {
        plugin: entitlement.package_id,
        entitlement: entitlement.id,
        status: "active".into(),
        token: Some(token),
        expires_at: Some(expires),
        grace_until: Some(claims.grace_until().unix_timestamp()),
        renew_after: Some(now.saturating_add(config.license_ttl / 2)),
        revoke_reason: None,
    })
}

/// Fetches (and so renews) the calling Panel's licenses: a fresh token for
/// every active entitlement, revoked ones listed without a token.
#[utoipa::path(get, path = "/panels/me/licenses", tag = "billing",
    security(("panel" = [])),
    responses((status = 200, body = LicenseList), (status = 401, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn licenses(
    State(state): State<AppState>,
    PanelAuthed(panel): PanelAuthed,
) -> ApiResult<Json<LicenseList>> {
    state.billing()?;
    let now = super::now();
    let mut licenses = Vec::new();
    for entitlement in state.store().entitlements_of(&panel).await? {
        licenses.push(license_view(&state, entitlement, now)?);
    }
    Ok(Json(LicenseList {
        panel_instance: panel,
        licenses,
    }))
}

/// Renews the calling Panel's license to one plugin.
#[utoipa::path(post, path = "/panels/me/licenses/{plugin}/renew", tag = "billing",
    params(("plugin" = String, Path, description = "Plugin id")),
    security(("panel" = [])),
    responses((status = 200, body = LicenseView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn renew_license(
    State(state): State<AppState>,
    PanelAuthed(panel): PanelAuthed,
    Path(plugin): Path<String>,
) -> ApiResult<Json<LicenseView>> {
    state.billing()?;
    let now = super::now();
    if let Some(active) = state.store().active_entitlement(&plugin, &panel).await? {
        return license_view(&state, active, now).map(Json);
    }
    let revoked = state
        .store()
        .entitlements_of(&panel)
        .await?
        .into_iter()
        .find(|e| e.package_id == plugin);
    match revoked {
        Some(e) => Err(ApiError::EntitlementRevoked(format!(
            "the entitlement {} to {plugin} was revoked: {}",
            e.id,
            e.revoke_reason.as_deref().unwrap_or("no reason recorded")
        ))),
        None => Err(ApiError::NotFound(format!(
            "an entitlement of {panel} to {plugin}"
        ))),
    }
}
