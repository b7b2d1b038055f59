//! From verified ID token claims to the [`Identity`] the Panel links, and
//! whether the admin lets that identity create an account.

use cap_plugin_sdk::auth::Identity;
use cap_plugin_sdk::types::KeyValue;
use serde_json::{Map, Value};

/// The admin's rules for usernames and sign-ups (configuration).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    /// The claim the username comes from (then `email`, then `sub`).
    pub(crate) username_claim: String,
    /// The claim the display name comes from.
    pub(crate) display_name_claim: String,
    /// Whether identities with no account may create one.
    pub(crate) allow_signup: bool,
    /// Lowercase email domains sign-ups are limited to; empty: any.
    pub(crate) allowed_email_domains: Vec<String>,
    /// A group sign-ups need; empty: none.
    pub(crate) required_group: String,
    /// The claim holding the groups.
    pub(crate) groups_claim: String,
}

/// Splits a list written with commas or blanks, dropping empty entries.
pub(crate) fn split_list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_start_matches('@').to_ascii_lowercase())
        .collect()
}

fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The identity `claims` (already verified) describe under `rules`.
///
/// The email is kept only when the provider does not say it is
/// unverified (`email_verified: false`), and sign-ups limited to domains
/// need `email_verified: true`: an unverified address proves no domain.
pub(crate) fn identity(claims: &Map<String, Value>, rules: &Rules) -> Identity {
    let subject = text(claims, "sub").unwrap_or_default();
    let verified = claims.get("email_verified").and_then(Value::as_bool);
    let email = text(claims, "email").filter(|_| verified != Some(false));
    let username = text(claims, &rules.username_claim)
        .or_else(|| email.clone())
        .unwrap_or_else(|| subject.clone());
    let groups: Vec<String> = match claims.get(&rules.groups_claim) {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let domain_ok = rules.allowed_email_domains.is_empty()
        || (verified == Some(true)
            && email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .is_some_and(|(_, domain)| {
                    rules
                        .allowed_email_domains
                        .contains(&domain.to_ascii_lowercase())
                }));
    let group_ok = rules.required_group.is_empty() || groups.contains(&rules.required_group);
    let claims_kept = ["iss", "sub", "email_verified"]
        .into_iter()
        .filter_map(|name| {
            claims.get(name).map(|v| KeyValue {
                key: name.to_owned(),
                value: v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            })
        })
        .collect();
    let mut identity = Identity::new(subject, username);
    identity.email = email;
    identity.display_name = text(claims, &rules.display_name_claim);
    identity.groups = groups;
    identity.claims = claims_kept;
    identity.may_create_account = rules.allow_signup && domain_ok && group_ok;
    identity
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Rules {
        Rules {
            username_claim: "preferred_username".into(),
            display_name_claim: "name".into(),
            allow_signup: true,
            allowed_email_domains: Vec::new(),
            required_group: String::new(),
            groups_claim: "groups".into(),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn the_username_falls_back_from_the_claim_to_email_to_sub() {
        let all = claims(json!({"sub": "s1", "preferred_username": "alice", "email": "a@x.org"}));
        assert_eq!(identity(&all, &rules()).username, "alice");
        let no_name = claims(json!({"sub": "s1", "email": "a@x.org"}));
        assert_eq!(identity(&no_name, &rules()).username, "a@x.org");
        let bare = claims(json!({"sub": "s1"}));
        assert_eq!(identity(&bare, &rules()).username, "s1");
    }

    #[test]
    fn sign_ups_follow_the_admins_switch() {
        let c = claims(json!({"sub": "s1"}));
        assert!(identity(&c, &rules()).may_create_account);
        let closed = Rules {
            allow_signup: false,
            ..rules()
        };
        assert!(!identity(&c, &closed).may_create_account);
    }

    #[test]
    fn sign_ups_limited_to_domains_need_a_verified_email_there() {
        let limited = Rules {
            allowed_email_domains: split_list("example.org, @Corp.example"),
            ..rules()
        };
        let ok = claims(json!({"sub": "s", "email": "a@corp.EXAMPLE", "email_verified": true}));
        assert!(identity(&ok, &limited).may_create_account);
        let unverified = claims(json!({"sub": "s", "email": "a@corp.example"}));
        assert!(!identity(&unverified, &limited).may_create_account);
        let elsewhere = claims(json!({"sub": "s", "email": "a@evil.org", "email_verified": true}));
        assert!(!identity(&elsewhere, &limited).may_create_account);
        let lookalike =
            claims(json!({"sub": "s", "email": "a@xexample.org", "email_verified": true}));
        assert!(!identity(&lookalike, &limited).may_create_account);
    }

    #[test]
    fn sign_ups_limited_to_a_group_need_it_in_the_groups_claim() {
        let limited = Rules {
            required_group: "players".into(),
            ..rules()
        };
        let member = claims(json!({"sub": "s", "groups": ["staff", "players"]}));
        assert!(identity(&member, &limited).may_create_account);
        let other = claims(json!({"sub": "s", "groups": ["staff"]}));
        assert!(!identity(&other, &limited).may_create_account);
    }

    #[test]
    fn an_email_the_provider_calls_unverified_is_dropped() {
        let c = claims(json!({"sub": "s", "email": "a@x.org", "email_verified": false}));
        assert_eq!(identity(&c, &rules()).email, None);
    }
}
