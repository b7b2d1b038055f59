//! TLS for the file-transfer listener (`--files-tls-cert`,
//! `--files-tls-key`), so that browsers on an `https://` Panel reach the
//! Agent directly, as they reach Wings, without a proxy in front.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use cap_agent::tls::{TlsListener, server_config};
//!
//! let config = server_config("/etc/cap/node.crt".as_ref(), "/etc/cap/node.key".as_ref())?;
//! let tcp = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! let app = axum::Router::new();
//! axum::serve(TlsListener::new(tcp, config)?, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Decisions
//!
//! - **rustls on aws-lc-rs**, the stack every TLS client of this workspace
//!   already uses; TLS 1.2 and 1.3, HTTP/1.1 announced over ALPN (the
//!   listener speaks HTTP/1.1 only).
//! - **PEM files read once, at start.** The certificate file holds the
//!   chain, leaf first (what certbot's `fullchain.pem` holds); the key
//!   file one PKCS#8, PKCS#1 or SEC1 key. A renewed certificate takes a
//!   restart of the Agent, which servers survive (they are adopted).
//!   Either file missing, unreadable, empty or not matching the other is
//!   refused at start, naming the file, before anything is served.
//! - **Handshakes never hold the accept loop.** Each runs in a task of its
//!   own, at most [`MAX_HANDSHAKES`] at once and each for at most
//!   [`HANDSHAKE_TIMEOUT`]; axum serves the connections that finished
//!   theirs. A client that opens connections and says nothing costs a
//!   permit for ten seconds, not the listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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

/// The server configuration for the certificate chain at `cert` and the
/// private key at `key` (PEM).
///
/// # Errors
///
/// [`TlsError::File`] for a file that cannot be read or holds nothing
/// usable, [`TlsError::Pair`] when the key does not fit the certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
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
    let pair = |e: rustls::Error| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason: e.to_string(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(pair)?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(pair)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener whose connections are TLS, for [`axum::serve`].
pub struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS with `config` on `listener`.
    ///
    /// # Errors
    ///
    /// The listener's address cannot be read.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
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
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
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
