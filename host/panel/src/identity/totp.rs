//! TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps,
//! one step of clock skew either way) and the login challenges that ask
//! for it.
//!
//! # Lifecycle
//!
//! 1. [`begin_enrollment`] stores a fresh 160-bit secret as *pending* and
//!    returns it (base32 and as an `otpauth://` URL for QR codes). This is
//!    the only time the secret leaves the Panel; a second call replaces a
//!    pending secret.
//! 2. [`confirm_enrollment`] with a code from the app enables TOTP and
//!    returns [`RECOVERY_CODE_COUNT`](super::recovery::RECOVERY_CODE_COUNT)
//!    recovery codes, once (stored hashed, see [`super::recovery`]).
//! 3. While enabled, a password login yields a [`Challenge`]
//!    ([`create_challenge`]) instead of tokens; [`verify`] checks the code
//!    or recovery code that completes it.
//! 4. [`disable`] needs a current code or a recovery code; an
//!    administrator can [`reset`] a user who lost everything.
//!
//! # Design decisions
//!
//! - **No code is accepted twice** (RFC 6238 §5.2): the last accepted time
//!   step is stored, and a code is accepted only for a later step, with a
//!   conditional `UPDATE` so two concurrent requests cannot both win.
//! - **Wrong codes lock the second factor**: after
//!   [`MAX_FAILED_ATTEMPTS`] consecutive wrong codes or recovery codes it
//!   refuses everything, the right code included, for [`LOCKOUT`]
//!   (`totp.locked` event). The HTTP layer's rate limits come on top.
//! - **Challenges** (`capc_` + 64 hex digits) are stored as SHA-256
//!   digests, live [`CHALLENGE_TTL`], survive wrong codes (typos happen;
//!   the lockout bounds guessing) and are consumed by the first success.
//! - **The secret is sealed.** The server must compute codes from it, so
//!   hashing is impossible; it is encrypted with the secret key kept
//!   outside the database, bound to its user's row
//!   ([`crate::secrets::Purpose::totp`]), in a table of its own that no API
//!   reads back and that is never copied into events.
//! - Enabling, disabling, resets, lockouts and every use of a recovery
//!   code are events in the audit log, written in the same transaction.

use std::time::Duration;

use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::db::domain::{Empty, RecoveryCodeUsed, RecoveryCodes, TotpEvent, TotpLocked, UserId};
use crate::db::{
    Actor, Database, DbError, NewEvent, Unrecorded, now, on_pool, query_builder, to_micros,
};
use crate::secrets::Purpose;

use super::recovery::{self, RECOVERY_CODE_COUNT};
use super::tokens::{digest, random_secret};
use super::users::User;

/// Replaces a user's recovery codes with the hashes of `codes`, inside the
/// caller's transaction `tx` on `pool` (expanded per backend by `on_pool!`).
macro_rules! replace_recovery_codes {
    ($pool:ident, $tx:ident, $user_id:expr, $codes:expr) => {{
        let mut qb = query_builder($pool, "DELETE FROM recovery_codes WHERE user_id = ");
        qb.push_bind($user_id);
        qb.build().execute(&mut *$tx).await.map_err(DbError::from)?;
        for code in $codes {
            let mut qb = query_builder(
                $pool,
                "INSERT INTO recovery_codes (user_id, code_hash) VALUES (",
            );
            qb.separated(", ")
                .push_bind($user_id)
                .push_bind(recovery::hash(code));
            qb.push(")");
            qb.build().execute(&mut *$tx).await.map_err(DbError::from)?;
        }
    }};
}

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "Ctrl-Alt-Play";
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Seconds per time step.
pub const PERIOD: u64 = 30;
/// Consecutive wrong codes that lock the second factor.
pub const MAX_FAILED_ATTEMPTS: i64 = 5;
/// How long the second factor stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// How long a login challenge is valid.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// The prefix of every login challenge.
pub const CHALLENGE_PREFIX: &str = "capc_";

