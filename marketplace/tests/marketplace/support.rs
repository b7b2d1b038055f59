//! Shared fixtures: an in-memory registry (notary + logs) for the
//! verification tests. Packed example plugins come from
//! [`cap_test_support::packages`].

use std::collections::BTreeMap;

use cap_marketplace::keys::SecretKey;
use cap_marketplace::log::{LogEntry, LogEvent, LogHead, Notary, SignedTimestamp};
use cap_marketplace::signing::sign_package;
use cap_runtime::Package;

/// An in-memory registry: the Marketplace's notary and the logs it keeps.
pub(crate) struct Fixture {
    pub(crate) notary: Notary,
    pub(crate) logs: BTreeMap<String, Vec<LogEntry>>,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture {
            notary: Notary::new(SecretKey::from_seed(&[200; 32])),
            logs: BTreeMap::new(),
        }
    }

    pub(crate) fn head(&self, package: &str) -> Option<LogHead> {
        let log = self.logs.get(package)?;
        let last = log.last()?;
        Some(LogHead {
            len: log.len() as u64,
            hash: last.hash(),
        })
    }

    pub(crate) fn append(&mut self, package: &str, time: i64, event: LogEvent) {
        let head = self.head(package);
        let entry = self.notary.append(package, head.as_ref(), time, event);
        self.logs.entry(package.to_owned()).or_default().push(entry);
    }

    pub(crate) fn grant(&mut self, package: &str, key: &SecretKey, time: i64) {
        self.append(
            package,
            time,
            LogEvent::KeyGrant {
                key_id: key.id().clone(),
                public_key: key.public().clone(),
            },
        );
    }

    /// Logs a release of `package` signed by `signer` but claiming `claimed` key.
    pub(crate) fn release_claiming(
        &mut self,
        package: &Package,
        signer: &SecretKey,
        claimed: &SecretKey,
        time: i64,
    ) {
        let plugin = &package.manifest.plugin;
        let author_signature = sign_package(signer, &plugin.id, &plugin.version, &package.sha256);
        let countersignature = self.notary.countersign(
            &plugin.id,
            &plugin.version,
            &package.sha256,
            claimed.id(),
            &author_signature,
        );
        self.append(
            &plugin.id.clone(),
            time,
            LogEvent::Release {
                version: plugin.version.clone(),
                sha256: package.sha256.clone(),
                api: plugin.api.clone(),
                dependencies: package.manifest.dependencies.clone(),
                key_id: claimed.id().clone(),
                author_signature,
                countersignature,
            },
        );
    }

    pub(crate) fn release(&mut self, package: &Package, key: &SecretKey, time: i64) {
        self.release_claiming(package, key, key, time);
    }

    pub(crate) fn timestamp(&self, now: i64, ttl: i64) -> SignedTimestamp {
        let heads = self
            .logs
            .keys()
            .filter_map(|p| self.head(p).map(|h| (p.clone(), h)))
            .collect();
        self.notary.timestamp(heads, now, ttl)
    }
}
