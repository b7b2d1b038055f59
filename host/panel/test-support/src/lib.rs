//! # cap-panel-test-support
//!
//! The Panel's test harness, shared by its two test binaries (`panel`, the
//! integration tests, and `browser`, the web UI driven in Chromium) and by
//! the tests of the `cap` commands that talk to a running Panel: a
//! fresh database per test on each backend, Panels started in-process on
//! 127.0.0.1:0, a token authenticator, a real Agent and a real
//! Marketplace. A crate rather than a `#[path]` include, so that it
//! compiles once and each binary uses what it needs without silencing
//! dead-code warnings. Like `cap-test-support`, it is a dev-dependency
//! only.
//!
//! PostgreSQL and MariaDB/MySQL are found by `cap_test_support::services`
//! (`postgres://postgres@127.0.0.1:5432/test` and
//! `mysql://root@127.0.0.1:3306/test`; override with
//! `CAP_TEST_POSTGRES_URL` / `CAP_TEST_MYSQL_URL`). Each test creates its
//! own `cap_test_<random>` database there and drops it afterwards, so tests
//! run in parallel. An unreachable server fails the test with a message
//! saying so; it never passes silently.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::header;
use axum::http::request::Parts;
use cap_panel::config::Config;
use cap_panel::db::{Backend, Database, DatabaseLocation, DatabaseOptions, ReadVersion};
use cap_panel::http::{ApiError, Authenticator, Principal};
use cap_panel::{Panel, RunningPanel};
use cap_test_support::services;
use futures::future::BoxFuture;
use serde_json::Value;
use sqlx::Connection;
use tempfile::TempDir;

/// Token of a caller holding every permission the foundation checks.
pub const ADMIN_TOKEN: &str = "admin-token";
/// Token of a caller holding `settings.read` only.
pub const READER_TOKEN: &str = "reader-token";
/// A metrics token for Panels that serve `/metrics`.
pub const METRICS_TOKEN: &str = "metrics-token-for-tests-0123456789";
/// User id behind [`ADMIN_TOKEN`].
pub const ADMIN_USER: &str = "user-admin";

/// A database of its own for one test, dropped when the value is.
pub struct TestDb {
    backend: Backend,
    location: DatabaseLocation,
    /// The data directory (also holds the SQLite file).
    dir: TempDir,
    server: Option<ServerDb>,
}

/// A database created on a server, to drop afterwards.
struct ServerDb {
    admin_url: String,
    name: String,
}

