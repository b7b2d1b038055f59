//! Server files end to end: the Panel's `/servers/{id}/files` routes, a
//! real Agent (`cap_agent::node`) with its file-transfer listener, and
//! contents moving between the client and the Agent through signed URLs,
//! never through the Panel.

use std::time::Duration;

use cap_agent::node::RunningNode;
use cap_panel::RunningPanel;
use cap_panel::db::Actor;
use cap_panel::http::Principal;
use cap_panel::identity::permissions::Permission;
use cap_panel::identity::users::{NewUser, create_user};
use reqwest::Method;
use serde_json::{Value, json};

use crate::agents::{eventually, install, node_online};
use crate::nodes::{call, json_of};
use crate::plugins::install_and_activate;
use crate::support::{TestDb, Tokens, client, expect_problem, free_port, start_agent};

/// Holds every permission.
pub(crate) const ADMIN: &str = "files-admin-token";
/// A user whose own credentials hold every server permission: what they
/// may do on the server is what their subuser grant says.
pub(crate) const SUB: &str = "files-subuser-token";

pub(crate) struct Files {
    pub(crate) panel: RunningPanel,
    pub(crate) agent: Option<RunningNode>,
    pub(crate) agent_dir: tempfile::TempDir,
    pub(crate) server_id: String,
    pub(crate) node_id: String,
    pub(crate) sub_id: String,
    /// The client for the Agent's signed URLs (one that trusts the test CA
    /// when the Agent serves TLS).
    pub(crate) http: reqwest::Client,
}

/// The Agent a files site runs.
pub(crate) enum SiteAgent<'a> {
    /// Native, plain HTTP transfers.
    Native,
    /// On the container runtime of a Podman service.
    Container(&'a cap_e2e::podman::PodmanService),
    /// Native, transfers over TLS with the test CA's server certificate.
    Tls(&'a cap_panel_test_support::smtp::TestCa),
}

impl Files {
    pub(crate) fn server_dir(&self) -> std::path::PathBuf {
        self.agent_dir.path().join("servers").join(&self.server_id)
    }

    pub(crate) fn path(&self, rest: &str) -> String {
        format!("/api/v1/servers/{}/files{rest}", self.server_id)
    }

    pub(crate) async fn call(
        &self,
        token: &str,
        method: Method,
        rest: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        call(&self.panel, method, &self.path(rest), Some(token), body).await
    }

    pub(crate) async fn ok(&self, method: Method, rest: &str, body: Option<Value>) -> Value {
        json_of(self.call(ADMIN, method, rest, body).await, 200).await
    }

    pub(crate) async fn list(&self, dir: &str) -> Vec<String> {
        let page = self.ok(Method::GET, &format!("?path={dir}"), None).await;
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["name"].as_str().expect("name").to_owned())
            .collect()
    }

    /// A signed URL for `op` (`upload`/`download`) on `path`, as `token`.
    pub(crate) async fn url(&self, token: &str, op: &str, path: &str, size: Option<u64>) -> String {
        let body = json!({"path": path, "size": size});
        let answer = json_of(
            self.call(token, Method::POST, &format!("/{op}"), Some(body))
                .await,
            200,
        )
        .await;
        answer["url"].as_str().expect("url").to_owned()
    }

    pub(crate) async fn upload(&self, path: &str, bytes: Vec<u8>) -> Value {
        let url = self
            .url(ADMIN, "upload", path, Some(bytes.len() as u64))
            .await;
        let response = self
            .http
            .put(&url)
            .body(bytes)
            .send()
            .await
            .expect("upload");
        json_of(response, 201).await
    }

    pub(crate) async fn download(&self, path: &str) -> Vec<u8> {
        let url = self.url(ADMIN, "download", path, None).await;
        let response = self.http.get(&url).send().await.expect("download");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body").to_vec()
    }
}

/// A Panel with test-game, a node whose Agent serves file transfers on
/// loopback, an installed test-game server, and a second user.
pub(crate) async fn files_site(db: &TestDb, disk_mb: u64) -> Files {
    files_site_with(db, disk_mb, SiteAgent::Native).await
}

/// [`files_site`] on the container runtime of `podman` when given.
pub(crate) async fn files_site_on(
    db: &TestDb,
    disk_mb: u64,
    podman: Option<&cap_e2e::podman::PodmanService>,
) -> Files {
    let agent = podman.map_or(SiteAgent::Native, SiteAgent::Container);
    files_site_with(db, disk_mb, agent).await
}

