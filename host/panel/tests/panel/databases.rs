//! Servers' databases end to end: the Panel's `/database-hosts` and
//! `/servers/{id}/databases` routes against the real MariaDB and
//! PostgreSQL servers of the machine used as database *hosts* (the same
//! servers the Panel's own test databases live on, found by
//! `cap_test_support::services`), with the credentials the Panel hands
//! out checked by connecting with them; the faults each named by its
//! problem code; who may do what; the hooks; and a deleted server's
//! databases dropped with it.
//!
//! Every name created on a host carries the test server's prefix
//! (`s<8 hex>_`, `u<8 hex>_`), unique per server, so tests run in
//! parallel and again on the same hosts; what a failed test leaves there
//! is dropped when its site is.

use std::time::Duration;

use cap_panel::RunningPanel;
use cap_panel::db::Actor;
use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use cap_panel::identity::users::{NewUser, create_user};
use cap_test_support::services;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _};

use crate::agents::eventually_within;
use crate::nodes::{call, json_of};
use crate::plugins::install_and_activate;
use crate::support::{TestDb, Tokens, expect_problem, free_port, on_every_database};

/// Holds every permission.
const ADMIN: &str = "databases-admin-token";
/// A user whose own credentials hold every server permission: what they
/// may do on a server is what their subuser grant says.
const SUB: &str = "databases-subuser-token";

/// A Panel with test-game, one node, `servers` servers on it (not
/// installed: databases need no Agent) and a second user; what the tests
/// leave on the database hosts is dropped with it.
struct Site {
    panel: RunningPanel,
    node_id: String,
    servers: Vec<String>,
    sub_id: String,
    _leftovers: Leftovers,
}

impl Site {
    fn server(&self) -> &str {
        &self.servers[0]
    }

    async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        call(&self.panel, method, path, Some(token), body).await
    }

    /// `/api/v1/servers/<server>/databases<rest>`.
    fn databases(&self, server: &str, rest: &str) -> String {
        format!("/api/v1/servers/{server}/databases{rest}")
    }

    async fn set_limit(&self, server: &str, limit: u32) {
        let response = self
            .send(
                ADMIN,
                Method::PUT,
                &format!("/api/v1/servers/{server}/database-limit"),
                Some(json!({"limit": limit})),
            )
            .await;
        json_of(response, 200).await;
    }

    async fn add_host(&self, body: Value) -> Value {
        json_of(
            self.send(ADMIN, Method::POST, "/api/v1/database-hosts", Some(body))
                .await,
            201,
        )
        .await
    }

    async fn create(&self, server: &str, body: Value) -> Value {
        json_of(
            self.send(ADMIN, Method::POST, &self.databases(server, ""), Some(body))
                .await,
            201,
        )
        .await
    }

    async fn delete(&self, server: &str, id: &str) {
        let response = self
            .send(
                ADMIN,
                Method::DELETE,
                &self.databases(server, &format!("/{id}")),
                None,
            )
            .await;
        assert_eq!(response.status(), 204, "deleting {id}");
    }
}

