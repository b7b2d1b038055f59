//! The SFTP server against the real OpenSSH client, with a stand-in for the
//! Panel that allows every sign-in with the scope a test picks: what the
//! server enforces on its own (the scope's denylist and read-only flag,
//! the session's permissions, no symbolic links), apart from the Panel's
//! decision, which the Panel's tests cover end to end.

use std::path::Path;
use std::sync::Arc;

use cap_e2e::sftp::{self, Login};
use cap_protocol::AgentMessage;
use cap_protocol::files::FileScope;
use cap_protocol::sftp::{SftpAuthResponse, SftpDecision, SftpPermissions};
use tokio::sync::mpsc;

use super::PanelAuth;

const SERVER: &str = "srv_deadbeef0123";

struct Site {
    data: tempfile::TempDir,
    local: tempfile::TempDir,
    key: std::path::PathBuf,
    port: u16,
    changes: mpsc::Receiver<AgentMessage>,
    /// The Agent's read-only servers, as the link would set them.
    read_only: Arc<crate::files::ReadOnlyServers>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Site {
    fn server_dir(&self) -> std::path::PathBuf {
        self.data.path().join("servers").join(SERVER)
    }

    async fn sftp(&self, batch: &str) -> sftp::Run {
        sftp::run(
            self.port,
            "alice.deadbeef",
            &Login::Key(self.key.clone()),
            self.local.path(),
            batch,
        )
        .await
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// An SFTP server whose stand-in Panel allows every sign-in with `scope`
/// and `permissions`.
async fn site(scope: FileScope, permissions: SftpPermissions) -> Option<Site> {
    if !sftp::available() {
        eprintln!("skipped: sftp, ssh-keygen or sshpass is not installed");
        return None;
    }
    let data = tempfile::tempdir().expect("a directory");
    std::fs::create_dir_all(data.path().join("servers").join(SERVER)).expect("the server dir");
    let local = tempfile::tempdir().expect("a directory");
    let key = sftp::keygen(local.path(), "id_test");
    let (outgoing, mut asked) = mpsc::channel(16);
    let (changes_tx, changes) = mpsc::channel(64);
    let auth = PanelAuth::new(outgoing);
    auth.set_connected(true);
    let read_only = auth.read_only().clone();
    let panel = {
        let auth: Arc<PanelAuth> = auth.clone();
        tokio::spawn(async move {
            while let Some(message) = asked.recv().await {
                if let AgentMessage::SftpAuth(request) = message {
                    auth.answer(SftpAuthResponse {
                        request_id: request.request_id,
                        decision: SftpDecision::Allow {
                            server_id: SERVER.into(),
                            user_id: "usr_alice".into(),
                            scope: scope.clone(),
                            permissions,
                        },
                    });
                }
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let port = listener.local_addr().expect("bound").port();
    let host_key = super::host_key(data.path()).expect("a host key");
    let data_dir = data.path().to_owned();
    let server = tokio::spawn(async move {
        super::serve(
            listener,
            host_key,
            &data_dir,
            auth,
            changes_tx,
            crate::files::DiskUsage::new(std::time::Duration::from_secs(60)),
        )
        .await;
    });
    Some(Site {
        data,
        local,
        key,
        port,
        changes,
        read_only,
        tasks: vec![panel, server],
    })
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denylisted_file_is_neither_listed_nor_read_nor_written_nor_renamed() {
    let scope = FileScope {
        denylist: vec!["secret.txt".into(), "*.key".into()],
        disk_mb: 0,
        read_only: false,
    };
    let Some(site) = site(scope, SftpPermissions::all()).await else {
        return;
    };
    write(&site.server_dir(), "secret.txt", "hidden");
    write(&site.server_dir(), "server.properties", "motd=hi");
    let listed = site.sftp("ls -1\n").await;
    assert!(listed.success, "{}", listed.output);
    assert!(
        listed.output.contains("server.properties"),
        "{}",
        listed.output
    );
    assert!(!listed.output.contains("secret.txt"), "{}", listed.output);
    for batch in [
        "get secret.txt\n",
        "get /secret.txt stolen.txt\n",
        "rename server.properties secret.txt\n",
        "rename secret.txt out.txt\n",
        "rm secret.txt\n",
    ] {
        let run = site.sftp(batch).await;
        assert!(!run.success, "{batch}: {}", run.output);
    }
    write(site.local.path(), "new.key", "k");
    let run = site.sftp("put new.key\n").await;
    assert!(!run.success, "{}", run.output);
    assert!(!site.server_dir().join("new.key").exists());
    assert_eq!(
        std::fs::read_to_string(site.server_dir().join("secret.txt")).expect("kept"),
        "hidden"
    );
    assert!(!site.local.path().join("secret.txt").exists());
    assert!(!site.local.path().join("stolen.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_scope_lists_and_reads_but_refuses_every_write() {
    let scope = FileScope {
        denylist: Vec::new(),
        disk_mb: 0,
        read_only: true,
    };
    let Some(site) = site(scope, SftpPermissions::all()).await else {
        return;
    };
    write(&site.server_dir(), "a.txt", "A");
    let run = site.sftp("ls\nget a.txt\n").await;
    assert!(run.success, "{}", run.output);
    assert_eq!(
        std::fs::read_to_string(site.local.path().join("a.txt")).expect("got"),
        "A"
    );
    write(site.local.path(), "b.txt", "B");
    for batch in [
        "put b.txt\n",
        "mkdir d\n",
        "rm a.txt\n",
        "rename a.txt c.txt\n",
        "chmod 600 a.txt\n",
    ] {
        let run = site.sftp(batch).await;
        assert!(!run.success, "{batch}: {}", run.output);
    }
    assert!(!site.server_dir().join("b.txt").exists());
    assert!(!site.server_dir().join("d").exists());
    assert!(site.server_dir().join("a.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_can_do_only_what_its_file_permissions_allow_and_never_makes_a_symlink() {
    let read_only_user = SftpPermissions {
        read: true,
        read_content: false,
        ..SftpPermissions::default()
    };
    let Some(mut site) = site(FileScope::default(), read_only_user).await else {
        return;
    };
    write(&site.server_dir(), "a.txt", "A");
    write(site.local.path(), "a.txt", "local");
    let run = site.sftp("ls\n").await;
    assert!(run.success, "{}", run.output);
    for batch in [
        "get a.txt\n",
        "put a.txt\n",
        "mkdir d\n",
        "rm a.txt\n",
        "ln -s a.txt l\n",
        "symlink /etc/passwd l\n",
    ] {
        let run = site.sftp(batch).await;
        assert!(!run.success, "{batch}: {}", run.output);
    }
    assert!(!site.server_dir().join("l").exists());
    assert!(
        site.changes.try_recv().is_err(),
        "nothing changed, nothing reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_file_is_reported_once_it_is_closed() {
    let Some(mut site) = site(FileScope::default(), SftpPermissions::all()).await else {
        return;
    };
    write(site.local.path(), "up.txt", "hello");
    let run = site.sftp("put up.txt\n").await;
    assert!(run.success, "{}", run.output);
    let change = loop {
        match site.changes.recv().await.expect("a change") {
            AgentMessage::FileChanged(change) => break change,
            _ => continue,
        }
    };
    assert_eq!(change.server_id, SERVER);
    assert_eq!(change.user_id, "usr_alice");
    assert_eq!(change.via, "sftp");
    assert_eq!(change.action, "write");
    assert_eq!(change.path, "/up.txt");
    assert_eq!(change.bytes, Some(5));
    assert_eq!(
        std::fs::read_to_string(site.server_dir().join("up.txt")).expect("written"),
        "hello"
    );
}

#[tokio::test]
async fn the_host_key_is_made_once_and_kept() {
    let dir = tempfile::tempdir().expect("a directory");
    let first = super::host_key(dir.path()).expect("made");
    let again = super::host_key(dir.path()).expect("read");
    assert_eq!(first.public_key(), again.public_key());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join(super::HOST_KEY_FILE))
        .expect("the file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// `result`'s refusal status; panics when it succeeded.
fn refused<T>(
    result: Result<T, russh_sftp::server::StatusReply>,
) -> russh_sftp::protocol::StatusCode {
    match result {
        Ok(_) => panic!("the request should have been refused"),
        Err(reply) => reply.status_code,
    }
}

#[tokio::test]
async fn a_session_opened_before_its_server_was_suspended_writes_no_more_and_still_reads() {
    use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
    use russh_sftp::server::Handler as _;

    let data = tempfile::tempdir().expect("a directory");
    let dir = data.path().join(SERVER);
    std::fs::create_dir_all(&dir).expect("the server dir");
    write(&dir, "motd.txt", "hi");
    let files = crate::files::ServerFiles::open(&dir, FileScope::default()).expect("opened");
    let (changes, _changed) = mpsc::channel(64);
    let read_only = crate::files::ReadOnlyServers::new();
    let mut session = super::handler::SftpSession::new(
        files,
        SftpPermissions::all(),
        SERVER.into(),
        "usr_alice".into(),
        changes,
        read_only.clone(),
    );
    let create = OpenFlags::WRITE | OpenFlags::CREATE;
    let Ok(open) = session
        .open(1, "/new.txt".into(), create, FileAttributes::empty())
        .await
    else {
        panic!("opened for writing");
    };
    assert!(
        session
            .write(2, open.handle.clone(), 0, b"before".to_vec())
            .await
            .is_ok()
    );

    // The Panel suspends the server: the handle already open writes no more…
    read_only.replace([SERVER.to_owned()]);
    let late = session
        .write(3, open.handle.clone(), 6, b" after".to_vec())
        .await;
    assert_eq!(refused(late), StatusCode::PermissionDenied);
    // …nor does anything else that writes.
    let other = session
        .open(4, "/other.txt".into(), create, FileAttributes::empty())
        .await;
    assert_eq!(refused(other), StatusCode::PermissionDenied);
    let removed = session.remove(5, "/motd.txt".into()).await;
    assert_eq!(refused(removed), StatusCode::PermissionDenied);
    let folder = session.mkdir(6, "/d".into(), FileAttributes::empty()).await;
    assert_eq!(refused(folder), StatusCode::PermissionDenied);
    let renamed = session.rename(7, "/motd.txt".into(), "/m.txt".into()).await;
    assert_eq!(refused(renamed), StatusCode::PermissionDenied);
    let mode = FileAttributes {
        permissions: Some(0o600),
        ..FileAttributes::empty()
    };
    let chmod = session.setstat(8, "/motd.txt".into(), mode).await;
    assert_eq!(refused(chmod), StatusCode::PermissionDenied);
    assert!(!dir.join("other.txt").exists() && !dir.join("d").exists());
    assert!(dir.join("motd.txt").is_file());
    // Reads go on.
    let Ok(reading) = session
        .open(
            9,
            "/motd.txt".into(),
            OpenFlags::READ,
            FileAttributes::empty(),
        )
        .await
    else {
        panic!("opened for reading");
    };
    let Ok(read) = session.read(10, reading.handle, 0, 64).await else {
        panic!("read");
    };
    assert_eq!(read.data, b"hi");

    // Lifted: the same handle writes again.
    read_only.replace(Vec::<String>::new());
    assert!(
        session
            .write(11, open.handle.clone(), 6, b" after".to_vec())
            .await
            .is_ok()
    );
    assert!(session.close(12, open.handle).await.is_ok());
    assert_eq!(
        std::fs::read_to_string(dir.join("new.txt")).expect("written"),
        "before after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_to_a_server_the_agent_holds_read_only_gets_a_read_only_session() {
    let Some(site) = site(FileScope::default(), SftpPermissions::all()).await else {
        return;
    };
    site.read_only.replace([SERVER.to_owned()]);
    write(&site.server_dir(), "motd.txt", "hi");
    std::fs::write(site.local.path().join("up.txt"), "x").expect("a file");
    let run = site.sftp("get motd.txt\n").await;
    assert!(run.success, "{}", run.output);
    for batch in ["put up.txt\n", "rm motd.txt\n", "mkdir d\n"] {
        let run = site.sftp(batch).await;
        assert!(!run.success, "{batch}: {}", run.output);
    }
    assert!(!site.server_dir().join("up.txt").exists());
    assert!(site.server_dir().join("motd.txt").exists());
}