/// What completes a challenge or authorizes turning TOTP off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor<'a> {
    /// A code from the authenticator app.
    Code(&'a str),
    /// One of the recovery codes.
    RecoveryCode(&'a str),
}

/// A pending enrollment: what the user's authenticator app needs.
#[derive(Clone)]
pub struct Enrollment {
    /// The secret in base32 (RFC 4648, no padding), for manual entry.
    pub secret: String,
    /// The `otpauth://totp/…` URL, for a QR code.
    pub otpauth_url: String,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment").finish_non_exhaustive()
    }
}

/// A user's second-factor state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpStatus {
    /// TOTP is on: logins need a code.
    pub enabled: bool,
    /// An enrollment awaits its confirming code.
    pub pending: bool,
    /// Unused recovery codes left.
    pub recovery_codes_remaining: u32,
}

/// A login that passed its first factor and awaits the second.
#[derive(Clone)]
pub struct Challenge {
    /// The challenge token (shown once; only its digest is stored).
    pub token: String,
    /// How long it stays valid.
    pub expires_in: Duration,
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenge")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The login a valid challenge stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The user.
    pub user_id: String,
    /// The provider the first factor went through.
    pub provider_id: String,
}

/// Why a TOTP operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// Enrollment was asked for, but TOTP is on already.
    #[error("TOTP is already enabled")]
    AlreadyEnabled,
    /// Confirmation was asked for, but no enrollment is pending.
    #[error("no TOTP enrollment is pending")]
    NotPending,
    /// A code was checked, but TOTP is off.
    #[error("TOTP is not enabled")]
    NotEnabled,
    /// The code is wrong, outside the time window, or was used before.
    #[error("the code is wrong, expired or was used before")]
    InvalidCode,
    /// Too many wrong codes: locked for the given time.
    #[error("too many wrong codes; the second factor is locked")]
    Locked(Duration),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    /// The sealed secret, as stored.
    secret: String,
    enabled_at: Option<i64>,
    locked_until: Option<i64>,
}

/// The base32 secret of `user_id`, unsealed from `stored`.
fn open_secret(db: &Database, user_id: &str, stored: &str) -> Result<String, DbError> {
    Ok(db.sealer()?.open(&Purpose::totp(user_id), stored)?)
}

fn unix_now() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0)
}

/// The account label in the `otpauth://` URL: the username, with the `:`
/// the URI format reserves replaced.
fn account_label(username: &str) -> String {
    username.replace(':', "_")
}

fn totp(secret_base32: &str, username: &str) -> Result<Totp, DbError> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|e| DbError::Corrupt(format!("stored TOTP secret: {e}")))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(1)
        .with_step_duration(PERIOD)
        .with_secret(secret)
        .with_account_name(account_label(username))
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| DbError::Corrupt(format!("TOTP parameters: {e}")))
}

/// The time step `code` belongs to, if it is right for now (± one step).
fn matching_step(secret_base32: &str, code: &str) -> Result<Option<i64>, DbError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    Ok(totp(secret_base32, "")?
        .check(&code, unix_now())
        .map(|step| i64::try_from(step).unwrap_or(i64::MAX)))
}

async fn load(db: &Database, user_id: &str) -> Result<Option<CredentialRow>, DbError> {
    Ok(on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT secret, enabled_at, locked_until FROM totp_credentials WHERE user_id = ",
        );
        qb.push_bind(user_id);
        qb.build_query_as::<CredentialRow>()
            .fetch_optional(pool)
            .await?
    }))
}

async fn unused_recovery_codes(db: &Database, user_id: &str) -> Result<i64, DbError> {
    Ok(on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT COUNT(*) FROM recovery_codes WHERE used_at IS NULL AND user_id = ",
        );
        qb.push_bind(user_id);
        qb.build_query_scalar::<i64>().fetch_one(pool).await?
    }))
}

/// `user_id`'s second-factor state.
///
/// # Errors
///
/// Database errors.
pub async fn status(db: &Database, user_id: &str) -> Result<TotpStatus, DbError> {
    let row = load(db, user_id).await?;
    let enabled = row.as_ref().is_some_and(|r| r.enabled_at.is_some());
    let remaining = if enabled {
        unused_recovery_codes(db, user_id).await?
    } else {
        0
    };
    Ok(TotpStatus {
        enabled,
        pending: row.is_some() && !enabled,
        recovery_codes_remaining: u32::try_from(remaining).unwrap_or(0),
    })
}

