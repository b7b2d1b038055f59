//! Resumable staged uploads.

use std::io::{self, Cursor, Read};

use cap_protocol::files::FileErrorCode;

use super::{Server, code};

fn staging_in(base: &std::path::Path) -> (tempfile::TempDir, cap_std::fs::Dir) {
    let dir = tempfile::tempdir_in(base).unwrap();
    let handle =
        cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
    (dir, handle)
}

fn staging() -> (tempfile::TempDir, cap_std::fs::Dir) {
    staging_in(&std::env::temp_dir())
}

#[test]
fn an_upload_resumes_at_the_received_offset_and_replaces_the_target_atomically() {
    let server = Server::new();
    server.write("config.yml", b"old contents");
    let files = server.files();
    let (staging_dir, staging) = staging();
    assert_eq!(files.upload_status(&staging, "g1").unwrap(), 0);
    let received = files
        .upload_append(
            &staging,
            "g1",
            "config.yml",
            0,
            &mut Cursor::new(b"new "),
            Some(12),
        )
        .unwrap();
    assert_eq!(received, 4);
    assert_eq!(files.upload_status(&staging, "g1").unwrap(), 4);
    // A chunk at the wrong offset (a replay, a gap) is refused.
    assert_eq!(
        code(files.upload_append(
            &staging,
            "g1",
            "config.yml",
            2,
            &mut Cursor::new(b"xx"),
            Some(12)
        )),
        FileErrorCode::OffsetMismatch
    );
    assert_eq!(
        code(files.upload_append(
            &staging,
            "g1",
            "config.yml",
            9,
            &mut Cursor::new(b"xx"),
            Some(12)
        )),
        FileErrorCode::OffsetMismatch
    );
    let received = files
        .upload_append(
            &staging,
            "g1",
            "config.yml",
            4,
            &mut Cursor::new(b"contents"),
            Some(12),
        )
        .unwrap();
    assert_eq!(received, 12);
    // Until it finishes, the target is the old file and nothing of the
    // upload is in the server's directory.
    assert_eq!(server.read("config.yml"), b"old contents");
    assert_eq!(server.names("."), ["config.yml"]);
    let entry = files.upload_finish(&staging, "g1", "config.yml").unwrap();
    assert_eq!((entry.path.as_str(), entry.size), ("/config.yml", 12));
    assert_eq!(server.read("config.yml"), b"new contents");
    assert_eq!(std::fs::read_dir(staging_dir.path()).unwrap().count(), 0);
    assert_eq!(files.upload_status(&staging, "g1").unwrap(), 0);
}

#[test]
fn more_bytes_than_declared_are_refused_and_undone() {
    let server = Server::new();
    let files = server.files();
    let (_dir, staging) = staging();
    assert_eq!(
        code(files.upload_append(
            &staging,
            "g",
            "a.txt",
            0,
            &mut Cursor::new(b"123456"),
            Some(4)
        )),
        FileErrorCode::OffsetMismatch
    );
    assert_eq!(files.upload_status(&staging, "g").unwrap(), 0);
}

/// A reader that fails after giving some bytes, like a dropped connection.
struct Dropped(Cursor<Vec<u8>>);

impl Read for Dropped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset",
            )),
            n => Ok(n),
        }
    }
}

#[test]
fn a_dropped_connection_keeps_what_arrived_for_the_resume() {
    let server = Server::new();
    let files = server.files();
    let (_dir, staging) = staging();
    let mut reader = io::BufReader::new(Dropped(Cursor::new(b"first part".to_vec())));
    assert_eq!(
        code(files.upload_append(&staging, "g", "a.txt", 0, &mut reader, None)),
        FileErrorCode::Io
    );
    let received = files.upload_status(&staging, "g").unwrap();
    assert_eq!(received, 10);
    files
        .upload_append(
            &staging,
            "g",
            "a.txt",
            received,
            &mut Cursor::new(b", second"),
            None,
        )
        .unwrap();
    files.upload_finish(&staging, "g", "a.txt").unwrap();
    assert_eq!(server.read("a.txt"), b"first part, second");
}

#[test]
fn an_upload_finishes_across_file_systems() {
    let shm = std::path::Path::new("/dev/shm");
    assert!(shm.is_dir(), "the test needs a tmpfs at /dev/shm");
    let server = Server::new();
    let (_dir, staging) = staging_in(shm);
    let files = server.files();
    files
        .upload_append(
            &staging,
            "x",
            "far.txt",
            0,
            &mut Cursor::new(b"from afar"),
            None,
        )
        .unwrap();
    files.upload_finish(&staging, "x", "far.txt").unwrap();
    assert_eq!(server.read("far.txt"), b"from afar");
    assert_eq!(server.names("."), ["far.txt"]);
    assert_eq!(files.upload_status(&staging, "x").unwrap(), 0);
}

#[test]
fn finishing_an_upload_never_started_is_not_found() {
    let server = Server::new();
    let (_dir, staging) = staging();
    assert_eq!(
        code(server.files().upload_finish(&staging, "none", "a.txt")),
        FileErrorCode::NotFound
    );
    assert!(!server.exists("a.txt"));
}

#[test]
fn an_upload_onto_a_folder_or_into_a_missing_folder_is_refused() {
    let server = Server::new();
    std::fs::create_dir(server.path().join("dir")).unwrap();
    let (_dir, staging) = staging();
    let files = server.files();
    assert_eq!(
        code(files.upload_append(&staging, "g", "dir", 0, &mut Cursor::new(b"x"), None)),
        FileErrorCode::IsADirectory
    );
    assert_eq!(
        code(files.upload_append(
            &staging,
            "g",
            "missing/a.txt",
            0,
            &mut Cursor::new(b"x"),
            None
        )),
        FileErrorCode::NotFound
    );
    assert_eq!(files.upload_status(&staging, "g").unwrap(), 0);
}

#[test]
fn upload_ids_that_are_not_plain_tokens_are_refused() {
    let server = Server::new();
    let (_dir, staging) = staging();
    for id in ["", "../x", "a/b", "a.b"] {
        assert_eq!(
            code(server.files().upload_status(&staging, id)),
            FileErrorCode::InvalidPath,
            "{id:?}"
        );
    }
}

#[test]
fn an_aborted_upload_leaves_nothing_staged() {
    let server = Server::new();
    let (_dir, staging) = staging();
    let files = server.files();
    files
        .upload_append(&staging, "g", "a.txt", 0, &mut Cursor::new(b"abc"), None)
        .unwrap();
    files.upload_abort(&staging, "g").unwrap();
    assert_eq!(files.upload_status(&staging, "g").unwrap(), 0);
    files.upload_abort(&staging, "g").unwrap();
}
