#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;

use cap_protocol::files::{FileGrant, FileScope, GRANT_ISSUER, GrantOp};

use super::*;

const SERVER: &str = "srv_moving";

fn grant(disk_mb: u64) -> FileGrant {
    FileGrant {
        iss: GRANT_ISSUER.into(),
        aud: "node-b".into(),
        sub: SERVER.into(),
        jti: "xfr_1".into(),
        exp: u64::MAX,
        user: "usr_admin".into(),
        op: GrantOp::TransferReceive,
        path: "/".into(),
        scope: FileScope {
            disk_mb,
            ..FileScope::default()
        },
        size: None,
    }
}

/// A source server directory with a few files, and its archive as the
/// source would stream it.
fn source() -> (tempfile::TempDir, Vec<u8>) {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("servers").join(SERVER);
    std::fs::create_dir_all(dir.join("world/region")).unwrap();
    std::fs::write(dir.join("server.properties"), b"motd=moved\n").unwrap();
    std::fs::write(dir.join("world/region/r.0.0.mca"), vec![7u8; 300_000]).unwrap();
    std::fs::write(dir.join("start.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(dir.join("start.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("escape")).unwrap();
    let mut archive = Vec::new();
    crate::backups::write_archive(&dir, &IgnoreList::new(&[]).unwrap(), &mut archive).unwrap();
    (data, archive)
}

fn tree(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = path.symlink_metadata().unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if meta.is_dir() {
                stack.push(path.clone());
                out.insert(rel, (meta.permissions().mode() & 0o777, Vec::new()));
            } else if meta.is_file() {
                out.insert(
                    rel,
                    (
                        meta.permissions().mode() & 0o777,
                        std::fs::read(&path).unwrap(),
                    ),
                );
            }
        }
    }
    out
}

fn stream_of(
    chunks: Vec<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::iter(chunks)
}

#[test]
fn the_declared_size_counts_regular_files_and_leaves_out_links() {
    let (data, archive) = source();
    let (files, tar) = tree_size(&data.path().join("servers").join(SERVER)).unwrap();
    assert_eq!(files, 11 + 300_000 + 10);
    assert!(tar >= files, "{tar} < {files}");
    assert!(!archive.is_empty());
}

#[tokio::test]
async fn a_whole_stream_is_unpacked_with_its_modes_and_without_the_link() {
    let (source_data, archive) = source();
    let target = tempfile::tempdir().unwrap();
    let receiving = Arc::new(Receiving::default());
    let (files_bytes, _) = tree_size(&source_data.path().join("servers").join(SERVER)).unwrap();
    let chunks = archive
        .chunks(4096)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let received = receive(
        target.path(),
        "node-b",
        &receiving,
        &grant(0),
        files_bytes,
        stream_of(chunks),
    )
    .await
    .unwrap();
    assert_eq!(received.bytes, archive.len() as u64);
    assert_eq!(received.files_bytes, files_bytes);
    let mut expected = tree(&source_data.path().join("servers").join(SERVER));
    expected.remove("escape");
    assert_eq!(tree(&target.path().join("servers").join(SERVER)), expected);
    assert!(!receiving.contains(SERVER));
}

#[tokio::test]
async fn a_stream_cut_short_leaves_no_directory_on_the_target() {
    let (source_data, archive) = source();
    let target = tempfile::tempdir().unwrap();
    let receiving = Arc::new(Receiving::default());
    let (files_bytes, _) = tree_size(&source_data.path().join("servers").join(SERVER)).unwrap();
    let half = archive.len() / 2;
    let chunks = vec![
        Ok(Bytes::copy_from_slice(&archive[..half])),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the source node went away",
        )),
    ];
    let failure = receive(
        target.path(),
        "node-b",
        &receiving,
        &grant(0),
        files_bytes,
        stream_of(chunks),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.code, TransferErrorCode::Archive, "{failure:?}");
    assert!(failure.reason.contains("node-b"), "{failure:?}");
    assert!(!target.path().join("servers").join(SERVER).exists());
    // Ending without an error, but early, is refused the same way.
    let failure = receive(
        target.path(),
        "node-b",
        &receiving,
        &grant(0),
        files_bytes,
        stream_of(vec![Ok(Bytes::copy_from_slice(&archive[..half]))]),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.code, TransferErrorCode::Archive, "{failure:?}");
    assert!(!target.path().join("servers").join(SERVER).exists());
}

#[tokio::test]
async fn a_stream_larger_than_declared_is_refused_and_leaves_nothing() {
    let (_source_data, archive) = source();
    let target = tempfile::tempdir().unwrap();
    let receiving = Arc::new(Receiving::default());
    let failure = receive(
        target.path(),
        "node-b",
        &receiving,
        &grant(0),
        1000,
        stream_of(vec![Ok(Bytes::from(archive))]),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.code, TransferErrorCode::Archive, "{failure:?}");
    assert!(!target.path().join("servers").join(SERVER).exists());
}

#[test]
fn a_target_refuses_what_its_disk_or_the_limit_cannot_hold_and_a_server_it_has() {
    let target = tempfile::tempdir().unwrap();
    let failure = check_receive(target.path(), "node-b", &grant(0), u64::MAX / 4).unwrap_err();
    assert_eq!(failure.code, TransferErrorCode::DiskFull, "{failure:?}");
    assert!(
        failure.reason.contains("node node-b has") && failure.reason.contains("bytes free"),
        "{failure:?}"
    );
    let failure = check_receive(target.path(), "node-b", &grant(1), 2 * 1024 * 1024).unwrap_err();
    assert_eq!(failure.code, TransferErrorCode::DiskLimit, "{failure:?}");
    std::fs::create_dir_all(target.path().join("run").join(SERVER)).unwrap();
    let failure = check_receive(target.path(), "node-b", &grant(0), 10).unwrap_err();
    assert_eq!(failure.code, TransferErrorCode::Conflict, "{failure:?}");
    let mut bad = grant(0);
    bad.sub = "../etc".into();
    let failure = check_receive(target.path(), "node-b", &bad, 10).unwrap_err();
    assert_eq!(
        failure.code,
        TransferErrorCode::UnknownServer,
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_second_receive_of_the_same_server_is_refused_while_the_first_runs() {
    let target = tempfile::tempdir().unwrap();
    let receiving = Arc::new(Receiving::default());
    let _first = receiving.begin(SERVER).unwrap();
    let failure = receive(
        target.path(),
        "node-b",
        &receiving,
        &grant(0),
        10,
        stream_of(Vec::new()),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.code, TransferErrorCode::Conflict, "{failure:?}");
}