/// True if and only if `user_id` has TOTP enabled.
///
/// # Errors
///
/// Database errors.
pub async fn is_enabled(db: &Database, user_id: &str) -> Result<bool, DbError> {
    Ok(load(db, user_id)
        .await?
        .is_some_and(|r| r.enabled_at.is_some()))
}

/// Starts (or restarts) enrollment for `user` with a fresh secret; appends
/// `totp.enrollment-started`.
///
/// # Errors
///
/// [`TotpError::AlreadyEnabled`], or database errors.
pub async fn begin_enrollment(
    db: &Database,
    user: &User,
    actor: &Actor,
) -> Result<Enrollment, TotpError> {
    if load(db, &user.id)
        .await?
        .is_some_and(|r| r.enabled_at.is_some())
    {
        return Err(TotpError::AlreadyEnabled);
    }
    let bytes: [u8; 20] = rand::random();
    let secret = Secret::from(bytes).to_base32();
    let otpauth_url = totp(&secret, &user.username)?
        .to_url()
        .map_err(|e| DbError::Corrupt(format!("otpauth URL: {e}")))?;
    let at = now();
    let event = NewEvent::new(TotpEvent::EnrollmentStarted {
        subject: UserId::new(&user.id),
        data: Empty {},
    })
    .actor(actor.clone())
    .occurred_at(at);
    let sealed = db.sealer()?.seal(&Purpose::totp(&user.id), &secret);
    let result = store_pending(db, &user.id, &sealed, at, &event).await;
    match result {
        Ok(()) => Ok(Enrollment {
            secret,
            otpauth_url,
        }),
        // Enabled meanwhile, by a concurrent confirmation.
        Err(DbError::Conflict { .. }) => Err(TotpError::AlreadyEnabled),
        Err(e) => Err(e.into()),
    }
}

async fn store_pending(
    db: &Database,
    user_id: &str,
    sealed_secret: &str,
    at: OffsetDateTime,
    event: &NewEvent,
) -> Result<(), DbError> {
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "DELETE FROM totp_credentials WHERE enabled_at IS NULL AND user_id = ",
        );
        qb.push_bind(user_id);
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO totp_credentials (user_id, secret, created_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(user_id)
            .push_bind(sealed_secret)
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Accepts `step` for `user_id` if it is later than the last accepted one.
async fn consume_step(db: &Database, user_id: &str, step: i64) -> Result<bool, DbError> {
    Ok(on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "UPDATE totp_credentials SET last_used_step = ");
        qb.push_bind(step)
            .push(", failed_attempts = 0, locked_until = NULL WHERE user_id = ")
            .push_bind(user_id)
            .push(" AND enabled_at IS NOT NULL AND (last_used_step IS NULL OR last_used_step < ")
            .push_bind(step)
            .push(")");
        qb.build()
            .execute(pool.unrecorded(Unrecorded::Credentials))
            .await?
            .rows_affected()
            == 1
    }))
}

/// Spends `user_id`'s unused recovery code with digest `hash`, recording
/// `totp.recovery-code-used` by `actor` with the number left.
async fn spend_recovery_code(
    db: &Database,
    user_id: &str,
    hash: &str,
    at: OffsetDateTime,
    actor: &Actor,
) -> Result<bool, DbError> {
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE recovery_codes SET used_at = ");
        qb.push_bind(to_micros(at))
            .push(" WHERE used_at IS NULL AND user_id = ")
            .push_bind(user_id)
            .push(" AND code_hash = ")
            .push_bind(hash);
        let spent = qb.build().execute(&mut *tx).await?.rows_affected() == 1;
        if spent {
            let mut qb = query_builder(
                pool,
                "UPDATE totp_credentials SET failed_attempts = 0, locked_until = NULL WHERE user_id = ",
            );
            qb.push_bind(user_id);
            qb.build().execute(&mut *tx).await?;
            let mut qb = query_builder(
                pool,
                "SELECT COUNT(*) FROM recovery_codes WHERE used_at IS NULL AND user_id = ",
            );
            qb.push_bind(user_id);
            let remaining = qb.build_query_scalar::<i64>().fetch_one(&mut *tx).await?;
            let event = NewEvent::new(TotpEvent::RecoveryCodeUsed {
                subject: UserId::new(user_id),
                data: RecoveryCodeUsed {
                    remaining: u64::try_from(remaining).unwrap_or(0),
                },
            })
            .actor(actor.clone())
            .occurred_at(at);
            tx.record(&event).await?;
            tx.commit().await?;
        }
        spent
    }))
}

