//! The registry half of the [`Store`]: publishers, keys, packages,
//! releases and the packages' logs.

use std::collections::BTreeMap;

use cap_marketplace::keys::{KeyId, PublicKey};
use cap_marketplace::log::{LogEntry, LogEvent, LogHead, Notary};
use cap_marketplace::signing::{Keyring, Revocation};

use super::{Store, Tx, on_pool, on_tx};

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

/// A row of [`PACKAGE_COLUMNS`].
#[derive(sqlx::FromRow)]
struct PackageRecord {
    id: String,
    publisher: String,
    name: String,
    description: String,
    kinds: String,
    games: String,
    paid: i64,
    downloads: i64,
    latest_version: String,
    created_at: i64,
    updated_at: i64,
    price_amount: Option<i64>,
    price_currency: Option<String>,
}

impl From<PackageRecord> for StoredPackage {
    fn from(row: PackageRecord) -> StoredPackage {
        StoredPackage {
            id: row.id,
            publisher: row.publisher,
            name: row.name,
            description: row.description,
            kinds: split_column(&row.kinds),
            games: split_column(&row.games),
            paid: row.paid != 0,
            downloads: row.downloads,
            latest_version: row.latest_version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            price: match (row.price_amount, row.price_currency) {
                (Some(amount), Some(currency)) => Some(Price { amount, currency }),
                _ => None,
            },
        }
    }
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

/// A row of [`RELEASE_COLUMNS`].
#[derive(sqlx::FromRow)]
struct ReleaseRecord {
    version: String,
    sha256: String,
    size: i64,
    api: String,
    dependencies: String,
    key_id: String,
    author_signature: String,
    countersignature: String,
    yanked: i64,
    yank_reason: Option<String>,
    downloads: i64,
    published_at: i64,
}

const RELEASE_COLUMNS: &str = "version, sha256, size, api, dependencies, key_id, author_signature, countersignature, yanked, yank_reason, downloads, published_at";

impl TryFrom<ReleaseRecord> for StoredRelease {
    type Error = sqlx::Error;

