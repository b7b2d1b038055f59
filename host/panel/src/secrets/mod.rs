//! Secrets at rest: the key that seals them, the sealing itself, and the
//! file permissions that keep the data directory private.
//!
//! # What is protected, and how
//!
//! | secret | where | at rest |
//! |---|---|---|
//! | TOTP secrets | `totp_credentials.secret` | sealed |
//! | plugin secrets | `plugin_secrets.value` | sealed |
//! | the Marketplace instance token | `marketplace_instance.token` | sealed |
//! | the SMTP password | `mail_settings.password` | sealed |
//! | the backup storage's S3 secret key | `backup_storage.secret` | sealed |
//! | database hosts' administrative passwords | `database_hosts.password` | sealed |
//! | the passwords of servers' database users | `server_databases.password` | sealed |
//! | JWT signing keys | `jwt_keys.secret` | sealed, rotated ([`crate::identity::tokens`]) |
//! | refresh tokens, API keys, node tokens, recovery codes | their tables | SHA-256 digests only |
//!
//! **Sealed** means encrypted with AES-256-GCM-SIV (through `aws-lc-rs`,
//! which the TLS stack already builds) under the *secret key*, a random
//! 96-bit nonce per value, and the value's purpose and row as associated
//! data ([`Purpose`]): a sealed TOTP secret copied into another user's row,
//! or into a plugin secret, does not open. GCM-SIV was chosen over plain
//! GCM because a repeated random nonce then reveals only that two values
//! are equal, instead of breaking the key.
//!
//! # The secret key
//!
//! The key is kept outside the database, so a copy of the database (a
//! backup, a dump, a replica) does not reveal the secrets. It comes from,
//! in order:
//!
//! 1. `CAP_SECRET_KEY`: 32 bytes in base64 ([`SECRET_KEY_ENV`]), for
//!    deployments that inject secrets through the environment;
//! 2. `<data>/secret.key` ([`KEY_FILE_NAME`]): the same text, created with
//!    mode `0600` on first start.
//!
//! A database remembers which key sealed it: a *key check* value sealed
//! under the key is stored next to the secrets, so a Panel started with
//! another key refuses to start ([`SealError::WrongKey`]) rather than
//! reading garbage or sealing new secrets under a second key. Losing the
//! key loses the sealed secrets (users re-enroll TOTP, admins re-enter
//! plugin secrets, the Panel registers again with its Marketplace): back it
//! up apart from the database.
//!
//! Databases written before sealing existed are sealed on the first start
//! with a key, in one transaction with the key check ([`crate::db`]).
//!
//! # Permissions
//!
//! The data directory is created `0700` and the SQLite database and the key
//! file `0600` ([`files`]); a Panel whose existing directory or files are
//! accessible to the group or others refuses to start and names the
//! `chmod` that fixes it ([`PermissionError`]).

use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub mod files;
mod seal;

pub use files::{PermissionError, ensure_private_dir, ensure_private_file};
pub use seal::{Purpose, SealError, Sealer};

/// The environment variable that holds the secret key (base64 of 32 bytes).
pub const SECRET_KEY_ENV: &str = "CAP_SECRET_KEY";
/// The key file under the data directory, used when [`SECRET_KEY_ENV`] is
/// not set.
pub const KEY_FILE_NAME: &str = "secret.key";
/// Length of the secret key in bytes.
pub const SECRET_KEY_LEN: usize = 32;

/// The key that seals secrets at rest. Never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; SECRET_KEY_LEN]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Why the secret key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// The key text is not base64 of exactly 32 bytes.
    #[error(
        "the secret key from {origin} is invalid: {reason}; expected 32 random bytes in base64, e.g. the output of `openssl rand -base64 32`"
    )]
    Malformed {
        /// Where it came from (the variable or the file).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is accessible to others.
    #[error(transparent)]
    Permissions(#[from] PermissionError),
    /// The key file could not be read or created.
    #[error("cannot read or create the secret key file {}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> SecretKey {
        SecretKey(rand::random())
    }

    /// A key from its raw bytes.
    pub fn from_bytes(bytes: [u8; SECRET_KEY_LEN]) -> SecretKey {
        SecretKey(bytes)
    }

    /// The key in its text form: base64 of the 32 bytes.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses the text form (surrounding whitespace is ignored).
    ///
    /// # Errors
    ///
    /// A reason for people when `text` is not base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<SecretKey, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| format!("not base64 ({e})"))?;
        let bytes: [u8; SECRET_KEY_LEN] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("{} bytes instead of {SECRET_KEY_LEN}", b.len()))?;
        Ok(SecretKey(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; SECRET_KEY_LEN] {
        &self.0
    }

    /// The key in `<data_dir>/secret.key`, created (mode `0600`) with a
    /// fresh random key if it does not exist.
    ///
    /// # Errors
    ///
    /// [`SecretKeyError::Permissions`] when the file is accessible to the
    /// group or others, [`SecretKeyError::Malformed`] when it does not hold
    /// a key, [`SecretKeyError::Io`] when it cannot be read or written.
    pub fn load_or_create(data_dir: &Path) -> Result<SecretKey, SecretKeyError> {
        let path = data_dir.join(KEY_FILE_NAME);
        let io_error = |source| SecretKeyError::Io {
            path: path.clone(),
            source,
        };
        match files::create_private_file(&path) {
            Ok(mut file) => {
                let key = SecretKey::generate();
                file.write_all(format!("{}\n", key.to_base64()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io_error)?;
                tracing::info!(path = %path.display(), "created the secret key; back it up apart from the database");
                return Ok(key);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(e)),
        }
        files::check_private(&path, files::Kind::File)?;
        let text = std::fs::read_to_string(&path).map_err(io_error)?;
        SecretKey::from_base64(&text).map_err(|reason| SecretKeyError::Malformed {
            origin: path.display().to_string(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_round_trips_and_debug_hides_the_key() {
        let key = SecretKey::generate();
        assert_eq!(SecretKey::from_base64(&key.to_base64()), Ok(key.clone()));
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }

    #[test]
    fn a_key_of_the_wrong_length_or_alphabet_is_refused() {
        let short = STANDARD.encode([1_u8; 16]);
        let error = SecretKey::from_base64(&short).expect_err("16 bytes");
        assert!(error.contains("16 bytes instead of 32"), "{error}");
        assert!(SecretKey::from_base64("not base64!").is_err());
    }
}
