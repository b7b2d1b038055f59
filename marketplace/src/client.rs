//! A client of the Marketplace's HTTP API, for authors (`cap plugin
//! publish`) and Panels (browse, logs, timestamps, downloads).
//!
//! Key decisions:
//!
//! * **Problem codes become typed errors.** The Marketplace answers errors
//!   with problem documents whose `code` is stable; the codes an author can
//!   act on (`version-exists`, `invalid-signature`, `not-owner`,
//!   `name-taken`, `unknown-key`, `key-revoked`) each have their own
//!   [`ClientError`] variant with a message saying what to do. Other codes
//!   keep the Marketplace's code and detail.
//! * **Nothing here is trusted.** The client fetches bytes, logs and
//!   timestamps; deciding whether to believe them is
//!   [`crate::trust::TrustStore`]'s job.
//! * **Panels buy and renew with their own token.** [`MarketplaceClient::register_panel`]
//!   returns the instance id and bearer token a Panel then passes to
//!   [`MarketplaceClient::checkout`], [`MarketplaceClient::licenses`] and
//!   [`MarketplaceClient::renew_license`]; a refused renewal is
//!   [`ClientError::EntitlementRevoked`].
//! * **Bounded reads.** Downloads larger than
//!   [`cap_runtime::package::MAX_PACKAGE_BYTES`] are refused before they are
//!   buffered whole, JSON answers past [`MAX_JSON_BYTES`] and problem
//!   documents past [`MAX_PROBLEM_BYTES`] likewise: whatever answers at the
//!   Marketplace's address cannot make a Panel or `cap` buffer without end.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::keys::{KeyId, PublicKey, SecretKey, Signature};
use crate::log::{LogEntry, SignedTimestamp};
use crate::signing::{KeyChange, key_change_message, key_change_nonce};
use crate::wire::{
    CheckoutView, KEY_ID_HEADER, KeyChangeAuthorization, KeyView, LicenseList, LicenseView,
    NewCheckout, NewPanel, PACKAGE_ID_HEADER, PACKAGE_MEDIA_TYPE, PACKAGE_VERSION_HEADER,
    PackagePage, PackageView, PanelCreated, PublisherCreated, ReleaseView, SIGNATURE_HEADER,
    key_proof_message,
};

/// Largest JSON answer read (a package's log is the largest).
pub const MAX_JSON_BYTES: u64 = 16 * 1024 * 1024;
/// Largest problem document read; the rest is ignored.
pub const MAX_PROBLEM_BYTES: u64 = 64 * 1024;

/// Why a Marketplace request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not an `http(s)` URL.
    #[error("{0:?} is not a Marketplace URL (expected http://host[:port] or https://…)")]
    BadUrl(String),
    /// The Marketplace could not be reached or the connection failed.
    #[error("cannot reach the Marketplace at {url}: {source}")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The version is already published with other bytes.
    #[error(
        "this version is already published with other bytes, and versions are immutable: raise the version in plugin.toml ({0})"
    )]
    VersionExists(String),
    /// The Marketplace refused the author signature.
    #[error(
        "the Marketplace refused the signature: it does not verify over this package with that key; sign this exact file again ({0})"
    )]
    BadSignature(String),
    /// The package id belongs to another publisher.
    #[error("the plugin id is taken by another publisher: choose another id in plugin.toml ({0})")]
    NameTaken(String),
    /// The publisher name is taken.
    #[error("the publisher name is taken: choose another ({0})")]
    PublisherNameTaken(String),
    /// The signing key is not one of the publisher's keys.
    #[error(
        "the signing key is not registered with your publisher account: add it with `cap plugin register` ({0})"
    )]
    UnknownKey(String),
    /// The signing key is revoked.
    #[error("the signing key is revoked: create a new one with `cap plugin keygen` ({0})")]
    KeyRevoked(String),
    /// The token (a publisher's or a Panel instance's) is missing or wrong.
    #[error("the Marketplace did not accept the token ({0})")]
    Unauthenticated(String),
    /// The publisher token expired.
    #[error(
        "the publisher token expired: tokens are rotated before expiry with `cap plugin rotate-token`; ask the Marketplace's admin to recover the account ({0})"
    )]
    TokenExpired(String),
    /// A key change was not signed by one of the publisher's current keys.
    #[error(
        "the Marketplace wants this key change signed by one of your current keys: pass --signed-by <key file> ({0})"
    )]
    KeyChangeUnauthorized(String),
    /// The thing asked for does not exist.
    #[error("not found on the Marketplace: {0}")]
    NotFound(String),
    /// The Panel's entitlement to a paid plugin was revoked (refunded or
    /// lost in a dispute): its license is not renewed.
    #[error("the Marketplace refuses to renew the license: {0}")]
    EntitlementRevoked(String),
    /// Any other problem document.
    #[error("the Marketplace answered {status} {code}: {detail}")]
    Problem {
        /// HTTP status.
        status: u16,
        /// The problem's stable code.
        code: String,
        /// The problem's detail.
        detail: String,
    },
    /// The answer is not what the API documents.
    #[error("unexpected answer from the Marketplace: {0}")]
    Invalid(String),
    /// The answer is longer than the client reads.
    #[error("the Marketplace's answer is larger than {limit} bytes; refusing to read it")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
}

