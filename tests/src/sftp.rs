//! The real OpenSSH `sftp` client (Debian's `openssh-client`), driven in
//! batch mode, for the tests of the Agent's SFTP server; passwords go
//! through `sshpass`.
//!
//! `sftp -b` turns `BatchMode` on, which forbids password prompts; an
//! earlier `-o BatchMode=no` wins (ssh keeps the first value of an option),
//! so `sshpass` can type the password. Host keys are neither checked nor
//! remembered. A batch stops at its first failing command (unless the
//! command starts with `-`), so a run's success says whether every command
//! worked.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

/// How a run signs in.
#[derive(Debug, Clone)]
pub enum Login {
    /// A password, typed by `sshpass`.
    Password(String),
    /// A private key file (`-i`), and nothing else.
    Key(PathBuf),
}

/// What a run did.
#[derive(Debug)]
pub struct Run {
    /// Whether `sftp` exited with 0 (signed in and every command worked).
    pub success: bool,
    /// Its standard output and error, for assertions and failure messages.
    pub output: String,
}

/// Whether the tools are installed (`sftp`, `ssh-keygen`, `sshpass`): a
/// test skips itself when they are not, except in CI (`CI` set), where
/// their absence is a failure.
///
/// # Panics
///
/// In CI, when a tool is missing.
pub fn available() -> bool {
    let found = ["sftp", "ssh-keygen", "sshpass"].iter().all(|tool| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
    });
    assert!(
        found || std::env::var_os("CI").is_none(),
        "the SFTP tests need `apt-get install openssh-client sshpass`"
    );
    found
}

/// Generates an Ed25519 key pair without a passphrase at `dir/name`;
/// returns the private key's path (the public key is beside it, `.pub`).
///
/// # Panics
///
/// When `ssh-keygen` fails.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed");
    key
}

/// The public key of `key` (the `.pub` file's line).
///
/// # Panics
///
/// When the file cannot be read.
pub fn public_key(key: &Path) -> String {
    let mut path = key.as_os_str().to_owned();
    path.push(".pub");
    std::fs::read_to_string(PathBuf::from(path))
        .expect("the public key")
        .trim()
        .to_owned()
}

/// Runs `batch` (sftp commands, one per line) as `user` on
/// `127.0.0.1:port`, within a minute; `cwd` is the local directory `get`
/// and `put` use.
///
/// # Panics
///
/// When the client cannot be started.
pub async fn run(port: u16, user: &str, login: &Login, cwd: &Path, batch: &str) -> Run {
    let mut command = match login {
        Login::Password(password) => {
            let mut command = tokio::process::Command::new("sshpass");
            command
                .arg("-e")
                .arg("sftp")
                .env("SSHPASS", password)
                .args([
                    "-o",
                    "BatchMode=no",
                    "-o",
                    "PubkeyAuthentication=no",
                    "-o",
                    "PreferredAuthentications=password,keyboard-interactive",
                    "-o",
                    "NumberOfPasswordPrompts=1",
                ]);
            command
        }
        Login::Key(key) => {
            let mut command = tokio::process::Command::new("sftp");
            command
                .args([
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "PasswordAuthentication=no",
                    "-o",
                    "KbdInteractiveAuthentication=no",
                    "-o",
                    "PreferredAuthentications=publickey",
                    "-i",
                ])
                .arg(key);
            command
        }
    };
    command
        .args([
            "-b",
            "-",
            "-P",
            &port.to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
            "-F",
            "/dev/null",
        ])
        .arg(format!("{user}@127.0.0.1"))
        .current_dir(cwd)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("sftp starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let batch = batch.to_owned();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(batch.as_bytes()).await;
        let _ = stdin.shutdown().await;
    });
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("sftp finishes within a minute")
        .expect("sftp runs");
    let _ = writer.await;
    Run {
        success: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}
