//! The plugin tables: `plugins`, `plugin_config` and `plugin_secrets`.
//!
//! Every write appends its event in the same transaction (the pattern of
//! [`crate::db::settings`]). Secrets are written and read here but never
//! copied into events: an event names the secret's key only. They are
//! sealed with the secret key ([`crate::secrets`]), bound to their plugin
//! and name, and unsealed only here, as they are read.

use std::collections::BTreeMap;

use cap_runtime::Grants;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::db::{
    Database, DbError, NewEvent, Unrecorded, from_micros, on_pool, query_builder, to_micros,
};
use crate::secrets::Purpose;

/// Where an installed plugin is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginLifecycle {
    /// Uploaded, never activated.
    Installed,
    /// Loaded into the runtime; loaded again when the Panel starts.
    Active,
    /// Deactivated by an admin.
    Inactive,
}

impl PluginLifecycle {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginLifecycle::Installed => "installed",
            PluginLifecycle::Active => "active",
            PluginLifecycle::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        match s {
            "installed" => Ok(PluginLifecycle::Installed),
            "active" => Ok(PluginLifecycle::Active),
            "inactive" => Ok(PluginLifecycle::Inactive),
            other => Err(DbError::Corrupt(format!("unknown plugin state {other:?}"))),
        }
    }
}

/// One row of `plugins`.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRecord {
    /// The manifest's id.
    pub id: String,
    /// The manifest's version.
    pub version: semver::Version,
    /// sha256 of the uploaded package file.
    pub package_sha256: String,
    /// sha256 of the component, also its file name under `<data>/plugins`.
    pub component_sha256: String,
    /// The manifest, as TOML.
    pub manifest: String,
    /// Installed, active or inactive.
    pub state: PluginLifecycle,
    /// What the admin granted.
    pub grants: Grants,
    /// When it was first installed.
    pub installed_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    version: String,
    package_sha256: String,
    component_sha256: String,
    manifest: String,
    state: String,
    grants: Json<Grants>,
    installed_at: i64,
    updated_at: i64,
}

impl TryFrom<Row> for PluginRecord {
    type Error = DbError;

    fn try_from(row: Row) -> Result<Self, DbError> {
        Ok(PluginRecord {
            version: row
                .version
                .parse()
                .map_err(|e| DbError::Corrupt(format!("plugin version {:?}: {e}", row.version)))?,
            id: row.id,
            package_sha256: row.package_sha256,
            component_sha256: row.component_sha256,
            manifest: row.manifest,
            state: PluginLifecycle::parse(&row.state)?,
            grants: row.grants.0,
            installed_at: from_micros(row.installed_at)?,
            updated_at: from_micros(row.updated_at)?,
        })
    }
}

const COLUMNS: &str = "SELECT id, version, package_sha256, component_sha256, manifest, state, grants, installed_at, updated_at FROM plugins";

/// One plugin's row, if installed.
pub(crate) async fn get(db: &Database, id: &str) -> Result<Option<PluginRecord>, DbError> {
    let row: Option<Row> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" WHERE id = ").push_bind(id);
        qb.build_query_as::<Row>().fetch_optional(pool).await?
    });
    row.map(PluginRecord::try_from).transpose()
}

/// Every installed plugin, by id.
pub(crate) async fn list(db: &Database) -> Result<Vec<PluginRecord>, DbError> {
    let rows: Vec<Row> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, COLUMNS);
        qb.push(" ORDER BY id");
        qb.build_query_as::<Row>().fetch_all(pool).await?
    });
    rows.into_iter().map(PluginRecord::try_from).collect()
}