/// [`files_site`] with `agent`.
pub(crate) async fn files_site_with(db: &TestDb, disk_mb: u64, agent: SiteAgent<'_>) -> Files {
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
        (ADMIN, Principal::new("files-admin").with_permissions(all)),
        (
            SUB,
            Principal::new(sub.id.clone()).with_permissions(server_permissions),
        ),
        (
            crate::plugins::PLUGIN_ADMIN,
            Principal::new("files-admin")
                .with_permissions(Permission::ALL.iter().map(|p| p.as_str())),
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
    let token = token["token"].as_str().expect("token").to_owned();
    let mut http = client();
    let agent = match agent {
        SiteAgent::Native => start_agent(&panel, agent_dir.path(), Some(token)).await,
        SiteAgent::Container(podman) => {
            crate::support::start_container_agent(
                &panel,
                agent_dir.path(),
                Some(token),
                &podman.host(),
            )
            .await
        }
        SiteAgent::Tls(ca) => {
            http = trusting(ca);
            crate::support::start_tls_agent(
                &panel,
                agent_dir.path(),
                Some(token),
                cap_agent::node::FilesTls {
                    cert: ca.cert(),
                    key: ca.key(),
                },
            )
            .await
            .expect("the Agent starts with the test CA's certificate")
        }
    };
    assert!(
        agent.files_addr.is_some(),
        "the test Agent serves file transfers"
    );
    node_online(&panel, &node_id, true).await;
    let server = admin(
        Method::POST,
        "/api/v1/servers".into(),
        Some(json!({
            "name": "files",
            "node_id": node_id,
            "game": {"plugin": "test-game"},
            "variables": {"READY_DELAY_MS": "100"},
            "limits": {"memory_mb": 512, "disk_mb": disk_mb, "cpu_percent": 100}
        })),
    )
    .await;
    let server_id = server["id"].as_str().expect("id").to_owned();
    let installed = install(&panel, &server_id).await;
    assert_eq!(installed["state"], "done", "{installed:#}");
    let files = Files {
        panel,
        agent: Some(agent),
        agent_dir,
        server_id,
        node_id,
        sub_id: sub.id,
        http,
    };
    // The grant key reaches the Agent after its hello.
    eventually("the Agent to take grants", || async {
        let url = files.url(ADMIN, "upload", "/probe.txt", None).await;
        let status = files
            .http
            .put(&url)
            .body("x")
            .send()
            .await
            .expect("upload")
            .status();
        (status == 201).then_some(())
    })
    .await;
    files
}

#[tokio::test]
async fn the_file_manager_creates_uploads_lists_downloads_renames_copies_chmods_archives_and_deletes_through_a_real_agent()
 {
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    // A folder and two files in it, uploaded through signed URLs.
    let folder = site
        .ok(
            Method::POST,
            "/folders",
            Some(json!({"path": "/config/world"})),
        )
        .await;
    assert_eq!(folder["kind"], "directory");
    assert_eq!(folder["path"], "/config/world");
    let properties = b"motd=Hello\nmax-players=20\n".to_vec();
    let written = site
        .upload("/config/server.properties", properties.clone())
        .await;
    assert_eq!(written["size"], properties.len());
    assert_eq!(written["mime"], "text/plain");
    site.upload("/config/world/level.dat", vec![7u8; 300_000])
        .await;
    // The bytes are where a game server reads them, and read back the same.
    assert_eq!(
        std::fs::read(site.server_dir().join("config/server.properties")).expect("on disk"),
        properties
    );
    assert_eq!(site.download("/config/server.properties").await, properties);
    // Listing: directories first, with size, mode and time.
    let page = site.ok(Method::GET, "?path=/config", None).await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["world", "server.properties"], "{page:#}");
    let file = &page["items"][1];
    assert_eq!(file["size"], properties.len());
    assert!(
        file["modifiedMs"]
            .as_u64()
            .is_some_and(|ms| ms > 1_700_000_000_000),
        "{file:#}"
    );
    // Stat, rename, copy, chmod.
    let stat = site
        .ok(Method::GET, "/stat?path=/config/world/level.dat", None)
        .await;
    assert_eq!(stat["size"], 300_000);
    let renamed = site
        .ok(
            Method::POST,
            "/rename",
            Some(json!({"from": "/config/server.properties", "to": "/server.properties"})),
        )
        .await;
    assert_eq!(renamed["path"], "/server.properties");
    assert!(!site.server_dir().join("config/server.properties").exists());
    let copied = site
        .ok(
            Method::POST,
            "/copy",
            Some(json!({"from": "/config/world", "to": "/backup-world"})),
        )
        .await;
    assert_eq!(copied["kind"], "directory");
    assert_eq!(
        std::fs::read(site.server_dir().join("backup-world/level.dat"))
            .expect("copied")
            .len(),
        300_000
    );
    let chmodded = site
        .ok(
            Method::POST,
            "/chmod",
            Some(json!({"path": "/server.properties", "mode": "600"})),
        )
        .await;
    assert_eq!(chmodded["mode"], 0o600);
    // Archive and extract.
    let archive = site.ok(Method::POST, "/compress", Some(json!({"root": "/", "paths": ["config", "server.properties"], "format": "zip", "name": "bundle.zip"}))).await;
    assert_eq!(archive["path"], "/bundle.zip");
    let extracted = site
        .ok(
            Method::POST,
            "/decompress",
            Some(json!({"path": "/bundle.zip", "destination": "/unpacked"})),
        )
        .await;
    assert!(
        extracted["entries"].as_u64().is_some_and(|n| n >= 3),
        "{extracted:#}"
    );
    assert_eq!(
        std::fs::read(site.server_dir().join("unpacked/server.properties")).expect("extracted"),
        properties
    );
    // Delete many at once.
    let deleted = site
        .ok(
            Method::POST,
            "/delete",
            Some(json!({"paths": ["/unpacked", "/bundle.zip", "/backup-world"]})),
        )
        .await;
    assert_eq!(deleted["deleted"], 3);
    let names = site.list("/").await;
    for gone in ["unpacked", "bundle.zip", "backup-world"] {
        assert!(!names.contains(&gone.to_owned()), "{names:?}");
    }
}

