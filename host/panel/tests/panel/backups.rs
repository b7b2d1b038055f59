//! Backups end to end: the Panel's `/servers/{id}/backups` routes, a real
//! Agent making tar.zst archives of a real server's directory, downloads
//! through signed URLs (from the Agent, or presigned on a moto S3 server
//! the test starts), restores, the limit and its rotation, locks, and who
//! may do what.

use std::time::Duration;

use cap_panel::db::Actor;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::agents::{eventually_within, node_online};
use crate::files::{ADMIN, Files, SUB, files_site};
use crate::nodes::{call, json_of};
use crate::support::{TestDb, client, expect_problem};

fn path(site: &Files, rest: &str) -> String {
    format!("/api/v1/servers/{}/backups{rest}", site.server_id)
}

async fn send(
    site: &Files,
    token: &str,
    method: Method,
    rest: &str,
    body: Option<Value>,
) -> reqwest::Response {
    call(&site.panel, method, &path(site, rest), Some(token), body).await
}

async fn set_limit(site: &Files, limit: u32) {
    let response = call(
        &site.panel,
        Method::PUT,
        &format!("/api/v1/servers/{}/backup-limit", site.server_id),
        Some(ADMIN),
        Some(json!({"limit": limit})),
    )
    .await;
    json_of(response, 200).await;
}

/// Asks for a backup and waits until the Agent reported it.
async fn backup(site: &Files, body: Value) -> Value {
    let started = json_of(send(site, ADMIN, Method::POST, "", Some(body)).await, 202).await;
    assert_eq!(started["state"], "pending", "{started:#}");
    let id = started["id"].as_str().expect("id").to_owned();
    let done = settled(site, &id, |b| b["state"] != "pending").await;
    assert_eq!(done["state"], "done", "{done:#}");
    done
}

/// The backup once `ready` holds.
async fn settled(site: &Files, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually_within("the Agent's report", Duration::from_secs(60), || async {
        let backup = json_of(
            send(site, ADMIN, Method::GET, &format!("/{id}"), None).await,
            200,
        )
        .await;
        ready(&backup).then_some(backup)
    })
    .await
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| b["id"].as_str().expect("id").to_owned())
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

crate::support::on_every_database! {
    async fn a_backup_is_made_downloaded_with_its_digest_and_restored_after_a_file_is_deleted(db: &TestDb) {
        let site = files_site(db, 1000).await;
        set_limit(&site, 3).await;
        let dir = site.server_dir();
        std::fs::create_dir_all(dir.join("world")).expect("a folder");
        std::fs::write(dir.join("world/level.dat"), vec![7u8; 200_000]).expect("a file");
        std::fs::write(dir.join("latest.log"), b"noise").expect("a log");

        let done = backup(&site, json!({"name": "before the update", "ignored": "*.log\n"})).await;
        assert_eq!(done["name"], "before the update");
        assert_eq!(done["ignored"], json!(["*.log"]));
        assert_eq!(done["target"], "local");
        let digest = done["sha256"].as_str().expect("a digest").to_owned();
        assert_eq!(digest.len(), 64);
        let id = done["id"].as_str().expect("id").to_owned();
        // The archive lives beside the servers, not inside one.
        let archive = site.agent_dir.path().join("backups").join(&site.server_id).join(format!("{id}.tar.zst"));
        assert!(archive.is_file(), "{}", archive.display());

        // The signed URL serves the archive itself, byte for byte, and ranges.
        let url = json_of(send(&site, ADMIN, Method::POST, &format!("/{id}/download"), None).await, 200).await;
        let url = url["url"].as_str().expect("url").to_owned();
        let bytes = client().get(&url).send().await.expect("download").bytes().await.expect("body");
        assert_eq!(bytes.len() as u64, done["bytes"].as_u64().expect("bytes"));
        assert_eq!(sha256(&bytes), digest);
        let part = client().get(&url).header("range", "bytes=0-3").send().await.expect("a range");
        assert_eq!(part.status(), 206);
        assert_eq!(&part.bytes().await.expect("body")[..], &bytes[..4]);
        // A file-download grant does not open backups, nor the reverse.
        let forged = url.replace("/api/backups/download", "/api/files/download");
        assert_eq!(client().get(&forged).send().await.expect("refused").status(), 403);

        // A restore brings the deleted file back, and truncate removes
        // what came after.
        std::fs::remove_file(dir.join("world/level.dat")).expect("deleted");
        std::fs::write(dir.join("added-later.txt"), b"x").expect("a file");
        let restoring = json_of(send(&site, ADMIN, Method::POST, &format!("/{id}/restore"), Some(json!({"truncate": true}))).await, 202).await;
        assert_eq!(restoring["restore"]["state"], "running", "{restoring:#}");
        let restored = settled(&site, &id, |b| b["restore"]["state"] != "running").await;
        assert_eq!(restored["restore"]["state"], "done", "{restored:#}");
        assert_eq!(std::fs::read(dir.join("world/level.dat")).expect("back"), vec![7u8; 200_000]);
        assert!(!dir.join("added-later.txt").exists());
        assert!(!dir.join("latest.log").exists(), "ignored files are not in the backup");

        // The audit log has the story.
        let handle = db.connect().await;
        let page = handle.events().query(&Default::default()).await.expect("events");
        let kinds: Vec<&str> = page.events.iter().map(|e| e.kind.as_str()).collect();
        for kind in ["backup.started", "backup.completed", "backup.restore.started", "backup.restore.finished"] {
            assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
        }
        handle.close().await;
    }
}