/// Inserts `record`, or replaces the row with its id, and appends `event`.
pub(crate) async fn upsert(
    db: &Database,
    record: &PluginRecord,
    replace: bool,
    event: &NewEvent,
) -> Result<(), DbError> {
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        if replace {
            let mut qb = query_builder(pool, "DELETE FROM plugins WHERE id = ");
            qb.push_bind(&record.id);
            qb.build().execute(&mut *tx).await?;
        }
        let mut qb = query_builder(
            pool,
            "INSERT INTO plugins (id, version, package_sha256, component_sha256, manifest, state, grants, installed_at, updated_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&record.id)
            .push_bind(record.version.to_string())
            .push_bind(&record.package_sha256)
            .push_bind(&record.component_sha256)
            .push_bind(&record.manifest)
            .push_bind(record.state.as_str())
            .push_bind(Json(&record.grants))
            .push_bind(to_micros(record.installed_at))
            .push_bind(to_micros(record.updated_at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Sets a plugin's state and grants; appends `event`.
pub(crate) async fn update(
    db: &Database,
    id: &str,
    state: PluginLifecycle,
    grants: &Grants,
    event: &NewEvent,
) -> Result<(), DbError> {
    let at = to_micros(crate::db::now());
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE plugins SET state = ");
        qb.push_bind(state.as_str())
            .push(", grants = ")
            .push_bind(Json(grants))
            .push(", updated_at = ")
            .push_bind(at)
            .push(" WHERE id = ")
            .push_bind(id);
        if qb.build().execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        tx.record(event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// The longest quarantine reason stored; longer ones are cut.
pub(crate) const MAX_QUARANTINE_REASON_CHARS: usize = 2048;

/// The stored quarantine of plugin `id` (reason and time), if any and if
/// the installed component is still `component_sha256` (a new version
/// starts unquarantined).
pub(crate) async fn quarantine(
    db: &Database,
    id: &str,
    component_sha256: &str,
) -> Result<Option<(String, OffsetDateTime)>, DbError> {
    let row: Option<(Option<String>, Option<i64>)> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT quarantine_reason, quarantined_at FROM plugins WHERE id = ",
        );
        qb.push_bind(id)
            .push(" AND component_sha256 = ")
            .push_bind(component_sha256);
        qb.build_query_as::<(Option<String>, Option<i64>)>()
            .fetch_optional(pool)
            .await?
    });
    match row {
        Some((Some(reason), Some(at))) => Ok(Some((reason, from_micros(at)?))),
        _ => Ok(None),
    }
}

/// Stores (`Some((reason, at))`) or clears (`None`) plugin `id`'s
/// quarantine and appends `event`. A plugin that is no longer installed is
/// not an error: nothing is left to quarantine.
pub(crate) async fn set_quarantine(
    db: &Database,
    id: &str,
    quarantine: Option<(&str, OffsetDateTime)>,
    event: &NewEvent,
) -> Result<(), DbError> {
    let reason = quarantine.map(|(reason, _)| {
        reason
            .chars()
            .take(MAX_QUARANTINE_REASON_CHARS)
            .collect::<String>()
    });
    let at = quarantine.map(|(_, at)| to_micros(at));
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "UPDATE plugins SET quarantine_reason = ");
        qb.push_bind(reason.as_deref())
            .push(", quarantined_at = ")
            .push_bind(at)
            .push(" WHERE id = ")
            .push_bind(id);
        qb.build().execute(&mut *tx).await?;
        tx.record(event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Deletes a plugin's row and, if `purge`, its configuration and secrets;
/// appends `event`.
pub(crate) async fn delete(
    db: &Database,
    id: &str,
    purge: bool,
    event: &NewEvent,
) -> Result<(), DbError> {
    let tables: &[&str] = if purge {
        &["plugins", "plugin_config", "plugin_secrets"]
    } else {
        &["plugins"]
    };
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        for table in tables {
            let column = if *table == "plugins" {
                "id"
            } else {
                "plugin_id"
            };
            let mut qb = query_builder(pool, &format!("DELETE FROM {table} WHERE {column} = "));
            qb.push_bind(id);
            qb.build().execute(&mut *tx).await?;
        }
        tx.record(event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Which of `plugin_config` and `plugin_secrets`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Values {
    Config,
    Secrets,
}

impl Values {
    fn table(self) -> &'static str {
        match self {
            Values::Config => "plugin_config",
            Values::Secrets => "plugin_secrets",
        }
    }

    /// The stored form of `value`: sealed for secrets.
    fn make_stored(
        self,
        db: &Database,
        plugin: &str,
        name: &str,
        value: &str,
    ) -> Result<String, DbError> {
        match self {
            Values::Config => Ok(value.to_owned()),
            Values::Secrets => Ok(db
                .sealer()?
                .seal(&Purpose::plugin_secret(plugin, name), value)),
        }
    }

    /// The value of `stored`: unsealed for secrets.
    fn read_stored(
        self,
        db: &Database,
        plugin: &str,
        name: &str,
        stored: String,
    ) -> Result<String, DbError> {
        match self {
            Values::Config => Ok(stored),
            Values::Secrets => Ok(db
                .sealer()?
                .open(&Purpose::plugin_secret(plugin, name), &stored)?),
        }
    }
}

/// Every stored value of one plugin in `which`, by name.
pub(crate) async fn values(
    db: &Database,
    which: Values,
    plugin: &str,
) -> Result<BTreeMap<String, String>, DbError> {
    let sql = format!(
        "SELECT name, value FROM {} WHERE plugin_id = ",
        which.table()
    );
    let rows: Vec<(String, String)> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, &sql);
        qb.push_bind(plugin);
        qb.build_query_as::<(String, String)>()
            .fetch_all(pool)
            .await?
    });
    rows.into_iter()
        .map(|(name, stored)| {
            let value = which.read_stored(db, plugin, &name, stored)?;
            Ok((name, value))
        })
        .collect()
}

/// One stored value.
pub(crate) async fn value(
    db: &Database,
    which: Values,
    plugin: &str,
    name: &str,
) -> Result<Option<String>, DbError> {
    let sql = format!("SELECT value FROM {} WHERE plugin_id = ", which.table());
    let row: Option<(String,)> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, &sql);
        qb.push_bind(plugin).push(" AND name = ").push_bind(name);
        qb.build_query_as::<(String,)>()
            .fetch_optional(pool)
            .await?
    });
    row.map(|(stored,)| which.read_stored(db, plugin, name, stored))
        .transpose()
}

