//! Subcommand implementations.

pub(crate) mod agent;
pub(crate) mod marketplace;
pub(crate) mod panel;
pub(crate) mod panel_marketplace;
pub(crate) mod plugin;
pub(crate) mod up;

/// Logs to stderr. `CAP_LOG` sets the filter (`info`,
/// `cap_panel=debug,tower_http=debug`, …; default `default_level`);
/// `CAP_LOG_FORMAT=json` switches to one JSON object per line.
pub(crate) fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAP_LOG")
        .unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("CAP_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}