async fn site(db: &TestDb, servers: usize) -> Site {
    let handle = db.connect().await;
    let sub = create_user(
        &handle,
        &NewUser {
            username: "sub".into(),
            ..NewUser::default()
        },
        None,
        &Actor::system(),
    )
    .await
    .expect("a user");
    handle.close().await;
    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    let server_permissions: Vec<&str> =
        Permission::for_subusers().map(Permission::as_str).collect();
    let tokens = Tokens::from_principals([
        (
            ADMIN,
            Principal::new("databases-admin").with_permissions(all.clone()),
        ),
        (
            SUB,
            Principal::new(sub.id.clone()).with_permissions(server_permissions),
        ),
        (
            crate::plugins::PLUGIN_ADMIN,
            Principal::new("databases-admin").with_permissions(all),
        ),
    ]);
    let panel = cap_panel::Panel::builder(db.config())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    install_and_activate(&panel, "test-game").await;
    let admin = |method, path: String, body| {
        let panel = &panel;
        async move { json_of(call(panel, method, &path, Some(ADMIN), body).await, 201).await }
    };
    let node = admin(
        Method::POST,
        "/api/v1/nodes".into(),
        Some(json!({"name": "n1", "address": "127.0.0.1", "memory_mb": 8192, "disk_mb": 10000, "cpu_percent": 400})),
    )
    .await;
    let node_id = node["id"].as_str().expect("id").to_owned();
    let ports: Vec<u16> = (0..servers).map(|_| free_port()).collect();
    admin(
        Method::POST,
        format!("/api/v1/nodes/{node_id}/allocations"),
        Some(json!({"ip": "127.0.0.1", "ports": ports})),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..servers {
        let server = admin(
            Method::POST,
            "/api/v1/servers".into(),
            Some(json!({
                "name": format!("with databases {i}"),
                "node_id": node_id,
                "game": {"plugin": "test-game"},
                "variables": {"READY_DELAY_MS": "100"},
                "limits": {"memory_mb": 512, "disk_mb": 1000, "cpu_percent": 100}
            })),
        )
        .await;
        ids.push(server["id"].as_str().expect("id").to_owned());
    }
    Site {
        panel,
        node_id,
        _leftovers: Leftovers(ids.clone()),
        servers: ids,
        sub_id: sub.id,
    }
}

/// The MariaDB/MySQL server of the tests, as a database host.
pub(crate) fn mariadb_host(name: &str) -> Value {
    let url = url::Url::parse(&services::MYSQL.url()).expect("the MySQL URL parses");
    let mut body = json!({
        "name": name,
        "kind": "mysql",
        "host": url.host_str().expect("a host"),
        "port": url.port().unwrap_or(3306),
        "username": url.username(),
    });
    if let Some(password) = url.password() {
        body["password"] = json!(password);
    }
    body
}

/// The PostgreSQL server of the tests, as a database host.
fn postgres_host(name: &str) -> Value {
    let url = url::Url::parse(&services::POSTGRES.url()).expect("the PostgreSQL URL parses");
    let mut body = json!({
        "name": name,
        "kind": "postgres",
        "host": url.host_str().expect("a host"),
        "port": url.port().unwrap_or(5432),
        "username": url.username(),
    });
    if let Some(password) = url.password() {
        body["password"] = json!(password);
    }
    body
}

/// The MariaDB server's administrative connection.
async fn mysql_admin() -> MySqlConnection {
    services::MYSQL.connect().await
}

/// The PostgreSQL server's administrative connection (database `test`).
async fn postgres_admin() -> PgConnection {
    services::POSTGRES.connect().await
}

/// Connects to the MariaDB server as `user`.
async fn mysql_as(
    user: &str,
    password: &str,
    database: Option<&str>,
) -> Result<MySqlConnection, sqlx::Error> {
    let url = url::Url::parse(&services::MYSQL.url()).expect("the MySQL URL parses");
    let mut options = MySqlConnectOptions::new()
        .host(url.host_str().expect("a host"))
        .port(url.port().unwrap_or(3306))
        .username(user)
        .password(password);
    if let Some(database) = database {
        options = options.database(database);
    }
    options.connect().await
}

/// Connects to the PostgreSQL server as `role`, to `database`.
async fn postgres_as(
    role: &str,
    password: &str,
    database: &str,
) -> Result<PgConnection, sqlx::Error> {
    let url = url::Url::parse(&services::POSTGRES.url()).expect("the PostgreSQL URL parses");
    PgConnectOptions::new_without_pgpass()
        .host(url.host_str().expect("a host"))
        .port(url.port().unwrap_or(5432))
        .username(role)
        .password(password)
        .database(database)
        .connect()
        .await
}

/// How many databases called `name` the MariaDB server has, and how many
/// users called `user`.
async fn mariadb_has(name: &str, user: &str) -> (i64, i64) {
    let mut conn = mysql_admin().await;
    let databases: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await
    .expect("counted");
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ?")
        .bind(user)
        .fetch_one(&mut conn)
        .await
        .expect("counted");
    let _ = conn.close().await;
    (databases, users)
}

/// How many databases called `name` the PostgreSQL server has, and how
/// many roles called `role`.
async fn postgres_has(name: &str, role: &str) -> (i64, i64) {
    let mut conn = postgres_admin().await;
    let databases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .expect("counted");
    let roles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_one(&mut conn)
        .await
        .expect("counted");
    let _ = conn.close().await;
    (databases, roles)
}

fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value:#}"))
        .to_owned()
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

fn sql_state(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

on_every_database! {
    async fn a_mariadb_database_gets_working_credentials_sees_only_itself_and_is_rotated_and_dropped(db: &TestDb) {
        let site = site(db, 1).await;
        let server = site.server().to_owned();
        site.set_limit(&server, 2).await;
        let host = site.add_host(mariadb_host("MariaDB")).await;
        assert_eq!(host["kind"], "mysql");
        assert_eq!(host["databases"], 0);
        assert!(host.get("password").is_none(), "{host:#}");

        let created = site.create(&server, json!({"name": "world"})).await;
        let name = text(&created, "name");
        let user = text(&created, "username");
        let password = text(&created, "password");
        let prefix = cap_panel::databases::names::prefix(&server);
        assert_eq!(name, format!("{prefix}world"));
        assert!(user.starts_with('u') && user.len() <= 32, "{user}");
        assert_eq!(password.len(), 32);
        assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()), "{password}");
        assert_eq!(created["remote"], "%");
        assert_eq!(created["host"]["id"], host["id"]);
        let url = url::Url::parse(&services::MYSQL.url()).expect("the MySQL URL parses");
        let address = format!("{}:{}", url.host_str().expect("a host"), url.port().unwrap_or(3306));
        assert_eq!(
            created["connectionString"],
            format!("mysql://{user}:{password}@{address}/{name}")
        );
        // The password is sealed at rest.
        let stored = db.fetch_texts("SELECT password FROM server_databases").await;
        assert!(!stored[0].contains(&password), "the password is sealed");

        // The credentials work, and see the one database and nothing else.
        let mut conn = mysql_as(&user, &password, Some(&name)).await.expect("the new user connects");
        let shown: Vec<Vec<u8>> = sqlx::query_scalar("SHOW DATABASES").fetch_all(&mut conn).await.expect("listed");
        let shown: Vec<String> = shown.into_iter().map(|n| String::from_utf8(n).expect("UTF-8")).filter(|n| n != "information_schema").collect();
        assert_eq!(shown, std::slice::from_ref(&name));
        sqlx::raw_sql("CREATE TABLE scores (player VARCHAR(32), points INT); INSERT INTO scores VALUES ('alex', 3)")
            .execute(&mut conn)
            .await
            .expect("the user owns its database");
        let points: i32 = sqlx::query_scalar("SELECT points FROM scores").fetch_one(&mut conn).await.expect("read back");
        assert_eq!(points, 3);
        let other = sqlx::raw_sql("CREATE DATABASE someone_elses").execute(&mut conn).await;
        assert!(other.is_err(), "no privilege beyond its database");
        let _ = conn.close().await;
        let wrong = mysql_as(&user, "wrong-password-0123456789", Some(&name)).await.expect_err("a wrong password is refused");
        assert_eq!(sql_state(&wrong).as_deref(), Some("28000"), "{wrong}");

        // Listed and read as created.
        let list = json_of(site.send(ADMIN, Method::GET, &site.databases(&server, ""), None).await, 200).await;
        assert_eq!(list["limit"], 2);
        assert_eq!(list["prefix"], prefix);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list:#}");
        assert_eq!(list["items"][0]["password"], password);
        assert_eq!(list["hosts"][0]["id"], host["id"]);
        let id = text(&created, "id");
        let one = json_of(site.send(ADMIN, Method::GET, &site.databases(&server, &format!("/{id}")), None).await, 200).await;
        assert_eq!(one["connectionString"], created["connectionString"]);

        // Rotating changes the working password on the host.
        let rotated = json_of(site.send(ADMIN, Method::POST, &site.databases(&server, &format!("/{id}/rotate-password")), None).await, 200).await;
        let new_password = text(&rotated, "password");
        assert_ne!(new_password, password);
        assert!(mysql_as(&user, &password, Some(&name)).await.is_err(), "the old password no longer works");
        let conn = mysql_as(&user, &new_password, Some(&name)).await.expect("the new password works");
        let _ = conn.close().await;

        // Deleting drops the database and its user on the host.
        assert_eq!(mariadb_has(&name, &user).await, (1, 1));
        site.delete(&server, &id).await;
        assert_eq!(mariadb_has(&name, &user).await, (0, 0), "dropped on the host");
        let response = site.send(ADMIN, Method::GET, &site.databases(&server, &format!("/{id}")), None).await;
        expect_problem(response, 404, "database-not-found").await;

        // The audit log has the story, without the passwords.
        let handle = db.connect().await;
        let query = cap_panel::db::EventQuery { limit: cap_panel::db::MAX_PAGE_SIZE, ..Default::default() };
        let page = handle.events().query(&query).await.expect("events");
        let kinds: Vec<&str> = page.events.iter().map(|e| e.kind.as_str()).collect();
        for kind in ["database-host.created", "database.limit.set", "database.created", "database.password.rotated", "database.deleted"] {
            assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
        }
        let everything = serde_json::to_string(&page.events.iter().map(|e| &e.data).collect::<Vec<_>>()).expect("JSON");
        assert!(!everything.contains(&password) && !everything.contains(&new_password));
        handle.close().await;

        let response = site.send(ADMIN, Method::DELETE, &format!("/api/v1/database-hosts/{}", text(&host, "id")), None).await;
        assert_eq!(response.status(), 204);
    }
}

