//! The registry's database: publishers, keys, packages, releases and logs,
//! through `sqlx::Any` so one set of queries serves SQLite and PostgreSQL.
//!
//! Queries use `$n` placeholders and portable types only (`TEXT`,
//! `BIGINT`; flags are `0`/`1`, lists are `,a,b,` strings matched with
//! `LIKE`). Every change that touches a log runs in one transaction with
//! the log append, so a package row, a release and its log entry appear
//! together or not at all. The log's `(package_id, seq)` primary key turns
//! a concurrent append into a unique violation instead of a fork.

use std::collections::BTreeMap;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::keys::{KeyId, PublicKey};
use crate::log::{LogEntry, LogEvent, LogHead, Notary};
use crate::signing::{Keyring, Revocation};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS publishers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS publisher_keys (
    key_id TEXT PRIMARY KEY,
    publisher_id TEXT NOT NULL REFERENCES publishers(id),
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT
);
CREATE TABLE IF NOT EXISTS packages (
    id TEXT PRIMARY KEY,
    publisher_id TEXT NOT NULL REFERENCES publishers(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    kinds TEXT NOT NULL,
    games TEXT NOT NULL,
    paid BIGINT NOT NULL,
    downloads BIGINT NOT NULL,
    latest_version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    package_id TEXT NOT NULL REFERENCES packages(id),
    version TEXT NOT NULL,
    major BIGINT NOT NULL,
    minor BIGINT NOT NULL,
    patch BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    api TEXT NOT NULL,
    dependencies TEXT NOT NULL,
    key_id TEXT NOT NULL,
    author_signature TEXT NOT NULL,
    countersignature TEXT NOT NULL,
    yanked BIGINT NOT NULL,
    yank_reason TEXT,
    downloads BIGINT NOT NULL,
    published_at BIGINT NOT NULL,
    PRIMARY KEY (package_id, version)
);
CREATE TABLE IF NOT EXISTS log_entries (
    package_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (package_id, seq)
);
CREATE INDEX IF NOT EXISTS packages_downloads ON packages (downloads);
CREATE INDEX IF NOT EXISTS packages_updated ON packages (updated_at)
"#;

/// Migration 2: billing. `prices.version` is `''` for the package-wide
/// price (a version's own price wins); `entitlements.status` is `active`
/// or `revoked`; `stripe_events` remembers every processed event id.
const BILLING_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS prices (
    package_id TEXT NOT NULL REFERENCES packages(id),
    version TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (package_id, version)
);
CREATE TABLE IF NOT EXISTS payout_accounts (
    publisher_id TEXT PRIMARY KEY REFERENCES publishers(id),
    stripe_account TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS panel_instances (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkouts (
    id TEXT PRIMARY KEY,
    session_id TEXT UNIQUE,
    package_id TEXT NOT NULL REFERENCES packages(id),
    version TEXT NOT NULL,
    panel_instance TEXT NOT NULL REFERENCES panel_instances(id),
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    application_fee BIGINT NOT NULL,
    destination TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS entitlements (
    id TEXT PRIMARY KEY,
    package_id TEXT NOT NULL REFERENCES packages(id),
    panel_instance TEXT NOT NULL REFERENCES panel_instances(id),
    checkout_id TEXT NOT NULL UNIQUE REFERENCES checkouts(id),
    payment_intent TEXT,
    status TEXT NOT NULL,
    revoke_reason TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX IF NOT EXISTS entitlements_panel ON entitlements (panel_instance);
CREATE INDEX IF NOT EXISTS entitlements_intent ON entitlements (payment_intent);
CREATE TABLE IF NOT EXISTS stripe_events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    received_at BIGINT NOT NULL
)
"#;

/// Migration 3: publisher trust. Tokens expire (existing ones 90 days after
/// their account was created; they rotate with `POST /publishers/me/token`),
/// and the nonces of accepted key-change statements are remembered so a
/// statement counts once.
const TRUST_SCHEMA: &str = r#"
ALTER TABLE publishers ADD COLUMN token_expires_at BIGINT;
UPDATE publishers SET token_expires_at = created_at + 7776000;
CREATE TABLE IF NOT EXISTS key_change_nonces (
    publisher_id TEXT NOT NULL REFERENCES publishers(id),
    nonce TEXT NOT NULL,
    used_at BIGINT NOT NULL,
    PRIMARY KEY (publisher_id, nonce)
);
CREATE INDEX IF NOT EXISTS releases_key ON releases (key_id)
"#;

/// The schema's migrations, applied in order, each once, each in one
/// transaction with its row in `schema_migrations`. Migration 1 uses
/// `IF NOT EXISTS`, so databases created before migrations were recorded
/// adopt it unchanged. Only portable DDL (`TEXT`, `BIGINT`), so the same
/// text serves SQLite and PostgreSQL.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "registry", SCHEMA),
    (2, "billing", BILLING_SCHEMA),
    (3, "publisher-trust", TRUST_SCHEMA),
];

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connecting or creating the schema failed.
    #[error("marketplace database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A publisher account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// Internal id.
    pub id: String,
    /// Public name.
    pub name: String,
}

/// A stored publisher key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key.
    pub key: PublicKey,
    /// When it was added.
    pub created_at: i64,
    /// When it was revoked from, and why.
    pub revoked: Option<Revocation>,
}

/// A stored release row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRelease {
    /// Version.
    pub version: semver::Version,
    /// sha256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// Target API.
    pub api: String,
    /// Dependencies.
    pub dependencies: BTreeMap<String, String>,
    /// Author key.
    pub key_id: String,
    /// Author signature.
    pub author_signature: String,
    /// Countersignature.
    pub countersignature: String,
    /// Whether yanked.
    pub yanked: bool,
    /// Why yanked.
    pub yank_reason: Option<String>,
    /// Downloads of this version.
    pub downloads: i64,
    /// When published.
    pub published_at: i64,
}

