//! The database's numbered migrations: a database from before them (a
//! dump of one the Marketplace of that time created and used, in
//! `tests/fixtures/pre-migrations/`) is adopted and keeps every row on
//! both backends; adopted and fresh databases end with the same tables,
//! columns and constraints; and both backends refuse the same rows.

use std::collections::BTreeSet;

use cap_marketplace_server::store::{Store, StoreError};
use cap_test_support::postgres::PgDb;
use serde_json::Value;
use sqlx::Connection as _;

/// A SQLite database the Marketplace created before numbered migrations,
/// as `sqlite3 marketplace.db .dump` wrote it.
const SQLITE_FIXTURE: &str = include_str!("../fixtures/pre-migrations/sqlite.sql");
/// The same history on PostgreSQL, as `pg_dump --inserts` wrote it.
const POSTGRES_FIXTURE: &str = include_str!("../fixtures/pre-migrations/postgres.sql");
/// The log of `quota-guard` as that Marketplace served it, on SQLite.
const SQLITE_LOG: &str = include_str!("../fixtures/pre-migrations/sqlite-log.json");
/// The same on PostgreSQL.
const POSTGRES_LOG: &str = include_str!("../fixtures/pre-migrations/postgres-log.json");

/// Every migration this build embeds.
const MIGRATIONS: [i64; 2] = [1, 2];

/// A SQLite file in a private directory, with its URL.
struct SqliteFile {
    _dir: tempfile::TempDir,
    url: String,
}

impl SqliteFile {
    fn new() -> SqliteFile {
        let dir = cap_test_support::private_tempdir();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("marketplace.db").display()
        );
        SqliteFile { _dir: dir, url }
    }

    async fn load(&self, script: &str) {
        let mut conn = sqlx::SqliteConnection::connect(&self.url)
            .await
            .expect("opens");
        sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()))
            .execute(&mut conn)
            .await
            .expect("the fixture loads");
        conn.close().await.expect("closes");
    }
}

async fn load_postgres(db: &PgDb, script: &str) {
    let mut conn = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("connects");
    sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()))
        .execute(&mut conn)
        .await
        .expect("the fixture loads");
    conn.close().await.expect("closes");
}

/// Checks that `store` holds what the fixture's Marketplace wrote: a
/// publisher selling a yanked, downloaded `quota-guard` with a package and
/// a version price, bought by one Panel, with its whole log.
async fn assert_the_fixture_data_is_kept(store: &Store, served_log: &str) {
    let publisher = store
        .publisher_by_name("guardians")
        .await
        .expect("reads")
        .expect("the publisher is kept");
    let mut tx = store.begin().await.expect("begins");
    let keys = store
        .keys(&mut tx, &publisher.id)
        .await
        .expect("reads keys");
    assert_eq!(keys.len(), 1, "the publisher's key is kept");
    assert_eq!(
        store
            .key_owner(&mut tx, keys[0].key.id())
            .await
            .expect("reads"),
        Some(publisher.id.clone())
    );
    assert_eq!(
        store
            .package_ids_of(&mut tx, &publisher.id)
            .await
            .expect("reads"),
        vec!["quota-guard".to_owned()]
    );
    tx.rollback().await.expect("rolls back");

    let package = store
        .package("quota-guard")
        .await
        .expect("reads")
        .expect("the package is kept");
    assert_eq!(package.publisher, "guardians");
    assert_eq!(package.downloads, 1);
    assert!(package.paid);
    let price = package.price.expect("a price");
    assert_eq!((price.amount, price.currency.as_str()), (2_500, "usd"));

    let releases = store.releases("quota-guard").await.expect("reads");
    assert_eq!(releases.len(), 1);
    assert!(releases[0].yanked);
    assert_eq!(releases[0].yank_reason.as_deref(), Some("superseded"));
    assert_eq!(releases[0].downloads, 1);

    let prices = store.prices("quota-guard").await.expect("reads");
    assert_eq!(prices.len(), 2, "{prices:?}");

    let entitlements = store.entitlements_of("panel-one").await.expect("reads");
    assert_eq!(entitlements.len(), 1);
    assert!(entitlements[0].active);
    assert_eq!(entitlements[0].package_id, "quota-guard");

    let log = store.log("quota-guard").await.expect("reads");
    let served: Value = serde_json::from_str(served_log).expect("JSON");
    assert_eq!(log.len(), 3, "key grant, release, yank");
    assert_eq!(
        serde_json::to_value(&log).expect("serialises"),
        served,
        "the log is kept entry for entry"
    );
    let heads = store.heads().await.expect("reads");
    assert_eq!(heads["quota-guard"].len, log.len() as u64);
    assert_eq!(heads["quota-guard"].hash, log[log.len() - 1].hash());
}

