//! Adoption of databases created before numbered migrations.
//!
//! Until the Marketplace moved to sqlx's numbered migrations, it created
//! its schema with `CREATE TABLE IF NOT EXISTS` through `sqlx::Any` and
//! kept its own record of three steps in `schema_migrations`
//! (`registry`, `billing`, `publisher-trust`). Migration 1 of
//! `migrations/` is the schema those three steps leave.
//!
//! A database is taken for such a one when it has no `_sqlx_migrations`
//! table but a `schema_migrations` or a `publishers` table (the oldest
//! databases recorded no steps; their step 1 is a no-op, as it was then).
//! [`adopt`] applies the steps it misses exactly as the old code did (the
//! statements below are that code's, frozen), then records migration 1 as
//! applied without running it; [`Store::migrate`](super::Store::migrate)
//! then runs the later migrations as on any database (migration 2 drops
//! `schema_migrations`). A database with `_sqlx_migrations`, or an empty
//! one, is left alone.
//!
//! Every step runs in one transaction with its row in `schema_migrations`,
//! and recording migration 1 takes sqlx's migration lock, so a second
//! Marketplace adopting the same PostgreSQL database at the same moment
//! applies nothing twice.

use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqlitePool};

use super::StoreError;

/// Step 1: the registry.
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

/// Step 2: billing. `prices.version` is `''` for the package-wide
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

/// Step 3: publisher trust. Tokens expire (existing ones 90 days after
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

/// The old steps, in order.
const STEPS: &[(i64, &str, &str)] = &[
    (1, "registry", SCHEMA),
    (2, "billing", BILLING_SCHEMA),
    (3, "publisher-trust", TRUST_SCHEMA),
];

/// The migration that is the old steps' schema.
const BASELINE: i64 = 1;

/// Applies the missing old steps for one backend's connection type.
macro_rules! apply_steps {
    ($pool:expr) => {{
        let pool = $pool;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(pool)
        .await?;
        for (version, name, schema) in STEPS {
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
            tracing::info!(version, name, "applied a pre-migration schema step");
        }
    }};
}

/// Which of `_sqlx_migrations`, `schema_migrations` and `publishers`
/// exist, as a [`Found`].
fn found(tables: &[String]) -> Found {
    let has = |name: &str| tables.iter().any(|t| t == name);
    if has("_sqlx_migrations") {
        Found::Migrated
    } else if has("schema_migrations") || has("publishers") {
        Found::Legacy
    } else {
        Found::Empty
    }
}

/// What a database holds, as far as adoption cares.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Numbered migrations already (or a database adopted before).
    Migrated,
    /// A schema from before numbered migrations.
    Legacy,
    /// Nothing: the migrations create everything.
    Empty,
}

/// The tables adoption looks at.
const LOOKED_AT: [&str; 3] = ["_sqlx_migrations", "schema_migrations", "publishers"];

/// Adopts a SQLite or PostgreSQL database from before numbered migrations
/// (see the module documentation); a no-op for any other.
pub(super) trait Adopt {
    /// Adopts the database behind `self` for `migrator`.
    async fn adopt(&self, migrator: &Migrator) -> Result<(), StoreError>;
}

impl Adopt for SqlitePool {
    async fn adopt(&self, migrator: &Migrator) -> Result<(), StoreError> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ($1, $2, $3)",
        )
        .bind(LOOKED_AT[0])
        .bind(LOOKED_AT[1])
        .bind(LOOKED_AT[2])
        .fetch_all(self)
        .await?;
        if found(&tables) != Found::Legacy {
            return Ok(());
        }
        apply_steps!(self);
        migrator.skip(self, Some(BASELINE)).await?;
        tracing::info!("adopted a database from before numbered migrations");
        Ok(())
    }
}

impl Adopt for PgPool {
    async fn adopt(&self, migrator: &Migrator) -> Result<(), StoreError> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema() AND table_name IN ($1, $2, $3)",
        )
        .bind(LOOKED_AT[0])
        .bind(LOOKED_AT[1])
        .bind(LOOKED_AT[2])
        .fetch_all(self)
        .await?;
        if found(&tables) != Found::Legacy {
            return Ok(());
        }
        apply_steps!(self);
        migrator.skip(self, Some(BASELINE)).await?;
        tracing::info!("adopted a database from before numbered migrations");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_database_with_the_old_tables_and_no_sqlx_record_is_adopted() {
        let tables = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(found(&tables(&[])), Found::Empty);
        assert_eq!(
            found(&tables(&["schema_migrations", "publishers"])),
            Found::Legacy
        );
        assert_eq!(found(&tables(&["publishers"])), Found::Legacy);
        assert_eq!(
            found(&tables(&[
                "_sqlx_migrations",
                "schema_migrations",
                "publishers"
            ])),
            Found::Migrated
        );
        assert_eq!(
            found(&tables(&["_sqlx_migrations", "publishers"])),
            Found::Migrated
        );
    }
}
