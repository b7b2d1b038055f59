//! Posts server lifecycle events and crashes to a Discord channel through a
//! [webhook](https://support.discord.com/hc/en-us/articles/228383668).
//!
//! The admin stores the webhook URL as the secret `webhook-url`; the plugin
//! only talks to `discord.com`, `discordapp.com` (and `127.0.0.1`, for
//! tests). Each announced event becomes one message with an embed: a title,
//! a colour per event (green for starts, red for crashes, ...), the server's
//! details as fields and the event time.
//!
//! Mentions are disabled (`allowed_mentions.parse = []`) and Markdown in
//! server names is escaped, so a server called `@everyone` or `**x**` cannot
//! ping a channel or restyle a message.
//!
//! Delivery is an after-hook: when Discord answers with anything but 2xx
//! (rate limits included) or cannot be reached, the hook fails and the Panel
//! retries it with backoff. Events the plugin does not announce, or whose
//! payload does not match their kind, are skipped without an error, since
//! retrying cannot fix them.

use cap_plugin_sdk::hooks::{ConsoleInfo, Event, EventKind, Hooks, ServerInfo};
use cap_plugin_sdk::types::PluginError;
use cap_plugin_sdk::{config, http, log};
use serde_json::{Value, json};

/// The plugin. Stateless.
#[derive(Debug, Default)]
pub struct DiscordWebhook;

cap_plugin_sdk::export_plugin!(DiscordWebhook: hooks);

const DEFAULT_USERNAME: &str = "Ctrl-Alt-Play";
const REQUEST_TIMEOUT_MS: u32 = 10_000;

/// Discord's limits.
const MAX_CONTENT: usize = 2000;
const MAX_TITLE: usize = 256;
const MAX_FIELD_NAME: usize = 256;
const MAX_FIELD_VALUE: usize = 1024;
const MAX_USERNAME: usize = 80;

/// Embed colours.
const BLUE: u32 = 0x34_98_DB;
const GREEN: u32 = 0x2E_CC_71;
const GREY: u32 = 0x95_A5_A6;
const YELLOW: u32 = 0xF1_C4_0F;
const ORANGE: u32 = 0xE6_7E_22;
const RED: u32 = 0xE7_4C_3C;

impl Hooks for DiscordWebhook {
    fn after(&self, event: &Event) -> Result<(), PluginError> {
        let Some(message) = Message::for_event(event) else {
            log::debug!("not announcing {} ({})", event.kind, event.id);
            return Ok(());
        };
        let url = config::require_secret("webhook-url")?;
        check_webhook_url(&url)?;
        let username = config::get("username")?
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_USERNAME.to_owned());

        let response = http::post(url)
            .json(&message.body(&username))?
            .timeout_ms(REQUEST_TIMEOUT_MS)
            .send()
            .map_err(|error| {
                PluginError::new(
                    "upstream-unreachable",
                    format!("could not reach Discord: {}", http::describe(&error)),
                )
            })?;
        if response.is_success() {
            log::debug!("announced {} ({})", event.kind, event.id);
            Ok(())
        } else {
            let retry = response
                .header("retry-after")
                .map(|secs| format!(" (retry after {secs} s)"))
                .unwrap_or_default();
            Err(PluginError::new(
                "upstream-error",
                format!(
                    "Discord answered {}{retry}: {}",
                    response.status,
                    truncate(response.text().trim(), 300)
                ),
            ))
        }
    }
}

