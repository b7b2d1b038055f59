//! # oidc
//!
//! Sign-in through an OpenID Connect provider (kind `auth-provider`,
//! `redirect`): the authorization code flow with PKCE, the provider found
//! by discovery, and the ID token checked here, against the provider's
//! keys, before the Panel hears of anyone.
//!
//! | Module | Holds |
//! |---|---|
//! | this file | configuration, discovery, `begin-login`, `complete-login` |
//! | `token` | ID token signature (RS256, ES256 against the JWKS) and claims (`iss`, `aud`/`azp`, `exp`/`iat`, `nonce`) |
//! | `mapping` | claims to identity: the username claim, groups, who may create an account |
//!
//! ## One instance per provider
//!
//! An instance of this plugin talks to one provider. Several providers are
//! several instances: the same component installed under distinct plugin
//! ids (the package's `plugin.toml` names the id, the provider's hosts in
//! `capabilities.http.allowed-hosts`, and the admin sets each instance's
//! configuration and secret). The id is what the Panel links identities
//! under, so an instance's `sub`s never meet another's.
//!
//! ## Decisions
//!
//! - **State, nonce and PKCE verifier live in the plugin's KV**, keyed by
//!   the SHA-256 of the state, for ten minutes, and are deleted before the
//!   callback is checked: a state works once, whatever happens next. The
//!   Panel binds the state to the browser (its cookie); the plugin binds it
//!   to the nonce, the verifier and the callback URL.
//! - **Discovery and the JWKS are cached in KV** (an hour), per issuer; an
//!   ID token naming a key the cached JWKS lacks fetches it once more (key
//!   rotation) and is refused if the key is still unknown.
//! - **The issuer is exact.** Discovery's `issuer` must equal the
//!   configured one, and so must the token's `iss`. Endpoints must be
//!   `https`, except on loopback (a provider on the same machine, and the
//!   tests).
//! - **What the provider answers is untrusted input.** An unreachable
//!   provider, an error status or a body that is not the JSON expected is
//!   `provider-unavailable`; a callback or token that does not verify is
//!   `invalid-request` with the reason (for the Panel's log, never for the
//!   browser); a provider's own refusal (`error=access_denied`) is
//!   `invalid-credentials`.
//! - **Who may create an account is the identity's `may-create-account`**
//!   (API 0.2.0): `allow-signup`, limited to verified email domains and a
//!   group when configured. Linking and signing in to linked accounts do
//!   not depend on it.

mod mapping;
mod token;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cap_plugin_sdk::auth::{
    AuthError, AuthProvider, Credentials, Identity, LoginRedirect, ProviderInfo, ProviderKind,
};
use cap_plugin_sdk::types::KeyValue;
use cap_plugin_sdk::{config, http, kv, log};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// How long a begun login may take, in seconds.
const LOGIN_TTL_SECS: i64 = 600;
/// How long discovery and the JWKS are kept, in seconds.
const CACHE_TTL_SECS: i64 = 3600;
/// Each provider request's timeout.
const HTTP_TIMEOUT_MS: u32 = 5_000;

/// The provider.
#[derive(Default)]
struct Oidc;

/// Why a login step failed, before it becomes an [`AuthError`].
#[derive(Debug)]
enum Failure {
    /// The provider cannot be reached or answered nonsense.
    Unavailable(String),
    /// The callback or the ID token does not verify.
    Refused(String),
    /// The provider refused the user.
    Denied(String),
    /// The plugin is not configured.
    Misconfigured(String),
}

impl From<Failure> for AuthError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Unavailable(why) => {
                log::warn!("provider unavailable: {why}");
                AuthError::ProviderUnavailable(why)
            }
            Failure::Refused(why) => {
                log::warn!("sign-in refused: {why}");
                AuthError::InvalidRequest(why)
            }
            Failure::Denied(why) => {
                log::info!("the provider refused the user: {why}");
                AuthError::InvalidCredentials
            }
            Failure::Misconfigured(why) => {
                log::error!("misconfigured: {why}");
                AuthError::ProviderUnavailable(why)
            }
        }
    }
}

/// The admin's configuration of this instance.
struct Settings {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    scopes: String,
    rules: mapping::Rules,
}

