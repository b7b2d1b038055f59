//! Moving a server in the browser: an administrator picks the other node
//! on the server's page and moves the server by keyboard; the page shows
//! the move running and then done, the server is on the other node with
//! its files, and the form is gone while the move runs.

use super::files::{installed_server, server_dir};
use super::*;

#[tokio::test]
async fn an_admin_moves_a_server_to_another_node_from_its_page_and_sees_it_arrive() {
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        ..Setup::default()
    })
    .await;
    let server_id = installed_server(&world, "Moving", 1000).await;
    std::fs::write(server_dir(&world, &server_id).join("world.dat"), b"a world").expect("a file");
    // The second node, with its own Agent.
    let node = call(
        &world.panel,
        "POST",
        "/api/v1/nodes",
        &world.admin_token,
        Some(
            json!({"name": "node-2", "address": "127.0.0.1", "memory_mb": 65536,
                    "disk_mb": 100000, "cpu_percent": 800}),
        ),
        201,
    )
    .await;
    let target = node["id"].as_str().expect("a node id").to_owned();
    call(
        &world.panel,
        "POST",
        &format!("/api/v1/nodes/{target}/allocations"),
        &world.admin_token,
        Some(json!({"ip": "127.0.0.1", "ports": [free_port()]})),
        201,
    )
    .await;
    let token = call(
        &world.panel,
        "POST",
        &format!("/api/v1/nodes/{target}/registration-tokens"),
        &world.admin_token,
        Some(json!({})),
        201,
    )
    .await;
    let target_dir = tempfile::tempdir().expect("a temporary directory");
    let _target_agent = start_agent(
        &world.panel,
        target_dir.path(),
        Some(token["token"].as_str().expect("a token").to_owned()),
    )
    .await;
    let deadline = Instant::now() + UI_WAIT;
    while call(
        &world.panel,
        "GET",
        &format!("/api/v1/nodes/{target}"),
        &world.admin_token,
        None,
        200,
    )
    .await["online"]
        != json!(true)
    {
        assert!(
            Instant::now() < deadline,
            "the second Agent never came online"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let admin = browser(&driver, 1280, 900).await;
    sign_in(&admin, &world.panel, "admin", ADMIN_PASSWORD).await;
    admin
        .goto(&world.panel.url(&format!("/#/servers/{server_id}")))
        .await
        .expect("navigating");
    wait_for_text(&admin, "#transfer-node", "node-2").await;
    screenshot(&admin, "server-transfer-form").await;
    // By keyboard: the node picker holds the only other node; Enter on the
    // button submits.
    wait_for(&admin, "#server-transfer-start")
        .await
        .send_keys(ENTER)
        .await
        .expect("pressing Enter");
    wait_for_text(&admin, "#server-transfer-done", "node-2").await;
    screenshot(&admin, "server-transfer-done").await;
    assert!(
        admin
            .find(Locator::Css("#server-transferring"))
            .await
            .is_err(),
        "the running banner is gone once it is done"
    );
    let server = call(
        &world.panel,
        "GET",
        &format!("/api/v1/servers/{server_id}"),
        &world.admin_token,
        None,
        200,
    )
    .await;
    assert_eq!(server["node_id"], json!(target), "{server:#}");
    assert_eq!(
        std::fs::read(
            target_dir
                .path()
                .join("servers")
                .join(&server_id)
                .join("world.dat")
        )
        .expect("the file arrived"),
        b"a world"
    );
    // The picker now offers the first node, to move it back.
    wait_for_text(&admin, "#transfer-node", "node-1").await;
    assert_fits(&admin, "the moved server's page").await;
}
