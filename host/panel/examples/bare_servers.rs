//! The baseline for the `GET /api/v1/servers` benchmark (`bench/api.sh`):
//! a bare axum handler answering the same JSON as the Panel — the page the
//! Panel itself answered, read once into the Panel's own [`ServerPage`]
//! and serialised again on every request — with no database, no
//! authentication and no middleware. What the Panel does beyond this is
//! what the benchmark prices.
//!
//! Usage: `bare_servers PAGE.json` (a `GET /api/v1/servers` answer).
//! Prints `listening on http://ADDR` and serves until killed.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use cap_panel::http::servers_routes::ServerPage;

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .context("usage: bare_servers PAGE.json")?;
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let page: ServerPage = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a page of servers", path.display()))?;
    let page = Arc::new(page);
    let app = Router::new().route(
        "/api/v1/servers",
        get(move || {
            let page = Arc::clone(&page);
            // Serialised per request, as the Panel does.
            async move {
                (
                    [(CONTENT_TYPE, "application/json")],
                    serde_json::to_vec(page.as_ref()).unwrap_or_default(),
                )
            }
        }),
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("listening on http://{}", listener.local_addr()?);
            axum::serve(listener, app).await?;
            Ok(())
        })
}
