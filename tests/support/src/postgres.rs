//! A fresh database per test on the local PostgreSQL server, so tests run
//! in parallel without seeing each other's rows.
//!
//! The server is `CAP_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`; an unreachable server fails
//! the test with that message.

use sqlx::Connection as _;

/// A database created for one test; [`PgDb::drop_db`] drops it.
#[derive(Debug)]
pub struct PgDb {
    admin_url: String,
    /// The database's name (`cap_mkt_<random>`).
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl PgDb {
    /// Creates a database with a random name.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached or refuses `CREATE DATABASE`.
    pub async fn create() -> PgDb {
        let server = crate::services::POSTGRES;
        let admin_url = server.url();
        let mut conn: sqlx::PgConnection = server.connect().await;
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

    /// Drops the database, closing its connections first.
    pub async fn drop_db(self) {
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
