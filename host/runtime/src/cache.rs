//! On-disk cache of compiled components.
//!
//! Artifacts are keyed by the component's sha256 and a fingerprint of the
//! engine (wasmtime version and every setting that affects code), and each
//! file carries an HMAC-SHA256 over its key and contents made with a secret
//! that only this cache holds (`cache.key`, mode 0600). Deserializing
//! precompiled code is only sound for code this process's configuration
//! produced, so a file whose tag does not verify — tampered, truncated, or
//! written by anyone else — is never deserialized: it is deleted and the
//! component is compiled again.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

const MAGIC: &[u8; 8] = b"CAPART01";
const TAG_LEN: usize = 32;

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Filesystem trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The key file exists but is malformed.
    #[error("{0}: not a valid cache key file")]
    BadKey(PathBuf),
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A verified artifact.
    Hit(Vec<u8>),
    /// Nothing cached.
    Miss,
    /// A file was there but failed verification; it has been removed.
    Rejected(String),
}

/// The artifact cache.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let key_path = dir.join("cache.key");
        let key = match fs::read(&key_path) {
            Ok(bytes) => bytes
                .try_into()
                .map_err(|_| CacheError::BadKey(key_path.clone()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(&key_path)?,
            Err(e) => return Err(io(&key_path)(e)),
        };
        Ok(Self { dir, key })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the artifact for `component_sha256` under `fingerprint`.
    pub fn path_for(&self, component_sha256: &str, fingerprint: &str) -> PathBuf {
        self.dir
            .join(format!("{component_sha256}-{fingerprint}.cwasm"))
    }

    fn tag(&self, name: &str, payload: &[u8]) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(&(name.len() as u64).to_le_bytes());
        mac.update(name.as_bytes());
        mac.update(payload);
        mac
    }

    /// Looks up a verified artifact.
    pub fn get(&self, component_sha256: &str, fingerprint: &str) -> Lookup {
        let path = self.path_for(component_sha256, fingerprint);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(_) => return Lookup::Miss,
        };
        let reject = |why: &str| {
            let _ = fs::remove_file(&path);
            tracing::warn!(path = %path.display(), why, "refusing a cached artifact");
            Lookup::Rejected(format!("{}: {why}", path.display()))
        };
        if bytes.len() < MAGIC.len() + TAG_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return reject("not an artifact written by this cache");
        }
        let (tag, payload) = bytes[MAGIC.len()..].split_at(TAG_LEN);
        let name = format!("{component_sha256}-{fingerprint}");
        // `verify_slice` compares in constant time.
        if self.tag(&name, payload).verify_slice(tag).is_err() {
            return reject("authentication tag does not match (tampered or foreign file)");
        }
        Lookup::Hit(payload.to_vec())
    }

    /// Stores an artifact atomically (temp file + rename).
    pub fn put(
        &self,
        component_sha256: &str,
        fingerprint: &str,
        artifact: &[u8],
    ) -> Result<(), CacheError> {
        let path = self.path_for(component_sha256, fingerprint);
        let name = format!("{component_sha256}-{fingerprint}");
        let tag = self.tag(&name, artifact).finalize().into_bytes();
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io(&self.dir))?;
        tmp.write_all(MAGIC)
            .and_then(|_| tmp.write_all(&tag))
            .and_then(|_| tmp.write_all(artifact))
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
        Ok(())
    }
}

/// A new key at `key_path`, or the key another runtime opening the same
/// cache wrote first. The key is written whole to a file of its own and
/// then linked into place, which fails if a key is there already: so a
/// key file is never seen half-written, and two runtimes opening one new
/// cache at once agree on one key.
fn create_key(key_path: &Path) -> Result<[u8; 32], CacheError> {
    let key: [u8; 32] = rand::random();
    let staged = key_path.with_extension(format!("key.{:016x}", rand::random::<u64>()));
    write_private(&staged, &key)?;
    let linked = fs::hard_link(&staged, key_path);
    let _ = fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => fs::read(key_path)
            .map_err(io(key_path))?
            .try_into()
            .map_err(|_| CacheError::BadKey(key_path.to_path_buf())),
        Err(e) => Err(io(key_path)(e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// A stable fingerprint of everything that makes compiled code valid for an
/// engine.
pub fn engine_fingerprint(engine: &wasmtime::Engine) -> String {
    use std::hash::{Hash, Hasher};
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(b"cap-runtime/");
    h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    hex::encode(&h.0.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_verifies_artifacts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ArtifactCache::open(dir.path()).expect("open");
        assert!(matches!(cache.get("abc", "fp"), Lookup::Miss));
        cache.put("abc", "fp", b"compiled code").expect("put");
        assert!(matches!(cache.get("abc", "fp"), Lookup::Hit(b) if b == b"compiled code"));
        // The same key survives reopening.
        let again = ArtifactCache::open(dir.path()).expect("reopen");
        assert!(matches!(again.get("abc", "fp"), Lookup::Hit(_)));
    }

    #[test]
    fn refuses_and_removes_a_tampered_artifact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ArtifactCache::open(dir.path()).expect("open");
        cache.put("abc", "fp", b"compiled code").expect("put");
        let path = cache.path_for("abc", "fp");
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).expect("write");
        assert!(matches!(cache.get("abc", "fp"), Lookup::Rejected(_)));
        assert!(!path.exists(), "the rejected file is removed");
    }

    #[test]
    fn refuses_an_artifact_written_with_another_key() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let cache_a = ArtifactCache::open(a.path()).expect("open");
        let cache_b = ArtifactCache::open(b.path()).expect("open");
        cache_a.put("abc", "fp", b"compiled code").expect("put");
        fs::copy(cache_a.path_for("abc", "fp"), cache_b.path_for("abc", "fp")).expect("copy");
        assert!(matches!(cache_b.get("abc", "fp"), Lookup::Rejected(_)));
    }

    #[test]
    fn caches_opened_at_once_in_one_new_directory_agree_on_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let caches: Vec<ArtifactCache> = std::thread::scope(|scope| {
            let opening: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| ArtifactCache::open(dir.path()).expect("open")))
                .collect();
            opening
                .into_iter()
                .map(|t| t.join().expect("joins"))
                .collect()
        });
        caches[0].put("abc", "fp", b"compiled code").expect("put");
        for cache in &caches {
            assert!(matches!(cache.get("abc", "fp"), Lookup::Hit(_)));
        }
        let left: Vec<_> = fs::read_dir(dir.path()).expect("lists").collect();
        assert_eq!(
            left.len(),
            2,
            "the key and the artifact, no staged key left"
        );
    }

    #[test]
    fn binds_the_tag_to_the_file_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ArtifactCache::open(dir.path()).expect("open");
        cache.put("abc", "fp", b"compiled code").expect("put");
        fs::rename(cache.path_for("abc", "fp"), cache.path_for("def", "fp")).expect("rename");
        assert!(matches!(cache.get("def", "fp"), Lookup::Rejected(_)));
    }

    #[cfg(unix)]
    #[test]
    fn keeps_the_key_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        ArtifactCache::open(dir.path()).expect("open");
        let mode = fs::metadata(dir.path().join("cache.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
