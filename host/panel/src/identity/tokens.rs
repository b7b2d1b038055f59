//! Sessions, refresh tokens and API keys.
//!
//! - **Access tokens** are HS256 JWTs (`sub` = user id, `sid` = session id,
//!   `iat`, `exp`), valid for [`ACCESS_TOKEN_TTL`]. Validation accepts
//!   HS256 only, so `alg: none` and algorithm-confusion tokens fail, and
//!   requires `exp`, `sub` and `sid`, and a known key id (`kid`). The
//!   session is checked on every request, so logging out ends access
//!   tokens too.
//! - **Signing keys rotate** (see [`JwtKeys`]). Each key has a random key
//!   id, carried in the `kid` header of the tokens it signs, and is stored
//!   sealed in `jwt_keys` ([`crate::secrets`]). A serving Panel creates a
//!   new key when the newest is [`JWT_KEY_LIFETIME`] old, and
//!   `cap panel rotate-jwt-key` creates one at once. A new key is
//!   *published* for [`JWT_KEY_PUBLICATION`] before it signs, so every
//!   Panel process sharing the database has loaded it (they reload every
//!   [`JWT_KEY_RELOAD_INTERVAL`]) before the first token signed with it
//!   arrives; all switch at the same moment. The key it supersedes is still
//!   accepted for [`JWT_KEY_ROLLOVER`] (longer than an access token lives),
//!   then refused and deleted at the next rotation. A token with no `kid`,
//!   or one the ring does not know, is refused.
//! - **Refresh tokens** (`capr_` + 64 hex digits) are stored as SHA-256
//!   digests, each belonging to a session (the token *family*). Using one
//!   marks it used and issues its successor; presenting a used one again is
//!   reuse — a stolen token racing its owner — and revokes the whole
//!   session.
//! - **API keys** (`cap_` + 64 hex digits; the first 12 characters are kept
//!   as the identifiable prefix) are stored as SHA-256 digests, shown once,
//!   carry scopes (permission strings), and are revocable. A key acts with
//!   its scopes intersected with its owner's current permissions.
//!
//! A SHA-256 digest is enough for these secrets (unlike passwords): they
//! are 256 random bits, so there is nothing to brute-force.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::db::domain::{
    ApiKeyCreated, ApiKeyEvent, ApiKeyRef, Empty, JwtKeyEvent, JwtKeyId, SessionCreated,
    SessionEvent, SessionRef, UserId,
};
use crate::db::{
    Actor, Database, DbError, NewEvent, Unrecorded, from_micros, now, on_pool, query_builder,
    to_micros,
};
use crate::secrets::Purpose;

use super::users::new_id;

/// How long an access token is valid.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token is valid.
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The prefix of every API key.
pub const API_KEY_PREFIX: &str = "cap_";
/// The prefix of every refresh token.
pub const REFRESH_TOKEN_PREFIX: &str = "capr_";
/// How long a JWT signing key signs before a serving Panel rotates it.
pub const JWT_KEY_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a new signing key is known before it signs.
pub const JWT_KEY_PUBLICATION: Duration = Duration::from_secs(2 * 60);
/// How often a serving Panel reloads the signing keys (and rotates when
/// due); at most half of [`JWT_KEY_PUBLICATION`].
pub const JWT_KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// How long a superseded signing key is still accepted: the life of an
/// access token it signed just before, with a margin for clock skew.
pub const JWT_KEY_ROLLOVER: Duration = Duration::from_secs(30 * 60);

/// A fresh random secret: `prefix` + 64 hex digits.
pub(crate) fn random_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}

/// The SHA-256 hex digest of `secret`, as stored.
pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

/// One signing key of the ring.
struct RingKey {
    kid: String,
    created_at: OffsetDateTime,
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
}

/// The signing keys, oldest first.
#[derive(Default)]
struct Ring {
    keys: Vec<RingKey>,
}

impl Ring {
    /// When `key` starts signing.
    fn signs_from(key: &RingKey) -> OffsetDateTime {
        key.created_at + JWT_KEY_PUBLICATION
    }

    /// The key that signs at `now`: the newest published one, or the oldest
    /// if none is published yet (the first key ever signs at once).
    fn signing(&self, now: OffsetDateTime) -> Option<&RingKey> {
        self.keys
            .iter()
            .rev()
            .find(|k| Ring::signs_from(k) <= now)
            .or(self.keys.first())
    }

    /// Index of the last key accepted at `now`'s cut-off: keys before it
    /// were superseded more than [`JWT_KEY_ROLLOVER`] ago.
    fn first_accepted(&self, now: OffsetDateTime) -> usize {
        self.keys
            .windows(2)
            .take_while(|pair| Ring::signs_from(&pair[1]) + JWT_KEY_ROLLOVER <= now)
            .count()
    }