/// How many recovery codes `codes` holds, for events.
fn recovery_codes(codes: &[String]) -> RecoveryCodes {
    RecoveryCodes {
        recovery_codes: u64::try_from(codes.len()).unwrap_or(u64::MAX),
    }
}

/// Confirms the pending enrollment with a current `code`: enables TOTP and
/// returns fresh recovery codes (their digests replace any old ones).
/// Appends `totp.enabled`.
///
/// # Errors
///
/// [`TotpError::NotPending`], [`TotpError::AlreadyEnabled`],
/// [`TotpError::InvalidCode`], or database errors.
pub async fn confirm_enrollment(
    db: &Database,
    user_id: &str,
    code: &str,
    actor: &Actor,
) -> Result<Vec<String>, TotpError> {
    let row = load(db, user_id).await?.ok_or(TotpError::NotPending)?;
    if row.enabled_at.is_some() {
        return Err(TotpError::AlreadyEnabled);
    }
    let secret = open_secret(db, user_id, &row.secret)?;
    let step = matching_step(&secret, code)?.ok_or(TotpError::InvalidCode)?;
    let codes = recovery::generate_set(RECOVERY_CODE_COUNT);
    let at = now();
    let event = NewEvent::new(TotpEvent::Enabled {
        subject: UserId::new(user_id),
        data: recovery_codes(&codes),
    })
    .actor(actor.clone())
    .occurred_at(at);
    let enabled = on_pool!(db, |pool| {
        let mut tx = pool.begin().await.map_err(DbError::from)?;
        let mut qb = query_builder(pool, "UPDATE totp_credentials SET enabled_at = ");
        qb.push_bind(to_micros(at))
            .push(", last_used_step = ")
            .push_bind(step)
            .push(", failed_attempts = 0, locked_until = NULL WHERE enabled_at IS NULL AND user_id = ")
            .push_bind(user_id)
            .push(" AND secret = ")
            .push_bind(&row.secret);
        let claimed = qb
            .build()
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?
            .rows_affected()
            == 1;
        if claimed {
            replace_recovery_codes!(pool, tx, user_id, &codes);
            tx.record(&event).await?;
            tx.commit().await?;
        }
        claimed
    });
    if enabled {
        Ok(codes)
    } else {
        // Replaced or confirmed by a concurrent request.
        Err(TotpError::NotPending)
    }
}

/// Checks a second factor of `user_id`, consuming it: a code's time step
/// cannot be used again, a recovery code is spent (appending
/// `totp.recovery-code-used`). A wrong factor counts toward the lockout.
///
/// # Errors
///
/// [`TotpError::NotEnabled`], [`TotpError::Locked`],
/// [`TotpError::InvalidCode`], or database errors.
pub async fn verify(
    db: &Database,
    user_id: &str,
    factor: SecondFactor<'_>,
    actor: &Actor,
) -> Result<(), TotpError> {
    let row = load(db, user_id).await?.ok_or(TotpError::NotEnabled)?;
    if row.enabled_at.is_none() {
        return Err(TotpError::NotEnabled);
    }
    let at = now();
    if let Some(until) = row.locked_until
        && until > to_micros(at)
    {
        let micros = u64::try_from(until - to_micros(at)).unwrap_or(0);
        return Err(TotpError::Locked(Duration::from_micros(micros)));
    }
    let accepted = match factor {
        SecondFactor::Code(code) => {
            match matching_step(&open_secret(db, user_id, &row.secret)?, code)? {
                Some(step) => consume_step(db, user_id, step).await?,
                None => false,
            }
        }
        SecondFactor::RecoveryCode(code) => {
            spend_recovery_code(db, user_id, &recovery::hash(code), at, actor).await?
        }
    };
    if accepted {
        Ok(())
    } else {
        record_failure(db, user_id, actor).await?;
        Err(TotpError::InvalidCode)
    }
}

