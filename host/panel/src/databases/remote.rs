//! What the Panel does on a database host: connect as its administrative
//! user, and create, re-password or drop one database with its user.
//!
//! Each operation opens one connection of its own (no pool: hosts are
//! used a few times a day, and an administrator's change of address or
//! password must apply to the next call), with [`CONNECT_TIMEOUT`] to
//! connect and [`OPERATION_TIMEOUT`] for the whole operation, and closes
//! it. Statement logging is off for these connections: the statements
//! carry passwords.
//!
//! # Statements
//!
//! Data definition takes no bind parameters on either server, so names
//! and passwords are written into the statements. Only values checked
//! here are: names and user names match `[a-z0-9_]` ([`valid_identifier`],
//! generated or validated by [`super::names`]), passwords are generated
//! alphanumeric ([`valid_password`]), and a MySQL host pattern holds only
//! `[A-Za-z0-9.%_:/-]` ([`super::names::check_remote`]); each is checked
//! again here, right before it is written, and quoted as its server
//! quotes it anyway (identifiers in backticks or double quotes with the
//! quote doubled, strings in single quotes with quotes and backslashes
//! doubled).
//!
//! | | MySQL / MariaDB | PostgreSQL |
//! | --- | --- | --- |
//! | create | `CREATE DATABASE`, `CREATE USER 'u'@'remote' IDENTIFIED BY …`, `GRANT ALL PRIVILEGES ON db.* TO …` | `CREATE ROLE u LOGIN PASSWORD …`, `CREATE DATABASE db OWNER u`, `REVOKE ALL ON DATABASE db FROM PUBLIC` |
//! | rotate | `ALTER USER … IDENTIFIED BY …` | `ALTER ROLE u WITH PASSWORD …` |
//! | drop | `DROP DATABASE IF EXISTS`, `DROP USER IF EXISTS` | `DROP DATABASE IF EXISTS … WITH (FORCE)`, `DROP ROLE IF EXISTS` |
//!
//! In a MySQL `GRANT`, `_` in a database name is a wildcard; it is
//! escaped (`\_`) so that the grant covers exactly the one database. A
//! create that fails part way drops what it created, and only that (a
//! database that was there before is never dropped).
//!
//! PostgreSQL connections go to the `postgres` maintenance database, and
//! its `pg_hba.conf` decides where a role may connect from: the `remote`
//! pattern is MySQL's only.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _};

use super::Kind;

/// How long connecting to a host may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one operation on a host (connecting included) may take.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The database PostgreSQL connections go to.
pub const POSTGRES_MAINTENANCE_DB: &str = "postgres";

/// Where a host is, and the administrative user the Panel connects as.
#[derive(Clone)]
pub struct Endpoint {
    /// MySQL/MariaDB or PostgreSQL.
    pub kind: Kind,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The administrative user.
    pub username: String,
    /// Its password (empty: none).
    pub password: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One database and its user, as created on a host.
#[derive(Clone)]
pub struct Grant<'a> {
    /// The database's name.
    pub database: &'a str,
    /// Its user's name.
    pub username: &'a str,
    /// The user's password.
    pub password: &'a str,
    /// Where the user may connect from (MySQL host pattern).
    pub remote: &'a str,
}

/// Why an operation on a host failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// Nothing answered at the address (or not a server of this kind), or
    /// not in time.
    #[error("{0}")]
    Unreachable(String),
    /// The host refused the administrative user's name or password.
    #[error("{0}")]
    LoginRefused(String),
    /// The database exists on the host already.
    #[error("{0}")]
    Exists(String),
    /// The host refused a statement.
    #[error("{0}")]
    Failed(String),
}