#[tokio::test]
async fn a_download_answers_range_requests_and_a_chunked_upload_resumes_at_the_offset_the_agent_reports()
 {
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    let content: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    // Chunks: 400 000 bytes, then a check of the offset, a wrong offset,
    // and the rest with a new grant (as after the first one expired).
    let url = site
        .url(ADMIN, "upload", "/world.bin", Some(content.len() as u64))
        .await;
    let first = client()
        .patch(&url)
        .header("Upload-Offset", "0")
        .body(content[..400_000].to_vec())
        .send()
        .await
        .expect("chunk");
    assert_eq!(first.status(), 204);
    assert_eq!(first.headers()["upload-offset"], "400000");
    assert!(
        !site.server_dir().join("world.bin").exists(),
        "nothing is in place before the last chunk"
    );
    let later = site
        .url(ADMIN, "upload", "/world.bin", Some(content.len() as u64))
        .await;
    let head = client().head(&later).send().await.expect("head");
    assert_eq!(head.headers()["upload-offset"], "400000");
    let wrong = client()
        .patch(&later)
        .header("Upload-Offset", "100")
        .body(vec![0u8; 10])
        .send()
        .await
        .expect("chunk");
    assert_eq!(wrong.status(), 409);
    let wrong: Value = wrong.json().await.expect("problem");
    assert_eq!(wrong["code"], "offset-mismatch", "{wrong:#}");
    let last = client()
        .patch(&later)
        .header("Upload-Offset", "400000")
        .header("Upload-Complete", "?1")
        .body(content[400_000..].to_vec())
        .send()
        .await
        .expect("chunk");
    assert_eq!(last.status(), 201);
    assert_eq!(
        std::fs::read(site.server_dir().join("world.bin")).expect("in place"),
        content
    );
    // Ranges.
    let url = site.url(ADMIN, "download", "/world.bin", None).await;
    let part = client()
        .get(&url)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 1000-1999/1000000");
    assert_eq!(
        part.bytes().await.expect("body").to_vec(),
        content[1000..2000]
    );
    let tail = client()
        .get(&url)
        .header("Range", "bytes=-10")
        .send()
        .await
        .expect("range");
    assert_eq!(
        tail.bytes().await.expect("body").to_vec(),
        content[content.len() - 10..]
    );
    let outside = client()
        .get(&url)
        .header("Range", "bytes=2000000-")
        .send()
        .await
        .expect("range");
    assert_eq!(outside.status(), 416);
}