impl TestDb {
    /// A SQLite file in a fresh temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = private_tempdir();
        let location = DatabaseLocation::SqliteFile(dir.path().join("panel.db"));
        TestDb {
            backend: Backend::Sqlite,
            location,
            dir,
            server: None,
        }
    }

    /// A fresh database on the PostgreSQL server.
    pub async fn postgres() -> TestDb {
        let admin_url = services::POSTGRES.url();
        let name = unique_name();
        let mut conn: sqlx::PgConnection = services::POSTGRES.connect().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE on PostgreSQL");
        let _ = conn.close().await;
        Self::on_server(Backend::Postgres, admin_url, name)
    }

    /// A fresh database on the MySQL/MariaDB server.
    pub async fn mysql() -> TestDb {
        let admin_url = services::MYSQL.url();
        let name = unique_name();
        let mut conn: sqlx::MySqlConnection = services::MYSQL.connect().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE on MySQL");
        let _ = conn.close().await;
        Self::on_server(Backend::MySql, admin_url, name)
    }

    fn on_server(backend: Backend, admin_url: String, name: String) -> TestDb {
        let mut url = url::Url::parse(&admin_url).expect("the admin URL parses");
        url.set_path(&format!("/{name}"));
        TestDb {
            backend,
            location: DatabaseLocation::Url(url.to_string()),
            dir: private_tempdir(),
            server: Some(ServerDb { admin_url, name }),
        }
    }

    /// Which backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the database is.
    pub fn location(&self) -> &DatabaseLocation {
        &self.location
    }

    /// A connected, migrated handle.
    pub async fn connect(&self) -> Database {
        Database::connect(&DatabaseOptions::new(self.location.clone()).max_connections(4))
            .await
            .expect("connecting to and migrating the test database")
    }

    /// Creates users called `names` (no password: tests authenticate them
    /// with [`Tokens`]) and returns their ids in the same order.
    pub async fn create_users(&self, names: &[&str]) -> Vec<String> {
        let handle = self.connect().await;
        let mut ids = Vec::new();
        for name in names {
            let user = cap_panel::identity::users::NewUser {
                username: (*name).into(),
                ..Default::default()
            };
            let user = cap_panel::identity::users::create_user(
                &handle,
                &user,
                None,
                &cap_panel::db::Actor::system(),
            )
            .await
            .expect("a user");
            ids.push(user.id);
        }
        handle.close().await;
        ids
    }

    /// A Panel configuration on this database, listening on 127.0.0.1:0.
    pub fn config(&self) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: self.dir.path().to_owned(),
            database_url: match &self.location {
                // SQLite goes through the default: <data>/panel.db.
                DatabaseLocation::SqliteFile(_) => None,
                DatabaseLocation::Url(url) => Some(url.clone()),
            },
            database_max_connections: 4,
            ..Config::default()
        }
    }

    /// Runs raw SQL on a connection of its own, bypassing the data layer.
    pub async fn execute_raw(&self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.location {
            DatabaseLocation::SqliteFile(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
            DatabaseLocation::Url(url) if self.backend == Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
            DatabaseLocation::Url(url) => {
                let mut conn = sqlx::MySqlConnection::connect(url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
        }
    }
}

impl TestDb {
    /// The first column of every row `sql` returns, as text, read on a
    /// connection of its own (bypassing the data layer and its sealing).
    pub async fn fetch_texts(&self, sql: &str) -> Vec<String> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let rows = match &self.location {
            DatabaseLocation::SqliteFile(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("a raw SQLite connection");
                sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(&mut conn)
                    .await
            }
            DatabaseLocation::Url(url) if self.backend == Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(url)
                    .await
                    .expect("a raw PostgreSQL connection");
                sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(&mut conn)
                    .await
            }
            DatabaseLocation::Url(url) => {
                let mut conn = sqlx::MySqlConnection::connect(url)
                    .await
                    .expect("a raw MySQL connection");
                sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(&mut conn)
                    .await
            }
        };
        rows.expect("the raw query runs")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        kill_servers_left_by_agents_of(self.dir.path());
        let Some(server) = self.server.take() else {
            return;
        };
        let backend = self.backend;
        // Best effort, on a thread of its own: Drop cannot await, and the
        // test's runtime may be single-threaded.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let name = &server.name;
                match backend {
                    Backend::Postgres => {
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&server.admin_url).await {
                            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                                .execute(&mut conn)
                                .await;
                            let _ = conn.close().await;
                        }
                    }
                    Backend::MySql => {
                        if let Ok(mut conn) =
                            sqlx::MySqlConnection::connect(&server.admin_url).await
                        {
                            // As PostgreSQL's `WITH (FORCE)`: connections
                            // still open on the database (a pool the test
                            // left, a transaction a cancelled call left
                            // open) would make the drop wait on their
                            // metadata locks, for as long as a year.
                            let open: Vec<u64> = sqlx::query_scalar(
                                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                            )
                            .bind(name)
                            .fetch_all(&mut conn)
                            .await
                            .unwrap_or_default();
                            for id in open {
                                let kill = format!("KILL {id}");
                                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(kill))
                                    .execute(&mut conn)
                                    .await;
                            }
                            let sql = format!("DROP DATABASE IF EXISTS `{name}`");
                            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                                .execute(&mut conn)
                                .await;
                            let _ = conn.close().await;
                        }
                    }
                    Backend::Sqlite => {}
                }
            });
        })
        .join();
    }
}

fn unique_name() -> String {
    format!(
        "cap_test_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// Bearer tokens mapped to callers.
pub struct Tokens(HashMap<String, Principal>);

impl Tokens {
    /// [`ADMIN_TOKEN`] (every foundation permission) and [`READER_TOKEN`]
    /// (`settings.read`).
    pub fn standard() -> Tokens {
        let mut tokens = HashMap::new();
        tokens.insert(
            ADMIN_TOKEN.to_owned(),
            Principal::new(ADMIN_USER).with_permissions([
                "audit.read",
                "settings.read",
                "settings.write",
            ]),
        );
        tokens.insert(
            READER_TOKEN.to_owned(),
            Principal::new("user-reader").with_permissions(["settings.read"]),
        );
        Tokens(tokens)
    }
}

impl Tokens {
    /// Tokens mapped to the given callers.
    pub fn from_principals<'a>(callers: impl IntoIterator<Item = (&'a str, Principal)>) -> Tokens {
        Tokens(
            callers
                .into_iter()
                .map(|(t, p)| (t.to_owned(), p))
                .collect(),
        )
    }
}

