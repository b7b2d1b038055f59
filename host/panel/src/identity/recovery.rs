//! Recovery codes: the way back in when the authenticator app is lost.
//!
//! Enabling TOTP issues [`RECOVERY_CODE_COUNT`] codes, shown once. Each is
//! ten characters from a 32-letter alphabet (50 random bits), written as
//! `xxxxx-xxxxx`; only its SHA-256 digest is stored, and each works once.
//! A code is compared after [`normalize`]: case, spaces and dashes do not
//! matter, so people can type what they wrote down.
//!
//! 50 bits are plenty online, where every wrong guess counts toward the
//! second-factor lockout and the rate limits.

use super::tokens::digest;

/// How many codes enabling TOTP issues.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// The alphabet: digits and lowercase letters without `i`, `l`, `o`, `u`,
/// which are easily misread. 32 letters, so one random byte's low five bits
/// pick one uniformly.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Characters in one code, without the dash.
const CODE_LEN: usize = 10;

/// A fresh random code, `xxxxx-xxxxx`.
pub fn generate() -> String {
    let bytes: [u8; CODE_LEN] = rand::random();
    let mut code = String::with_capacity(CODE_LEN + 1);
    for (i, byte) in bytes.iter().enumerate() {
        if i == CODE_LEN / 2 {
            code.push('-');
        }
        code.push(char::from(ALPHABET[usize::from(byte & 31)]));
    }
    code
}

/// `count` fresh codes, all different.
pub fn generate_set(count: usize) -> Vec<String> {
    let mut codes: Vec<String> = Vec::with_capacity(count);
    while codes.len() < count {
        let code = generate();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// The canonical form of a typed code: lowercase, without whitespace and
/// dashes.
pub fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The stored digest of a code, after [`normalize`].
pub fn hash(code: &str) -> String {
    digest(&normalize(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_alphabet_characters_around_a_dash() {
        for code in generate_set(RECOVERY_CODE_COUNT) {
            assert_eq!(code.len(), 11, "{code}");
            assert_eq!(code.as_bytes()[5], b'-', "{code}");
            assert!(
                normalize(&code).bytes().all(|b| ALPHABET.contains(&b)),
                "{code}"
            );
        }
    }

    #[test]
    fn a_set_has_no_duplicates() {
        let mut codes = generate_set(RECOVERY_CODE_COUNT);
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
    }

    #[test]
    fn case_spaces_and_dashes_do_not_change_the_hash() {
        assert_eq!(hash("abcde-fghjk"), hash(" ABCDE FGHJK "));
        assert_eq!(hash("abcde-fghjk"), hash("abcdefghjk"));
        assert_ne!(hash("abcde-fghjk"), hash("abcde-fghjm"));
    }
}
