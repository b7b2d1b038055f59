//! Paths stay beneath the server's directory: parsing, `..`, and symbolic
//! links refused by the kernel (through cap-std), not by string checks.

use std::io::Cursor;

use cap_protocol::files::{ArchiveFormat, FileErrorCode, FileKind};

use super::{Server, code};
use crate::files::path::RelPath;

fn staging() -> (tempfile::TempDir, cap_std::fs::Dir) {
    let dir = tempfile::tempdir().unwrap();
    let handle =
        cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
    (dir, handle)
}

#[test]
fn a_dotdot_that_leaves_the_server_directory_is_outside_server() {
    let server = Server::new();
    let files = server.files();
    assert_eq!(code(files.list("..")), FileErrorCode::OutsideServer);
    assert_eq!(
        code(files.open_read("../neighbour.txt")),
        FileErrorCode::OutsideServer
    );
    assert_eq!(
        code(files.open_read("a/../../neighbour.txt")),
        FileErrorCode::OutsideServer
    );
    assert_eq!(
        code(files.create_folder("/../x")),
        FileErrorCode::OutsideServer
    );
}

#[test]
fn a_dotdot_that_stays_inside_is_applied() {
    let server = Server::new();
    server.write("b.txt", b"b");
    let (_, entry) = server.files().open_read("a/../b.txt").unwrap();
    assert_eq!(entry.path, "/b.txt");
    assert_eq!(server.files().stat("./b.txt").unwrap().path, "/b.txt");
}

#[test]
fn an_absolute_path_means_the_server_directory_not_the_node_root() {
    let server = Server::new();
    server.write("etc/passwd", b"the server's own");
    let (mut file, entry) = server.files().open_read("/etc/passwd").unwrap();
    let mut contents = String::new();
    std::io::Read::read_to_string(&mut file, &mut contents).unwrap();
    assert_eq!(contents, "the server's own");
    assert_eq!(entry.path, "/etc/passwd");
    assert_eq!(
        code(server.files().stat("/etc/shadow")),
        FileErrorCode::NotFound
    );
}

#[test]
fn a_nul_byte_is_an_invalid_path() {
    let server = Server::new();
    assert_eq!(
        code(server.files().stat("a\0b")),
        FileErrorCode::InvalidPath
    );
    assert_eq!(
        code(server.files().create_folder("x\0")),
        FileErrorCode::InvalidPath
    );
}

#[test]
fn empty_names_and_empty_paths_are_invalid() {
    let server = Server::new();
    assert_eq!(
        code(server.files().stat("a//b")),
        FileErrorCode::InvalidPath
    );
    assert_eq!(code(server.files().list("")), FileErrorCode::InvalidPath);
}

#[test]
fn over_long_paths_and_names_are_invalid() {
    let server = Server::new();
    let long_name = "n".repeat(256);
    assert_eq!(
        code(server.files().stat(&long_name)),
        FileErrorCode::InvalidPath
    );
    let long_path = "d/".repeat(2049);
    assert_eq!(
        code(server.files().stat(&long_path)),
        FileErrorCode::InvalidPath
    );
}

#[test]
fn the_server_directory_itself_cannot_be_renamed_or_deleted() {
    let server = Server::new();
    assert_eq!(
        code(server.files().rename("/", "x")),
        FileErrorCode::InvalidPath
    );
    assert_eq!(
        code(server.files().delete(&["/".into()])),
        FileErrorCode::InvalidPath
    );
    assert!(server.path().exists());
}

