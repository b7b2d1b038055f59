//! Secrets at rest: a private data directory, database and key file;
//! TOTP secrets, plugin secrets and the Marketplace instance token sealed
//! with a key kept outside the database (and legacy rows sealed on start);
//! JWT signing keys with key ids that rotate with a rollover window.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use cap_panel::db::{Actor, Backend, Database, DatabaseOptions, DbError};
use cap_panel::identity::tokens::{JWT_KEY_PUBLICATION, JWT_KEY_ROLLOVER, rotate_jwt_key};
use cap_panel::identity::{SecondFactor, totp, users};
use cap_panel::plugins::DbConfigStore;
use cap_panel::secrets::{PermissionError, Purpose, SealError, Sealer, SecretKey, SecretKeyError};
use cap_panel::{Panel, StartError};
use cap_runtime::capabilities::config::ConfigStore as _;
use serde_json::{Value, json};

use crate::identity::{ADMIN_PASSWORD, IdentityPanel, token};
use crate::plugins::{PLUGIN_ADMIN, package, upload};
use crate::support::{
    TestDb, cap_binary, client, code_at, expect_problem, on_every_database, start_panel_with,
};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The whole error chain, `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

on_every_database! {
    async fn a_new_data_directory_is_private_and_so_are_the_key_and_database_files(db: &TestDb) {
        let mut config = db.config();
        config.data_dir = db.data_dir().join("fresh");
        let panel = start_panel_with(config.clone()).await;
        panel.stop().await.expect("stops");
        assert_eq!(mode(&config.data_dir), 0o700);
        assert_eq!(mode(&config.data_dir.join("secret.key")), 0o600);
        if db.backend() == Backend::Sqlite {
            assert_eq!(mode(&config.data_dir.join("panel.db")), 0o600);
        }
    }
}

/// Asserts that `error` names the `chmod` that fixes `path`.
fn assert_names_the_fix(error: &StartError, chmod: &str, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&format!("`chmod {chmod} {}`", path.display())),
        "{message}"
    );
}

/// Starts and stops a Panel on `db`, gives `file` of its data directory
/// `mode`, and returns why the next start is refused.
async fn refusal_after_chmod(db: &TestDb, file: &str, mode: u32) -> (PathBuf, StartError) {
    start_panel_with(db.config())
        .await
        .stop()
        .await
        .expect("stops");
    let path = db.data_dir().join(file);
    set_mode(&path, mode);
    let error = Panel::bind(db.config()).await.expect_err("refused");
    (path, error)
}

#[tokio::test]
async fn a_panel_refuses_a_data_directory_that_others_can_read_and_names_the_fix() {
    let db = TestDb::sqlite().await;
    set_mode(db.data_dir(), 0o755);
    let error = Panel::bind(db.config()).await.expect_err("refused");
    assert!(
        matches!(
            error,
            StartError::Permissions(PermissionError::TooOpen { mode: 0o755, .. })
        ),
        "{error:?}"
    );
    assert_names_the_fix(&error, "700", db.data_dir());
    // Search alone (what `cap up` gives its servers' user) reads nothing
    // and is accepted.
    set_mode(db.data_dir(), 0o711);
    start_panel_with(db.config())
        .await
        .stop()
        .await
        .expect("stops");
    set_mode(db.data_dir(), 0o700);
}

#[tokio::test]
async fn a_panel_refuses_a_database_file_that_others_can_read_and_names_the_fix() {
    let db = TestDb::sqlite().await;
    let (file, error) = refusal_after_chmod(&db, "panel.db", 0o644).await;
    assert!(
        matches!(
            error,
            StartError::Permissions(PermissionError::TooOpen { mode: 0o644, .. })
        ),
        "{error:?}"
    );
    assert_names_the_fix(&error, "600", &file);
}

#[tokio::test]
async fn a_panel_refuses_a_key_file_that_others_can_read() {
    let db = TestDb::sqlite().await;
    let (file, error) = refusal_after_chmod(&db, "secret.key", 0o640).await;
    assert!(
        matches!(
            error,
            StartError::SecretKey(SecretKeyError::Permissions(PermissionError::TooOpen { .. }))
        ),
        "{error:?}"
    );
    assert_names_the_fix(&error, "600", &file);
}

on_every_database! {
    async fn plugin_and_totp_secrets_are_sealed_at_rest_and_open_only_with_the_same_key(db: &TestDb) {
        let user_id = db.create_users(&["alice"]).await.remove(0);
        let panel = crate::plugins::start(db).await;
        assert_eq!(upload(&panel, package("discord-webhook")).await.status(), 201);
        let secret = "https://discord.com/api/webhooks/1/very-secret";
        let response = client()
            .put(panel.url("/api/v1/plugins/discord-webhook/secrets/webhook-url"))
            .bearer_auth(PLUGIN_ADMIN)
            .json(&json!({ "value": secret }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204);
        let user = users::find_user(panel.state().db(), &user_id)
            .await
            .expect("read")
            .expect("alice exists");
        let enrollment = totp::begin_enrollment(panel.state().db(), &user, &Actor::system())
            .await
            .expect("enrollment starts");
        panel.stop().await.expect("stops");

        // What a copy of the database shows: neither secret.
        for stored in db.fetch_texts("SELECT value FROM plugin_secrets").await {
            assert!(!stored.contains("very-secret"), "{stored}");
        }
        let totp_rows = db.fetch_texts("SELECT secret FROM totp_credentials").await;
        assert_eq!(totp_rows.len(), 1);
        assert!(!totp_rows[0].contains(&enrollment.secret), "{}", totp_rows[0]);

        // The same key (the key file in the data directory) reads them.
        let panel = crate::plugins::start(db).await;
        let store = DbConfigStore::new(panel.state().db().clone());
        assert_eq!(
            store.get_secret("discord-webhook", "webhook-url").await.expect("read"),
            Some(secret.to_owned())
        );
        totp::confirm_enrollment(
            panel.state().db(),
            &user_id,
            &code_at(&enrollment.secret, 0),
            &Actor::system(),
        )
        .await
        .expect("the sealed TOTP secret opens after a restart");
        panel.stop().await.expect("stops");

        // Another key is refused at start, clearly, before anything is read.
        let mut config = db.config();
        config.secret_key = Some(SecretKey::generate());
        let error = Panel::bind(config).await.expect_err("another key is refused");
        assert!(
            matches!(error, StartError::WrongSecretKey { source: SealError::WrongKey, .. }),
            "{error:?}"
        );
        assert!(chain(&error).contains("the secret key does not match"), "{}", chain(&error));
    }
}

on_every_database! {
    async fn secrets_written_before_sealing_are_sealed_on_the_first_start_with_a_key(db: &TestDb) {
        // A database as the previous release left it: plaintext secrets.
        let user_id = db.create_users(&["legacy"]).await.remove(0);
        let totp_secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        db.execute_raw(&format!(
            "INSERT INTO totp_credentials (user_id, secret, created_at, enabled_at) VALUES ('{user_id}', '{totp_secret}', 1, 1)"
        ))
        .await
        .expect("legacy TOTP row");
        db.execute_raw(
            "INSERT INTO plugin_secrets (plugin_id, name, value) VALUES ('legacy-plugin', 'token', 'plain-legacy-secret')",
        )
        .await
        .expect("legacy plugin secret");
        let market = "https://market.example";
        db.execute_raw(&format!(
            "INSERT INTO marketplace_instance (marketplace, instance_id, token, registered_at) VALUES ('{market}', 'ins_1', 'plain-instance-token', 1)"
        ))
        .await
        .expect("legacy instance token");

        let key = SecretKey::generate();
        let options = DatabaseOptions::new(db.location().clone())
            .max_connections(2)
            .secret_key(key.clone());
        let database = Database::connect(&options).await.expect("connects and seals");
        database.close().await;

        assert!(!db.fetch_texts("SELECT secret FROM totp_credentials").await[0].contains(totp_secret));
        assert!(!db.fetch_texts("SELECT value FROM plugin_secrets").await[0].contains("plain-legacy-secret"));
        let token = db.fetch_texts("SELECT token FROM marketplace_instance").await.remove(0);
        assert!(!token.contains("plain-instance-token"), "{token}");
        assert_eq!(
            Sealer::new(&key)
                .open(&Purpose::marketplace_token(market), &token)
                .expect("sealed for its Marketplace"),
            "plain-instance-token"
        );

        // Connecting again neither seals twice nor loses anything.
        let database = Database::connect(&options).await.expect("connects again");
        let store = DbConfigStore::new(database.clone());
        assert_eq!(
            store.get_secret("legacy-plugin", "token").await.expect("read"),
            Some("plain-legacy-secret".to_owned())
        );
        totp::verify(
            &database,
            &user_id,
            SecondFactor::Code(&code_at(totp_secret, 0)),
            &Actor::system(),
        )
        .await
        .expect("the sealed legacy TOTP secret verifies codes");
        database.close().await;

        let wrong = DatabaseOptions::new(db.location().clone()).secret_key(SecretKey::generate());
        assert!(matches!(
            Database::connect(&wrong).await,
            Err(DbError::Sealed(SealError::WrongKey))
        ));
    }
}

/// The `kid` in the header of `jwt`.
fn kid_of(jwt: &str) -> Option<String> {
    let header = jwt.split('.').next().expect("a header");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64"),
    )
    .expect("JSON");
    header["kid"].as_str().map(str::to_owned)
}

/// Moves the creation of every key `by` into the past, as if that time had
/// passed.
async fn age_keys(db: &TestDb, by: std::time::Duration) {
    db.execute_raw(&format!(
        "UPDATE jwt_keys SET created_at = created_at - {}",
        by.as_micros()
    ))
    .await
    .expect("aging the keys");
}

on_every_database! {
    async fn a_rotated_jwt_key_signs_after_publication_and_the_previous_one_is_accepted_for_the_rollover(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let identity = p.panel.state().identity().expect("identity is on").clone();
        let database = p.panel.state().db().clone();
        let old = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let old_kid = kid_of(&old).expect("access tokens name their key");
        assert_eq!(identity.keys().current_kid(), Some(old_kid.clone()));
        for stored in db.fetch_texts("SELECT secret FROM jwt_keys").await {
            assert!(stored.starts_with("v1."), "the JWT key is sealed: {stored}");
        }

        let new_kid = rotate_jwt_key(&database, &Actor::system()).await.expect("rotates");
        assert_ne!(new_kid, old_kid);
        identity.keys().reload(&database).await.expect("reloads");
        // Published, not signing yet: other processes load it first.
        assert_eq!(identity.keys().current_kid(), Some(old_kid.clone()));

        age_keys(db, JWT_KEY_PUBLICATION).await;
        identity.keys().reload(&database).await.expect("reloads");
        let fresh = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        assert_eq!(kid_of(&fresh), Some(new_kid.clone()));
        assert_eq!(p.get("/api/v1/auth/me", &fresh).await.status(), 200);
        // The previous key is still accepted during the rollover window.
        assert_eq!(p.get("/api/v1/auth/me", &old).await.status(), 200);

        age_keys(db, JWT_KEY_ROLLOVER).await;
        identity.keys().reload(&database).await.expect("reloads");
        expect_problem(p.get("/api/v1/auth/me", &old).await, 401, "unauthenticated").await;
        assert_eq!(p.get("/api/v1/auth/me", &fresh).await.status(), 200);

        // The next rotation deletes the key that is no longer accepted.
        rotate_jwt_key(&database, &Actor::system()).await.expect("rotates");
        let kids = db.fetch_texts("SELECT kid FROM jwt_keys").await;
        assert!(!kids.contains(&old_kid), "{kids:?}");
        assert!(kids.contains(&new_kid), "{kids:?}");
    }
}

on_every_database! {
    async fn access_tokens_without_a_key_id_or_with_an_unknown_one_are_refused(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let access = token(&p.login_ok("admin", ADMIN_PASSWORD).await, "access_token");
        let kid = kid_of(&access).expect("a kid");
        // The signing key itself, unsealed with the Panel's key file: even
        // with it, a token must name a key the Panel knows.
        let key = SecretKey::load_or_create(db.data_dir()).expect("the Panel's key");
        let stored = db
            .fetch_texts(&format!("SELECT secret FROM jwt_keys WHERE kid = '{kid}'"))
            .await
            .remove(0);
        let secret = hex::decode(
            Sealer::new(&key)
                .open(&Purpose::jwt_key(&kid), &stored)
                .expect("opens with the Panel's key"),
        )
        .expect("hex");
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(access.split('.').nth(1).expect("claims"))
                .expect("base64"),
        )
        .expect("JSON");
        let sign = |kid: Option<&str>| {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = kid.map(str::to_owned);
            jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(&secret),
            )
            .expect("signs")
        };
        expect_problem(p.get("/api/v1/auth/me", &sign(None)).await, 401, "unauthenticated").await;
        expect_problem(
            p.get("/api/v1/auth/me", &sign(Some("0123456789abcdef"))).await,
            401,
            "unauthenticated",
        )
        .await;
        // The same claims and key with the right kid pass: the refusals
        // above are the key id's doing.
        assert_eq!(p.get("/api/v1/auth/me", &sign(Some(&kid))).await.status(), 200);
    }
}

on_every_database! {
    async fn the_rotate_jwt_key_command_stores_a_key_the_running_panel_loads_and_never_creates_a_secret_key(db: &TestDb) {
        let p = IdentityPanel::start(db).await;
        let identity = p.panel.state().identity().expect("identity is on").clone();
        let before = identity.keys().current_kid().expect("a signing key");
        let config = db.config();
        let rotate = |data: &Path| {
            let mut command = tokio::process::Command::new(cap_binary());
            command.args(["panel", "rotate-jwt-key", "--data"]).arg(data);
            if let Some(url) = &config.database_url {
                command.args(["--database-url", url.as_str()]);
            }
            command.env_clear().env("CAP_LOG", "warn").output()
        };
        let output = rotate(&config.data_dir).await.expect("cap panel rotate-jwt-key runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        let kid = stdout
            .trim()
            .strip_prefix("created JWT signing key ")
            .unwrap_or_else(|| panic!("{stdout}"))
            .to_owned();
        assert!(db.fetch_texts("SELECT kid FROM jwt_keys").await.contains(&kid));
        identity.keys().reload(p.panel.state().db()).await.expect("reloads");
        assert_eq!(identity.keys().current_kid(), Some(before), "published first, not signing yet");

        // Without the key, the command refuses rather than create a new one
        // that would not open the database's secrets.
        let empty = tempfile::tempdir().expect("tempdir");
        let output = rotate(empty.path()).await.expect("cap panel rotate-jwt-key runs");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("no secret key"), "{stderr}");
        assert!(!empty.path().join("secret.key").exists());
    }
}
