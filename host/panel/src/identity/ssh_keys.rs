//! Users' SSH public keys, for SFTP sign-ins on the Agents.
//!
//! A key is stored as the OpenSSH one-line text the user gave (normalised:
//! algorithm, base64 and comment, without surrounding blanks) with its
//! SHA-256 fingerprint (`SHA256:…`, as `ssh-keygen -l` prints it). A user
//! holds each key once (the same fingerprint twice is
//! [`SshKeyError::Exists`]); two users may hold the same key, and a
//! sign-in with it is then checked against the user the SFTP username
//! names. Adding and removing a key append `user.ssh-key-added` and
//! `user.ssh-key-removed`.
//!
//! Keys are parsed with the `ssh-key` crate (the one russh uses on the
//! Agents): Ed25519, ECDSA (P-256, P-384, P-521) and RSA keys; DSA keys,
//! certificates and anything else are refused as [`SshKeyError::Invalid`].
//! RSA keys shorter than [`MIN_RSA_BITS`] are refused too.

use ssh_key::{Algorithm, HashAlg, PublicKey};
use time::OffsetDateTime;

use crate::db::domain::{SshKeyAdded, SshKeyRef, UserEvent, UserId};
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};

use super::users::new_id;

/// The longest key text accepted, bytes.
pub const MAX_KEY_BYTES: usize = 8192;
/// The shortest RSA modulus accepted, bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Most keys one user may hold.
pub const MAX_KEYS_PER_USER: usize = 100;

/// A user's SSH public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    /// Its id (`ssh_…`).
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// A name for people.
    pub name: String,
    /// The key, OpenSSH one-line form.
    pub public_key: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// When it was added.
    pub created_at: OffsetDateTime,
}

/// Why a key was not added.
#[derive(Debug, thiserror::Error)]
pub enum SshKeyError {
    /// Not an OpenSSH public key of a kind we take.
    #[error("{0}")]
    Invalid(String),
    /// The user holds this key already.
    #[error("this key is on your account already (fingerprint {0})")]
    Exists(String),
    /// The user holds [`MAX_KEYS_PER_USER`] keys.
    #[error("an account holds at most {MAX_KEYS_PER_USER} SSH keys")]
    TooMany,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A parsed key: its normalised text and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// `algorithm base64 [comment]`.
    pub text: String,
    /// `SHA256:…`.
    pub fingerprint: String,
}

