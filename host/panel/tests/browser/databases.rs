//! Databases in the browser: the database hosts page (a host nothing
//! listens on refused in words, the real MariaDB added), and the
//! Databases tab of a server (turned off until a limit is set, a bad name
//! named under its field, a database created, its password hidden until
//! shown and working on the real MariaDB, rotated and deleted after a
//! confirmation, checked on the host).

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions as _, Connection as _};

use super::*;

/// The MariaDB server of the tests: host, port, user and password.
fn mariadb() -> (String, u16, String, Option<String>) {
    let url =
        url::Url::parse(&cap_test_support::services::MYSQL.url()).expect("the MySQL URL parses");
    (
        url.host_str().expect("a host").to_owned(),
        url.port().unwrap_or(3306),
        url.username().to_owned(),
        url.password().map(str::to_owned),
    )
}

/// Connects to the MariaDB server as `user`, to `database`.
async fn connect_as(
    user: &str,
    password: &str,
    database: &str,
) -> Result<MySqlConnection, sqlx::Error> {
    let (host, port, _, _) = mariadb();
    MySqlConnectOptions::new()
        .host(&host)
        .port(port)
        .username(user)
        .password(password)
        .database(database)
        .connect()
        .await
}

/// How many databases called `name` the MariaDB server has.
async fn databases_called(name: &str) -> i64 {
    let mut conn: MySqlConnection = cap_test_support::services::MYSQL.connect().await;
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await
    .expect("counted");
    let _ = conn.close().await;
    count
}

/// The text of the password cell of `row`, once it is not `unlike`.
async fn shown_password(client: &Client, row: &str, unlike: &str) -> String {
    wait_for_text_where(
        client,
        &format!("{row} .database-password"),
        "changed",
        |t| !t.is_empty() && t != unlike,
    )
    .await
}

