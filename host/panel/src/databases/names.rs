//! The names, user names, passwords and host patterns of servers'
//! databases: what users may pick, and what the Panel generates.
//!
//! A database is named `s<8>_<name>`: the server's prefix (`s` and the
//! last 8 hex digits of its id, as its SFTP user name ends) and the name
//! the user picked (`[a-z0-9_]`, at most [`MAX_NAME`] characters), 58
//! characters at most, under both servers' limits (MySQL 64, PostgreSQL
//! 63). Its user is `u<8>_<6 random>`, 16 characters (MySQL's limit is
//! 32), and its password [`PASSWORD_LEN`] random letters and digits.

use sha2::{Digest as _, Sha256};

/// The longest name a user may pick.
pub const MAX_NAME: usize = 48;
/// The longest MySQL host pattern.
pub const MAX_REMOTE: usize = 255;
/// The length of generated passwords.
pub const PASSWORD_LEN: usize = 32;
/// Random characters at the end of a generated user name.
const USER_SUFFIX: usize = 6;

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALPHANUMERIC: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `count` characters of `alphabet`, each uniformly random (bytes that
/// would favour the first letters are drawn again).
fn random_text(alphabet: &[u8], count: usize) -> String {
    let len = alphabet.len();
    // The largest multiple of `len` a byte reaches: bytes from it up are
    // refused, so that every letter is equally likely.
    let limit = 256 - 256 % len;
    let mut out = String::with_capacity(count);
    while out.len() < count {
        let bytes: [u8; 32] = rand::random();
        for byte in bytes {
            if usize::from(byte) < limit && out.len() < count {
                out.push(char::from(alphabet[usize::from(byte) % len]));
            }
        }
    }
    out
}

/// 8 lowercase hex digits that stand for server `server_id`: the last 8
/// of its id (`srv_<32 hex>`), or of the SHA-256 of an id that has none.
fn server_tag(server_id: &str) -> String {
    let hex: Vec<char> = server_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() >= 8 && server_id.starts_with("srv_") {
        hex[hex.len() - 8..].iter().collect()
    } else {
        hex::encode(Sha256::digest(server_id.as_bytes()))[..8].to_owned()
    }
}

/// The prefix of server `server_id`'s database names: `s<8 hex>_`.
pub fn prefix(server_id: &str) -> String {
    format!("s{}_", server_tag(server_id))
}

/// The full name of database `name` of server `server_id`.
pub fn database_name(server_id: &str, name: &str) -> String {
    format!("{}{name}", prefix(server_id))
}

/// A fresh user name for a database of server `server_id`.
pub fn username(server_id: &str) -> String {
    format!(
        "u{}_{}",
        server_tag(server_id),
        random_text(LOWER_ALPHANUMERIC, USER_SUFFIX)
    )
}

/// A fresh password: [`PASSWORD_LEN`] random ASCII letters and digits.
pub fn password() -> String {
    random_text(ALPHANUMERIC, PASSWORD_LEN)
}

/// What is wrong with `name` as the part of a database name a user
/// picks, if anything.
///
/// # Errors
///
/// The problem, for the `name` field.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("must be 1 to {MAX_NAME} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(
            "may hold only lowercase letters a-z, digits and underscores (`[a-z0-9_]`)".into(),
        );
    }
    Ok(())
}

/// What is wrong with `remote` as a MySQL host pattern (where a
/// database's user may connect from: `%` for anywhere, `10.0.0.%`,
/// `192.168.1.0/255.255.255.0`, `game-1.example.org`), if anything.
///
/// # Errors
///
/// The problem, for the `remote` field.
pub fn check_remote(remote: &str) -> Result<(), String> {
    if remote.is_empty() || remote.len() > MAX_REMOTE {
        return Err(format!("must be 1 to {MAX_REMOTE} characters"));
    }
    if !remote
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".%_:/-".contains(&b))
    {
        return Err(
            "may hold only letters, digits and `. % _ : / -` (a host name, an address or a pattern such as 10.0.0.%)"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_servers_prefix_and_fit_both_servers() {
        let server = "srv_0190a1b2c3d4e5f60718293a4b5c6d7e";
        assert_eq!(prefix(server), "s4b5c6d7e_");
        let full = database_name(server, &"x".repeat(MAX_NAME));
        assert!(full.len() <= 63, "{full}");
        let user = username(server);
        assert!(user.starts_with("u4b5c6d7e_") && user.len() == 16, "{user}");
        assert!(super::super::remote::valid_identifier(&user));
        assert_ne!(username(server), username(server));
        assert_eq!(prefix("odd-id").len(), 10);
    }

    #[test]
    fn passwords_are_long_alphanumeric_and_differ() {
        let one = password();
        assert_eq!(one.len(), PASSWORD_LEN);
        assert!(one.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(super::super::remote::valid_password(&one));
        assert_ne!(one, password());
    }

    #[test]
    fn bad_names_and_patterns_are_refused() {
        assert!(check_name("world_1").is_ok());
        for bad in [
            "",
            "World",
            "a-b",
            "a b",
            "a;b",
            "ä",
            &"a".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "%",
            "10.0.0.%",
            "192.168.1.0/255.255.255.0",
            "game-1.example.org",
            "::1",
        ] {
            assert!(check_remote(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "'%'",
            "a b",
            "%\"",
            "a\\b",
            "a;b",
            &"a".repeat(MAX_REMOTE + 1),
        ] {
            assert!(check_remote(bad).is_err(), "{bad:?}");
        }
    }
}
