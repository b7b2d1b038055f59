//! [`DbKv`]: the plugins' `kv` capability backed by the Panel's database.
//!
//! Each plugin sees its own key space: rows of the `plugin_kv` table are
//! keyed by `(plugin_id, item_key)`, and the runtime hands every call the
//! calling plugin's id, so one plugin can never read another's data. The
//! capability itself (in `cap-runtime`) has already checked the grant and
//! the key and value sizes; this store adds a per-plugin key quota.
//!
//! Values are opaque bytes and never copied to the event store: plugins keep
//! secrets here (the `local-password` plugin keeps its argon2id hashes).
//!
//! ```no_run
//! # async fn f(db: cap_panel::db::Database) {
//! use std::sync::Arc;
//! use cap_runtime::HostServices;
//! let mut services = HostServices::in_memory();
//! services.kv = Arc::new(cap_panel::plugin_kv::DbKv::new(db));
//! # }
//! ```

use cap_runtime::capabilities::BoxFuture;
use cap_runtime::capabilities::ServiceError;
use cap_runtime::capabilities::kv::KvStore;

use crate::db::{Database, DbError, Unrecorded, now, on_pool, query_builder, to_micros};

/// The default number of keys one plugin may hold.
pub const DEFAULT_MAX_KEYS_PER_PLUGIN: i64 = 100_000;

/// A [`KvStore`] in the `plugin_kv` table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DbKv {
    db: Database,
    max_keys_per_plugin: i64,
}

impl DbKv {
    /// A store on `db` with [`DEFAULT_MAX_KEYS_PER_PLUGIN`].
    pub fn new(db: Database) -> DbKv {
        DbKv {
            db,
            max_keys_per_plugin: DEFAULT_MAX_KEYS_PER_PLUGIN,
        }
    }

    /// Sets how many keys one plugin may hold.
    pub fn with_quota(mut self, max_keys_per_plugin: i64) -> DbKv {
        self.max_keys_per_plugin = max_keys_per_plugin;
        self
    }

