//! `cap panel marketplace …`: the Panel's Marketplace admin API from the
//! command line — search, show, install, update, lockfile, buy (checkout)
//! and licenses — talking HTTP to a running Panel with an admin's token
//! (an API key or session token holding `admin.plugins`).
//!
//! Refusals are printed from the Panel's problem documents
//! ([`crate::panel_client`]): the title, then the detail, which for
//! `resolution-failed` is the resolver's explanation in sentences and for
//! verification and license refusals names the failed check. `--json` prints the Panel's answer as it is.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::panel_client::{PanelClient, PanelConnection};

/// Flags shared by every `cap panel marketplace` command.
#[derive(Debug, Args)]
pub(crate) struct MarketplaceAdminArgs {
    #[command(flatten)]
    connection: PanelConnection,
    /// Print the Panel's JSON answer instead of text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: MarketplaceAdminCommand,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum MarketplaceAdminCommand {
    /// Search the Marketplace through the Panel.
    Search {
        /// Words to find in id, name or description.
        query: Option<String>,
        /// Plugin kind: game-type, auth-provider, hooks, ui.
        #[arg(long)]
        kind: Option<String>,
        /// Game.
        #[arg(long)]
        game: Option<String>,
        /// Only paid plugins.
        #[arg(long, conflicts_with = "free")]
        paid: bool,
        /// Only free plugins.
        #[arg(long)]
        free: bool,
    },
    /// Show one package with its versions.
    Show {
        /// Plugin id.
        id: String,
    },
    /// Install a plugin and its dependencies: resolve, download, verify,
    /// license check, grant, activate — all or nothing.
    Install {
        /// Plugin id.
        id: String,
        /// Version requirement, cargo-style (1.2 means ^1.2) [default: any]
        #[arg(long, value_name = "REQ")]
        requirement: Option<String>,
        /// What to grant, as JSON: plugin id -> grant set, e.g.
        /// '{"quota-guard": {"kv": true, "panel": ["servers.read"]}}'
        #[arg(long, value_name = "JSON")]
        grants: Option<String>,
        /// Install without activating.
        #[arg(long)]
        no_activate: bool,
    },
    /// Resolve every requirement again and install the newer versions,
    /// all or nothing.
    Update,
    /// Print the lockfile (TOML) and the requirements it was resolved from.
    Lockfile,
    /// Start buying a paid plugin: prints the Stripe Checkout page to pay on.
    Buy {
        /// Plugin id.
        id: String,
        /// A version with its own price [default: the newest]
        #[arg(long)]
        version: Option<String>,
        /// Where Stripe sends you after paying.
        #[arg(long, value_name = "URL")]
        success_url: Option<String>,
        /// Where Stripe sends you after cancelling.
        #[arg(long, value_name = "URL")]
        cancel_url: Option<String>,
    },
    /// List the licenses of paid plugins, each checked offline now.
    Licenses {
        /// Renew the due licenses first (and enforce them).
        #[arg(long)]
        renew: bool,
    },
}

fn price(value: &Value) -> String {
    match (value["amount"].as_i64(), value["currency"].as_str()) {
        (Some(amount), Some(currency)) => format!(
            "{}.{:02} {}",
            amount / 100,
            amount % 100,
            currency.to_uppercase()
        ),
        _ => "free".into(),
    }
}

fn print_outcome(outcome: &Value) {
    let changed = outcome["changed"].as_array().cloned().unwrap_or_default();
    if changed.is_empty() {
        println!("nothing changed: everything is at the newest version that fits");
    }
    for item in changed {
        let plugin = &item["plugin"];
        let version = plugin["version"].as_str().unwrap_or("?");
        match item["replaced"].as_str() {
            Some(old) => println!(
                "updated {} {old} -> {version} ({})",
                plugin["id"].as_str().unwrap_or("?"),
                plugin["state"].as_str().unwrap_or("?")
            ),
            None => println!(
                "installed {} {version} ({})",
                plugin["id"].as_str().unwrap_or("?"),
                plugin["state"].as_str().unwrap_or("?")
            ),
        }
    }
}

pub(crate) fn run(args: MarketplaceAdminArgs) -> anyhow::Result<()> {
    let api = args
        .connection
        .client(std::time::Duration::from_secs(300))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(execute(&api, args.command, args.json))
}

