//! A small in-memory token-bucket rate limiter, keyed by strings such as
//! `login:ip:203.0.113.7` or `login:user:alice`.
//!
//! In memory on purpose: limits protect this process from floods and slow
//! down password guessing; they need no durability, and several Panels
//! behind a balancer each enforce their own share. Buckets that have refilled
//! completely are dropped when the map grows, so memory stays bounded by
//! the number of recently active keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bucket's shape: `burst` requests at once, then one per `refill`.
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

/// The limits on the identity endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Logins per client address.
    pub login_per_ip: Rule,
    /// Logins per account name (whatever the address).
    pub login_per_account: Rule,
    /// Token refreshes per client address.
    pub refresh_per_ip: Rule,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            login_per_ip: Rule::new(20, Duration::from_secs(3)),
            login_per_account: Rule::new(10, Duration::from_secs(6)),
            refresh_per_ip: Rule::new(30, Duration::from_secs(2)),
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
}
