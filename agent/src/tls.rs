//! TLS for the file-transfer listener (`--files-tls-cert`,
//! `--files-tls-key`), so that browsers on an `https://` Panel reach the
//! Agent directly, as they reach Wings, without a proxy in front.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use cap_agent::tls::{Certificates, TlsListener};
//!
//! let certs = Certificates::load("/etc/cap/node.crt".as_ref(), "/etc/cap/node.key".as_ref())?;
//! let tcp = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! let app = axum::Router::new();
//! axum::serve(TlsListener::new(tcp, certs)?, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Decisions
//!
//! - **rustls on aws-lc-rs**, the stack every TLS client of this workspace
//!   already uses; TLS 1.2 and 1.3, HTTP/1.1 announced over ALPN (the
//!   listener speaks HTTP/1.1 only).
//! - **PEM files, checked at start, reloaded when they change.** The
//!   certificate file holds the chain, leaf first (what certbot's
//!   `fullchain.pem` holds); the key file one PKCS#8, PKCS#1 or SEC1 key.
//!   Either file missing, unreadable, empty or not matching the other is
//!   refused at start, naming the file, before anything is served. The
//!   listener then looks at both files every [`RELOAD_INTERVAL`] and loads
//!   them again when either changed (modification time, size or inode: a
//!   renewal that replaces them or a link to them), so a renewed
//!   certificate needs no restart and no hook. New connections get the
//!   new pair; a pair that cannot be used (half renewed, say) is logged
//!   and the one before keeps serving until the files change again.
//! - **Handshakes never hold the accept loop.** Each runs in a task of its
//!   own, at most [`MAX_HANDSHAKES`] at once and each for at most
//!   [`HANDSHAKE_TIMEOUT`]; axum serves the connections that finished
//!   theirs. A client that opens connections and says nothing costs a
//!   permit for ten seconds, not the listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes under way at once; further connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 256;

/// A certificate or key that cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read or holds no PEM item of the kind asked.
    #[error("--files-tls-{what} {}: {reason}", path.display())]
    File {
        /// `cert` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the
    /// certificate, an algorithm it does not support).
    #[error("the certificate {} and key {} cannot serve TLS: {reason}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
}

/// How often the listener looks for a renewed certificate.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// The certificate chain and key a listener serves, reloaded from their
/// files when they change.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the files looked like when last loaded (or tried).
    seen: Mutex<Stamp>,
    interval: Duration,
}

/// Modification time, size and inode of the two files.
type Stamp = [Option<(std::time::SystemTime, u64, u64)>; 2];

impl Certificates {
    /// The chain at `cert` and the private key at `key` (PEM), checked.
    ///
    /// # Errors
    ///
    /// [`TlsError::File`] for a file that cannot be read or holds nothing
    /// usable, [`TlsError::Pair`] when the key does not fit the
    /// certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificates>, TlsError> {
        Certificates::load_watching_every(cert, key, RELOAD_INTERVAL)
    }

    /// The same, looking for changes every `interval` instead of
    /// [`RELOAD_INTERVAL`].
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn load_watching_every(
        cert: &Path,
        key: &Path,
        interval: Duration,
    ) -> Result<Arc<Certificates>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let seen = stamp(cert, key);
        let current = certified(cert, key, &provider)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(current),
            seen: Mutex::new(seen),
            interval,
        }))
    }

    /// Loads the files again if they changed since last time; returns
    /// whether a new pair is served now. Blocking (reads two files).
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.cert, &self.key);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match certified(&self.cert, &self.key, &self.provider) {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = pair;
                tracing::info!(cert = %self.cert.display(), "file transfers: serving the renewed certificate");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "file transfers: the changed certificate cannot be used; the previous one keeps serving");
                false
            }
        }
    }

    /// The rustls configuration that serves the current pair.
    fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    [cert, key].map(|path| {
        std::fs::metadata(path)
            .ok()
            .and_then(|meta| Some((meta.modified().ok()?, meta.len(), meta.ino())))
    })
}