/// Parses one OpenSSH public key line.
///
/// # Errors
///
/// [`SshKeyError::Invalid`] with a sentence for people.
pub fn parse(text: &str) -> Result<ParsedKey, SshKeyError> {
    let text = text.trim();
    let invalid = |why: &str| SshKeyError::Invalid(why.to_owned());
    if text.is_empty() {
        return Err(invalid("the key is empty"));
    }
    if text.len() > MAX_KEY_BYTES {
        return Err(invalid(&format!(
            "the key is longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    if text.contains(['\n', '\r']) {
        return Err(invalid("give one key, on one line"));
    }
    if text.contains("PRIVATE KEY") {
        return Err(invalid(
            "this is a private key: give the public key (the .pub file) and keep the private one secret",
        ));
    }
    let key = PublicKey::from_openssh(text).map_err(|e| {
        invalid(&format!(
            "not an OpenSSH public key such as `ssh-ed25519 AAAA… you@host` ({e})"
        ))
    })?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
        Algorithm::Rsa { .. } => {
            let bits = key
                .key_data()
                .rsa()
                .map(|rsa| rsa.n().as_positive_bytes().map_or(0, |n| n.len() * 8))
                .unwrap_or(0);
            if bits < MIN_RSA_BITS {
                return Err(invalid(&format!(
                    "RSA keys need at least {MIN_RSA_BITS} bits; this one has about {bits}"
                )));
            }
        }
        other => {
            return Err(invalid(&format!(
                "{} keys are not accepted: use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa",
                other.as_str()
            )));
        }
    }
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let text = key
        .to_openssh()
        .map_err(|e| invalid(&format!("the key cannot be written back ({e})")))?;
    Ok(ParsedKey { text, fingerprint })
}

#[derive(sqlx::FromRow)]
struct SshKeyRow {
    id: String,
    user_id: String,
    name: String,
    public_key: String,
    fingerprint: String,
    created_at: i64,
}

impl TryFrom<SshKeyRow> for SshKey {
    type Error = DbError;

    fn try_from(row: SshKeyRow) -> Result<SshKey, DbError> {
        Ok(SshKey {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            public_key: row.public_key,
            fingerprint: row.fingerprint,
            created_at: from_micros(row.created_at)?,
        })
    }
}

const COLUMNS: &str =
    "SELECT id, user_id, name, public_key, fingerprint, created_at FROM user_ssh_keys";

/// Adds `text` (one OpenSSH public key) to `user_id`'s keys as `name`,
/// appending `user.ssh-key-added`.
///
/// # Errors
///
/// [`SshKeyError`].
pub async fn add(
    db: &Database,
    user_id: &str,
    name: &str,
    text: &str,
    actor: &Actor,
) -> Result<SshKey, SshKeyError> {
    let parsed = parse(text)?;
    if list(db, user_id).await?.len() >= MAX_KEYS_PER_USER {
        return Err(SshKeyError::TooMany);
    }
    let at = now();
    let id = new_id("ssh");
    let event = NewEvent::new(UserEvent::SshKeyAdded {
        subject: UserId::new(user_id),
        data: SshKeyAdded {
            key: id.clone(),
            name: name.to_owned(),
            fingerprint: parsed.fingerprint.clone(),
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    let inserted: Result<(), DbError> = async {
        on_pool!(db, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(
                pool,
                "INSERT INTO user_ssh_keys (id, user_id, name, public_key, fingerprint, created_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(&id)
                .push_bind(user_id)
                .push_bind(name)
                .push_bind(&parsed.text)
                .push_bind(&parsed.fingerprint)
                .push_bind(to_micros(at));
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
            tx.record(&event).await?;
            tx.commit().await?;
        });
        Ok(())
    }
    .await;
    match inserted {
        Ok(()) => Ok(SshKey {
            id,
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            public_key: parsed.text,
            fingerprint: parsed.fingerprint,
            created_at: at,
        }),
        Err(DbError::Conflict { .. }) => Err(SshKeyError::Exists(parsed.fingerprint)),
        Err(e) => Err(e.into()),
    }
}

/// `user_id`'s keys, oldest first.
///
/// # Errors
///
/// Database errors.
pub async fn list(db: &Database, user_id: &str) -> Result<Vec<SshKey>, DbError> {
    let rows: Vec<SshKeyRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" WHERE user_id = ")
            .push_bind(user_id)
            .push(" ORDER BY created_at, id");
        qb.build_query_as::<SshKeyRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(SshKey::try_from).collect()
}

/// `user_id`'s key with fingerprint `fingerprint`, if they hold it.
///
/// # Errors
///
/// Database errors.
pub async fn find(
    db: &Database,
    user_id: &str,
    fingerprint: &str,
) -> Result<Option<SshKey>, DbError> {
    let row: Option<SshKeyRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" WHERE user_id = ")
            .push_bind(user_id)
            .push(" AND fingerprint = ")
            .push_bind(fingerprint);
        qb.build_query_as::<SshKeyRow>()
            .fetch_optional(pool)
            .await?
    });
    row.map(SshKey::try_from).transpose()
}

/// Removes `user_id`'s key named by `key` (its id or its fingerprint),
/// appending `user.ssh-key-removed`; `false` when they hold no such key.
///
/// # Errors
///
/// Database errors.
pub async fn remove(
    db: &Database,
    user_id: &str,
    key: &str,
    actor: &Actor,
) -> Result<bool, DbError> {
    let Some(found) = list(db, user_id)
        .await?
        .into_iter()
        .find(|k| k.id == key || k.fingerprint == key)
    else {
        return Ok(false);
    };
    let event = NewEvent::new(UserEvent::SshKeyRemoved {
        subject: UserId::new(user_id),
        data: SshKeyRef {
            key: found.id.clone(),
            fingerprint: found.fingerprint.clone(),
        },
    })
    .actor(actor.clone())
    .occurred_at(now());
    Ok(on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM user_ssh_keys WHERE id = ");
        qb.push_bind(&found.id)
            .push(" AND user_id = ")
            .push_bind(user_id);
        let removed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
        if removed {
            tx.record(&event).await?;
        }
        tx.commit().await?;
        removed
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID48O9Jd5boJ7wmUQKccM7kuYpvxsXrwlhY/ed5g/LG/ alice@laptop";

    #[test]
    fn an_ed25519_key_parses_with_its_sha256_fingerprint() {
        let parsed = parse(&format!("  {ED25519}\n")).expect("parses");
        assert_eq!(parsed.text, ED25519);
        // What `ssh-keygen -lf` prints for it.
        assert_eq!(
            parsed.fingerprint,
            "SHA256:lU6yEfSmdu8TqWZ5y9Unj+ZdGdnyt+4KtiLsypefLHE"
        );
    }

    #[test]
    fn text_that_is_not_a_public_key_is_refused() {
        for bad in [
            "",
            "hello",
            "ssh-ed25519 not-base64",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "ssh-ed25519 AAAA\nssh-ed25519 AAAA",
        ] {
            assert!(
                matches!(parse(bad), Err(SshKeyError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_short_rsa_key_is_refused() {
        let short = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDUfRGasehVYjrfvDFkROfpGAd+qE0seSCaz3Je98VzWLDmeX9HmNJZ7QiqqRL5y19uCtHo8Ulna1PEIw+oMN0ArGpQ6OT7yhRhBkrfZCEgYPZPlFHWzIGveWMbWzys6U73mVLs3YTf5r1SPHi9NXmRE65tNkwBGDGikWk6GdHdYw== root@vm";
        let Err(SshKeyError::Invalid(why)) = parse(short) else {
            panic!("a 1024-bit RSA key was accepted");
        };
        assert!(why.contains("2048"), "{why}");
    }
}