/// `link -> /etc` (absolute) and `link2 -> ../../..` (relative): every
/// operation through them is refused, and the parser accepted the paths,
/// so the refusal is the kernel's resolution beneath the directory.
#[test]
fn symlinks_out_of_the_server_are_refused_by_the_kernel_for_every_operation() {
    let server = Server::new();
    server.symlink("/etc", "link");
    server.symlink("../../..", "link2");
    server.symlink("/etc/hostname", "file-link");
    server.symlink("../neighbour.txt", "file-link2");
    server.write("mine.txt", b"mine");
    let files = server.files();
    let (_staging_dir, staging) = staging();
    for path in ["link", "link2", "link/ssl", "link2/etc"] {
        assert!(RelPath::parse(path).is_ok(), "the parser accepts {path}");
        assert_eq!(
            code(files.list(path)),
            FileErrorCode::OutsideServer,
            "list {path}"
        );
    }
    for path in [
        "link/hostname",
        "link2/etc/hostname",
        "file-link",
        "file-link2",
    ] {
        assert_eq!(
            code(files.open_read(path)),
            FileErrorCode::OutsideServer,
            "read {path}"
        );
        assert_eq!(
            code(files.chmod(path, 0o600)),
            FileErrorCode::OutsideServer,
            "chmod {path}"
        );
        assert_eq!(
            code(files.copy(path, "copy")),
            FileErrorCode::OutsideServer,
            "copy {path}"
        );
        assert_eq!(
            code(files.decompress(path, "out")),
            FileErrorCode::OutsideServer,
            "decompress {path}"
        );
    }
    for path in ["link/evil", "link2/tmp/evil"] {
        assert_eq!(
            code(files.upload_append(&staging, "u1", path, 0, &mut Cursor::new(b"x"), None)),
            FileErrorCode::OutsideServer,
            "upload {path}"
        );
        assert_eq!(
            code(files.create_folder(path)),
            FileErrorCode::OutsideServer,
            "mkdir {path}"
        );
        assert_eq!(
            code(files.rename("mine.txt", path)),
            FileErrorCode::OutsideServer,
            "rename onto {path}"
        );
        assert_eq!(
            code(files.copy("mine.txt", path)),
            FileErrorCode::OutsideServer,
            "copy onto {path}"
        );
    }
    assert_eq!(
        code(files.rename("link/hostname", "stolen")),
        FileErrorCode::OutsideServer
    );
    assert_eq!(
        code(files.delete(&["link/hostname".into()])),
        FileErrorCode::OutsideServer
    );
    assert_eq!(
        code(files.delete(&["link2/tmp".into()])),
        FileErrorCode::OutsideServer
    );
    assert_eq!(
        code(files.stat("link/hostname")),
        FileErrorCode::OutsideServer
    );
    assert_eq!(
        code(files.compress("link", &["hostname".into()], ArchiveFormat::Zip, None)),
        FileErrorCode::OutsideServer
    );
    assert_eq!(
        code(files.decompress("mine.txt", "link/out")),
        FileErrorCode::OutsideServer
    );
    // Nothing was written anywhere: not into staging, not outside.
    assert_eq!(files.upload_status(&staging, "u1").unwrap(), 0);
    assert!(std::path::Path::new("/etc/hostname").exists());
    assert!(!server.exists("copy") && !server.exists("stolen"));
    assert!(!server.path().parent().unwrap().join("evil").exists());
}

#[test]
fn a_symlink_out_of_the_server_is_listed_as_a_symlink_and_can_be_deleted_itself() {
    let server = Server::new();
    server.symlink("/etc", "link");
    let files = server.files();
    let listed = files.list("/").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, FileKind::Symlink);
    assert_eq!(files.stat("link").unwrap().kind, FileKind::Symlink);
    assert_eq!(files.delete(&["link".into()]).unwrap(), 1);
    assert!(!server.exists("link"));
    assert!(std::path::Path::new("/etc").is_dir());
}

#[test]
fn symlinks_that_stay_inside_work_like_their_targets() {
    let server = Server::new();
    server.write("data/real.txt", b"real");
    server.symlink("data/real.txt", "alias.txt");
    server.symlink("data", "data-link");
    let files = server.files();
    let (mut file, entry) = files.open_read("alias.txt").unwrap();
    let mut contents = String::new();
    std::io::Read::read_to_string(&mut file, &mut contents).unwrap();
    assert_eq!(contents, "real");
    assert_eq!(entry.kind, FileKind::File);
    let listed = files.list("data-link").unwrap();
    assert_eq!(listed[0].path, "/data-link/real.txt");
    files.chmod("alias.txt", 0o600).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.path().join("data/real.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    files
        .compress(
            "data-link",
            &["real.txt".into()],
            ArchiveFormat::Zip,
            Some("a.zip"),
        )
        .unwrap();
    assert!(server.exists("data/a.zip"));
}

/// Links resolve from the server's directory, not from their own folder:
/// `data/up -> ../top.txt` climbs out of `data` and stays inside.
#[test]
fn symlinks_that_climb_out_of_their_folder_but_stay_inside_work() {
    let server = Server::new();
    server.write("top.txt", b"top");
    server.write("other/inner.txt", b"inner");
    server.write("data/keep", b"");
    server.symlink("../top.txt", "data/up");
    server.symlink("../other", "data/other-link");
    let files = server.files();
    let (mut file, _) = files.open_read("data/up").unwrap();
    let mut contents = String::new();
    std::io::Read::read_to_string(&mut file, &mut contents).unwrap();
    assert_eq!(contents, "top");
    assert_eq!(files.list("data/other-link").unwrap()[0].name, "inner.txt");
    let listed = files.list("data").unwrap();
    let other = listed.iter().find(|e| e.name == "other-link").unwrap();
    assert_eq!(other.kind, FileKind::Symlink);
    files.chmod("data/up", 0o640).unwrap();
    files.create_folder("data/other-link/made").unwrap();
    assert!(server.path().join("other/made").is_dir());
    files
        .compress(
            "data/other-link",
            &["inner.txt".into()],
            ArchiveFormat::TarGz,
            Some("i.tar.gz"),
        )
        .unwrap();
    files
        .decompress("other/i.tar.gz", "data/other-link/out")
        .unwrap();
    assert_eq!(server.read("other/out/inner.txt"), b"inner");
}
