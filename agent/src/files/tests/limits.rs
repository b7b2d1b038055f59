//! The disk limit, for every kind of write.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use cap_protocol::files::{ArchiveFormat, FileErrorCode};

use super::{Server, code, noise};
use crate::files::{DiskUsage, ServerFiles, WriteMode};

const MIB: usize = 1024 * 1024;

fn staging() -> (tempfile::TempDir, cap_std::fs::Dir) {
    let dir = tempfile::tempdir().unwrap();
    let handle =
        cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
    (dir, handle)
}

#[test]
fn an_upload_over_the_disk_limit_is_refused_and_undone() {
    let server = Server::new();
    let files = server.limited(1);
    let (_dir, staging) = staging();
    let big = noise(2 * MIB);
    assert_eq!(
        code(files.upload_append(&staging, "u", "big.bin", 0, &mut Cursor::new(&big), None)),
        FileErrorCode::DiskLimit
    );
    assert_eq!(files.upload_status(&staging, "u").unwrap(), 0);
    // A declared size over the limit is refused before anything is read.
    let mut untouched = Cursor::new(&big);
    assert_eq!(
        code(files.upload_append(
            &staging,
            "u",
            "big.bin",
            0,
            &mut untouched,
            Some(2 * MIB as u64)
        )),
        FileErrorCode::DiskLimit
    );
    assert_eq!(untouched.position(), 0);
    // What is staged counts: two chunks that fit alone do not fit together.
    let half = noise(600 * 1024);
    files
        .upload_append(&staging, "v", "v.bin", 0, &mut Cursor::new(&half), None)
        .unwrap();
    assert_eq!(
        code(files.upload_append(
            &staging,
            "v",
            "v.bin",
            half.len() as u64,
            &mut Cursor::new(&half),
            None
        )),
        FileErrorCode::DiskLimit
    );
    assert_eq!(
        files.upload_status(&staging, "v").unwrap(),
        half.len() as u64
    );
}

#[test]
fn a_copy_over_the_disk_limit_is_refused_before_writing() {
    let server = Server::new();
    server.write("world/region.bin", &noise(600 * 1024));
    let files = server.limited(1);
    assert_eq!(
        code(files.copy("world", "world2")),
        FileErrorCode::DiskLimit
    );
    assert_eq!(
        code(files.copy("world/region.bin", "r.bin")),
        FileErrorCode::DiskLimit
    );
    assert!(!server.exists("world2") && !server.exists("r.bin"));
}

#[test]
fn a_compress_over_the_disk_limit_is_stopped_and_its_archive_removed() {
    let server = Server::new();
    server.write("world/region.bin", &noise(700 * 1024));
    let files = server.limited(1);
    for format in [ArchiveFormat::TarGz, ArchiveFormat::Zip] {
        assert_eq!(
            code(files.compress("/", &["world".into()], format, Some("w.archive"))),
            FileErrorCode::DiskLimit
        );
        assert_eq!(server.names("."), ["world"]);
    }
}

#[test]
fn a_decompress_over_the_disk_limit_is_refused_and_nothing_stays() {
    let server = Server::new();
    // About 600 KiB of archive, unpacking to as much again: the archive
    // fits under 1 MiB, the archive and its contents do not.
    let data = noise(300 * 1024);
    let mut tar = tar::Builder::new(Vec::new());
    for name in ["one.bin", "two.bin"] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, &data[..]).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    server.write("w.tar.gz", &gz);
    let files = server.limited(1);
    assert_eq!(
        code(files.decompress("w.tar.gz", "out")),
        FileErrorCode::DiskLimit
    );
    assert_eq!(server.names("."), ["w.tar.gz"]);
}

/// Files limited to `disk_mb` whose usage figures live an hour: nothing
/// the test writes behind their back is seen, so each check below sees
/// only what the operations charged or forgot.
fn kept(server: &Server, disk_mb: u64) -> (ServerFiles, Arc<DiskUsage>) {
    let usage = DiskUsage::new(Duration::from_secs(3600));
    (server.limited(disk_mb).with_usage(usage.clone()), usage)
}