#[tokio::test]
async fn paths_that_leave_the_server_are_refused_whether_by_dot_dot_an_absolute_symlink_or_a_relative_one()
 {
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    std::os::unix::fs::symlink("/etc", site.server_dir().join("etc-link")).expect("a symlink");
    std::os::unix::fs::symlink("../../..", site.server_dir().join("up-link")).expect("a symlink");
    std::fs::write(site.server_dir().join("inside.txt"), b"inside").expect("a file");
    std::os::unix::fs::symlink("inside.txt", site.server_dir().join("inside-link"))
        .expect("a symlink");
    for path in [
        "/../../etc/passwd",
        "/etc-link/passwd",
        "/up-link/credentials.json",
    ] {
        let response = site
            .call(ADMIN, Method::GET, &format!("/stat?path={path}"), None)
            .await;
        expect_problem(response, 422, "file-outside-server").await;
        let response = site
            .call(
                ADMIN,
                Method::POST,
                "/download",
                Some(json!({"path": path})),
            )
            .await;
        expect_problem(response, 422, "file-outside-server").await;
        let response = site
            .call(
                ADMIN,
                Method::POST,
                "/rename",
                Some(json!({"from": "/inside.txt", "to": path})),
            )
            .await;
        expect_problem(response, 422, "file-outside-server").await;
    }
    let response = site.call(ADMIN, Method::GET, "?path=/etc-link", None).await;
    expect_problem(response, 422, "file-outside-server").await;
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/upload",
            Some(json!({"path": "/etc-link/evil"})),
        )
        .await;
    expect_problem(response, 422, "file-outside-server").await;
    // A symlink inside the server is followed.
    assert_eq!(site.download("/inside-link").await, b"inside");
    // And deleting the outward symlink removes the link, not /etc.
    let deleted = site
        .ok(
            Method::POST,
            "/delete",
            Some(json!({"paths": ["/etc-link"]})),
        )
        .await;
    assert_eq!(deleted["deleted"], 1);
    assert!(std::path::Path::new("/etc/passwd").exists());
}

