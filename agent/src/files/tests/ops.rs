//! Every operation's happy path, modes, ownership and read-only scopes.

use std::io::{Cursor, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use cap_protocol::files::{FileAnswer, FileErrorCode, FileKind, FileOp, FileScope};

use super::{Server, code};

fn mode_of(server: &Server, rel: &str) -> u32 {
    std::fs::metadata(server.path().join(rel))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn list_shows_folders_first_then_files_by_name_with_size_mode_time_and_type() {
    let server = Server::new();
    server.write("b.txt", b"hello");
    server.write("a.json", b"{}");
    server.write("blob.dat", &[0, 159, 146, 150]);
    server.write("notes", "héllo wörld".as_bytes());
    server.write("zdir/inner.txt", b"x");
    std::fs::create_dir(server.path().join("adir")).unwrap();
    let entries = server.files().list("/").unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["adir", "zdir", "a.json", "b.txt", "blob.dat", "notes"]
    );
    let b = &entries[3];
    assert_eq!(
        (b.path.as_str(), b.kind, b.size),
        ("/b.txt", FileKind::File, 5)
    );
    assert_eq!(b.mode, mode_of(&server, "b.txt"));
    assert!(b.modified_ms > 1_600_000_000_000);
    assert_eq!(b.mime.as_deref(), Some("text/plain"));
    assert_eq!(entries[2].mime.as_deref(), Some("application/json"));
    assert_eq!(entries[4].mime.as_deref(), Some("application/octet-stream"));
    assert_eq!(entries[5].mime.as_deref(), Some("text/plain"));
    assert_eq!(
        (entries[0].kind, entries[0].size, entries[0].mime.as_deref()),
        (FileKind::Directory, 0, None)
    );
    let inner = server.files().list("/zdir/").unwrap();
    assert_eq!(inner[0].path, "/zdir/inner.txt");
}

#[test]
fn list_of_a_file_is_not_a_directory_and_of_nothing_not_found() {
    let server = Server::new();
    server.write("f.txt", b"f");
    assert_eq!(
        code(server.files().list("f.txt")),
        FileErrorCode::NotADirectory
    );
    assert_eq!(
        code(server.files().list("nothing")),
        FileErrorCode::NotFound
    );
}

#[test]
fn stat_describes_one_entry_and_the_server_directory() {
    let server = Server::new();
    server.write("dir/f.txt", b"four");
    let entry = server.files().stat("dir/f.txt").unwrap();
    assert_eq!(
        (entry.name.as_str(), entry.path.as_str(), entry.size),
        ("f.txt", "/dir/f.txt", 4)
    );
    let root = server.files().stat("/").unwrap();
    assert_eq!((root.path.as_str(), root.kind), ("/", FileKind::Directory));
}

#[test]
fn open_read_gives_the_file_at_its_start_with_its_entry() {
    let server = Server::new();
    server.write("log.txt", b"line one\nline two\n");
    let (mut file, entry) = server.files().open_read("log.txt").unwrap();
    let mut contents = String::new();
    file.read_to_string(&mut contents).unwrap();
    assert_eq!(contents, "line one\nline two\n");
    assert_eq!(
        (entry.size, entry.mime.as_deref()),
        (18, Some("text/plain"))
    );
}

#[test]
fn open_read_refuses_folders_and_special_files() {
    let server = Server::new();
    std::fs::create_dir(server.path().join("dir")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        server.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    assert_eq!(
        code(server.files().open_read("dir")),
        FileErrorCode::IsADirectory
    );
    assert_eq!(
        code(server.files().open_read("/")),
        FileErrorCode::IsADirectory
    );
    assert_eq!(
        code(server.files().open_read("fifo")),
        FileErrorCode::SpecialFile
    );
    assert_eq!(server.files().stat("fifo").unwrap().kind, FileKind::Other);
}

#[test]
fn create_folder_makes_missing_parents_and_refuses_an_existing_one() {
    let server = Server::new();
    let entry = server.files().create_folder("/a/b/c").unwrap();
    assert_eq!(
        (entry.path.as_str(), entry.kind),
        ("/a/b/c", FileKind::Directory)
    );
    assert!(server.path().join("a/b/c").is_dir());
    assert_eq!(
        code(server.files().create_folder("a/b")),
        FileErrorCode::AlreadyExists
    );
}

#[test]
fn rename_moves_an_entry_and_refuses_an_existing_target() {
    let server = Server::new();
    server.write("a.txt", b"a");
    server.write("b.txt", b"b");
    server.write("dir/inner.txt", b"i");
    let files = server.files();
    let entry = files.rename("a.txt", "dir/moved.txt").unwrap();
    assert_eq!(entry.path, "/dir/moved.txt");
    assert_eq!(server.read("dir/moved.txt"), b"a");
    assert!(!server.exists("a.txt"));
    assert_eq!(
        code(files.rename("b.txt", "dir/moved.txt")),
        FileErrorCode::AlreadyExists
    );
    assert_eq!(server.read("dir/moved.txt"), b"a");
    assert_eq!(
        code(files.rename("dir", "dir/sub")),
        FileErrorCode::InvalidPath
    );
    assert_eq!(code(files.rename("missing", "x")), FileErrorCode::NotFound);
    files.rename("dir", "renamed").unwrap();
    assert_eq!(server.read("renamed/inner.txt"), b"i");
}

#[test]
fn copy_copies_files_and_trees_with_their_modes_and_links() {
    let server = Server::new();
    server.write("tree/a.txt", b"a");
    server.write("tree/sub/b.txt", b"b");
    std::fs::set_permissions(
        server.path().join("tree/a.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    server.symlink("a.txt", "tree/link");
    let files = server.files();
    files.copy("tree", "copy").unwrap();
    assert_eq!(server.read("copy/a.txt"), b"a");
    assert_eq!(server.read("copy/sub/b.txt"), b"b");
    assert_eq!(mode_of(&server, "copy/a.txt"), 0o600);
    assert_eq!(
        std::fs::read_link(server.path().join("copy/link")).unwrap(),
        std::path::Path::new("a.txt")
    );
    let entry = files.copy("tree/a.txt", "single.txt").unwrap();
    assert_eq!((entry.path.as_str(), entry.size), ("/single.txt", 1));
    assert_eq!(
        code(files.copy("tree/a.txt", "single.txt")),
        FileErrorCode::AlreadyExists
    );
    assert_eq!(
        code(files.copy("tree", "tree/inside")),
        FileErrorCode::InvalidPath
    );
}

#[test]
fn delete_removes_many_entries_and_counts_those_that_were_there() {
    let server = Server::new();
    server.write("a.txt", b"a");
    server.write("dir/b.txt", b"b");
    server.write("keep.txt", b"k");
    let count = server
        .files()
        .delete(&["a.txt".into(), "dir".into(), "never-was".into()])
        .unwrap();
    assert_eq!(count, 2);
    assert_eq!(server.names("."), ["keep.txt"]);
}

#[test]
fn chmod_sets_permission_bits() {
    let server = Server::new();
    server.write("run.sh", b"#!/bin/sh\n");
    std::fs::create_dir(server.path().join("dir")).unwrap();
    let entry = server.files().chmod("run.sh", 0o755).unwrap();
    assert_eq!(entry.mode, 0o755);
    assert_eq!(mode_of(&server, "run.sh"), 0o755);
    server.files().chmod("dir", 0o700).unwrap();
    assert_eq!(mode_of(&server, "dir"), 0o700);
    server.files().chmod("/", 0o750).unwrap();
    assert_eq!(mode_of(&server, "."), 0o750);
}

#[test]
fn chmod_with_setuid_setgid_or_sticky_bits_is_an_invalid_mode() {
    let server = Server::new();
    server.write("run.sh", b"#!/bin/sh\n");
    for mode in [0o4755, 0o2755, 0o1777, 0o10_0644] {
        assert_eq!(
            code(server.files().chmod("run.sh", mode)),
            FileErrorCode::InvalidMode
        );
    }
    assert_eq!(mode_of(&server, "run.sh") & 0o7000, 0);
}

#[test]
fn run_dispatches_operations_and_refuses_pull() {
    let server = Server::new();
    let files = server.files();
    let answer = files
        .run(FileOp::CreateFolder { path: "/x".into() })
        .unwrap();
    assert!(matches!(answer, FileAnswer::Entry { entry } if entry.path == "/x"));
    let answer = files.run(FileOp::List { path: "/".into() }).unwrap();
    assert!(matches!(answer, FileAnswer::Entries { entries } if entries.len() == 1));
    let answer = files
        .run(FileOp::Delete {
            paths: vec!["/x".into()],
        })
        .unwrap();
    assert_eq!(answer, FileAnswer::Deleted { count: 1 });
    let pull = files.run(FileOp::Pull {
        url: "http://example.invalid/".into(),
        directory: "/".into(),
        file_name: None,
        allowed_hosts: Vec::new(),
    });
    assert_eq!(code(pull), FileErrorCode::PullRefused);
}

#[test]
fn a_missing_server_directory_is_an_unknown_server() {
    let dir = tempfile::tempdir().unwrap();
    let error = crate::files::ServerFiles::open(&dir.path().join("gone"), FileScope::default())
        .unwrap_err();
    assert_eq!(error.code, FileErrorCode::UnknownServer);
}

#[test]
fn a_read_only_scope_refuses_every_write_and_allows_reads() {
    let server = Server::new();
    server.write("a.txt", b"a");
    server.write("a.zip", b"PK\x05\x06");
    let files = server.with(FileScope {
        read_only: true,
        ..FileScope::default()
    });
    let staging_dir = tempfile::tempdir().unwrap();
    let staging =
        cap_std::fs::Dir::open_ambient_dir(staging_dir.path(), cap_std::ambient_authority())
            .unwrap();
    assert_eq!(code(files.create_folder("d")), FileErrorCode::ReadOnly);
    assert_eq!(
        code(files.rename("a.txt", "b.txt")),
        FileErrorCode::ReadOnly
    );
    assert_eq!(code(files.copy("a.txt", "b.txt")), FileErrorCode::ReadOnly);
    assert_eq!(
        code(files.delete(&["a.txt".into()])),
        FileErrorCode::ReadOnly
    );
    assert_eq!(code(files.chmod("a.txt", 0o600)), FileErrorCode::ReadOnly);
    assert_eq!(
        code(files.compress(
            "/",
            &["a.txt".into()],
            cap_protocol::files::ArchiveFormat::Zip,
            None
        )),
        FileErrorCode::ReadOnly
    );
    assert_eq!(
        code(files.decompress("a.zip", "/")),
        FileErrorCode::ReadOnly
    );
    assert_eq!(
        code(files.upload_append(&staging, "u", "n.txt", 0, &mut Cursor::new(b"x"), None)),
        FileErrorCode::ReadOnly
    );
    assert_eq!(
        code(files.upload_finish(&staging, "u", "n.txt")),
        FileErrorCode::ReadOnly
    );
    assert_eq!(files.list("/").unwrap().len(), 2);
    assert!(files.open_read("a.txt").is_ok());
    assert_eq!(server.names("."), ["a.txt", "a.zip"]);
}

/// As root (the tests' user), what the Agent creates belongs to the owner
/// of the server's directory.
#[test]
fn new_entries_belong_to_the_owner_of_the_server_directory() {
    assert!(
        crate::isolation::agent_is_root(),
        "this test checks ownership changes and runs as root"
    );
    let server = Server::new();
    std::os::unix::fs::chown(server.path(), Some(4242), Some(4343)).unwrap();
    server.write("src/a.txt", b"a");
    let files = server.files();
    files.create_folder("made/deep").unwrap();
    files.copy("src", "copied").unwrap();
    files
        .compress(
            "/",
            &["src".into()],
            cap_protocol::files::ArchiveFormat::TarGz,
            Some("src.tar.gz"),
        )
        .unwrap();
    files.decompress("src.tar.gz", "extracted").unwrap();
    let staging_dir = tempfile::tempdir().unwrap();
    let staging =
        cap_std::fs::Dir::open_ambient_dir(staging_dir.path(), cap_std::ambient_authority())
            .unwrap();
    files
        .upload_append(
            &staging,
            "up",
            "uploaded.txt",
            0,
            &mut Cursor::new(b"up"),
            None,
        )
        .unwrap();
    files.upload_finish(&staging, "up", "uploaded.txt").unwrap();
    for rel in [
        "made",
        "made/deep",
        "copied",
        "copied/a.txt",
        "src.tar.gz",
        "extracted",
        "extracted/src",
        "extracted/src/a.txt",
        "uploaded.txt",
    ] {
        let meta = std::fs::symlink_metadata(server.path().join(rel)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "{rel}");
    }
}

#[test]
fn empty_removes_every_entry_keeps_the_directory_and_follows_no_link_out() {
    let server = Server::new();
    server.write("world/level.dat", b"level");
    server.write("world/region/r.0.0.mca", b"region");
    server.write("server.properties", b"motd=x");
    server.write(".hidden", b"h");
    server.symlink("../neighbour.txt", "outside-file");
    server.symlink("..", "up");
    server.symlink("world", "world-link");
    let outer = server.path().parent().unwrap().to_owned();
    // The denylist hides entries from users; a reinstall's wipe takes them too.
    let files = server.denying(&["server.properties"]);
    assert_eq!(files.empty().unwrap(), 6);
    assert!(server.path().is_dir(), "the directory itself stays");
    assert!(
        std::fs::read_dir(server.path()).unwrap().next().is_none(),
        "nothing is left in it"
    );
    assert_eq!(
        std::fs::read(outer.join("neighbour.txt")).unwrap(),
        b"not the server's",
        "a link's target outside is untouched"
    );
    assert!(outer.join("server").is_dir());
    assert_eq!(files.empty().unwrap(), 0, "an empty directory stays empty");
}

#[test]
fn empty_in_a_read_only_scope_is_refused_and_removes_nothing() {
    let server = Server::new();
    server.write("a.txt", b"a");
    server.write("d/b.txt", b"b");
    let files = server.with(FileScope {
        read_only: true,
        ..FileScope::default()
    });
    assert_eq!(code(files.empty()), FileErrorCode::ReadOnly);
    assert!(server.exists("a.txt") && server.exists("d/b.txt"));
}