    /// The key `kid`, if it is accepted at `now`.
    fn accepted(&self, kid: &str, now: OffsetDateTime) -> Option<&RingKey> {
        self.keys[self.first_accepted(now)..]
            .iter()
            .find(|k| k.kid == kid)
    }
}

/// Signs and verifies access tokens with a ring of HS256 keys identified by
/// their `kid` (see the module docs for rotation). Cheap to clone; clones
/// share the ring, which [`JwtKeys::reload`] replaces.
#[derive(Clone)]
pub struct JwtKeys {
    ring: Arc<RwLock<Ring>>,
    validation: jsonwebtoken::Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").finish_non_exhaustive()
    }
}

/// A refusal for a token whose `kid` is missing or unknown.
fn unknown_kid() -> jsonwebtoken::errors::Error {
    jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()
}

impl JwtKeys {
    fn empty() -> JwtKeys {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.algorithms = vec![jsonwebtoken::Algorithm::HS256];
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys {
            ring: Arc::default(),
            validation,
        }
    }

    /// The ring stored in `db`, with a first key created if there is none.
    ///
    /// # Errors
    ///
    /// Database errors, [`DbError::Sealed`] when a key does not unseal.
    pub async fn load(db: &Database) -> Result<JwtKeys, DbError> {
        let keys = JwtKeys::empty();
        keys.reload(db).await?;
        if keys.read().keys.is_empty() {
            insert_jwt_key(db, &Actor::system()).await?;
            keys.reload(db).await?;
        }
        Ok(keys)
    }

    /// Replaces the ring with the keys stored in `db`.
    ///
    /// # Errors
    ///
    /// Database errors, [`DbError::Sealed`] when a key does not unseal.
    pub async fn reload(&self, db: &Database) -> Result<(), DbError> {
        let rows: Vec<(String, String, i64)> = on_pool!(db, |pool| {
            let mut qb = query_builder(
                pool,
                "SELECT kid, secret, created_at FROM jwt_keys ORDER BY created_at, kid",
            );
            qb.build_query_as::<(String, String, i64)>()
                .fetch_all(pool)
                .await?
        });
        let sealer = db.sealer()?;
        let mut ring = Ring::default();
        for (kid, sealed, created_at) in rows {
            let secret = hex::decode(sealer.open(&Purpose::jwt_key(&kid), &sealed)?)
                .map_err(|e| DbError::Corrupt(format!("JWT key {kid}: {e}")))?;
            ring.keys.push(RingKey {
                kid,
                created_at: from_micros(created_at)?,
                encoding: jsonwebtoken::EncodingKey::from_secret(&secret),
                decoding: jsonwebtoken::DecodingKey::from_secret(&secret),
            });
        }
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = ring;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key id that signs now.
    pub fn current_kid(&self) -> Option<String> {
        self.read().signing(now()).map(|k| k.kid.clone())
    }

    /// When the newest key was created.
    fn newest_created(&self) -> Option<OffsetDateTime> {
        self.read().keys.last().map(|k| k.created_at)
    }

    /// Signs `claims` with the current key, naming it in the `kid` header.
    ///
    /// # Errors
    ///
    /// The signer's error (not expected with HS256), or
    /// [`InvalidKeyFormat`](jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)
    /// when the ring is empty.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let ring = self.read();
        let key = ring.signing(now()).ok_or_else(unknown_kid)?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
    }

    /// Verifies `token`'s key id, algorithm, signature and expiry.
    ///
    /// # Errors
    ///
    /// Why the token is refused; a missing or unknown `kid`, or one
    /// superseded more than [`JWT_KEY_ROLLOVER`] ago, is
    /// [`InvalidKeyFormat`](jsonwebtoken::errors::ErrorKind::InvalidKeyFormat).
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let now = now();
        let ring = self.read();
        // Nearly every token is signed by the key that signs now: verify
        // with it and check that the header names it, reading the token
        // once (measured in BENCHMARKS.md: a separate header read cost
        // about 9,000 instructions a request). Any other token (signed by
        // an older key still in its rollover window, or refused) has its
        // header read for the `kid`, which must name an accepted key.
        if let Some(key) = ring.signing(now)
            && let Ok(data) = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            && data.header.kid.as_deref() == Some(key.kid.as_str())
        {
            return Ok(data.claims);
        }
        let header = jsonwebtoken::decode_header(token)?;
        let kid = header.kid.ok_or_else(unknown_kid)?;
        let key = ring.accepted(&kid, now).ok_or_else(unknown_kid)?;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation).map(|d| d.claims)
    }

    /// Reloads the ring and, when the newest key is [`JWT_KEY_LIFETIME`]
    /// old, rotates (appending `jwt-key.rotated`) and reloads again. Run
    /// every [`JWT_KEY_RELOAD_INTERVAL`] by a serving Panel.
    ///
    /// # Errors
    ///
    /// As for [`JwtKeys::reload`] and [`rotate_jwt_key`].
    pub async fn upkeep(&self, db: &Database) -> Result<(), DbError> {
        self.reload(db).await?;
        let due = self
            .newest_created()
            .is_none_or(|created| created + JWT_KEY_LIFETIME <= now());
        if due {
            rotate_jwt_key(db, &Actor::system()).await?;
            self.reload(db).await?;
        }
        Ok(())
    }
}

