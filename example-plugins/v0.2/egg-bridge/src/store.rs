//! Keeping eggs in the plugin's key-value store, all of an import or none
//! of it.
//!
//! KV values are at most 1 MiB and eggs up to 4 MiB, and KV has no
//! transactions: one `set` is the only atomic step. So an egg is kept in
//! two parts:
//!
//! - its bytes, as imported, in chunks of at most 1 MiB under
//!   `data/<digest>/<n>`, where `<digest>` is the first 32 hex digits of
//!   the bytes' SHA-256: fresh keys for new bytes, never overwritten with
//!   other bytes;
//! - a *record* naming the game type, its generation and the data:
//!   `egg/<id>/<generation>.<digest>.<chunks>`, the generation ten digits.
//!   Everything is in the key, so that one `list-keys` lists the
//!   catalogue.
//!
//! An import writes the data first and the record last. Until the record
//! is written nothing lists the egg, and a failed write deletes what the
//! import wrote: a failed import leaves nothing behind. The new record has
//! the next generation; once it is written the records of older
//! generations (and their data) are deleted. A game type whose older
//! records survive a failure in between is still read from its newest
//! record, so readers see the old egg or the new one, never a mix.
//! `remove` deletes records oldest first, so a failure half-way leaves the
//! newest, unchanged.
//!
//! Two imports of one id at once both write a record of the same
//! generation; the larger digest wins, deterministically, for every reader.
//! Records are per game type, so imports of different eggs never undo each
//! other (a single index value would lose one of two concurrent updates).
//!
//! What a trapped call (a deadline) leaves is invisible: data without a
//! record, or an older record beside a newer one. Nothing sweeps the
//! former; it is bounded by the calls that trap.

use std::collections::BTreeMap;

use cap_plugin_sdk::types::CapabilityError;
use sha2::{Digest, Sha256};

/// Largest value written: the host's limit, 1 MiB.
pub(crate) const CHUNK_BYTES: usize = 1024 * 1024;

/// The most game types kept: the host lists at most 1000 game types per
/// plugin and 1000 keys per `list-keys` call; this leaves room for older
/// records that a trapped call left beside newer ones.
pub(crate) const MAX_ENTRIES: usize = 900;

/// Keys listed per `list-keys` call (the host's maximum).
const LIST_LIMIT: u32 = 1000;

/// The key-value store, as the host offers it (a trait so that the
/// store's logic is tested on the host, failures included).
pub(crate) trait Kv {
    /// The value under `key`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CapabilityError>;
    /// Stores `value` under `key`.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), CapabilityError>;
    /// Deletes `key`; whether it existed.
    fn delete(&self, key: &str) -> Result<bool, CapabilityError>;
    /// Keys starting with `prefix`, sorted, at most `limit`.
    fn list(&self, prefix: &str, limit: u32) -> Result<Vec<String>, CapabilityError>;
}

/// The host's store (capability `kv`).
pub(crate) struct HostKv;

impl Kv for HostKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CapabilityError> {
        cap_plugin_sdk::kv::get(key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), CapabilityError> {
        cap_plugin_sdk::kv::set(key, value)
    }

    fn delete(&self, key: &str) -> Result<bool, CapabilityError> {
        cap_plugin_sdk::kv::delete(key)
    }

    fn list(&self, prefix: &str, limit: u32) -> Result<Vec<String>, CapabilityError> {
        cap_plugin_sdk::kv::list_keys(prefix, limit)
    }
}

/// One record: which bytes are the game type `id` now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Record {
    /// The game type.
    pub(crate) id: String,
    /// Higher is newer.
    pub(crate) generation: u64,
    /// The data's digest (32 hex digits).
    pub(crate) digest: String,
    /// How many chunks the data has.
    pub(crate) chunks: usize,
}

impl Record {
    fn key(&self) -> String {
        format!(
            "egg/{}/{:010}.{}.{}",
            self.id, self.generation, self.digest, self.chunks
        )
    }

    fn parse(key: &str) -> Option<Record> {
        let rest = key.strip_prefix("egg/")?;
        let (id, name) = rest.split_once('/')?;
        let mut parts = name.split('.');
        let generation = parts.next()?.parse().ok()?;
        let digest = parts.next()?;
        let chunks = parts.next()?.parse().ok()?;
        let ok = parts.next().is_none()
            && digest.len() == 32
            && digest.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Record {
            id: id.to_owned(),
            generation,
            digest: digest.to_owned(),
            chunks,
        })
    }

    fn chunk_key(&self, n: usize) -> String {
        chunk_key(&self.digest, n)
    }
}

