//! The file manager in the browser: uploads (by the file input, by a
//! dropped file, in chunks that resume after a failed one), the editor
//! keeping a file's encoding and line endings, multi-select, archives,
//! refusals in words, permissions, the keyboard and phone width — against
//! a real Agent whose file transfers the browser reaches directly, with
//! the bytes checked on the Agent's disk.

use super::*;

/// The WebDriver key for Escape.
const ESCAPE: &str = "\u{e00c}";

/// Presses `key` wherever the keyboard focus is, as a person does
/// (`send_keys` to a focused file input would choose a file instead).
async fn press(client: &Client, key: &str) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let value = key.chars().next().expect("a key");
    let actions = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value })
        .then(KeyAction::Up { value });
    client
        .perform_actions(actions)
        .await
        .expect("pressing a key");
}

/// The server's directory on the Agent's disk.
pub(super) fn server_dir(world: &World, server_id: &str) -> PathBuf {
    world
        .agent_dir
        .as_ref()
        .expect("the world has an Agent")
        .path()
        .join("servers")
        .join(server_id)
}

/// Creates a test-game server with `disk_mb` of disk and waits until its
/// install finished (its directory is on the Agent then).
pub(super) async fn installed_server(world: &World, name: &str, disk_mb: u64) -> String {
    let server = call(
        &world.panel,
        "POST",
        "/api/v1/servers",
        &world.admin_token,
        Some(json!({"name": name, "node_id": world.node_id,
                    "game": {"plugin": "test-game"},
                    "limits": {"memory_mb": 512, "disk_mb": disk_mb, "cpu_percent": 100}})),
        201,
    )
    .await;
    let server_id = server["id"].as_str().expect("an id").to_owned();
    let install = call(
        &world.panel,
        "POST",
        &format!("/api/v1/servers/{server_id}/install"),
        &world.admin_token,
        None,
        202,
    )
    .await;
    let command = install["commandId"]
        .as_str()
        .expect("a command id")
        .to_owned();
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let page = call(
            &world.panel,
            "GET",
            &format!("/api/v1/servers/{server_id}/commands?limit=100"),
            &world.admin_token,
            None,
            200,
        )
        .await;
        let state = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|c| c["id"] == json!(command)))
            .map(|c| c["state"].clone());
        match state.as_ref().and_then(Value::as_str) {
            Some("done") => break,
            Some("failed") => panic!("the install failed: {page:#}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "the install never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = server_dir(world, &server_id);
    assert!(dir.is_dir(), "{} is not on the Agent's disk", dir.display());
    server_id
}

/// Opens the file manager of `server_id` at `path`.
async fn open_files(client: &Client, world: &World, server_id: &str, path: &str) {
    let query = if path == "/" {
        String::new()
    } else {
        format!("?path={path}")
    };
    client
        .goto(
            &world
                .panel
                .url(&format!("/#/servers/{server_id}/files{query}")),
        )
        .await
        .expect("navigating");
    wait_for(client, "#file-list:not([aria-busy])").await;
}

/// The CSS selector of the list's row for `name`.
fn row(name: &str) -> String {
    format!("#file-table tr[data-name='{name}']")
}

/// Waits until the list has no row for `name`.
async fn wait_gone(client: &Client, name: &str) {
    let deadline = Instant::now() + UI_WAIT;
    while client.find(Locator::Css(&row(name))).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{name} is still listed\n{}",
            diagnose(client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Chooses `file` in the file manager's upload input.
async fn choose_upload(client: &Client, file: &std::path::Path) {
    wait_for(client, "#files-upload-input")
        .await
        .send_keys(file.to_str().expect("a UTF-8 path"))
        .await
        .expect("choosing the file");
}

/// What has the keyboard focus: its id, else its label, else its text.
pub(super) async fn focused(client: &Client) -> String {
    client
        .execute(
            "const e = document.activeElement;
             return e.id || e.getAttribute('aria-label') || e.textContent.trim();",
            vec![],
        )
        .await
        .expect("a script result")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Reads `path` on the Agent's disk once it holds `expected`, else fails
/// with what it holds.
async fn wait_for_bytes(path: &std::path::Path, expected: &[u8]) {
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let actual = std::fs::read(path).unwrap_or_default();
        if actual == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {:?}, not {:?}",
            path.display(),
            String::from_utf8_lossy(&actual[..actual.len().min(200)]),
            String::from_utf8_lossy(&expected[..expected.len().min(200)]),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_admin_uploads_by_input_and_by_drop_edits_a_latin_1_crlf_file_keeping_its_bytes_and_deletes_a_selection()
 {
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        ..Setup::default()
    })
    .await;
    let server_id = installed_server(&world, "Files", 1000).await;
    let disk = server_dir(&world, &server_id);
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;

    // The server page links its files.
    client
        .goto(&world.panel.url(&format!("/#/servers/{server_id}")))
        .await
        .expect("navigating");
    click(&client, "#tab-files").await;
    wait_for(&client, "#file-list:not([aria-busy])").await;
    wait_for(&client, "#tab-files[aria-current='page']").await;
    // Where to reach the files over SFTP: the node's address, the Agent's
    // port, and the username for this user and server.
    let short = &server_id[server_id.len() - 8..];
    let address = wait_for_text(
        &client,
        "#files-sftp-address",
        &format!("sftp://admin.{short}@127.0.0.1:"),
    )
    .await;
    let port: u16 = address
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("a port in {address:?}"));
    assert!(port > 0, "{address}");

    // A config file in Windows-1252 with CRLF line endings, by the input.
    let local = tempfile::tempdir().expect("a temporary directory");
    let properties = b"motd=Caf\xe9 du monde\r\nmax-players=20\r\n".to_vec();
    let file = local.path().join("server.properties");
    std::fs::write(&file, &properties).expect("writing the file");
    choose_upload(&client, &file).await;
    wait_for(
        &client,
        "#files-uploads li.done[data-path='/server.properties']",
    )
    .await;
    wait_for(&client, &row("server.properties")).await;
    wait_for_bytes(&disk.join("server.properties"), &properties).await;
    let size = wait_for_text(
        &client,
        &format!("{} td.size", row("server.properties")),
        "B",
    )
    .await;
    assert_eq!(size, format!("{} B", properties.len()));

    // Two files dropped on the list, as a desktop's file manager drops them.
    client
        .execute(
            "const transfer = new DataTransfer();
             transfer.items.add(new File(['hello\\n'], 'notes.txt', { type: 'text/plain' }));
             transfer.items.add(new File(['# Readme\\r\\n'], 'readme.md'));
             const zone = document.getElementById('files-drop');
             for (const type of ['dragenter', 'dragover', 'drop']) {
               zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
             }",
            vec![],
        )
        .await
        .expect("dropping files");
    wait_for(&client, "#files-uploads li.done[data-path='/readme.md']").await;
    wait_for(&client, &row("notes.txt")).await;
    wait_for(&client, &row("readme.md")).await;
    wait_for_bytes(&disk.join("notes.txt"), b"hello\n").await;
    wait_for_bytes(&disk.join("readme.md"), b"# Readme\r\n").await;
    screenshot(&client, "files").await;

    // The editor reads it as Windows-1252 with CRLF and writes it back so:
    // one line changed, one typed, an é and an ö in Latin-1 bytes.
    click(
        &client,
        &format!("{} a.file-name", row("server.properties")),
    )
    .await;
    let shown = wait_for(&client, "#editor-text")
        .await
        .prop("value")
        .await
        .expect("a property");
    assert_eq!(
        shown.as_deref(),
        Some("motd=Café du monde\nmax-players=20\n")
    );
    assert_eq!(
        input_value(&client, "#editor-encoding").await,
        "windows-1252"
    );
    assert_eq!(input_value(&client, "#editor-eol").await, "\r\n");
    client
        .execute(
            "const text = document.getElementById('editor-text');
             text.value = text.value.replace('max-players=20', 'max-players=32');
             text.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![],
        )
        .await
        .expect("changing a line");
    wait_for(&client, "#editor-text")
        .await
        .send_keys(&format!("level-name=Wörld{ENTER}"))
        .await
        .expect("typing");
    wait_for_text(&client, "#editor-status", "Unsaved changes").await;
    screenshot(&client, "files-editor").await;
    click(&client, "#editor-save").await;
    wait_for_text(&client, "#editor-status", "Saved").await;
    let saved = b"motd=Caf\xe9 du monde\r\nmax-players=32\r\nlevel-name=W\xf6rld\r\n".to_vec();
    wait_for_bytes(&disk.join("server.properties"), &saved).await;

    // A character Windows-1252 has no byte for is refused in words, and the
    // file stays as it was.
    wait_for(&client, "#editor-text")
        .await
        .send_keys("arrow=→")
        .await
        .expect("typing");
    click(&client, "#editor-save").await;
    let refusal = wait_for_text(
        &client,
        "#editor-error [data-code='unencodable']",
        "cannot be written in Windows-1252",
    )
    .await;
    assert!(refusal.contains("line 4"), "{refusal}");
    assert_eq!(
        std::fs::read(disk.join("server.properties")).expect("on disk"),
        saved
    );

    // The codec round-trips every byte of Windows-1252, keeps a UTF-8 BOM
    // and UTF-16, and tells line endings apart.
    let codec = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             import('/assets/text-codec.js').then((c) => {
               // No NUL (binary) and no lone CR (a line ending of its own).
               const all = Uint8Array.from({ length: 256 }, (_, i) => (i === 0 || i === 13 ? 32 : i));
               const latin = c.decodeText(all);
               const back = c.encodeText(latin.text, latin.encoding, latin.eol);
               const bom = c.decodeText(new Uint8Array([0xef, 0xbb, 0xbf, 0x61, 0x0d, 0x0a]));
               const bomBack = c.encodeText(bom.text, bom.encoding, bom.eol);
               const wide = c.encodeText('é\\n', 'utf-16le', '\\r\\n');
               const wideBack = c.decodeText(wide);
               done({
                 latin: latin.encoding,
                 same: back.length === 256 && back.every((b, i) => b === all[i]),
                 bom: [bom.encoding, bom.text, bom.eol, [...bomBack]],
                 wide: [wideBack.encoding, wideBack.text, wideBack.eol],
                 mixed: c.lineEndings('a\\r\\nb\\r\\nc\\n').mixed,
               });
             }, (e) => done(String(e)));",
            vec![],
        )
        .await
        .expect("a script result");
    assert_eq!(
        codec,
        json!({
            "latin": "windows-1252",
            "same": true,
            "bom": ["utf-8-bom", "a\r\n", "\r\n", [0xef, 0xbb, 0xbf, 0x61, 0x0d, 0x0a]],
            "wide": ["utf-16le", "é\r\n", "\r\n"],
            "mixed": true,
        })
    );

    // A new file, written in the editor.
    open_files(&client, &world, &server_id, "/").await;
    click(&client, "#files-new-file").await;
    fill(&client, "#new-file-form input[name=path]", "ops.json").await;
    click(&client, "#new-file-form-submit").await;
    wait_for(&client, "#editor-text")
        .await
        .send_keys("[\"Steve\"]")
        .await
        .expect("typing");
    click(&client, "#editor-save").await;
    wait_for_text(&client, "#editor-status", "Saved").await;
    wait_for_bytes(&disk.join("ops.json"), b"[\"Steve\"]").await;

    // A folder, and the same name again: refused in words, in the dialog.
    open_files(&client, &world, &server_id, "/").await;
    click(&client, "#files-new-folder").await;
    fill(&client, "#new-folder-form input[name=path]", "world").await;
    click(&client, "#new-folder-form-submit").await;
    wait_for(&client, &row("world")).await;
    assert!(disk.join("world").is_dir());
    click(&client, "#files-new-folder").await;
    fill(
        &client,
        "#new-folder-form input[name=path]",
        &format!("world{ENTER}"),
    )
    .await;
    let refusal = wait_for_text(
        &client,
        "#new-folder-form-error [data-code='file-exists']",
        "already exists",
    )
    .await;
    assert!(refusal.contains("/world"), "{refusal}");
    screenshot(&client, "files-refusal").await;
    // Escape closes the dialog and gives the focus back to its button.
    press(&client, ESCAPE).await;
    let deadline = Instant::now() + UI_WAIT;
    while client
        .find(Locator::Css("#new-folder-dialog"))
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "Escape did not close the dialog");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(focused(&client).await, "files-new-folder");

    // Archive two entries as zip, then extract the archive elsewhere.
    click(
        &client,
        &format!("{} input.file-select", row("server.properties")),
    )
    .await;
    click(&client, &format!("{} input.file-select", row("world"))).await;
    wait_for_text(&client, "#files-selected-count", "2 selected").await;
    click(&client, "#files-compress-selected").await;
    client
        .execute(
            "document.querySelector('#compress-form select[name=format]').value = 'zip';",
            vec![],
        )
        .await
        .expect("choosing zip");
    fill(&client, "#compress-form input[name=name]", "bundle").await;
    click(&client, "#compress-form-submit").await;
    wait_for(&client, &row("bundle.zip")).await;
    click(
        &client,
        &format!("{} button.entry-actions", row("bundle.zip")),
    )
    .await;
    click(&client, "#entry-extract").await;
    fill(
        &client,
        "#extract-form input[name=destination]",
        "/unpacked",
    )
    .await;
    click(&client, "#extract-form-submit").await;
    wait_for(&client, &row("unpacked")).await;
    wait_for_bytes(&disk.join("unpacked/server.properties"), &saved).await;
    assert!(disk.join("unpacked/world").is_dir());

    // Select two files and delete them together, after a confirmation.
    wait_for_text(&client, "#files-selected-count", "None selected").await;
    click(&client, &format!("{} input.file-select", row("notes.txt"))).await;
    click(&client, &format!("{} input.file-select", row("readme.md"))).await;
    wait_for_text(&client, "#files-selected-count", "2 selected").await;
    click(&client, "#files-delete-selected").await;
    let confirmation = wait_for_text(&client, "#confirm-dialog", "/readme.md").await;
    assert!(confirmation.contains("/notes.txt"), "{confirmation}");
    click(&client, "#confirm-yes").await;
    wait_gone(&client, "notes.txt").await;
    wait_gone(&client, "readme.md").await;
    assert!(!disk.join("notes.txt").exists() && !disk.join("readme.md").exists());
    assert!(
        disk.join("server.properties").exists(),
        "only the selection goes"
    );
    // Select all selects every entry listed.
    click(&client, "#files-select-all").await;
    let listed = client
        .find_all(Locator::Css("#file-table tbody tr"))
        .await
        .expect("a query")
        .len();
    wait_for_text(
        &client,
        "#files-selected-count",
        &format!("{listed} selected"),
    )
    .await;

    client.close().await.expect("closing the browser");
    if let Some(agent) = world.agent {
        agent.stop().await;
    }
}

