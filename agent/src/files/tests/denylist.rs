//! The game type's denylist: hidden from listings, refused everywhere else.

use std::io::Cursor;

use cap_protocol::files::{ArchiveFormat, FileErrorCode};

use super::{Server, code};

const DENYLIST: &[&str] = &["secret.txt", "private/", "*.key"];

fn server() -> Server {
    let server = Server::new();
    server.write("secret.txt", b"secret");
    server.write("private/notes.txt", b"notes");
    server.write("conf/server.key", b"key");
    server.write("conf/ok.cfg", b"ok");
    server.write("ok.txt", b"ok");
    server
}

fn staging() -> (tempfile::TempDir, cap_std::fs::Dir) {
    let dir = tempfile::tempdir().unwrap();
    let handle =
        cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
    (dir, handle)
}

#[test]
fn listings_hide_denied_entries_and_the_contents_of_denied_folders() {
    let server = server();
    let files = server.denying(DENYLIST);
    let names: Vec<String> = files
        .list("/")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["conf", "ok.txt"]);
    let names: Vec<String> = files
        .list("conf")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["ok.cfg"]);
    assert_eq!(code(files.list("private")), FileErrorCode::Denied);
}

#[test]
fn denied_files_cannot_be_read_or_stat_ed() {
    let server = server();
    let files = server.denying(DENYLIST);
    assert_eq!(code(files.open_read("secret.txt")), FileErrorCode::Denied);
    assert_eq!(
        code(files.open_read("/private/notes.txt")),
        FileErrorCode::Denied
    );
    assert_eq!(
        code(files.open_read("conf/server.key")),
        FileErrorCode::Denied
    );
    assert_eq!(code(files.stat("secret.txt")), FileErrorCode::Denied);
}

#[test]
fn a_link_to_a_denied_file_is_denied_too() {
    let server = server();
    server.symlink("secret.txt", "alias");
    assert_eq!(
        code(server.denying(DENYLIST).open_read("alias")),
        FileErrorCode::Denied
    );
}

#[test]
fn denied_paths_cannot_be_written() {
    let server = server();
    let files = server.denying(DENYLIST);
    let (_dir, staging) = staging();
    for path in ["secret.txt", "private/new.txt", "new.key"] {
        assert_eq!(
            code(files.upload_append(&staging, "u", path, 0, &mut Cursor::new(b"x"), None)),
            FileErrorCode::Denied,
            "{path}"
        );
    }
    assert_eq!(
        code(files.create_folder("private/sub")),
        FileErrorCode::Denied
    );
    assert_eq!(
        code(files.chmod("secret.txt", 0o600)),
        FileErrorCode::Denied
    );
    assert_eq!(files.upload_status(&staging, "u").unwrap(), 0);
    assert_eq!(server.read("secret.txt"), b"secret");
}

#[test]
fn denied_entries_cannot_be_renamed_copied_or_deleted() {
    let server = server();
    let files = server.denying(DENYLIST);
    assert_eq!(
        code(files.rename("secret.txt", "public.txt")),
        FileErrorCode::Denied
    );
    assert_eq!(
        code(files.copy("secret.txt", "public.txt")),
        FileErrorCode::Denied
    );
    assert_eq!(
        code(files.delete(&["secret.txt".into()])),
        FileErrorCode::Denied
    );
    assert_eq!(
        code(files.delete(&["ok.txt".into(), "private".into()])),
        FileErrorCode::Denied
    );
    // Every path is checked before any is deleted.
    assert!(server.exists("ok.txt"));
    assert!(server.exists("secret.txt") && server.exists("private/notes.txt"));
}

#[test]
fn nothing_can_be_renamed_or_copied_onto_a_denied_path() {
    let server = server();
    let files = server.denying(DENYLIST);
    assert_eq!(
        code(files.rename("ok.txt", "secret2.key")),
        FileErrorCode::Denied
    );
    assert_eq!(
        code(files.rename("ok.txt", "private/ok.txt")),
        FileErrorCode::Denied
    );
    assert_eq!(code(files.copy("ok.txt", "x.key")), FileErrorCode::Denied);
    assert!(server.exists("ok.txt") && !server.exists("secret2.key"));
}

#[test]
fn a_folder_holding_a_denied_entry_cannot_be_moved_copied_or_deleted() {
    let server = server();
    let files = server.denying(DENYLIST);
    assert_eq!(code(files.rename("conf", "conf2")), FileErrorCode::Denied);
    assert_eq!(code(files.copy("conf", "conf2")), FileErrorCode::Denied);
    assert_eq!(code(files.delete(&["conf".into()])), FileErrorCode::Denied);
    assert!(server.exists("conf/server.key") && !server.exists("conf2"));
}

#[test]
fn archives_leave_denied_entries_out_and_refuse_to_write_them() {
    let server = server();
    let files = server.denying(DENYLIST);
    files
        .compress("/", &["conf".into()], ArchiveFormat::Zip, Some("conf.zip"))
        .unwrap();
    let archive =
        zip::ZipArchive::new(std::fs::File::open(server.path().join("conf.zip")).unwrap()).unwrap();
    let mut names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["conf/", "conf/ok.cfg"]);
    assert_eq!(
        code(files.compress("/", &["secret.txt".into()], ArchiveFormat::Zip, None)),
        FileErrorCode::Denied
    );

    // An archive that would write a denied path is refused whole.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("fine.txt", options).unwrap();
    std::io::Write::write_all(&mut zip, b"fine").unwrap();
    zip.start_file("new.key", options).unwrap();
    std::io::Write::write_all(&mut zip, b"key").unwrap();
    server.write("keys.zip", &zip.finish().unwrap().into_inner());
    assert_eq!(
        code(files.decompress("keys.zip", "out")),
        FileErrorCode::Denied
    );
    assert!(!server.exists("out"));
}

#[test]
fn an_invalid_denylist_pattern_refuses_everything() {
    let server = server();
    let error = crate::files::ServerFiles::open(
        server.path(),
        cap_protocol::files::FileScope {
            denylist: vec!["[z-a".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(error.code, FileErrorCode::Denied);
}
