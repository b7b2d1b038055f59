//! A real SMTP server for the mail tests: Python's `aiosmtpd` (`pip
//! install aiosmtpd`; `.ci/run` installs it) on a loopback port, keeping
//! what it receives in a Maildir the tests read back, or refusing every
//! recipient with `550` (`host/panel/tests/fixtures/smtp/refusing.py`);
//! plain, with `STARTTLS`, or TLS from the first byte, its certificate
//! issued by a test CA ([`TestCa`], made with the `openssl` command).

use std::path::{Path, PathBuf};
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
        Smtp::start(maildir, &["-c", "aiosmtpd.handlers.Mailbox", &folder]).await
    }

    /// A server that refuses every recipient with `550`.
    pub async fn refusing() -> Smtp {
        let maildir = tempfile::tempdir().expect("a temporary directory");
        Smtp::start(maildir, &["-c", "refusing.Refusing"]).await
    }

    /// A server that takes every message over TLS with the certificate
    /// `cert` and its key `key` (PEM files): upgraded with `STARTTLS`,
    /// which it then requires before any mail, or TLS from the first byte.
    pub async fn accepting_tls(implicit: bool, cert: &Path, key: &Path) -> Smtp {
        let maildir = tempfile::tempdir().expect("a temporary directory");
        let folder = maildir.path().join("mail").display().to_string();
        let (cert_flag, key_flag) = match implicit {
            true => ("--smtpscert", "--smtpskey"),
            false => ("--tlscert", "--tlskey"),
        };
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let args = [
            cert_flag,
            &cert,
            key_flag,
            &key,
            "-c",
            "aiosmtpd.handlers.Mailbox",
            &folder,
        ];
        Smtp::start(maildir, &args).await
    }

    /// `args` end with `-c` and the handler class with its arguments.
    async fn start(maildir: tempfile::TempDir, args: &[&str]) -> Smtp {
        let port = crate::free_port();
        let fixtures = cap_e2e::repo_root().join("host/panel/tests/fixtures/smtp");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(args)
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

/// A certificate authority made for one test with the `openssl` command,
/// and a server certificate it issued for `127.0.0.1`.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// A new CA and its server certificate.
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl runs");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509", "-days", "2", "-subj", "/CN=Test mail CA"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem"],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req", "-subj", "/CN=127.0.0.1"][..],
                &ec,
                &["-keyout", "server.key", "-out", "server.csr"],
            ]
            .concat(),
        );
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n",
        )
        .expect("writing server.ext");
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        TestCa { dir }
    }

    /// The CA's certificate, PEM.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server's certificate, PEM.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key, PEM.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}