on_every_database! {
    async fn a_postgresql_database_is_owned_by_its_role_and_closed_to_other_servers_roles(db: &TestDb) {
        let site = site(db, 2).await;
        let (a, b) = (site.servers[0].clone(), site.servers[1].clone());
        site.set_limit(&a, 1).await;
        site.set_limit(&b, 1).await;
        let host = site.add_host(postgres_host("PostgreSQL")).await;
        assert_eq!(host["kind"], "postgres");

        // PostgreSQL decides in pg_hba.conf where roles connect from.
        let response = site.send(ADMIN, Method::POST, &site.databases(&a, ""), Some(json!({"name": "maps", "remote": "10.0.0.%"}))).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["remote"]);

        let mine = site.create(&a, json!({"name": "maps"})).await;
        let theirs = site.create(&b, json!({"name": "maps"})).await;
        let (name, role, password) = (text(&mine, "name"), text(&mine, "username"), text(&mine, "password"));
        let their_name = text(&theirs, "name");
        assert_ne!(name, their_name, "each server's prefix");
        assert!(text(&mine, "connectionString").starts_with(&format!("postgresql://{role}:{password}@")));

        let mut admin = postgres_admin().await;
        let owner: String = sqlx::query_scalar("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .expect("the database exists");
        assert_eq!(owner, role, "the role owns its database");
        let may: bool = sqlx::query_scalar("SELECT has_database_privilege($1::name, $2::text, 'CONNECT')")
            .bind(&role)
            .bind(&their_name)
            .fetch_one(&mut admin)
            .await
            .expect("asked");
        assert!(!may, "no CONNECT on another server's database");

        // The role works in its database…
        let mut conn = postgres_as(&role, &password, &name).await.expect("the role connects to its database");
        sqlx::raw_sql("CREATE TABLE markers (x INT); INSERT INTO markers VALUES (1)")
            .execute(&mut conn)
            .await
            .expect("the role creates tables in its database");
        let _ = conn.close().await;
        // …cannot connect to the other server's…
        let refused = postgres_as(&role, &password, &their_name).await.expect_err("refused");
        assert_eq!(sql_state(&refused).as_deref(), Some("42501"), "{refused}");
        // …and cannot read what the administrator keeps elsewhere.
        let table = format!("secret_{role}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE TABLE {table} (v TEXT); INSERT INTO {table} VALUES ('hidden')")))
            .execute(&mut admin)
            .await
            .expect("the administrator's table");
        let admin_db = url::Url::parse(&services::POSTGRES.url()).expect("URL").path().trim_start_matches('/').to_owned();
        let mut elsewhere = postgres_as(&role, &password, &admin_db).await.expect("PUBLIC may connect to the admin's database");
        let read = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT v FROM {table}"))).fetch_all(&mut elsewhere).await;
        let _ = elsewhere.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}"))).execute(&mut admin).await.expect("dropped");
        let _ = admin.close().await;
        let denied = read.expect_err("the read is refused");
        assert_eq!(sql_state(&denied).as_deref(), Some("42501"), "{denied}");

        // Deleting drops the database and the role.
        assert_eq!(postgres_has(&name, &role).await, (1, 1));
        site.delete(&a, &text(&mine, "id")).await;
        assert_eq!(postgres_has(&name, &role).await, (0, 0), "dropped on the host");
        site.delete(&b, &text(&theirs, "id")).await;
        assert_eq!(postgres_has(&their_name, &text(&theirs, "username")).await, (0, 0));
    }
}

