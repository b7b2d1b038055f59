//! The key check and the one-time sealing of secrets written before
//! sealing existed (see [`crate::secrets`]).
//!
//! A database sealed under a key holds a *key check*: a known text sealed
//! under that key, in `identity_secrets`. [`check_key_and_seal_legacy`]
//! runs whenever a handle with a key connects:
//!
//! - if the key check exists, the key must open it — otherwise the handle
//!   is refused with [`SealError::WrongKey`], before anything could be
//!   read as garbage or sealed under a second key;
//! - if it does not, the database has never been sealed: every TOTP
//!   secret, plugin secret and Marketplace instance token is sealed in
//!   place and the key check is written, in one transaction, with a
//!   `secrets.sealed` event counting the rows (none for a new database,
//!   which has nothing to seal). Whether a row is sealed is
//!   therefore a property of the whole database, never guessed from a
//!   value (a plugin secret may look like anything, a sealed value
//!   included). The key check is inserted first, so of two Panels starting
//!   at once on a legacy database one seals and the other finds its check.
//!
//! The legacy JWT signing secret is not sealed but dropped, by migration
//! 0009: a fresh key replaces it (access tokens last minutes; clients
//! refresh).

use super::domain::{Null, SecretsEvent, SecretsSealed};
use super::events::AppendEvent;
use super::{Actor, Database, DbError, NewEvent, on_pool, query_builder};
use crate::secrets::{Purpose, SealError, Sealer};

/// The row of `identity_secrets` that holds the key check.
const KEY_CHECK_NAME: &str = "secrets.key-check";
/// What the key check opens to.
const KEY_CHECK_TEXT: &str = "ctrl-alt-play sealed secrets v1";

/// Checks the handle's key against the database, sealing a legacy database
/// first.
///
/// # Errors
///
/// [`SealError::WrongKey`] (as [`DbError::Sealed`]), or database errors.
pub(super) async fn check_key_and_seal_legacy(db: &Database) -> Result<(), DbError> {
    let sealer = db.sealer()?;
    for _ in 0..2 {
        let check: Option<String> = on_pool!(db, |pool| {
            let mut qb = query_builder(pool, "SELECT value FROM identity_secrets WHERE name = ");
            qb.push_bind(KEY_CHECK_NAME);
            qb.build_query_scalar::<String>()
                .fetch_optional(pool)
                .await?
        });
        if let Some(check) = check {
            return match sealer.open(&Purpose::key_check(), &check) {
                Ok(text) if text == KEY_CHECK_TEXT => Ok(()),
                _ => Err(SealError::WrongKey.into()),
            };
        }
        match seal_legacy(db, sealer).await {
            Ok(()) => return Ok(()),
            // Another Panel sealed it meanwhile: check its key check.
            Err(DbError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(DbError::Corrupt(
        "the secret key check could not be stored".into(),
    ))
}

/// Seals every legacy secret and stores the key check, in one transaction.
///
/// On the pool itself, not a [`super::Recorder`]: the key check of a new
/// database is written without an event (there is nothing to tell).
async fn seal_legacy(db: &Database, sealer: &Sealer) -> Result<(), DbError> {
    let check = sealer.seal(&Purpose::key_check(), KEY_CHECK_TEXT);
    let (totp, plugin, market) = on_pool!(db, |pool| {
        let mut tx = pool.raw().begin().await?;
        let mut qb = query_builder(pool, "INSERT INTO identity_secrets (name, value) VALUES (");
        qb.separated(", ")
            .push_bind(KEY_CHECK_NAME)
            .push_bind(&check);
        qb.push(")");
        qb.build().execute(&mut *tx).await?;

        let mut qb = query_builder(pool, "SELECT user_id, secret FROM totp_credentials");
        let rows = qb
            .build_query_as::<(String, String)>()
            .fetch_all(&mut *tx)
            .await?;
        for (user_id, secret) in &rows {
            let mut qb = query_builder(pool, "UPDATE totp_credentials SET secret = ");
            qb.push_bind(sealer.seal(&Purpose::totp(user_id), secret))
                .push(" WHERE user_id = ")
                .push_bind(user_id);
            qb.build().execute(&mut *tx).await?;
        }
        let totp = rows.len();

        let mut qb = query_builder(pool, "SELECT plugin_id, name, value FROM plugin_secrets");
        let rows = qb
            .build_query_as::<(String, String, String)>()
            .fetch_all(&mut *tx)
            .await?;
        for (plugin_id, name, value) in &rows {
            let mut qb = query_builder(pool, "UPDATE plugin_secrets SET value = ");
            qb.push_bind(sealer.seal(&Purpose::plugin_secret(plugin_id, name), value))
                .push(" WHERE plugin_id = ")
                .push_bind(plugin_id)
                .push(" AND name = ")
                .push_bind(name);
            qb.build().execute(&mut *tx).await?;
        }
        let plugin = rows.len();

        let mut qb = query_builder(pool, "SELECT marketplace, token FROM marketplace_instance");
        let rows = qb
            .build_query_as::<(String, String)>()
            .fetch_all(&mut *tx)
            .await?;
        for (marketplace, token) in &rows {
            let mut qb = query_builder(pool, "UPDATE marketplace_instance SET token = ");
            qb.push_bind(sealer.seal(&Purpose::marketplace_token(marketplace), token))
                .push(" WHERE marketplace = ")
                .push_bind(marketplace);
            qb.build().execute(&mut *tx).await?;
        }
        let market = rows.len();

        if totp + plugin + market > 0 {
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            let event = NewEvent::new(SecretsEvent::Sealed {
                subject: Null,
                data: SecretsSealed {
                    totp_secrets: count(totp),
                    plugin_secrets: count(plugin),
                    marketplace_tokens: count(market),
                },
            })
            .actor(Actor::system());
            tx.append_event(&event).await?;
        }
        tx.commit().await?;
        (totp, plugin, market)
    });
    if totp + plugin + market > 0 {
        tracing::info!(
            totp_secrets = totp,
            plugin_secrets = plugin,
            marketplace_tokens = market,
            "sealed the secrets stored before sealing existed"
        );
    }
    Ok(())
}