impl Authenticator for Tokens {
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        _version: Option<ReadVersion>,
    ) -> BoxFuture<'a, Result<Principal, ApiError>> {
        Box::pin(async move {
            let token = cap_panel::http::auth::bearer_token(parts)
                .ok_or_else(|| ApiError::Unauthenticated("send a bearer token".into()))?;
            self.0
                .get(token)
                .cloned()
                .ok_or_else(|| ApiError::Unauthenticated("unknown token".into()))
        })
    }
}

/// A Panel on `db` with the [`Tokens::standard`] authenticator.
pub async fn start_panel(db: &TestDb) -> RunningPanel {
    start_panel_with(db.config()).await
}

/// A Panel with `config` and the [`Tokens::standard`] authenticator.
pub async fn start_panel_with(config: Config) -> RunningPanel {
    Panel::builder(config)
        .authenticator(Tokens::standard())
        .bind()
        .await
        .expect("the Panel starts")
        .spawn()
}

/// A Panel on `db` with the default authenticator (which denies everyone).
pub async fn start_default_panel(db: &TestDb) -> RunningPanel {
    Panel::bind(db.config())
        .await
        .expect("the Panel starts")
        .spawn()
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// Asserts `response` is a problem document with `status` and `code`, and
/// returns the document.
pub async fn expect_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let header_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let problem: Value = response.json().await.expect("a JSON problem document");
    assert_eq!(problem["status"], status, "{problem:#}");
    assert_eq!(problem["code"], code, "{problem:#}");
    assert_eq!(
        problem["type"],
        format!("urn:ctrl-alt-play:problem:{code}"),
        "{problem:#}"
    );
    assert!(problem["title"].is_string(), "{problem:#}");
    assert!(
        problem["instance"]
            .as_str()
            .is_some_and(|i| i.starts_with('/')),
        "{problem:#}"
    );
    assert_eq!(
        problem["request_id"].as_str(),
        header_id.as_deref(),
        "{problem:#}"
    );
    problem
}