crate::support::on_every_database! {
    async fn the_limit_rotates_out_the_oldest_unlocked_backup_and_locked_ones_stay(db: &TestDb) {
        let site = files_site(db, 1000).await;
        std::fs::write(site.server_dir().join("a.txt"), b"a").expect("a file");
        // No limit set: backups are off, and say so.
        let response = send(&site, ADMIN, Method::POST, "", Some(json!({}))).await;
        expect_problem(response, 409, "backups-disabled").await;

        set_limit(&site, 2).await;
        let first = backup(&site, json!({"name": "first"})).await;
        let second = backup(&site, json!({"name": "second"})).await;
        let (first, second) = (first["id"].as_str().expect("id").to_owned(), second["id"].as_str().expect("id").to_owned());
        let locked = json_of(send(&site, ADMIN, Method::POST, &format!("/{first}/lock"), None).await, 200).await;
        assert_eq!(locked["locked"], true);

        // At the limit: the oldest unlocked one (the second) makes room.
        let third = backup(&site, json!({"name": "third"})).await;
        let third = third["id"].as_str().expect("id").to_owned();
        let list = json_of(send(&site, ADMIN, Method::GET, "", None).await, 200).await;
        assert_eq!(ids(&list), [third.clone(), first.clone()]);
        assert_eq!(list["limit"], 2);
        let archives = site.agent_dir.path().join("backups").join(&site.server_id);
        eventually_within("the rotated archive to go", Duration::from_secs(30), || async {
            (!archives.join(format!("{second}.tar.zst")).exists()).then_some(())
        })
        .await;
        let response = send(&site, ADMIN, Method::GET, &format!("/{second}"), None).await;
        expect_problem(response, 404, "backup-not-found").await;

        // Locked: not deleted. Everything locked: no room, refused.
        let response = send(&site, ADMIN, Method::DELETE, &format!("/{first}"), None).await;
        expect_problem(response, 409, "backup-locked").await;
        json_of(send(&site, ADMIN, Method::POST, &format!("/{third}/lock"), None).await, 200).await;
        let response = send(&site, ADMIN, Method::POST, "", Some(json!({}))).await;
        expect_problem(response, 409, "backup-limit-reached").await;
        assert!(archives.join(format!("{first}.tar.zst")).exists());

        // Unlocked, it goes, archive and all.
        let unlocked = json_of(send(&site, ADMIN, Method::POST, &format!("/{first}/lock"), None).await, 200).await;
        assert_eq!(unlocked["locked"], false);
        let response = send(&site, ADMIN, Method::DELETE, &format!("/{first}"), None).await;
        assert_eq!(response.status(), 204);
        eventually_within("the deleted archive to go", Duration::from_secs(30), || async {
            (!archives.join(format!("{first}.tar.zst")).exists()).then_some(())
        })
        .await;
        let list = json_of(send(&site, ADMIN, Method::GET, "", None).await, 200).await;
        assert_eq!(ids(&list), [third]);
    }
}

