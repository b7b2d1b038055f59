//! Backups and SSH keys in the browser: the Backups tab of a server (a
//! backup made with ignore lines, listed with its digest, downloaded
//! through its signed URL, locked, refused at the limit, unlocked and
//! deleted; a restore refused while the server runs, then run; what a
//! subuser who may only read sees, at phone width) against a real Agent
//! whose archives are checked on its disk, and the SSH keys of the account
//! page (added, refused with the Panel's reason, removed).

use sha2::{Digest as _, Sha256};

use super::files::{focused, installed_server, server_dir};
use super::*;

/// An Ed25519 public key and its fingerprint (as in the SFTP tests).
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID48O9Jd5boJ7wmUQKccM7kuYpvxsXrwlhY/ed5g/LG/ alice@laptop";
const ED25519_FINGERPRINT: &str = "SHA256:lU6yEfSmdu8TqWZ5y9Unj+ZdGdnyt+4KtiLsypefLHE";

/// The CSS selector of the backup list's row for `name`.
fn backup_row(name: &str) -> String {
    format!("#backup-table tr[data-name='{name}']")
}

/// Sets the server's backup limit (0, backups off, until an administrator
/// sets one).
async fn set_backup_limit(world: &World, server_id: &str, limit: u32) {
    call(
        &world.panel,
        "PUT",
        &format!("/api/v1/servers/{server_id}/backup-limit"),
        &world.admin_token,
        Some(json!({"limit": limit})),
        200,
    )
    .await;
}

/// The server's backups, as the API lists them.
async fn listed(world: &World, server_id: &str) -> Value {
    call(
        &world.panel,
        "GET",
        &format!("/api/v1/servers/{server_id}/backups"),
        &world.admin_token,
        None,
        200,
    )
    .await
}

