//! The Network tab of a server in the browser: an administrator sets the
//! allocation limit, adds allocations until the node has none free (the
//! refusal shown in words), writes notes in place by keyboard, switches
//! the primary and removes the old one after a confirmation; a subuser who
//! may only read sees the list without actions, and the tab fits a phone.

use super::*;

/// The server's allocations, as the API lists them.
async fn listed(world: &World, server_id: &str) -> Value {
    call(
        &world.panel,
        "GET",
        &format!("/api/v1/servers/{server_id}/allocations"),
        &world.admin_token,
        None,
        200,
    )
    .await
}

/// The CSS selector of the allocation list's row for `port`.
fn allocation_row(port: u64) -> String {
    format!("#allocation-table tr[data-port='{port}']")
}

/// Opens the Network tab of `server_id` from its server page.
async fn open_network(client: &Client, world: &World, server_id: &str) {
    client
        .goto(&world.panel.url(&format!("/#/servers/{server_id}")))
        .await
        .expect("navigating");
    click(client, "#tab-network").await;
    wait_for(client, "#tab-network[aria-current='page']").await;
    wait_for(client, "#allocation-list:not([aria-busy])").await;
}

/// How many rows the allocation list shows.
async fn row_count(client: &Client) -> u64 {
    client
        .execute(
            "return document.querySelectorAll('#allocation-table tbody tr').length;",
            vec![],
        )
        .await
        .expect("a script result")
        .as_u64()
        .expect("a count")
}

/// Waits until the allocation list shows `rows` rows.
async fn wait_rows(client: &Client, rows: u64) {
    let deadline = Instant::now() + UI_WAIT;
    while row_count(client).await != rows {
        assert!(
            Instant::now() < deadline,
            "the list never showed {rows} rows\n{}",
            diagnose(client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_admin_adds_notes_switches_and_removes_allocations_in_the_network_tab_and_a_reader_only_sees_them()
 {
    let driver = start_driver();
    let world = world(Setup::default()).await;
    // A third port on the node; the server takes the lowest of the three.
    call(
        &world.panel,
        "POST",
        &format!("/api/v1/nodes/{}/allocations", world.node_id),
        &world.admin_token,
        Some(json!({"ip": "127.0.0.1", "ports": [free_port()]})),
        201,
    )
    .await;
    let server = call(
        &world.panel,
        "POST",
        "/api/v1/servers",
        &world.admin_token,
        Some(json!({"name": "Networked", "node_id": world.node_id,
                    "game": {"plugin": "test-game"},
                    "limits": {"memory_mb": 512, "disk_mb": 1000, "cpu_percent": 100}})),
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("an id").to_owned();
    let first = server["allocation"]["port"].as_u64().expect("a port");
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    // The primary only, by default: nothing to add until a limit is set.
    open_network(&client, &world, &server_id).await;
    wait_for(
        &client,
        &format!("{}[data-primary='true']", allocation_row(first)),
    )
    .await;
    wait_for_text(&client, "#allocations-count", "primary allocation only").await;
    assert!(disabled(&client, "#allocation-add").await);
    fill(&client, "#allocation-limit-input", "3").await;
    click(&client, "#allocation-limit-submit").await;
    wait_for_text(&client, "#allocations-count", "0 of 3 extra allocations").await;
    assert!(!disabled(&client, "#allocation-add").await);

    // Two added, then the node has none free: refused in words.
    click(&client, "#allocation-add").await;
    wait_rows(&client, 2).await;
    click(&client, "#allocation-add").await;
    wait_rows(&client, 3).await;
    wait_for_text(&client, "#allocations-count", "2 of 3").await;
    click(&client, "#allocation-add").await;
    let refusal = wait_for_text(
        &client,
        "#allocations-alert [data-code='no-free-allocation']",
        "No free allocation",
    )
    .await;
    assert!(refusal.contains("no free allocation"), "{refusal}");
    screenshot(&client, "network-refusal").await;

    // Notes, typed and saved with Enter.
    let list = listed(&world, &server_id).await;
    let extra = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|a| a["primary"] == json!(false))
        .and_then(|a| a["port"].as_u64())
        .expect("an extra allocation");
    let row = allocation_row(extra);
    fill(&client, &format!("{row} input[name=notes]"), "voice chat").await;
    type_keys(&client, ENTER).await;
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let list = listed(&world, &server_id).await;
        let noted = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|a| a["port"] == json!(extra) && a["notes"] == json!("voice chat"));
        if noted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the notes were never saved: {list:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The primary switched: marked, and first.
    click(&client, &format!("{row} button.allocation-primary")).await;
    wait_for(&client, &format!("{row}[data-primary='true']")).await;
    wait_for(
        &client,
        &format!("{}[data-primary='false']", allocation_row(first)),
    )
    .await;
    let top = client
        .execute(
            "return document.querySelector('#allocation-table tbody tr').dataset.port;",
            vec![],
        )
        .await
        .expect("a script result");
    assert_eq!(top, json!(extra.to_string()), "the primary is listed first");
    assert!(
        client
            .find(Locator::Css(&format!("{row} button.allocation-remove")))
            .await
            .is_err(),
        "the primary offers no removal"
    );

    // The old primary removed after a confirmation; back in the pool.
    click(
        &client,
        &format!("{} button.allocation-remove", allocation_row(first)),
    )
    .await;
    wait_for_text(&client, "#confirm-dialog", "back to the node's pool").await;
    click(&client, "#confirm-yes").await;
    wait_rows(&client, 2).await;
    let list = listed(&world, &server_id).await;
    let ports: Vec<u64> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["port"].as_u64())
        .collect();
    assert!(!ports.contains(&first), "{list:#}");
    assert_eq!(list["items"][0]["port"], json!(extra));
    assert_eq!(list["items"][0]["notes"], "voice chat");
    screenshot(&client, "network").await;
    client.close().await.expect("closing the browser");

    // At phone width: the admin's tab fits; a reader sees the list and
    // notes, and nothing to act with.
    let player_id = create_password_user(&world, "player", PLAYER_PASSWORD).await;
    call(
        &world.panel,
        "POST",
        &format!("/api/v1/servers/{server_id}/subusers"),
        &world.admin_token,
        Some(json!({"user_id": player_id, "permissions": ["allocation.read"]})),
        201,
    )
    .await;
    let client = browser(&driver, 375, 812).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    open_network(&client, &world, &server_id).await;
    wait_for(&client, &format!("{row} input[name=notes]")).await;
    screenshot(&client, "network-phone").await;
    assert_fits(&client, "the network tab").await;
    click(&client, "#nav-toggle").await;
    click(&client, "#sign-out").await;
    wait_for(&client, "#login-form").await;

    sign_in(&client, &world.panel, "player", PLAYER_PASSWORD).await;
    open_network(&client, &world, &server_id).await;
    wait_for_text(&client, &format!("{row} .allocation-notes"), "voice chat").await;
    wait_for(&client, &format!("{row}[data-primary='true']")).await;
    for absent in [
        "#tab-files",
        "#tab-backups",
        "#allocation-add",
        "#allocation-limit",
        "#allocation-table button.allocation-primary",
        "#allocation-table button.allocation-remove",
        "#allocation-table input[name=notes]",
    ] {
        assert!(
            client.find(Locator::Css(absent)).await.is_err(),
            "an allocation.read-only subuser sees {absent}"
        );
    }
    assert_fits(&client, "the reader's network tab").await;
    client.close().await.expect("closing the browser");
}