/// A free TCP port on loopback (free when asked; bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The data directories of the Agents [`start_agent`] started, with the
/// data directory of the Panel each registered with (its [`TestDb`]'s).
static AGENT_DIRS: std::sync::Mutex<Vec<(PathBuf, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// SIGKILLs the game servers that Agents of the Panel on `panel_dir` left
/// running when their test ended (an Agent that stops leaves its servers
/// running, by design): every process working in one of their data
/// directories. Called when the test's [`TestDb`] goes, so that servers
/// of tests still running elsewhere in the binary are left alone.
fn kill_servers_left_by_agents_of(panel_dir: &std::path::Path) {
    let dirs: Vec<PathBuf> = {
        let mut all = AGENT_DIRS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mine, rest) = all.drain(..).partition(|(panel, _)| panel == panel_dir);
        *all = rest;
        mine.into_iter().map(|(_, agent)| agent).collect()
    };
    if dirs.is_empty() {
        return;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if dirs.iter().any(|dir| cwd.starts_with(dir)) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Starts a real Agent (`cap_agent::node`) with its data in `dir`,
/// registering with `panel` using `token` (or, without one, the
/// credentials stored in `dir` by an earlier run). It runs the real
/// `cap-standin-game` and pulls the game-type plugins it needs from the
/// Panel.
pub async fn start_agent(
    panel: &RunningPanel,
    dir: &std::path::Path,
    token: Option<String>,
) -> cap_agent::node::RunningNode {
    start_agent_on(
        panel,
        dir,
        token,
        cap_agent::node::BackendChoice::Native,
        None,
        None,
    )
    .await
    .expect("the Agent starts")
}

/// [`start_agent`] serving file transfers on `files_listen` and telling
/// the Panel they are at `public_url` (a proxy in front of it, say).
pub async fn start_agent_behind(
    panel: &RunningPanel,
    dir: &std::path::Path,
    token: Option<String>,
    files_listen: std::net::SocketAddr,
    public_url: &str,
) -> cap_agent::node::RunningNode {
    start_agent_on(
        panel,
        dir,
        token,
        cap_agent::node::BackendChoice::Native,
        Some((files_listen, public_url.to_owned())),
        None,
    )
    .await
    .expect("the Agent starts")
}

/// [`start_agent`] on the container backend (`--runtime container`): the
/// Agent runs its servers in containers of the engine at `host`, the
/// `--container-host` of a `cap_e2e::podman::PodmanService`; the
/// bundled test game runs from the test image, which this builds
/// (`cap_e2e::podman::test_image`).
pub async fn start_container_agent(
    panel: &RunningPanel,
    dir: &std::path::Path,
    token: Option<String>,
    host: &str,
) -> cap_agent::node::RunningNode {
    cap_e2e::podman::test_image();
    let backend = cap_agent::node::BackendChoice::Container {
        host: Some(host.to_owned()),
    };
    let node = start_agent_on(panel, dir, token, backend, None, None)
        .await
        .expect("the Agent starts");
    // Its containers go with the test's Podman service.
    let instance = cap_agent::node::container_instance(dir).expect("the Agent's instance");
    cap_e2e::podman::track_agent(host, &instance);
    node
}

/// [`start_agent`] serving file transfers over TLS with `tls` (the
/// Panel then hands out `https://` URLs); the Agent's error when it
/// refuses the certificate or key.
pub async fn start_tls_agent(
    panel: &RunningPanel,
    dir: &std::path::Path,
    token: Option<String>,
    tls: cap_agent::node::FilesTls,
) -> Result<cap_agent::node::RunningNode, cap_agent::node::NodeError> {
    start_agent_on(
        panel,
        dir,
        token,
        cap_agent::node::BackendChoice::Native,
        None,
        Some(tls),
    )
    .await
}

async fn start_agent_on(
    panel: &RunningPanel,
    dir: &std::path::Path,
    token: Option<String>,
    backend: cap_agent::node::BackendChoice,
    files: Option<(std::net::SocketAddr, String)>,
    files_tls: Option<cap_agent::node::FilesTls>,
) -> Result<cap_agent::node::RunningNode, cap_agent::node::NodeError> {
    let standin_dir: PathBuf = cap_e2e::standin()
        .parent()
        .expect("the stand-in has a directory")
        .to_path_buf();
    AGENT_DIRS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((
            panel.state().config().data_dir.clone(),
            dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
        ));
    let mut runtime = cap_agent::NodeRuntimeConfig::new(dir);
    runtime.program_dirs = vec![standin_dir];
    runtime.term_grace = Duration::from_secs(2);
    runtime.stats_interval = Duration::from_millis(500);
    cap_agent::node::start(cap_agent::node::NodeOptions {
        panel_url: Some(panel.url("")),
        registration_token: token,
        data_dir: dir.to_path_buf(),
        health_listen: ([127, 0, 0, 1], 0).into(),
        // Nothing preloaded: the Agent pulls test-game from the Panel.
        classifiers: cap_agent::Classifiers::new(),
        supported_games: Vec::new(),
        runtime: Some(runtime),
        resource_limits: None,
        insecure: false,
        backend,
        files_listen: Some(
            files
                .as_ref()
                .map_or(([127, 0, 0, 1], 0).into(), |(listen, _)| *listen),
        ),
        files_public_url: files.map(|(_, url)| url),
        files_tls,
        sftp_listen: Some(([127, 0, 0, 1], 0).into()),
    })
    .await
}

/// The TOTP code of `secret` at now + `steps` × 30 s, computed
/// independently of the Panel.
pub fn code_at(secret: &str, steps: i64) -> String {
    use totp_rs::{Algorithm, Builder, Secret};
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret).expect("a base32 secret"))
        .build()
        .expect("valid parameters");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let at = now.saturating_add_signed(steps * 30);
    totp.generate(at).to_string()
}

/// A 6-digit code that is wrong for every step the Panel accepts now.
pub fn wrong_code(secret: &str) -> String {
    let right: Vec<String> = (-2..=2).map(|s| code_at(secret, s)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !right.contains(c))
        .expect("some code is wrong")
}

/// The `plugin.toml` text of example plugin `name`: an API 0.1.0 plugin's
/// in `example-plugins/<name>`, a 0.2.0 one's in
/// `example-plugins/v0.2/<name>`.
pub fn manifest_text(name: &str) -> String {
    let file = cap_e2e::plugin_dir(name).join("plugin.toml");
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()))
}