fn chunk_key(digest: &str, n: usize) -> String {
    format!("data/{digest}/{n}")
}

/// The first 32 hex digits of the SHA-256 of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why the store failed.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// The host's store refused or failed.
    Kv(CapabilityError),
    /// A kept egg's data is missing or not what its record names.
    Corrupt(String),
    /// [`MAX_ENTRIES`] game types are kept already.
    Full,
    /// The id is kept and the write was not to replace it.
    Exists,
}

impl From<CapabilityError> for StoreError {
    fn from(error: CapabilityError) -> Self {
        StoreError::Kv(error)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Kv(e) => write!(f, "the key-value store: {}: {}", e.code(), e.detail()),
            StoreError::Corrupt(why) => write!(f, "a kept egg is damaged: {why}"),
            StoreError::Full => write!(f, "{MAX_ENTRIES} eggs are kept already"),
            StoreError::Exists => write!(f, "an egg with this id is kept already"),
        }
    }
}

/// Every key under `prefix`. Record ids start with a letter, so a listing
/// the host cut at its limit is redone one first letter at a time.
fn keys(kv: &dyn Kv, prefix: &str) -> Result<Vec<String>, CapabilityError> {
    let keys = kv.list(prefix, LIST_LIMIT)?;
    if keys.len() < LIST_LIMIT as usize || prefix != "egg/" {
        return Ok(keys);
    }
    let mut all = Vec::new();
    for letter in 'a'..='z' {
        all.extend(kv.list(&format!("egg/{letter}"), LIST_LIMIT)?);
    }
    Ok(all)
}

/// The newest record of every kept game type, by id.
pub(crate) fn records(kv: &dyn Kv) -> Result<BTreeMap<String, Record>, CapabilityError> {
    let mut newest: BTreeMap<String, Record> = BTreeMap::new();
    for record in keys(kv, "egg/")?.iter().filter_map(|k| Record::parse(k)) {
        match newest.get(&record.id) {
            Some(kept) if *kept >= record => {}
            _ => {
                newest.insert(record.id.clone(), record);
            }
        }
    }
    Ok(newest)
}

/// Every record of game type `id`, oldest first.
fn records_of(kv: &dyn Kv, id: &str) -> Result<Vec<Record>, CapabilityError> {
    let mut records: Vec<Record> = keys(kv, &format!("egg/{id}/"))?
        .iter()
        .filter_map(|k| Record::parse(k))
        .filter(|r| r.id == id)
        .collect();
    records.sort();
    Ok(records)
}

/// The newest record of `id`, if it is kept.
pub(crate) fn record(kv: &dyn Kv, id: &str) -> Result<Option<Record>, CapabilityError> {
    Ok(records_of(kv, id)?.pop())
}

/// The bytes `record` names, checked against its digest.
pub(crate) fn read(kv: &dyn Kv, record: &Record) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    for n in 0..record.chunks {
        let chunk = kv
            .get(&record.chunk_key(n))?
            .ok_or_else(|| StoreError::Corrupt(format!("{}: chunk {n} is missing", record.id)))?;
        bytes.extend_from_slice(&chunk);
    }
    if digest(&bytes) != record.digest {
        return Err(StoreError::Corrupt(format!(
            "{}: the data does not match its digest",
            record.id
        )));
    }
    Ok(bytes)
}

/// Keeps `bytes` as game type `id`: data first, then the record of the
/// next generation, then older generations are deleted.
///
/// # Errors
///
/// [`StoreError::Exists`] when `id` is kept and `replace` is false
/// (nothing is written), [`StoreError::Full`], or the store's failure:
/// whatever this call wrote is deleted again (as far as the store lets
/// it), and what was kept before is unchanged.
pub(crate) fn write(
    kv: &dyn Kv,
    id: &str,
    bytes: &[u8],
    replace: bool,
) -> Result<Record, StoreError> {
    let older = records_of(kv, id)?;
    if !older.is_empty() && !replace {
        return Err(StoreError::Exists);
    }
    if older.is_empty() && records(kv)?.len() >= MAX_ENTRIES {
        return Err(StoreError::Full);
    }
    let record = Record {
        id: id.to_owned(),
        generation: older.last().map_or(1, |r| r.generation + 1),
        digest: digest(bytes),
        chunks: bytes.len().div_ceil(CHUNK_BYTES).max(1),
    };
    // Data the same bytes already have (a re-import) is theirs: a failed
    // write must not delete it.
    let shared = older.iter().any(|r| r.digest == record.digest);
    let mut written = 0;
    let outcome = (|| {
        for n in 0..record.chunks {
            let end = ((n + 1) * CHUNK_BYTES).min(bytes.len());
            kv.set(&record.chunk_key(n), &bytes[n * CHUNK_BYTES..end])?;
            written = n + 1;
        }
        kv.set(&record.key(), bytes.len().to_string().as_bytes())
    })();
    if let Err(error) = outcome {
        if !shared {
            for n in 0..written {
                let _ = kv.delete(&record.chunk_key(n));
            }
        }
        return Err(error.into());
    }
    for old in &older {
        forget(kv, old, Some(&record.digest));
    }
    Ok(record)
}

