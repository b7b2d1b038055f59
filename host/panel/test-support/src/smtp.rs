//! A real SMTP server for the mail tests: Python's `aiosmtpd` (`pip
//! install aiosmtpd`; `.ci/run` installs it) on a loopback port, keeping
//! what it receives in a Maildir the tests read back, or refusing every
//! recipient with `550` (`host/panel/tests/fixtures/smtp/refusing.py`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `aiosmtpd`; stopped when dropped.
pub struct Smtp {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl Smtp {
    /// A server that takes every message.
    pub async fn accepting() -> Smtp {
        let maildir = tempfile::tempdir().expect("a temporary directory");
        // aiosmtpd's Mailbox makes the Maildir (tmp, new, cur) only where
        // nothing exists yet.
        let folder = maildir.path().join("mail").display().to_string();
        Smtp::start(maildir, &["aiosmtpd.handlers.Mailbox", &folder]).await
    }

    /// A server that refuses every recipient with `550`.
    pub async fn refusing() -> Smtp {
        let maildir = tempfile::tempdir().expect("a temporary directory");
        Smtp::start(maildir, &["refusing.Refusing"]).await
    }

    async fn start(maildir: tempfile::TempDir, handler: &[&str]) -> Smtp {
        let port = crate::free_port();
        let fixtures = cap_e2e::repo_root().join("host/panel/tests/fixtures/smtp");
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
            ])
            .args(handler)
            .env("PYTHONPATH", fixtures)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd starts (pip install aiosmtpd)");
        let smtp = Smtp {
            child,
            port,
            maildir,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return smtp;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not listen on port {port}");
    }

    /// The messages received so far, raw, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("mail/new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("a message"))
            .collect()
    }

    /// Waits for the `n`th message (1-based) and returns it with its
    /// quoted-printable soft line breaks and `=3D` undone.
    pub async fn message(&self, n: usize) -> String {
        for _ in 0..200 {
            if let Some(message) = self.messages().into_iter().nth(n - 1) {
                return message
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no message {n} arrived; got {:?}", self.messages());
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token of the first one-time link (`/#/link/<token>`) in `text`.
pub fn link_token(text: &str) -> String {
    let start = text.find("/#/link/").expect("a link") + "/#/link/".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}