/// Stores a fresh signing key, sealed; returns its key id.
async fn insert_jwt_key(db: &Database, actor: &Actor) -> Result<String, DbError> {
    let kid = hex::encode(rand::random::<[u8; 8]>());
    let secret: [u8; 32] = rand::random();
    let sealed = db
        .sealer()?
        .seal(&Purpose::jwt_key(&kid), &hex::encode(secret));
    let at = now();
    let event = NewEvent::new(JwtKeyEvent::Created {
        subject: JwtKeyId::new(&kid),
        data: Empty {},
    })
    .actor(actor.clone())
    .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO jwt_keys (kid, secret, created_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&kid)
            .push_bind(&sealed)
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(kid)
}

/// Rotates the JWT signing key: stores a new key (it signs after
/// [`JWT_KEY_PUBLICATION`]) and deletes the keys no longer accepted.
/// Appends `jwt-key.created`. Returns the new key id.
///
/// # Errors
///
/// Database errors; [`DbError::Sealed`] without the secret key.
pub async fn rotate_jwt_key(db: &Database, actor: &Actor) -> Result<String, DbError> {
    let kid = insert_jwt_key(db, actor).await?;
    let ring = JwtKeys::empty();
    ring.reload(db).await?;
    let expired: Vec<String> = {
        let ring = ring.read();
        ring.keys[..ring.first_accepted(now())]
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    };
    for old in expired {
        on_pool!(db, |pool| {
            let mut qb = query_builder(pool, "DELETE FROM jwt_keys WHERE kid = ");
            qb.push_bind(&old);
            qb.build()
                .execute(pool.unrecorded(Unrecorded::Credentials))
                .await?;
        });
    }
    Ok(kid)
}

/// A freshly issued refresh token and the session it belongs to.
#[derive(Debug, Clone)]
pub struct IssuedRefresh {
    /// The session (token family) id.
    pub session_id: String,
    /// The refresh token itself; only its digest is stored.
    pub token: String,
}