/// Sets the values in `set` and removes those in `remove`; appends `event`.
pub(crate) async fn write_values(
    db: &Database,
    which: Values,
    plugin: &str,
    set: &BTreeMap<String, String>,
    remove: &[String],
    event: &NewEvent,
) -> Result<(), DbError> {
    let table = which.table();
    let stored = set
        .iter()
        .map(|(name, value)| Ok((name, which.make_stored(db, plugin, name, value)?)))
        .collect::<Result<Vec<(&String, String)>, DbError>>()?;
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        for name in set.keys().chain(remove) {
            let mut qb = query_builder(pool, &format!("DELETE FROM {table} WHERE plugin_id = "));
            qb.push_bind(plugin).push(" AND name = ").push_bind(name);
            qb.build().execute(&mut *tx).await?;
        }
        for (name, value) in &stored {
            let mut qb = query_builder(
                pool,
                &format!("INSERT INTO {table} (plugin_id, name, value) VALUES ("),
            );
            qb.separated(", ")
                .push_bind(plugin)
                .push_bind(*name)
                .push_bind(value);
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
        }
        tx.record(event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// One row of a [`commit_set`]: the record, whether it replaces an
/// installed row, and its event.
pub(crate) type SetRow = (PluginRecord, bool, NewEvent);

fn insert_sql() -> &'static str {
    "INSERT INTO plugins (id, version, package_sha256, component_sha256, manifest, state, grants, installed_at, updated_at) VALUES ("
}

/// Writes several plugin rows and `state` rows of `marketplace_state` (name,
/// value) in one transaction, with each row's event: all of them or none.
pub(crate) async fn commit_set(
    db: &Database,
    rows: &[SetRow],
    state: &[(&str, String)],
) -> Result<(), DbError> {
    let at = to_micros(crate::db::now());
    on_pool!(db, |pool| {
        // The plugin rows need their events; the Marketplace's state is its
        // bookkeeping.
        let mut tx = pool.begin_unrecorded(Unrecorded::Marketplace).await?;
        for (record, replace, event) in rows {
            if *replace {
                let mut qb = query_builder(pool, "DELETE FROM plugins WHERE id = ");
                qb.push_bind(&record.id);
                qb.build().execute(&mut *tx).await?;
            }
            let mut qb = query_builder(pool, insert_sql());
            qb.separated(", ")
                .push_bind(&record.id)
                .push_bind(record.version.to_string())
                .push_bind(&record.package_sha256)
                .push_bind(&record.component_sha256)
                .push_bind(&record.manifest)
                .push_bind(record.state.as_str())
                .push_bind(Json(&record.grants))
                .push_bind(to_micros(record.installed_at))
                .push_bind(to_micros(record.updated_at));
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
            tx.record(event).await?;
        }
        for (name, value) in state {
            let mut qb = query_builder(pool, "DELETE FROM marketplace_state WHERE name = ");
            qb.push_bind(*name);
            qb.build().execute(&mut *tx).await?;
            let mut qb = query_builder(
                pool,
                "INSERT INTO marketplace_state (name, value, updated_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(*name)
                .push_bind(value)
                .push_bind(at);
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// One row of `marketplace_state`, if written.
pub(crate) async fn marketplace_state(
    db: &Database,
    name: &str,
) -> Result<Option<String>, DbError> {
    let row: Option<(String,)> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT value FROM marketplace_state WHERE name = ");
        qb.push_bind(name);
        qb.build_query_as::<(String,)>()
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(|(v,)| v))
}