/// True if and only if `text` may be written into a statement as a
/// database or user name: 1 to 64 characters of `[a-z0-9_]`.
pub fn valid_identifier(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// True if and only if `text` may be written into a statement as a
/// password: 16 to 128 ASCII letters and digits.
pub fn valid_password(text: &str) -> bool {
    (16..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// True if and only if `text` may be written into a statement as a MySQL
/// host pattern.
pub fn valid_remote(text: &str) -> bool {
    super::names::check_remote(text).is_ok()
}

/// `name` as a MySQL identifier.
fn mysql_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `name` as a PostgreSQL identifier.
fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a string literal (both servers, with or without backslash
/// escapes).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// `name` in a MySQL `GRANT … ON`: `_` and `%` are wildcards there.
fn mysql_grant_db(name: &str) -> String {
    mysql_ident(&name.replace('_', "\\_").replace('%', "\\%"))
}

fn refuse(what: &str, value: &str) -> RemoteError {
    RemoteError::Failed(format!(
        "the Panel refused to send a statement with the {what} {value:?}"
    ))
}

fn check_grant(grant: &Grant<'_>) -> Result<(), RemoteError> {
    if !valid_identifier(grant.database) {
        return Err(refuse("database name", grant.database));
    }
    if !valid_identifier(grant.username) {
        return Err(refuse("user name", grant.username));
    }
    if !valid_password(grant.password) {
        return Err(RemoteError::Failed(
            "the Panel refused to send a statement with a malformed password".into(),
        ));
    }
    if !valid_remote(grant.remote) {
        return Err(refuse("host pattern", grant.remote));
    }
    Ok(())
}

/// An open administrative connection.
enum Conn {
    MySql(MySqlConnection),
    Postgres(PgConnection),
}

impl Conn {
    async fn run(&mut self, sql: String) -> Result<(), RemoteError> {
        let statement = sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
        let result = match self {
            Conn::MySql(conn) => statement.execute(conn).await.map(drop),
            Conn::Postgres(conn) => statement.execute(conn).await.map(drop),
        };
        result.map_err(classify)
    }

    async fn close(self) {
        let _ = match self {
            Conn::MySql(conn) => conn.close().await,
            Conn::Postgres(conn) => conn.close().await,
        };
    }
}

/// Sorts a connection or statement failure.
fn classify(error: sqlx::Error) -> RemoteError {
    match &error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
            RemoteError::Unreachable(error.to_string())
        }
        sqlx::Error::Database(db) => {
            let state = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let number = db
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(MySqlDatabaseError::number);
            let message = db.message().to_owned();
            // SQLSTATE class 28: invalid authorization (both servers);
            // MySQL 1045 access denied, 1130 host not allowed, 1698 no
            // password login.
            if state.starts_with("28") || matches!(number, Some(1045 | 1130 | 1698)) {
                RemoteError::LoginRefused(message)
            } else if state == "42P04" || number == Some(1007) {
                RemoteError::Exists(message)
            } else {
                RemoteError::Failed(message)
            }
        }
        _ => RemoteError::Failed(error.to_string()),
    }
}

async fn connect(endpoint: &Endpoint) -> Result<Conn, RemoteError> {
    let connecting = async {
        match endpoint.kind {
            Kind::MySql => {
                let mut options = MySqlConnectOptions::new()
                    .host(&endpoint.host)
                    .port(endpoint.port)
                    .username(&endpoint.username);
                if !endpoint.password.is_empty() {
                    options = options.password(&endpoint.password);
                }
                options
                    .disable_statement_logging()
                    .connect()
                    .await
                    .map(Conn::MySql)
            }
            Kind::Postgres => {
                let mut options = PgConnectOptions::new_without_pgpass()
                    .host(&endpoint.host)
                    .port(endpoint.port)
                    .username(&endpoint.username)
                    .database(POSTGRES_MAINTENANCE_DB)
                    .application_name("ctrl-alt-play-panel");
                if !endpoint.password.is_empty() {
                    options = options.password(&endpoint.password);
                }
                options
                    .disable_statement_logging()
                    .connect()
                    .await
                    .map(Conn::Postgres)
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(classify(error)),
        Err(_) => Err(RemoteError::Unreachable(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// A statement, and the one that undoes it should a later statement of
/// the same operation fail.
struct Step {
    sql: String,
    undo: Option<String>,
}

impl Step {
    fn new(sql: String) -> Step {
        Step { sql, undo: None }
    }

    fn undone_by(sql: String, undo: String) -> Step {
        Step {
            sql,
            undo: Some(undo),
        }
    }
}

/// Runs `steps` in order on a fresh connection to `endpoint`, within
/// [`OPERATION_TIMEOUT`], and closes the connection. When a step fails,
/// the steps before it are undone (latest first) and its error returned.
async fn execute(endpoint: &Endpoint, steps: Vec<Step>) -> Result<(), RemoteError> {
    let operation = async {
        let mut conn = connect(endpoint).await?;
        let mut undo: Vec<String> = Vec::new();
        let mut result = Ok(());
        for step in steps {
            if let Err(error) = conn.run(step.sql).await {
                for statement in undo.into_iter().rev() {
                    if let Err(undo_error) = conn.run(statement).await {
                        tracing::warn!(host = %endpoint.host, error = %undo_error, "could not undo part of a failed operation on a database host");
                    }
                }
                result = Err(error);
                break;
            }
            undo.extend(step.undo);
        }
        conn.close().await;
        result
    };
    tokio::time::timeout(OPERATION_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| {
            Err(RemoteError::Unreachable(format!(
                "the host did not finish within {} s",
                OPERATION_TIMEOUT.as_secs()
            )))
        })
}

/// Connects as the administrative user and runs `SELECT 1`: what a new
/// or changed host must pass.
///
/// # Errors
///
/// [`RemoteError`] saying why not.
pub async fn check(endpoint: &Endpoint) -> Result<(), RemoteError> {
    execute(endpoint, vec![Step::new("SELECT 1".to_owned())]).await
}

/// Creates `grant`'s database and user on the host, the user allowed
/// everything on the database and nothing else. On failure, what this
/// call created is dropped again.
///
/// # Errors
///
/// [`RemoteError::Exists`] when the database is there already, other
/// [`RemoteError`]s as they come.
pub async fn create(endpoint: &Endpoint, grant: &Grant<'_>) -> Result<(), RemoteError> {
    check_grant(grant)?;
    let steps = match endpoint.kind {
        Kind::MySql => {
            let db = mysql_ident(grant.database);
            let user = format!("{}@{}", literal(grant.username), literal(grant.remote));
            vec![
                Step::undone_by(
                    format!(
                        "CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    ),
                    format!("DROP DATABASE IF EXISTS {db}"),
                ),
                Step::undone_by(
                    format!(
                        "CREATE USER {user} IDENTIFIED BY {}",
                        literal(grant.password)
                    ),
                    format!("DROP USER IF EXISTS {user}"),
                ),
                Step::new(format!(
                    "GRANT ALL PRIVILEGES ON {}.* TO {user}",
                    mysql_grant_db(grant.database)
                )),
            ]
        }
        Kind::Postgres => {
            let db = pg_ident(grant.database);
            let role = pg_ident(grant.username);
            vec![
                Step::undone_by(
                    format!(
                        "CREATE ROLE {role} LOGIN PASSWORD {}",
                        literal(grant.password)
                    ),
                    format!("DROP ROLE IF EXISTS {role}"),
                ),
                Step::undone_by(
                    format!("CREATE DATABASE {db} OWNER {role}"),
                    format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                ),
                Step::new(format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC")),
            ]
        }
    };
    execute(endpoint, steps).await
}

/// Gives the user of `grant` its new password (`grant.password`).
///
/// # Errors
///
/// [`RemoteError`] as it comes.
pub async fn set_password(endpoint: &Endpoint, grant: &Grant<'_>) -> Result<(), RemoteError> {
    check_grant(grant)?;
    let statement = match endpoint.kind {
        Kind::MySql => format!(
            "ALTER USER {}@{} IDENTIFIED BY {}",
            literal(grant.username),
            literal(grant.remote),
            literal(grant.password)
        ),
        Kind::Postgres => format!(
            "ALTER ROLE {} WITH PASSWORD {}",
            pg_ident(grant.username),
            literal(grant.password)
        ),
    };
    execute(endpoint, vec![Step::new(statement)]).await
}

/// Drops `database` and its user `username` (allowed from `remote`) on
/// the host; either may be gone already.
///
/// # Errors
///
/// [`RemoteError`] as it comes.
pub async fn drop_database(
    endpoint: &Endpoint,
    database: &str,
    username: &str,
    remote: &str,
) -> Result<(), RemoteError> {
    if !valid_identifier(database) {
        return Err(refuse("database name", database));
    }
    if !valid_identifier(username) {
        return Err(refuse("user name", username));
    }
    if !valid_remote(remote) {
        return Err(refuse("host pattern", remote));
    }
    let statements = match endpoint.kind {
        Kind::MySql => [
            format!("DROP DATABASE IF EXISTS {}", mysql_ident(database)),
            format!(
                "DROP USER IF EXISTS {}@{}",
                literal(username),
                literal(remote)
            ),
        ],
        Kind::Postgres => [
            format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                pg_ident(database)
            ),
            format!("DROP ROLE IF EXISTS {}", pg_ident(username)),
        ],
    };
    execute(endpoint, statements.into_iter().map(Step::new).collect()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted_as_each_server_quotes_them() {
        assert_eq!(mysql_ident("s1_a"), "`s1_a`");
        assert_eq!(mysql_ident("a`b"), "`a``b`");
        assert_eq!(pg_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\'b"), "'a\\\\''b'");
        assert_eq!(mysql_grant_db("s0a1b2c3d_world"), "`s0a1b2c3d\\_world`");
    }

    #[test]
    fn only_checked_values_reach_a_statement() {
        assert!(valid_identifier("s0a1b2c3d_world"));
        for bad in ["", "A", "a-b", "a b", "a'b", "a`b", "a\"b", &"a".repeat(65)] {
            assert!(!valid_identifier(bad), "{bad:?}");
        }
        assert!(valid_password("abcdefghABCDEFGH12345678"));
        for bad in [
            "short",
            "abcdefghABCDEFGH1234567'",
            "abcdefghABCDEFGH 1234567",
        ] {
            assert!(!valid_password(bad), "{bad:?}");
        }
        let grant = Grant {
            database: "s1_a",
            username: "u1_abc",
            password: "abcdefghABCDEFGH12345678",
            remote: "%' OR '1",
        };
        assert!(matches!(check_grant(&grant), Err(RemoteError::Failed(_))));
    }
}