#[tokio::test]
async fn a_large_upload_goes_in_chunks_with_a_progress_bar_and_resumes_from_the_agents_offset_after_a_failed_chunk()
 {
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        ..Setup::default()
    })
    .await;
    let server_id = installed_server(&world, "Big", 1000).await;
    let disk = server_dir(&world, &server_id);
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    open_files(&client, &world, &server_id, "/").await;

    // 9 MiB: an 8 MiB chunk and a last one. The last fails once on the
    // way (its request never reaches the node), as a dropped connection.
    let content: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let local = tempfile::tempdir().expect("a temporary directory");
    let file = local.path().join("world.bin");
    std::fs::write(&file, &content).expect("writing the file");
    client
        .execute(
            "window.__requests = [];
             const open = XMLHttpRequest.prototype.open;
             let patches = 0;
             XMLHttpRequest.prototype.open = function (method, url, ...rest) {
               window.__requests.push(method);
               if (method === 'PATCH' && ++patches === 2) {
                 window.__requests.push('failed');
                 return open.call(this, method, 'http://127.0.0.1:9/nowhere', ...rest);
               }
               return open.call(this, method, url, ...rest);
             };",
            vec![],
        )
        .await
        .expect("installing the fault");
    choose_upload(&client, &file).await;
    wait_for(&client, "#files-uploads li.upload progress").await;
    wait_for(&client, "#files-uploads li.done[data-path='/world.bin']").await;
    wait_for_bytes(&disk.join("world.bin"), &content).await;
    let requests = client
        .execute("return window.__requests;", vec![])
        .await
        .expect("a script result");
    assert_eq!(
        requests,
        json!(["HEAD", "PATCH", "PATCH", "failed", "HEAD", "PATCH"]),
        "a HEAD first (nothing staged), the first chunk, the failed last one, \
         a HEAD for the offset, the last chunk again"
    );
    let progress = client
        .execute(
            "const bar = document.querySelector('#files-uploads li.done progress');
             return [bar.value, bar.max];",
            vec![],
        )
        .await
        .expect("a script result");
    assert_eq!(progress, json!([content.len(), content.len()]));
    wait_for(&client, &row("world.bin")).await;
    client.close().await.expect("closing the browser");
}