    fn try_from(row: ReleaseRecord) -> Result<StoredRelease, sqlx::Error> {
        Ok(StoredRelease {
            version: semver::Version::parse(&row.version)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            sha256: row.sha256,
            size: row.size,
            api: row.api,
            dependencies: serde_json::from_str(&row.dependencies)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            key_id: row.key_id,
            author_signature: row.author_signature,
            countersignature: row.countersignature,
            yanked: row.yanked != 0,
            yank_reason: row.yank_reason,
            downloads: row.downloads,
            published_at: row.published_at,
        })
    }
}

/// A row of `publisher_keys`.
#[derive(sqlx::FromRow)]
struct KeyRecord {
    public_key: String,
    created_at: i64,
    revoked_at: Option<i64>,
    revoke_reason: Option<String>,
}

/// A log head: the last entry's sequence number and hash.
#[derive(sqlx::FromRow)]
struct HeadRecord {
    package_id: String,
    seq: i64,
    hash: String,
}

/// The last entry of a log.
#[derive(sqlx::FromRow)]
struct LastEntry {
    seq: i64,
    hash: String,
    entry: String,
}

fn decode_entry(text: &str) -> Result<LogEntry, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

impl Store {
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
        let result = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO publishers (id, name, token_hash, created_at, token_expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(name)
            .bind(token_hash)
            .bind(now)
            .bind(token_expires_at)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match result {
            Ok(()) => Ok(Some(Publisher {
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
        let row: Option<(String, String, Option<i64>)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, name, token_expires_at FROM publishers WHERE token_hash = $1"
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(|(id, name, expires)| (Publisher { id, name }, expires.unwrap_or(0))))
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
        let affected = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE publishers SET token_hash = $1, token_expires_at = $2 WHERE id = $3 AND token_hash = $4",
            )
            .bind(new_hash)
            .bind(expires_at)
            .bind(publisher_id)
            .bind(old_hash)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Records the nonce of an accepted key-change statement; false when
    /// it was used before (a replay). Nonces older than `forget_before`
    /// are dropped: their statements are outside the accepted window.
    pub async fn use_key_change_nonce(
        &self,
        tx: &mut Tx,
        publisher_id: &str,
        nonce: &str,
        now: i64,
        forget_before: i64,
    ) -> Result<bool, sqlx::Error> {
        on_tx!(tx, |conn| {
            sqlx::query("DELETE FROM key_change_nonces WHERE used_at < $1")
                .bind(forget_before)
                .execute(&mut *conn)
                .await?;
            let seen = sqlx::query(
                "SELECT nonce FROM key_change_nonces WHERE publisher_id = $1 AND nonce = $2",
            )
            .bind(publisher_id)
            .bind(nonce)
            .fetch_optional(&mut *conn)
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
            .execute(&mut *conn)
            .await;
            match inserted {
                Ok(_) => Ok(true),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    /// When the newest release signed by `key_id` was published, if any.
    pub async fn last_release_by_key(
        &self,
        tx: &mut Tx,
        key_id: &KeyId,
    ) -> Result<Option<i64>, sqlx::Error> {
        on_tx!(tx, |conn| sqlx::query_scalar(
            "SELECT MAX(published_at) AS last FROM releases WHERE key_id = $1"
        )
        .bind(key_id.as_str())
        .fetch_one(&mut *conn)
        .await)
    }

    /// The publisher named `name`.
    pub async fn publisher_by_name(&self, name: &str) -> Result<Option<Publisher>, sqlx::Error> {
        let row: Option<(String, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, name FROM publishers WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(|(id, name)| Publisher { id, name }))
    }

    /// A publisher's keys, revoked ones included.
    pub async fn keys(
        &self,
        tx: &mut Tx,
        publisher_id: &str,
    ) -> Result<Vec<StoredKey>, sqlx::Error> {
        let rows: Vec<KeyRecord> = on_tx!(tx, |conn| sqlx::query_as(
            "SELECT public_key, created_at, revoked_at, revoke_reason FROM publisher_keys \
             WHERE publisher_id = $1 ORDER BY created_at, key_id",
        )
        .bind(publisher_id)
        .fetch_all(&mut *conn)
        .await)?;
        rows.into_iter()
            .map(|row| {
                let key = PublicKey::from_hex(&row.public_key)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                Ok(StoredKey {
                    key,
                    created_at: row.created_at,
                    revoked: row.revoked_at.map(|effective_at| Revocation {
                        reason: row.revoke_reason.unwrap_or_default(),
                        effective_at,
                    }),
                })
            })
            .collect()
    }

    /// A publisher's keyring.
    pub async fn keyring(&self, tx: &mut Tx, publisher_id: &str) -> Result<Keyring, sqlx::Error> {
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
        tx: &mut Tx,
        key_id: &KeyId,
    ) -> Result<Option<String>, sqlx::Error> {
        on_tx!(tx, |conn| sqlx::query_scalar(
            "SELECT publisher_id FROM publisher_keys WHERE key_id = $1"
        )
        .bind(key_id.as_str())
        .fetch_optional(&mut *conn)
        .await)
    }

    /// Adds a key.
    pub async fn insert_key(
        &self,
        tx: &mut Tx,
        publisher_id: &str,
        key: &PublicKey,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO publisher_keys (key_id, publisher_id, public_key, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(key.id().as_str())
            .bind(publisher_id)
            .bind(key.to_hex())
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Records a key's revocation.
    pub async fn revoke_key(
        &self,
        tx: &mut Tx,
        key_id: &KeyId,
        revocation: &Revocation,
    ) -> Result<(), sqlx::Error> {
        on_tx!(tx, |conn| sqlx::query(
            "UPDATE publisher_keys SET revoked_at = $1, revoke_reason = $2 WHERE key_id = $3",
        )
        .bind(revocation.effective_at)
        .bind(&revocation.reason)
        .bind(key_id.as_str())
        .execute(&mut *conn)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Ids of a publisher's packages.
    pub async fn package_ids_of(
        &self,
        tx: &mut Tx,
        publisher_id: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        on_tx!(tx, |conn| sqlx::query_scalar(
            "SELECT id FROM packages WHERE publisher_id = $1 ORDER BY id"
        )
        .bind(publisher_id)
        .fetch_all(&mut *conn)
        .await)
    }

    /// The owner (publisher id) of a package.
    pub async fn package_owner(
        &self,
        tx: &mut Tx,
        id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        on_tx!(tx, |conn| sqlx::query_scalar(
            "SELECT publisher_id FROM packages WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await)
    }

    /// Inserts a package row.
    pub async fn insert_package(
        &self,
        tx: &mut Tx,
        package: &StoredPackage,
        publisher_id: &str,
    ) -> Result<(), sqlx::Error> {
        on_tx!(tx, |conn| {
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
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Updates a package's listing after a release (newest version wins the
    /// metadata).
    pub async fn touch_package(
        &self,
        tx: &mut Tx,
        package: &StoredPackage,
    ) -> Result<(), sqlx::Error> {
        on_tx!(tx, |conn| {
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
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Inserts a release row.
    pub async fn insert_release(
        &self,
        tx: &mut Tx,
        package_id: &str,
        release: &StoredRelease,
    ) -> Result<(), sqlx::Error> {
        let deps = serde_json::to_string(&release.dependencies).unwrap_or_else(|_| "{}".into());
        on_tx!(tx, |conn| {
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
            .bind(&deps)
            .bind(&release.key_id)
            .bind(&release.author_signature)
            .bind(&release.countersignature)
            .bind(release.published_at)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Sets or clears a release's yank.
    pub async fn set_yanked(
        &self,
        tx: &mut Tx,
        package_id: &str,
        version: &semver::Version,
        reason: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        on_tx!(tx, |conn| {
            sqlx::query(
                "UPDATE releases SET yanked = $1, yank_reason = $2 WHERE package_id = $3 AND version = $4"
            )
            .bind(i64::from(reason.is_some()))
            .bind(reason)
            .bind(package_id)
            .bind(version.to_string())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// One release.
    pub async fn release(
        &self,
        package_id: &str,
        version: &semver::Version,
    ) -> Result<Option<StoredRelease>, sqlx::Error> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE package_id = $1 AND version = $2"
        );
        let row: Option<ReleaseRecord> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(package_id)
                .bind(version.to_string())
                .fetch_optional(pool)
                .await)?;
        row.map(StoredRelease::try_from).transpose()
    }

    /// Every release of a package, newest first.
    pub async fn releases(&self, package_id: &str) -> Result<Vec<StoredRelease>, sqlx::Error> {
        let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE package_id = $1");
        let rows: Vec<ReleaseRecord> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(package_id)
                .fetch_all(pool)
                .await)?;
        let mut releases = rows
            .into_iter()
            .map(StoredRelease::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        releases.sort_by(|a, b| b.version.cmp(&a.version));
        Ok(releases)
    }

    /// One package.
    pub async fn package(&self, id: &str) -> Result<Option<StoredPackage>, sqlx::Error> {
        let sql = format!("SELECT {PACKAGE_COLUMNS} FROM {PACKAGE_JOINS} WHERE p.id = $1");
        let row: Option<PackageRecord> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await)?;
        Ok(row.map(StoredPackage::from))
    }

    /// Counts a download of a release.
    pub async fn count_download(
        &self,
        package_id: &str,
        version: &semver::Version,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        on_tx!(tx, |conn| {
            sqlx::query(
                "UPDATE releases SET downloads = downloads + 1 WHERE package_id = $1 AND version = $2",
            )
            .bind(package_id)
            .bind(version.to_string())
            .execute(&mut *conn)
            .await?;
            sqlx::query("UPDATE packages SET downloads = downloads + 1 WHERE id = $1")
                .bind(package_id)
                .execute(&mut *conn)
                .await?;
        });
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
        let page_sql = format!(
            "SELECT {PACKAGE_COLUMNS} FROM {PACKAGE_JOINS} {filter} ORDER BY {order} LIMIT {} OFFSET {}",
            search.limit, search.offset
        );
        let (rows, total): (Vec<PackageRecord>, i64) = on_pool!(self, |pool| {
            let mut count = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql));
            for b in &binds {
                count = count.bind(b.clone());
            }
            let total: i64 = count.fetch_one(pool).await?;
            let mut page = sqlx::query_as(sqlx::AssertSqlSafe(page_sql));
            for b in &binds {
                page = page.bind(b.clone());
            }
            (page.fetch_all(pool).await?, total)
        });
        Ok((rows.into_iter().map(StoredPackage::from).collect(), total))
    }

    /// A package's log.
    pub async fn log(&self, package_id: &str) -> Result<Vec<LogEntry>, sqlx::Error> {
        let rows: Vec<String> = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT entry FROM log_entries WHERE package_id = $1 ORDER BY seq"
        )
        .bind(package_id)
        .fetch_all(pool)
        .await)?;
        rows.iter().map(|text| decode_entry(text)).collect()
    }

    /// Every log's head.
    pub async fn heads(&self) -> Result<BTreeMap<String, LogHead>, sqlx::Error> {
        let rows: Vec<HeadRecord> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT l.package_id, l.seq, l.hash FROM log_entries l \
             JOIN (SELECT package_id, MAX(seq) AS m FROM log_entries GROUP BY package_id) h \
             ON l.package_id = h.package_id AND l.seq = h.m",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                (
                    row.package_id,
                    LogHead {
                        len: row.seq as u64 + 1,
                        hash: row.hash,
                    },
                )
            })
            .collect())
    }

    /// Appends an entry to a package's log inside `tx`.
    pub async fn append(
        &self,
        tx: &mut Tx,
        notary: &Notary,
        package_id: &str,
        now: i64,
        event: LogEvent,
    ) -> Result<LogEntry, sqlx::Error> {
        let last: Option<LastEntry> = on_tx!(tx, |conn| {
            sqlx::query_as(
                "SELECT seq, hash, entry FROM log_entries WHERE package_id = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(package_id)
            .fetch_optional(&mut *conn)
            .await
        })?;
        let head = last
            .map(|row| -> Result<(LogHead, i64), sqlx::Error> {
                let previous = decode_entry(&row.entry)?;
                Ok((
                    LogHead {
                        len: row.seq as u64 + 1,
                        hash: row.hash,
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
        on_tx!(tx, |conn| sqlx::query(
            "INSERT INTO log_entries (package_id, seq, hash, entry) VALUES ($1, $2, $3, $4)",
        )
        .bind(package_id)
        .bind(entry.seq as i64)
        .bind(entry.hash())
        .bind(&json)
        .execute(&mut *conn)
        .await
        .map(|_| ()))?;
        Ok(entry)
    }
}