/// Removes game type `id`: its records, oldest first, each with its data.
/// `Ok(false)` when it is not kept.
///
/// # Errors
///
/// [`StoreError::Kv`] when a record cannot be deleted; the newest record
/// is deleted last, so the egg is then still kept as it was.
pub(crate) fn remove(kv: &dyn Kv, id: &str) -> Result<bool, StoreError> {
    let records = records_of(kv, id)?;
    if records.is_empty() {
        return Ok(false);
    }
    for (i, record) in records.iter().enumerate() {
        kv.delete(&record.key())?;
        // A newer record of the same bytes (left by a trapped call) still
        // needs them.
        if !records[i + 1..].iter().any(|r| r.digest == record.digest) {
            delete_data(kv, record, None);
        }
    }
    Ok(true)
}

/// Deletes an older record and its data (unless `keep` is its digest);
/// failures are logged, since the newer record already rules.
fn forget(kv: &dyn Kv, record: &Record, keep: Option<&str>) {
    if let Err(e) = kv.delete(&record.key()) {
        cap_plugin_sdk::log::warn!("cannot delete {}: {}", record.key(), e.detail());
        return;
    }
    delete_data(kv, record, keep);
}

fn delete_data(kv: &dyn Kv, record: &Record, keep: Option<&str>) {
    if keep == Some(record.digest.as_str()) {
        return;
    }
    for n in 0..record.chunks {
        if let Err(e) = kv.delete(&record.chunk_key(n)) {
            cap_plugin_sdk::log::warn!("cannot delete {}: {}", record.chunk_key(n), e.detail());
        }
    }
}

#[cfg(test)]
pub(crate) mod memory {
    //! An in-memory [`Kv`] whose writes can be made to fail.

    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    use cap_plugin_sdk::types::CapabilityError;

    use super::Kv;

    /// The store; with `fail_write` at `Some(n)`, the write (set or
    /// delete) after the next `n` fails, once.
    #[derive(Default)]
    pub(crate) struct MemoryKv {
        pub(crate) map: RefCell<BTreeMap<String, Vec<u8>>>,
        pub(crate) fail_write: Cell<Option<usize>>,
    }

    impl MemoryKv {
        fn write(&self) -> Result<(), CapabilityError> {
            match self.fail_write.get() {
                Some(0) => {
                    self.fail_write.set(None);
                    Err(CapabilityError::Unavailable("the store is down".into()))
                }
                Some(n) => {
                    self.fail_write.set(Some(n - 1));
                    Ok(())
                }
                None => Ok(()),
            }
        }
    }

    impl Kv for MemoryKv {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CapabilityError> {
            Ok(self.map.borrow().get(key).cloned())
        }

        fn set(&self, key: &str, value: &[u8]) -> Result<(), CapabilityError> {
            assert!(
                value.len() <= super::CHUNK_BYTES,
                "{key}: {} bytes",
                value.len()
            );
            assert!(key.len() <= 256, "{key}");
            self.write()?;
            self.map.borrow_mut().insert(key.to_owned(), value.to_vec());
            Ok(())
        }

        fn delete(&self, key: &str) -> Result<bool, CapabilityError> {
            self.write()?;
            Ok(self.map.borrow_mut().remove(key).is_some())
        }