#[tokio::test]
async fn each_backup_permission_gates_its_routes_and_other_users_do_not_see_the_server() {
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    set_limit(&site, 5).await;
    let done = backup(&site, json!({"name": "one"})).await;
    let id = done["id"].as_str().expect("id").to_owned();

    // Not a subuser yet: the server does not exist for them.
    let response = send(&site, SUB, Method::GET, "", None).await;
    expect_problem(response, 404, "not-found").await;
    let response = send(&site, SUB, Method::POST, "", Some(json!({}))).await;
    expect_problem(response, 404, "not-found").await;

    let subusers = format!("/api/v1/servers/{}/subusers", site.server_id);
    let response = call(
        &site.panel,
        Method::POST,
        &subusers,
        Some(ADMIN),
        Some(json!({"user_id": site.sub_id, "permissions": ["backup.read"]})),
    )
    .await;
    json_of(response, 201).await;
    let grant = |permissions: Vec<&'static str>| {
        let site = &site;
        let subusers = subusers.clone();
        async move {
            let response = call(
                &site.panel,
                Method::PATCH,
                &format!("{subusers}/{}", site.sub_id),
                Some(ADMIN),
                Some(json!({"permissions": permissions})),
            )
            .await;
            json_of(response, 200).await;
        }
    };
    let status = |method: Method, rest: String, body: Option<Value>| {
        let site = &site;
        async move { send(site, SUB, method, &rest, body).await.status().as_u16() }
    };
    // backup.read: list and get, nothing else.
    assert_eq!(status(Method::GET, String::new(), None).await, 200);
    assert_eq!(status(Method::GET, format!("/{id}"), None).await, 200);
    let response = send(&site, SUB, Method::POST, "", Some(json!({}))).await;
    let problem = expect_problem(response, 403, "forbidden").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("backup.create")),
        "{problem:#}"
    );
    assert_eq!(
        status(Method::POST, format!("/{id}/download"), None).await,
        403
    );
    assert_eq!(
        status(Method::POST, format!("/{id}/restore"), Some(json!({}))).await,
        403
    );
    assert_eq!(status(Method::POST, format!("/{id}/lock"), None).await, 403);
    assert_eq!(status(Method::DELETE, format!("/{id}"), None).await, 403);
    // backup.download, backup.delete (lock and delete), backup.create.
    grant(vec!["backup.download"]).await;
    assert_eq!(
        status(Method::POST, format!("/{id}/download"), None).await,
        200
    );
    assert_eq!(status(Method::GET, String::new(), None).await, 403);
    grant(vec!["backup.delete"]).await;
    assert_eq!(status(Method::POST, format!("/{id}/lock"), None).await, 200);
    assert_eq!(status(Method::POST, format!("/{id}/lock"), None).await, 200);
    grant(vec!["backup.create"]).await;
    assert_eq!(
        status(
            Method::POST,
            String::new(),
            Some(json!({"name": "by the subuser"}))
        )
        .await,
        202
    );
    // Only administrators set limits.
    let response = call(
        &site.panel,
        Method::PUT,
        &format!("/api/v1/servers/{}/backup-limit", site.server_id),
        Some(SUB),
        Some(json!({"limit": 100})),
    )
    .await;
    expect_problem(response, 403, "forbidden").await;
    grant(vec!["backup.delete"]).await;
    eventually_within("the subuser's backup", Duration::from_secs(60), || async {
        let list = json_of(send(&site, ADMIN, Method::GET, "", None).await, 200).await;
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|b| b["state"] != "pending")
            .then_some(())
    })
    .await;
    assert_eq!(status(Method::DELETE, format!("/{id}"), None).await, 204);
}

