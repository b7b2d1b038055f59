//! The baseline for the `GET /api/v1/servers` benchmark (`bench/api.sh`):
//! a bare axum handler answering the same JSON — 100 of the Panel's own
//! `ServerBody` values, serialised on every request — with no database, no
//! authentication and no middleware. What the Panel does beyond this is
//! what the benchmark prices.
//!
//! Prints `listening on http://ADDR` and serves until killed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use cap_panel::http::servers_routes::{AllocationRef, GameRef, LimitsBody, ServerBody, ServerPage};
use time::OffsetDateTime;

fn servers() -> Vec<ServerBody> {
    (0..100u16)
        .map(|i| ServerBody {
            id: format!("0193a7c2-5f1e-7000-8000-{i:012}"),
            name: format!("server-{i:03}"),
            owner_id: "0193a7c2-5f1e-7000-8000-00000000admin".into(),
            node_id: Some("0193a7c2-5f1e-7000-8000-0000000node1".into()),
            allocation: Some(AllocationRef {
                ip: "127.0.0.1".into(),
                port: 20_000 + i,
            }),
            game: GameRef {
                plugin: "test-game".into(),
                version: Some("1.0.0".into()),
            },
            variables: Some(BTreeMap::from([
                ("MAX_PLAYERS".to_owned(), "20".to_owned()),
                ("READY_DELAY_MS".to_owned(), "200".to_owned()),
            ])),
            limits: LimitsBody {
                memory_mb: 64,
                disk_mb: 100,
                cpu_percent: 10,
            },
            state: "offline".into(),
            permissions: BTreeSet::from(["control.start".to_owned(), "control.stop".to_owned()]),
            created_at: OffsetDateTime::now_utc(),
        })
        .collect()
}

fn main() -> std::io::Result<()> {
    let page = Arc::new(ServerPage {
        items: servers(),
        next_cursor: None,
    });
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
            axum::serve(listener, app).await
        })
}