on_every_database! {
    async fn database_and_host_refusals_each_name_their_problem(db: &TestDb) {
        let site = site(db, 1).await;
        let server = site.server().to_owned();
        let hosts = "/api/v1/database-hosts";

        // A host nothing listens on, and one refusing the password: nothing
        // is stored.
        let mut down = mariadb_host("down");
        down["port"] = json!(free_port());
        let response = site.send(ADMIN, Method::POST, hosts, Some(down)).await;
        let problem = expect_problem(response, 502, "database-host-unreachable").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("could not be reached")), "{problem:#}");
        let mut refused = mariadb_host("refused");
        refused["password"] = json!("certainly-not-the-password");
        let response = site.send(ADMIN, Method::POST, hosts, Some(refused)).await;
        expect_problem(response, 502, "database-host-login-refused").await;
        let listed = json_of(site.send(ADMIN, Method::GET, hosts, None).await, 200).await;
        assert_eq!(listed["items"], json!([]), "nothing stored");
        // Fields that cannot be a host.
        let mut bad = mariadb_host("bad");
        bad["host"] = json!("mysql://127.0.0.1");
        bad["nodeIds"] = json!(["node_does_not_exist"]);
        bad["port"] = json!(0);
        let response = site.send(ADMIN, Method::POST, hosts, Some(bad)).await;
        let problem = expect_problem(response, 422, "validation-failed").await;
        assert_eq!(fields(&problem), ["host", "port", "nodeIds[0]"]);

        // No limit set: none allowed, as in Pterodactyl.
        let collection = site.databases(&server, "");
        let create = |body: Value| site.send(ADMIN, Method::POST, &collection, Some(body));
        let problem = expect_problem(create(json!({"name": "world"})).await, 409, "database-limit-reached").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("limit is 0")), "{problem:#}");
        site.set_limit(&server, 1).await;
        // No host at all.
        expect_problem(create(json!({"name": "world"})).await, 409, "no-database-host").await;

        // A host for another node only.
        let other = json_of(site.send(ADMIN, Method::POST, "/api/v1/nodes", Some(json!({"name": "n2", "address": "10.0.0.2", "memory_mb": 1024, "disk_mb": 1000, "cpu_percent": 100}))).await, 201).await;
        let mut elsewhere = mariadb_host("MariaDB elsewhere");
        elsewhere["nodeIds"] = json!([other["id"]]);
        let host = site.add_host(elsewhere.clone()).await;
        let host_id = text(&host, "id");
        assert_eq!(host["nodeIds"], json!([other["id"]]));
        expect_problem(create(json!({"name": "world"})).await, 409, "no-database-host").await;
        let problem = expect_problem(create(json!({"name": "world", "host": host_id})).await, 409, "database-host-not-allowed").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains(&site.node_id)), "{problem:#}");
        expect_problem(create(json!({"name": "world", "host": "dbh_nope"})).await, 404, "database-host-not-found").await;
        // Opened to every node (the stored password is kept).
        elsewhere["nodeIds"] = json!([]);
        elsewhere["name"] = json!("MariaDB");
        let changed = json_of(site.send(ADMIN, Method::PUT, &format!("{hosts}/{host_id}"), Some(elsewhere.clone())).await, 200).await;
        assert_eq!(changed["nodeIds"], json!([]));

        // Names and host patterns that cannot be written into a statement.
        for name in ["World", "a-b", "", "x;drop", "é", &"a".repeat(49)] {
            let problem = expect_problem(create(json!({"name": name})).await, 422, "validation-failed").await;
            assert_eq!(fields(&problem), ["name"], "{name:?}");
        }
        for remote in ["'%'", "a b", "%\\", "%;", &"a".repeat(256)] {
            let problem = expect_problem(create(json!({"name": "world", "remote": remote})).await, 422, "validation-failed").await;
            assert_eq!(fields(&problem), ["remote"], "{remote:?}");
        }

        // The same name twice, and the limit.
        let world = json_of(create(json!({"name": "world", "remote": "127.0.0.1"})).await, 201).await;
        assert_eq!(world["remote"], "127.0.0.1");
        site.set_limit(&server, 3).await;
        expect_problem(create(json!({"name": "world"})).await, 409, "database-name-taken").await;
        site.set_limit(&server, 1).await;
        let problem = expect_problem(create(json!({"name": "second"})).await, 409, "database-limit-reached").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("1 database")), "{problem:#}");
        site.set_limit(&server, 3).await;

        // A full host.
        elsewhere["maxDatabases"] = json!(1);
        json_of(site.send(ADMIN, Method::PUT, &format!("{hosts}/{host_id}"), Some(elsewhere.clone())).await, 200).await;
        expect_problem(create(json!({"name": "second"})).await, 409, "no-database-host").await;
        expect_problem(create(json!({"name": "second", "host": host_id})).await, 409, "database-host-full").await;

        // A host that went down after it was registered (through a handle
        // with the Panel's key, which seals the host's password).
        let key = cap_panel::secrets::SecretKey::load_or_create(db.data_dir()).expect("the Panel's key");
        let handle = cap_panel::db::Database::connect(
            &cap_panel::db::DatabaseOptions::new(db.location().clone()).secret_key(key),
        )
        .await
        .expect("a handle with the Panel's key");
        let dead = cap_panel::databases::create_host(
            &handle,
            &cap_panel::databases::HostSettings {
                name: "gone".into(),
                kind: cap_panel::databases::Kind::MySql,
                host: "127.0.0.1".into(),
                port: free_port(),
                username: "root".into(),
                password: String::new(),
                node_ids: Vec::new(),
                max_databases: None,
            },
            &Actor::system(),
        )
        .await
        .expect("registered without a check");
        handle.close().await;
        expect_problem(create(json!({"name": "second", "host": dead.id})).await, 502, "database-host-unreachable").await;
        let list = json_of(site.send(ADMIN, Method::GET, &site.databases(&server, ""), None).await, 200).await;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "nothing recorded: {list:#}");

        // A host that holds databases stays; one that holds none goes.
        let response = site.send(ADMIN, Method::DELETE, &format!("{hosts}/{host_id}"), None).await;
        let problem = expect_problem(response, 409, "database-host-in-use").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("1 database")), "{problem:#}");
        let response = site.send(ADMIN, Method::DELETE, &format!("{hosts}/{}", dead.id), None).await;
        assert_eq!(response.status(), 204);
        let response = site.send(ADMIN, Method::GET, &format!("{hosts}/{}", dead.id), None).await;
        expect_problem(response, 404, "database-host-not-found").await;

        // Unknown databases.
        let response = site.send(ADMIN, Method::DELETE, &site.databases(&server, "/sdb_nope"), None).await;
        expect_problem(response, 404, "database-not-found").await;

        site.delete(&server, &text(&world, "id")).await;
        let response = site.send(ADMIN, Method::DELETE, &format!("{hosts}/{host_id}"), None).await;
        assert_eq!(response.status(), 204);
    }
}