#[test]
fn uploads_one_after_another_see_each_other_without_a_walk_in_between() {
    let server = Server::new();
    let (files, usage) = kept(&server, 2);
    let (_dir, staging) = staging();
    let first = noise(1200 * 1024);
    files
        .upload_append(&staging, "a", "a.bin", 0, &mut Cursor::new(&first), None)
        .unwrap();
    files.upload_finish(&staging, "a", "a.bin").unwrap();
    let (_, charged) = usage.last(server.path()).expect("a figure kept");
    assert!(charged >= first.len() as u64, "{charged}");
    // Fits alone, not beside the first one.
    let second = noise(1200 * 1024);
    assert_eq!(
        code(files.upload_append(&staging, "b", "b.bin", 0, &mut Cursor::new(&second), None)),
        FileErrorCode::DiskLimit
    );
    // Replacing the first one frees what it took.
    files
        .upload_append(&staging, "c", "a.bin", 0, &mut Cursor::new(&second), None)
        .unwrap();
    files.upload_finish(&staging, "c", "a.bin").unwrap();
    let (_, after) = usage.last(server.path()).expect("a figure kept");
    assert!(
        after.abs_diff(charged) < 64 * 1024,
        "{charged} then {after}"
    );
}

#[test]
fn deleting_a_file_makes_room_at_once_and_a_copy_is_counted() {
    let server = Server::new();
    let (files, _usage) = kept(&server, 2);
    let (_dir, staging) = staging();
    let world = noise(1200 * 1024);
    files
        .upload_append(
            &staging,
            "a",
            "world.bin",
            0,
            &mut Cursor::new(&world),
            None,
        )
        .unwrap();
    files.upload_finish(&staging, "a", "world.bin").unwrap();
    assert_eq!(
        code(files.copy("world.bin", "copy.bin")),
        FileErrorCode::DiskLimit
    );
    files.delete(&["world.bin".to_owned()]).unwrap();
    files
        .upload_append(&staging, "b", "new.bin", 0, &mut Cursor::new(&world), None)
        .unwrap();
    files.upload_finish(&staging, "b", "new.bin").unwrap();
    // Written behind the figure's back, then a copy: the copy forgets the
    // figure, so the next check walks and sees both.
    server.write("game.bin", &noise(300 * 1024));
    files.create_folder("saves").unwrap();
    assert_eq!(
        code(files.copy("new.bin", "saves/new.bin")),
        FileErrorCode::DiskLimit
    );
    files.copy("game.bin", "saves/game.bin").unwrap();
    assert_eq!(
        code(files.upload_append(
            &staging,
            "c",
            "more.bin",
            0,
            &mut Cursor::new(&noise(300 * 1024)),
            None
        )),
        FileErrorCode::DiskLimit,
        "the walk after the copy saw the file written behind its back"
    );
}

#[test]
fn an_sftp_write_is_charged_when_closed_and_a_truncating_open_frees_the_old_bytes() {
    let server = Server::new();
    let (files, _usage) = kept(&server, 2);
    let create = WriteMode {
        create: true,
        truncate: true,
        ..WriteMode::default()
    };
    let mut first = files.open_write("a.bin", create).unwrap();
    first.write_at(0, &noise(1200 * 1024)).unwrap();
    drop(first);
    let mut second = files.open_write("b.bin", create).unwrap();
    assert_eq!(
        code(second.write_at(0, &noise(1200 * 1024))),
        FileErrorCode::DiskLimit
    );
    drop(second);
    // Opening `a.bin` again with truncation gives its bytes back.
    let mut again = files.open_write("a.bin", create).unwrap();
    again.write_at(0, &noise(1500 * 1024)).unwrap();
    drop(again);
    files.remove_file("a.bin").unwrap();
    let mut last = files.open_write("b.bin", create).unwrap();
    last.write_at(0, &noise(1500 * 1024)).unwrap();
}