/// Checks that the store takes new rows after adoption.
async fn assert_it_takes_new_rows(store: &Store) {
    let created = store
        .create_publisher("p-new", "newcomers", "token-hash-new", 1, 2)
        .await
        .expect("writes");
    assert!(created.is_some());
    let taken = store
        .create_publisher("p-other", "guardians", "token-hash-other", 1, 2)
        .await
        .expect("writes");
    assert!(taken.is_none(), "the kept name is still unique");
    store
        .create_panel("panel-new", "panel-token-hash-new", 3)
        .await
        .expect("writes");
    assert_eq!(
        store
            .panel_by_token("panel-token-hash-new")
            .await
            .expect("reads")
            .as_deref(),
        Some("panel-new")
    );
}

#[tokio::test]
async fn a_sqlite_database_from_before_numbered_migrations_is_adopted_with_its_data() {
    let file = SqliteFile::new();
    file.load(SQLITE_FIXTURE).await;
    let store = Store::connect(&file.url, 2).await.expect("adopts");
    assert_the_fixture_data_is_kept(&store, SQLITE_LOG).await;
    assert_it_takes_new_rows(&store).await;
    store.close().await;

    // Opening it again changes nothing.
    let store = Store::connect(&file.url, 2).await.expect("opens again");
    assert_the_fixture_data_is_kept(&store, SQLITE_LOG).await;
    store.close().await;

    let mut conn = sqlx::SqliteConnection::connect(&file.url)
        .await
        .expect("opens");
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("reads");
    assert_eq!(applied, MIGRATIONS);
    let old: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'schema_migrations'")
            .fetch_optional(&mut conn)
            .await
            .expect("reads");
    assert_eq!(old, None, "the old record is dropped");
}

#[tokio::test]
async fn a_postgres_database_from_before_numbered_migrations_is_adopted_with_its_data() {
    let db = PgDb::create().await;
    load_postgres(&db, POSTGRES_FIXTURE).await;
    let store = Store::connect(&db.url, 2).await.expect("adopts");
    assert_the_fixture_data_is_kept(&store, POSTGRES_LOG).await;
    assert_it_takes_new_rows(&store).await;
    store.close().await;

    let store = Store::connect(&db.url, 2).await.expect("opens again");
    assert_the_fixture_data_is_kept(&store, POSTGRES_LOG).await;
    store.close().await;

    let mut conn = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("connects");
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("reads");
    assert_eq!(applied, MIGRATIONS);
    let old: Option<String> = sqlx::query_scalar("SELECT to_regclass('schema_migrations')::TEXT")
        .fetch_one(&mut conn)
        .await
        .expect("reads");
    assert_eq!(old, None, "the old record is dropped");
    conn.close().await.expect("closes");
    db.drop_db().await;
}

/// Every table's columns (name, declared type, nullability) and every
/// index, of a SQLite database.
async fn sqlite_shape(url: &str) -> BTreeSet<String> {
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("opens");
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT m.name, p.name, p.type, p.\"notnull\" FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("reads columns");
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND tbl_name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("reads indexes");
    let checks: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("reads tables");
    conn.close().await.expect("closes");
    rows.into_iter()
        .map(|(t, c, ty, nn)| format!("column {t}.{c} {ty} notnull={nn}"))
        .chain(
            indexes
                .into_iter()
                .map(|(i, t)| format!("index {i} on {t}")),
        )
        .chain(checks.into_iter().flat_map(|(t, sql)| {
            check_names(&sql)
                .into_iter()
                .map(move |c| format!("check {t}.{c}"))
        }))
        .collect()
}

/// The names of the `CONSTRAINT <name> CHECK` clauses in `sql`.
fn check_names(sql: &str) -> Vec<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    words
        .windows(3)
        .filter(|w| w[0].eq_ignore_ascii_case("CONSTRAINT") && w[2].eq_ignore_ascii_case("CHECK"))
        .map(|w| w[1].to_owned())
        .collect()
}

#[tokio::test]
async fn an_adopted_sqlite_database_ends_with_the_same_schema_as_a_fresh_one() {
    let adopted = SqliteFile::new();
    adopted.load(SQLITE_FIXTURE).await;
    Store::connect(&adopted.url, 2)
        .await
        .expect("adopts")
        .close()
        .await;
    let fresh = SqliteFile::new();
    Store::connect(&fresh.url, 2)
        .await
        .expect("creates")
        .close()
        .await;
    let (adopted, fresh) = (
        sqlite_shape(&adopted.url).await,
        sqlite_shape(&fresh.url).await,
    );
    assert!(fresh.iter().any(|s| s.starts_with("check ")), "{fresh:?}");
    assert_eq!(adopted, fresh);
}

/// The `CONSTRAINT <name> CHECK (<expression>)` clauses of a migrations
/// directory, with their expressions.
fn checks_in(backend: &str) -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("lists migrations") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("reads");
        let sql: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = sql.as_str();
        while let Some(at) = rest.find("CONSTRAINT ") {
            rest = &rest[at + "CONSTRAINT ".len()..];
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let Some(open) = rest.find("CHECK (") else {
                break;
            };
            let expression = &rest[open + "CHECK ".len()..];
            let mut depth = 0;
            let end = expression
                .char_indices()
                .find_map(|(i, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(i)
                })
                .expect("balanced parentheses");
            found.insert(format!("{name} CHECK {}", &expression[..=end]));
        }
    }
    found
}