/// A stored package row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPackage {
    /// Plugin id.
    pub id: String,
    /// Publisher name.
    pub publisher: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Kinds.
    pub kinds: Vec<String>,
    /// Games.
    pub games: Vec<String>,
    /// Whether paid.
    pub paid: bool,
    /// Total downloads.
    pub downloads: i64,
    /// Newest version.
    pub latest_version: String,
    /// First published.
    pub created_at: i64,
    /// Last published.
    pub updated_at: i64,
    /// The newest version's price (its own or the package-wide one).
    pub price: Option<Price>,
}

/// A price in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// Minor units (cents).
    pub amount: i64,
    /// ISO 4217 code, lowercase.
    pub currency: String,
}

/// Search parameters.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Words matched against id, name and description.
    pub text: Option<String>,
    /// Plugin kind.
    pub kind: Option<String>,
    /// Game.
    pub game: Option<String>,
    /// Paid (`true`) or free (`false`).
    pub paid: Option<bool>,
    /// Sort by downloads (otherwise by recency).
    pub by_downloads: bool,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// The registry's database.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
}

/// A `,a,b,` list.
pub fn list_column(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(",{},", items.join(","))
    }
}

fn split_column(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn package_row(row: &AnyRow) -> Result<StoredPackage, sqlx::Error> {
    Ok(StoredPackage {
        id: row.try_get("id")?,
        publisher: row.try_get("publisher")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        kinds: split_column(&row.try_get::<String, _>("kinds")?),
        games: split_column(&row.try_get::<String, _>("games")?),
        paid: row.try_get::<i64, _>("paid")? != 0,
        downloads: row.try_get("downloads")?,
        latest_version: row.try_get("latest_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        price: match (
            row.try_get::<Option<i64>, _>("price_amount")?,
            row.try_get::<Option<String>, _>("price_currency")?,
        ) {
            (Some(amount), Some(currency)) => Some(Price { amount, currency }),
            _ => None,
        },
    })
}

const PACKAGE_COLUMNS: &str = "p.id, pub.name AS publisher, p.name, p.description, p.kinds, p.games, \
     CAST(CASE WHEN p.paid = 1 OR EXISTS (SELECT 1 FROM prices x WHERE x.package_id = p.id) THEN 1 ELSE 0 END AS BIGINT) AS paid, \
     p.downloads, p.latest_version, p.created_at, p.updated_at, \
     COALESCE(pv.amount, pp.amount) AS price_amount, COALESCE(pv.currency, pp.currency) AS price_currency";

/// The joins [`PACKAGE_COLUMNS`] needs: the publisher, the newest
/// version's own price and the package-wide price.
const PACKAGE_JOINS: &str = "packages p JOIN publishers pub ON pub.id = p.publisher_id \
     LEFT JOIN prices pv ON pv.package_id = p.id AND pv.version = p.latest_version \
     LEFT JOIN prices pp ON pp.package_id = p.id AND pp.version = ''";

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and creates the
    /// schema if needed.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .connect(url)
            .await?;
        if url.starts_with("sqlite:") {
            sqlx::raw_sql(
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON",
            )
            .execute(&pool)
            .await?;
        }
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        for (version, name, schema) in MIGRATIONS {
            let mut tx = pool.begin().await?;
            let applied = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if applied {
                tx.rollback().await?;
                continue;
            }
            for statement in schema.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(*version)
            .bind(*name)
            .bind(crate::service::now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version, name, "applied a schema migration");
        }
        Ok(Store { pool })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Creates a publisher whose token expires at `token_expires_at`;
    /// `None` when the name is taken.
    pub async fn create_publisher(
        &self,
        id: &str,
        name: &str,
        token_hash: &str,
        now: i64,
        token_expires_at: i64,
    ) -> Result<Option<Publisher>, sqlx::Error> {
        let result = sqlx::query(
            "INSERT INTO publishers (id, name, token_hash, created_at, token_expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(token_hash)
        .bind(now)
        .bind(token_expires_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(Some(Publisher {
                id: id.to_owned(),
                name: name.to_owned(),
            })),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The publisher holding a token (by its hash), with the token's
    /// expiry (unix seconds).
    pub async fn publisher_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Publisher, i64)>, sqlx::Error> {
        let row =
            sqlx::query("SELECT id, name, token_expires_at FROM publishers WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let expires: Option<i64> = r.try_get("token_expires_at")?;
            Ok((
                Publisher {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                },
                expires.unwrap_or(0),
            ))
        })
        .transpose()
    }

    /// Replaces a publisher's token, if `old_hash` is still its token;
    /// false when another rotation came first.
    pub async fn rotate_token(
        &self,
        publisher_id: &str,
        old_hash: &str,
        new_hash: &str,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE publishers SET token_hash = $1, token_expires_at = $2 WHERE id = $3 AND token_hash = $4",
        )
        .bind(new_hash)
        .bind(expires_at)
        .bind(publisher_id)
        .bind(old_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the nonce of an accepted key-change statement; false when
    /// it was used before (a replay). Nonces older than `forget_before`
    /// are dropped: their statements are outside the accepted window.
    pub async fn use_key_change_nonce(
        &self,
        tx: &mut Transaction<'static, Any>,
        publisher_id: &str,
        nonce: &str,
        now: i64,
        forget_before: i64,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query("DELETE FROM key_change_nonces WHERE used_at < $1")
            .bind(forget_before)
            .execute(&mut **tx)
            .await?;
        let seen = sqlx::query(
            "SELECT nonce FROM key_change_nonces WHERE publisher_id = $1 AND nonce = $2",
        )
        .bind(publisher_id)
        .bind(nonce)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
        if seen {
            return Ok(false);
        }
        let inserted = sqlx::query(
            "INSERT INTO key_change_nonces (publisher_id, nonce, used_at) VALUES ($1, $2, $3)",
        )
        .bind(publisher_id)
        .bind(nonce)
        .bind(now)
        .execute(&mut **tx)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// When the newest release signed by `key_id` was published, if any.
    pub async fn last_release_by_key(
        &self,
        tx: &mut Transaction<'static, Any>,
        key_id: &KeyId,
    ) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query("SELECT MAX(published_at) AS last FROM releases WHERE key_id = $1")
            .bind(key_id.as_str())
            .fetch_one(&mut **tx)
            .await?;
        row.try_get("last")
    }

    /// The publisher named `name`.
    pub async fn publisher_by_name(&self, name: &str) -> Result<Option<Publisher>, sqlx::Error> {
        let row = sqlx::query("SELECT id, name FROM publishers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Publisher {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
            })
        })
        .transpose()
    }

    /// A publisher's keys, revoked ones included.
    pub async fn keys(
        &self,
        tx: &mut Transaction<'static, Any>,
        publisher_id: &str,
    ) -> Result<Vec<StoredKey>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT public_key, created_at, revoked_at, revoke_reason FROM publisher_keys \
             WHERE publisher_id = $1 ORDER BY created_at, key_id",
        )
        .bind(publisher_id)
        .fetch_all(&mut **tx)
        .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let hex: String = row.try_get("public_key")?;
            let key = PublicKey::from_hex(&hex).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let revoked_at: Option<i64> = row.try_get("revoked_at")?;
            let reason: Option<String> = row.try_get("revoke_reason")?;
            keys.push(StoredKey {
                key,
                created_at: row.try_get("created_at")?,
                revoked: revoked_at.map(|effective_at| Revocation {
                    reason: reason.unwrap_or_default(),
                    effective_at,
                }),
            });
        }
        Ok(keys)
    }

    /// A publisher's keyring.
    pub async fn keyring(
        &self,
        tx: &mut Transaction<'static, Any>,
        publisher_id: &str,
    ) -> Result<Keyring, sqlx::Error> {
        let mut ring = Keyring::new();
        for stored in self.keys(tx, publisher_id).await? {
            let id = stored.key.id().clone();
            ring.grant(stored.key, stored.created_at);
            if let Some(revocation) = stored.revoked {
                // The key was just granted, so it is known.
                let _ = ring.revoke(&id, revocation);
            }
        }
        Ok(ring)
    }

    /// Which publisher owns a key, if any.
    pub async fn key_owner(
        &self,
        tx: &mut Transaction<'static, Any>,
        key_id: &KeyId,
    ) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT publisher_id FROM publisher_keys WHERE key_id = $1")
            .bind(key_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        row.map(|r| r.try_get("publisher_id")).transpose()
    }

    /// Adds a key.
    pub async fn insert_key(
        &self,
        tx: &mut Transaction<'static, Any>,
        publisher_id: &str,
        key: &PublicKey,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO publisher_keys (key_id, publisher_id, public_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key.id().as_str())
        .bind(publisher_id)
        .bind(key.to_hex())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records a key's revocation.
    pub async fn revoke_key(
        &self,
        tx: &mut Transaction<'static, Any>,
        key_id: &KeyId,
        revocation: &Revocation,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE publisher_keys SET revoked_at = $1, revoke_reason = $2 WHERE key_id = $3",
        )
        .bind(revocation.effective_at)
        .bind(&revocation.reason)
        .bind(key_id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Ids of a publisher's packages.
    pub async fn package_ids_of(
        &self,
        tx: &mut Transaction<'static, Any>,
        publisher_id: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query("SELECT id FROM packages WHERE publisher_id = $1 ORDER BY id")
            .bind(publisher_id)
            .fetch_all(&mut **tx)
            .await?;
        rows.iter().map(|r| r.try_get("id")).collect()
    }

    /// The owner (publisher id) of a package.
    pub async fn package_owner(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT publisher_id FROM packages WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        row.map(|r| r.try_get("publisher_id")).transpose()
    }

    /// Inserts a package row.
    pub async fn insert_package(
        &self,
        tx: &mut Transaction<'static, Any>,
        package: &StoredPackage,
        publisher_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO packages (id, publisher_id, name, description, kinds, games, paid, downloads, latest_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $9)",
        )
        .bind(&package.id)
        .bind(publisher_id)
        .bind(&package.name)
        .bind(&package.description)
        .bind(list_column(&package.kinds))
        .bind(list_column(&package.games))
        .bind(i64::from(package.paid))
        .bind(&package.latest_version)
        .bind(package.created_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Updates a package's listing after a release (newest version wins the
    /// metadata).
    pub async fn touch_package(
        &self,
        tx: &mut Transaction<'static, Any>,
        package: &StoredPackage,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE packages SET name = $1, description = $2, kinds = $3, games = $4, paid = $5, latest_version = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(&package.name)
        .bind(&package.description)
        .bind(list_column(&package.kinds))
        .bind(list_column(&package.games))
        .bind(i64::from(package.paid))
        .bind(&package.latest_version)
        .bind(package.updated_at)
        .bind(&package.id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Inserts a release row.
    pub async fn insert_release(
        &self,
        tx: &mut Transaction<'static, Any>,
        package_id: &str,
        release: &StoredRelease,
    ) -> Result<(), sqlx::Error> {
        let deps = serde_json::to_string(&release.dependencies).unwrap_or_else(|_| "{}".into());
        sqlx::query(
            "INSERT INTO releases (package_id, version, major, minor, patch, sha256, size, api, dependencies, key_id, author_signature, countersignature, yanked, downloads, published_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, 0, $13)",
        )
        .bind(package_id)
        .bind(release.version.to_string())
        .bind(release.version.major as i64)
        .bind(release.version.minor as i64)
        .bind(release.version.patch as i64)
        .bind(&release.sha256)
        .bind(release.size)
        .bind(&release.api)
        .bind(deps)
        .bind(&release.key_id)
        .bind(&release.author_signature)
        .bind(&release.countersignature)
        .bind(release.published_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Sets or clears a release's yank.
    pub async fn set_yanked(
        &self,
        tx: &mut Transaction<'static, Any>,
        package_id: &str,
        version: &semver::Version,
        reason: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE releases SET yanked = $1, yank_reason = $2 WHERE package_id = $3 AND version = $4")
            .bind(i64::from(reason.is_some()))
            .bind(reason)
            .bind(package_id)
            .bind(version.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// One release.
    pub async fn release(
        &self,
        package_id: &str,
        version: &semver::Version,
    ) -> Result<Option<StoredRelease>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT version, sha256, size, api, dependencies, key_id, author_signature, countersignature, yanked, yank_reason, downloads, published_at \
             FROM releases WHERE package_id = $1 AND version = $2",
        )
        .bind(package_id)
        .bind(version.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(release_row).transpose()
    }

    /// Every release of a package, newest first.
    pub async fn releases(&self, package_id: &str) -> Result<Vec<StoredRelease>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT version, sha256, size, api, dependencies, key_id, author_signature, countersignature, yanked, yank_reason, downloads, published_at \
             FROM releases WHERE package_id = $1",
        )
        .bind(package_id)
        .fetch_all(&self.pool)
        .await?;
        let mut releases = rows
            .iter()
            .map(release_row)
            .collect::<Result<Vec<_>, _>>()?;
        releases.sort_by(|a, b| b.version.cmp(&a.version));
        Ok(releases)
    }

    /// One package.
    pub async fn package(&self, id: &str) -> Result<Option<StoredPackage>, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PACKAGE_COLUMNS} FROM {PACKAGE_JOINS} WHERE p.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(package_row).transpose()
    }

    /// Counts a download of a release.
    pub async fn count_download(
        &self,
        package_id: &str,
        version: &semver::Version,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE releases SET downloads = downloads + 1 WHERE package_id = $1 AND version = $2",
        )
        .bind(package_id)
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE packages SET downloads = downloads + 1 WHERE id = $1")
            .bind(package_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// A page of search results and the total number of matches.
    pub async fn search(&self, search: &Search) -> Result<(Vec<StoredPackage>, i64), sqlx::Error> {
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(text) = &search.text {
            for word in text.split_whitespace().take(8) {
                let escaped = word
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                binds.push(format!("%{escaped}%"));
                let n = binds.len();
                conditions.push(format!(
                    "(LOWER(p.id) LIKE ${n} ESCAPE '\\' OR LOWER(p.name) LIKE ${n} ESCAPE '\\' OR LOWER(p.description) LIKE ${n} ESCAPE '\\')"
                ));
            }
        }
        if let Some(kind) = &search.kind {
            binds.push(format!("%,{kind},%"));
            conditions.push(format!("p.kinds LIKE ${}", binds.len()));
        }
        if let Some(game) = &search.game {
            binds.push(format!("%,{},%", game.to_lowercase()));
            conditions.push(format!("p.games LIKE ${}", binds.len()));
        }
        if let Some(paid) = search.paid {
            let is_paid =
                "(p.paid = 1 OR EXISTS (SELECT 1 FROM prices x WHERE x.package_id = p.id))";
            conditions.push(if paid {
                is_paid.to_owned()
            } else {
                format!("NOT {is_paid}")
            });
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let order = if search.by_downloads {
            "p.downloads DESC, p.id"
        } else {
            "p.updated_at DESC, p.id"
        };
        let count_sql = format!(
            "SELECT COUNT(*) AS n FROM packages p JOIN publishers pub ON pub.id = p.publisher_id {filter}"
        );
        let mut count = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for b in &binds {
            count = count.bind(b.clone());
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT {PACKAGE_COLUMNS} FROM {PACKAGE_JOINS} {filter} ORDER BY {order} LIMIT {} OFFSET {}",
            search.limit, search.offset
        );
        let mut page = sqlx::query(sqlx::AssertSqlSafe(page_sql));
        for b in &binds {
            page = page.bind(b.clone());
        }
        let rows = page.fetch_all(&self.pool).await?;
        Ok((
            rows.iter()
                .map(package_row)
                .collect::<Result<Vec<_>, _>>()?,
            total,
        ))
    }

    /// A package's log.
    pub async fn log(&self, package_id: &str) -> Result<Vec<LogEntry>, sqlx::Error> {
        let rows = sqlx::query("SELECT entry FROM log_entries WHERE package_id = $1 ORDER BY seq")
            .bind(package_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("entry")?;
                serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
            })
            .collect()
    }

    /// Every log's head.
    pub async fn heads(&self) -> Result<BTreeMap<String, LogHead>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT l.package_id, l.seq, l.hash FROM log_entries l \
             JOIN (SELECT package_id, MAX(seq) AS m FROM log_entries GROUP BY package_id) h \
             ON l.package_id = h.package_id AND l.seq = h.m",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut heads = BTreeMap::new();
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            heads.insert(
                row.try_get("package_id")?,
                LogHead {
                    len: seq as u64 + 1,
                    hash: row.try_get("hash")?,
                },
            );
        }
        Ok(heads)
    }

    /// Appends an entry to a package's log inside `tx`.
    pub async fn append(
        &self,
        tx: &mut Transaction<'static, Any>,
        notary: &Notary,
        package_id: &str,
        now: i64,
        event: LogEvent,
    ) -> Result<LogEntry, sqlx::Error> {
        let row = sqlx::query(
            "SELECT seq, hash, entry FROM log_entries WHERE package_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(package_id)
        .fetch_optional(&mut **tx)
        .await?;
        let head = row
            .map(|r| -> Result<(LogHead, i64), sqlx::Error> {
                let seq: i64 = r.try_get("seq")?;
                let entry: String = r.try_get("entry")?;
                let previous: LogEntry =
                    serde_json::from_str(&entry).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                Ok((
                    LogHead {
                        len: seq as u64 + 1,
                        hash: r.try_get("hash")?,
                    },
                    previous.time,
                ))
            })
            .transpose()?;
        // Entry times never decrease along a log (a clock stepping back
        // must not break replay, see `log::replay`).
        let time = head
            .as_ref()
            .map_or(now, |(_, previous)| now.max(*previous));
        let entry = notary.append(package_id, head.as_ref().map(|(h, _)| h), time, event);
        let json = serde_json::to_string(&entry).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO log_entries (package_id, seq, hash, entry) VALUES ($1, $2, $3, $4)",
        )
        .bind(package_id)
        .bind(entry.seq as i64)
        .bind(entry.hash())
        .bind(json)
        .execute(&mut **tx)
        .await?;
        Ok(entry)
    }
}

fn release_row(row: &AnyRow) -> Result<StoredRelease, sqlx::Error> {
    let version: String = row.try_get("version")?;
    let deps: String = row.try_get("dependencies")?;
    Ok(StoredRelease {
        version: semver::Version::parse(&version).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        api: row.try_get("api")?,
        dependencies: serde_json::from_str(&deps).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        key_id: row.try_get("key_id")?,
        author_signature: row.try_get("author_signature")?,
        countersignature: row.try_get("countersignature")?,
        yanked: row.try_get::<i64, _>("yanked")? != 0,
        yank_reason: row.try_get("yank_reason")?,
        downloads: row.try_get("downloads")?,
        published_at: row.try_get("published_at")?,
    })
}