/// Makes a backup named `name` through the API and waits until the Agent
/// reported it done.
async fn made_backup(world: &World, server_id: &str, name: &str) -> Value {
    let started = call(
        &world.panel,
        "POST",
        &format!("/api/v1/servers/{server_id}/backups"),
        &world.admin_token,
        Some(json!({"name": name})),
        202,
    )
    .await;
    let id = started["id"].as_str().expect("an id").to_owned();
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let backup = call(
            &world.panel,
            "GET",
            &format!("/api/v1/servers/{server_id}/backups/{id}"),
            &world.admin_token,
            None,
            200,
        )
        .await;
        match backup["state"].as_str() {
            Some("done") => return backup,
            Some("pending") => {}
            _ => panic!("the backup did not succeed: {backup:#}"),
        }
        assert!(Instant::now() < deadline, "the backup never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks the server to `action` (start, stop) and waits until it is `state`.
async fn power(world: &World, server_id: &str, action: &str, state: &str) {
    call(
        &world.panel,
        "POST",
        &format!("/api/v1/servers/{server_id}/power"),
        &world.admin_token,
        Some(json!({"action": action})),
        202,
    )
    .await;
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let server = call(
            &world.panel,
            "GET",
            &format!("/api/v1/servers/{server_id}"),
            &world.admin_token,
            None,
            200,
        )
        .await;
        if server["state"] == json!(state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never became {state}: {server:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens the Backups tab of `server_id` from its server page.
async fn open_backups(client: &Client, world: &World, server_id: &str) {
    client
        .goto(&world.panel.url(&format!("/#/servers/{server_id}")))
        .await
        .expect("navigating");
    click(client, "#tab-backups").await;
    wait_for(client, "#tab-backups[aria-current='page']").await;
    wait_for(client, "#backup-list:not([aria-busy])").await;
}

/// Runs `script` until it returns something other than null; returns that.
async fn script_value(client: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let value = client
            .execute(script, vec![])
            .await
            .expect("a script result");
        if !value.is_null() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened\n{}",
            diagnose(client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until nothing matches `css`.
async fn wait_absent(client: &Client, css: &str) {
    let deadline = Instant::now() + UI_WAIT;
    while client.find(Locator::Css(css)).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{css} is still there\n{}",
            diagnose(client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `path` is gone from the Agent's disk.
async fn wait_deleted(path: &std::path::Path) {
    let deadline = Instant::now() + UI_WAIT;
    while path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} is still there",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_backup_is_created_listed_locked_and_deleted_from_the_backups_tab() {
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        ..Setup::default()
    })
    .await;
    let server_id = installed_server(&world, "Backed up", 1000).await;
    let disk = server_dir(&world, &server_id);
    std::fs::create_dir_all(disk.join("world")).expect("a folder");
    std::fs::write(disk.join("world/level.dat"), vec![7u8; 100_000]).expect("a file");
    std::fs::write(disk.join("latest.log"), b"noise").expect("a log");
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    // Backups are off until an administrator sets a limit, and the tab
    // says so instead of offering a form the Panel would refuse.
    open_backups(&client, &world, &server_id).await;
    wait_for_text(&client, "#backups-off", "turned off").await;
    wait_for(&client, "#backups-empty").await;
    wait_for(&client, "#backup-create[hidden]").await;
    set_backup_limit(&world, &server_id, 1).await;
    click(&client, "#backups-refresh").await;
    wait_for_text(&client, "#backups-count", "0 of 1 backup kept").await;
    wait_for(&client, "#backup-create:not([hidden])").await;
    wait_absent(&client, "#backups-off").await;

    // A backup with an ignore line: pending, then done without a reload
    // (the tab polls while it is pending).
    fill(
        &client,
        "#backup-create-form input[name=name]",
        "before the update",
    )
    .await;
    fill(
        &client,
        "#backup-create-form textarea[name=ignored]",
        "*.log",
    )
    .await;
    click(&client, "#backup-create-submit").await;
    let row = backup_row("before the update");
    wait_for(&client, &format!("{row}[data-state='done']")).await;
    wait_for_text(&client, "#backups-count", "1 of 1 backup kept").await;
    let list = listed(&world, &server_id).await;
    let backup = &list["items"][0];
    assert_eq!(backup["name"], "before the update", "{list:#}");
    assert_eq!(backup["ignored"], json!(["*.log"]));
    let id = backup["id"].as_str().expect("an id").to_owned();
    let digest = backup["sha256"].as_str().expect("a digest").to_owned();
    let shown = wait_for(&client, &format!("{row} code.backup-sha")).await;
    assert_eq!(
        shown.attr("title").await.expect("an attribute").as_deref(),
        Some(digest.as_str()),
        "the whole digest is the short one's title"
    );
    assert_eq!(
        shown.text().await.expect("a text"),
        format!("{}…", &digest[..12])
    );
    wait_for_text(&client, &row, "Leaves out 1 pattern").await;
    let archive = world
        .agent_dir
        .as_ref()
        .expect("the world has an Agent")
        .path()
        .join("backups")
        .join(&server_id)
        .join(format!("{id}.tar.zst"));
    assert!(archive.is_file(), "{}", archive.display());
    screenshot(&client, "backups").await;

    // Download: the page follows the signed URL, which serves the archive
    // whose digest the list shows.
    client
        .execute(
            "window.__downloads = [];
             HTMLAnchorElement.prototype.click = function () { window.__downloads.push(this.href); };",
            vec![],
        )
        .await
        .expect("watching downloads");
    click(&client, &format!("{row} button.backup-download")).await;
    let url = script_value(
        &client,
        "the download",
        "return window.__downloads[0] || null;",
    )
    .await;
    let url = url.as_str().expect("a URL");
    let bytes = support::client()
        .get(url)
        .send()
        .await
        .expect("the download is answered")
        .bytes()
        .await
        .expect("the archive");
    assert_eq!(hex::encode(Sha256::digest(&bytes)), digest);

    // Locked: the badge shows, Delete is disabled, and the focus stays on
    // the button, which now unlocks.
    click(&client, &format!("{row} button.backup-lock")).await;
    wait_for(&client, &format!("{row}[data-locked='true']")).await;
    wait_for_text(&client, &format!("{row} td[data-label='Name']"), "locked").await;
    assert!(disabled(&client, &format!("{row} button.backup-delete")).await);
    assert_eq!(focused(&client).await, "Unlock before the update");

    // At the limit with every backup locked, a new one is refused, and
    // the tab says why.
    wait_for(&client, "#backups-full").await;
    fill(&client, "#backup-create-form input[name=name]", "second").await;
    click(&client, "#backup-create-submit").await;
    let refusal = wait_for_text(
        &client,
        "#backup-create-error [data-code='backup-limit-reached']",
        "every one is locked",
    )
    .await;
    assert!(refusal.contains("Backup limit reached"), "{refusal}");
    screenshot(&client, "backups-refusal").await;
    assert_eq!(
        listed(&world, &server_id).await["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Unlocked, it is deleted after a confirmation, archive and all.
    click(&client, &format!("{row} button.backup-lock")).await;
    wait_for(&client, &format!("{row}[data-locked='false']")).await;
    assert!(!disabled(&client, &format!("{row} button.backup-delete")).await);
    click(&client, &format!("{row} button.backup-delete")).await;
    wait_for_text(&client, "#confirm-dialog", "before the update").await;
    click(&client, "#confirm-yes").await;
    wait_for(&client, "#backups-empty").await;
    wait_for_text(&client, "#backups-count", "0 of 1 backup kept").await;
    assert_eq!(listed(&world, &server_id).await["items"], json!([]));
    wait_deleted(&archive).await;

    client.close().await.expect("closing the browser");
    if let Some(agent) = world.agent {
        agent.stop().await;
    }
}

#[tokio::test]
async fn a_refused_restore_of_a_running_server_shows_why() {
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        ..Setup::default()
    })
    .await;
    let server_id = installed_server(&world, "Restored", 1000).await;
    let disk = server_dir(&world, &server_id);
    std::fs::write(disk.join("world.dat"), b"the world before").expect("a file");
    set_backup_limit(&world, &server_id, 2).await;
    made_backup(&world, &server_id, "nightly").await;
    power(&world, &server_id, "start", "running").await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    open_backups(&client, &world, &server_id).await;
    let row = backup_row("nightly");

    // The dialog warns that the server runs; asked anyway, the Panel
    // refuses, and the dialog shows its reason.
    click(&client, &format!("{row} button.backup-restore")).await;
    wait_for(&client, "#restore-dialog[open]").await;
    wait_for_text(&client, "#restore-server-state", "running").await;
    click(&client, "#restore-truncate").await;
    wait_for_text(&client, "#restore-form-submit", "Delete all files").await;
    click(&client, "#restore-form-submit").await;
    let refusal = wait_for_text(
        &client,
        "#restore-form-error [data-code='server-running']",
        "stop it before restoring",
    )
    .await;
    assert!(refusal.contains("Server running"), "{refusal}");
    screenshot(&client, "backups-restore-refused").await;
    click(&client, "#restore-form-cancel").await;
    wait_absent(&client, "#restore-dialog").await;
    assert_eq!(focused(&client).await, "Restore nightly");
    assert_eq!(
        std::fs::read(disk.join("world.dat")).expect("on disk"),
        b"the world before"
    );

    // Stopped, the restore runs (deleting every file first) and the tab
    // shows it done without a reload.
    std::fs::write(disk.join("world.dat"), b"the world after").expect("a file");
    std::fs::write(disk.join("added-later.txt"), b"x").expect("a file");
    power(&world, &server_id, "stop", "offline").await;
    click(&client, &format!("{row} button.backup-restore")).await;
    wait_for(&client, "#restore-dialog[open]").await;
    assert!(
        client
            .find(Locator::Css("#restore-server-state"))
            .await
            .is_err(),
        "no warning for a stopped server"
    );
    click(&client, "#restore-truncate").await;
    click(&client, "#restore-form-submit").await;
    wait_absent(&client, "#restore-dialog").await;
    wait_for(
        &client,
        &format!("{row} .backup-restore-state[data-state='done']"),
    )
    .await;
    wait_for_text(
        &client,
        &format!("{row} td[data-label='Last restore']"),
        "restored",
    )
    .await;
    assert_eq!(
        std::fs::read(disk.join("world.dat")).expect("restored"),
        b"the world before"
    );
    assert!(
        !disk.join("added-later.txt").exists(),
        "truncate deleted it"
    );

    client.close().await.expect("closing the browser");
    if let Some(agent) = world.agent {
        agent.stop().await;
    }
}

#[tokio::test]
async fn a_subuser_who_may_only_read_backups_sees_them_without_actions_and_the_tab_fits_a_phone() {
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        ..Setup::default()
    })
    .await;
    let server_id = installed_server(&world, "Shared", 1000).await;
    set_backup_limit(&world, &server_id, 3).await;
    made_backup(
        &world,
        &server_id,
        "a backup with a rather long name for a small screen",
    )
    .await;
    let player_id = create_password_user(&world, "player", PLAYER_PASSWORD).await;
    call(
        &world.panel,
        "POST",
        &format!("/api/v1/servers/{server_id}/subusers"),
        &world.admin_token,
        Some(json!({"user_id": player_id, "permissions": ["backup.read"]})),
        201,
    )
    .await;
    let row = backup_row("a backup with a rather long name for a small screen");
    let client = browser(&driver, 375, 812).await;

    // The admin's tab, every action in it, fits a phone.
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    open_backups(&client, &world, &server_id).await;
    wait_for(&client, &format!("{row} button.backup-delete")).await;
    screenshot(&client, "backups-phone").await;
    assert_fits(&client, "the backups tab").await;
    click(&client, "#nav-toggle").await;
    click(&client, "#sign-out").await;
    wait_for(&client, "#login-form").await;

    // The subuser has a Backups tab (and no Files tab), the list, and
    // nothing to act with.
    sign_in(&client, &world.panel, "player", PLAYER_PASSWORD).await;
    open_backups(&client, &world, &server_id).await;
    wait_for(&client, &format!("{row}[data-state='done']")).await;
    for absent in [
        "#tab-files",
        "#backup-create",
        "#backup-table button.backup-download",
        "#backup-table button.backup-restore",
        "#backup-table button.backup-lock",
        "#backup-table button.backup-delete",
    ] {
        assert!(
            client.find(Locator::Css(absent)).await.is_err(),
            "a backup.read-only subuser sees {absent}"
        );
    }
    assert_fits(&client, "the subuser's backups tab").await;
    client.close().await.expect("closing the browser");
    if let Some(agent) = world.agent {
        agent.stop().await;
    }
}

#[tokio::test]
async fn an_ssh_key_is_added_and_removed_from_the_account_page() {
    let driver = start_driver();
    let world = world(Setup::default()).await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    client
        .goto(&world.panel.url("/#/account"))
        .await
        .expect("navigating");
    wait_for(&client, "#ssh-keys-empty").await;

    fill(&client, "#ssh-key-form input[name=ssh-key-name]", "laptop").await;
    fill(&client, "#ssh-key-form textarea[name=public_key]", ED25519).await;
    click(&client, "#ssh-key-submit").await;
    wait_for_text(&client, "#ssh-key-list", ED25519_FINGERPRINT).await;
    wait_for_text(&client, "#ssh-key-list", "laptop").await;
    let keys = call(
        &world.panel,
        "GET",
        "/api/v1/account/ssh-keys",
        &world.admin_token,
        None,
        200,
    )
    .await;
    assert_eq!(
        keys["items"][0]["fingerprint"], ED25519_FINGERPRINT,
        "{keys:#}"
    );
    assert_eq!(keys["items"][0]["name"], "laptop");
    // The form is empty again, ready for the next key.
    assert_eq!(
        wait_for(&client, "#ssh-key-form textarea[name=public_key]")
            .await
            .prop("value")
            .await
            .expect("a property")
            .as_deref(),
        Some("")
    );
    screenshot(&client, "account-ssh-keys").await;

    // Removed after a confirmation that names its fingerprint.
    click(
        &client,
        "#ssh-key-list button.ssh-key-remove[data-name='laptop']",
    )
    .await;
    wait_for_text(&client, "#confirm-dialog", ED25519_FINGERPRINT).await;
    click(&client, "#confirm-yes").await;
    wait_for(&client, "#ssh-keys-empty").await;
    let keys = call(
        &world.panel,
        "GET",
        "/api/v1/account/ssh-keys",
        &world.admin_token,
        None,
        200,
    )
    .await;
    assert_eq!(keys["items"], json!([]));
    client.close().await.expect("closing the browser");
}

#[tokio::test]
async fn a_bad_ssh_key_is_refused_with_its_reason() {
    let driver = start_driver();
    let world = world(Setup::default()).await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    client
        .goto(&world.panel.url("/#/account"))
        .await
        .expect("navigating");
    wait_for(&client, "#ssh-keys-empty").await;
    let name = "#ssh-key-form input[name=ssh-key-name]";
    let key = "#ssh-key-form textarea[name=public_key]";

    // A private key: refused, saying to give the public one; the key field
    // is marked and has the focus.
    fill(&client, name, "oops").await;
    fill(
        &client,
        key,
        "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA -----END OPENSSH PRIVATE KEY-----",
    )
    .await;
    click(&client, "#ssh-key-submit").await;
    let refusal = wait_for_text(
        &client,
        "#ssh-key-form-error [data-code='invalid-ssh-key']",
        "this is a private key",
    )
    .await;
    assert!(refusal.contains("Invalid SSH key"), "{refusal}");
    let marked = client
        .execute(
            "const e = document.activeElement;
             return e.name === 'public_key' && e.getAttribute('aria-invalid') === 'true';",
            vec![],
        )
        .await
        .expect("a script result");
    assert_eq!(marked, json!(true), "the key field is marked and focused");
    screenshot(&client, "account-ssh-key-refused").await;

    // Not a key at all.
    fill(&client, key, "ssh-ed25519 AAAA").await;
    click(&client, "#ssh-key-submit").await;
    wait_for_text(
        &client,
        "#ssh-key-form-error [data-code='invalid-ssh-key']",
        "not an OpenSSH public key",
    )
    .await;

    // No name: the message is under the name field.
    fill(&client, name, " ").await;
    fill(&client, key, ED25519).await;
    click(&client, "#ssh-key-submit").await;
    let problem = field_error(&client, name).await;
    assert!(problem.contains("1 to 128"), "{problem}");

    // The same key twice: refused as already there.
    fill(&client, name, "laptop").await;
    click(&client, "#ssh-key-submit").await;
    wait_for_text(&client, "#ssh-key-list", ED25519_FINGERPRINT).await;
    fill(&client, name, "laptop again").await;
    fill(&client, key, ED25519).await;
    click(&client, "#ssh-key-submit").await;
    let refusal = wait_for_text(
        &client,
        "#ssh-key-form-error [data-code='ssh-key-exists']",
        "on your account already",
    )
    .await;
    assert!(refusal.contains(ED25519_FINGERPRINT), "{refusal}");
    let keys = call(
        &world.panel,
        "GET",
        "/api/v1/account/ssh-keys",
        &world.admin_token,
        None,
        200,
    )
    .await;
    assert_eq!(keys["items"].as_array().map(Vec::len), Some(1), "{keys:#}");
    client.close().await.expect("closing the browser");
}