    async fn get_inner(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, DbError> {
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "SELECT value FROM plugin_kv WHERE plugin_id = ");
            qb.push_bind(plugin).push(" AND item_key = ").push_bind(key);
            qb.build_query_scalar::<Vec<u8>>()
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Single statements, no transaction: an update of the key, else (a
    /// new key) the quota and an insert, and when a concurrent insert won,
    /// the update again. A plugin call's deadline may cancel this at any
    /// await; with no transaction open, nothing is left holding locks (a
    /// cancelled transaction could stay open on its pooled connection).
    async fn set_inner(&self, plugin: &str, key: &str, value: Vec<u8>) -> Result<bool, DbError> {
        let max = self.max_keys_per_plugin;
        if self.update(plugin, key, &value).await? {
            return Ok(true);
        }
        let count: i64 = on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "SELECT COUNT(*) FROM plugin_kv WHERE plugin_id = ");
            qb.push_bind(plugin);
            qb.build_query_scalar().fetch_one(pool).await?
        });
        if count >= max {
            return Ok(false);
        }
        if self.insert(plugin, key, &value).await? {
            return Ok(true);
        }
        // Another writer created the key meanwhile: it exists now.
        self.update(plugin, key, &value).await
    }

    /// Replaces the value of an existing key; `false` if there is none.
    async fn update(&self, plugin: &str, key: &str, value: &[u8]) -> Result<bool, DbError> {
        let at = to_micros(now());
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "UPDATE plugin_kv SET value = ");
            qb.push_bind(value)
                .push(", updated_at = ")
                .push_bind(at)
                .push(" WHERE plugin_id = ")
                .push_bind(plugin)
                .push(" AND item_key = ")
                .push_bind(key);
            // MySQL counts matched rows here (sqlx asks for FOUND_ROWS), so
            // an unchanged value still answers 1.
            qb.build()
                .execute(pool.unrecorded(Unrecorded::PluginData))
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Creates a key; `false` if it exists (the unique key refused it).
    async fn insert(&self, plugin: &str, key: &str, value: &[u8]) -> Result<bool, DbError> {
        let at = to_micros(now());
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(
                pool,
                "INSERT INTO plugin_kv (plugin_id, item_key, value, updated_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(plugin)
                .push_bind(key)
                .push_bind(value)
                .push_bind(at);
            qb.push(")");
            match qb
                .build()
                .execute(pool.unrecorded(Unrecorded::PluginData))
                .await
            {
                Ok(done) => done.rows_affected() == 1,
                Err(error)
                    if error
                        .as_database_error()
                        .is_some_and(|e| e.is_unique_violation()) =>
                {
                    false
                }
                Err(error) => return Err(error.into()),
            }
        }))
    }

    async fn delete_inner(&self, plugin: &str, key: &str) -> Result<bool, DbError> {
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "DELETE FROM plugin_kv WHERE plugin_id = ");
            qb.push_bind(plugin).push(" AND item_key = ").push_bind(key);
            qb.build()
                .execute(pool.unrecorded(Unrecorded::PluginData))
                .await?
                .rows_affected()
                > 0
        }))
    }

    async fn list_inner(
        &self,
        plugin: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, DbError> {
        // The prefix is matched by comparing the key's first characters
        // rather than with LIKE, so `%` and `_` in keys need no escaping
        // rules per backend; the database returns at most `limit` keys, so
        // a plugin with many keys never has them all read into memory.
        let prefix_chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        let keys: Vec<String> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "SELECT item_key FROM plugin_kv WHERE plugin_id = ");
            qb.push_bind(plugin)
                .push(" AND substr(item_key, 1, ")
                .push_bind(prefix_chars)
                .push(") = ")
                .push_bind(prefix)
                .push(" ORDER BY item_key LIMIT ")
                .push_bind(i64::from(limit));
            qb.build_query_scalar::<String>().fetch_all(pool).await?
        });
        Ok(keys)
    }

    /// One conditional statement per case, so the comparison and the
    /// write are one step on every backend (a read followed by a write
    /// would race, and on SQLite fail when another writer went first).
    async fn compare_and_swap_inner(
        &self,
        plugin: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> Result<Result<bool, ServiceError>, DbError> {
        if expected == value {
            // Nothing to write: the answer is whether the value is as expected.
            return Ok(Ok(self.get_inner(plugin, key).await? == expected));
        }
        let at = to_micros(now());
        let max = self.max_keys_per_plugin;
        Ok(on_pool!(self.db, |pool| {
            let writer = pool.unrecorded(Unrecorded::PluginData);
            let changed = match (expected, value) {
                (None, None) => unreachable!("equal, answered above"),
                (Some(expected), None) => {
                    let mut qb = query_builder(pool, "DELETE FROM plugin_kv WHERE plugin_id = ");
                    qb.push_bind(plugin)
                        .push(" AND item_key = ")
                        .push_bind(key)
                        .push(" AND value = ")
                        .push_bind(expected);
                    qb.build().execute(writer).await?.rows_affected()
                }
                (Some(expected), Some(value)) => {
                    let mut qb = query_builder(pool, "UPDATE plugin_kv SET value = ");
                    qb.push_bind(value)
                        .push(", updated_at = ")
                        .push_bind(at)
                        .push(" WHERE plugin_id = ")
                        .push_bind(plugin)
                        .push(" AND item_key = ")
                        .push_bind(key)
                        .push(" AND value = ")
                        .push_bind(expected);
                    qb.build().execute(writer).await?.rows_affected()
                }
                (None, Some(value)) => {
                    let mut qb =
                        query_builder(pool, "SELECT COUNT(*) FROM plugin_kv WHERE plugin_id = ");
                    qb.push_bind(plugin);
                    let count: i64 = qb.build_query_scalar().fetch_one(pool).await?;
                    if count >= max {
                        return Ok(Err(ServiceError::LimitExceeded(format!(
                            "at most {max} keys per plugin"
                        ))));
                    }
                    // Of two creations at once, the unique key lets one in.
                    u64::from(self.insert(plugin, key, &value).await?)
                }
            };
            Ok(changed == 1)
        }))
    }

    /// Deletes every key of `plugin` (for uninstalling with purge); returns
    /// how many there were.
    ///
    /// # Errors
    ///
    /// [`DbError`] from the database.
    pub async fn purge(&self, plugin: &str) -> Result<u64, DbError> {
        Ok(on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "DELETE FROM plugin_kv WHERE plugin_id = ");
            qb.push_bind(plugin);
            qb.build()
                .execute(pool.unrecorded(Unrecorded::PluginData))
                .await?
                .rows_affected()
        }))
    }
}

fn service_error(error: DbError) -> ServiceError {
    tracing::warn!(error = %error, "plugin kv store failed");
    ServiceError::Unavailable("the Panel's key-value store is unavailable".into())
}

impl KvStore for DbKv {
    fn get<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, ServiceError>> {
        Box::pin(async move { self.get_inner(plugin, key).await.map_err(service_error) })
    }

    fn set<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            if self
                .set_inner(plugin, key, value)
                .await
                .map_err(service_error)?
            {
                Ok(())
            } else {
                Err(ServiceError::LimitExceeded(format!(
                    "at most {} keys per plugin",
                    self.max_keys_per_plugin
                )))
            }
        })
    }

    fn delete<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, ServiceError>> {
        Box::pin(async move { self.delete_inner(plugin, key).await.map_err(service_error) })
    }

    fn list_keys<'a>(
        &'a self,
        plugin: &'a str,
        prefix: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, ServiceError>> {
        Box::pin(async move {
            self.list_inner(plugin, prefix, limit)
                .await
                .map_err(service_error)
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> BoxFuture<'a, Result<bool, ServiceError>> {
        Box::pin(async move {
            self.compare_and_swap_inner(plugin, key, expected, value)
                .await
                .map_err(service_error)?
        })
    }
}