#[tokio::test]
async fn a_grant_is_refused_when_forged_altered_expired_for_another_node_or_for_another_operation()
{
    use cap_protocol::files::{FileGrant, FileScope, GRANT_ISSUER, GrantOp};
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    std::fs::write(site.server_dir().join("secret.txt"), b"secret").expect("a file");
    let url = site.url(ADMIN, "download", "/secret.txt", None).await;
    let (base, token) = url.split_once("?token=").expect("a token");
    let refused = |url: String| async move {
        let response = client().get(&url).send().await.expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body)
    };
    // Another operation with a download grant.
    let upload = base.replace("/api/files/download", "/api/files/upload");
    let response = client()
        .put(format!("{upload}?token={token}"))
        .body("x")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403, "a download grant uploads nothing");
    // An altered payload (another path), keeping the signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = base64_decode(&parts[1]);
    let mut claims: Value = serde_json::from_slice(&payload).expect("claims");
    claims["path"] = json!("/credentials.json");
    parts[1] = base64_encode(&serde_json::to_vec(&claims).expect("JSON"));
    let (status, body) = refused(format!("{base}?token={}", parts.join("."))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid-grant")),
        "{body:#}"
    );
    // Signed with the Panel's own key but expired, or for another node.
    let key = std::fs::read_to_string(db.data_dir().join("secret.key")).expect("the secret key");
    let key = cap_panel::secrets::SecretKey::from_base64(key.trim()).expect("a key");
    let signer = cap_panel::files::GrantSigner::from_seed(
        &cap_panel::secrets::Sealer::new(&key).derive_key(cap_panel::files::grants::KEY_LABEL),
    );
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).expect("after 1970");
    let grant = |aud: &str, exp: u64| FileGrant {
        iss: GRANT_ISSUER.into(),
        aud: aud.into(),
        sub: site.server_id.clone(),
        jti: "test".into(),
        exp,
        user: "files-admin".into(),
        op: GrantOp::Download,
        path: "/secret.txt".into(),
        scope: FileScope::default(),
        size: None,
    };
    let (status, _) = refused(format!(
        "{base}?token={}",
        signer.sign(&grant(&site.node_id, now + 60))
    ))
    .await;
    assert_eq!(
        status, 200,
        "a well-signed grant for this node works: the refusals below are about the claims"
    );
    let (status, body) = refused(format!(
        "{base}?token={}",
        signer.sign(&grant(&site.node_id, now - 60))
    ))
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid-grant")),
        "expired: {body:#}"
    );
    let (status, body) = refused(format!(
        "{base}?token={}",
        signer.sign(&grant("another-node", now + 60))
    ))
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid-grant")),
        "another node: {body:#}"
    );
    // Signed by someone else.
    let stranger = cap_panel::files::GrantSigner::from_seed(&[9; 32]);
    let (status, body) = refused(format!(
        "{base}?token={}",
        stranger.sign(&grant(&site.node_id, now + 60))
    ))
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid-grant")),
        "forged: {body:#}"
    );
    // No token at all.
    let (status, _) = refused(base.to_owned()).await;
    assert_eq!(status, 400);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn the_disk_limit_refuses_an_upload_and_a_compression_bomb_is_refused_on_extraction_leaving_nothing()
 {
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 2).await;
    // 3 MiB into a 2 MiB server: refused when the grant declares it, and
    // when it does not.
    let big = vec![1u8; 3 << 20];
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/upload",
            Some(json!({"path": "/big.bin", "size": big.len()})),
        )
        .await;
    let url = json_of(response, 200).await["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let refused = client()
        .put(&url)
        .body(big.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(refused.status(), 507);
    let undeclared = site.url(ADMIN, "upload", "/big.bin", None).await;
    let refused = client()
        .put(&undeclared)
        .body(big)
        .send()
        .await
        .expect("upload");
    assert_eq!(refused.status(), 507);
    assert!(!site.server_dir().join("big.bin").exists());
    // A zip whose one entry inflates far past the limit and the ratio.
    let bomb = {
        use std::io::Write as _;
        let mut buffer = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut buffer);
        zip.start_file(
            "zeros.bin",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .expect("an entry");
        let chunk = vec![0u8; 1 << 20];
        // 1.5 MiB: within the disk limit, so that what refuses it is the
        // ratio (over 200:1 once past the first MiB).
        zip.write_all(&chunk).expect("zeros");
        zip.write_all(&chunk[..chunk.len() / 2]).expect("zeros");
        zip.finish().expect("a zip");
        buffer.into_inner()
    };
    assert!(bomb.len() < 8_000, "{}", bomb.len());
    site.upload("/bomb.zip", bomb).await;
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/decompress",
            Some(json!({"path": "/bomb.zip", "destination": "/out"})),
        )
        .await;
    let problem = json_of(response, 422).await;
    assert_eq!(problem["code"], "archive-refused", "{problem:#}");
    assert!(
        !site.server_dir().join("out/zeros.bin").exists(),
        "nothing half-written stays"
    );
}

