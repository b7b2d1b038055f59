//! The registry service over HTTP, on SQLite and PostgreSQL, with real
//! example-plugin packages: publish → browse → download → verify.

use cap_marketplace::client::key_change_authorization;
use cap_marketplace::keys::SecretKey;
use cap_marketplace::log::{LogEntry, SignedTimestamp};
use cap_marketplace::rotation::{ChainError, KeyChain};
use cap_marketplace::signing::{KeyChange, sign_package};
use cap_marketplace::trust::{InstallError, TrustStore};
use cap_marketplace::verify::{Download, VerifyError};
use cap_marketplace::wire::{
    KEY_ID_HEADER, PACKAGE_ID_HEADER, PACKAGE_VERSION_HEADER, SIGNATURE_HEADER, key_proof_message,
};
use cap_marketplace_server::service::rate_limit::RateLimit;
use cap_marketplace_server::{MarketplaceConfig, MarketplaceServer, RunningMarketplace};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use cap_test_support::now;
use cap_test_support::packages::{pack, pack_version};
use cap_test_support::postgres::PgDb;

struct Harness {
    config: MarketplaceConfig,
    server: Option<RunningMarketplace>,
    http: reqwest::Client,
    base: String,
    _dir: tempfile::TempDir,
    pg: Option<PgDb>,
}

impl Harness {
    async fn start(postgres: bool, limit: RateLimit) -> Harness {
        Harness::configured(postgres, |config| config.rate_limit = limit).await
    }

    async fn configured(postgres: bool, configure: impl FnOnce(&mut MarketplaceConfig)) -> Harness {
        let dir = cap_test_support::private_tempdir();
        let pg = if postgres {
            Some(PgDb::create().await)
        } else {
            None
        };
        let mut config = MarketplaceConfig::new(dir.path());
        config.database_url = pg.as_ref().map(|p| p.url.clone());
        configure(&mut config);
        let server = MarketplaceServer::bind(config.clone())
            .await
            .expect("binds")
            .spawn();
        Harness {
            config,
            base: format!("{}/api/v1", server.url()),
            server: Some(server),
            http: reqwest::Client::new(),
            _dir: dir,
            pg,
        }
    }

    async fn sqlite() -> Harness {
        Harness::start(false, RateLimit::default()).await
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("stops cleanly");
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }

    /// Stops the server (the data stays).
    async fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("stops cleanly");
        }
    }

    /// Stops the server and starts it again on the same data and database
    /// (on another port).
    async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("stops cleanly");
        }
        let server = MarketplaceServer::bind(self.config.clone())
            .await
            .expect("binds again")
            .spawn();
        self.base = format!("{}/api/v1", server.url());
        self.server = Some(server);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn json(&self, response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.get(self.url(path)).send().await.expect("GET");
        self.json(r).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let r = req.send().await.expect("POST");
        self.json(r).await
    }

    /// Registers a publisher with one key; returns its token.
    async fn publisher(&self, name: &str, key: &SecretKey) -> String {
        let (status, body) = self
            .post("/publishers", None, json!({ "name": name }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = body["token"].as_str().expect("token").to_owned();
        self.add_key(&token, name, key).await;
        token
    }

    async fn add_key(&self, token: &str, name: &str, key: &SecretKey) {
        let (status, body) = self.try_add_key(token, name, key, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Adds `key`, with the statement signed by `signed_by` if given.
    async fn try_add_key(
        &self,
        token: &str,
        name: &str,
        key: &SecretKey,
        signed_by: Option<&SecretKey>,
    ) -> (StatusCode, Value) {
        let proof = key.sign(&key_proof_message(name, key.id()));
        let authorization = signed_by.map(|by| {
            key_change_authorization(
                name,
                &KeyChange::Add {
                    key: key.id().clone(),
                },
                by,
            )
            .expect("statement")
        });
        self.post(
            "/publishers/me/keys",
            Some(token),
            json!({
                "public_key": key.public().to_file(),
                "proof": proof.to_hex(),
                "authorization": authorization,
            }),
        )
        .await
    }

    /// Revokes `key_id` from `effective_at`, with the statement signed by
    /// `signed_by` if given.
    async fn try_revoke(
        &self,
        token: &str,
        name: &str,
        key_id: &cap_marketplace::keys::KeyId,
        effective_at: i64,
        signed_by: Option<&SecretKey>,
    ) -> (StatusCode, Value) {
        let reason = "left the team";
        let authorization = signed_by.map(|by| {
            key_change_authorization(
                name,
                &KeyChange::Revoke {
                    key: key_id.clone(),
                    effective_at,
                    reason: reason.into(),
                },
                by,
            )
            .expect("statement")
        });
        self.post(
            &format!("/publishers/me/keys/{key_id}/revoke"),
            Some(token),
            json!({ "reason": reason, "effective_at": effective_at, "authorization": authorization }),
        )
        .await
    }

    async fn publish(
        &self,
        token: &str,
        key: &SecretKey,
        package: &cap_runtime::Package,
        bytes: &[u8],
        query: &str,
    ) -> (StatusCode, Value) {
        let plugin = &package.manifest.plugin;
        // Signed over the bytes sent, which a test may make differ from the
        // package's.
        let sha256 = hex::encode(Sha256::digest(bytes));
        let sig = sign_package(key, &plugin.id, &plugin.version, &sha256);
        let r = self
            .http
            .post(self.url(&format!("/packages{query}")))
            .bearer_auth(token)
            .header(PACKAGE_ID_HEADER, plugin.id.as_str())
            .header(PACKAGE_VERSION_HEADER, plugin.version.to_string())
            .header(KEY_ID_HEADER, key.id().as_str())
            .header(SIGNATURE_HEADER, sig.to_hex())
            .header("content-type", "application/vnd.ctrl-alt-play.package")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("publish");
        self.json(r).await
    }

    /// Uploads `bytes` declared as `id` `version` under `key_id` with
    /// `signature`, whatever they hold.
    async fn publish_raw(
        &self,
        token: &str,
        (id, version): (&str, &str),
        key_id: &str,
        signature: &cap_marketplace::keys::Signature,
        bytes: &[u8],
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url("/packages"))
            .bearer_auth(token)
            .header(PACKAGE_ID_HEADER, id)
            .header(PACKAGE_VERSION_HEADER, version)
            .header(KEY_ID_HEADER, key_id)
            .header(SIGNATURE_HEADER, signature.to_hex())
            .header("content-type", "application/vnd.ctrl-alt-play.package")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("publish");
        self.json(r).await
    }

    async fn download(&self, id: &str, version: &str) -> Vec<u8> {
        let r = self
            .http
            .get(self.url(&format!("/packages/{id}/versions/{version}/download")))
            .send()
            .await
            .expect("download");
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.expect("bytes").to_vec()
    }

    async fn log(&self, id: &str) -> Vec<LogEntry> {
        let r = self
            .http
            .get(self.url(&format!("/packages/{id}/log")))
            .send()
            .await
            .expect("log");
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("log JSON")
    }

    async fn timestamp(&self) -> SignedTimestamp {
        let r = self
            .http
            .get(self.url("/timestamp"))
            .send()
            .await
            .expect("timestamp");
        r.json().await.expect("timestamp JSON")
    }

    fn key(&self) -> cap_marketplace::PublicKey {
        self.server.as_ref().expect("running").public_key().clone()
    }
}

/// Waits until the clock (unix seconds) is past `t`.
async fn wait_past(t: i64) {
    while now() <= t {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert_eq!(
        body["type"],
        format!("urn:ctrl-alt-play:problem:{code}"),
        "{body}"
    );
}

async fn publish_browse_download_verify(h: &Harness) {
    let key = SecretKey::generate().expect("key");
    let token = h.publisher("acme", &key).await;
    let (package, bytes) = pack("quota-guard", |t| t);
    let (status, body) = h.publish(&token, &key, &package, &bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sha256"], package.sha256);

    // Browse.
    let (status, page) = h.get("/packages?q=quota&kind=hooks").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], "quota-guard");
    assert_eq!(page["items"][0]["publisher"], "acme");
    let (_, detail) = h.get("/packages/quota-guard").await;
    assert_eq!(detail["versions"][0]["version"], "1.0.0");

    // Download and verify with a trust store on disk.
    let downloaded = h.download("quota-guard", "1.0.0").await;
    assert_eq!(downloaded, bytes);
    let log = h.log("quota-guard").await;
    let ts = h.timestamp().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = TrustStore::open(&dir.path().join("trust.json"), h.key()).expect("store");
    let version = semver::Version::new(1, 0, 0);
    fn dl<'a>(version: &'a semver::Version, bytes: &'a [u8], log: &'a [LogEntry]) -> Download<'a> {
        Download {
            package: "quota-guard",
            version,
            bytes,
            log,
        }
    }
    let at = now();
    let verified = store
        .verify_download(&ts, dl(&version, &downloaded, &log), at)
        .expect("verifies");
    assert_eq!(verified.release.key_id, *key.id());

    // Tampered download.
    let mut flipped = downloaded.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x80;
    match store.verify_download(&ts, dl(&version, &flipped, &log), at) {
        Err(InstallError::Verify(VerifyError::DigestMismatch { .. })) => {}
        other => panic!("a flipped byte must be refused, got {other:?}"),
    }
    // A frozen index: the timestamp read now is refused after it expires.
    let later = ts.body.expires_at;
    match store.verify_download(&ts, dl(&version, &downloaded, &log), later) {
        Err(InstallError::Verify(VerifyError::StaleTimestamp { .. })) => {}
        other => panic!("a stale timestamp must be refused, got {other:?}"),
    }

    // Downloads are counted.
    let (_, detail) = h.get("/packages/quota-guard").await;
    assert_eq!(detail["downloads"], 1);
    assert_eq!(detail["versions"][0]["downloads"], 1);
}

