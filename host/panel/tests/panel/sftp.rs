//! SFTP end to end: a Panel with the real `local-password` provider, a real
//! Agent serving SFTP on loopback, and the real OpenSSH `sftp` client
//! signing in as `<username>.<server>` with a password (through `sshpass`)
//! or a key the user stored with `POST /api/v1/account/ssh-keys`. Every
//! sign-in is the Panel's decision; the Agent asks over its link.
//!
//! The routes of SSH keys are tested on every database below, without an
//! Agent.

use std::path::PathBuf;

use cap_agent::node::RunningNode;
use cap_e2e::sftp::{self, Login};
use cap_panel::RunningPanel;
use cap_panel::db::Actor;
use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use cap_panel::identity::users::{NewUser, SetBy, User, assign_role, create_role, create_user};
use cap_panel::identity::{IdentityOptions, ProviderRegistry, load_local_password, passwords};
use reqwest::Method;
use serde_json::{Value, json};

use crate::agents::{install, node_online};
use crate::nodes::{call, json_of};
use crate::plugins::{PLUGIN_ADMIN, install_and_activate};
use crate::support::{
    TestDb, Tokens, code_at, expect_problem, free_port, on_every_database, start_agent,
};

/// Holds every permission.
pub(crate) const ADMIN: &str = "sftp-admin-token";
/// Alice, the server's owner, with every server permission.
pub(crate) const ALICE: &str = "sftp-alice-token";
/// Bob, a subuser.
const BOB: &str = "sftp-bob-token";
pub(crate) const ALICE_PASSWORD: &str = "Alice-Sftp-Password-1";
const BOB_PASSWORD: &str = "Bob-Sftp-Password-22";

pub(crate) struct Site {
    pub(crate) panel: Option<RunningPanel>,
    _agent: RunningNode,
    pub(crate) agent_dir: tempfile::TempDir,
    /// The client's local directory (get and put), and its keys.
    pub(crate) local: tempfile::TempDir,
    port: u16,
    pub(crate) server_id: String,
    pub(crate) alice: User,
    bob: User,
}

impl Site {
    pub(crate) fn panel(&self) -> &RunningPanel {
        self.panel.as_ref().expect("the Panel runs")
    }

    pub(crate) fn server_dir(&self) -> PathBuf {
        self.agent_dir.path().join("servers").join(&self.server_id)
    }

    /// `user`'s SFTP username on the server.
    fn username(&self, user: &User) -> String {
        cap_protocol::sftp::sftp_username(&user.username, &self.server_id)
    }

    pub(crate) async fn sftp(&self, user: &User, login: Login, batch: &str) -> sftp::Run {
        sftp::run(
            self.port,
            &self.username(user),
            &login,
            self.local.path(),
            batch,
        )
        .await
    }

    async fn add_key(&self, token: &str, name: &str) -> PathBuf {
        let key = sftp::keygen(self.local.path(), name);
        let body = json!({"name": name, "public_key": sftp::public_key(&key)});
        json_of(
            call(
                self.panel(),
                Method::POST,
                "/api/v1/account/ssh-keys",
                Some(token),
                Some(body),
            )
            .await,
            201,
        )
        .await;
        key
    }
}

pub(crate) fn password(p: &str) -> Login {
    Login::Password(p.to_owned())
}