crate::support::on_every_database! {
    async fn each_file_permission_gates_exactly_its_operations_for_a_subuser(db: &TestDb) {
        let site = files_site(db, 1000).await;
        std::fs::write(site.server_dir().join("notes.txt"), b"notes").expect("a file");
        let grant = |permissions: Vec<&'static str>| {
            let site = &site;
            async move {
                let subusers = format!("/api/v1/servers/{}/subusers", site.server_id);
                let existing = call(&site.panel, Method::GET, &subusers, Some(ADMIN), None).await;
                let existing = json_of(existing, 200).await;
                if existing["items"].as_array().is_some_and(|i| !i.is_empty()) {
                    let response = call(&site.panel, Method::PATCH, &format!("{subusers}/{}", site.sub_id), Some(ADMIN), Some(json!({"permissions": permissions}))).await;
                    json_of(response, 200).await
                } else {
                    let response = call(&site.panel, Method::POST, &subusers, Some(ADMIN), Some(json!({"user_id": site.sub_id, "permissions": permissions}))).await;
                    json_of(response, 201).await
                }
            }
        };
        let status = |method: Method, rest: &'static str, body: Option<Value>| {
            let site = &site;
            async move { site.call(SUB, method, rest, body).await.status().as_u16() }
        };
        // file.read: list and stat, nothing else.
        grant(vec!["file.read"]).await;
        assert_eq!(status(Method::GET, "?path=/", None).await, 200);
        assert_eq!(status(Method::GET, "/stat?path=/notes.txt", None).await, 200);
        assert_eq!(status(Method::POST, "/download", Some(json!({"path": "/notes.txt"}))).await, 403);
        assert_eq!(status(Method::POST, "/upload", Some(json!({"path": "/new.txt"}))).await, 403);
        assert_eq!(status(Method::POST, "/folders", Some(json!({"path": "/d"}))).await, 403);
        assert_eq!(status(Method::POST, "/rename", Some(json!({"from": "/notes.txt", "to": "/n.txt"}))).await, 403);
        assert_eq!(status(Method::POST, "/delete", Some(json!({"paths": ["/notes.txt"]}))).await, 403);
        assert_eq!(status(Method::POST, "/compress", Some(json!({"root": "/", "paths": ["notes.txt"]}))).await, 403);
        // file.read-content: downloads.
        grant(vec!["file.read-content"]).await;
        assert_eq!(status(Method::POST, "/download", Some(json!({"path": "/notes.txt"}))).await, 200);
        assert_eq!(status(Method::GET, "?path=/", None).await, 403);
        // file.create: new files and folders, not replacing one.
        grant(vec!["file.create"]).await;
        assert_eq!(status(Method::POST, "/upload", Some(json!({"path": "/new.txt"}))).await, 200);
        assert_eq!(status(Method::POST, "/upload", Some(json!({"path": "/notes.txt"}))).await, 403);
        assert_eq!(status(Method::POST, "/folders", Some(json!({"path": "/d"}))).await, 200);
        // file.update: replacing, renaming, chmod.
        grant(vec!["file.update"]).await;
        assert_eq!(status(Method::POST, "/upload", Some(json!({"path": "/notes.txt"}))).await, 200);
        assert_eq!(status(Method::POST, "/chmod", Some(json!({"path": "/notes.txt", "mode": "640"}))).await, 200);
        assert_eq!(status(Method::POST, "/rename", Some(json!({"from": "/d", "to": "/e"}))).await, 200);
        assert_eq!(status(Method::POST, "/delete", Some(json!({"paths": ["/e"]}))).await, 403);
        // file.archive and file.delete.
        grant(vec!["file.archive"]).await;
        assert_eq!(status(Method::POST, "/compress", Some(json!({"root": "/", "paths": ["notes.txt"], "name": "n.tar.gz"}))).await, 200);
        assert_eq!(status(Method::POST, "/decompress", Some(json!({"path": "/n.tar.gz", "destination": "/x"}))).await, 200);
        grant(vec!["file.delete"]).await;
        assert_eq!(status(Method::POST, "/delete", Some(json!({"paths": ["/e", "/x", "/n.tar.gz"]}))).await, 200);
        // Someone with no relation to the server does not see it at all.
        let response = call(&site.panel, Method::GET, &site.path("?path=/"), Some("nobody"), None).await;
        assert_eq!(response.status(), 401);
    }
}

