//! Compressing and extracting: every format, and every refusal.

use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;

use cap_protocol::files::{ArchiveFormat, FileErrorCode};
use tar::EntryType;

use super::{Server, code, noise};
use crate::files::ArchiveLimits;

/// A tar of `entries` (name, type, contents), names written raw into the
/// header so that hostile ones (absolute, `..`) can be made.
fn raw_tar(entries: &[(&str, EntryType, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(if *kind == EntryType::Directory {
            0o755
        } else {
            0o640
        });
        if *kind == EntryType::Symlink {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// The test tree as a tar: a folder with a file, a file, and an empty
/// folder.
fn sample_tar() -> Vec<u8> {
    raw_tar(&[
        ("world/", EntryType::Directory, b""),
        ("world/level.dat", EntryType::Regular, b"level data"),
        ("server.properties", EntryType::Regular, b"motd=hi\n"),
        ("empty/", EntryType::Directory, b""),
    ])
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut writer =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).unwrap();
    writer.write_all(data).unwrap();
    writer.finish().unwrap()
}

fn zst(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        if name.ends_with('/') {
            zip.add_directory(*name, options).unwrap();
        } else {
            zip.start_file(*name, options).unwrap();
            zip.write_all(data).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}

fn seven_z() -> Vec<u8> {
    let mut writer = sevenz_rust2::ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
    writer
        .push_archive_entry(
            sevenz_rust2::ArchiveEntry::new_directory("world"),
            None::<&[u8]>,
        )
        .unwrap();
    writer
        .push_archive_entry(
            sevenz_rust2::ArchiveEntry::new_file("world/level.dat"),
            Some(&b"level data"[..]),
        )
        .unwrap();
    writer
        .push_archive_entry(
            sevenz_rust2::ArchiveEntry::new_file("server.properties"),
            Some(&b"motd=hi\n"[..]),
        )
        .unwrap();
    writer
        .push_archive_entry(
            sevenz_rust2::ArchiveEntry::new_directory("empty"),
            None::<&[u8]>,
        )
        .unwrap();
    writer.finish().unwrap().into_inner()
}

/// Checks that `out` holds the sample tree.
#[track_caller]
fn assert_sample(server: &Server, out: &str) {
    assert_eq!(
        server.read(&format!("{out}/world/level.dat")),
        b"level data"
    );
    assert_eq!(
        server.read(&format!("{out}/server.properties")),
        b"motd=hi\n"
    );
    assert!(server.path().join(out).join("empty").is_dir());
    assert_eq!(server.names(out), ["empty", "server.properties", "world"]);
}

/// Checks that a refused extraction left nothing: no destination (it
/// did not exist), no staging directory.
#[track_caller]
fn assert_nothing_left(server: &Server, archive: &str) {
    assert_eq!(server.names("."), [archive]);
}

#[test]
fn every_format_extracts_by_its_content_not_its_name() {
    let tar = sample_tar();
    let zip = zip_of(&[
        ("world/", b""),
        ("world/level.dat", b"level data"),
        ("server.properties", b"motd=hi\n"),
        ("empty/", b""),
    ]);
    let cases: [(&str, Vec<u8>); 6] = [
        ("tar", tar.clone()),
        ("tar.gz", gz(&tar)),
        ("tar.xz", xz(&tar)),
        ("tar.zst", zst(&tar)),
        ("zip", zip),
        ("7z", seven_z()),
    ];
    for (format, bytes) in cases {
        let server = Server::new();
        // A misleading name: formats are told apart by their first bytes.
        server.write("upload.bin", &bytes);
        let (entries, written) = server.files().decompress("upload.bin", "/out").unwrap();
        assert_eq!((entries, written), (4, 18), "{format}");
        assert_sample(&server, "out");
        assert_eq!(
            server.names("."),
            ["out", "upload.bin"],
            "{format}: no staging left"
        );
    }
}

#[test]
fn extracted_files_keep_their_permission_bits_and_nothing_more() {
    let server = Server::new();
    server.write(
        "a.tar",
        &raw_tar(&[("run.sh", EntryType::Regular, b"#!/bin/sh\n")]),
    );
    let mut tar = std::fs::read(server.path().join("a.tar")).unwrap();
    // Mode 4755 (setuid) in the header: only 0755 survives.
    let mut header = tar::Header::new_gnu();
    header.as_mut_bytes().copy_from_slice(&tar[..512]);
    header.set_mode(0o4755);
    header.set_cksum();
    tar[..512].copy_from_slice(header.as_bytes());
    server.write("a.tar", &tar);
    server.files().decompress("a.tar", "/").unwrap();
    let mode = std::fs::metadata(server.path().join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[test]
fn compressed_archives_round_trip_in_both_formats() {
    for format in [ArchiveFormat::TarGz, ArchiveFormat::Zip] {
        let server = Server::new();
        server.write("world/level.dat", b"level data");
        server.write("world/region/r.0.0.mca", &noise(100_000));
        server.write("server.properties", b"motd=hi\n");
        server.write("other.txt", b"not included");
        std::fs::set_permissions(
            server.path().join("server.properties"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let files = server.files();
        let entry = files
            .compress(
                "/",
                &["world".into(), "server.properties".into()],
                format,
                None,
            )
            .unwrap();
        assert!(entry.name.starts_with("archive-"), "{}", entry.name);
        assert!(entry.name.ends_with(format.extension()), "{}", entry.name);
        assert!(entry.size > 100_000);
        files.decompress(&entry.path, "restored").unwrap();
        assert_eq!(server.names("restored"), ["server.properties", "world"]);
        assert_eq!(server.read("restored/world/level.dat"), b"level data");
        assert_eq!(
            server.read("restored/world/region/r.0.0.mca"),
            noise(100_000)
        );
        let mode = std::fs::metadata(server.path().join("restored/server.properties"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{format:?}");
    }
}

#[test]
fn compress_of_a_nested_entry_names_it_from_the_root_and_refuses_an_existing_name() {
    let server = Server::new();
    server.write("plugins/a/config.yml", b"a: 1");
    let files = server.files();
    files
        .compress(
            "plugins",
            &["a/config.yml".into()],
            ArchiveFormat::Zip,
            Some("c.zip"),
        )
        .unwrap();
    let archive =
        zip::ZipArchive::new(std::fs::File::open(server.path().join("plugins/c.zip")).unwrap())
            .unwrap();
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    assert_eq!(names, ["a/config.yml"]);
    assert_eq!(
        code(files.compress("plugins", &["a".into()], ArchiveFormat::Zip, Some("c.zip"))),
        FileErrorCode::AlreadyExists
    );
    assert_eq!(
        code(files.compress("plugins", &[], ArchiveFormat::Zip, None)),
        FileErrorCode::InvalidPath
    );
    assert_eq!(
        code(files.compress(
            "plugins",
            &["a".into()],
            ArchiveFormat::Zip,
            Some("../c.zip")
        )),
        FileErrorCode::InvalidPath
    );
}

#[test]
fn compress_leaves_links_and_special_files_out() {
    let server = Server::new();
    server.write("dir/a.txt", b"a");
    server.symlink("/etc", "dir/etc-link");
    server.symlink("a.txt", "dir/inner-link");
    let files = server.files();
    files
        .compress("/", &["dir".into()], ArchiveFormat::TarGz, Some("d.tar.gz"))
        .unwrap();
    let bytes = server.read("d.tar.gz");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["dir/", "dir/a.txt"]);
}

#[test]
fn a_zip_bomb_is_refused_by_its_ratio_and_nothing_stays() {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9));
    zip.start_file("fine.txt", options).unwrap();
    zip.write_all(b"an ordinary file first").unwrap();
    zip.start_file("zeros.bin", options).unwrap();
    let block = vec![0u8; 1024 * 1024];
    for _ in 0..16 {
        zip.write_all(&block).unwrap();
    }
    let bomb = zip.finish().unwrap().into_inner();
    assert!(bomb.len() < 64 * 1024, "the bomb is small: {}", bomb.len());
    let server = Server::new();
    server.write("bomb.zip", &bomb);
    let error = server.files().decompress("bomb.zip", "out").unwrap_err();
    assert_eq!(error.code, FileErrorCode::ArchiveRefused);
    assert!(error.message.contains("zeros.bin"), "{}", error.message);
    assert_eq!(error.path.as_deref(), Some("bomb.zip"));
    assert_nothing_left(&server, "bomb.zip");
}

#[test]
fn an_archive_larger_than_the_byte_bound_is_refused() {
    let server = Server::new();
    server.write(
        "big.tar",
        &raw_tar(&[("a.bin", EntryType::Regular, &noise(64 * 1024))]),
    );
    let files = server.files().with_archive_limits(ArchiveLimits {
        max_bytes: 32 * 1024,
        ..ArchiveLimits::default()
    });
    assert_eq!(
        code(files.decompress("big.tar", "out")),
        FileErrorCode::ArchiveRefused
    );
    assert_nothing_left(&server, "big.tar");
}

#[test]
fn a_zip_slip_entry_is_refused_and_nothing_is_written_anywhere() {
    let server = Server::new();
    std::fs::create_dir(server.path().join("out")).unwrap();
    server.write(
        "slip.zip",
        &zip_of(&[("good.txt", b"good"), ("../evil.txt", b"evil")]),
    );
    let error = server.files().decompress("slip.zip", "out").unwrap_err();
    assert_eq!(error.code, FileErrorCode::ArchiveRefused);
    assert!(error.message.contains("../evil.txt"), "{}", error.message);
    assert!(server.names("out").is_empty(), "good.txt was not kept");
    assert!(!server.exists("evil.txt"));
    assert!(!server.path().parent().unwrap().join("evil.txt").exists());
    // Deeper `..` in a tar is refused the same way.
    server.write(
        "slip.tar",
        &raw_tar(&[("a/../../../evil.txt", EntryType::Regular, b"evil")]),
    );
    assert_eq!(
        code(server.files().decompress("slip.tar", "out")),
        FileErrorCode::ArchiveRefused
    );
}

#[test]
fn an_absolute_entry_path_is_refused() {
    let server = Server::new();
    server.write(
        "abs.tar",
        &raw_tar(&[("/tmp/cap-evil.txt", EntryType::Regular, b"evil")]),
    );
    let error = server.files().decompress("abs.tar", "out").unwrap_err();
    assert_eq!(error.code, FileErrorCode::ArchiveRefused);
    assert!(error.message.contains("absolute"), "{}", error.message);
    assert!(!std::path::Path::new("/tmp/cap-evil.txt").exists());
    assert_nothing_left(&server, "abs.tar");
}

#[test]
fn a_device_entry_in_a_tar_is_refused() {
    let server = Server::new();
    server.write(
        "dev.tar",
        &raw_tar(&[
            ("ok.txt", EntryType::Regular, b"ok"),
            ("null", EntryType::Char, b""),
        ]),
    );
    let error = server.files().decompress("dev.tar", "out").unwrap_err();
    assert_eq!(error.code, FileErrorCode::ArchiveRefused);
    assert!(error.message.contains("`null`"), "{}", error.message);
    assert_nothing_left(&server, "dev.tar");
    server.write("fifo.tar", &raw_tar(&[("pipe", EntryType::Fifo, b"")]));
    assert_eq!(
        code(server.files().decompress("fifo.tar", "out")),
        FileErrorCode::ArchiveRefused
    );
}

#[test]
fn links_in_archives_are_refused() {
    let server = Server::new();
    server.write("link.tar", &raw_tar(&[("passwd", EntryType::Symlink, b"")]));
    assert_eq!(
        code(server.files().decompress("link.tar", "out")),
        FileErrorCode::ArchiveRefused
    );
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.add_symlink(
        "passwd",
        "/etc/passwd",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    server.write("link.zip", &zip.finish().unwrap().into_inner());
    assert_eq!(
        code(server.files().decompress("link.zip", "out")),
        FileErrorCode::ArchiveRefused
    );
    assert!(!server.exists("out"));
}

#[test]
fn too_many_entries_are_refused() {
    let server = Server::new();
    let names: Vec<String> = (0..11).map(|i| format!("f{i}.txt")).collect();
    let tar_entries: Vec<(&str, EntryType, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), EntryType::Regular, &b"x"[..]))
        .collect();
    server.write("many.tar", &raw_tar(&tar_entries));
    let zip_entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    server.write("many.zip", &zip_of(&zip_entries));
    let files = server.files().with_archive_limits(ArchiveLimits {
        max_entries: 10,
        ..ArchiveLimits::default()
    });
    for archive in ["many.tar", "many.zip"] {
        let error = files.decompress(archive, "out").unwrap_err();
        assert_eq!(error.code, FileErrorCode::ArchiveRefused, "{archive}");
        assert!(error.message.contains("entries"), "{}", error.message);
        assert!(!server.exists("out"));
    }
    // Ten is fine.
    let files = server.files().with_archive_limits(ArchiveLimits {
        max_entries: 11,
        ..ArchiveLimits::default()
    });
    assert_eq!(files.decompress("many.zip", "out").unwrap().0, 11);
}

#[test]
fn a_corrupt_or_unknown_archive_is_a_bad_archive() {
    let server = Server::new();
    let mut zip = zip_of(&[("a.txt", &noise(10_000))]);
    // Damage the compressed data and the central directory.
    let middle = zip.len() / 2;
    for byte in &mut zip[middle..middle + 64] {
        *byte ^= 0xff;
    }
    server.write("broken.zip", &zip);
    assert_eq!(
        code(server.files().decompress("broken.zip", "out")),
        FileErrorCode::BadArchive
    );
    let mut gz = gz(&sample_tar());
    gz.truncate(gz.len() / 2);
    server.write("broken.tar.gz", &gz);
    assert_eq!(
        code(server.files().decompress("broken.tar.gz", "out")),
        FileErrorCode::BadArchive
    );
    server.write("notes.zip", b"just some text, named like an archive");
    assert_eq!(
        code(server.files().decompress("notes.zip", "out")),
        FileErrorCode::BadArchive
    );
    assert_eq!(
        server.names("."),
        ["broken.tar.gz", "broken.zip", "notes.zip"]
    );
}

#[test]
fn extraction_merges_into_an_existing_folder_replacing_files() {
    let server = Server::new();
    server.write("out/server.properties", b"old");
    server.write("out/world/keep.dat", b"keep");
    server.write("out/mine.txt", b"mine");
    server.write("a.tar", &sample_tar());
    server.files().decompress("a.tar", "out").unwrap();
    assert_eq!(server.read("out/server.properties"), b"motd=hi\n");
    assert_eq!(server.read("out/world/keep.dat"), b"keep");
    assert_eq!(server.read("out/world/level.dat"), b"level data");
    assert_eq!(server.read("out/mine.txt"), b"mine");
}

#[test]
fn a_file_where_the_destination_has_a_folder_refuses_the_whole_archive() {
    let server = Server::new();
    server.write("out/server.properties/inside.txt", b"a folder here");
    server.write("a.tar", &sample_tar());
    assert_eq!(
        code(server.files().decompress("a.tar", "out")),
        FileErrorCode::AlreadyExists
    );
    // Nothing moved: the folder in the way, and nothing else.
    assert_eq!(server.names("out"), ["server.properties"]);
}