#[tokio::test]
async fn a_running_restore_or_backup_fails_when_its_node_goes_offline_and_offline_nodes_answer_503()
{
    let db = TestDb::sqlite().await;
    let mut site = files_site(&db, 1000).await;
    set_limit(&site, 5).await;
    let done = backup(&site, json!({"name": "one"})).await;
    let id = done["id"].as_str().expect("id").to_owned();
    // A backup the Agent never heard of, as if it were running when the
    // link dropped.
    let handle = db.connect().await;
    cap_panel::backups::insert(
        &handle,
        &cap_panel::backups::NewBackup {
            id: "bkp_inflight".into(),
            server_id: site.server_id.clone(),
            node_id: site.node_id.clone(),
            name: "in flight".into(),
            ignored: Vec::new(),
            target: "local".into(),
            locked: false,
        },
        &Actor::system(),
    )
    .await
    .expect("recorded");

    site.agent.take().expect("running").stop().await;
    node_online(&site.panel, &site.node_id, false).await;
    let failed = settled(&site, "bkp_inflight", |b| b["state"] != "pending").await;
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["failure"]
            .as_str()
            .is_some_and(|f| f.contains("went offline")),
        "{failed:#}"
    );
    let list = json_of(send(&site, ADMIN, Method::GET, "", None).await, 200).await;
    assert_eq!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|b| b["state"] == "done")
            .count(),
        1,
        "a failed backup is never listed as done"
    );

    for (method, rest, body) in [
        (Method::POST, String::new(), Some(json!({}))),
        (Method::POST, format!("/{id}/restore"), Some(json!({}))),
        (Method::POST, format!("/{id}/download"), None),
        (Method::DELETE, format!("/{id}"), None),
    ] {
        let response = send(&site, ADMIN, method, &rest, body).await;
        expect_problem(response, 503, "node-offline").await;
    }
    // A failed backup of an offline node has no archive: it can go.
    let response = send(&site, ADMIN, Method::DELETE, "/bkp_inflight", None).await;
    assert_eq!(response.status(), 204);
    handle.close().await;
}