/// The pair in `cert` and `key`, checked to match.
fn certified(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let file_error = |what, path: &Path, reason: String| TlsError::File {
        what,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error("cert", cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error("cert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(
            "cert",
            cert,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        file_error(
            "key",
            key,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    CertifiedKey::from_der(chain, private, provider)
        .map(Arc::new)
        .map_err(|e| TlsError::Pair {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        })
}

/// A TCP listener whose connections are TLS, for [`axum::serve`].
pub struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
    watching: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS with `certs` on `listener`, reloading them when their
    /// files change.
    ///
    /// # Errors
    ///
    /// The listener's address cannot be read, or rustls refuses the
    /// configuration.
    pub fn new(listener: TcpListener, certs: Arc<Certificates>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let config = certs.server_config().map_err(std::io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let watching = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(certs.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let certs = certs.clone();
                let _ = tokio::task::spawn_blocking(move || certs.reload_if_changed()).await;
            }
        });
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let (done, handshaken) = mpsc::channel(16);
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors, say: wait rather than spin.
                        tracing::warn!(%error, "file transfers: accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    drop(permit);
                    match handshake {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "file transfers: a TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "file transfers: a TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(Self {
            handshaken,
            local,
            accepting,
            watching,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
        self.watching.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (its task was aborted): serve nothing
            // more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1 and its key, made with the
    /// `openssl` command, in `dir` as `<name>.pem` and `<name>.key`.
    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        let output = std::process::Command::new("openssl")
            .args(["req", "-x509", "-days", "2", "-nodes", "-newkey", "ec"])
            .args([
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            // An end-entity certificate: the default (a CA) is refused as one.
            .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs");
        assert!(output.status.success(), "{output:?}");
        (cert, key)
    }

    fn trusting(cert: &Path) -> reqwest::Client {
        let pem = std::fs::read(cert).expect("the certificate");
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("PEM")])
            .build()
            .expect("a client")
    }

    /// Whether a client trusting only `cert` gets an answer: a new client
    /// each time, as a kept connection or a resumed TLS session would not
    /// see the certificate served now.
    async fn answers(cert: &Path, url: &str) -> bool {
        trusting(cert)
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().expect("a directory");
        let (first_cert, first_key) = self_signed(dir.path(), "first");
        let (second_cert, second_key) = self_signed(dir.path(), "second");
        let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
        std::fs::copy(&first_cert, &cert).expect("copied");
        std::fs::copy(&first_key, &key).expect("copied");
        let certs = Certificates::load_watching_every(&cert, &key, Duration::from_millis(50))
            .expect("loaded");
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let url = format!("https://{}/", tcp.local_addr().expect("bound"));
        let listener = TlsListener::new(tcp, certs).expect("listening");
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let (first, second) = (first_cert.as_path(), second_cert.as_path());
        assert!(answers(first, &url).await);
        assert!(!answers(second, &url).await, "not the second yet");

        // Renewed as certbot does it: new files in place, key and chain.
        let renamed = |from: &Path, to: &Path| {
            let temp = to.with_extension("new");
            std::fs::copy(from, &temp).expect("copied");
            std::fs::rename(&temp, to).expect("renamed");
        };
        renamed(&second_cert, &cert);
        renamed(&second_key, &key);
        let mut served = false;
        for _ in 0..100 {
            if answers(second, &url).await {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(served, "the renewed certificate is served");
        assert!(!answers(first, &url).await, "the old one is not");

        // A key that does not fit: the second pair keeps serving.
        renamed(&first_key, &key);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(answers(second, &url).await, "the last good pair serves on");
        server.abort();
    }

    #[test]
    fn a_certificate_or_key_that_cannot_be_used_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("a directory");
        let (cert, key) = self_signed(dir.path(), "a");
        let (_, other_key) = self_signed(dir.path(), "b");
        let missing = dir.path().join("missing.pem");
        let message = |cert: &Path, key: &Path| {
            Certificates::load(cert, key)
                .expect_err("refused")
                .to_string()
        };
        let text = message(&missing, &key);
        assert!(
            text.contains("--files-tls-cert") && text.contains("missing.pem"),
            "{text}"
        );
        let text = message(&key, &key);
        assert!(text.contains("no PEM certificate"), "{text}");
        let text = message(&cert, &cert);
        assert!(
            text.contains("--files-tls-key") && text.contains("private key"),
            "{text}"
        );
        let text = message(&cert, &other_key);
        assert!(text.contains("a.pem") && text.contains("b.key"), "{text}");
        assert!(Certificates::load(&cert, &key).is_ok());
    }
}