/// Starts a session for `user_id` logged in through `provider_id`, with its
/// first refresh token; appends `session.created`.
///
/// # Errors
///
/// Database errors.
pub async fn create_session(
    db: &Database,
    user_id: &str,
    provider_id: &str,
    actor: &Actor,
) -> Result<IssuedRefresh, DbError> {
    let at = now();
    let session_id = new_id("ses");
    let token = random_secret(REFRESH_TOKEN_PREFIX);
    let event = NewEvent::new(SessionEvent::Created {
        subject: UserId::new(user_id),
        data: SessionCreated {
            session: session_id.clone(),
            provider: provider_id.to_owned(),
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO sessions (id, user_id, provider_id, created_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&session_id)
            .push_bind(user_id)
            .push_bind(provider_id)
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(pool, "");
        push_refresh_insert(&mut qb, &session_id, digest(&token), at);
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(IssuedRefresh { session_id, token })
}

/// Writes the `INSERT` of a refresh token's digest.
fn push_refresh_insert<'a, DB>(
    qb: &mut sqlx::QueryBuilder<DB>,
    session_id: &'a str,
    token_hash: String,
    at: OffsetDateTime,
) where
    DB: sqlx::Database,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let expires = at + REFRESH_TOKEN_TTL;
    qb.push("INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES (");
    qb.separated(", ")
        .push_bind(token_hash)
        .push_bind(session_id)
        .push_bind(to_micros(at))
        .push_bind(to_micros(expires));
    qb.push(")");
}

/// Why a refresh token was refused.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, or its session has ended.
    #[error("the refresh token is invalid or expired")]
    Invalid,
    /// It was used before: the session has been revoked.
    #[error("the refresh token was used before; the session is revoked")]
    Reused,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    session_id: String,
    user_id: String,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// Rotates `token`: marks it used and issues its successor in the same
/// session. Reuse of a used token revokes the session (appending
/// `session.reuse-detected`).
///
/// # Errors
///
/// [`RefreshError`].
pub async fn rotate_refresh(
    db: &Database,
    token: &str,
    actor: &Actor,
) -> Result<(String, IssuedRefresh), RefreshError> {
    let hash = digest(token);
    let at = now();
    let next = random_secret(REFRESH_TOKEN_PREFIX);
    enum Outcome {
        Rotated(String, String),
        Reused(String, String),
        Invalid,
    }
    let outcome = on_pool!(db, |pool| {
        let mut tx = pool
            .begin_unrecorded(Unrecorded::Credentials)
            .await
            .map_err(DbError::from)?;
        let mut qb = query_builder(
            pool,
            "SELECT r.session_id, s.user_id, r.expires_at, r.used_at, s.revoked_at \
             FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = ",
        );
        qb.push_bind(&hash);
        let row: Option<RefreshRow> = qb
            .build_query_as::<RefreshRow>()
            .fetch_optional(&mut *tx)
            .await
            .map_err(DbError::from)?;
        match row {
            None => Outcome::Invalid,
            Some(row) if row.revoked_at.is_some() || row.expires_at <= to_micros(at) => {
                Outcome::Invalid
            }
            Some(row) => {
                let mut claimed = false;
                if row.used_at.is_none() {
                    let mut qb = query_builder(pool, "UPDATE refresh_tokens SET used_at = ");
                    qb.push_bind(to_micros(at))
                        .push(" WHERE token_hash = ")
                        .push_bind(&hash)
                        .push(" AND used_at IS NULL");
                    claimed = qb
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err(DbError::from)?
                        .rows_affected()
                        == 1;
                }
                if claimed {
                    let mut qb = query_builder(pool, "");
                    push_refresh_insert(&mut qb, &row.session_id, digest(&next), at);
                    qb.build().execute(&mut *tx).await.map_err(DbError::from)?;
                    tx.commit().await?;
                    Outcome::Rotated(row.user_id, row.session_id)
                } else {
                    Outcome::Reused(row.user_id, row.session_id)
                }
            }
        }
    });
    match outcome {
        Outcome::Rotated(user_id, session_id) => Ok((
            user_id,
            IssuedRefresh {
                session_id,
                token: next,
            },
        )),
        Outcome::Reused(user_id, session_id) => {
            revoke_session(db, &user_id, &session_id, SessionEnd::ReuseDetected, actor).await?;
            Err(RefreshError::Reused)
        }
        Outcome::Invalid => Err(RefreshError::Invalid),
    }
}

/// Why a session ends: the event [`revoke_session`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// A logout (`session.revoked`).
    Logout,
    /// A used refresh token came back (`session.reuse-detected`).
    ReuseDetected,
    /// Its absolute lifetime is over (`session.expired`).
    Expired,
}

impl SessionEnd {
    fn event(self, user_id: &str, session_id: &str) -> SessionEvent {
        let (subject, data) = (
            UserId::new(user_id),
            SessionRef {
                session: session_id.to_owned(),
            },
        );
        match self {
            SessionEnd::Logout => SessionEvent::Revoked { subject, data },
            SessionEnd::ReuseDetected => SessionEvent::ReuseDetected { subject, data },
            SessionEnd::Expired => SessionEvent::Expired { subject, data },
        }
    }
}

/// Ends a session, recording why (`why`). Returns whether it was still
/// active.
///
/// # Errors
///
/// Database errors.
pub async fn revoke_session(
    db: &Database,
    user_id: &str,
    session_id: &str,
    why: SessionEnd,
    actor: &Actor,
) -> Result<bool, DbError> {
    let at = now();
    let event = NewEvent::new(why.event(user_id, session_id))
        .actor(actor.clone())
        .occurred_at(at);
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE sessions SET revoked_at = ");
        qb.push_bind(to_micros(at))
            .push(" WHERE id = ")
            .push_bind(session_id)
            .push(" AND revoked_at IS NULL");
        let revoked = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if revoked {
            tx.record(&event).await?;
        }
        tx.commit().await?;
        revoked
    }))
}