on_every_database! {
    async fn each_database_permission_gates_its_routes_and_passwords_show_only_with_view_password(db: &TestDb) {
        let site = site(db, 1).await;
        let server = site.server().to_owned();
        site.set_limit(&server, 5).await;
        let host = site.add_host(mariadb_host("MariaDB")).await;
        let created = site.create(&server, json!({"name": "shop"})).await;
        let id = text(&created, "id");
        let one = site.databases(&server, &format!("/{id}"));

        // Not a subuser: the server does not exist for them.
        let response = site
            .send(SUB, Method::GET, &site.databases(&server, ""), None)
            .await;
        expect_problem(response, 404, "not-found").await;

        let subusers = format!("/api/v1/servers/{server}/subusers");
        let response = site
            .send(
                ADMIN,
                Method::POST,
                &subusers,
                Some(json!({"user_id": site.sub_id, "permissions": ["control.console"]})),
            )
            .await;
        json_of(response, 201).await;
        let grant = |permissions: Vec<&'static str>| {
            let site = &site;
            let path = format!("{subusers}/{}", site.sub_id);
            async move {
                let response = site
                    .send(
                        ADMIN,
                        Method::PATCH,
                        &path,
                        Some(json!({"permissions": permissions})),
                    )
                    .await;
                json_of(response, 200).await;
            }
        };
        // A subuser without database.read is refused, naming it.
        let response = site
            .send(SUB, Method::GET, &site.databases(&server, ""), None)
            .await;
        let problem = expect_problem(response, 403, "forbidden").await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("database.read")),
            "{problem:#}"
        );

        // database.read: lists and reads, without the password.
        grant(vec!["database.read"]).await;
        let list = json_of(
            site.send(SUB, Method::GET, &site.databases(&server, ""), None)
                .await,
            200,
        )
        .await;
        let seen = &list["items"][0];
        assert!(seen["password"].is_null(), "{seen:#}");
        let url = url::Url::parse(&services::MYSQL.url()).expect("the MySQL URL parses");
        assert_eq!(
            seen["connectionString"],
            format!(
                "mysql://{}@{}:{}/{}",
                text(&created, "username"),
                url.host_str().expect("a host"),
                url.port().unwrap_or(3306),
                text(&created, "name")
            )
        );
        let read = json_of(site.send(SUB, Method::GET, &one, None).await, 200).await;
        assert!(read["password"].is_null());
        let status = |method: Method, path: String, body: Option<Value>| {
            let site = &site;
            async move { site.send(SUB, method, &path, body).await.status().as_u16() }
        };
        let response = site
            .send(
                SUB,
                Method::POST,
                &site.databases(&server, ""),
                Some(json!({"name": "mine"})),
            )
            .await;
        let problem = expect_problem(response, 403, "forbidden").await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("database.create")),
            "{problem:#}"
        );
        assert_eq!(
            status(Method::POST, format!("{one}/rotate-password"), None).await,
            403
        );
        assert_eq!(status(Method::DELETE, one.clone(), None).await, 403);
        // Only administrators set limits and see hosts.
        assert_eq!(
            status(
                Method::PUT,
                format!("/api/v1/servers/{server}/database-limit"),
                Some(json!({"limit": 100}))
            )
            .await,
            403
        );
        assert_eq!(
            status(Method::GET, "/api/v1/database-hosts".into(), None).await,
            403
        );

        // database.view-password shows it, as the administrator sees it.
        grant(vec!["database.read", "database.view-password"]).await;
        let read = json_of(site.send(SUB, Method::GET, &one, None).await, 200).await;
        assert_eq!(read["password"], created["password"]);
        assert_eq!(read["connectionString"], created["connectionString"]);

        // database.update rotates (the answer shows no password without
        // view-password), database.create creates, database.delete deletes.
        grant(vec!["database.update"]).await;
        let rotated = json_of(
            site.send(SUB, Method::POST, &format!("{one}/rotate-password"), None)
                .await,
            200,
        )
        .await;
        assert!(rotated["password"].is_null());
        let now = json_of(site.send(ADMIN, Method::GET, &one, None).await, 200).await;
        assert_ne!(now["password"], created["password"]);
        assert_eq!(status(Method::GET, one.clone(), None).await, 403);
        grant(vec!["database.create"]).await;
        let theirs = json_of(
            site.send(
                SUB,
                Method::POST,
                &site.databases(&server, ""),
                Some(json!({"name": "mine"})),
            )
            .await,
            201,
        )
        .await;
        assert!(theirs["password"].is_null());
        grant(vec!["database.delete"]).await;
        assert_eq!(status(Method::DELETE, one.clone(), None).await, 204);
        assert_eq!(
            status(
                Method::DELETE,
                site.databases(&server, &format!("/{}", text(&theirs, "id"))),
                None
            )
            .await,
            204
        );
        let response = site
            .send(
                ADMIN,
                Method::DELETE,
                &format!("/api/v1/database-hosts/{}", text(&host, "id")),
                None,
            )
            .await;
        assert_eq!(response.status(), 204);
    }
}