fn setting(key: &str) -> Result<Option<String>, Failure> {
    config::get(key)
        .map(|v| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
        .map_err(|e| Failure::Misconfigured(format!("cannot read {key}: {e:?}")))
}

impl Settings {
    fn read() -> Result<Settings, Failure> {
        let required = |key: &str| {
            setting(key)?.ok_or_else(|| Failure::Misconfigured(format!("{key} is not set")))
        };
        let or = |key: &str, default: &str| -> Result<String, Failure> {
            Ok(setting(key)?.unwrap_or_else(|| default.to_owned()))
        };
        let issuer = required("issuer")?;
        check_endpoint("issuer", &issuer).map_err(Failure::Misconfigured)?;
        Ok(Settings {
            issuer,
            client_id: required("client-id")?,
            client_secret: config::get_secret("client-secret")
                .map_err(|e| Failure::Misconfigured(format!("cannot read client-secret: {e:?}")))?
                .filter(|s| !s.is_empty()),
            scopes: or("scopes", "openid profile email")?,
            rules: mapping::Rules {
                username_claim: or("username-claim", "preferred_username")?,
                display_name_claim: or("display-name-claim", "name")?,
                allow_signup: or("allow-signup", "false")? == "true",
                allowed_email_domains: mapping::split_list(&or("allowed-email-domains", "")?),
                required_group: or("required-group", "")?,
                groups_claim: or("groups-claim", "groups")?,
            },
        })
    }
}

/// Refuses a URL that is not `https`, or `http` on loopback.
fn check_endpoint(what: &str, raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{what} {raw:?} is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!(
            "{what} {raw:?} must be https (http only on loopback)"
        )),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// 32 random bytes, base64url.
fn random_token() -> Result<String, Failure> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Failure::Unavailable(format!("no randomness available: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest_hex(value: &str) -> String {
    sha2::Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn kv_failure(e: impl std::fmt::Debug) -> Failure {
    Failure::Unavailable(format!("the plugin's store failed: {e:?}"))
}

/// GETs `url` and decodes its JSON, calling every failure unavailability.
fn get_json<T: serde::de::DeserializeOwned>(what: &str, url: &str) -> Result<T, Failure> {
    let response = http::get(url)
        .header("Accept", "application/json")
        .timeout_ms(HTTP_TIMEOUT_MS)
        .send()
        .map_err(|e| Failure::Unavailable(format!("{what}: {}", http::describe(&e))))?;
    if !response.is_success() {
        return Err(Failure::Unavailable(format!(
            "{what} answered {}",
            response.status
        )));
    }
    serde_json::from_slice(&response.body)
        .map_err(|e| Failure::Unavailable(format!("{what} answered what is not its JSON: {e}")))
}

/// The part of the discovery document this plugin uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
struct Cached<T> {
    /// The issuer (or JWKS URL) it is for.
    source: String,
    fetched_at: i64,
    value: T,
}

fn cached<T: serde::de::DeserializeOwned>(key: &str, source: &str) -> Option<T> {
    let entry: Cached<T> = kv::get_json(key).ok().flatten()?;
    (entry.source == source && now() - entry.fetched_at < CACHE_TTL_SECS).then_some(entry.value)
}

fn keep<T: Serialize>(key: &str, source: &str, value: &T) {
    let entry = Cached {
        source: source.to_owned(),
        fetched_at: now(),
        value,
    };
    if let Err(e) = kv::set_json(key, &entry) {
        log::warn!("cannot cache {key}: {e}");
    }
}

fn discover(settings: &Settings) -> Result<Discovery, Failure> {
    if let Some(found) = cached::<Discovery>("cache/discovery", &settings.issuer) {
        return Ok(found);
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        settings.issuer.trim_end_matches('/')
    );
    let found: Discovery = get_json("discovery", &url)?;
    if found.issuer != settings.issuer {
        return Err(Failure::Unavailable(format!(
            "discovery names the issuer {:?}, not {:?}",
            found.issuer, settings.issuer
        )));
    }
    for (what, endpoint) in [
        ("authorization_endpoint", &found.authorization_endpoint),
        ("token_endpoint", &found.token_endpoint),
        ("jwks_uri", &found.jwks_uri),
    ] {
        check_endpoint(what, endpoint).map_err(Failure::Unavailable)?;
    }
    keep("cache/discovery", &settings.issuer, &found);
    Ok(found)
}

fn jwks(discovery: &Discovery, fresh: bool) -> Result<token::Jwks, Failure> {
    if !fresh
        && let Some(found) = cached::<serde_json::Value>("cache/jwks", &discovery.jwks_uri)
        && let Ok(keys) = serde_json::from_value(found)
    {
        return Ok(keys);
    }
    let raw: serde_json::Value = get_json("the JWKS", &discovery.jwks_uri)?;
    let keys: token::Jwks = serde_json::from_value(raw.clone())
        .map_err(|e| Failure::Unavailable(format!("the JWKS is not a key set: {e}")))?;
    keep("cache/jwks", &discovery.jwks_uri, &raw);
    Ok(keys)
}

/// What a begun login keeps until its callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    nonce: String,
    verifier: String,
    callback_url: String,
    expires_at: i64,
}

fn pending_key(state: &str) -> String {
    format!("login/{}", digest_hex(state))
}

/// Deletes up to a page of expired pending logins (abandoned sign-ins).
fn prune_expired() {
    let Ok(keys) = kv::list_keys("login/", 50) else {
        return;
    };
    for key in keys {
        if let Ok(Some(p)) = kv::get_json::<Pending>(&key)
            && p.expires_at < now()
        {
            let _ = kv::delete(&key);
        }
    }
}

impl Oidc {
    fn begin(&self, callback_url: &str) -> Result<LoginRedirect, Failure> {
        let settings = Settings::read()?;
        let discovery = discover(&settings)?;
        let state = random_token()?;
        let nonce = random_token()?;
        let verifier = random_token()?;
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let mut authorize = url::Url::parse(&discovery.authorization_endpoint)
            .map_err(|e| Failure::Unavailable(format!("authorization_endpoint: {e}")))?;
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", callback_url)
            .append_pair("scope", &settings.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        prune_expired();
        kv::set_json(
            &pending_key(&state),
            &Pending {
                nonce,
                verifier,
                callback_url: callback_url.to_owned(),
                expires_at: now() + LOGIN_TTL_SECS,
            },
        )
        .map_err(kv_failure)?;
        Ok(LoginRedirect {
            authorize_url: authorize.into(),
            state,
        })
    }

    fn complete(&self, state: &str, params: &[KeyValue]) -> Result<Identity, Failure> {
        let param = |name: &str| {
            params
                .iter()
                .find(|p| p.key == name)
                .map(|p| p.value.as_str())
        };
        // Consumed before anything else is checked: a state works once.
        let key = pending_key(state);
        let pending: Option<Pending> = kv::get_json(&key).map_err(kv_failure)?;
        let pending = pending.ok_or_else(|| Failure::Refused("unknown or used state".into()))?;
        if !kv::delete(&key).map_err(kv_failure)? {
            return Err(Failure::Refused("the state was used meanwhile".into()));
        }
        if pending.expires_at < now() {
            return Err(Failure::Refused("the login expired".into()));
        }
        if param("state").is_some_and(|s| s != state) {
            return Err(Failure::Refused("the callback's state differs".into()));
        }
        if let Some(error) = param("error") {
            let detail = param("error_description").unwrap_or_default();
            return Err(Failure::Denied(format!("{error}: {detail}")));
        }
        let code = param("code").ok_or_else(|| Failure::Refused("no code".into()))?;
        let settings = Settings::read()?;
        let discovery = discover(&settings)?;
        // RFC 9207: a provider that names itself must name the right one.
        if param("iss").is_some_and(|iss| iss != settings.issuer) {
            return Err(Failure::Refused("the callback names another issuer".into()));
        }
        let id_token = exchange(&settings, &discovery, code, &pending)?;
        let expected = token::Expected {
            issuer: &settings.issuer,
            client_id: &settings.client_id,
            nonce: &pending.nonce,
            now: now(),
        };
        let claims = match token::validate(&id_token, &jwks(&discovery, false)?, &expected) {
            Err(token::TokenError::UnknownKey(_)) => {
                token::validate(&id_token, &jwks(&discovery, true)?, &expected)
            }
            other => other,
        }
        .map_err(|e| Failure::Refused(e.to_string()))?;
        Ok(mapping::identity(&claims, &settings.rules))
    }
}

/// The token endpoint's answer, as far as read.
#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
}

/// Exchanges `code` for the ID token (client authentication by HTTP Basic
/// unless the provider supports only `client_secret_post`).
fn exchange(
    settings: &Settings,
    discovery: &Discovery,
    code: &str,
    pending: &Pending,
) -> Result<String, Failure> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &pending.callback_url)
        .append_pair("code_verifier", &pending.verifier)
        .append_pair("client_id", &settings.client_id);
    let mut request = http::post(&discovery.token_endpoint)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .timeout_ms(HTTP_TIMEOUT_MS);
    if let Some(secret) = &settings.client_secret {
        let methods = discovery
            .token_endpoint_auth_methods_supported
            .as_deref()
            .unwrap_or_default();
        let post_only = !methods.is_empty()
            && !methods.iter().any(|m| m == "client_secret_basic")
            && methods.iter().any(|m| m == "client_secret_post");
        if post_only {
            form.append_pair("client_secret", secret);
        } else {
            // RFC 6749 2.3.1: both parts form-encoded before base64.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", enc(&settings.client_id), enc(secret)));
            request = request.header("Authorization", format!("Basic {basic}"));
        }
    }
    let response = request
        .body(form.finish().into_bytes())
        .send()
        .map_err(|e| Failure::Unavailable(format!("token endpoint: {}", http::describe(&e))))?;
    if response.status == 400 || response.status == 401 {
        return Err(Failure::Refused(format!(
            "the token endpoint refused the code ({}): {}",
            response.status,
            response.text().chars().take(200).collect::<String>()
        )));
    }
    if !response.is_success() {
        return Err(Failure::Unavailable(format!(
            "the token endpoint answered {}",
            response.status
        )));
    }
    let answer: TokenResponse = serde_json::from_slice(&response.body).map_err(|e| {
        Failure::Unavailable(format!(
            "the token endpoint answered what is not its JSON: {e}"
        ))
    })?;
    Ok(answer.id_token)
}

