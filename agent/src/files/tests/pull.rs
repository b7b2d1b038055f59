//! Pulls against a real HTTP server on loopback.

use std::net::SocketAddr;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use cap_protocol::files::FileErrorCode;

use super::{Server, code, noise};

/// Serves `/pack.zip` (some bytes), `/big.bin` (2 MiB), `/missing` (404)
/// and `/elsewhere` (a redirect to `target`) on an ephemeral loopback
/// port.
async fn serve(target: Option<String>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let target = target.unwrap_or_else(|| format!("http://{addr}/pack.zip"));
    let app = Router::new()
        .route("/pack.zip", get(|| async { "zip bytes" }))
        .route("/big.bin", get(|| async { noise(2 * 1024 * 1024) }))
        .route(
            "/elsewhere",
            get(move || {
                let target = target.clone();
                async move { Redirect::temporary(&target) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_pull_from_loopback_is_refused_without_a_grant() {
    let addr = serve(None).await;
    let server = Server::new();
    let pulled = server
        .files()
        .pull(&format!("http://{addr}/pack.zip"), "/", None, &[])
        .await;
    let error = pulled.unwrap_err();
    assert_eq!(error.code, FileErrorCode::PullRefused);
    assert!(error.message.contains("127.0.0.1"), "{}", error.message);
    let localhost = server
        .files()
        .pull(
            &format!("http://localhost:{}/pack.zip", addr.port()),
            "/",
            None,
            &[],
        )
        .await;
    assert_eq!(code(localhost), FileErrorCode::PullRefused);
    assert!(server.names(".").is_empty());
}

#[tokio::test]
async fn a_pull_from_an_allowed_host_downloads_the_file() {
    let addr = serve(None).await;
    let server = Server::new();
    std::fs::create_dir(server.path().join("plugins")).unwrap();
    let allowed = [format!("127.0.0.1:{}", addr.port())];
    let entry = server
        .files()
        .pull(
            &format!("http://{addr}/pack.zip"),
            "plugins",
            None,
            &allowed,
        )
        .await
        .unwrap();
    assert_eq!((entry.path.as_str(), entry.size), ("/plugins/pack.zip", 9));
    assert_eq!(server.read("plugins/pack.zip"), b"zip bytes");
    let named = server
        .files()
        .pull(
            &format!("http://{addr}/pack.zip"),
            "/",
            Some("renamed.zip"),
            &allowed,
        )
        .await
        .unwrap();
    assert_eq!(named.path, "/renamed.zip");
    // The target exists now.
    let again = server
        .files()
        .pull(
            &format!("http://{addr}/pack.zip"),
            "plugins",
            None,
            &allowed,
        )
        .await;
    assert_eq!(code(again), FileErrorCode::AlreadyExists);
    assert_eq!(server.names("plugins"), ["pack.zip"]);
}

#[tokio::test]
async fn a_redirect_is_checked_like_the_first_url() {
    let refused_target = serve(None).await;
    let addr = serve(Some(format!("http://{refused_target}/pack.zip"))).await;
    let server = Server::new();
    let allowed = [format!("127.0.0.1:{}", addr.port())];
    let followed = server
        .files()
        .pull(
            &format!("http://{addr}/elsewhere"),
            "/",
            Some("x.zip"),
            &allowed,
        )
        .await;
    assert_eq!(code(followed), FileErrorCode::PullRefused);
    assert!(server.names(".").is_empty());
    // A redirect to the allowed host itself is followed.
    let own = serve(None).await;
    let allowed = [format!("127.0.0.1:{}", own.port())];
    server
        .files()
        .pull(
            &format!("http://{own}/elsewhere"),
            "/",
            Some("y.zip"),
            &allowed,
        )
        .await
        .unwrap();
    assert_eq!(server.read("y.zip"), b"zip bytes");
}

#[tokio::test]
async fn a_pull_over_the_disk_limit_or_of_a_missing_url_leaves_nothing() {
    let addr = serve(None).await;
    let server = Server::new();
    let allowed = [format!("127.0.0.1:{}", addr.port())];
    let big = server
        .limited(1)
        .pull(&format!("http://{addr}/big.bin"), "/", None, &allowed)
        .await;
    assert_eq!(code(big), FileErrorCode::DiskLimit);
    let missing = server
        .files()
        .pull(&format!("http://{addr}/missing"), "/", None, &allowed)
        .await;
    assert_eq!(code(missing), FileErrorCode::PullFailed);
    assert!(server.names(".").is_empty());
}

#[tokio::test]
async fn only_http_and_https_urls_are_pulled() {
    let server = Server::new();
    for url in ["file:///etc/passwd", "ftp://example.com/x", "not a url"] {
        assert_eq!(
            code(server.files().pull(url, "/", None, &[]).await),
            FileErrorCode::PullRefused,
            "{url}"
        );
    }
}