/// A Panel whose users sign in with the real local-password provider
/// (alice owns the server, bob is a user), a node whose Agent serves SFTP,
/// and an installed test-game server of `disk_mb`.
pub(crate) async fn sftp_site(db: &TestDb, disk_mb: u64) -> Option<Site> {
    if !sftp::available() {
        eprintln!("skipped: sftp, ssh-keygen or sshpass is not installed");
        return None;
    }
    let handle = db.connect().await;
    let new_user = |name: &str| NewUser {
        username: name.into(),
        ..NewUser::default()
    };
    let alice = create_user(&handle, &new_user("alice"), None, &Actor::system())
        .await
        .expect("alice");
    let bob = create_user(&handle, &new_user("bob"), None, &Actor::system())
        .await
        .expect("bob");
    // What both hold on servers: an owner does what their roles allow, a
    // subuser what their grant and their roles both allow.
    let players: Vec<String> = Permission::for_subusers()
        .map(|p| p.as_str().to_owned())
        .collect();
    let role = create_role(
        &handle,
        "players",
        "Play on servers",
        &players,
        &Actor::system(),
    )
    .await
    .expect("a role");
    for user in [&alice, &bob] {
        assign_role(&handle, &user.id, &role, &Actor::system())
            .await
            .expect("assigned");
    }
    handle.close().await;
    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    let server_permissions: Vec<&str> =
        Permission::for_subusers().map(Permission::as_str).collect();
    let tokens = Tokens::from_principals([
        (
            ADMIN,
            Principal::new("sftp-admin").with_permissions(all.clone()),
        ),
        (
            PLUGIN_ADMIN,
            Principal::new("sftp-admin").with_permissions(all),
        ),
        (
            ALICE,
            Principal::new(alice.id.clone()).with_permissions(server_permissions.clone()),
        ),
        (
            BOB,
            Principal::new(bob.id.clone()).with_permissions(server_permissions),
        ),
    ]);
    let providers = ProviderRegistry::new();
    let panel = cap_panel::Panel::builder(db.config())
        .identity(providers.clone(), IdentityOptions::default())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    let database = panel.state().db().clone();
    let component = std::sync::Arc::<[u8]>::from(cap_e2e::component("local-password"));
    let plugin = load_local_password(
        &crate::identity::runtime(),
        &database,
        &crate::identity::local_password_manifest(),
        component,
    )
    .await
    .expect("local-password loads");
    providers.insert(plugin);
    let identity = panel.state().identity().expect("identity is on");
    for (user, pw) in [(&alice, ALICE_PASSWORD), (&bob, BOB_PASSWORD)] {
        passwords::set_password(identity, user, pw, &SetBy::Admin, false, &Actor::system())
            .await
            .expect("a password");
    }
    install_and_activate(&panel, "test-game").await;
    let admin = |method, path: String, body| {
        let panel = &panel;
        async move { json_of(call(panel, method, &path, Some(ADMIN), body).await, 201).await }
    };
    let node = admin(Method::POST, "/api/v1/nodes".into(), Some(json!({"name": "n1", "address": "127.0.0.1", "memory_mb": 8192, "disk_mb": 10000, "cpu_percent": 400}))).await;
    let node_id = node["id"].as_str().expect("id").to_owned();
    admin(
        Method::POST,
        format!("/api/v1/nodes/{node_id}/allocations"),
        Some(json!({"ip": "127.0.0.1", "ports": [free_port()]})),
    )
    .await;
    let token = admin(
        Method::POST,
        format!("/api/v1/nodes/{node_id}/registration-tokens"),
        Some(json!({})),
    )
    .await;
    let agent_dir = tempfile::tempdir().expect("a temporary directory");
    let agent = start_agent(
        &panel,
        agent_dir.path(),
        Some(token["token"].as_str().expect("token").to_owned()),
    )
    .await;
    let port = agent.sftp_addr.expect("the test Agent serves SFTP").port();
    node_online(&panel, &node_id, true).await;
    let server = admin(
        Method::POST,
        "/api/v1/servers".into(),
        Some(json!({
            "name": "sftp",
            "node_id": node_id,
            "owner_id": alice.id,
            "game": {"plugin": "test-game"},
            "variables": {"READY_DELAY_MS": "100"},
            "limits": {"memory_mb": 512, "disk_mb": disk_mb, "cpu_percent": 100}
        })),
    )
    .await;
    let server_id = server["id"].as_str().expect("id").to_owned();
    let installed = install(&panel, &server_id).await;
    assert_eq!(installed["state"], "done", "{installed:#}");
    Some(Site {
        panel: Some(panel),
        _agent: agent,
        agent_dir,
        local: tempfile::tempdir().expect("a directory"),
        port,
        server_id,
        alice,
        bob,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_signs_in_with_a_password_and_uploads_downloads_renames_and_removes_a_file() {
    let db = TestDb::sqlite().await;
    let Some(site) = sftp_site(&db, 0).await else {
        return;
    };
    std::fs::write(site.local.path().join("up.txt"), "uploaded over sftp").expect("a file");
    let run = site
        .sftp(&site.alice, password(ALICE_PASSWORD), "put up.txt\nmkdir world\nrename up.txt world/moved.txt\nls -l world\nget world/moved.txt down.txt\nchmod 600 world/moved.txt\n")
        .await;
    assert!(run.success, "{}", run.output);
    assert!(run.output.contains("moved.txt"), "{}", run.output);
    let moved = site.server_dir().join("world/moved.txt");
    assert_eq!(
        std::fs::read_to_string(&moved).expect("on the node"),
        "uploaded over sftp"
    );
    assert_eq!(
        std::fs::read_to_string(site.local.path().join("down.txt")).expect("downloaded"),
        "uploaded over sftp"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&moved)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let run = site
        .sftp(
            &site.alice,
            password(ALICE_PASSWORD),
            "rm world/moved.txt\nrmdir world\n",
        )
        .await;
    assert!(run.success, "{}", run.output);
    assert!(!site.server_dir().join("world").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_signs_in_with_a_stored_key_and_a_key_not_on_the_account_is_refused() {
    let db = TestDb::sqlite().await;
    let Some(site) = sftp_site(&db, 0).await else {
        return;
    };
    let stored = site.add_key(ALICE, "laptop").await;
    let run = site
        .sftp(&site.alice, Login::Key(stored.clone()), "ls\n")
        .await;
    assert!(run.success, "{}", run.output);
    let stranger = sftp::keygen(site.local.path(), "stranger");
    let run = site.sftp(&site.alice, Login::Key(stranger), "ls\n").await;
    assert!(!run.success, "{}", run.output);
    // Alice's key is hers: bob cannot sign in with it.
    let run = site
        .sftp(&site.bob, Login::Key(stored.clone()), "ls\n")
        .await;
    assert!(!run.success, "{}", run.output);
    // A removed key signs in no more.
    let keys = json_of(
        call(
            site.panel(),
            Method::GET,
            "/api/v1/account/ssh-keys",
            Some(ALICE),
            None,
        )
        .await,
        200,
    )
    .await;
    // By its fingerprint (percent-encoded: it holds `/` and `+`).
    let fingerprint = keys["items"][0]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .replace('/', "%2F")
        .replace('+', "%2B");
    let path = format!("/api/v1/account/ssh-keys/{fingerprint}");
    let response = call(site.panel(), Method::DELETE, &path, Some(ALICE), None).await;
    assert_eq!(response.status(), 204);
    let run = site.sftp(&site.alice, Login::Key(stored), "ls\n").await;
    assert!(!run.success, "{}", run.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_a_username_naming_no_server_are_refused() {
    let db = TestDb::sqlite().await;
    let Some(site) = sftp_site(&db, 0).await else {
        return;
    };
    let run = site
        .sftp(&site.alice, password("not-the-password"), "ls\n")
        .await;
    assert!(!run.success, "{}", run.output);
    let local = site.local.path();
    for user in ["alice.00000000", "alice", "nobody.deadbeef"] {
        let run = sftp::run(site.port, user, &password(ALICE_PASSWORD), local, "ls\n").await;
        assert!(!run.success, "{user}: {}", run.output);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subuser_without_file_sftp_is_refused_and_one_with_it_gets_only_their_file_permissions() {
    let db = TestDb::sqlite().await;
    let Some(site) = sftp_site(&db, 0).await else {
        return;
    };
    let subusers = format!("/api/v1/servers/{}/subusers", site.server_id);
    let grant = |permissions: Value| json!({"user_id": site.bob.id, "permissions": permissions});
    json_of(
        call(
            site.panel(),
            Method::POST,
            &subusers,
            Some(ADMIN),
            Some(grant(json!(["file.read", "file.read-content"]))),
        )
        .await,
        201,
    )
    .await;
    let run = site.sftp(&site.bob, password(BOB_PASSWORD), "ls\n").await;
    assert!(!run.success, "{}", run.output);
    // The server's answer shows the SFTP address only to who may use it.
    let server_path = format!("/api/v1/servers/{}", site.server_id);
    let server = json_of(
        call(site.panel(), Method::GET, &server_path, Some(BOB), None).await,
        200,
    )
    .await;
    assert!(server.get("sftp").is_none(), "{server:#}");
    let path = format!("{subusers}/{}", site.bob.id);
    let response = call(
        site.panel(),
        Method::PATCH,
        &path,
        Some(ADMIN),
        Some(json!({"permissions": ["file.sftp", "file.read", "file.read-content"]})),
    )
    .await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let server = json_of(
        call(site.panel(), Method::GET, &server_path, Some(BOB), None).await,
        200,
    )
    .await;
    assert_eq!(
        server["sftp"],
        json!({
            "host": "127.0.0.1",
            "port": site.port,
            "username": cap_protocol::sftp::sftp_username("bob", &site.server_id),
        }),
        "{server:#}"
    );
    std::fs::write(site.server_dir().join("motd.txt"), "hi").expect("a file");
    let run = site
        .sftp(&site.bob, password(BOB_PASSWORD), "ls\nget motd.txt\n")
        .await;
    assert!(run.success, "{}", run.output);
    std::fs::write(site.local.path().join("new.txt"), "x").expect("a file");
    for batch in [
        "put new.txt\n",
        "rm motd.txt\n",
        "rename motd.txt m.txt\n",
        "mkdir d\n",
    ] {
        let run = site.sftp(&site.bob, password(BOB_PASSWORD), batch).await;
        assert!(!run.success, "{batch}: {}", run.output);
    }
    assert!(!site.server_dir().join("new.txt").exists());
    assert!(site.server_dir().join("motd.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_in_the_server_directory_does_not_lead_outside() {
    let db = TestDb::sqlite().await;
    let Some(site) = sftp_site(&db, 0).await else {
        return;
    };
    let outside = tempfile::tempdir().expect("a directory");
    std::fs::write(outside.path().join("host-secret.txt"), "host secret").expect("a file");
    std::os::unix::fs::symlink(outside.path(), site.server_dir().join("escape")).expect("a link");
    std::os::unix::fs::symlink(
        outside.path().join("host-secret.txt"),
        site.server_dir().join("secret-link"),
    )
    .expect("a link");
    std::os::unix::fs::symlink("../../../..", site.server_dir().join("up")).expect("a link");
    std::fs::write(site.local.path().join("planted.txt"), "x").expect("a file");
    for batch in [
        "get escape/host-secret.txt\n",
        "get secret-link\n",
        "ls escape/host-secret.txt\n",
        "ls up/etc\n",
        "put planted.txt escape/planted.txt\n",
        "put planted.txt secret-link\n",
        "cd escape\n",
    ] {
        let run = site
            .sftp(&site.alice, password(ALICE_PASSWORD), batch)
            .await;
        assert!(!run.success, "{batch}: {}", run.output);
        assert!(
            !run.output.contains("host secret"),
            "{batch}: {}",
            run.output
        );
    }
    // Listing a link shows the link itself, never what it points at.
    for batch in ["ls -l escape\n", "ls -l up\n"] {
        let run = site
            .sftp(&site.alice, password(ALICE_PASSWORD), batch)
            .await;
        assert!(
            !run.output.contains("host-secret") && !run.output.contains("passwd"),
            "{batch}: {}",
            run.output
        );
    }
    assert!(!site.local.path().join("host-secret.txt").exists());
    assert!(!site.local.path().join("secret-link").exists());
    assert!(!outside.path().join("planted.txt").exists());
    assert_eq!(
        std::fs::read_to_string(outside.path().join("host-secret.txt")).expect("kept"),
        "host secret"
    );
    // Nor can a client make a link of its own.
    let run = site
        .sftp(
            &site.alice,
            password(ALICE_PASSWORD),
            "ln -s /etc/passwd mine\n",
        )
        .await;
    assert!(!run.success, "{}", run.output);
    assert!(std::fs::symlink_metadata(site.server_dir().join("mine")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_never_leaves_the_server_directory() {
    let db = TestDb::sqlite().await;
    let Some(site) = sftp_site(&db, 0).await else {
        return;
    };
    std::fs::write(site.server_dir().join("inside.txt"), "in").expect("a file");
    // `cd ..` from the top stays at the top: the listing is the server's.
    let run = site
        .sftp(
            &site.alice,
            password(ALICE_PASSWORD),
            "cd ..\ncd ../..\npwd\nls\n",
        )
        .await;
    assert!(run.success, "{}", run.output);
    assert!(run.output.contains("inside.txt"), "{}", run.output);
    assert!(
        run.output.contains("Remote working directory: /\n"),
        "{}",
        run.output
    );
    std::fs::write(site.local.path().join("x.txt"), "x").expect("a file");
    for batch in [
        "get ../../../../etc/passwd\n",
        "get /../etc/hostname\n",
        "put x.txt ../../x.txt\n",
        "mkdir ../../d\n",
    ] {
        let run = site
            .sftp(&site.alice, password(ALICE_PASSWORD), batch)
            .await;
        assert!(!run.success, "{batch}: {}", run.output);
    }
    assert!(!site.local.path().join("passwd").exists());
    assert!(!site.local.path().join("hostname").exists());
    assert!(!site.agent_dir.path().join("x.txt").exists());
    assert!(!site.agent_dir.path().join("d").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_over_the_disk_limit_fails() {
    let db = TestDb::sqlite().await;
    let Some(site) = sftp_site(&db, 1).await else {
        return;
    };
    std::fs::write(site.local.path().join("small.bin"), vec![7u8; 1024]).expect("a file");
    std::fs::write(
        site.local.path().join("big.bin"),
        vec![7u8; 3 * 1024 * 1024],
    )
    .expect("a file");
    let run = site
        .sftp(&site.alice, password(ALICE_PASSWORD), "put small.bin\n")
        .await;
    assert!(run.success, "{}", run.output);
    let run = site
        .sftp(&site.alice, password(ALICE_PASSWORD), "put big.bin\n")
        .await;
    assert!(!run.success, "{}", run.output);
    let written = std::fs::metadata(site.server_dir().join("big.bin")).map_or(0, |m| m.len());
    assert!(
        written <= 1024 * 1024,
        "at most the limit was written: {written}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_totp_is_refused_a_password_but_allowed_a_key() {
    let db = TestDb::sqlite().await;
    let Some(site) = sftp_site(&db, 0).await else {
        return;
    };
    let key = site.add_key(ALICE, "laptop").await;
    // The Panel's own handle: it holds the key TOTP secrets are sealed with.
    let handle = site.panel.as_ref().expect("running").state().db().clone();
    let enrollment =
        cap_panel::identity::totp::begin_enrollment(&handle, &site.alice, &Actor::system())
            .await
            .expect("enrollment");
    cap_panel::identity::totp::confirm_enrollment(
        &handle,
        &site.alice.id,
        &code_at(&enrollment.secret, 0),
        &Actor::system(),
    )
    .await
    .expect("confirmed");
    let run = site
        .sftp(&site.alice, password(ALICE_PASSWORD), "ls\n")
        .await;
    assert!(!run.success, "{}", run.output);
    let run = site.sftp(&site.alice, Login::Key(key), "ls\n").await;
    assert!(run.success, "{}", run.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_panel_is_offline_refuses_every_sign_in() {
    let db = TestDb::sqlite().await;
    let Some(mut site) = sftp_site(&db, 0).await else {
        return;
    };
    let run = site
        .sftp(&site.alice, password(ALICE_PASSWORD), "ls\n")
        .await;
    assert!(run.success, "{}", run.output);
    site.panel
        .take()
        .expect("the Panel")
        .stop()
        .await
        .expect("the Panel stops");
    let run = site
        .sftp(&site.alice, password(ALICE_PASSWORD), "ls\n")
        .await;
    assert!(!run.success, "{}", run.output);
}

// ----- the SSH key routes, on every database -----

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID48O9Jd5boJ7wmUQKccM7kuYpvxsXrwlhY/ed5g/LG/ alice@laptop";
const ED25519_FINGERPRINT: &str = "SHA256:lU6yEfSmdu8TqWZ5y9Unj+ZdGdnyt+4KtiLsypefLHE";

async fn keys_panel(db: &TestDb) -> RunningPanel {
    let ids = db.create_users(&["keys-alice", "keys-bob"]).await;
    let tokens = Tokens::from_principals([
        (ALICE, Principal::new(ids[0].clone())),
        (BOB, Principal::new(ids[1].clone())),
    ]);
    cap_panel::Panel::builder(db.config())
        .authenticator(tokens)
        .bind()
        .await
        .expect("the Panel starts")
        .spawn()
}

on_every_database! {
    async fn ssh_keys_are_added_listed_and_removed_and_bad_or_duplicate_keys_are_refused(db: &TestDb) {
        let panel = keys_panel(db).await;
        let keys = "/api/v1/account/ssh-keys";
        let add = |token: &'static str, body: Value| {
            let panel = &panel;
            async move { call(panel, Method::POST, keys, Some(token), Some(body)).await }
        };
        let added = json_of(add(ALICE, json!({"name": "laptop", "public_key": format!("{ED25519}\n")})).await, 201).await;
        assert_eq!(added["fingerprint"], ED25519_FINGERPRINT);
        assert_eq!(added["public_key"], ED25519);
        assert_eq!(added["name"], "laptop");

        let problem = expect_problem(add(ALICE, json!({"name": "again", "public_key": ED25519})).await, 409, "ssh-key-exists").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains(ED25519_FINGERPRINT)), "{problem:#}");
        let twice = format!("{ED25519}\n{ED25519}");
        for bad in ["", "ssh-ed25519", "ssh-ed25519 AAAA", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP", twice.as_str()] {
            expect_problem(add(ALICE, json!({"name": "bad", "public_key": bad})).await, 422, "invalid-ssh-key").await;
        }
        expect_problem(add(ALICE, json!({"name": " ", "public_key": ED25519})).await, 422, "validation-failed").await;
        // Another user may hold the same key.
        json_of(add(BOB, json!({"name": "shared", "public_key": ED25519})).await, 201).await;

        let listed = json_of(call(&panel, Method::GET, keys, Some(ALICE), None).await, 200).await;
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed:#}");
        // Bob cannot remove alice's key, by id or by fingerprint: it is not found.
        let id = added["id"].as_str().expect("id");
        let bob_keys = json_of(call(&panel, Method::GET, keys, Some(BOB), None).await, 200).await;
        let bobs_id = bob_keys["items"][0]["id"].as_str().expect("id").to_owned();
        let response = call(&panel, Method::DELETE, &format!("{keys}/{id}"), Some(BOB), None).await;
        expect_problem(response, 404, "not-found").await;
        let response = call(&panel, Method::DELETE, &format!("{keys}/{bobs_id}"), Some(ALICE), None).await;
        expect_problem(response, 404, "not-found").await;
        let listed = json_of(call(&panel, Method::GET, keys, Some(ALICE), None).await, 200).await;
        assert_eq!(listed["items"][0]["id"], id);

        let response = call(&panel, Method::DELETE, &format!("{keys}/{ED25519_FINGERPRINT}"), Some(ALICE), None).await;
        assert_eq!(response.status(), 204);
        let response = call(&panel, Method::DELETE, &format!("{keys}/{id}"), Some(ALICE), None).await;
        expect_problem(response, 404, "not-found").await;
        let listed = json_of(call(&panel, Method::GET, keys, Some(ALICE), None).await, 200).await;
        assert_eq!(listed["items"], json!([]));
        // Bob's copy stays.
        let bob_keys = json_of(call(&panel, Method::GET, keys, Some(BOB), None).await, 200).await;
        assert_eq!(bob_keys["items"].as_array().map(Vec::len), Some(1));
        panel.stop().await.expect("the Panel stops");
    }
}