impl AuthProvider for Oidc {
    fn describe(&self) -> ProviderInfo {
        let name = setting("name")
            .ok()
            .flatten()
            .unwrap_or_else(|| "OpenID Connect".to_owned());
        ProviderInfo {
            id: "oidc".into(),
            name,
            kind: ProviderKind::Redirect,
            description: "Sign-in through an OpenID Connect provider.".into(),
        }
    }

    fn authenticate(&self, _: &Credentials) -> Result<Identity, AuthError> {
        Err(AuthError::Unsupported)
    }

    fn begin_login(&self, callback_url: &str) -> Result<LoginRedirect, AuthError> {
        if let Err(why) = check_endpoint("callback URL", callback_url) {
            return Err(AuthError::InvalidRequest(why));
        }
        Ok(self.begin(callback_url)?)
    }

    fn complete_login(&self, state: &str, params: &[KeyValue]) -> Result<Identity, AuthError> {
        Ok(self.complete(state, params)?)
    }
}

cap_plugin_sdk::export_plugin!(Oidc: auth_provider);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_except_on_loopback() {
        assert!(check_endpoint("x", "https://id.example/").is_ok());
        assert!(check_endpoint("x", "http://127.0.0.1:8080/").is_ok());
        assert!(check_endpoint("x", "http://[::1]/").is_ok());
        assert!(check_endpoint("x", "http://localhost/").is_ok());
        assert!(check_endpoint("x", "http://id.example/").is_err());
        assert!(check_endpoint("x", "http://127.0.0.1.evil.example/").is_err());
        assert!(check_endpoint("x", "ftp://id.example/").is_err());
        assert!(check_endpoint("x", "not a url").is_err());
    }

    #[test]
    fn pending_logins_are_keyed_by_a_digest_of_the_state() {
        let key = pending_key("abc");
        assert_eq!(key.len(), "login/".len() + 64);
        assert!(!key.contains("abc"));
    }
}
