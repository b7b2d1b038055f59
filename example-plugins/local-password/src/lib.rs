//! Username-and-password logins kept in the plugin's own key-value store.
//!
//! - **Hashes**: argon2id (version 19, the `argon2` crate's defaults:
//!   19 MiB, 2 passes, 1 lane) with a random 16-byte salt, stored as a PHC
//!   string. Verification recomputes the hash with the stored parameters and
//!   compares in constant time.
//! - **No user-enumeration oracle**: an unknown username is answered only
//!   after verifying the password against a dummy hash with the same
//!   parameters, so it costs as long as a wrong password for a real account.
//! - **Lockout**: after `max-failures` consecutive wrong passwords (default
//!   5) an account is locked for `lockout-secs` (default 900); while locked
//!   every attempt is refused with the remaining time, after the same
//!   argon2 work as any other answer (against the dummy hash), so that a
//!   locked account costs as long as an unknown one. A correct password
//!   resets the count. `max-failures = 0` turns
//!   lockout off. Only existing accounts are counted: counting guesses for
//!   arbitrary names would let anyone fill the plugin's store, and the
//!   Panel rate-limits logins per client anyway.
//! - **Policy** for new passwords, each broken rule reported separately: at
//!   least `min-length` characters (default 12) and at most 1024, not one
//!   character repeated, not the username, and at least two kinds of
//!   characters (lowercase, uppercase, digits, other).
//!
//! Usernames are case-insensitive (`Alice` and `alice` are one account) and
//! keep the spelling they were created with. Each account gets a random,
//! stable subject identifier. Records live under `account/<lowercase name>`.
//!
//! The plugin needs `kv` (accounts), `config` (the settings above), `clock`
//! (lockout times) and `random` (salts and subjects).

use std::time::{SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::{self, PasswordHasher, PasswordVerifier};
use cap_plugin_sdk::auth::{
    AuthError, AuthProvider, Credentials, Identity, PasswordCredentials, ProviderInfo, ProviderKind,
};
use cap_plugin_sdk::{config, kv, log};
use serde::{Deserialize, Serialize};

/// The plugin. Stateless: accounts live in the key-value store.
#[derive(Debug, Default)]
pub struct LocalPassword;

cap_plugin_sdk::export_plugin!(LocalPassword: auth_provider);

/// Passwords longer than this are refused (argon2 would hash them fine, but
/// nobody types them and they make every login slower to hash).
const MAX_PASSWORD_CHARS: usize = 1024;

/// Longest username accepted by `set-password`.
const MAX_USERNAME_CHARS: usize = 64;

/// An argon2id hash with the default parameters, of a random password
/// nobody knows. Verifying against it takes as long as verifying a real
/// hash; `the_dummy_hash_uses_the_default_parameters` keeps it in step with
/// the hasher.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$gciGBwHWoWy6MRW/A5F6Ng$3o08AD0FbVnJhfPEUbR538yFY9LznfB65nvpZe9JEVQ";

impl AuthProvider for LocalPassword {
    fn describe(&self) -> ProviderInfo {
        ProviderInfo {
            id: "local-password".into(),
            name: "Local passwords".into(),
            kind: ProviderKind::Password,
            description: "Usernames and argon2id-hashed passwords stored by the Panel, with a \
                          password policy and lockout after repeated failures."
                .into(),
        }
    }

    fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError> {
        let Credentials::Password(PasswordCredentials {
            username, password, ..
        }) = credentials
        else {
            return Err(AuthError::Unsupported);
        };
        let settings = Settings::load()?;
        let now = now_secs();
        let key = account_key(username);

        let Some(mut account) = load_account(&key)? else {
            // Spend the same time as for a real account, then fail.
            let _ = Argon2::default().verify_password(password.as_bytes(), DUMMY_HASH);
            return Err(AuthError::InvalidCredentials);
        };

        if let Err(remaining) = account.check_lock(now) {
            // The same work as for any other answer: a lock is not told
            // apart from an unknown account by timing.
            let _ = Argon2::default().verify_password(password.as_bytes(), DUMMY_HASH);
            return Err(AuthError::Locked(Some(remaining)));
        }

        match Argon2::default().verify_password(password.as_bytes(), account.hash.as_str()) {
            Ok(()) => {
                if account.record_success() {
                    save_account(&key, &account)?;
                }
                Ok(account.identity())
            }
            Err(password_hash::Error::PasswordInvalid) => {
                let locked_for = account.record_failure(now, &settings);
                save_account(&key, &account)?;
                match locked_for {
                    Some(secs) => {
                        log::warn!(
                            "account {} locked for {secs} s after {} failed logins",
                            account.username,
                            account.failures
                        );
                        Err(AuthError::Locked(Some(secs)))
                    }
                    None => Err(AuthError::InvalidCredentials),
                }
            }
            Err(error) => {
                log::error!("stored hash of {} is unusable: {error}", account.username);
                Err(AuthError::ProviderUnavailable(
                    "the stored password hash is unreadable; set a new password".into(),
                ))
            }
        }
    }

    fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        check_username(username).map_err(AuthError::InvalidRequest)?;
        let settings = Settings::load()?;
        let violations = policy_violations(&settings, username, password);
        if !violations.is_empty() {
            return Err(AuthError::PolicyViolation(violations));
        }

        let hash = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|error| AuthError::ProviderUnavailable(format!("hashing failed: {error}")))?
            .to_string();
        let now = now_secs();
        let key = account_key(username);
        let account = match load_account(&key)? {
            Some(existing) => Account {
                hash,
                failures: 0,
                locked_until: None,
                password_changed_at: now,
                ..existing
            },
            None => Account {
                username: username.trim().to_owned(),
                subject: new_subject()?,
                hash,
                failures: 0,
                locked_until: None,
                created_at: now,
                password_changed_at: now,
            },
        };
        save_account(&key, &account)?;
        log::info!("password set for {}", account.username);
        Ok(())
    }
}