#[tokio::test]
async fn file_operations_on_a_server_whose_node_is_offline_answer_node_offline_and_bad_input_is_named()
 {
    let db = TestDb::sqlite().await;
    let mut site = files_site(&db, 1000).await;
    // Bad input the Panel refuses itself.
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/chmod",
            Some(json!({"path": "/probe.txt", "mode": "4755"})),
        )
        .await;
    expect_problem(response, 422, "validation-failed").await;
    let response = site
        .call(ADMIN, Method::POST, "/delete", Some(json!({"paths": []})))
        .await;
    expect_problem(response, 422, "validation-failed").await;
    let response = site
        .call(ADMIN, Method::GET, "/stat?path=/nothing-here", None)
        .await;
    expect_problem(response, 404, "file-not-found").await;
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/folders",
            Some(json!({"path": "/probe.txt"})),
        )
        .await;
    expect_problem(response, 409, "file-exists").await;
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/decompress",
            Some(json!({"path": "/probe.txt", "destination": "/x"})),
        )
        .await;
    expect_problem(response, 422, "bad-archive").await;
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/pull",
            Some(json!({"url": format!("http://127.0.0.1:{}/x", free_port()), "directory": "/"})),
        )
        .await;
    expect_problem(response, 422, "pull-refused").await;
    // The Agent goes away.
    site.agent.take().expect("running").stop().await;
    node_online(&site.panel, &site.node_id, false).await;
    let response = site.call(ADMIN, Method::GET, "?path=/", None).await;
    expect_problem(response, 503, "node-offline").await;
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/download",
            Some(json!({"path": "/probe.txt"})),
        )
        .await;
    expect_problem(response, 503, "node-offline").await;
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn every_file_write_reaches_a_0_2_hook_plugin_whose_veto_writes_nothing_and_reads_fire_nothing()
 {
    use cap_panel::plugin_kv::DbKv;
    use cap_runtime::capabilities::kv::KvStore;
    const RECORDER: &str = "event-recorder";
    let db = TestDb::sqlite().await;
    let site = files_site(&db, 1000).await;
    let plugins = site.panel.state().plugins().expect("a plugin manager");
    crate::hook_events::install(plugins, RECORDER).await;
    plugins
        .activate(RECORDER, &Actor::system())
        .await
        .expect("the recorder activates");
    let kv = DbKv::new(site.panel.state().db().clone());
    let count = |phase: &'static str| {
        let kv = kv.clone();
        async move {
            kv.get(RECORDER, &format!("count/{phase}/file.write"))
                .await
                .expect("the store reads")
                .map_or(0, |v| {
                    String::from_utf8(v)
                        .expect("text")
                        .parse::<u64>()
                        .expect("a count")
                })
        }
    };
    let after_reaches = |n: u64| {
        let count = &count;
        async move {
            eventually(&format!("{n} file.write after-hooks"), || async {
                (count("after").await == n).then_some(())
            })
            .await
        }
    };
    // A folder: before, then after.
    site.ok(Method::POST, "/folders", Some(json!({"path": "/hooked"})))
        .await;
    assert_eq!(count("before").await, 1);
    after_reaches(1).await;
    // Reads fire nothing.
    site.list("/").await;
    site.download("/probe.txt").await;
    assert_eq!(count("before").await, 1);
    // An upload: before when its URL is issued, after once the Agent put
    // the file in place.
    site.upload("/hooked/new.txt", b"new".to_vec()).await;
    assert_eq!(count("before").await, 2);
    after_reaches(2).await;
    // Vetoed: refused with the plugin's reason and nothing written.
    let values = std::collections::BTreeMap::from([(
        "deny-kinds".to_owned(),
        Some("file.write".to_owned()),
    )]);
    plugins
        .set_config(RECORDER, &values, &Actor::system())
        .await
        .expect("configured");
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/folders",
            Some(json!({"path": "/vetoed"})),
        )
        .await;
    let problem = expect_problem(response, 403, "hook-denied").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("event-recorder denies file.write")),
        "{problem:#}"
    );
    assert!(!site.server_dir().join("vetoed").exists());
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/upload",
            Some(json!({"path": "/vetoed.txt"})),
        )
        .await;
    expect_problem(response, 403, "hook-denied").await;
    let response = site
        .call(
            ADMIN,
            Method::POST,
            "/delete",
            Some(json!({"paths": ["/hooked"]})),
        )
        .await;
    expect_problem(response, 403, "hook-denied").await;
    assert!(site.server_dir().join("hooked/new.txt").exists());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count("after").await,
        2,
        "a refused write tells no after-hook"
    );
}

#[tokio::test]
async fn the_file_manager_works_the_same_on_a_container_node_and_the_server_runs_with_its_files() {
    let podman = cap_e2e::podman::PodmanService::start();
    let db = TestDb::sqlite().await;
    let site = files_site_on(&db, 1000, Some(&podman)).await;
    site.ok(Method::POST, "/folders", Some(json!({"path": "/plugins"})))
        .await;
    site.upload("/plugins/config.yml", b"enabled: true\n".to_vec())
        .await;
    assert_eq!(site.list("/plugins").await, ["config.yml"]);
    assert_eq!(
        site.download("/plugins/config.yml").await,
        b"enabled: true\n"
    );
    site.ok(
        Method::POST,
        "/rename",
        Some(json!({"from": "/plugins/config.yml", "to": "/plugins/settings.yml"})),
    )
    .await;
    site.ok(
        Method::POST,
        "/compress",
        Some(json!({"root": "/", "paths": ["plugins"], "name": "plugins.tar.gz"})),
    )
    .await;
    site.ok(
        Method::POST,
        "/decompress",
        Some(json!({"path": "/plugins.tar.gz", "destination": "/restored"})),
    )
    .await;
    assert_eq!(
        std::fs::read(site.server_dir().join("restored/plugins/settings.yml")).expect("extracted"),
        b"enabled: true\n"
    );
    // The server's container starts from that directory, and its files stay
    // reachable while it runs.
    let power = |action: &'static str| {
        let site = &site;
        async move {
            let path = format!("/api/v1/servers/{}/power", site.server_id);
            json_of(
                call(
                    &site.panel,
                    Method::POST,
                    &path,
                    Some(ADMIN),
                    Some(json!({"action": action})),
                )
                .await,
                202,
            )
            .await
        }
    };
    power("start").await;
    crate::agents::server_state(&site.panel, &site.server_id, "running").await;
    assert_eq!(
        site.download("/restored/plugins/settings.yml").await,
        b"enabled: true\n"
    );
    site.upload("/while-running.txt", b"x".to_vec()).await;
    power("kill").await;
}

