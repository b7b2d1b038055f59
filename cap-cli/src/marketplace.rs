//! `cap marketplace`: serve the plugin Marketplace (registry, signing,
//! transparency logs, timestamps and, with a Stripe key, billing) on its
//! own.
//!
//! Billing is on when both `--stripe-secret-key` and
//! `--stripe-webhook-secret` are given (or their `CAP_*` variables);
//! giving only one of them is an error rather than a Marketplace that
//! silently sells nothing. `--stripe-api-base` points the Stripe client at
//! another server (a local stub in tests).
//!
//! `cap marketplace rotate-key` replaces the online signing key with a new
//! one certified by the root key (see `cap_marketplace::rotation`); Panels
//! that pinned the root follow it without any change on their side.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use cap_marketplace_server::billing::BillingConfig;
use cap_marketplace_server::{MarketplaceConfig, MarketplaceServer};
use clap::{Args, Subcommand};

/// Flags of `cap marketplace`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct MarketplaceArgs {
    #[command(subcommand)]
    command: Option<MarketplaceCommand>,
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Data directory: the SQLite database, package files, the signing key
    #[arg(long, value_name = "DIR", default_value = "./data/marketplace")]
    data: PathBuf,
    /// Database URL (sqlite:… or postgres://…) [default: SQLite in DATA]
    #[arg(long, value_name = "URL", env = "CAP_MARKETPLACE_DATABASE_URL")]
    database_url: Option<String>,
    /// Stripe secret API key (sk_…); with --stripe-webhook-secret turns
    /// billing on (paid plugins, checkout, licenses)
    #[arg(
        long,
        value_name = "KEY",
        env = "CAP_STRIPE_SECRET_KEY",
        hide_env_values = true
    )]
    stripe_secret_key: Option<String>,
    /// The Stripe webhook endpoint's signing secret (whsec_…), for
    /// POST /api/v1/billing/stripe/webhook
    #[arg(
        long,
        value_name = "SECRET",
        env = "CAP_STRIPE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    stripe_webhook_secret: Option<String>,
    /// Stripe API base URL [default: Stripe itself]; e.g. a local stub
    #[arg(long, value_name = "URL", env = "CAP_STRIPE_API_BASE")]
    stripe_api_base: Option<String>,
    /// The Marketplace's share of each sale, percent (up to two decimals)
    #[arg(long, value_name = "PERCENT", env = "CAP_PLATFORM_FEE_PERCENT", default_value = "15", value_parser = parse_percent_bps)]
    platform_fee_percent: u32,
    /// Lifetime of a license token: <n>s, <n>m, <n>h or <n>d; Panels renew
    /// after half of it
    #[arg(long, value_name = "DURATION", env = "CAP_LICENSE_LIFETIME", default_value = "14d", value_parser = parse_duration_secs)]
    license_lifetime: i64,
    /// How long a paid plugin keeps working after its license token
    /// expired (a Marketplace that is unreachable for a while)
    #[arg(long, value_name = "DURATION", env = "CAP_LICENSE_GRACE", default_value = "7d", value_parser = parse_duration_secs)]
    license_grace: i64,
    /// Lifetime of a publisher token (rotated with `cap plugin
    /// rotate-token`): <n>s, <n>m, <n>h or <n>d
    #[arg(long, value_name = "DURATION", env = "CAP_PUBLISHER_TOKEN_LIFETIME", default_value = "90d", value_parser = parse_duration_secs)]
    publisher_token_lifetime: i64,
    /// The admin token, which opens the key-recovery routes
    /// (/api/v1/admin/…) for publishers who lost their keys [default:
    /// closed]
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CAP_MARKETPLACE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
}

/// Maintenance subcommands of `cap marketplace`.
#[derive(Debug, Subcommand)]
enum MarketplaceCommand {
    /// Replace the online signing key with a fresh one certified by the
    /// root key, effective now; restart the Marketplace afterwards
    RotateKey(RotateKeyArgs),
}

/// Flags of `cap marketplace rotate-key`.
#[derive(Debug, Args)]
struct RotateKeyArgs {
    /// The Marketplace's data directory
    #[arg(long, value_name = "DIR", default_value = "./data/marketplace")]
    data: PathBuf,
    /// The root key file [default: DATA/marketplace-root.key, where the
    /// first start wrote it]
    #[arg(long, value_name = "FILE")]
    root_key: Option<PathBuf>,
}

fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let root_path = args
        .root_key
        .unwrap_or_else(|| cap_marketplace_server::server::default_root_key_path(&args.data));
    let root = cap_marketplace::SecretKey::read(&root_path)
        .with_context(|| format!("reading the root key {}", root_path.display()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs() as i64;
    let certificate = cap_marketplace_server::server::rotate_online_key(&args.data, &root, now)
        .context("rotating the Marketplace key")?;
    println!(
        "New online key {} (certificate {}, valid from {}); restart the Marketplace to sign with it",
        certificate.online_key.id(),
        certificate.serial,
        certificate.valid_from
    );
    Ok(())
}

/// Parses a percentage with up to two decimals (`15`, `12.5`, `0.25`)
/// into basis points, without floating point.
fn parse_percent_bps(text: &str) -> Result<u32, String> {
    let text = text.trim().trim_end_matches('%');
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction, fraction_ok) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction, digits(fraction) && fraction.len() <= 2),
        None => (text, "", true),
    };
    if !digits(whole) || !fraction_ok {
        return Err(format!(
            "{text:?} is not a percentage with at most two decimals, e.g. 15 or 12.5"
        ));
    }
    let whole: u32 = whole
        .parse()
        .map_err(|_| format!("{text:?} is too large"))?;
    let fraction: u32 = format!("{fraction:0<2}").parse().unwrap_or(0);
    let bps = whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(fraction))
        .filter(|bps| *bps <= 10_000)
        .ok_or_else(|| format!("{text}% is more than 100%"))?;
    Ok(bps)
}

/// Parses `<n>s`, `<n>m`, `<n>h` or `<n>d` (or bare seconds) into seconds.
fn parse_duration_secs(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d, e.g. 14d")),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 12h or 14d"))?;
    n.checked_mul(scale).filter(|s| *s > 0).ok_or_else(|| {
        format!("{text:?}: the duration must be positive and below 290 billion years")
    })
}

impl MarketplaceArgs {
    fn billing(&self) -> anyhow::Result<Option<BillingConfig>> {
        let (key, secret) = match (&self.stripe_secret_key, &self.stripe_webhook_secret) {
            (None, None) => return Ok(None),
            (Some(key), Some(secret)) => (key, secret),
            (Some(_), None) => bail!(
                "--stripe-secret-key needs --stripe-webhook-secret (CAP_STRIPE_WEBHOOK_SECRET) too: without it no payment could ever be confirmed"
            ),
            (None, Some(_)) => bail!(
                "--stripe-webhook-secret needs --stripe-secret-key (CAP_STRIPE_SECRET_KEY) too: without it no checkout can be created"
            ),
        };
        let mut billing = BillingConfig::new(key.clone(), secret.clone());
        billing.stripe_api_base = self.stripe_api_base.clone();
        billing.revenue_share_bps = self.platform_fee_percent;
        billing.license_ttl = self.license_lifetime;
        billing.license_grace = self.license_grace;
        Ok(Some(billing))
    }
}

pub(crate) fn run(args: MarketplaceArgs) -> anyhow::Result<()> {
    if let Some(MarketplaceCommand::RotateKey(rotate)) = args.command {
        return rotate_key(rotate);
    }
    let billing = args.billing()?;
    let mut config = MarketplaceConfig::new(args.data);
    config.listen = args.listen;
    config.database_url = args.database_url;
    let selling = billing.is_some();
    config.billing = billing;
    config.publisher_token_ttl = args.publisher_token_lifetime;
    config.admin_token = match args.admin_token {
        Some(token) if token.trim().len() < 16 => bail!(
            "--admin-token (CAP_MARKETPLACE_ADMIN_TOKEN) must be at least 16 characters: it approves key recoveries"
        ),
        token => token,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let running = MarketplaceServer::bind(config)
            .await
            .context("starting the Marketplace")?
            .spawn();
        // The first line on stdout is the URL; scripts and tests read it.
        println!("Marketplace listening on {}", running.url());
        if selling {
            println!(
                "  Billing: on (Stripe webhook: {}/api/v1/billing/stripe/webhook)",
                running.url()
            );
        } else {
            println!(
                "  Billing: off (set --stripe-secret-key and --stripe-webhook-secret to sell)"
            );
        }
        cap_panel::shutdown_signal().await;
        running.stop().await.context("stopping the Marketplace")
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_duration_secs, parse_percent_bps};

    #[test]
    fn a_fee_percentage_becomes_basis_points_without_rounding() {
        assert_eq!(parse_percent_bps("15"), Ok(1_500));
        assert_eq!(parse_percent_bps("12.5"), Ok(1_250));
        assert_eq!(parse_percent_bps("0.25%"), Ok(25));
        assert_eq!(parse_percent_bps("100"), Ok(10_000));
        for bad in ["100.01", "1.234", "-1", "", "ten", "1."] {
            assert!(parse_percent_bps(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_license_duration_takes_a_unit() {
        assert_eq!(parse_duration_secs("14d"), Ok(14 * 86_400));
        assert_eq!(parse_duration_secs("90s"), Ok(90));
        assert_eq!(parse_duration_secs("2h"), Ok(7_200));
        assert_eq!(parse_duration_secs("30"), Ok(30));
        for bad in ["0s", "1w", "d", "-5m", ""] {
            assert!(parse_duration_secs(bad).is_err(), "{bad:?}");
        }
    }
}
