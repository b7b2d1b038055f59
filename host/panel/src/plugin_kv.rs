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

use crate::db::{Backend, Database, DbError, Unrecorded, now, on_pool, query_builder, to_micros};

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

    async fn set_inner(&self, plugin: &str, key: &str, value: Vec<u8>) -> Result<bool, DbError> {
        let at = to_micros(now());
        let upsert = match self.db.backend() {
            Backend::MySql => {
                " ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = VALUES(updated_at)"
            }
            Backend::Sqlite | Backend::Postgres => {
                " ON CONFLICT (plugin_id, item_key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
            }
        };
        let max = self.max_keys_per_plugin;
        Ok(on_pool!(self.db, |pool| {
            let mut tx = pool.begin_unrecorded(Unrecorded::PluginData).await?;
            let mut qb = query_builder(pool, "SELECT COUNT(*) FROM plugin_kv WHERE plugin_id = ");
            qb.push_bind(plugin);
            let count: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
            if count >= max {
                let mut qb =
                    query_builder(pool, "SELECT COUNT(*) FROM plugin_kv WHERE plugin_id = ");
                qb.push_bind(plugin).push(" AND item_key = ").push_bind(key);
                let exists: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
                if exists == 0 {
                    return Ok(false);
                }
            }
            let mut qb = query_builder(
                pool,
                "INSERT INTO plugin_kv (plugin_id, item_key, value, updated_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(plugin)
                .push_bind(key)
                .push_bind(value)
                .push_bind(at);
            qb.push(")").push(upsert);
            qb.build().execute(&mut *tx).await?;
            tx.commit().await?;
            true
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
}