/// A client that trusts `ca`'s certificates (and only those).
fn trusting(ca: &crate::support::smtp::TestCa) -> reqwest::Client {
    let pem = std::fs::read(ca.root()).expect("the CA's certificate");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("a PEM certificate")])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

#[tokio::test]
async fn an_agent_with_a_certificate_serves_transfers_over_tls_and_the_panel_hands_out_https_urls()
{
    let db = TestDb::sqlite().await;
    let ca = crate::support::smtp::TestCa::new();
    let site = files_site_with(&db, 1000, SiteAgent::Tls(&ca)).await;
    let bytes: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 253) as u8).collect();
    let written = site.upload("/world.bin", bytes.clone()).await;
    assert_eq!(written["size"], bytes.len());
    let url = site.url(ADMIN, "download", "/world.bin", None).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert_eq!(site.download("/world.bin").await, bytes);
    let part = site
        .http
        .get(&url)
        .header("range", "bytes=1048570-1048589")
        .send()
        .await
        .expect("a range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.expect("body").to_vec(),
        bytes[1_048_570..1_048_590]
    );
    // Neither cleartext nor a client that does not trust the certificate
    // gets anything.
    let plain = url.replacen("https://", "http://", 1);
    assert!(client().get(&plain).send().await.is_err(), "cleartext");
    assert!(client().get(&url).send().await.is_err(), "untrusted");
    // A client that connects and never says anything holds no one up.
    let addr = site
        .agent
        .as_ref()
        .expect("running")
        .files_addr
        .expect("files");
    let _silent = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let again = site.url(ADMIN, "download", "/world.bin", None).await;
    let response = tokio::time::timeout(Duration::from_secs(20), site.http.get(&again).send())
        .await
        .expect("answered beside a silent connection")
        .expect("a download");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_agent_refuses_to_start_with_a_certificate_it_cannot_use_and_names_the_file() {
    let db = TestDb::sqlite().await;
    let ca = crate::support::smtp::TestCa::new();
    let panel = cap_panel::Panel::builder(db.config())
        .bind()
        .await
        .expect("the Panel starts")
        .spawn();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let refusal = |cert: std::path::PathBuf, key: std::path::PathBuf| {
        let panel = &panel;
        let dir = dir.path().to_owned();
        async move {
            let Err(error) = crate::support::start_tls_agent(
                panel,
                &dir,
                None,
                cap_agent::node::FilesTls { cert, key },
            )
            .await
            else {
                panic!("the Agent started");
            };
            assert!(
                matches!(error, cap_agent::node::NodeError::FilesTls(_)),
                "{error:?}"
            );
            error.to_string()
        }
    };
    // The CA's key does not sign for the server's certificate.
    let ca_key = ca.root().with_file_name("ca.key");
    let message = refusal(ca.cert(), ca_key.clone()).await;
    assert!(
        message.contains(&ca.cert().display().to_string())
            && message.contains(&ca_key.display().to_string()),
        "{message}"
    );
    let missing = dir.path().join("missing.pem");
    let message = refusal(missing.clone(), ca.key()).await;
    assert!(
        message.contains("--files-tls-cert") && message.contains(&missing.display().to_string()),
        "{message}"
    );
    // The two files swapped: a key where the certificate goes.
    let message = refusal(ca.key(), ca.key()).await;
    assert!(
        message.contains("--files-tls-cert") && message.contains("no PEM certificate"),
        "{message}"
    );
    let message = refusal(ca.cert(), ca.cert()).await;
    assert!(
        message.contains("--files-tls-key") && message.contains("private key"),
        "{message}"
    );
    // Nothing was registered or served: the data directory holds no
    // credentials.
    assert!(!dir.path().join("credentials.json").exists());
}