/// Reads a body of at most `limit` bytes, refusing a longer one as soon as
/// its `Content-Length` or its chunks pass the limit.
async fn read_bounded(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, ClientError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(ClientError::TooLarge { limit });
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ClientError::Invalid(e.to_string()))?
    {
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(ClientError::TooLarge { limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A Marketplace at one base URL.
#[derive(Debug, Clone)]
pub struct MarketplaceClient {
    base: url::Url,
    http: reqwest::Client,
}

impl MarketplaceClient {
    /// A client of the Marketplace at `url` (`http://127.0.0.1:8090`; the
    /// `/api/v1` prefix is added here).
    pub fn new(url: &str) -> Result<MarketplaceClient, ClientError> {
        let mut base =
            url::Url::parse(url.trim()).map_err(|_| ClientError::BadUrl(url.to_owned()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(ClientError::BadUrl(url.to_owned()));
        }
        let path = format!("{}/api/v1/", base.path().trim_end_matches('/'));
        base.set_path(&path);
        base.set_query(None);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| ClientError::Unreachable {
                url: url.to_owned(),
                source,
            })?;
        Ok(MarketplaceClient { base, http })
    }

    /// The Marketplace's base URL (without `/api/v1`).
    pub fn url(&self) -> String {
        let mut base = self.base.clone();
        let path = base.path().trim_end_matches("/api/v1/").to_owned();
        base.set_path(&path);
        base.as_str().trim_end_matches('/').to_owned()
    }

    fn endpoint(&self, path: &str) -> Result<url::Url, ClientError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|_| ClientError::BadUrl(format!("{}{path}", self.base)))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let request = request
            .build()
            .map_err(|source| ClientError::Invalid(source.to_string()))?;
        let url = request.url().to_string();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|source| ClientError::Unreachable { url, source })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(problem(response).await)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        let bytes = read_bounded(response, MAX_JSON_BYTES).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Invalid(e.to_string()))
    }

    /// The key to pin: the Marketplace's root key, or its only key for a
    /// Marketplace from before roots.
    pub async fn marketplace_key(&self) -> Result<PublicKey, ClientError> {
        let (key, _) = self.marketplace_keys().await?;
        Ok(key)
    }

    /// The key to pin and the key chain, if the Marketplace has one
    /// ([`crate::rotation`]); the chain is checked by
    /// [`crate::TrustStore::accept_chain`], not here.
    pub async fn marketplace_keys(
        &self,
    ) -> Result<(PublicKey, Option<crate::rotation::KeyChain>), ClientError> {
        #[derive(serde::Deserialize)]
        struct Key {
            public_key: String,
            #[serde(default)]
            root_key: Option<String>,
            #[serde(default)]
            chain: Option<crate::rotation::KeyChain>,
        }
        let key: Key = self
            .json(self.http.get(self.endpoint("marketplace-key")?))
            .await?;
        let pinned = key.root_key.as_deref().unwrap_or(&key.public_key);
        let pinned =
            PublicKey::from_hex(pinned).map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok((pinned, key.chain))
    }

    /// A fresh signed index timestamp.
    pub async fn timestamp(&self) -> Result<SignedTimestamp, ClientError> {
        self.json(self.http.get(self.endpoint("timestamp")?)).await
    }

    /// A package's complete log.
    pub async fn log(&self, id: &str) -> Result<Vec<LogEntry>, ClientError> {
        self.json(self.http.get(self.endpoint(&format!("packages/{id}/log"))?))
            .await
    }

    /// A package with all its versions (as listed; unverified).
    pub async fn package(&self, id: &str) -> Result<PackageView, ClientError> {
        self.json(self.http.get(self.endpoint(&format!("packages/{id}"))?))
            .await
    }

    /// Searches packages; `query` is the search's query string pairs
    /// (`q`, `kind`, `game`, `paid`, `sort`, `page`, `per_page`).
    pub async fn search(&self, query: &[(&str, String)]) -> Result<PackagePage, ClientError> {
        let mut url = self.endpoint("packages")?;
        let encoded =
            serde_urlencoded::to_string(query).map_err(|e| ClientError::Invalid(e.to_string()))?;
        url.set_query((!encoded.is_empty()).then_some(encoded.as_str()));
        self.json(self.http.get(url)).await
    }

    /// Downloads a package file (at most
    /// [`cap_runtime::package::MAX_PACKAGE_BYTES`]).
    pub async fn download(
        &self,
        id: &str,
        version: &semver::Version,
    ) -> Result<Vec<u8>, ClientError> {
        let url = self.endpoint(&format!("packages/{id}/versions/{version}/download"))?;
        let mut response = self.send(self.http.get(url)).await?;
        let limit = cap_runtime::package::MAX_PACKAGE_BYTES;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(ClientError::Invalid(format!(
                "{id} {version} is larger than {limit} bytes"
            )));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ClientError::Invalid(e.to_string()))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(ClientError::Invalid(format!(
                    "{id} {version} is larger than {limit} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Creates a publisher account; the answer holds its token (shown once).
    pub async fn create_publisher(&self, name: &str) -> Result<PublisherCreated, ClientError> {
        let body = serde_json::json!({ "name": name });
        self.json(self.http.post(self.endpoint("publishers")?).json(&body))
            .await
            .map_err(|e| match e {
                ClientError::Problem { code, detail, .. } if code == "name-taken" => {
                    ClientError::PublisherNameTaken(detail)
                }
                other => other,
            })
    }

    /// Adds `key` to the account of publisher `name` (whose `token` this
    /// is), proving possession by signing the key-proof message. Every key
    /// but an account's first needs `signed_by`, one of the publisher's
    /// current keys, which signs the key-change statement.
    pub async fn add_key(
        &self,
        token: &str,
        name: &str,
        key: &SecretKey,
        signed_by: Option<&SecretKey>,
    ) -> Result<KeyView, ClientError> {
        let proof = key.sign(&key_proof_message(name, key.id()));
        let authorization = signed_by
            .map(|by| {
                key_change_authorization(
                    name,
                    &KeyChange::Add {
                        key: key.id().clone(),
                    },
                    by,
                )
            })
            .transpose()?;
        let body = serde_json::json!({
            "public_key": key.public().to_hex(),
            "proof": proof.to_hex(),
            "authorization": authorization,
        });
        self.json(
            self.http
                .post(self.endpoint("publishers/me/keys")?)
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// Revokes key `key_id` of publisher `name` (whose `token` this is) from
    /// `effective_at` for `reason`, with the statement signed by
    /// `signed_by`, one of the publisher's current keys (the revoked key
    /// itself will do).
    pub async fn revoke_key(
        &self,
        token: &str,
        name: &str,
        key_id: &KeyId,
        effective_at: i64,
        reason: &str,
        signed_by: &SecretKey,
    ) -> Result<KeyView, ClientError> {
        let change = KeyChange::Revoke {
            key: key_id.clone(),
            effective_at,
            reason: reason.to_owned(),
        };
        let body = serde_json::json!({
            "reason": reason,
            "effective_at": effective_at,
            "authorization": key_change_authorization(name, &change, signed_by)?,
        });
        self.json(
            self.http
                .post(self.endpoint(&format!("publishers/me/keys/{key_id}/revoke"))?)
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// Replaces the publisher token `token` with a new one (with a new
    /// expiry); the old one stops working.
    pub async fn rotate_token(&self, token: &str) -> Result<PublisherCreated, ClientError> {
        self.json(
            self.http
                .post(self.endpoint("publishers/me/token")?)
                .bearer_auth(token),
        )
        .await
    }

    /// Uploads a package file, declared as `id` `version`, with its author
    /// signature. Answers whether the version is new (`true`) or was
    /// already published with these very bytes (`false`), and the release
    /// as listed.
    pub async fn publish(
        &self,
        token: &str,
        package: &[u8],
        (id, version): (&str, &semver::Version),
        key_id: &KeyId,
        signature: &Signature,
        games: &[String],
    ) -> Result<(bool, ReleaseView), ClientError> {
        let mut url = self.endpoint("packages")?;
        if !games.is_empty() {
            let encoded = serde_urlencoded::to_string([("games", games.join(","))])
                .map_err(|e| ClientError::Invalid(e.to_string()))?;
            url.set_query(Some(&encoded));
        }
        let request = self
            .http
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, PACKAGE_MEDIA_TYPE)
            .header(PACKAGE_ID_HEADER, id)
            .header(PACKAGE_VERSION_HEADER, version.to_string())
            .header(KEY_ID_HEADER, key_id.as_str())
            .header(SIGNATURE_HEADER, signature.to_hex())
            .body(package.to_vec());
        let response = self.send(request).await?;
        let created = response.status() == reqwest::StatusCode::CREATED;
        let bytes = read_bounded(response, MAX_JSON_BYTES).await?;
        let release =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok((created, release))
    }
}

impl MarketplaceClient {
    /// Registers a Panel instance (the Marketplace picks the id unless
    /// `instance_id` names one); the answer holds its token (shown once).
    pub async fn register_panel(
        &self,
        instance_id: Option<&str>,
    ) -> Result<PanelCreated, ClientError> {
        let body = NewPanel {
            instance_id: instance_id.map(str::to_owned),
        };
        self.json(self.http.post(self.endpoint("panels")?).json(&body))
            .await
    }

    /// Starts buying `plugin` for the Panel whose token this is: a Stripe
    /// Checkout Session to send the buyer to.
    pub async fn checkout(
        &self,
        panel_token: &str,
        plugin: &str,
        request: &NewCheckout,
    ) -> Result<CheckoutView, ClientError> {
        self.json(
            self.http
                .post(self.endpoint(&format!("packages/{plugin}/checkout"))?)
                .bearer_auth(panel_token)
                .json(request),
        )
        .await
    }

    /// Every license of the Panel whose token this is: a fresh token for
    /// each active entitlement, revoked ones without.
    pub async fn licenses(&self, panel_token: &str) -> Result<LicenseList, ClientError> {
        self.json(
            self.http
                .get(self.endpoint("panels/me/licenses")?)
                .bearer_auth(panel_token),
        )
        .await
    }

    /// Renews the license to `plugin`: [`ClientError::NotFound`] without an
    /// entitlement, [`ClientError::EntitlementRevoked`] once it was revoked.
    pub async fn renew_license(
        &self,
        panel_token: &str,
        plugin: &str,
    ) -> Result<LicenseView, ClientError> {
        self.json(
            self.http
                .post(self.endpoint(&format!("panels/me/licenses/{plugin}/renew"))?)
                .bearer_auth(panel_token),
        )
        .await
    }
}

/// A key-change statement of `change` for publisher `name`, signed now by
/// `key` with a fresh nonce.
pub fn key_change_authorization(
    name: &str,
    change: &KeyChange,
    key: &SecretKey,
) -> Result<KeyChangeAuthorization, ClientError> {
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let nonce = key_change_nonce().map_err(|e| ClientError::Invalid(format!("randomness: {e}")))?;
    let signature = key.sign(&key_change_message(name, change, issued_at, &nonce));
    Ok(KeyChangeAuthorization {
        key_id: key.id().to_string(),
        issued_at,
        nonce,
        signature: signature.to_hex(),
    })
}

/// The typed error for a non-success response.
async fn problem(response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let body: serde_json::Value = match read_bounded(response, MAX_PROBLEM_BYTES).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(e) => return e,
    };
    let code = body["code"].as_str().unwrap_or("unknown").to_owned();
    let mut detail = body["detail"]
        .as_str()
        .or_else(|| body["title"].as_str())
        .unwrap_or("no detail")
        .to_owned();
    if let Some(errors) = body["errors"].as_array() {
        for e in errors {
            detail.push_str(&format!(
                "; {}: {}",
                e["field"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?")
            ));
        }
    }
    match code.as_str() {
        "version-exists" => ClientError::VersionExists(detail),
        "invalid-signature" => ClientError::BadSignature(detail),
        "not-owner" => ClientError::NameTaken(detail),
        "unknown-key" => ClientError::UnknownKey(detail),
        "key-revoked" => ClientError::KeyRevoked(detail),
        "unauthenticated" => ClientError::Unauthenticated(detail),
        "token-expired" => ClientError::TokenExpired(detail),
        "key-change-unauthorized" => ClientError::KeyChangeUnauthorized(detail),
        "not-found" => ClientError::NotFound(detail),
        "entitlement-revoked" => ClientError::EntitlementRevoked(detail),
        _ => ClientError::Problem {
            status,
            code,
            detail,
        },
    }
}
