//! Concurrency bounds by key: at most `n` holders of one key's slots at
//! once, such as one login per account or a few logins per client address.
//!
//! # Why
//!
//! - **One login per account at a time.** A password provider keeps its
//!   failure count in plugin KV, which the frozen 0.1.0 WIT offers only as
//!   `get` and `set`: concurrent guesses each read the same count and each
//!   write it back one higher, so fifty parallel guesses cost the attacker
//!   one step of the lockout instead of fifty. Holding an account's only
//!   slot around the provider call makes that read-modify-write happen one
//!   attempt after the other; the lockout threshold is then exact.
//! - **A few provider calls per client address.** Logins are expensive
//!   (argon2) and run in a bounded number of plugin instances; one address
//!   must not take them all, so past its slots a client is answered `429`
//!   at once instead of queueing.
//!
//! # Memory
//!
//! Entries live only while someone holds or waits for a slot of their key:
//! the last [`Slot`] dropped removes its key. A waiter that gives up (its
//! request was cancelled) can leave an idle entry behind; idle entries are
//! swept once the map reaches [`SWEEP_AT`] keys, so the map stays bounded by
//! the number of requests in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Keys kept before idle ones are swept.
pub const SWEEP_AT: usize = 10_000;

/// Slots by key. Cheap to clone; clones share the slots.
#[derive(Debug, Clone)]
pub struct KeyedSlots {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    per_key: usize,
    map: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    key: String,
    owner: Arc<Inner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut map = self.owner.map.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            map.remove(&self.key);
        }
    }
}

impl KeyedSlots {
    /// `per_key` slots for every key (at least one).
    pub fn new(per_key: usize) -> KeyedSlots {
        KeyedSlots {
            inner: Arc::new(Inner {
                per_key: per_key.max(1),
                map: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn semaphore(&self, key: &str) -> Arc<Semaphore> {
        let mut map = self.inner.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT && !map.contains_key(key) {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        Arc::clone(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.inner.per_key))),
        )
    }

    fn slot(&self, key: &str, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            permit: Some(permit),
            key: key.to_owned(),
            owner: Arc::clone(&self.inner),
        }
    }

    /// Waits for a slot of `key`; callers are served in arrival order.
    pub async fn acquire(&self, key: &str) -> Slot {
        let semaphore = self.semaphore(key);
        match semaphore.acquire_owned().await {
            Ok(permit) => self.slot(key, permit),
            // Our semaphores are never closed.
            Err(_) => unreachable!("a keyed slot semaphore was closed"),
        }
    }

    /// A slot of `key` if one is free now.
    pub fn try_acquire(&self, key: &str) -> Option<Slot> {
        let semaphore = self.semaphore(key);
        let permit = semaphore.try_acquire_owned().ok()?;
        Some(self.slot(key, permit))
    }

    /// Keys with an entry now (held, waited for, or idle until the sweep).
    pub fn len(&self) -> usize {
        self.inner
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no key has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_has_only_its_slots_and_forgets_them_when_released() {
        let slots = KeyedSlots::new(2);
        let a = slots.try_acquire("k").expect("first");
        let b = slots.try_acquire("k").expect("second");
        assert!(slots.try_acquire("k").is_none(), "a third slot of k");
        let other = slots.try_acquire("other").expect("another key is free");
        drop(a);
        let c = slots.try_acquire("k").expect("a freed slot");
        drop((b, c, other));
        assert!(slots.is_empty(), "released keys are forgotten");
    }

    #[tokio::test]
    async fn a_waiter_gets_the_slot_when_the_holder_lets_go() {
        let slots = KeyedSlots::new(1);
        let held = slots.acquire("k").await;
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.acquire("k").await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the waiter waits");
        drop(held);
        waiter.await.expect("the waiter got the slot");
        assert!(slots.is_empty());
    }
}
