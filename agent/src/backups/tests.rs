#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use cap_protocol::backups::{BackupErrorCode, BackupTarget, S3Target};
use cap_protocol::files::FileScope;
use sha2::{Digest as _, Sha256};

use super::*;

const SERVER: &str = "srv_1";

/// A data directory with one server directory.
struct Node {
    data: tempfile::TempDir,
    backups: Arc<Backups>,
}

impl Node {
    fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(data.path().join("servers").join(SERVER)).unwrap();
        let backups = Backups::new(data.path());
        Self { data, backups }
    }

    fn server(&self) -> PathBuf {
        self.data.path().join("servers").join(SERVER)
    }

    fn write(&self, rel: &str, contents: &[u8], mode: u32) {
        let path = self.server().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    async fn create(&self, id: &str, ignore: &[&str], target: &BackupTarget) -> Outcome {
        let ignore: Vec<String> = ignore.iter().map(|s| (*s).to_owned()).collect();
        self.backups.create(SERVER, id, &ignore, target).await
    }

    async fn restore(
        &self,
        id: &str,
        sha256: &str,
        truncate: bool,
        scope: FileScope,
        target: &BackupTarget,
    ) -> Outcome {
        self.backups
            .restore(SERVER, id, &scope, target, sha256, truncate)
            .await
    }

    fn archive(&self, id: &str) -> PathBuf {
        self.backups.local_path(SERVER, id).unwrap()
    }
}

