//! A browser stand-in for the console benchmark (`bench/agent.sh`): opens
//! the console WebSocket of each given server the way the web UI does
//! (ticket, then `auth`), counts `console output` lines and `dropped`
//! reports for a number of seconds, and prints one JSON line with the
//! totals and the rate.
//!
//! Usage: `console_watch PANEL_URL ACCESS_TOKEN SECONDS SERVER_ID...`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: console_watch PANEL_URL ACCESS_TOKEN SECONDS SERVER_ID...";
    let url = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let token = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let seconds: u64 = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let servers: Vec<String> = args.collect();
    anyhow::ensure!(!servers.is_empty(), usage);
    let lines = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for server in servers {
        let ticket: Value = client
            .get(format!("{url}/api/v1/servers/{server}/websocket"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let socket_url = format!(
            "{}{}",
            url.replacen("http", "ws", 1),
            ticket["socket"].as_str().unwrap_or_default()
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(socket_url).await?;
        socket
            .send(Message::text(
                json!({"event": "auth", "args": [ticket["token"]]}).to_string(),
            ))
            .await?;
        let (lines, dropped) = (lines.clone(), dropped.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                match frame["event"].as_str() {
                    Some("console output") => {
                        lines.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("dropped") => {
                        dropped
                            .fetch_add(frame["args"][0].as_u64().unwrap_or(0), Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
    }
    // The clock starts once every socket is open: connecting is not
    // forwarding, and `bench/agent.sh` starts the flood after this line.
    let started = Instant::now();
    println!("watching");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let total = lines.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "seconds": elapsed,
            "lines": total,
            "linesPerSecond": total as f64 / elapsed,
            "dropped": dropped.load(Ordering::Relaxed),
        })
    );
    for task in tasks {
        task.abort();
    }
    Ok(())
}
