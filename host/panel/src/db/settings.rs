//! Panel-wide settings: named JSON values.
//!
//! Every change records a [`SettingEvent`] (`setting.created`,
//! `setting.updated` or `setting.deleted`, subject the setting's name, the
//! new value in `data.value`) in the same transaction as the change itself,
//! through a `Recorder` (see [`crate::db`]); this module is also the
//! reference for how writers pair a state change with its event.
//!
//! Settings are not for secrets: values are copied into the audit log.

use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::domain::{Empty, SettingEvent, SettingName, SettingValueData};
use super::events::is_valid_name;
use super::{
    Actor, Backend, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder,
    to_micros,
};

/// Maximum length of a setting's name.
pub const MAX_NAME_LEN: usize = 128;

/// One setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Its name: lowercase letters, digits, `.`, `_`, `-`, at most 128
    /// characters, e.g. `registration.open`.
    pub name: String,
    /// Its value.
    pub value: Value,
    /// When it was last written.
    pub updated_at: OffsetDateTime,
}

/// True if and only if `name` is a valid setting name (see
/// [`Setting::name`]).
pub fn is_valid_setting_name(name: &str) -> bool {
    is_valid_name(name, MAX_NAME_LEN)
}

/// The settings of one [`Database`]; see [`Database::settings`].
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    db: &'a Database,
}

#[derive(sqlx::FromRow)]
struct SettingRow {
    name: String,
    value: Json<Value>,
    updated_at: i64,
}

impl TryFrom<SettingRow> for Setting {
    type Error = DbError;

    fn try_from(row: SettingRow) -> Result<Self, DbError> {
        Ok(Setting {
            name: row.name,
            value: row.value.0,
            updated_at: from_micros(row.updated_at)?,
        })
    }
}

fn check_name(name: &str) -> Result<(), DbError> {
    if is_valid_setting_name(name) {
        Ok(())
    } else {
        Err(DbError::Invalid {
            field: "name",
            reason: format!(
                "{name:?} must be 1 to {MAX_NAME_LEN} characters: a lowercase letter or digit, then lowercase letters, digits, '.', '_' or '-'"
            ),
        })
    }
}

impl<'a> Settings<'a> {
    pub(crate) fn new(db: &'a Database) -> Self {
        Settings { db }
    }

    /// The setting called `name`, if it exists.
    ///
    /// # Errors
    ///
    /// [`DbError::Unavailable`] and other database errors.
    pub async fn get(&self, name: &str) -> Result<Option<Setting>, DbError> {
        let row: Option<SettingRow> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(
                pool,
                "SELECT name, value, updated_at FROM settings WHERE name = ",
            );
            qb.push_bind(name);
            qb.build_query_as::<SettingRow>()
                .fetch_optional(pool)
                .await?
        });
        row.map(Setting::try_from).transpose()
    }

    /// Every setting, by name.
    ///
    /// # Errors
    ///
    /// [`DbError::Unavailable`] and other database errors.
    pub async fn list(&self) -> Result<Vec<Setting>, DbError> {
        let rows: Vec<SettingRow> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(
                pool,
                "SELECT name, value, updated_at FROM settings ORDER BY name",
            );
            qb.build_query_as::<SettingRow>().fetch_all(pool).await?
        });
        rows.into_iter().map(Setting::try_from).collect()
    }

    /// Creates the setting `name`; it must not exist yet. Appends
    /// `setting.created` by `actor`.
    ///
    /// # Errors
    ///
    /// [`DbError::Conflict`] if it exists, [`DbError::Invalid`] for a bad
    /// name, [`DbError::Unavailable`] and other database errors.
    pub async fn create(
        &self,
        name: &str,
        value: &Value,
        actor: &Actor,
    ) -> Result<Setting, DbError> {
        check_name(name)?;
        let at = now();
        let event = SettingEvent::Created {
            subject: SettingName::new(name),
            data: SettingValueData {
                value: value.clone(),
            },
        };
        let event = NewEvent::new(event).actor(actor.clone()).occurred_at(at);
        on_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(
                pool,
                "INSERT INTO settings (name, value, updated_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(name)
                .push_bind(Json(value))
                .push_bind(to_micros(at));
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
            tx.record(&event).await?;
            tx.commit().await?;
        });
        Ok(Setting {
            name: name.to_owned(),
            value: value.clone(),
            updated_at: at,
        })
    }

    /// Sets `name` to `value`, creating it if needed. Appends
    /// `setting.updated` by `actor`.
    ///
    /// # Errors
    ///
    /// [`DbError::Invalid`] for a bad name, [`DbError::Unavailable`] and
    /// other database errors.
    pub async fn put(&self, name: &str, value: &Value, actor: &Actor) -> Result<Setting, DbError> {
        check_name(name)?;
        let at = now();
        let event = SettingEvent::Updated {
            subject: SettingName::new(name),
            data: SettingValueData {
                value: value.clone(),
            },
        };
        let event = NewEvent::new(event).actor(actor.clone()).occurred_at(at);
        let upsert = match self.db.backend() {
            Backend::MySql => {
                " ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = VALUES(updated_at)"
            }
            Backend::Sqlite | Backend::Postgres => {
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
            }
        };
        on_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(
                pool,
                "INSERT INTO settings (name, value, updated_at) VALUES (",
            );
            qb.separated(", ")
                .push_bind(name)
                .push_bind(Json(value))
                .push_bind(to_micros(at));
            qb.push(")").push(upsert);
            qb.build().execute(&mut *tx).await?;
            tx.record(&event).await?;
            tx.commit().await?;
        });
        Ok(Setting {
            name: name.to_owned(),
            value: value.clone(),
            updated_at: at,
        })
    }

    /// Deletes `name`; returns whether it existed. Appends
    /// `setting.deleted` by `actor` if it did.
    ///
    /// # Errors
    ///
    /// [`DbError::Invalid`] for a bad name, [`DbError::Unavailable`] and
    /// other database errors.
    pub async fn delete(&self, name: &str, actor: &Actor) -> Result<bool, DbError> {
        check_name(name)?;
        let event = SettingEvent::Deleted {
            subject: SettingName::new(name),
            data: Empty {},
        };
        let event = NewEvent::new(event).actor(actor.clone()).occurred_at(now());
        let existed = on_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = query_builder(pool, "DELETE FROM settings WHERE name = ");
            qb.push_bind(name);
            let deleted = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
            if deleted {
                tx.record(&event).await?;
            }
            tx.commit().await?;
            deleted
        });
        Ok(existed)
    }
}