#[test]
fn both_backends_declare_the_same_check_constraints() {
    let sqlite = checks_in("sqlite");
    assert!(sqlite.len() >= 8, "{sqlite:?}");
    assert_eq!(sqlite, checks_in("postgres"));
}

/// Rows the constraints refuse, each after the rows it needs.
const REFUSED: &[(&str, &str)] = &[
    (
        "a paid flag of 2",
        "INSERT INTO packages (id, publisher_id, name, description, kinds, games, paid, downloads, latest_version, created_at, updated_at) \
         VALUES ('bad', 'p', 'n', 'd', '', '', 2, 0, '1.0.0', 1, 1)",
    ),
    (
        "a yanked flag of 7",
        "INSERT INTO releases (package_id, version, major, minor, patch, sha256, size, api, dependencies, key_id, author_signature, countersignature, yanked, downloads, published_at) \
         VALUES ('pk', '2.0.0', 2, 0, 0, 's', 1, '0.1', '{}', 'k', 'a', 'c', 7, 0, 1)",
    ),
    (
        "negative downloads",
        "UPDATE packages SET downloads = -1 WHERE id = 'pk'",
    ),
    (
        "a negative price",
        "INSERT INTO prices (package_id, version, amount, currency, updated_at) VALUES ('pk', '', -5, 'eur', 1)",
    ),
    (
        "a fee above the amount",
        "INSERT INTO checkouts (id, session_id, package_id, version, panel_instance, amount, currency, application_fee, destination, created_at) \
         VALUES ('c2', NULL, 'pk', '1.0.0', 'pi', 100, 'eur', 101, 'acct_x', 1)",
    ),
    (
        "an unknown entitlement status",
        "UPDATE entitlements SET status = 'pending' WHERE id = 'e'",
    ),
];

/// Rows every constraint accepts, for [`REFUSED`] to break.
const ACCEPTED: &str = "
INSERT INTO publishers (id, name, token_hash, created_at, token_expires_at) VALUES ('p', 'acme', 'h', 1, 2);
INSERT INTO packages (id, publisher_id, name, description, kinds, games, paid, downloads, latest_version, created_at, updated_at)
    VALUES ('pk', 'p', 'n', 'd', '', '', 1, 0, '1.0.0', 1, 1);
INSERT INTO panel_instances (id, token_hash, created_at) VALUES ('pi', 't', 1);
INSERT INTO checkouts (id, session_id, package_id, version, panel_instance, amount, currency, application_fee, destination, created_at)
    VALUES ('c', NULL, 'pk', '1.0.0', 'pi', 100, 'eur', 100, 'acct_x', 1);
INSERT INTO entitlements (id, package_id, panel_instance, checkout_id, payment_intent, status, created_at)
    VALUES ('e', 'pk', 'pi', 'c', NULL, 'revoked', 1);
";

/// Whether each of [`REFUSED`] was refused as a CHECK violation.
macro_rules! refusals {
    ($conn:expr) => {{
        let conn = $conn;
        sqlx::raw_sql(ACCEPTED)
            .execute(&mut *conn)
            .await
            .expect("valid rows are accepted");
        let mut refused = Vec::new();
        for (what, sql) in REFUSED {
            let result = sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *conn)
                .await;
            let refused_by_check = match &result {
                Err(sqlx::Error::Database(e)) => e.is_check_violation(),
                _ => false,
            };
            refused.push((*what, refused_by_check));
        }
        refused
    }};
}

#[tokio::test]
async fn both_backends_refuse_the_same_rows() {
    let file = SqliteFile::new();
    Store::connect(&file.url, 2)
        .await
        .expect("creates")
        .close()
        .await;
    let mut sqlite = sqlx::SqliteConnection::connect(&file.url)
        .await
        .expect("opens");
    let on_sqlite = refusals!(&mut sqlite);

    let db = PgDb::create().await;
    Store::connect(&db.url, 2)
        .await
        .expect("creates")
        .close()
        .await;
    let mut postgres = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("connects");
    let on_postgres = refusals!(&mut postgres);
    postgres.close().await.expect("closes");
    db.drop_db().await;

    assert!(
        on_sqlite.iter().all(|(_, refused)| *refused),
        "{on_sqlite:?}"
    );
    assert_eq!(on_sqlite, on_postgres);
}

#[tokio::test]
async fn an_unsupported_database_url_is_refused_by_name() {
    let error = Store::connect("mysql://root@127.0.0.1/test", 1)
        .await
        .expect_err("MySQL is not a Marketplace backend");
    assert!(matches!(error, StoreError::InvalidUrl(_)), "{error}");
    assert!(error.to_string().contains("PostgreSQL"), "{error}");
}