/// A moto S3 server on a free loopback port, stopped when dropped.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Moto {
        let port = crate::support::free_port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "moto's S3 server (pip install 'moto[server]') must be installed for this test",
            );
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        eventually_within("moto to listen", Duration::from_secs(60), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(drop)
        })
        .await;
        let response = client()
            .put(format!("{}/backups", moto.endpoint))
            .send()
            .await
            .expect("a bucket");
        assert!(response.status().is_success(), "{}", response.status());
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn backups_go_to_s3_compatible_storage_with_a_sealed_secret_and_download_from_a_presigned_url()
 {
    let moto = Moto::start().await;
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    set_limit(&site, 5).await;
    let storage = json!({
        "endpoint": moto.endpoint, "region": "us-east-1", "bucket": "backups", "prefix": "panel-1",
        "accessKeyId": "testing", "secretAccessKey": "moto-secret", "pathStyle": true,
    });
    let shown = json_of(
        call(
            &site.panel,
            Method::PUT,
            "/api/v1/backup-storage",
            Some(ADMIN),
            Some(storage),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(shown["hasSecret"], true);
    assert!(!shown.to_string().contains("moto-secret"), "{shown:#}");
    let stored = db.fetch_texts("SELECT secret FROM backup_storage").await;
    assert!(
        !stored[0].contains("moto-secret"),
        "the secret is sealed at rest"
    );
    let response = call(
        &site.panel,
        Method::PUT,
        "/api/v1/backup-storage",
        Some(ADMIN),
        Some(json!({"endpoint": "ftp://x", "region": "", "bucket": "b", "accessKeyId": "k"})),
    )
    .await;
    expect_problem(response, 422, "validation-failed").await;

    let dir = site.server_dir();
    std::fs::write(dir.join("level.dat"), vec![3u8; 100_000]).expect("a file");
    let done = backup(&site, json!({"name": "to s3"})).await;
    assert_eq!(done["target"], "s3");
    let id = done["id"].as_str().expect("id").to_owned();
    assert!(
        !site
            .agent_dir
            .path()
            .join("backups")
            .join(&site.server_id)
            .join(format!("{id}.tar.zst"))
            .exists()
    );

    let url = json_of(
        send(&site, ADMIN, Method::POST, &format!("/{id}/download"), None).await,
        200,
    )
    .await;
    let url = url["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with(&moto.endpoint) && url.contains("X-Amz-Signature"),
        "{url}"
    );
    let bytes = client()
        .get(&url)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("body");
    assert_eq!(sha256(&bytes), done["sha256"].as_str().expect("digest"));

    std::fs::remove_file(dir.join("level.dat")).expect("deleted");
    json_of(
        send(
            &site,
            ADMIN,
            Method::POST,
            &format!("/{id}/restore"),
            Some(json!({"truncate": false})),
        )
        .await,
        202,
    )
    .await;
    let restored = settled(&site, &id, |b| b["restore"]["state"] != "running").await;
    assert_eq!(restored["restore"]["state"], "done", "{restored:#}");
    assert_eq!(
        std::fs::read(dir.join("level.dat")).expect("back"),
        vec![3u8; 100_000]
    );

    // Deleting it removes the object from the bucket.
    let response = send(&site, ADMIN, Method::DELETE, &format!("/{id}"), None).await;
    assert_eq!(response.status(), 204);
    let gone = client().get(&url).send().await.expect("asked");
    assert_eq!(gone.status(), 404);

    // The settings go once, and new backups stay on the node.
    let storage = |method: Method| {
        let site = &site;
        async move {
            call(
                &site.panel,
                method,
                "/api/v1/backup-storage",
                Some(ADMIN),
                None,
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(storage(Method::DELETE).await, 204);
    assert_eq!(storage(Method::DELETE).await, 404);
    assert_eq!(storage(Method::GET).await, 404);
    let local = backup(&site, json!({"name": "back on the node"})).await;
    assert_eq!(local["target"], "local", "{local:#}");
}

#[tokio::test]
async fn every_backup_event_reaches_a_0_2_hook_plugin_whose_veto_changes_nothing() {
    use cap_panel::plugin_kv::DbKv;
    use cap_runtime::capabilities::kv::KvStore;
    const RECORDER: &str = "event-recorder";
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    set_limit(&site, 1).await;
    std::fs::write(site.server_dir().join("world.dat"), b"blocks").expect("a file");
    let plugins = site.panel.state().plugins().expect("a plugin manager");
    crate::hook_events::install(plugins, RECORDER).await;
    plugins
        .activate(RECORDER, &Actor::system())
        .await
        .expect("the recorder activates");
    let kv = DbKv::new(site.panel.state().db().clone());
    // What the recorder heard, by phase, kind and subject (the backup id).
    let heard = |phase: &'static str, kind: &'static str, id: String| {
        let kv = kv.clone();
        async move {
            kv.get(RECORDER, &format!("{phase}/{kind}/{id}"))
                .await
                .expect("the store reads")
                .is_some()
        }
    };
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
    let deny = |kinds: &'static str| {
        let values =
            std::collections::BTreeMap::from([("deny-kinds".to_owned(), Some(kinds.to_owned()))]);
        async move {
            plugins
                .set_config(RECORDER, &values, &Actor::system())
                .await
                .expect("configured");
        }
    };

    // Create: before, after; then complete (after only) once it is done.
    let first = backup(&site, json!({"name": "first"})).await;
    let first = first["id"].as_str().expect("id").to_owned();
    assert!(heard("before", "backup.create", first.clone()).await);
    after("backup.create", first.clone()).await;
    after("backup.complete", first.clone()).await;
    assert!(!heard("before", "backup.complete", first.clone()).await);

    // Restore: before and after.
    let response = send(
        &site,
        ADMIN,
        Method::POST,
        &format!("/{first}/restore"),
        Some(json!({})),
    )
    .await;
    json_of(response, 202).await;
    assert!(heard("before", "backup.restore", first.clone()).await);
    after("backup.restore", first.clone()).await;
    settled(&site, &first, |b| b["restore"]["state"] != "running").await;

    // Vetoed: a create records nothing, and a create whose rotation would
    // delete a backup is refused when that delete is vetoed.
    deny("backup.create").await;
    let response = send(&site, ADMIN, Method::POST, "", Some(json!({}))).await;
    expect_problem(response, 403, "hook-denied").await;
    deny("backup.delete").await;
    let response = send(&site, ADMIN, Method::POST, "", Some(json!({}))).await;
    expect_problem(response, 403, "hook-denied").await;
    let response = send(&site, ADMIN, Method::DELETE, &format!("/{first}"), None).await;
    expect_problem(response, 403, "hook-denied").await;
    deny("backup.restore").await;
    let response = send(
        &site,
        ADMIN,
        Method::POST,
        &format!("/{first}/restore"),
        Some(json!({})),
    )
    .await;
    expect_problem(response, 403, "hook-denied").await;
    let list = json_of(send(&site, ADMIN, Method::GET, "", None).await, 200).await;
    assert_eq!(
        ids(&list),
        std::slice::from_ref(&first),
        "vetoes record nothing"
    );
    assert_eq!(list["items"][0]["restore"]["state"], "done", "{list:#}");
    let archive = site
        .agent_dir
        .path()
        .join("backups")
        .join(&site.server_id)
        .join(format!("{first}.tar.zst"));
    assert!(archive.is_file());

    // Allowed again: the delete goes through, and is heard after.
    deny("").await;
    let response = send(&site, ADMIN, Method::DELETE, &format!("/{first}"), None).await;
    assert_eq!(response.status(), 204);
    after("backup.delete", first.clone()).await;
}

#[tokio::test]
async fn deleting_a_server_deletes_its_backups_on_the_node_and_in_the_panel() {
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    set_limit(&site, 2).await;
    std::fs::write(site.server_dir().join("world.dat"), b"blocks").expect("a file");
    let done = backup(&site, json!({"name": "last one"})).await;
    let id = done["id"].as_str().expect("id").to_owned();
    let archives = site.agent_dir.path().join("backups").join(&site.server_id);
    assert!(archives.join(format!("{id}.tar.zst")).is_file());

    let server = format!("/api/v1/servers/{}", site.server_id);
    let response = call(&site.panel, Method::DELETE, &server, Some(ADMIN), None).await;
    assert!(response.status().is_success(), "{}", response.status());
    eventually_within("the server to go", Duration::from_secs(60), || async {
        let response = call(&site.panel, Method::GET, &server, Some(ADMIN), None).await;
        (response.status() == 404).then_some(())
    })
    .await;
    eventually_within("its archives to go", Duration::from_secs(30), || async {
        (!archives.exists()).then_some(())
    })
    .await;
    let handle = db.connect().await;
    eventually_within("its backup rows to go", Duration::from_secs(30), || async {
        let left = cap_panel::backups::list(&handle, &site.server_id)
            .await
            .expect("listed");
        left.is_empty().then_some(())
    })
    .await;
    handle.close().await;
    let limit_rows = format!(
        "SELECT server_id FROM backup_limits WHERE server_id = '{}'",
        site.server_id
    );
    eventually_within(
        "its backup limit to go",
        Duration::from_secs(30),
        || async { db.fetch_texts(&limit_rows).await.is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_backup_while_another_runs_is_refused_and_so_is_a_restore() {
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    set_limit(&site, 5).await;
    std::fs::write(site.server_dir().join("world.dat"), b"blocks").expect("a file");
    let done = backup(&site, json!({"name": "done"})).await;
    let done = done["id"].as_str().expect("id").to_owned();
    // A backup still being made: recorded pending, as the Agent has not
    // answered yet (written straight to the database, so that the test
    // does not race a real Agent's answer).
    let node = json_of(
        call(
            &site.panel,
            Method::GET,
            &format!("/api/v1/servers/{}", site.server_id),
            Some(ADMIN),
            None,
        )
        .await,
        200,
    )
    .await["node_id"]
        .as_str()
        .expect("a node")
        .to_owned();
    let handle = db.connect().await;
    cap_panel::backups::insert(
        &handle,
        &cap_panel::backups::NewBackup {
            id: "bkp_running".into(),
            server_id: site.server_id.clone(),
            node_id: node,
            name: "running".into(),
            ignored: Vec::new(),
            target: "local".into(),
            locked: false,
        },
        &Actor::system(),
    )
    .await
    .expect("recorded");
    handle.close().await;

    let response = send(&site, ADMIN, Method::POST, "", Some(json!({}))).await;
    let problem = expect_problem(response, 409, "backup-busy").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("a backup of this server is running")),
        "{problem:#}"
    );
    let response = send(
        &site,
        ADMIN,
        Method::POST,
        &format!("/{done}/restore"),
        Some(json!({})),
    )
    .await;
    expect_problem(response, 409, "backup-busy").await;
    let list = json_of(send(&site, ADMIN, Method::GET, "", None).await, 200).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list:#}");
    let restored = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|b| b["id"] == done.as_str())
        .expect("the done backup");
    assert!(
        restored["restore"].is_null(),
        "no restore started: {restored:#}"
    );
}