/// Counts a wrong factor; the [`MAX_FAILED_ATTEMPTS`]th in a row locks the
/// second factor for [`LOCKOUT`] and appends `totp.locked`.
async fn record_failure(db: &Database, user_id: &str, actor: &Actor) -> Result<(), DbError> {
    let at = now();
    let until = at + LOCKOUT;
    let event = NewEvent::new(TotpEvent::Locked {
        subject: UserId::new(user_id),
        data: TotpLocked {
            failed_attempts: MAX_FAILED_ATTEMPTS.unsigned_abs(),
            locked_for_seconds: LOCKOUT.as_secs(),
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    on_pool!(db, |pool| {
        // Counting a failure is bookkeeping; only the lockout is an event.
        let mut tx = pool.begin_unrecorded(Unrecorded::Credentials).await?;
        let mut qb = query_builder(
            pool,
            "UPDATE totp_credentials SET failed_attempts = failed_attempts + 1 WHERE user_id = ",
        );
        qb.push_bind(user_id);
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(
            pool,
            "SELECT failed_attempts FROM totp_credentials WHERE user_id = ",
        );
        qb.push_bind(user_id);
        let failed: Option<i64> = qb
            .build_query_scalar::<i64>()
            .fetch_optional(&mut *tx)
            .await?;
        if failed.is_some_and(|n| n >= MAX_FAILED_ATTEMPTS) {
            let mut qb = query_builder(
                pool,
                "UPDATE totp_credentials SET failed_attempts = 0, locked_until = ",
            );
            qb.push_bind(to_micros(until))
                .push(" WHERE user_id = ")
                .push_bind(user_id);
            qb.build().execute(&mut *tx).await?;
            tx.record(&event).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

async fn delete_credentials(
    db: &Database,
    user_id: &str,
    event: &NewEvent,
) -> Result<bool, DbError> {
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM totp_credentials WHERE user_id = ");
        qb.push_bind(user_id);
        let deleted = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        for table in ["recovery_codes", "login_challenges"] {
            let mut qb = query_builder(pool, "DELETE FROM ");
            qb.push(table).push(" WHERE user_id = ").push_bind(user_id);
            qb.build().execute(&mut *tx).await?;
        }
        if deleted {
            tx.record(event).await?;
        }
        tx.commit().await?;
        deleted
    }))
}

/// Turns TOTP off after checking `factor` (see [`verify`]); removes the
/// secret, recovery codes and open challenges; appends `totp.disabled`.
///
/// # Errors
///
/// As for [`verify`].
pub async fn disable(
    db: &Database,
    user_id: &str,
    factor: SecondFactor<'_>,
    actor: &Actor,
) -> Result<(), TotpError> {
    verify(db, user_id, factor, actor).await?;
    let event = NewEvent::new(TotpEvent::Disabled {
        subject: UserId::new(user_id),
        data: Empty {},
    })
    .actor(actor.clone());
    delete_credentials(db, user_id, &event).await?;
    Ok(())
}

/// Replaces `user_id`'s recovery codes with fresh ones after checking
/// `factor` (see [`verify`]; a recovery code used here is spent like any
/// other); appends `totp.recovery-codes-regenerated`. Returns the new codes,
/// to show once.
///
/// # Errors
///
/// As for [`verify`].
pub async fn regenerate_recovery_codes(
    db: &Database,
    user_id: &str,
    factor: SecondFactor<'_>,
    actor: &Actor,
) -> Result<Vec<String>, TotpError> {
    verify(db, user_id, factor, actor).await?;
    let codes = recovery::generate_set(RECOVERY_CODE_COUNT);
    let event = NewEvent::new(TotpEvent::RecoveryCodesRegenerated {
        subject: UserId::new(user_id),
        data: recovery_codes(&codes),
    })
    .actor(actor.clone());
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await.map_err(DbError::from)?;
        replace_recovery_codes!(pool, tx, user_id, &codes);
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(codes)
}

/// Removes `user_id`'s TOTP (enabled or pending) without a code, for an
/// administrator helping a user who lost both the app and the recovery
/// codes; appends `totp.reset`. Returns whether there was anything.
///
/// # Errors
///
/// Database errors.
pub async fn reset(db: &Database, user_id: &str, actor: &Actor) -> Result<bool, DbError> {
    let event = NewEvent::new(TotpEvent::Reset {
        subject: UserId::new(user_id),
        data: Empty {},
    })
    .actor(actor.clone());
    delete_credentials(db, user_id, &event).await
}

/// Opens a login challenge for `user_id`, whose first factor passed at
/// `provider_id`. Expired challenges are swept at the same time.
///
/// # Errors
///
/// Database errors.
pub async fn create_challenge(
    db: &Database,
    user_id: &str,
    provider_id: &str,
) -> Result<Challenge, DbError> {
    let token = random_secret(CHALLENGE_PREFIX);
    let at = now();
    let expires = at + CHALLENGE_TTL;
    on_pool!(db, |pool| {
        let mut tx = pool.begin_unrecorded(Unrecorded::Credentials).await?;
        let mut qb = query_builder(pool, "DELETE FROM login_challenges WHERE expires_at < ");
        qb.push_bind(to_micros(at));
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO login_challenges (token_hash, user_id, provider_id, created_at, expires_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(digest(&token))
            .push_bind(user_id)
            .push_bind(provider_id)
            .push_bind(to_micros(at))
            .push_bind(to_micros(expires));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(Challenge {
        token,
        expires_in: CHALLENGE_TTL,
    })
}

/// The login an open challenge stands for: `None` if it is unknown,
/// expired or used.
///
/// # Errors
///
/// Database errors.
pub async fn find_challenge(db: &Database, token: &str) -> Result<Option<PendingLogin>, DbError> {
    let hash = digest(token);
    let at = to_micros(now());
    let row: Option<(String, String)> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT user_id, provider_id FROM login_challenges WHERE used_at IS NULL AND token_hash = ",
        );
        qb.push_bind(&hash).push(" AND expires_at > ").push_bind(at);
        qb.build_query_as::<(String, String)>()
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(|(user_id, provider_id)| PendingLogin {
        user_id,
        provider_id,
    }))
}

/// Consumes an open challenge; `false` if it was not open (used by a
/// concurrent request, or expired).
///
/// # Errors
///
/// Database errors.
pub async fn claim_challenge(db: &Database, token: &str) -> Result<bool, DbError> {
    let hash = digest(token);
    let at = to_micros(now());
    Ok(on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "UPDATE login_challenges SET used_at = ");
        qb.push_bind(at)
            .push(" WHERE used_at IS NULL AND token_hash = ")
            .push_bind(&hash)
            .push(" AND expires_at > ")
            .push_bind(at);
        qb.build()
            .execute(pool.unrecorded(Unrecorded::Credentials))
            .await?
            .rows_affected()
            == 1
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_an_otpauth_url_with_issuer_and_a_sanitized_account() {
        let secret = Secret::from([7_u8; 20]).to_base32();
        let url = totp(&secret, "we:ird")
            .expect("valid parameters")
            .to_url()
            .expect("a URL");
        assert!(
            url.starts_with("otpauth://totp/Ctrl-Alt-Play:we_ird?"),
            "{url}"
        );
        assert!(url.contains(&format!("secret={secret}")), "{url}");
        assert!(url.contains("issuer=Ctrl-Alt-Play"), "{url}");
    }

    #[test]
    fn accepts_the_current_code_with_spaces_and_refuses_another() {
        let secret = Secret::from([9_u8; 20]).to_base32();
        let t = totp(&secret, "u").expect("valid parameters");
        let code = t.generate(unix_now()).to_string();
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(matching_step(&secret, &spaced).expect("ok").is_some());
        let wrong = format!(
            "{:06}",
            (code.parse::<u32>().expect("digits") + 1) % 1_000_000
        );
        assert!(matching_step(&secret, &wrong).expect("ok").is_none());
        assert!(matching_step(&secret, "abcdef").expect("ok").is_none());
    }
}