/// Admin-configurable settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    min_length: usize,
    max_failures: u32,
    lockout_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_failures: 5,
            lockout_secs: 900,
        }
    }
}

impl Settings {
    fn load() -> Result<Self, AuthError> {
        let defaults = Self::default();
        let read = || -> Result<Self, cap_plugin_sdk::Error> {
            Ok(Self {
                min_length: config::get_or("min-length", defaults.min_length)?,
                max_failures: config::get_or("max-failures", defaults.max_failures)?,
                lockout_secs: config::get_or("lockout-secs", defaults.lockout_secs)?,
            })
        };
        read().map_err(|error| AuthError::ProviderUnavailable(error.to_string()))
    }
}

/// One account, as stored (JSON) under `account/<lowercase name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Account {
    /// The name as it was first set.
    username: String,
    /// Random, stable identifier handed to the Panel.
    subject: String,
    /// argon2id PHC string.
    hash: String,
    /// Consecutive failed logins.
    failures: u32,
    /// Unix seconds until which logins are refused.
    locked_until: Option<u64>,
    created_at: u64,
    password_changed_at: u64,
}

impl Account {
    /// `Err(remaining seconds)` while locked. An expired lock is cleared,
    /// with the failure count.
    fn check_lock(&mut self, now: u64) -> Result<(), u64> {
        match self.locked_until {
            Some(until) if now < until => Err(until - now),
            Some(_) => {
                self.locked_until = None;
                self.failures = 0;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failure; returns the lock duration when this failure locks
    /// the account.
    fn record_failure(&mut self, now: u64, settings: &Settings) -> Option<u64> {
        self.failures = self.failures.saturating_add(1);
        if settings.max_failures > 0 && self.failures >= settings.max_failures {
            self.locked_until = Some(now.saturating_add(settings.lockout_secs));
            Some(settings.lockout_secs)
        } else {
            None
        }
    }

    /// Resets the failure count; returns whether anything changed.
    fn record_success(&mut self) -> bool {
        let changed = self.failures != 0 || self.locked_until.is_some();
        self.failures = 0;
        self.locked_until = None;
        changed
    }

    fn identity(&self) -> Identity {
        Identity::new(self.subject.clone(), self.username.clone())
    }
}

fn account_key(username: &str) -> String {
    format!("account/{}", username.trim().to_lowercase())
}

fn load_account(key: &str) -> Result<Option<Account>, AuthError> {
    kv::get_json(key).map_err(|error| AuthError::ProviderUnavailable(error.to_string()))
}

fn save_account(key: &str, account: &Account) -> Result<(), AuthError> {
    kv::set_json(key, account).map_err(|error| AuthError::ProviderUnavailable(error.to_string()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// 128 random bits as hex.
fn new_subject() -> Result<String, AuthError> {
    let bytes = password_hash::try_generate_salt().map_err(|error| {
        AuthError::ProviderUnavailable(format!("no randomness available: {error}"))
    })?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn check_username(username: &str) -> Result<(), String> {
    let trimmed = username.trim();
    if trimmed.is_empty() {
        Err("the username must not be empty".into())
    } else if trimmed.chars().count() > MAX_USERNAME_CHARS {
        Err(format!(
            "the username must be at most {MAX_USERNAME_CHARS} characters long"
        ))
    } else if trimmed.chars().any(char::is_control) {
        Err("the username must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// Every rule `password` breaks, one message each.
fn policy_violations(settings: &Settings, username: &str, password: &str) -> Vec<String> {
    let mut violations = Vec::new();
    let length = password.chars().count();
    if length < settings.min_length {
        violations.push(format!(
            "must be at least {} characters long",
            settings.min_length
        ));
    }
    if length > MAX_PASSWORD_CHARS {
        violations.push(format!(
            "must be at most {MAX_PASSWORD_CHARS} characters long"
        ));
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
        && length > 1
    {
        violations.push("must not be one character repeated".into());
    }
    if !password.is_empty() && password.trim().to_lowercase() == username.trim().to_lowercase() {
        violations.push("must not be the username".into());
    }
    let classes = [
        password.chars().any(char::is_lowercase),
        password.chars().any(char::is_uppercase),
        password.chars().any(char::is_numeric),
        password
            .chars()
            .any(|c| !c.is_lowercase() && !c.is_uppercase() && !c.is_numeric()),
    ];
    if classes.iter().filter(|&&present| present).count() < 2 {
        violations.push(
            "must mix at least two kinds of characters (lowercase, uppercase, digits, others)"
                .into(),
        );
    }
    violations
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use argon2::Params;
    use argon2::password_hash::phc::PasswordHash;

    use super::*;

    fn account(failures: u32, locked_until: Option<u64>) -> Account {
        Account {
            username: "Alice".into(),
            subject: "00ff".into(),
            hash: DUMMY_HASH.into(),
            failures,
            locked_until,
            created_at: 1,
            password_changed_at: 1,
        }
    }

    #[test]
    fn a_strong_password_breaks_no_rule() {
        assert!(
            policy_violations(&Settings::default(), "alice", "correct horse battery").is_empty()
        );
        assert!(policy_violations(&Settings::default(), "alice", "Tr0ub4dor&3xyz").is_empty());
    }

    #[test]
    fn a_short_password_is_reported_with_the_configured_minimum() {
        let settings = Settings {
            min_length: 16,
            ..Settings::default()
        };
        assert_eq!(
            policy_violations(&settings, "alice", "short pass 1"),
            ["must be at least 16 characters long"]
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let settings = Settings {
            min_length: 4,
            ..Settings::default()
        };
        // Four characters, eight bytes, two classes (lowercase and other).
        assert!(policy_violations(&settings, "alice", "ääää").len() == 2);
        assert!(policy_violations(&settings, "alice", "äöü1").is_empty());
    }

    #[test]
    fn one_repeated_character_is_refused() {
        let violations = policy_violations(&Settings::default(), "alice", "aaaaaaaaaaaaaaaa");
        assert!(violations.contains(&"must not be one character repeated".to_owned()));
    }

    #[test]
    fn the_username_is_refused_whatever_its_case() {
        let violations = policy_violations(&Settings::default(), "Alice.Example", "alice.example");
        assert!(violations.contains(&"must not be the username".to_owned()));
    }

    #[test]
    fn a_single_kind_of_character_is_refused() {
        let violations = policy_violations(&Settings::default(), "alice", "onlylowercaseletters");
        assert_eq!(
            violations,
            ["must mix at least two kinds of characters (lowercase, uppercase, digits, others)"]
        );
    }

    #[test]
    fn every_broken_rule_is_a_separate_message() {
        let violations = policy_violations(&Settings::default(), "zzz", "zzz");
        assert_eq!(violations.len(), 4, "{violations:?}");
    }

    #[test]
    fn an_overlong_password_is_refused() {
        let long = "aB3".repeat(400);
        assert_eq!(
            policy_violations(&Settings::default(), "alice", &long),
            ["must be at most 1024 characters long"]
        );
    }

    #[test]
    fn usernames_must_be_printable_and_not_empty() {
        assert!(check_username("alice").is_ok());
        assert!(check_username("  ").is_err());
        assert!(check_username("al\nice").is_err());
        assert!(check_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn usernames_are_case_insensitive_keys() {
        assert_eq!(account_key(" Alice "), account_key("alice"));
        assert_eq!(account_key("Alice"), "account/alice");
    }

    #[test]
    fn the_account_locks_on_the_configured_failure() {
        let settings = Settings {
            max_failures: 3,
            lockout_secs: 60,
            ..Settings::default()
        };
        let mut acc = account(0, None);
        assert_eq!(acc.record_failure(100, &settings), None);
        assert_eq!(acc.record_failure(101, &settings), None);
        assert_eq!(acc.record_failure(102, &settings), Some(60));
        assert_eq!(acc.locked_until, Some(162));
        assert_eq!(acc.check_lock(130), Err(32));
    }

    #[test]
    fn an_expired_lock_is_cleared_with_the_failure_count() {
        let mut acc = account(5, Some(200));
        assert_eq!(acc.check_lock(200), Ok(()));
        assert_eq!((acc.failures, acc.locked_until), (0, None));
    }

    #[test]
    fn zero_max_failures_disables_lockout() {
        let settings = Settings {
            max_failures: 0,
            ..Settings::default()
        };
        let mut acc = account(0, None);
        for now in 0..50 {
            assert_eq!(acc.record_failure(now, &settings), None);
        }
        assert_eq!(acc.locked_until, None);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut acc = account(2, None);
        assert!(acc.record_success());
        assert_eq!(acc.failures, 0);
        assert!(!acc.record_success());
    }

    #[test]
    fn the_dummy_hash_uses_the_default_parameters() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
        assert_eq!(dummy.version, Some(19));
        let params = Params::try_from(&dummy).unwrap();
        let defaults = Params::default();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (defaults.m_cost(), defaults.t_cost(), defaults.p_cost())
        );
    }

    #[test]
    fn the_dummy_hash_parses_and_rejects_a_guess() {
        assert!(matches!(
            Argon2::default().verify_password(b"hunter2", DUMMY_HASH),
            Err(password_hash::Error::PasswordInvalid)
        ));
    }

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let hash = Argon2::default()
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let argon2 = Argon2::default();
        assert!(
            argon2
                .verify_password(b"correct horse battery", hash.as_str())
                .is_ok()
        );
        assert!(matches!(
            argon2.verify_password(b"wrong horse battery", hash.as_str()),
            Err(password_hash::Error::PasswordInvalid)
        ));
    }

    #[test]
    fn two_hashes_of_one_password_use_different_salts() {
        let a = Argon2::default()
            .hash_password(b"same password 1")
            .unwrap()
            .to_string();
        let b = Argon2::default()
            .hash_password(b"same password 1")
            .unwrap()
            .to_string();
        assert_ne!(a, b);
    }

    #[test]
    fn subjects_are_32_hex_digits_and_unique() {
        let a = new_subject().unwrap();
        let b = new_subject().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn an_account_survives_a_json_round_trip() {
        let acc = account(1, Some(5));
        let bytes = kv::encode(&acc).unwrap();
        assert_eq!(kv::decode::<Account>(&bytes).unwrap(), acc);
    }
}