on_every_database! {
    async fn database_hooks_reach_a_0_2_plugin_whose_veto_creates_and_drops_nothing(db: &TestDb) {
        use cap_panel::plugin_kv::DbKv;
        use cap_runtime::capabilities::kv::KvStore;
        const RECORDER: &str = "event-recorder";
        let site = site(db, 1).await;
        let server = site.server().to_owned();
        site.set_limit(&server, 5).await;
        site.add_host(mariadb_host("MariaDB")).await;
        let plugins = site.panel.state().plugins().expect("a plugin manager");
        crate::hook_events::install(plugins, RECORDER).await;
        plugins
            .activate(RECORDER, &Actor::system())
            .await
            .expect("the recorder activates");
        let kv = DbKv::new(site.panel.state().db().clone());
        let heard = |phase: &'static str, kind: &'static str, id: String| {
            let kv = kv.clone();
            async move {
                kv.get(RECORDER, &format!("{phase}/{kind}/{id}"))
                    .await
                    .expect("the store reads")
                    .is_some()
            }
        };
        let deny = |kinds: &'static str| {
            let values =
                std::collections::BTreeMap::from([("deny-kinds".to_owned(), Some(kinds.to_owned()))]);
            async move {
                plugins
                    .set_config(RECORDER, &values, &Actor::system())
                    .await
                    .expect("configured")
            }
        };
        let prefix = cap_panel::databases::names::prefix(&server);

        // Vetoed: nothing on the host, nothing recorded.
        deny("database.create").await;
        let response = site
            .send(
                ADMIN,
                Method::POST,
                &site.databases(&server, ""),
                Some(json!({"name": "vetoed"})),
            )
            .await;
        let problem = expect_problem(response, 403, "hook-denied").await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("event-recorder denies database.create")),
            "{problem:#}"
        );
        assert_eq!(mariadb_has(&format!("{prefix}vetoed"), "nobody").await.0, 0);

        // Allowed: before and after.
        deny("").await;
        let created = site.create(&server, json!({"name": "kept"})).await;
        let id = text(&created, "id");
        assert!(heard("before", "database.create", id.clone()).await);
        let after = |kind: &'static str, id: String| {
            let heard = &heard;
            async move {
                eventually_within(
                    &format!("the {kind} after-hook for {id}"),
                    Duration::from_secs(30),
                    || {
                        let id = id.clone();
                        async move { heard("after", kind, id).await.then_some(()) }
                    },
                )
                .await;
            }
        };
        after("database.create", id.clone()).await;

        // A vetoed delete leaves the database on the host.
        deny("database.delete").await;
        let one = site.databases(&server, &format!("/{id}"));
        let response = site.send(ADMIN, Method::DELETE, &one, None).await;
        expect_problem(response, 403, "hook-denied").await;
        assert_eq!(
            mariadb_has(&text(&created, "name"), &text(&created, "username")).await,
            (1, 1)
        );
        deny("").await;
        site.delete(&server, &id).await;
        after("database.delete", id.clone()).await;
    }
}

