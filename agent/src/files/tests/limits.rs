//! The disk limit, for every kind of write.

use std::io::Cursor;

use cap_protocol::files::{ArchiveFormat, FileErrorCode};

use super::{Server, code, noise};

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
