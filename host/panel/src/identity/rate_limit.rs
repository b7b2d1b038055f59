//! A small in-memory token-bucket rate limiter, keyed by strings such as
//! `login:ip:203.0.113.7` or `login:user:alice`.
//!
//! In memory on purpose: limits protect this process from floods and slow
//! down password guessing; they need no durability, and several Panels
//! behind a balancer each enforce their own share. Buckets that have refilled
//! completely are dropped when the map grows, so memory stays bounded by
//! the number of recently active keys.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bucket's shape: `burst` requests at once, then one per `refill`.
///
/// Written `BURST/PERIOD` in configuration, e.g. `20/3s` (20 at once, then
/// one more every 3 seconds); the period takes `ms`, `s`, `m` or `h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Requests allowed at once.
    pub burst: u32,
    /// Time to earn one more request.
    pub refill: Duration,
}

impl Rule {
    /// `burst` requests at once, then one per `refill`.
    pub const fn new(burst: u32, refill: Duration) -> Rule {
        Rule { burst, refill }
    }
}

/// Why a rule's text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0}; expected BURST/PERIOD such as 20/3s (burst at least 1, period 1ms to 24h, unit ms, s, m or h)"
)]
pub struct RuleParseError(String);

impl FromStr for Rule {
    type Err = RuleParseError;

    fn from_str(text: &str) -> Result<Rule, RuleParseError> {
        let text = text.trim();
        let (burst, period) = text
            .split_once('/')
            .ok_or_else(|| RuleParseError(format!("{text:?} has no '/'")))?;
        let burst: u32 = burst
            .trim()
            .parse()
            .map_err(|_| RuleParseError(format!("{burst:?} is not a whole number")))?;
        if burst == 0 {
            return Err(RuleParseError("the burst is 0".into()));
        }
        let period = period.trim();
        let split = period
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| RuleParseError(format!("{period:?} has no unit")))?;
        let (amount, unit) = period.split_at(split);
        let amount: u64 = amount
            .parse()
            .map_err(|_| RuleParseError(format!("{period:?} does not start with a number")))?;
        let refill = match unit {
            "ms" => Duration::from_millis(amount),
            "s" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount.saturating_mul(60)),
            "h" => Duration::from_secs(amount.saturating_mul(3600)),
            other => return Err(RuleParseError(format!("unknown unit {other:?}"))),
        };
        if refill < Duration::from_millis(1) || refill > Duration::from_secs(24 * 3600) {
            return Err(RuleParseError(format!(
                "the period {period:?} is out of range"
            )));
        }
        Ok(Rule::new(burst, refill))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.refill.as_millis();
        if ms.is_multiple_of(3_600_000) {
            write!(f, "{}/{}h", self.burst, ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}/{}m", self.burst, ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}/{}s", self.burst, ms / 1000)
        } else {
            write!(f, "{}/{}ms", self.burst, ms)
        }
    }
}

/// The limits on the identity endpoints. Login, second-factor and token
/// endpoints are stricter than the rest of the API: they are where
/// credentials are guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Logins per client address.
    pub login_per_ip: Rule,
    /// Logins per account name (whatever the address).
    pub login_per_account: Rule,
    /// Token refreshes per client address.
    pub refresh_per_ip: Rule,
    /// Second-factor attempts (login challenges, turning TOTP off) per
    /// client address.
    pub second_factor_per_ip: Rule,
    /// Second-factor attempts per account (whatever the address).
    pub second_factor_per_account: Rule,
    /// Any mutating `/auth/…` or `/account/…` request per client address
    /// (on top of the rules above).
    pub auth_per_ip: Rule,
    /// Any other mutating request (`POST`, `PUT`, `PATCH`, `DELETE`) per
    /// client address.
    pub writes_per_ip: Rule,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            login_per_ip: Rule::new(20, Duration::from_secs(3)),
            login_per_account: Rule::new(10, Duration::from_secs(6)),
            refresh_per_ip: Rule::new(30, Duration::from_secs(2)),
            second_factor_per_ip: Rule::new(20, Duration::from_secs(3)),
            second_factor_per_account: Rule::new(10, Duration::from_secs(30)),
            auth_per_ip: Rule::new(60, Duration::from_secs(1)),
            writes_per_ip: Rule::new(300, Duration::from_millis(50)),
        }
    }
}

