//! Suspensions in the browser: an administrator suspends a server from its
//! page by keyboard (an empty reason refused at its field), its owner sees
//! why at phone width, with start, restart, reinstall and the console input
//! disabled, and the list marks it; the administrator lifts it and both
//! pages let the server start again.

use super::*;

const REASON: &str = "Invoice 2041 is unpaid";

/// Waits until the element `css` is enabled (`true`) or disabled.
async fn wait_enabled(client: &Client, css: &str, enabled: bool) {
    let deadline = Instant::now() + UI_WAIT;
    while disabled(client, css).await == enabled {
        assert!(
            Instant::now() < deadline,
            "{css} never became {}",
            if enabled { "enabled" } else { "disabled" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_admin_suspends_a_server_from_its_page_and_its_owner_sees_why_and_cannot_start_it_or_use_its_console()
 {
    let driver = start_driver();
    let world = world(Setup::default()).await;
    let owner_id = create_password_user(&world, "owner", PLAYER_PASSWORD).await;
    let server = call(
        &world.panel,
        "POST",
        "/api/v1/servers",
        &world.admin_token,
        Some(
            json!({"name": "Rented", "owner_id": owner_id, "node_id": world.node_id,
                    "game": {"plugin": "test-game"},
                    "limits": {"memory_mb": 512, "disk_mb": 1024, "cpu_percent": 100}}),
        ),
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("an id").to_owned();
    let page = world.panel.url(&format!("/#/servers/{server_id}"));

    let admin = browser(&driver, 1280, 900).await;
    sign_in(&admin, &world.panel, "admin", ADMIN_PASSWORD).await;
    admin.goto(&page).await.expect("navigating");
    wait_for(&admin, "#suspend-form").await;
    wait_enabled(&admin, ".power button[data-action='start']", true).await;
    // An empty reason: the Panel refuses it, named at the field.
    fill(&admin, "#suspension-reason-input", ENTER).await;
    let error = field_error(&admin, "#suspension-reason-input").await;
    assert!(error.contains("must not be empty"), "{error}");
    // By keyboard: type the reason and press Enter.
    fill(
        &admin,
        "#suspension-reason-input",
        &format!("{REASON}{ENTER}"),
    )
    .await;
    wait_for_text(&admin, "#server-suspended", REASON).await;
    wait_enabled(&admin, ".power button[data-action='start']", false).await;
    assert!(disabled(&admin, "#server-reinstall").await);
    wait_for(&admin, "#server-unsuspend").await;
    let suspended = call(
        &world.panel,
        "GET",
        &format!("/api/v1/servers/{server_id}"),
        &world.admin_token,
        None,
        200,
    )
    .await;
    assert_eq!(suspended["suspension"]["reason"], REASON, "{suspended:#}");
    screenshot(&admin, "server-suspended-admin").await;

    // The owner, on a phone: the list marks it, the page says why.
    let owner = browser(&driver, 390, 844).await;
    sign_in(&owner, &world.panel, "owner", PLAYER_PASSWORD).await;
    wait_for_text(&owner, "#server-list", "suspended").await;
    click(&owner, "#server-list a.server-link").await;
    wait_for_text(&owner, "#server-suspended", REASON).await;
    assert!(disabled(&owner, ".power button[data-action='start']").await);
    assert!(disabled(&owner, ".power button[data-action='restart']").await);
    assert!(disabled(&owner, "#console-input").await);
    assert!(disabled(&owner, "#server-reinstall").await);
    assert!(
        owner
            .find(Locator::Css("#suspend-form, #server-unsuspend"))
            .await
            .is_err(),
        "only administrators suspend and lift"
    );
    assert_fits(&owner, "the suspended server's page").await;
    screenshot(&owner, "server-suspended-owner-phone").await;

    // Lifted by the administrator (the button has the keyboard focus once
    // tabbed to; Enter presses it).
    wait_for(&admin, "#server-unsuspend")
        .await
        .send_keys(ENTER)
        .await
        .expect("pressing Enter");
    wait_for(&admin, "#suspend-form").await;
    assert!(
        admin.find(Locator::Css("#server-suspended")).await.is_err(),
        "the banner is gone"
    );
    wait_enabled(&admin, ".power button[data-action='start']", true).await;
    // The owner's page catches up on its next poll.
    wait_enabled(&owner, ".power button[data-action='start']", true).await;
    wait_enabled(&owner, "#console-input", true).await;
    assert!(owner.find(Locator::Css("#server-suspended")).await.is_err());
    owner.close().await.expect("closing the browser");
    admin.close().await.expect("closing the browser");
}
