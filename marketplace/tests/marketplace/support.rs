//! Shared fixtures: real packages built from the example plugins, an
//! in-memory registry (notary + logs) for verification tests, and a
//! per-test PostgreSQL database.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use cap_marketplace::keys::SecretKey;
use cap_marketplace::log::{LogEntry, LogEvent, LogHead, Notary, SignedTimestamp};
use cap_marketplace::signing::sign_package;
use cap_runtime::Package;

/// The current time, unix seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Packs example plugin `name` with its `plugin.toml` text passed through
/// `edit` (to change id, version, dependencies or price).
pub(crate) fn pack(name: &str, edit: impl FnOnce(String) -> String) -> (Package, Vec<u8>) {
    static CACHE: Mutex<Option<HashMap<String, Vec<u8>>>> = Mutex::new(None);
    let component = {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get_or_insert_with(HashMap::new)
            .entry(name.to_owned())
            .or_insert_with(|| component(name))
            .clone()
    };
    let path = cap_e2e::repo_root()
        .join("example-plugins")
        .join(name)
        .join("plugin.toml");
    let text = std::fs::read_to_string(&path).expect("reading plugin.toml");
    Package::build(
        edit(text).into_bytes(),
        component,
        BTreeMap::new(),
        u64::MAX,
    )
    .expect("packing the example plugin")
}

/// The example plugin's component. `cap_e2e` builds the example plugins
/// with the calling cargo, which honours `CARGO_TARGET_DIR`; look there too.
fn component(name: &str) -> Vec<u8> {
    let built = cap_e2e::example_plugins();
    let file = format!("{}.wasm", name.replace('-', "_"));
    let mut candidates = vec![built.join(&file)];
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(
            std::path::PathBuf::from(dir)
                .join("wasm32-wasip2/release")
                .join(&file),
        );
    }
    candidates
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .unwrap_or_else(|| panic!("no built component for {name} in {candidates:?}"))
}

/// `pack` with the version changed.
pub(crate) fn pack_version(name: &str, version: &str) -> (Package, Vec<u8>) {
    pack(name, |t| {
        t.replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        )
    })
}

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

/// A fresh database on the PostgreSQL server, dropped by [`PgDb::drop_db`].
pub(crate) struct PgDb {
    admin_url: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl PgDb {
    pub(crate) async fn create() -> PgDb {
        use sqlx::Connection;
        let admin_url = std::env::var("CAP_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url} ({e}); start it or set CAP_TEST_POSTGRES_URL"
            )
        });
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("random");
        let name = format!("cap_mkt_{}", hex::encode(bytes));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin_url).expect("admin URL");
        url.set_path(&format!("/{name}"));
        PgDb {
            admin_url,
            name,
            url: url.to_string(),
        }
    }

    pub(crate) async fn drop_db(self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}

/// A temporary directory only its owner can enter (mode 0700), as the
/// Panel and the Marketplace require of their data directories
/// (`tempfile` creates `0777` minus the umask).
pub(crate) fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod 700 the temporary directory");
    dir
}