#[tokio::test]
async fn at_phone_width_the_file_manager_fits_and_its_actions_work_by_keyboard() {
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        ..Setup::default()
    })
    .await;
    let server_id = installed_server(&world, "Phone", 1000).await;
    let disk = server_dir(&world, &server_id);
    std::fs::create_dir(disk.join("a-folder-with-a-rather-long-name-for-a-small-screen"))
        .expect("a folder");
    std::fs::write(disk.join("server.properties"), b"motd=Hello\n").expect("a file");
    let client = browser(&driver, 375, 812).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    open_files(&client, &world, &server_id, "/").await;
    wait_for(&client, &row("server.properties")).await;
    screenshot(&client, "files-phone").await;
    assert_fits(&client, "the file manager").await;
    client
        .execute(
            "document.getElementById('file-table').scrollIntoView();",
            vec![],
        )
        .await
        .expect("scrolling");
    screenshot(&client, "files-phone-list").await;
    let clear = wait_for(&client, "#files-uploads-clear").await;
    assert!(
        !clear.is_displayed().await.expect("visibility"),
        "nothing was uploaded, so there is nothing to clear"
    );

    // From the tabs on, Tab reaches every action and each entry's
    // checkbox, name and actions.
    client
        .execute("document.getElementById('tab-files').focus();", vec![])
        .await
        .expect("focusing");
    let mut reached = Vec::new();
    for _ in 0..40 {
        press(&client, TAB).await;
        reached.push(focused(&client).await);
    }
    for wanted in [
        "files-new-folder",
        "files-new-file",
        "files-pull",
        "files-upload-input",
        "files-select-all",
        "Select server.properties",
        "server.properties",
        "Actions for server.properties",
    ] {
        assert!(
            reached.iter().any(|r| r == wanted),
            "Tab never reached {wanted}: {reached:?}"
        );
    }

    // Enter opens an entry's actions; Escape closes them and the focus
    // goes back.
    let actions = wait_for(
        &client,
        &format!("{} button.entry-actions", row("server.properties")),
    )
    .await;
    actions.send_keys(ENTER).await.expect("pressing Enter");
    wait_for(&client, "#entry-dialog[open]").await;
    screenshot(&client, "files-actions-phone").await;
    assert_fits(&client, "the actions dialog").await;
    press(&client, ESCAPE).await;
    let deadline = Instant::now() + UI_WAIT;
    while client.find(Locator::Css("#entry-dialog")).await.is_ok() {
        assert!(Instant::now() < deadline, "Escape did not close the dialog");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(focused(&client).await, "Actions for server.properties");

    // Rename by keyboard alone: Enter, Tab to "Rename", Enter, type, Enter.
    press(&client, ENTER).await;
    wait_for(&client, "#entry-dialog[open]").await;
    let mut found = false;
    for _ in 0..10 {
        if focused(&client).await == "entry-rename" {
            found = true;
            break;
        }
        press(&client, TAB).await;
    }
    assert!(found, "Tab never reached Rename in the dialog");
    press(&client, ENTER).await;
    wait_for(&client, "#rename-dialog[open]").await;
    let on_name = client
        .execute(
            "return document.activeElement.matches('#rename-form input[name=to]');",
            vec![],
        )
        .await
        .expect("a script result");
    assert_eq!(on_name, json!(true), "the name field has the focus");
    fill(
        &client,
        "#rename-form input[name=to]",
        &format!("game.properties{ENTER}"),
    )
    .await;
    wait_for(&client, &row("game.properties")).await;
    wait_for_bytes(&disk.join("game.properties"), b"motd=Hello\n").await;

    // The editor fits too.
    click(&client, &format!("{} a.file-name", row("game.properties"))).await;
    wait_for(&client, "#editor-text").await;
    screenshot(&client, "files-editor-phone").await;
    assert_fits(&client, "the editor").await;
    client.close().await.expect("closing the browser");
}

