//! A real OpenID provider on loopback: `oidc-provider` from npm, run by
//! Debian's Node.js from `host/panel/tests/fixtures/oidc-provider/` (its
//! `package-lock.json` pins it; `npm ci` there installs it). The redirect
//! sign-in tests and the browser test sign in through it.
//!
//! Its interaction is scripted: whoever reaches its login prompt is signed
//! in as the current test account, and consents. [`OpenIdProvider::set`]
//! changes that account and makes its token endpoint tamper with the ID
//! tokens it issues (a wrong nonce, issuer or audience, expired, unsigned,
//! signed by a key not in its JWKS, or an answer that is not JSON): see
//! `provider.mjs`.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// The client id every test provider knows its Panel by.
pub const CLIENT_ID: &str = "panel";
/// The client secret that goes with it.
pub const CLIENT_SECRET: &str = "panel-client-secret";

/// How long the provider may take to start: a machine running the whole
/// suite on two cores once took longer than a minute to load its modules.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A real OpenID provider on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct OpenIdProvider {
    child: Child,
    /// Its issuer URL (`http://127.0.0.1:<port>`).
    pub issuer: String,
}

impl OpenIdProvider {
    /// Starts one that knows client [`CLIENT_ID`] returning to
    /// `redirect_uris`.
    ///
    /// # Panics
    ///
    /// Without Node.js or the package installed, naming how to get them.
    pub fn start(redirect_uris: &[String]) -> OpenIdProvider {
        let dir = cap_e2e::repo_root().join("host/panel/tests/fixtures/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the test OpenID provider is not installed: `apt-get install nodejs npm`, then \
             `npm ci --prefix {}`",
            dir.display()
        );
        let options = json!({ "clients": [{
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": redirect_uris,
        }]});
        // Its errors go to a file, shown if it never becomes ready.
        let errors = tempfile::NamedTempFile::new().expect("a file for node's errors");
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .arg(options.to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(errors.reopen().expect("node's error file"))
            .spawn()
            .expect("node runs (apt-get install nodejs npm)");
        let stdout = child.stdout.take().expect("stdout");
        // Its first line, then the rest drained, so that nothing it prints
        // later meets a closed pipe; a provider that never says where it
        // listens fails the test rather than hanging it.
        let (sender, first) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = sender.send(line);
            std::io::copy(&mut stdout, &mut std::io::sink())
        });
        let started = std::time::Instant::now();
        let line = first.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let Some(issuer) = line.strip_prefix("ready ").map(|i| i.trim().to_owned()) else {
            let _ = child.kill();
            let status = child.wait();
            let stderr = std::fs::read_to_string(errors.path()).unwrap_or_default();
            panic!(
                "the OpenID provider was not ready after {:?} (at most {START_TIMEOUT:?}): \
                 first line {line:?}, exit {status:?}, stderr:\n{stderr}",
                started.elapsed()
            );
        };
        OpenIdProvider { child, issuer }
    }

    /// Steers the provider: `{"mode": …}`, `{"account": {…}}`.
    ///
    /// # Panics
    ///
    /// When the provider does not accept it.
    pub async fn set(&self, body: Value) {
        let response = crate::client()
            .post(format!("{}/__test", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("the provider answers");
        assert_eq!(response.status(), 204);
    }
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `plugin.toml` of the `oidc` example plugin as instance `id`,
/// allowed to reach providers on loopback.
pub fn oidc_manifest(id: &str) -> String {
    crate::manifest_text("oidc")
        .replacen("id = \"oidc\"", &format!("id = \"{id}\""), 1)
        .replace(
            r#"allowed-hosts = ["accounts.google.com", "oauth2.googleapis.com", "www.googleapis.com"]"#,
            r#"allowed-hosts = ["127.0.0.1:*"]"#,
        )
}