on_every_database! {
    async fn deleting_a_server_drops_its_databases_on_their_hosts_and_forgets_them(db: &TestDb) {
        let files = crate::files::files_site(db, 1000).await;
        let _leftovers = Leftovers(vec![files.server_id.clone()]);
        let admin = crate::files::ADMIN;
        let server = files.server_id.clone();
        json_of(
            call(
                &files.panel,
                Method::PUT,
                &format!("/api/v1/servers/{server}/database-limit"),
                Some(admin),
                Some(json!({"limit": 2})),
            )
            .await,
            200,
        )
        .await;
        json_of(
            call(
                &files.panel,
                Method::POST,
                "/api/v1/database-hosts",
                Some(admin),
                Some(mariadb_host("MariaDB")),
            )
            .await,
            201,
        )
        .await;
        json_of(
            call(
                &files.panel,
                Method::POST,
                "/api/v1/database-hosts",
                Some(admin),
                Some(postgres_host("PostgreSQL")),
            )
            .await,
            201,
        )
        .await;
        let hosts = json_of(
            call(
                &files.panel,
                Method::GET,
                "/api/v1/database-hosts",
                Some(admin),
                None,
            )
            .await,
            200,
        )
        .await;
        let host_id = |kind: &str| {
            hosts["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|h| h["kind"] == kind)
                .expect("a host")["id"]
                .clone()
        };
        let path = format!("/api/v1/servers/{server}/databases");
        let on_maria = json_of(
            call(
                &files.panel,
                Method::POST,
                &path,
                Some(admin),
                Some(json!({"name": "stats", "host": host_id("mysql")})),
            )
            .await,
            201,
        )
        .await;
        let on_pg = json_of(
            call(
                &files.panel,
                Method::POST,
                &path,
                Some(admin),
                Some(json!({"name": "stats_pg", "host": host_id("postgres")})),
            )
            .await,
            201,
        )
        .await;
        assert_eq!(
            mariadb_has(&text(&on_maria, "name"), &text(&on_maria, "username")).await,
            (1, 1)
        );
        assert_eq!(
            postgres_has(&text(&on_pg, "name"), &text(&on_pg, "username")).await,
            (1, 1)
        );

        let server_path = format!("/api/v1/servers/{server}");
        let response = call(
            &files.panel,
            Method::DELETE,
            &server_path,
            Some(admin),
            None,
        )
        .await;
        assert!(response.status().is_success(), "{}", response.status());
        eventually_within("the server to go", Duration::from_secs(60), || async {
            let response = call(&files.panel, Method::GET, &server_path, Some(admin), None).await;
            (response.status() == 404).then_some(())
        })
        .await;
        let handle = db.connect().await;
        eventually_within(
            "its database rows to go",
            Duration::from_secs(30),
            || async {
                let left = cap_panel::databases::list(&handle, &server)
                    .await
                    .expect("listed");
                left.is_empty().then_some(())
            },
        )
        .await;
        handle.close().await;
        assert_eq!(
            mariadb_has(&text(&on_maria, "name"), &text(&on_maria, "username")).await,
            (0, 0)
        );
        assert_eq!(
            postgres_has(&text(&on_pg, "name"), &text(&on_pg, "username")).await,
            (0, 0)
        );
        let hosts = json_of(
            call(
                &files.panel,
                Method::GET,
                "/api/v1/database-hosts",
                Some(admin),
                None,
            )
            .await,
            200,
        )
        .await;
        for host in hosts["items"].as_array().expect("items") {
            assert_eq!(host["databases"], 0, "{host:#}");
        }
    }
}

/// The servers whose databases and users a test may leave on the hosts
/// when it fails half way; dropped (by their prefixes) when this is.
pub(crate) struct Leftovers(pub(crate) Vec<String>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let prefixes: Vec<(String, String)> = self
            .0
            .iter()
            .map(|server| {
                let prefix = cap_panel::databases::names::prefix(server);
                let user = format!("u{}", &prefix[1..]);
                (format!("{prefix}%"), format!("{user}%"))
            })
            .collect();
        // Best effort, on a thread of its own: Drop cannot await, and the
        // test's runtime may be single-threaded.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                let mysql_url = services::MYSQL.url();
                if let Ok(mut conn) = MySqlConnection::connect(&mysql_url).await {
                    for (databases, users) in &prefixes {
                        let names: Vec<Vec<u8>> = sqlx::query_scalar("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?")
                            .bind(databases)
                            .fetch_all(&mut conn)
                            .await
                            .unwrap_or_default();
                        for name in names.into_iter().filter_map(|n| String::from_utf8(n).ok()) {
                            if cap_panel::databases::remote::valid_identifier(&name) {
                                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`"))).execute(&mut conn).await;
                            }
                        }
                        let accounts: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as("SELECT User, Host FROM mysql.user WHERE User LIKE ?")
                            .bind(users)
                            .fetch_all(&mut conn)
                            .await
                            .unwrap_or_default();
                        for (user, host) in accounts {
                            let (Ok(user), Ok(host)) = (String::from_utf8(user), String::from_utf8(host)) else {
                                continue;
                            };
                            if cap_panel::databases::remote::valid_identifier(&user) && cap_panel::databases::remote::valid_remote(&host) {
                                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP USER IF EXISTS '{user}'@'{host}'"))).execute(&mut conn).await;
                            }
                        }
                    }
                    let _ = conn.close().await;
                }
                let pg_url = services::POSTGRES.url();
                if let Ok(mut conn) = PgConnection::connect(&pg_url).await {
                    for (databases, roles) in &prefixes {
                        let names: Vec<String> = sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
                            .bind(databases)
                            .fetch_all(&mut conn)
                            .await
                            .unwrap_or_default();
                        for name in names.into_iter().filter(|n| cap_panel::databases::remote::valid_identifier(n)) {
                            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).execute(&mut conn).await;
                        }
                        let names: Vec<String> = sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1")
                            .bind(roles)
                            .fetch_all(&mut conn)
                            .await
                            .unwrap_or_default();
                        for name in names.into_iter().filter(|n| cap_panel::databases::remote::valid_identifier(n)) {
                            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{name}\""))).execute(&mut conn).await;
                        }
                    }
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