#[tokio::test]
async fn a_subuser_with_only_file_read_sees_the_files_but_no_actions_and_an_upload_over_the_disk_limit_says_the_server_is_full()
 {
    let driver = start_driver();
    let world = world(Setup {
        agent: true,
        ..Setup::default()
    })
    .await;
    let server_id = installed_server(&world, "Tiny", 1).await;
    let player_id = create_password_user(&world, "player", PLAYER_PASSWORD).await;
    call(
        &world.panel,
        "POST",
        &format!("/api/v1/servers/{server_id}/subusers"),
        &world.admin_token,
        Some(json!({"user_id": player_id, "permissions": ["file.read"]})),
        201,
    )
    .await;
    let client = browser(&driver, 1280, 900).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    open_files(&client, &world, &server_id, "/").await;

    // 2 MiB on a server of 1 MiB: refused before a byte lands.
    let local = tempfile::tempdir().expect("a temporary directory");
    let small = local.path().join("small.txt");
    std::fs::write(&small, b"fits\n").expect("writing");
    choose_upload(&client, &small).await;
    wait_for(&client, &row("small.txt")).await;
    let big = local.path().join("big.bin");
    std::fs::write(&big, vec![1u8; 2 * 1024 * 1024]).expect("writing");
    choose_upload(&client, &big).await;
    let refusal = wait_for_text(
        &client,
        "#files-uploads li.failed[data-code='disk-limit']",
        "Server full",
    )
    .await;
    assert!(refusal.contains("The server is full"), "{refusal}");
    screenshot(&client, "files-disk-limit").await;
    assert!(!server_dir(&world, &server_id).join("big.bin").exists());
    click(&client, "#sign-out").await;
    wait_for(&client, "#login-form").await;

    // The subuser sees the list and what each entry is, and nothing to act
    // with.
    sign_in(&client, &world.panel, "player", PLAYER_PASSWORD).await;
    client
        .goto(&world.panel.url(&format!("/#/servers/{server_id}")))
        .await
        .expect("navigating");
    click(&client, "#tab-files").await;
    wait_for(&client, &row("small.txt")).await;
    for absent in [
        "#files-sftp",
        "#files-new-folder",
        "#files-new-file",
        "#files-pull",
        "#files-upload-input",
        "#files-delete-selected",
        "#files-compress-selected",
        "#file-table a.file-name",
        "#file-table button.file-name",
    ] {
        assert!(
            client.find(Locator::Css(absent)).await.is_err(),
            "a file.read-only subuser sees {absent}"
        );
    }
    click(
        &client,
        &format!("{} button.entry-actions", row("small.txt")),
    )
    .await;
    wait_for_text(&client, "#entry-dialog", "/small.txt").await;
    let offered = client
        .execute(
            "return [...document.querySelectorAll('#entry-dialog .entry-action-list > *')].map((e) => e.id);",
            vec![],
        )
        .await
        .expect("a script result");
    assert_eq!(offered, json!(["entry-close"]));
    client.close().await.expect("closing the browser");
}