        fn list(&self, prefix: &str, limit: u32) -> Result<Vec<String>, CapabilityError> {
            Ok(self
                .map
                .borrow()
                .keys()
                .filter(|k| k.starts_with(prefix))
                .take(limit as usize)
                .cloned()
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryKv;
    use super::*;

    fn big(n: usize, fill: u8) -> Vec<u8> {
        vec![fill; n]
    }

    #[test]
    fn a_three_megabyte_egg_is_kept_in_chunks_and_read_back_whole() {
        let kv = MemoryKv::default();
        let bytes = big(3 * CHUNK_BYTES + 5, b'x');
        let record = write(&kv, "big", &bytes, false).expect("kept");
        assert_eq!(record.chunks, 4);
        assert_eq!(read(&kv, &record).expect("read"), bytes);
        assert_eq!(records(&kv).expect("listed").len(), 1);
    }

    #[test]
    fn a_write_that_fails_half_way_leaves_nothing_and_the_old_egg_as_it_was() {
        let kv = MemoryKv::default();
        let old = write(&kv, "game", b"old egg", false).expect("kept");
        let before = kv.map.borrow().clone();
        // Three chunks and the record: each write in turn fails.
        for allowed in 0..4 {
            kv.fail_write.set(Some(allowed));
            let bytes = big(2 * CHUNK_BYTES + 1, b'n');
            assert!(
                write(&kv, "game", &bytes, true).is_err(),
                "{allowed} writes"
            );
            assert_eq!(*kv.map.borrow(), before, "after {allowed} writes");
            assert_eq!(record(&kv, "game").expect("listed"), Some(old.clone()));
        }
    }

    #[test]
    fn a_replacement_is_the_next_generation_and_the_old_data_goes() {
        let kv = MemoryKv::default();
        write(&kv, "game", b"one", false).expect("kept");
        assert!(matches!(
            write(&kv, "game", b"two", false),
            Err(StoreError::Exists)
        ));
        let second = write(&kv, "game", b"two", true).expect("replaced");
        assert_eq!(second.generation, 2);
        assert_eq!(read(&kv, &second).expect("read"), b"two");
        let keys: Vec<String> = kv.map.borrow().keys().cloned().collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
    }

    #[test]
    fn re_importing_the_same_bytes_keeps_their_data() {
        let kv = MemoryKv::default();
        write(&kv, "game", b"same", false).expect("kept");
        let again = write(&kv, "game", b"same", true).expect("replaced");
        assert_eq!(read(&kv, &again).expect("read"), b"same");
    }

    #[test]
    fn the_newest_record_wins_over_an_older_one_left_behind() {
        let kv = MemoryKv::default();
        let one = write(&kv, "game", b"one", false).expect("kept");
        // A trapped replacement: the new record is written, the old one
        // not yet deleted.
        let two = Record {
            generation: 2,
            digest: digest(b"two"),
            chunks: 1,
            ..one.clone()
        };
        kv.set(&two.chunk_key(0), b"two").expect("set");
        kv.set(&two.key(), b"3").expect("set");
        assert_eq!(records(&kv).expect("listed")["game"], two);
        assert_eq!(read(&kv, &two).expect("read"), b"two");
    }

    #[test]
    fn removing_deletes_the_newest_record_last() {
        let kv = MemoryKv::default();
        write(&kv, "game", b"one", false).expect("kept");
        let two = write(&kv, "game", b"two", true).expect("replaced");
        // A trapped replacement left the first record behind.
        let one = Record {
            generation: 1,
            digest: digest(b"one"),
            ..two.clone()
        };
        kv.set(&one.chunk_key(0), b"one").expect("set");
        kv.set(&one.key(), b"3").expect("set");
        // Deleting the old record, its data, then the newest record: fails.
        kv.fail_write.set(Some(2));
        assert!(remove(&kv, "game").is_err());
        assert_eq!(record(&kv, "game").expect("listed"), Some(two));
        assert!(remove(&kv, "game").expect("removed"));
        assert!(kv.map.borrow().is_empty());
        assert!(!remove(&kv, "game").expect("answered"));
    }

    #[test]
    fn damaged_data_is_reported_not_parsed() {
        let kv = MemoryKv::default();
        let record = write(&kv, "game", b"egg", false).expect("kept");
        kv.set(&record.chunk_key(0), b"EGG").expect("set");
        assert!(matches!(read(&kv, &record), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_record_key_reads_back_as_the_record() {
        let record = Record {
            id: "counter-strike-global-offensive".into(),
            generation: 12,
            digest: digest(b"x"),
            chunks: 3,
        };
        assert_eq!(Record::parse(&record.key()), Some(record));
        assert_eq!(Record::parse("egg/x/1.abc.1"), None);
        assert_eq!(Record::parse("data/x/1"), None);
    }

    #[test]
    fn a_listing_cut_at_the_hosts_limit_is_completed_letter_by_letter() {
        let kv = MemoryKv::default();
        for i in 0..1005 {
            let record = Record {
                id: format!("{}-{i}", if i % 2 == 0 { "a" } else { "z" }),
                generation: 1,
                digest: digest(b"x"),
                chunks: 1,
            };
            kv.map.borrow_mut().insert(record.key(), b"1".to_vec());
        }
        assert_eq!(records(&kv).expect("listed").len(), 1005);
    }
}