/// Every regular file and directory under `root` (links too, as links):
/// path → (kind, mode, contents).
fn tree(root: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, Vec<u8>)>) {
        for item in std::fs::read_dir(dir).unwrap() {
            let item = item.unwrap();
            let path = item.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, ('l', 0, target.display().to_string().into_bytes()));
            } else if meta.is_dir() {
                out.insert(rel, ('d', mode, Vec::new()));
                walk(root, &path, out);
            } else {
                out.insert(rel, ('f', mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The entry names of a tar.zst archive.
fn entries(archive: &Path) -> Vec<String> {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(zstd::stream::read::Decoder::new(file).unwrap());
    tar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn an_archive_round_trip_keeps_bytes_and_modes() {
    let node = Node::new();
    node.write("server.properties", b"motd=hello\n", 0o644);
    node.write("start.sh", b"#!/bin/sh\nexec java\n", 0o755);
    node.write("world/region/r.0.0.mca", &noise(300_000, 7), 0o600);
    node.write("world/level.dat", &[0u8; 4096], 0o640);
    std::fs::create_dir_all(node.server().join("empty/dir")).unwrap();
    std::fs::set_permissions(
        node.server().join("empty"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let before = tree(&node.server());

    let (digest, bytes) = node
        .create("bkp_1", &[], &BackupTarget::Local)
        .await
        .unwrap();
    let stored = std::fs::read(node.archive("bkp_1")).unwrap();
    assert_eq!(stored.len() as u64, bytes);
    assert_eq!(sha256(&stored), digest);
    assert!(!node.server().join("bkp_1.tar.zst").exists());

    std::fs::remove_file(node.server().join("world/level.dat")).unwrap();
    node.write("server.properties", b"motd=changed\n", 0o600);
    node.write("added-later.txt", b"new", 0o644);
    let restored = node
        .restore(
            "bkp_1",
            &digest,
            true,
            FileScope::default(),
            &BackupTarget::Local,
        )
        .await
        .unwrap();
    assert_eq!(restored, (digest.clone(), bytes));
    assert_eq!(tree(&node.server()), before, "truncate restores exactly");

    // Without truncate, files the backup does not hold stay.
    node.write("added-later.txt", b"new", 0o644);
    node.restore(
        "bkp_1",
        &digest,
        false,
        FileScope::default(),
        &BackupTarget::Local,
    )
    .await
    .unwrap();
    assert!(node.server().join("added-later.txt").exists());
    assert!(
        !std::fs::read_dir(node.server()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".cap-")),
        "no staging directory is left"
    );
}

#[tokio::test]
async fn a_symlink_pointing_outside_is_not_followed() {
    let node = Node::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"TOP SECRET").unwrap();
    std::fs::create_dir_all(outside.path().join("tree")).unwrap();
    std::fs::write(outside.path().join("tree/also-secret"), b"TOP SECRET").unwrap();
    node.write("real.txt", b"mine", 0o644);
    std::os::unix::fs::symlink(outside.path().join("secret"), node.server().join("secret"))
        .unwrap();
    std::os::unix::fs::symlink(outside.path().join("tree"), node.server().join("tree")).unwrap();
    std::os::unix::fs::symlink("real.txt", node.server().join("inside-link")).unwrap();

    node.create("bkp_1", &[], &BackupTarget::Local)
        .await
        .unwrap();
    let archive = node.archive("bkp_1");
    assert_eq!(entries(&archive), ["real.txt"]);
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(&archive).unwrap())
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    assert!(!raw.windows(10).any(|w| w == b"TOP SECRET"));
}

#[tokio::test]
async fn ignore_patterns_leave_out_what_they_match() {
    let node = Node::new();
    node.write("logs/latest.log", b"log", 0o644);
    node.write("logs/keep.log", b"keep", 0o644);
    node.write("cache/big.bin", b"cache", 0o644);
    node.write("plugins/cache/x", b"nested cache is kept", 0o644);
    node.write("world/level.dat", b"level", 0o644);
    node.write("# not a comment.txt", b"x", 0o644);
    let ignore = ["# comment", "", "*.log", "!keep.log", "/cache/"];
    node.create("bkp_1", &ignore, &BackupTarget::Local)
        .await
        .unwrap();
    let mut names = entries(&node.archive("bkp_1"));
    names.sort();
    assert_eq!(
        names,
        [
            "# not a comment.txt",
            "logs/",
            "logs/keep.log",
            "plugins/",
            "plugins/cache/",
            "plugins/cache/x",
            "world/",
            "world/level.dat"
        ]
    );

    let failure = node
        .create("bkp_2", &["[z-a]"], &BackupTarget::Local)
        .await
        .unwrap_err();
    assert_eq!(failure.code, BackupErrorCode::InvalidIgnore, "{failure:?}");
    assert!(!node.archive("bkp_2").exists());
}

/// Writes a tar.zst made by `build` as local backup `id`; returns its
/// digest.
fn plant(node: &Node, id: &str, build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> String {
    let mut builder = tar::Builder::new(Vec::new());
    build(&mut builder);
    let tar = builder.into_inner().unwrap();
    let compressed = zstd::encode_all(&tar[..], 3).unwrap();
    let path = node.archive(id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &compressed).unwrap();
    sha256(&compressed)
}

fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header
}

#[tokio::test]
async fn a_bomb_archive_is_refused_on_restore_and_changes_nothing() {
    let node = Node::new();
    node.write("server.properties", b"motd=hello\n", 0o644);
    let before = tree(&node.server());

    // 64 MiB of zeros: a few KiB compressed, far over the ratio bound.
    let bomb = plant(&node, "bkp_bomb", |b| {
        let size = 64 * 1024 * 1024;
        b.append_data(
            &mut file_header(size),
            "zeros.bin",
            std::io::repeat(0).take(size),
        )
        .unwrap();
    });
    let failure = node
        .restore(
            "bkp_bomb",
            &bomb,
            true,
            FileScope::default(),
            &BackupTarget::Local,
        )
        .await
        .unwrap_err();
    assert_eq!(failure.code, BackupErrorCode::Refused, "{failure:?}");
    assert!(failure.reason.contains("zip bomb"), "{}", failure.reason);
    assert_eq!(tree(&node.server()), before);

    // Links and paths leaving the directory are refused too.
    let link = plant(&node, "bkp_link", |b| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        b.append_link(&mut header, "etc", "/etc").unwrap();
    });
    let failure = node
        .restore(
            "bkp_link",
            &link,
            true,
            FileScope::default(),
            &BackupTarget::Local,
        )
        .await
        .unwrap_err();
    assert_eq!(failure.code, BackupErrorCode::Refused, "{failure:?}");
    assert_eq!(tree(&node.server()), before);
}

#[tokio::test]
async fn a_corrupted_archive_is_refused_before_anything_is_removed() {
    let node = Node::new();
    node.write("world/level.dat", b"level", 0o644);
    let (digest, _) = node
        .create("bkp_1", &[], &BackupTarget::Local)
        .await
        .unwrap();
    node.write("world/level.dat", b"newer", 0o644);
    let before = tree(&node.server());

    // The same archive, announced with another digest: refused even with
    // truncate, and nothing was removed.
    let wrong = sha256(b"something else");
    let failure = node
        .restore(
            "bkp_1",
            &wrong,
            true,
            FileScope::default(),
            &BackupTarget::Local,
        )
        .await
        .unwrap_err();
    assert_eq!(failure.code, BackupErrorCode::Corrupt, "{failure:?}");
    assert!(failure.reason.contains("nothing was restored"));
    assert_eq!(tree(&node.server()), before);

    // Bytes flipped in the middle: unreadable, refused or mismatched, and
    // nothing changed either way.
    let path = node.archive("bkp_1");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let failure = node
        .restore(
            "bkp_1",
            &digest,
            true,
            FileScope::default(),
            &BackupTarget::Local,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            failure.code,
            BackupErrorCode::Corrupt | BackupErrorCode::Refused
        ),
        "{failure:?}"
    );
    assert_eq!(tree(&node.server()), before);

    let failure = node
        .restore(
            "bkp_gone",
            &digest,
            true,
            FileScope::default(),
            &BackupTarget::Local,
        )
        .await
        .unwrap_err();
    assert_eq!(failure.code, BackupErrorCode::NotFound);
}

#[tokio::test]
async fn a_restore_larger_than_the_disk_limit_is_refused() {
    let node = Node::new();
    node.write("world/big.bin", &noise(3 * 1024 * 1024, 3), 0o644);
    let (digest, _) = node
        .create("bkp_1", &[], &BackupTarget::Local)
        .await
        .unwrap();
    node.write("world/big.bin", b"small now", 0o644);
    let before = tree(&node.server());
    let limited = FileScope {
        disk_mb: 2,
        ..FileScope::default()
    };
    let failure = node
        .restore("bkp_1", &digest, true, limited, &BackupTarget::Local)
        .await
        .unwrap_err();
    assert_eq!(failure.code, BackupErrorCode::DiskLimit, "{failure:?}");
    assert_eq!(tree(&node.server()), before);
}

#[tokio::test]
async fn a_deleted_backup_is_gone_and_deleting_it_again_is_fine() {
    let node = Node::new();
    node.write("a.txt", b"a", 0o644);
    node.create("bkp_1", &[], &BackupTarget::Local)
        .await
        .unwrap();
    assert!(node.archive("bkp_1").exists());
    node.backups
        .delete(SERVER, "bkp_1", &BackupTarget::Local)
        .await
        .unwrap();
    assert!(!node.archive("bkp_1").exists());
    node.backups
        .delete(SERVER, "bkp_1", &BackupTarget::Local)
        .await
        .unwrap();
}

/// A moto S3 server on a free loopback port, stopped when dropped.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    async fn bucket(&self, name: &str) -> S3Target {
        let response = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        S3Target {
            endpoint: self.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: name.into(),
            prefix: "panel-1/".into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            path_style: true,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_s3_backup_uploads_in_parts_and_restores_against_a_moto_server() {
    let moto = Moto::start().await;
    let settings = moto.bucket("backups").await;
    let target = BackupTarget::S3(settings.clone());
    let node = Node::new();
    // Incompressible and over two parts, so the upload is multipart.
    node.write(
        "world/region.mca",
        &noise(s3::PART_SIZE * 2 + 12_345, 11),
        0o600,
    );
    node.write("server.properties", b"motd=hello\n", 0o644);
    node.write("logs/latest.log", b"left out", 0o644);
    let before = tree(&node.server());

    let (digest, bytes) = node.create("bkp_s3", &["/logs/"], &target).await.unwrap();
    assert!(bytes > (s3::PART_SIZE * 2) as u64);
    assert!(
        node.backups
            .local_path(SERVER, "bkp_s3")
            .is_some_and(|p| !p.exists())
    );

    // The object holds exactly the bytes reported.
    let key = BackupTarget::object_key(&settings.prefix, SERVER, "bkp_s3");
    assert_eq!(key, "panel-1/srv_1/bkp_s3.tar.zst");
    let object = reqwest::get(format!("{}/backups/{key}", moto.endpoint))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(object.len() as u64, bytes);
    assert_eq!(sha256(&object), digest);

    std::fs::remove_file(node.server().join("world/region.mca")).unwrap();
    node.write("server.properties", b"motd=changed\n", 0o644);
    node.restore("bkp_s3", &digest, true, FileScope::default(), &target)
        .await
        .unwrap();
    let mut expected = before.clone();
    expected.remove("logs/latest.log");
    expected.remove("logs");
    assert_eq!(tree(&node.server()), expected);

    node.backups
        .delete(SERVER, "bkp_s3", &target)
        .await
        .unwrap();
    let failure = node
        .restore("bkp_s3", &digest, true, FileScope::default(), &target)
        .await
        .unwrap_err();
    assert_eq!(failure.code, BackupErrorCode::NotFound, "{failure:?}");
}

#[tokio::test]
async fn unreachable_storage_fails_the_backup_and_leaves_nothing() {
    let node = Node::new();
    node.write("a.txt", b"a", 0o644);
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = BackupTarget::S3(S3Target {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        bucket: "b".into(),
        prefix: String::new(),
        access_key_id: "k".into(),
        secret_access_key: "s".into(),
        path_style: true,
    });
    let started = std::time::Instant::now();
    let failure = node.create("bkp_1", &[], &target).await.unwrap_err();
    assert_eq!(failure.code, BackupErrorCode::Storage, "{failure:?}");
    assert!(started.elapsed() < Duration::from_secs(90));
    assert!(!node.archive("bkp_1").exists());
}