/// A `.cap` package of example plugin `name` with `manifest` as its
/// `plugin.toml`.
pub fn package_with(name: &str, manifest: &str) -> Vec<u8> {
    let (_, bytes) = cap_runtime::Package::build(
        manifest.as_bytes().to_vec(),
        cap_e2e::component(name),
        std::collections::BTreeMap::new(),
        cap_panel::plugins::MAX_COMPONENT_BYTES,
    )
    .expect("the package builds");
    bytes
}

/// A real Marketplace (`MarketplaceServer` on 127.0.0.1:0) with one
/// publisher, `acme`, holding one signing key.
pub struct MarketplaceWithPublisher {
    /// The Marketplace.
    pub server: cap_marketplace_server::RunningMarketplace,
    /// A client of it.
    pub client: cap_marketplace::client::MarketplaceClient,
    /// The publisher's token.
    pub token: String,
    /// The publisher's signing key.
    pub key: cap_marketplace::keys::SecretKey,
    /// Its data directory (holding `marketplace.key`).
    pub dir: TempDir,
}

/// The admin token of the Marketplaces the tests start.
pub const MARKETPLACE_ADMIN_TOKEN: &str = "marketplace-admin-token";

impl MarketplaceWithPublisher {
    /// Starts a Marketplace whose timestamps live `timestamp_ttl` seconds,
    /// selling through `billing` if given.
    pub async fn start_with(
        timestamp_ttl: i64,
        billing: Option<cap_marketplace_server::billing::BillingConfig>,
    ) -> MarketplaceWithPublisher {
        let dir = private_tempdir();
        let mut config = cap_marketplace_server::MarketplaceConfig::new(dir.path());
        config.timestamp_ttl = timestamp_ttl;
        config.billing = billing;
        config.admin_token = Some(MARKETPLACE_ADMIN_TOKEN.into());
        let server = cap_marketplace_server::MarketplaceServer::bind(config)
            .await
            .expect("the Marketplace binds")
            .spawn();
        let client =
            cap_marketplace::client::MarketplaceClient::new(&server.url()).expect("client");
        let key = cap_marketplace::keys::SecretKey::from_seed(&[42; 32]);
        let token = client
            .create_publisher("acme")
            .await
            .expect("publisher")
            .token;
        client
            .add_key(&token, "acme", &key, None)
            .await
            .expect("key");
        MarketplaceWithPublisher {
            server,
            client,
            token,
            key,
            dir,
        }
    }
}

/// Signs the package `bytes` with `key` and publishes it with `token`
/// (for the game `minecraft`); returns the release.
pub async fn publish_signed(
    client: &cap_marketplace::client::MarketplaceClient,
    token: &str,
    key: &cap_marketplace::keys::SecretKey,
    bytes: &[u8],
) -> Value {
    let package =
        cap_runtime::Package::read(bytes, cap_runtime::package::MAX_PACKAGE_BYTES).expect("valid");
    let plugin = &package.manifest.plugin;
    let signature =
        cap_marketplace::signing::sign_package(key, &plugin.id, &plugin.version, &package.sha256);
    let (created, release) = client
        .publish(
            token,
            bytes,
            (plugin.id.as_str(), &plugin.version),
            key.id(),
            &signature,
            &["minecraft".into()],
        )
        .await
        .expect("published");
    assert!(created);
    serde_json::to_value(release).expect("json")
}

/// The path of the `cap` binary under test (built by `cap-cli`, found
/// beside this test's build).
pub fn cap_binary() -> PathBuf {
    cap_e2e::cap_binary()
}

/// Defines one test per backend: `mod $name { on_sqlite, on_postgres,
/// on_mysql }`, each running the body with a fresh [`TestDb`].
#[macro_export]
macro_rules! on_every_database {
    ($(#[$meta:meta])* async fn $name:ident($db:ident: &TestDb) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($db: &$crate::TestDb) $body

            #[tokio::test]
            async fn on_sqlite() {
                body(&$crate::TestDb::sqlite().await).await;
            }

            #[tokio::test]
            async fn on_postgres() {
                body(&$crate::TestDb::postgres().await).await;
            }

            #[tokio::test]
            async fn on_mysql() {
                body(&$crate::TestDb::mysql().await).await;
            }
        }
    };
}

/// A temporary directory only its owner can enter (mode 0700), as the
/// Panel and the Marketplace require of their data directories.
pub use cap_test_support::private_tempdir;

pub mod openid;

pub mod smtp;