impl RateLimits {
    /// The configuration names of the rules, in the order of the fields:
    /// `login-per-ip`, `login-per-account`, `refresh-per-ip`,
    /// `second-factor-per-ip`, `second-factor-per-account`, `auth-per-ip`,
    /// `writes-per-ip`.
    pub const NAMES: [&'static str; 7] = [
        "login-per-ip",
        "login-per-account",
        "refresh-per-ip",
        "second-factor-per-ip",
        "second-factor-per-account",
        "auth-per-ip",
        "writes-per-ip",
    ];

    /// The rule called `name` (see [`RateLimits::NAMES`]), to change it.
    pub fn rule_mut(&mut self, name: &str) -> Option<&mut Rule> {
        match name {
            "login-per-ip" => Some(&mut self.login_per_ip),
            "login-per-account" => Some(&mut self.login_per_account),
            "refresh-per-ip" => Some(&mut self.refresh_per_ip),
            "second-factor-per-ip" => Some(&mut self.second_factor_per_ip),
            "second-factor-per-account" => Some(&mut self.second_factor_per_account),
            "auth-per-ip" => Some(&mut self.auth_per_ip),
            "writes-per-ip" => Some(&mut self.writes_per_ip),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets kept before full ones are swept.
const SWEEP_AT: usize = 10_000;

impl RateLimiter {
    /// Takes one token from `key`'s bucket; `Err(wait)` when it is empty.
    pub fn check(&self, key: &str, rule: Rule) -> Result<(), Duration> {
        let now = Instant::now();
        let burst = f64::from(rule.burst.max(1));
        let per_sec = 1.0 / rule.refill.as_secs_f64().max(1e-3);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= SWEEP_AT {
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_sec).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses_with_the_wait() {
        let limiter = RateLimiter::default();
        let rule = Rule::new(2, Duration::from_secs(60));
        assert!(limiter.check("k", rule).is_ok());
        assert!(limiter.check("k", rule).is_ok());
        let wait = limiter.check("k", rule).expect_err("the third is refused");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert!(limiter.check("other", rule).is_ok());
    }

    #[test]
    fn parses_and_prints_rules_in_burst_slash_period_form() {
        for (text, burst, refill) in [
            ("20/3s", 20, Duration::from_secs(3)),
            (" 5 / 250ms ", 5, Duration::from_millis(250)),
            ("1/2m", 1, Duration::from_secs(120)),
            ("100/1h", 100, Duration::from_secs(3600)),
        ] {
            let rule: Rule = text.parse().expect(text);
            assert_eq!(rule, Rule::new(burst, refill), "{text}");
            assert_eq!(rule.to_string().parse::<Rule>(), Ok(rule), "{text}");
        }
        assert_eq!(Rule::new(20, Duration::from_secs(3)).to_string(), "20/3s");
        for bad in [
            "20", "0/3s", "x/3s", "20/3", "20/3d", "20/0s", "20/25h", "20/s",
        ] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_rule_name_selects_a_different_rule() {
        let mut limits = RateLimits::default();
        for (i, name) in RateLimits::NAMES.iter().enumerate() {
            let rule = limits.rule_mut(name).expect(name);
            *rule = Rule::new(
                u32::try_from(i + 100).expect("small"),
                Duration::from_secs(1),
            );
        }
        assert_eq!(limits.login_per_ip.burst, 100);
        assert_eq!(limits.second_factor_per_account.burst, 104);
        assert_eq!(limits.writes_per_ip.burst, 106);
        assert!(limits.rule_mut("nope").is_none());
    }
}