/// Accepts `https://discord.com/api/webhooks/...` (or `discordapp.com`),
/// and any `http(s)://127.0.0.1[:port]/...` URL for local tests.
fn check_webhook_url(url: &str) -> Result<(), PluginError> {
    let invalid = || {
        PluginError::new(
            "invalid-config",
            "webhook-url must be a Discord webhook URL (https://discord.com/api/webhooks/...)",
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.split(':').next().unwrap_or(authority);
    let discord = matches!(host, "discord.com" | "discordapp.com")
        && authority == host
        && scheme == "https"
        && path.starts_with("/api/webhooks/");
    let local = host == "127.0.0.1" && matches!(scheme, "http" | "https");
    if discord || local {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// One announcement.
#[derive(Debug, Clone, PartialEq)]
struct Message {
    content: String,
    title: String,
    colour: u32,
    fields: Vec<(String, String)>,
    timestamp: String,
    event_id: String,
}

impl Message {
    fn for_event(event: &Event) -> Option<Self> {
        let (content, title, colour, fields) = match event.kind {
            EventKind::ServerCreate => {
                let server = event.server()?;
                server_message(server, "was created", "Server created", BLUE)
            }
            EventKind::ServerStart => {
                let server = event.server()?;
                server_message(server, "started", "Server started", GREEN)
            }
            EventKind::ServerStop => {
                let server = event.server()?;
                server_message(server, "stopped", "Server stopped", GREY)
            }
            EventKind::ServerDelete => {
                let server = event.server()?;
                server_message(server, "was deleted", "Server deleted", ORANGE)
            }
            EventKind::ServerStateChanged => {
                let server = event.server()?;
                let state = server.state.as_str();
                let colour = match state {
                    "running" => GREEN,
                    "crashed" => RED,
                    "offline" => GREY,
                    _ => YELLOW,
                };
                server_message(
                    server,
                    &format!("is now {}", escape_markdown(state)),
                    &format!("Server is now {state}"),
                    colour,
                )
            }
            EventKind::ConsoleCrash => crash_message(event.console()?),
            _ => return None,
        };
        Some(Self {
            content,
            title,
            colour,
            fields,
            timestamp: iso8601(event.occurred_at_ms),
            event_id: event.id.clone(),
        })
    }

    /// The webhook's JSON body.
    fn body(&self, username: &str) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|(name, value)| {
                json!({
                    "name": truncate(name, MAX_FIELD_NAME),
                    "value": truncate(value, MAX_FIELD_VALUE),
                    "inline": !value.contains('\n'),
                })
            })
            .collect();
        json!({
            "username": truncate(username, MAX_USERNAME),
            "content": truncate(&self.content, MAX_CONTENT),
            "allowed_mentions": { "parse": [] },
            "embeds": [{
                "title": truncate(&self.title, MAX_TITLE),
                "color": self.colour,
                "fields": fields,
                "timestamp": self.timestamp,
                "footer": { "text": format!("event {}", truncate(&self.event_id, 64)) },
            }],
        })
    }
}

fn server_message(
    server: &ServerInfo,
    what_happened: &str,
    title: &str,
    colour: u32,
) -> (String, String, u32, Vec<(String, String)>) {
    let name = display_name(server);
    let content = format!("**{}** {what_happened}", escape_markdown(&name));
    let fields = vec![
        ("Server".to_owned(), escape_markdown(&name)),
        ("Game".to_owned(), escape_markdown(&server.game_type)),
        ("State".to_owned(), escape_markdown(&server.state)),
        ("Memory".to_owned(), format!("{} MiB", server.memory_mb)),
        ("Node".to_owned(), escape_markdown(&server.node_id)),
        ("Server id".to_owned(), code(&server.id)),
    ];
    (content, format!("{title}: {name}"), colour, fields)
}

fn crash_message(console: &ConsoleInfo) -> (String, String, u32, Vec<(String, String)>) {
    let cause = console
        .detail
        .as_deref()
        .filter(|detail| !detail.trim().is_empty())
        .unwrap_or("unknown cause");
    let content = format!(
        "Server `{}` crashed: {}",
        console.server_id.replace('`', "'"),
        escape_markdown(cause)
    );
    let fields = vec![
        ("Server id".to_owned(), code(&console.server_id)),
        ("Cause".to_owned(), escape_markdown(cause)),
        ("Console line".to_owned(), code_block(&console.line)),
    ];
    (content, "Server crashed".to_owned(), RED, fields)
}

fn display_name(server: &ServerInfo) -> String {
    let name = server.name.trim();
    if name.is_empty() {
        server.id.clone()
    } else {
        name.to_owned()
    }
}

/// Escapes Discord Markdown so text is shown as typed.
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']' | '@'
        ) {
            out.push('\\');
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Inline code; backticks inside would end it early, so they become quotes.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'"))
}

/// A code block, cut to fit a field value.
fn code_block(text: &str) -> String {
    let body = truncate(&text.replace("```", "'''"), MAX_FIELD_VALUE - 8);
    format!("```\n{body}\n```")
}

/// Cuts `text` to at most `max` characters, marking the cut with `…`.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Milliseconds since the Unix epoch as ISO 8601 in UTC, as Discord's
/// `timestamp` expects.
fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let second_of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cap_plugin_sdk::hooks::{Actor, NodeInfo, Payload};

    use super::*;

    fn server_event(kind: EventKind, name: &str, state: &str) -> Event {
        Event {
            id: "e-42".into(),
            kind,
            occurred_at_ms: 1_700_000_000_123,
            actor: Actor {
                user_id: Some("u-1".into()),
                ip: None,
                request_id: None,
            },
            payload: Payload::Server(ServerInfo {
                id: "s-1".into(),
                name: name.into(),
                owner_id: "u-1".into(),
                node_id: "node-a".into(),
                game_type: "minecraft-paper".into(),
                memory_mb: 4096,
                disk_mb: 10_240,
                cpu_percent: 200,
                variables: Vec::new(),
                state: state.into(),
            }),
        }
    }

    fn crash_event(detail: Option<&str>) -> Event {
        Event {
            id: "e-7".into(),
            kind: EventKind::ConsoleCrash,
            occurred_at_ms: 0,
            actor: Actor {
                user_id: None,
                ip: None,
                request_id: None,
            },
            payload: Payload::Console(ConsoleInfo {
                server_id: "s-9".into(),
                line: "java.lang.OutOfMemoryError: Java heap space".into(),
                detail: detail.map(str::to_owned),
            }),
        }
    }

    #[test]
    fn a_start_becomes_a_green_embed_with_the_server_details() {
        let message =
            Message::for_event(&server_event(EventKind::ServerStart, "Survival", "running"))
                .unwrap();
        let body = message.body("Panel");
        assert_eq!(body["content"], "**Survival** started");
        assert_eq!(body["username"], "Panel");
        let embed = &body["embeds"][0];
        assert_eq!(embed["title"], "Server started: Survival");
        assert_eq!(embed["color"], GREEN);
        assert_eq!(embed["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(embed["footer"]["text"], "event e-42");
        let fields = embed["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["name"] == "Memory" && f["value"] == "4096 MiB")
        );
    }

    #[test]
    fn each_announced_kind_has_its_own_colour() {
        let colour = |kind, state| {
            Message::for_event(&server_event(kind, "x", state))
                .unwrap()
                .colour
        };
        assert_eq!(colour(EventKind::ServerCreate, "installing"), BLUE);
        assert_eq!(colour(EventKind::ServerStop, "offline"), GREY);
        assert_eq!(colour(EventKind::ServerDelete, "offline"), ORANGE);
        assert_eq!(colour(EventKind::ServerStateChanged, "crashed"), RED);
        assert_eq!(colour(EventKind::ServerStateChanged, "starting"), YELLOW);
    }

    #[test]
    fn a_crash_names_the_cause_and_quotes_the_line() {
        let message = Message::for_event(&crash_event(Some("out of memory"))).unwrap();
        assert_eq!(message.colour, RED);
        assert_eq!(message.content, "Server `s-9` crashed: out of memory");
        let line = &message.fields[2].1;
        assert!(line.starts_with("```\njava.lang.OutOfMemoryError"));
        assert_eq!(message.body("x")["embeds"][0]["fields"][2]["inline"], false);
    }

    #[test]
    fn a_crash_without_a_cause_says_so() {
        let message = Message::for_event(&crash_event(None)).unwrap();
        assert!(message.content.ends_with("unknown cause"));
    }

    #[test]
    fn events_the_plugin_does_not_announce_are_skipped() {
        assert!(Message::for_event(&server_event(EventKind::ServerInstall, "x", "x")).is_none());
        let mut event = crash_event(None);
        event.kind = EventKind::ServerStart;
        assert!(Message::for_event(&event).is_none(), "payload mismatch");
    }

    #[test]
    fn mentions_are_disabled_and_markdown_is_escaped() {
        let message = Message::for_event(&server_event(
            EventKind::ServerCreate,
            "@everyone **free nitro**",
            "installing",
        ))
        .unwrap();
        let body = message.body("x");
        assert_eq!(body["allowed_mentions"]["parse"], json!([]));
        assert_eq!(
            body["content"],
            r"**\@everyone \*\*free nitro\*\*** was created"
        );
    }

    #[test]
    fn long_texts_are_cut_to_discord_limits() {
        let long = "n".repeat(5000);
        let message =
            Message::for_event(&server_event(EventKind::ServerStart, &long, "running")).unwrap();
        let body = message.body(&long);
        assert_eq!(
            body["content"].as_str().unwrap().chars().count(),
            MAX_CONTENT
        );
        assert_eq!(
            body["embeds"][0]["title"].as_str().unwrap().chars().count(),
            MAX_TITLE
        );
        assert_eq!(
            body["username"].as_str().unwrap().chars().count(),
            MAX_USERNAME
        );
        for field in body["embeds"][0]["fields"].as_array().unwrap() {
            assert!(field["value"].as_str().unwrap().chars().count() <= MAX_FIELD_VALUE);
        }
    }

    #[test]
    fn a_nameless_server_is_shown_by_id() {
        let message =
            Message::for_event(&server_event(EventKind::ServerStop, "  ", "offline")).unwrap();
        assert_eq!(message.title, "Server stopped: s-1");
    }

    #[test]
    fn accepts_discord_webhook_urls_and_local_test_servers() {
        for url in [
            "https://discord.com/api/webhooks/123/abc",
            "https://discordapp.com/api/webhooks/123/abc",
            "http://127.0.0.1:8080/hook",
            "http://127.0.0.1/hook",
        ] {
            assert!(check_webhook_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn refuses_other_urls() {
        for url in [
            "http://discord.com/api/webhooks/123/abc",
            "https://discord.com/channels/1",
            "https://discord.com.evil.example/api/webhooks/1/a",
            "https://discord.com:8443/api/webhooks/1/a",
            "https://example.com/api/webhooks/1/a",
            "discord.com/api/webhooks/1/a",
            "",
        ] {
            assert_eq!(
                check_webhook_url(url).unwrap_err().code,
                "invalid-config",
                "{url}"
            );
        }
    }

    #[test]
    fn formats_timestamps_as_utc_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(iso8601(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate("ääää", 3), "ää…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn the_node_payload_is_not_a_server() {
        let event = Event {
            id: "e".into(),
            kind: EventKind::ServerCreate,
            occurred_at_ms: 0,
            actor: Actor {
                user_id: None,
                ip: None,
                request_id: None,
            },
            payload: Payload::Node(NodeInfo {
                id: "n".into(),
                name: "n".into(),
                address: "a".into(),
            }),
        };
        assert!(Message::for_event(&event).is_none());
    }
}