#[tokio::test]
async fn an_admin_adds_a_database_host_and_creates_rotates_and_deletes_a_database_from_the_databases_tab()
 {
    let driver = start_driver();
    let world = world(Setup::default()).await;
    let server = call(
        &world.panel,
        "POST",
        "/api/v1/servers",
        &world.admin_token,
        Some(json!({"name": "With databases", "node_id": world.node_id,
                    "game": {"plugin": "test-game"},
                    "limits": {"memory_mb": 512, "disk_mb": 1000, "cpu_percent": 100}})),
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("an id").to_owned();
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    // The hosts page: nothing there yet; a port nothing listens on is
    // refused in words, and nothing is stored; the real one is added.
    client
        .goto(&world.panel.url("/#/admin/database-hosts"))
        .await
        .expect("navigating");
    wait_for(&client, "#database-hosts-empty").await;
    let (host, port, user, password) = mariadb();
    fill(&client, "#database-host-name", "MariaDB").await;
    fill(&client, "#database-host-host", &host).await;
    fill(&client, "#database-host-port", &free_port().to_string()).await;
    fill(&client, "#database-host-username", &user).await;
    if let Some(password) = &password {
        fill(&client, "#database-host-password", password).await;
    }
    click(&client, "#database-host-submit").await;
    let refusal = wait_for_text(&client, "#database-host-error", "Database host unreachable").await;
    assert!(refusal.contains("could not be reached"), "{refusal}");
    wait_for(&client, "#database-hosts-empty").await;
    fill(&client, "#database-host-port", &port.to_string()).await;
    click(&client, "#database-host-submit").await;
    wait_for_text(&client, "#database-host-table", "MariaDB").await;
    wait_for_text(&client, "#database-host-table", "Every node").await;

    // The tab: off until an administrator sets a limit.
    client
        .goto(&world.panel.url(&format!("/#/servers/{server_id}")))
        .await
        .expect("navigating");
    click(&client, "#tab-databases").await;
    wait_for(&client, "#tab-databases[aria-current='page']").await;
    wait_for_text(&client, "#databases-off", "turned off").await;
    wait_for(&client, "#database-create[hidden]").await;
    call(
        &world.panel,
        "PUT",
        &format!("/api/v1/servers/{server_id}/database-limit"),
        &world.admin_token,
        Some(json!({"limit": 2})),
        200,
    )
    .await;
    click(&client, "#databases-refresh").await;
    wait_for_text(&client, "#databases-count", "0 of 2 databases").await;
    wait_for(&client, "#database-create:not([hidden])").await;
    let prefix = cap_panel::databases::names::prefix(&server_id);
    wait_for_text(&client, "#database-prefix", &prefix).await;

    // A name the Panel refuses is named under its field.
    fill(
        &client,
        "#database-create-form input[name=name]",
        "Bad-Name",
    )
    .await;
    click(&client, "#database-create-submit").await;
    let message = field_error(&client, "#database-create-form input[name=name]").await;
    assert!(message.contains("lowercase"), "{message}");

    // Created: listed, its password hidden until shown.
    fill(&client, "#database-create-form input[name=name]", "world").await;
    click(&client, "#database-create-submit").await;
    let name = format!("{prefix}world");
    let row = format!("#database-table tr[data-name='{name}']");
    wait_for(&client, &row).await;
    wait_for_text(&client, "#databases-count", "1 of 2 databases").await;
    let listed = call(
        &world.panel,
        "GET",
        &format!("/api/v1/servers/{server_id}/databases"),
        &world.admin_token,
        None,
        200,
    )
    .await;
    let database = &listed["items"][0];
    let username = database["username"].as_str().expect("a user").to_owned();
    let secret = database["password"]
        .as_str()
        .expect("a password")
        .to_owned();
    let hidden = wait_for_text(&client, &format!("{row} .database-password"), "•").await;
    assert!(!hidden.contains(&secret), "hidden until shown");
    let connection =
        wait_for_text(&client, &format!("{row} .database-connection"), "mysql://").await;
    assert!(!connection.contains(&secret), "{connection}");
    click(&client, &format!("{row} .database-reveal")).await;
    assert_eq!(shown_password(&client, &row, &hidden).await, secret);
    wait_for_text(
        &client,
        &format!("{row} .database-connection"),
        database["connectionString"].as_str().expect("a string"),
    )
    .await;
    let conn = connect_as(&username, &secret, &name)
        .await
        .expect("the password the page shows works");
    let _ = conn.close().await;
    screenshot(&client, "server-databases").await;

    // Rotated after a confirmation: the page shows the new password, which
    // works; the old one no longer does.
    click(&client, &format!("{row} .database-rotate")).await;
    wait_for(&client, "#confirm-dialog").await;
    click(&client, "#confirm-yes").await;
    let rotated = shown_password(&client, &row, &secret).await;
    assert_eq!(rotated.len(), 32, "{rotated}");
    assert!(
        connect_as(&username, &secret, &name).await.is_err(),
        "the old password is refused"
    );
    let conn = connect_as(&username, &rotated, &name)
        .await
        .expect("the new password works");
    let _ = conn.close().await;

    // Deleted after a confirmation, on the host too.
    click(&client, &format!("{row} .database-delete")).await;
    wait_for_text(&client, "#confirm-dialog", "cannot be undone").await;
    click(&client, "#confirm-yes").await;
    wait_for(&client, "#databases-empty").await;
    assert_eq!(databases_called(&name).await, 0, "dropped on the host");

    // At phone width the tab fits.
    let phone = browser(&driver, 390, 844).await;
    sign_in(&phone, &world.panel, "admin", ADMIN_PASSWORD).await;
    show_page(
        &phone,
        &world,
        &format!("/#/servers/{server_id}/databases"),
        "#database-create",
        "server-databases-phone",
    )
    .await;
    show_page(
        &phone,
        &world,
        "/#/admin/database-hosts",
        "#database-host-table",
        "admin-database-hosts-phone",
    )
    .await;
    phone.close().await.expect("the phone session closes");
    client.close().await.expect("the session closes");
}