/// The session of a refresh token, whoever holds it (for logout by refresh
/// token): `(user id, session id)`.
///
/// # Errors
///
/// Database errors.
pub async fn session_of_refresh(
    db: &Database,
    token: &str,
) -> Result<Option<(String, String)>, DbError> {
    let hash = digest(token);
    Ok(on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT s.user_id, s.id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = ",
        );
        qb.push_bind(&hash);
        qb.build_query_as::<(String, String)>()
            .fetch_optional(pool)
            .await?
    }))
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// A name for people.
    pub name: String,
    /// The first characters of the key, to recognize it.
    pub prefix: String,
    /// The permissions it may use (stored names of
    /// [retired](super::permissions::RETIRED) ones are dropped on load).
    pub scopes: Vec<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was last used.
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    scopes: Json<Vec<String>>,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = DbError;

    fn try_from(row: ApiKeyRow) -> Result<ApiKey, DbError> {
        Ok(ApiKey {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            prefix: row.prefix,
            scopes: super::permissions::drop_retired(row.scopes.0, "api_keys.scopes"),
            created_at: from_micros(row.created_at)?,
            last_used_at: row.last_used_at.map(from_micros).transpose()?,
            revoked_at: row.revoked_at.map(from_micros).transpose()?,
        })
    }
}

const API_KEY_COLUMNS: &str =
    "SELECT id, user_id, name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys";

/// Creates an API key; returns it with its secret, which is not stored.
/// Appends `api-key.created`.
///
/// # Errors
///
/// Database errors.
pub async fn create_api_key(
    db: &Database,
    user_id: &str,
    name: &str,
    scopes: &[String],
    actor: &Actor,
) -> Result<(ApiKey, String), DbError> {
    let at = now();
    let id = new_id("key");
    let secret = random_secret(API_KEY_PREFIX);
    let prefix = secret[..12].to_owned();
    let event = NewEvent::new(ApiKeyEvent::Created {
        subject: UserId::new(user_id),
        data: ApiKeyCreated {
            key: id.clone(),
            name: name.to_owned(),
            prefix: prefix.clone(),
            scopes: scopes.to_vec(),
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scopes, created_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&id)
            .push_bind(user_id)
            .push_bind(name)
            .push_bind(&prefix)
            .push_bind(digest(&secret))
            .push_bind(Json(scopes))
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    let key = ApiKey {
        id,
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        prefix,
        scopes: scopes.to_vec(),
        created_at: at,
        last_used_at: None,
        revoked_at: None,
    };
    Ok((key, secret))
}

/// `user_id`'s API keys, newest first.
///
/// # Errors
///
/// Database errors.
pub async fn list_api_keys(db: &Database, user_id: &str) -> Result<Vec<ApiKey>, DbError> {
    let rows: Vec<ApiKeyRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, API_KEY_COLUMNS);
        qb.push(" WHERE user_id = ")
            .push_bind(user_id)
            .push(" ORDER BY created_at DESC, id");
        qb.build_query_as::<ApiKeyRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(ApiKey::try_from).collect()
}

/// Revokes `user_id`'s key `key_id`, appending `api-key.revoked`; returns
/// whether it existed and was active.
///
/// # Errors
///
/// Database errors.
pub async fn revoke_api_key(
    db: &Database,
    user_id: &str,
    key_id: &str,
    actor: &Actor,
) -> Result<bool, DbError> {
    let at = now();
    let event = NewEvent::new(ApiKeyEvent::Revoked {
        subject: UserId::new(user_id),
        data: ApiKeyRef {
            key: key_id.to_owned(),
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE api_keys SET revoked_at = ");
        qb.push_bind(to_micros(at))
            .push(" WHERE id = ")
            .push_bind(key_id)
            .push(" AND user_id = ")
            .push_bind(user_id)
            .push(" AND revoked_at IS NULL");
        let revoked = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if revoked {
            tx.record(&event).await?;
        }
        tx.commit().await?;
        revoked
    }))
}

/// The active key whose secret is `secret`, recording its use.
///
/// # Errors
///
/// Database errors.
pub async fn use_api_key(db: &Database, secret: &str) -> Result<Option<ApiKey>, DbError> {
    let hash = digest(secret);
    let row: Option<ApiKeyRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, API_KEY_COLUMNS);
        qb.push(" WHERE key_hash = ")
            .push_bind(&hash)
            .push(" AND revoked_at IS NULL");
        qb.build_query_as::<ApiKeyRow>()
            .fetch_optional(pool)
            .await?
    });
    let Some(row) = row else {
        return Ok(None);
    };
    let key = ApiKey::try_from(row)?;
    let at = to_micros(now());
    on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "UPDATE api_keys SET last_used_at = ");
        qb.push_bind(at).push(" WHERE id = ").push_bind(&key.id);
        qb.build()
            .execute(pool.unrecorded(Unrecorded::Credentials))
            .await?;
    });
    Ok(Some(key))
}