async fn execute(
    api: &PanelClient,
    command: MarketplaceAdminCommand,
    raw: bool,
) -> anyhow::Result<()> {
    use reqwest::Method;
    let answer = match command {
        MarketplaceAdminCommand::Search {
            query,
            kind,
            game,
            paid,
            free,
        } => {
            let mut params = Vec::new();
            for (name, value) in [("q", query), ("kind", kind), ("game", game)] {
                if let Some(value) = value {
                    params.push((name, value));
                }
            }
            if paid || free {
                params.push(("paid", paid.to_string()));
            }
            let page = api
                .call(Method::GET, "/marketplace/packages", &params, None)
                .await?;
            if !raw {
                let items = page["items"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    println!("no packages found");
                }
                for p in items {
                    println!(
                        "{} {} ({}) by {}: {}",
                        p["id"].as_str().unwrap_or("?"),
                        p["latest_version"].as_str().unwrap_or("?"),
                        if p["paid"].as_bool() == Some(true) {
                            price(&p["price"])
                        } else {
                            "free".into()
                        },
                        p["publisher"].as_str().unwrap_or("?"),
                        p["description"].as_str().unwrap_or("")
                    );
                }
            }
            page
        }
        MarketplaceAdminCommand::Show { id } => {
            let view = api
                .call(
                    Method::GET,
                    &format!("/marketplace/packages/{id}"),
                    &[],
                    None,
                )
                .await?;
            if !raw {
                println!(
                    "{} ({}) by {}: {}",
                    view["id"].as_str().unwrap_or("?"),
                    view["name"].as_str().unwrap_or("?"),
                    view["publisher"].as_str().unwrap_or("?"),
                    view["description"].as_str().unwrap_or("")
                );
                for v in view["versions"].as_array().into_iter().flatten() {
                    println!(
                        "  {}{}",
                        v["version"].as_str().unwrap_or("?"),
                        if v["yanked"].as_bool() == Some(true) {
                            " (yanked)"
                        } else {
                            ""
                        }
                    );
                }
            }
            view
        }
        MarketplaceAdminCommand::Install {
            id,
            requirement,
            grants,
            no_activate,
        } => {
            let grants: BTreeMap<String, Value> = match grants {
                Some(text) => serde_json::from_str(&text).context(
                    "--grants is JSON mapping plugin ids to grant sets, e.g. '{\"quota-guard\": {\"kv\": true}}'",
                )?,
                None => BTreeMap::new(),
            };
            let body = json!({
                "package": id,
                "requirement": requirement,
                "grants": grants,
                "activate": !no_activate,
            });
            let outcome = api
                .call(Method::POST, "/marketplace/install", &[], Some(body))
                .await?;
            if !raw {
                print_outcome(&outcome);
            }
            outcome
        }
        MarketplaceAdminCommand::Update => {
            let outcome = api
                .call(Method::POST, "/marketplace/update", &[], None)
                .await?;
            if !raw {
                print_outcome(&outcome);
            }
            outcome
        }
        MarketplaceAdminCommand::Lockfile => {
            let lock = api
                .call(Method::GET, "/marketplace/lockfile", &[], None)
                .await?;
            if !raw {
                print!("{}", lock["toml"].as_str().unwrap_or(""));
                for (id, req) in lock["requests"].as_object().into_iter().flatten() {
                    println!("# requested: {id} {}", req.as_str().unwrap_or("?"));
                }
            }
            lock
        }
        MarketplaceAdminCommand::Buy {
            id,
            version,
            success_url,
            cancel_url,
        } => {
            let back = format!("{}/", api.base);
            let body = json!({
                "package": id,
                "version": version,
                "success_url": success_url.unwrap_or_else(|| back.clone()),
                "cancel_url": cancel_url.unwrap_or(back),
            });
            let view = api
                .call(Method::POST, "/marketplace/checkout", &[], Some(body))
                .await?;
            if !raw {
                println!(
                    "pay {} for {id} here: {}",
                    price(&view),
                    view["url"]
                        .as_str()
                        .unwrap_or("(no URL: see the Marketplace)")
                );
                println!(
                    "then install it with `cap panel marketplace install {id}` once the payment is confirmed"
                );
            }
            view
        }
        MarketplaceAdminCommand::Licenses { renew } => {
            let list = if renew {
                api.call(Method::POST, "/marketplace/licenses/renew", &[], None)
                    .await?
            } else {
                api.call(Method::GET, "/marketplace/licenses", &[], None)
                    .await?
            };
            if !raw {
                match list["instance_id"].as_str() {
                    Some(id) => println!("Panel instance {id}"),
                    None => println!("this Panel is not registered with the Marketplace yet"),
                }
                for l in list["licenses"].as_array().into_iter().flatten() {
                    println!(
                        "{}: {} ({}), expires {}, plugin {}{}",
                        l["plugin"].as_str().unwrap_or("?"),
                        l["check"].as_str().unwrap_or("?"),
                        l["state"].as_str().unwrap_or("?"),
                        l["expires_at"].as_str().unwrap_or("-"),
                        l["plugin_state"].as_str().unwrap_or("not installed"),
                        if l["running"].as_bool() == Some(true) {
                            ", running"
                        } else {
                            ""
                        }
                    );
                    for field in ["refusal", "problem"] {
                        if let Some(text) = l[field].as_str() {
                            println!("  {text}");
                        }
                    }
                }
            }
            list
        }
    };
    if raw {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(())
}
