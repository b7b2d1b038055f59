//! Where the tests' outside services are, found the same way by every
//! crate's tests, and one clear failure when one is missing.
//!
//! A fresh clone's `cargo test --workspace` needs, besides Rust and the
//! `wasm32-wasip2` target (see the README):
//!
//! | Service | Found at | Override |
//! |---|---|---|
//! | PostgreSQL | `postgres://postgres@127.0.0.1:5432/test` | `CAP_TEST_POSTGRES_URL` |
//! | MariaDB or MySQL | `mysql://root@127.0.0.1:3306/test` | `CAP_TEST_MYSQL_URL` |
//! | Chromium and chromedriver | `/usr/bin/chromium`, `/usr/bin/chromedriver` | `CAP_TEST_CHROMIUM`, `CAP_TEST_CHROMEDRIVER` |
//! | Podman (its Docker Engine API service) | `podman` on `PATH`, started by each test | [`cap_e2e::podman`] |
//!
//! A test never skips itself when a service is missing: it fails, naming
//! the service, where it looked, the variable that points elsewhere and
//! how to install or start it. Passing silently on a machine without the
//! service would hide that nothing was tested.

use std::path::PathBuf;
use std::time::Duration;

/// How long a database server may take to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database server the tests connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseServer {
    /// Its name for people.
    pub name: &'static str,
    /// The variable that names another URL.
    pub variable: &'static str,
    /// The URL used without the variable.
    pub default_url: &'static str,
    /// How to get one on Debian.
    pub install: &'static str,
}

/// The PostgreSQL server (trust authentication, database `test`).
pub const POSTGRES: DatabaseServer = DatabaseServer {
    name: "PostgreSQL",
    variable: "CAP_TEST_POSTGRES_URL",
    default_url: "postgres://postgres@127.0.0.1:5432/test",
    install: "apt-get install postgresql (trust authentication for 127.0.0.1, a database `test`)",
};

/// The MariaDB or MySQL server (user `root` without a password, database
/// `test`).
pub const MYSQL: DatabaseServer = DatabaseServer {
    name: "MariaDB/MySQL",
    variable: "CAP_TEST_MYSQL_URL",
    default_url: "mysql://root@127.0.0.1:3306/test",
    install: "apt-get install mariadb-server (root without a password, a database `test`)",
};

impl DatabaseServer {
    /// The administrative URL: the variable's value, else the default.
    pub fn url(&self) -> String {
        std::env::var(self.variable)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| self.default_url.to_owned())
    }

    /// What a test says when the server cannot be used.
    pub fn missing(&self, url: &str, why: &str) -> String {
        format!(
            "{name} is not usable at {url}: {why}. These tests need a real {name} server \
             (CI has one): start it, install it ({install}), or set {variable} to one that is.",
            name = self.name,
            install = self.install,
            variable = self.variable,
        )
    }

    /// A connection to the administrative URL.
    ///
    /// # Panics
    ///
    /// With [`DatabaseServer::missing`]'s message when the server does not
    /// answer within [`CONNECT_TIMEOUT`] or refuses the connection.
    pub async fn connect<C: sqlx::Connection>(&self) -> C {
        let url = self.url();
        match tokio::time::timeout(CONNECT_TIMEOUT, C::connect(&url)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(error)) => panic!("{}", self.missing(&url, &error.to_string())),
            Err(_) => panic!(
                "{}",
                self.missing(&url, &format!("no answer within {CONNECT_TIMEOUT:?}"))
            ),
        }
    }
}

/// Headless Chromium and its WebDriver, for the browser tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chromium {
    /// The browser.
    pub browser: PathBuf,
    /// `chromedriver`.
    pub driver: PathBuf,
}

/// Where Chromium and chromedriver are.
///
/// # Panics
///
/// When either is missing, naming what to install.
pub fn chromium() -> Chromium {
    let find = |variable: &str, default: &str| {
        std::env::var_os(variable)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(default), PathBuf::from)
    };
    let found = Chromium {
        browser: find("CAP_TEST_CHROMIUM", "/usr/bin/chromium"),
        driver: find("CAP_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"),
    };
    for (path, variable) in [
        (&found.browser, "CAP_TEST_CHROMIUM"),
        (&found.driver, "CAP_TEST_CHROMEDRIVER"),
    ] {
        assert!(
            path.is_file(),
            "{} is missing: the browser tests need Chromium and its WebDriver \
             (apt-get install chromium chromium-driver fonts-dejavu-core fonts-noto-mono; \
             .ci/run installs them), or set {variable} to where yours is",
            path.display()
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_database_server_is_named_with_its_variable_and_how_to_get_one() {
        let nowhere = DatabaseServer {
            default_url: "postgres://postgres@127.0.0.1:1/test",
            variable: "CAP_TEST_NOWHERE_URL",
            ..POSTGRES
        };
        let failed = tokio::spawn(async move {
            let _: sqlx::PgConnection = nowhere.connect().await;
        })
        .await
        .expect_err("connecting to a closed port fails the test");
        let payload = failed.into_panic();
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        for part in [
            "PostgreSQL",
            "127.0.0.1:1",
            "CAP_TEST_NOWHERE_URL",
            "apt-get install postgresql",
        ] {
            assert!(message.contains(part), "{part:?} missing from {message:?}");
        }
    }
}