#[tokio::test]
async fn a_published_example_plugin_is_browsed_downloaded_and_verified_on_sqlite() {
    let h = Harness::sqlite().await;
    publish_browse_download_verify(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_published_example_plugin_is_browsed_downloaded_and_verified_on_postgres() {
    let h = Harness::start(true, RateLimit::default()).await;
    publish_browse_download_verify(&h).await;
    rules_of_publishing(&h).await;
    h.stop().await;
}

async fn rules_of_publishing(h: &Harness) {
    let key = SecretKey::generate().expect("key");
    let token = h.publisher("rules-owner", &key).await;
    let (package, bytes) = pack("discord-webhook", |t| t);
    let (status, body) = h.publish(&token, &key, &package, &bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Same bytes again: idempotent.
    let (status, _) = h.publish(&token, &key, &package, &bytes, "").await;
    assert_eq!(status, StatusCode::OK);
    // Same version, other bytes: immutable.
    let (other, other_bytes) = pack("discord-webhook", |t| {
        t.replace("description = \"", "description = \"Changed. ")
    });
    let (status, body) = h.publish(&token, &key, &other, &other_bytes, "").await;
    assert_problem(status, &body, StatusCode::CONFLICT, "version-exists");

    // Another publisher may not publish under the name.
    let intruder_key = SecretKey::generate().expect("key");
    let intruder = h.publisher("rules-intruder", &intruder_key).await;
    let (v2, v2_bytes) = pack_version("discord-webhook", "1.1.0");
    let (status, body) = h
        .publish(&intruder, &intruder_key, &v2, &v2_bytes, "")
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "not-owner");

    // A signature by another key under the owner's key id.
    let plugin = &v2.manifest.plugin;
    let forged = sign_package(&intruder_key, &plugin.id, &plugin.version, &v2.sha256);
    let r = h
        .http
        .post(h.url("/packages"))
        .bearer_auth(&token)
        .header(PACKAGE_ID_HEADER, plugin.id.as_str())
        .header(PACKAGE_VERSION_HEADER, plugin.version.to_string())
        .header(KEY_ID_HEADER, key.id().as_str())
        .header(SIGNATURE_HEADER, forged.to_hex())
        .body(v2_bytes.clone())
        .send()
        .await
        .expect("publish");
    let (status, body) = h.json(r).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-signature",
    );

    // A key of another publisher.
    let (status, body) = h.publish(&token, &intruder_key, &v2, &v2_bytes, "").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown-key",
    );

    // Not a package.
    let (status, body) = h
        .publish(&token, &key, &v2, b"definitely not gzip", "")
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-package",
    );

    // No token.
    let r = h
        .http
        .post(h.url("/packages"))
        .body(v2_bytes.clone())
        .send()
        .await
        .expect("post");
    let (status, body) = h.json(r).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");

    // Publisher names are unique.
    let (status, body) = h
        .post("/publishers", None, json!({ "name": "rules-owner" }))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "name-taken");
    let (status, body) = h
        .post("/publishers", None, json!({ "name": "Bad Name" }))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"][0]["field"], "name");

    // A second key works; after revoking it, it does not.
    let second = SecretKey::generate().expect("key");
    let (status, body) = h
        .try_add_key(&token, "rules-owner", &second, Some(&key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = h.publish(&token, &second, &v2, &v2_bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A revocation starts after the key's last release.
    wait_past(body["published_at"].as_i64().expect("published_at")).await;
    let (status, body) = h
        .try_revoke(&token, "rules-owner", second.id(), now(), Some(&second))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (v3, v3_bytes) = pack_version("discord-webhook", "1.2.0");
    let (status, body) = h.publish(&token, &second, &v3, &v3_bytes, "").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "key-revoked",
    );
    let (status, body) = h.publish(&token, &key, &v3, &v3_bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The log records grants, releases and the revocation, and verifies.
    let log = h.log("discord-webhook").await;
    let kinds: Vec<&str> = log
        .iter()
        .map(|e| match &e.event {
            cap_marketplace::LogEvent::KeyGrant { .. } => "grant",
            cap_marketplace::LogEvent::KeyRevoke { .. } => "revoke",
            cap_marketplace::LogEvent::Release { .. } => "release",
            cap_marketplace::LogEvent::Yank { .. } => "yank",
            cap_marketplace::LogEvent::Unyank { .. } => "unyank",
        })
        .collect();
    assert_eq!(
        kinds,
        ["grant", "release", "grant", "release", "revoke", "release"]
    );
    let store = TrustStore::in_memory(h.key());
    let ts = h.timestamp().await;
    let version = semver::Version::new(1, 2, 0);
    store
        .check_install(
            &ts,
            &[Download {
                package: "discord-webhook",
                version: &version,
                bytes: &h.download("discord-webhook", "1.2.0").await,
                log: &log,
            }],
            now(),
        )
        .expect("the newest release verifies");

    // Yank and unyank, by the owner only.
    let (status, body) = h
        .post(
            "/packages/discord-webhook/versions/1.1.0/yank",
            Some(&intruder),
            json!({ "reason": "x" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "not-owner");
    let (status, body) = h
        .post(
            "/packages/discord-webhook/versions/1.1.0/yank",
            Some(&token),
            json!({ "reason": "crashes on start" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["yanked"], true);
    assert_eq!(body["yank_reason"], "crashes on start");
    let (status, body) = h
        .post(
            "/packages/discord-webhook/versions/1.1.0/unyank",
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["yanked"], false);
    let log = h.log("discord-webhook").await;
    assert!(matches!(
        log[log.len() - 2].event,
        cap_marketplace::LogEvent::Yank { .. }
    ));
    assert!(matches!(
        log[log.len() - 1].event,
        cap_marketplace::LogEvent::Unyank { .. }
    ));
}

/// A package bomb: a small `.cap` whose GNU long-name entry declares 1 GiB
/// (8 MiB of it present), the reader of which buffered it whole.
fn long_name_bomb() -> Vec<u8> {
    use std::io::Write;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_path("././@LongLink").expect("path");
    header.set_size(1 << 30);
    header.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(header.as_bytes()).expect("write");
    gz.write_all(&vec![0u8; 8 << 20]).expect("write");
    gz.finish().expect("gzip")
}

/// The key, the signature over the body's sha256 and the ownership of the
/// id are checked before the upload is unpacked: a bomb that is not signed
/// by one of the publisher's keys gets the signature's answer, not the
/// package's.
async fn uploads_are_authenticated_before_they_are_unpacked(h: &Harness) {
    let key = SecretKey::generate().expect("key");
    let token = h.publisher("bomb-owner", &key).await;
    let (package, bytes) = pack_version("discord-webhook", "1.0.0");
    let (status, body) = h.publish(&token, &key, &package, &bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let bomb = long_name_bomb();
    let sha256 = hex::encode(Sha256::digest(&bomb));
    let version = semver::Version::new(9, 0, 0);
    let claimed = ("discord-webhook", "9.0.0");
    let intruder = SecretKey::generate().expect("key");
    let intruder_token = h.publisher("bomb-intruder", &intruder).await;

    // Signed by another key under the owner's key id.
    let forged = sign_package(&intruder, "discord-webhook", &version, &sha256);
    let (status, body) = h
        .publish_raw(&token, claimed, key.id().as_str(), &forged, &bomb)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-signature",
    );
    // Signed by a key the publisher does not hold.
    let (status, body) = h
        .publish_raw(&token, claimed, intruder.id().as_str(), &forged, &bomb)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown-key",
    );
    // Signed with the right key over other bytes.
    let other = sign_package(&key, "discord-webhook", &version, &package.sha256);
    let (status, body) = h
        .publish_raw(&token, claimed, key.id().as_str(), &other, &bomb)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-signature",
    );
    // Another publisher's validly signed bomb under the owner's id.
    let (status, body) = h
        .publish_raw(
            &intruder_token,
            claimed,
            intruder.id().as_str(),
            &forged,
            &bomb,
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "not-owner");
    // Without a signature at all.
    let r = h
        .http
        .post(h.url("/packages"))
        .bearer_auth(&token)
        .body(bomb.clone())
        .send()
        .await
        .expect("publish");
    let (status, body) = h.json(r).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    // Only a bomb signed by the owner's key reaches the reader, which
    // refuses it.
    let signed = sign_package(&key, "discord-webhook", &version, &sha256);
    let (status, body) = h
        .publish_raw(&token, claimed, key.id().as_str(), &signed, &bomb)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-package",
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("long name"),
        "{body}"
    );
    // And a package must be what was signed: the id and version in its
    // plugin.toml are the ones in the headers.
    let (v2, v2_bytes) = pack_version("discord-webhook", "2.0.0");
    let as_v3 = sign_package(
        &key,
        "discord-webhook",
        &semver::Version::new(3, 0, 0),
        &v2.sha256,
    );
    let (status, body) = h
        .publish_raw(
            &token,
            ("discord-webhook", "3.0.0"),
            key.id().as_str(),
            &as_v3,
            &v2_bytes,
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-package",
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("signed as"),
        "{body}"
    );
}

#[tokio::test]
async fn publishing_rules_hold_on_sqlite() {
    let h = Harness::sqlite().await;
    rules_of_publishing(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn search_filters_sorts_and_paginates() {
    let h = Harness::sqlite().await;
    let key = SecretKey::generate().expect("key");
    let token = h.publisher("catalog", &key).await;
    let (mc, mc_bytes) = pack("minecraft-paper", |t| t);
    let (status, body) = h
        .publish(&token, &key, &mc, &mc_bytes, "?games=minecraft")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (paid, paid_bytes) = pack("quota-guard", |t| {
        t.replacen(
            "api = \"0.1.0\"",
            "api = \"0.1.0\"\nprice = \"price_quota\"",
            1,
        )
    });
    let (status, body) = h.publish(&token, &key, &paid, &paid_bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (auth, auth_bytes) = pack("local-password", |t| t);
    let (status, body) = h.publish(&token, &key, &auth, &auth_bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for _ in 0..2 {
        h.download("local-password", "1.0.0").await;
    }
    h.download("minecraft-paper", &mc.manifest.plugin.version.to_string())
        .await;

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let (_, page) = h.get("/packages?game=minecraft").await;
    assert_eq!(ids(&page), ["minecraft-paper"]);
    let (_, page) = h.get("/packages?kind=auth-provider").await;
    assert_eq!(ids(&page), ["local-password"]);
    let (_, page) = h.get("/packages?paid=true").await;
    assert_eq!(ids(&page), ["quota-guard"]);
    let (_, page) = h.get("/packages?paid=false&sort=downloads").await;
    assert_eq!(ids(&page), ["local-password", "minecraft-paper"]);
    let (_, page) = h.get("/packages?sort=downloads&per_page=1&page=2").await;
    assert_eq!(ids(&page), ["minecraft-paper"]);
    assert_eq!(page["total"], 3);
    let (_, page) = h.get("/packages?q=PASSWORD").await;
    assert_eq!(ids(&page), ["local-password"]);
    let (_, page) = h.get("/packages?q=100%25").await;
    assert_eq!(ids(&page), Vec::<String>::new());
    let (status, body) = h.get("/packages?per_page=500&kind=nope&sort=stars").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(3), "{body}");
    h.stop().await;
}

#[tokio::test]
async fn health_openapi_and_errors_are_served_as_documented() {
    let h = Harness::sqlite().await;
    let (status, body) = h.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, doc) = h.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/packages",
        "/api/v1/packages/{id}/log",
        "/api/v1/timestamp",
        "/api/v1/publishers/me/keys",
        "/api/v1/packages/{id}/versions/{version}/download",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    let (status, body) = h.get("/packages/nope").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, body) = h.get("/no/such/route").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let r = h
        .http
        .delete(h.url("/health"))
        .send()
        .await
        .expect("delete");
    let (status, body) = h.json(r).await;
    assert_problem(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
    );
    let r = h
        .http
        .post(h.url("/publishers"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    let (status, body) = h.json(r).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-request");
    let (status, body) = h.get("/packages/x/versions/not-a-version/download").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, key) = h.get("/marketplace-key").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(key["key_id"], h.key().id().as_str());
    h.stop().await;
}

#[tokio::test]
async fn a_client_over_its_rate_limit_gets_429_with_retry_after() {
    let h = Harness::start(
        false,
        RateLimit {
            per_minute: 6,
            burst: 3,
        },
    )
    .await;
    for _ in 0..3 {
        let (status, _) = h.get("/health").await;
        assert_eq!(status, StatusCode::OK);
    }
    let r = h.http.get(h.url("/health")).send().await.expect("get");
    let retry = r.headers().get("retry-after").cloned();
    let (status, body) = h.json(r).await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert!(retry.is_some(), "Retry-After is set");
    h.stop().await;
}

/// A token alone adds an account's first key and nothing more: every later
/// key needs a statement signed by one of the publisher's current keys.
async fn a_token_alone_adds_only_the_first_key(h: &Harness) {
    let first = SecretKey::generate().expect("key");
    let token = h.publisher("keyring", &first).await;
    let attacker = SecretKey::generate().expect("key");
    let (status, body) = h.try_add_key(&token, "keyring", &attacker, None).await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "key-change-unauthorized",
    );
    // Signed by the key being added (not one of the publisher's).
    let (status, body) = h
        .try_add_key(&token, "keyring", &attacker, Some(&attacker))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "key-change-unauthorized",
    );
    // A statement made for another publisher does not verify here.
    let second = SecretKey::generate().expect("key");
    let proof = second.sign(&key_proof_message("keyring", second.id()));
    let elsewhere = key_change_authorization(
        "other-publisher",
        &KeyChange::Add {
            key: second.id().clone(),
        },
        &first,
    )
    .expect("statement");
    let (status, body) = h
        .post(
            "/publishers/me/keys",
            Some(&token),
            json!({ "public_key": second.public().to_hex(), "proof": proof.to_hex(), "authorization": elsewhere }),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-signature",
    );
    let (status, body) = h
        .try_add_key(&token, "keyring", &second, Some(&first))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A revoked key signs no more changes.
    let (status, body) = h
        .try_revoke(&token, "keyring", first.id(), now(), Some(&second))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let third = SecretKey::generate().expect("key");
    let (status, body) = h.try_add_key(&token, "keyring", &third, Some(&first)).await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "key-change-unauthorized",
    );
    let (_, profile) = h.get("/publishers/keyring").await;
    assert_eq!(
        profile["keys"].as_array().map(Vec::len),
        Some(2),
        "{profile}"
    );
}

/// Revocation needs a statement by a current key, is accepted once and
/// only while fresh, and never reaches back over the key's last release.
async fn revocations_are_signed_fresh_and_do_not_reach_back(h: &Harness) {
    let key = SecretKey::generate().expect("key");
    let token = h.publisher("revoker", &key).await;
    let (package, bytes) = pack_version("discord-webhook", "1.0.0");
    let (status, release) = h.publish(&token, &key, &package, &bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{release}");
    let published_at = release["published_at"].as_i64().expect("published_at");

    // The token alone: refused (it used to revoke back to time 0).
    let (status, body) = h.try_revoke(&token, "revoker", key.id(), 0, None).await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "key-change-unauthorized",
    );
    // Signed by someone else's key.
    let stranger = SecretKey::generate().expect("key");
    let (status, body) = h
        .try_revoke(&token, "revoker", key.id(), now(), Some(&stranger))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "key-change-unauthorized",
    );
    // Signed properly but reaching back to or before the last release.
    for effective_at in [0, published_at] {
        let (status, body) = h
            .try_revoke(&token, "revoker", key.id(), effective_at, Some(&key))
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        );
        assert_eq!(body["errors"][0]["field"], "effective_at", "{body}");
    }
    // A stale statement.
    let reason = "left the team";
    let effective_at = now();
    let change = KeyChange::Revoke {
        key: key.id().clone(),
        effective_at,
        reason: reason.into(),
    };
    let mut stale = key_change_authorization("revoker", &change, &key).expect("statement");
    stale.issued_at -= 600;
    stale.signature = key
        .sign(&cap_marketplace::signing::key_change_message(
            "revoker",
            &change,
            stale.issued_at,
            &stale.nonce,
        ))
        .to_hex();
    let path = format!("/publishers/me/keys/{}/revoke", key.id());
    let (status, body) = h
        .post(
            &path,
            Some(&token),
            json!({ "reason": reason, "effective_at": effective_at, "authorization": stale }),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"][0]["field"], "authorization.issued_at");
    // After the release, signed (by a second key, which stays valid to
    // show the replay refused below is about the nonce) and fresh:
    // accepted, and the release stays installable.
    let second = SecretKey::generate().expect("key");
    let (status, answer) = h.try_add_key(&token, "revoker", &second, Some(&key)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    wait_past(published_at).await;
    let effective_at = now();
    let change = KeyChange::Revoke {
        key: key.id().clone(),
        effective_at,
        reason: reason.into(),
    };
    let statement = key_change_authorization("revoker", &change, &second).expect("statement");
    let body =
        json!({ "reason": reason, "effective_at": effective_at, "authorization": statement });
    let (status, answer) = h.post(&path, Some(&token), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The same statement again is a replay.
    let (status, answer) = h.post(&path, Some(&token), body).await;
    assert_problem(status, &answer, StatusCode::CONFLICT, "statement-replayed");
    let store = TrustStore::in_memory(h.key());
    let version = semver::Version::new(1, 0, 0);
    store
        .check_install(
            &h.timestamp().await,
            &[Download {
                package: "discord-webhook",
                version: &version,
                bytes: &h.download("discord-webhook", "1.0.0").await,
                log: &h.log("discord-webhook").await,
            }],
            now(),
        )
        .expect("a release from before the revocation still verifies");
}

#[tokio::test]
async fn an_expired_publisher_token_is_refused() {
    let h = Harness::configured(false, |c| c.publisher_token_ttl = 0).await;
    let (status, body) = h
        .post("/publishers", None, json!({ "name": "short-lived" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().expect("token");
    assert!(body["expires_at"].as_i64().expect("expires_at") <= now());
    let (status, body) = h.post("/publishers/me/token", Some(token), json!({})).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "token-expired");
    h.stop().await;
}

#[tokio::test]
async fn a_rotated_token_replaces_the_old_one() {
    let h = Harness::sqlite().await;
    let key = SecretKey::generate().expect("key");
    let old = h.publisher("rotator", &key).await;
    let (status, body) = h.post("/publishers/me/token", Some(&old), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["token"].as_str().expect("token").to_owned();
    assert_ne!(new, old);
    let expires_at = body["expires_at"].as_i64().expect("expires_at");
    assert!(expires_at > now() + 80 * 24 * 3600, "{body}");
    let (status, body) = h.post("/publishers/me/token", Some(&old), json!({})).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (package, bytes) = pack_version("discord-webhook", "1.0.0");
    let (status, body) = h.publish(&new, &key, &package, &bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    h.stop().await;
}

#[tokio::test]
async fn a_publisher_who_lost_every_key_is_recovered_only_by_the_admin() {
    let closed = Harness::sqlite().await;
    let lost = SecretKey::generate().expect("key");
    let token = closed.publisher("forgetful", &lost).await;
    let fresh = SecretKey::generate().expect("key");
    let recovery = json!({
        "public_key": fresh.public().to_hex(),
        "proof": fresh.sign(&key_proof_message("forgetful", fresh.id())).to_hex(),
        "reason": "identity checked by video call",
    });
    // Without an admin token the route does not exist, and the publisher's
    // token is no admin token.
    let (status, body) = closed
        .post(
            "/admin/publishers/forgetful/keys",
            Some(&token),
            recovery.clone(),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    closed.stop().await;

    let h = Harness::configured(false, |c| c.admin_token = Some("admin-secret".into())).await;
    let token = h.publisher("forgetful", &lost).await;
    let (status, body) = h
        .post(
            "/admin/publishers/forgetful/keys",
            Some(&token),
            recovery.clone(),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (status, body) = h
        .post(
            "/admin/publishers/forgetful/keys",
            Some("admin-secret"),
            recovery,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The recovered key now signs key changes: it revokes the lost key.
    let (status, body) = h
        .try_revoke(&token, "forgetful", lost.id(), now(), Some(&fresh))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.stop().await;
}

#[cfg(unix)]
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_data_directory_and_database_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("market");
    let server = MarketplaceServer::bind(MarketplaceConfig::new(&data))
        .await
        .expect("binds")
        .spawn();
    server.stop().await.expect("stops cleanly");
    assert_eq!(mode_of(&data), 0o700);
    assert_eq!(mode_of(&data.join("marketplace.db")), 0o600);
    assert_eq!(mode_of(&data.join("marketplace.key")), 0o600);
}

#[cfg(unix)]
#[tokio::test]
async fn an_existing_data_directory_or_database_open_to_others_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("market");
    MarketplaceServer::bind(MarketplaceConfig::new(&data))
        .await
        .expect("binds")
        .spawn()
        .stop()
        .await
        .expect("stops cleanly");
    let chmod = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };

    chmod(&data, 0o755);
    let error = MarketplaceServer::bind(MarketplaceConfig::new(&data))
        .await
        .expect_err("a readable data directory is refused");
    assert!(
        matches!(
            error,
            cap_marketplace_server::server::ServerError::Permissions { mode: 0o755, .. }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("`chmod 700 {}`", data.display())),
        "{error}"
    );
    chmod(&data, 0o700);

    let db = data.join("marketplace.db");
    chmod(&db, 0o644);
    let error = MarketplaceServer::bind(MarketplaceConfig::new(&data))
        .await
        .expect_err("a readable database is refused");
    assert!(
        error
            .to_string()
            .contains(&format!("`chmod 600 {}`", db.display())),
        "{error}"
    );
}

/// Runs each scenario against a Marketplace on SQLite and on PostgreSQL, as
/// the tests `<scenario>::on_sqlite` and `<scenario>::on_postgres`.
macro_rules! on_sqlite_and_postgres {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn on_sqlite() {
                let h = super::Harness::sqlite().await;
                super::$scenario(&h).await;
                h.stop().await;
            }

            #[tokio::test]
            async fn on_postgres() {
                let h = super::Harness::start(true, super::RateLimit::default()).await;
                super::$scenario(&h).await;
                h.stop().await;
            }
        }
    )+};
}

on_sqlite_and_postgres!(
    uploads_are_authenticated_before_they_are_unpacked,
    a_token_alone_adds_only_the_first_key,
    revocations_are_signed_fresh_and_do_not_reach_back,
);

// ------------------------------------------------------ key rotation

async fn key_chain(h: &Harness) -> (cap_marketplace::PublicKey, KeyChain) {
    let (status, body) = h.get("/marketplace-key").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let root = cap_marketplace::PublicKey::from_hex(body["root_key"].as_str().expect("root"))
        .expect("root hex");
    let chain: KeyChain = serde_json::from_value(body["chain"].clone()).expect("chain JSON");
    (root, chain)
}

fn root_of(h: &Harness) -> SecretKey {
    SecretKey::read(&cap_marketplace_server::server::default_root_key_path(
        &h.config.data_dir,
    ))
    .expect("the first start wrote the root key")
}

async fn rotation_keeps_old_releases_and_signs_new_ones_with_the_new_key(mut h: Harness) {
    let author = SecretKey::generate().expect("key");
    let token = h.publisher("acme", &author).await;
    let (v1, v1_bytes) = pack_version("discord-webhook", "1.0.0");
    let (status, body) = h.publish(&token, &author, &v1, &v1_bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A client pins the root and installs 1.0.0.
    let (root, chain) = key_chain(&h).await;
    assert_eq!(root, *h.server.as_ref().expect("running").root_key());
    let mut store = TrustStore::in_memory(root.clone());
    store.accept_chain(&chain).expect("the first chain");
    let v1_version = semver::Version::new(1, 0, 0);
    let log = h.log("discord-webhook").await;
    let ts = h.timestamp().await;
    store
        .verify_download(
            &ts,
            Download {
                package: "discord-webhook",
                version: &v1_version,
                bytes: &v1_bytes,
                log: &log,
            },
            now(),
        )
        .expect("1.0.0 verifies");
    let old_key = h.key();
    // What an attacker who stole the old online key holds.
    let stolen = SecretKey::read(&h.config.data_dir.join("marketplace.key")).expect("old key");
    assert_eq!(*stolen.public(), old_key);

    // The admin rotates while the Marketplace is down, then starts it.
    h.stop_server().await;
    let certificate =
        cap_marketplace_server::server::rotate_online_key(&h.config.data_dir, &root_of(&h), now())
            .expect("rotates");
    assert_eq!(certificate.serial, 2);
    h.restart().await;
    let new_key = h.key();
    assert_ne!(new_key, old_key);
    assert_eq!(certificate.online_key, new_key);
    // Entries logged after the rotation take a later time than its start.
    wait_past(certificate.valid_from).await;
    let (v2, v2_bytes) = pack_version("discord-webhook", "1.1.0");
    let (status, body) = h.publish(&token, &author, &v2, &v2_bytes, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The client follows the new chain: the log holds entries by both
    // keys and the timestamp is by the new one.
    let (same_root, chain) = key_chain(&h).await;
    assert_eq!(same_root, root);
    store.accept_chain(&chain).expect("the rotated chain");
    let log = h.log("discord-webhook").await;
    let ts = h.timestamp().await;
    let v2_version = semver::Version::new(1, 1, 0);
    store
        .verify_download(
            &ts,
            Download {
                package: "discord-webhook",
                version: &v2_version,
                bytes: &v2_bytes,
                log: &log,
            },
            now(),
        )
        .expect("1.1.0 verifies across the rotation");

    // The rotated-away key signs nothing any more: not a timestamp ...
    let old_notary = cap_marketplace::Notary::new(stolen);
    let forged_ts = old_notary.timestamp(ts.body.heads.clone(), now(), 3600);
    assert_eq!(
        store.check_timestamp(&forged_ts, now()),
        Err(VerifyError::BadTimestampSignature)
    );
    // ... nor a log entry appended after the rotation.
    let head = cap_marketplace::LogHead {
        len: log.len() as u64,
        hash: log.last().expect("entries").hash(),
    };
    let mut forged_log = log.clone();
    forged_log.push(old_notary.append(
        "discord-webhook",
        Some(&head),
        now(),
        cap_marketplace::LogEvent::Yank {
            version: v2_version.clone(),
            reason: "forged".into(),
        },
    ));
    assert!(matches!(
        store.check_log("discord-webhook", &forged_log, &ts),
        Err(VerifyError::BadLogSignature { seq, .. }) if seq == log.len() as u64
    ));
    // A chain rolled back to before the rotation is refused.
    let (_, mut rolled_back) = key_chain(&h).await;
    rolled_back.certificates.truncate(1);
    assert!(matches!(
        store.accept_chain(&rolled_back),
        Err(VerifyError::KeyChain(ChainError::RolledBack { serial: 2 }))
    ));
    h.stop().await;
}

#[tokio::test]
async fn a_rotated_online_key_is_followed_by_a_client_pinning_the_root_on_sqlite() {
    rotation_keeps_old_releases_and_signs_new_ones_with_the_new_key(Harness::sqlite().await).await;
}

#[tokio::test]
async fn a_rotated_online_key_is_followed_by_a_client_pinning_the_root_on_postgres() {
    rotation_keeps_old_releases_and_signs_new_ones_with_the_new_key(
        Harness::start(true, RateLimit::default()).await,
    )
    .await;
}

#[tokio::test]
async fn a_client_that_pinned_the_first_online_key_follows_the_root_it_endorsed() {
    let h = Harness::sqlite().await;
    let first = h.key();
    let (root, chain) = key_chain(&h).await;
    assert_ne!(root, first);
    // A trust store written before roots existed pins the online key.
    let mut store = TrustStore::in_memory(first.clone());
    store
        .accept_chain(&chain)
        .expect("endorsed by the pinned key");
    assert_eq!(store.keys().current(), &first);
    // A chain from another root certifying the same key is not endorsed.
    let impostor = SecretKey::generate().expect("key");
    let mut forged = chain.clone();
    forged.root = impostor.public().clone();
    let mut fresh = TrustStore::in_memory(first);
    assert!(matches!(
        fresh.accept_chain(&forged),
        Err(VerifyError::KeyChain(_))
    ));
    h.stop().await;
}

#[tokio::test]
async fn a_rotation_with_another_root_key_is_refused_and_changes_nothing() {
    let mut h = Harness::sqlite().await;
    h.stop_server().await;
    let before = std::fs::read(h.config.data_dir.join("marketplace-keys.json")).expect("chain");
    let key_before = std::fs::read(h.config.data_dir.join("marketplace.key")).expect("key");
    let other = SecretKey::generate().expect("key");
    let error =
        cap_marketplace_server::server::rotate_online_key(&h.config.data_dir, &other, now())
            .expect_err("another root");
    assert!(
        error.to_string().contains("is not this chain's root"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(h.config.data_dir.join("marketplace-keys.json")).expect("chain"),
        before
    );
    assert_eq!(
        std::fs::read(h.config.data_dir.join("marketplace.key")).expect("key"),
        key_before
    );
    h.stop().await;
}

#[tokio::test]
async fn a_rotation_while_the_marketplace_runs_is_refused() {
    let h = Harness::sqlite().await;
    let root = root_of(&h);
    let error = cap_marketplace_server::server::rotate_online_key(&h.config.data_dir, &root, now())
        .expect_err("the Marketplace runs");
    assert!(
        matches!(error, cap_marketplace_server::server::ServerError::InUse(_)),
        "{error}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_marketplace_whose_key_the_chain_does_not_certify_refuses_to_start() {
    let mut h = Harness::sqlite().await;
    let key_path = h.config.data_dir.join("marketplace.key");
    h.stop_server().await;
    std::fs::remove_file(&key_path).expect("remove");
    SecretKey::generate()
        .expect("key")
        .write_new(&key_path)
        .expect("write");
    let error = MarketplaceServer::bind(h.config.clone())
        .await
        .expect_err("an uncertified key");
    assert!(
        matches!(
            error,
            cap_marketplace_server::server::ServerError::KeyNotCertified { .. }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_rotation_interrupted_before_the_chain_was_written_is_undone_on_start() {
    let mut h = Harness::sqlite().await;
    let key = h.key();
    h.stop_server().await;
    // A crash right after the new key was written.
    SecretKey::generate()
        .expect("key")
        .write_new(&h.config.data_dir.join("marketplace.key.new"))
        .expect("write");
    h.restart().await;
    assert_eq!(h.key(), key);
    assert!(!h.config.data_dir.join("marketplace.key.new").exists());
    h.stop().await;
}
