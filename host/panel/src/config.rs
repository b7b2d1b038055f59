//! Panel configuration: defaults, a TOML file, `CAP_*` environment variables
//! and command-line flags, merged in that order.
//!
//! Every source is read into a [`ConfigLayer`] in which each setting is
//! optional; [`Config::from_layers`] lays them over the defaults, the later
//! layer winning setting by setting. The precedence is therefore
//! **flags > environment > file > defaults**, decided in one place and
//! unit-tested below.
//!
//! The file looks like this (every key optional; unknown keys are errors so
//! that a typo does not silently fall back to a default):
//!
//! ```toml
//! listen = "0.0.0.0:8080"
//! public-url = "https://panel.example.com"   # the URL Agents and browsers use
//! data = "/var/lib/ctrl-alt-play"    # relative paths are relative to the working directory
//!
//! [database]
//! url = "postgres://cap@db.internal/cap"   # default: SQLite at <data>/panel.db
//! max-connections = 10
//!
//! [http]
//! body-limit = 1048576   # bytes
//! trusted-proxies = ["10.0.0.5", "fd00::/8"]   # default: none
//!
//! [metrics]              # GET /metrics; default off (404)
//! enabled = true         # needs a token (here or CAP_METRICS_TOKEN)
//! token = "a-long-random-string"
//!
//! [marketplace]
//! url = "https://marketplace.example"   # where admins browse and install plugins from
//! public-key = "9c1f…"                    # 64 hex digits; default: trusted on first use
//!
//! [rate-limits]          # BURST/PERIOD: BURST at once, then one more per PERIOD (ms, s, m, h)
//! login-per-ip = "20/3s"
//! login-per-account = "10/6s"
//! refresh-per-ip = "30/2s"
//! second-factor-per-ip = "20/3s"
//! second-factor-per-account = "10/30s"
//! auth-per-ip = "60/1s"
//! writes-per-ip = "300/50ms"
//!
//! [files]
//! pull = true                            # users may pull files from URLs into servers
//! pull-allowed-hosts = ["mirror.lan"]    # reachable although not public; default none
//! ```
//!
//! | Setting | Flag | Environment | File |
//! | --- | --- | --- | --- |
//! | listen address | `--listen` | `CAP_LISTEN` | `listen` |
//! | public URL | `--public-url` | `CAP_PUBLIC_URL` | `public-url` |
//! | data directory | `--data` | `CAP_DATA` | `data` |
//! | database URL | `--database-url` | `CAP_DATABASE_URL`, else `DATABASE_URL` | `database.url` |
//! | pool size | | `CAP_DATABASE_MAX_CONNECTIONS` | `database.max-connections` |
//! | request body limit | | `CAP_HTTP_BODY_LIMIT` | `http.body-limit` |
//! | trusted proxies | | `CAP_TRUSTED_PROXIES` (comma-separated) | `http.trusted-proxies` |
//! | metrics on | | `CAP_METRICS_ENABLED` (`true`/`false`) | `metrics.enabled` |
//! | metrics token | | `CAP_METRICS_TOKEN` (also turns metrics on) | `metrics.token` |
//! | Marketplace URL | | `CAP_MARKETPLACE_URL` | `marketplace.url` |
//! | Marketplace public key | | `CAP_MARKETPLACE_KEY` | `marketplace.public-key` |
//! | rate limit `NAME` | `--rate-limit NAME=RULE` (repeatable) | `CAP_RATE_LIMIT_<NAME>` (e.g. `CAP_RATE_LIMIT_LOGIN_PER_IP`) | `rate-limits.NAME` |
//! | secret key | | `CAP_SECRET_KEY` (base64 of 32 bytes) | — (else `<data>/secret.key`) |
//! | file pulls on | | `CAP_FILES_PULL` (`true`/`false`) | `files.pull` |
//! | pull hosts allowed on non-public addresses | | `CAP_FILES_PULL_ALLOWED_HOSTS` (comma-separated) | `files.pull-allowed-hosts` |
//!
//! The secret key seals secrets at rest ([`crate::secrets`]). It is never
//! read from the config file, which is easily copied around with the
//! database: it comes from the environment or from its own `0600` file in
//! the data directory, created on first start.
//!
//! # Rate limits
//!
//! The identity endpoints are limited per client address and per account,
//! with in-memory token buckets ([`crate::identity::rate_limit`]); the
//! defaults (shown in the file above) are strict on purpose, as these are
//! where credentials are guessed. Each rule is `BURST/PERIOD`: `BURST`
//! requests at once, then one more per `PERIOD`; a refused request gets
//! `429 rate-limited` with `Retry-After`.
//!
//! | Name | Limits |
//! | --- | --- |
//! | `login-per-ip` | `POST /auth/login` per client address |
//! | `login-per-account` | `POST /auth/login` per provider and username, from any address |
//! | `refresh-per-ip` | `POST /auth/refresh` per client address |
//! | `second-factor-per-ip` | `POST /auth/login/second-factor` and turning TOTP off, per client address |
//! | `second-factor-per-account` | the same, per account, from any address |
//!
//! | `auth-per-ip` | every `POST`, `PUT`, `PATCH`, `DELETE` under `/auth/…` and `/account/…`, per client address |
//! | `writes-per-ip` | every other `POST`, `PUT`, `PATCH` and `DELETE`, per client address |
//!
//! Each rule is its own setting: a flag for `login-per-ip` leaves the file's
//! `refresh-per-ip` in force. Unknown names and malformed rules are errors.
//!
//! # Client addresses and trusted proxies
//!
//! Rate limits and audit records key on the client's address. By default
//! that is the TCP peer, and `X-Forwarded-For` is ignored: anyone can send
//! it. Behind a reverse proxy, list the proxy in `trusted-proxies` (single
//! addresses or CIDR ranges): only when the peer is one of them is
//! `X-Forwarded-For` read, from the right, skipping addresses that are
//! themselves trusted; the first untrusted one is the client. An address
//! the client wrote further left is never believed.
//!
//! # Metrics
//!
//! `GET /metrics` answers `404` unless metrics are on, and then only to
//! `Authorization: Bearer <token>` (compared in constant time); the token
//! must be at least [`MIN_METRICS_TOKEN_CHARS`] characters. Turning metrics
//! on without a token is refused when the configuration is loaded.
//!
//! The config file itself is named by `--config` or `CAP_CONFIG`.
//!
//! # The public URL
//!
//! `public-url` is the Panel's own address as the outside sees it (scheme,
//! host, optional port; no path). The Panel names itself with this setting
//! and never with a request's `Host` header, which whoever sends the request
//! chooses. Without it the Panel names itself `http://<listen address>`.
//!
//! ```
//! use cap_panel::config::{Config, ConfigLayer};
//!
//! let file = ConfigLayer::from_toml_str(r#"listen = "0.0.0.0:9000""#)?;
//! let env = ConfigLayer::from_env([("CAP_LISTEN", "127.0.0.1:7000")])?;
//! let flags = ConfigLayer::default();
//! let config = Config::from_layers([file, env, flags]);
//! assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
//! # Ok::<(), cap_panel::config::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::db::{DatabaseLocation, DatabaseOptions};
use crate::identity::rate_limit::{RateLimits, Rule};
use crate::secrets::{SECRET_KEY_ENV, SecretKey};

/// The default listen address: loopback only, so a fresh install is not
/// reachable from the network until the admin says so.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";
/// The default maximum size of a request body, in bytes (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// The default number of pooled database connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// The SQLite file created under the data directory when no URL is given.
pub const SQLITE_FILE_NAME: &str = "panel.db";
/// The shortest metrics token accepted.
pub const MIN_METRICS_TOKEN_CHARS: usize = 16;

/// The bearer token `GET /metrics` requires. Its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// `token`, if it is long enough.
    ///
    /// # Errors
    ///
    /// What is wrong with it, for people.
    pub fn new(token: &str) -> Result<MetricsToken, String> {
        if token.chars().count() < MIN_METRICS_TOKEN_CHARS {
            return Err(format!(
                "the metrics token must be at least {MIN_METRICS_TOKEN_CHARS} characters"
            ));
        }
        Ok(MetricsToken(token.to_owned()))
    }

    /// Whether `candidate` is this token, in time independent of where they
    /// differ.
    pub fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes()))
    }
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsToken(…)")
    }
}

/// The resolved configuration the Panel runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The Panel's URL as Agents and browsers reach it (see the module
    /// docs); `None` means `http://<listen>`.
    pub public_url: Option<PublicUrl>,
    /// Directory for the embedded database, plugin data and caches; created
    /// at start if missing.
    pub data_dir: PathBuf,
    /// Database URL; `None` selects SQLite at `<data_dir>/panel.db`.
    pub database_url: Option<String>,
    /// Maximum pooled database connections.
    pub database_max_connections: u32,
    /// Maximum request body size in bytes; larger bodies get `413`.
    pub body_limit: usize,
    /// Limits on the login, second-factor and token endpoints.
    pub rate_limits: RateLimits,
    /// The Marketplace plugins are installed from; `None` turns the
    /// Marketplace routes off.
    pub marketplace_url: Option<String>,
    /// The Marketplace's public key (64 hex digits). `None` trusts the key
    /// the Marketplace presents on first use and pins it in the database.
    pub marketplace_key: Option<String>,
    /// The absolute lifetime of a login session, in days (file
    /// `[auth] session-lifetime-days`, `CAP_SESSION_LIFETIME_DAYS`); see
    /// [`IdentityOptions::session_lifetime`](crate::identity::IdentityOptions::session_lifetime).
    pub session_lifetime_days: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed (see the module
    /// docs); empty: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `Some` serves `GET /metrics` to this bearer token; `None` answers
    /// `404` there.
    pub metrics_token: Option<MetricsToken>,
    /// The key that seals secrets at rest (`CAP_SECRET_KEY`); `None` uses
    /// `<data>/secret.key`, created on first start.
    pub secret_key: Option<SecretKey>,
    /// Server files.
    pub files: FileSettings,
    /// A PEM file of certificates the Panel trusts, besides the web PKI's
    /// roots, for its SMTP server's TLS (`mail.roots`, `CAP_MAIL_ROOTS`): an
    /// internal CA, or a mail server's own self-signed certificate. Checked
    /// when the configuration is loaded.
    pub mail_roots: Option<PathBuf>,
}

/// Settings of server files (`[files]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    /// Whether users may pull files from URLs into their servers
    /// (`files.pull`, `CAP_FILES_PULL`; default on).
    pub pull: bool,
    /// Hosts a pull may reach although they resolve to loopback or private
    /// addresses, in the syntax of plugins' HTTP grants (`host`,
    /// `host:port`, `*.suffix`): `files.pull-allowed-hosts`,
    /// `CAP_FILES_PULL_ALLOWED_HOSTS` (comma-separated); default none.
    pub pull_allowed_hosts: Vec<String>,
}

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            pull: true,
            pull_allowed_hosts: Vec::new(),
        }
    }
}

/// The default absolute lifetime of a login session, in days.
pub const DEFAULT_SESSION_LIFETIME_DAYS: u32 = 30;

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            database_max_connections: DEFAULT_MAX_CONNECTIONS,
            body_limit: DEFAULT_BODY_LIMIT,
            rate_limits: RateLimits::default(),
            marketplace_url: None,
            marketplace_key: None,
            session_lifetime_days: DEFAULT_SESSION_LIFETIME_DAYS,
            trusted_proxies: Vec::new(),
            metrics_token: None,
            secret_key: None,
            files: FileSettings::default(),
            mail_roots: None,
        }
    }
}

impl Config {
    /// Lays `layers` over the defaults, lowest precedence first: pass
    /// `[file, env, flags]`.
    pub fn from_layers(layers: impl IntoIterator<Item = ConfigLayer>) -> Config {
        let merged = layers
            .into_iter()
            .fold(ConfigLayer::default(), |lower, higher| higher.over(lower));
        let defaults = Config::default();
        Config {
            listen: merged.listen.unwrap_or(defaults.listen),
            public_url: merged.public_url,
            data_dir: merged.data_dir.unwrap_or(defaults.data_dir),
            database_url: merged.database_url,
            database_max_connections: merged
                .database_max_connections
                .unwrap_or(defaults.database_max_connections),
            body_limit: merged.body_limit.unwrap_or(defaults.body_limit),
            rate_limits: {
                let mut limits = defaults.rate_limits;
                for (name, rule) in merged.rate_limits {
                    // Names were checked when the layer was read.
                    if let Some(slot) = limits.rule_mut(&name) {
                        *slot = rule;
                    }
                }
                limits
            },
            marketplace_url: merged.marketplace_url,
            marketplace_key: merged.marketplace_key,
            session_lifetime_days: merged
                .session_lifetime_days
                .unwrap_or(defaults.session_lifetime_days),
            trusted_proxies: merged.trusted_proxies.unwrap_or_default(),
            metrics_token: match merged.metrics_enabled {
                Some(false) => None,
                Some(true) | None => merged.metrics_token,
            },
            secret_key: merged.secret_key,
            files: FileSettings {
                pull: merged.files_pull.unwrap_or(defaults.files.pull),
                pull_allowed_hosts: merged.files_pull_allowed_hosts.unwrap_or_default(),
            },
            mail_roots: merged.mail_roots,
        }
    }

    /// Reads every source and merges them: the file named by
    /// `flags.config_file`, else by `CAP_CONFIG`; the environment `env`; and
    /// the flags themselves.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the file cannot be read or parsed, or a variable
    /// holds an invalid value.
    pub fn load(
        flags: ConfigLayer,
        env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Config, ConfigError> {
        let env = ConfigLayer::from_os_env(env)?;
        let file_path = flags
            .config_file
            .clone()
            .or_else(|| env.config_file.clone());
        let file = match file_path {
            Some(path) => ConfigLayer::from_file(&path)?,
            None => ConfigLayer::default(),
        };
        let layers = [file, env, flags];
        let enabled = layers.iter().rev().find_map(|l| l.metrics_enabled);
        let has_token = layers.iter().any(|l| l.metrics_token.is_some());
        if enabled == Some(true) && !has_token {
            return Err(ConfigError::MetricsWithoutToken);
        }
        let config = Config::from_layers(layers);
        if let Some(path) = &config.mail_roots {
            crate::mail::read_roots(path).map_err(|message| ConfigError::MailRoots {
                path: path.clone(),
                message,
            })?;
        }
        Ok(config)
    }

    /// The Panel's base URL, without a trailing slash: [`Config::public_url`],
    /// else `http://<listen>`. Never derived from a request.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.as_str().to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Where the database lives: the configured URL, or the SQLite file
    /// under the data directory.
    pub fn database_location(&self) -> DatabaseLocation {
        match &self.database_url {
            Some(url) => DatabaseLocation::Url(url.clone()),
            None => DatabaseLocation::SqliteFile(self.data_dir.join(SQLITE_FILE_NAME)),
        }
    }

    /// The options [`crate::db::Database::connect`] takes.
    pub fn database_options(&self) -> DatabaseOptions {
        DatabaseOptions::new(self.database_location())
            .max_connections(self.database_max_connections)
    }
}

/// One source of configuration; `None` means "this source does not say".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigLayer {
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// Public URL.
    pub public_url: Option<PublicUrl>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Database URL.
    pub database_url: Option<String>,
    /// Maximum pooled database connections.
    pub database_max_connections: Option<u32>,
    /// Request body limit in bytes.
    pub body_limit: Option<usize>,
    /// A config file to read (meaningful in the flag and environment layers).
    pub config_file: Option<PathBuf>,
    /// Rate-limit rules by name (see [`RateLimits::NAMES`]); each is its own
    /// setting.
    pub rate_limits: BTreeMap<String, Rule>,
    /// Marketplace URL.
    pub marketplace_url: Option<String>,
    /// Marketplace public key.
    pub marketplace_key: Option<String>,
    /// Session lifetime in days.
    pub session_lifetime_days: Option<u32>,
    /// Trusted reverse proxies.
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
    /// Whether `GET /metrics` is served.
    pub metrics_enabled: Option<bool>,
    /// The token `GET /metrics` requires (turns metrics on unless
    /// `metrics_enabled` says `false`).
    pub metrics_token: Option<MetricsToken>,
    /// The secret key (environment only).
    pub secret_key: Option<SecretKey>,
    /// Whether files may be pulled from URLs.
    pub files_pull: Option<bool>,
    /// Hosts pulls may reach on non-public addresses.
    pub files_pull_allowed_hosts: Option<Vec<String>>,
    /// The certificates trusted for mail's TLS besides the web PKI.
    pub mail_roots: Option<PathBuf>,
}

impl ConfigLayer {
    /// This layer over `lower`: each setting this layer has wins.
    pub fn over(self, lower: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            listen: self.listen.or(lower.listen),
            public_url: self.public_url.or(lower.public_url),
            data_dir: self.data_dir.or(lower.data_dir),
            database_url: self.database_url.or(lower.database_url),
            database_max_connections: self
                .database_max_connections
                .or(lower.database_max_connections),
            body_limit: self.body_limit.or(lower.body_limit),
            config_file: self.config_file.or(lower.config_file),
            rate_limits: {
                let mut rules = lower.rate_limits;
                rules.extend(self.rate_limits);
                rules
            },
            marketplace_url: self.marketplace_url.or(lower.marketplace_url),
            marketplace_key: self.marketplace_key.or(lower.marketplace_key),
            session_lifetime_days: self.session_lifetime_days.or(lower.session_lifetime_days),
            trusted_proxies: self.trusted_proxies.or(lower.trusted_proxies),
            metrics_enabled: self.metrics_enabled.or(lower.metrics_enabled),
            metrics_token: self.metrics_token.or(lower.metrics_token),
            secret_key: self.secret_key.or(lower.secret_key),
            files_pull: self.files_pull.or(lower.files_pull),
            files_pull_allowed_hosts: self
                .files_pull_allowed_hosts
                .or(lower.files_pull_allowed_hosts),
            mail_roots: self.mail_roots.or(lower.mail_roots),
        }
    }

    /// Parses a TOML config file's text.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Toml`] for syntax errors, unknown keys and values of
    /// the wrong type.
    pub fn from_toml_str(text: &str) -> Result<ConfigLayer, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: None,
            message: e.to_string(),
        })?;
        let mut rate_limits = BTreeMap::new();
        for (name, text) in &file.rate_limits {
            let rule = parse_rate_limit(name, text).map_err(|message| ConfigError::Toml {
                path: None,
                message: format!("rate-limits.{name}: {message}"),
            })?;
            rate_limits.insert(name.clone(), rule);
        }
        if let Some(days) = file.auth.session_lifetime_days {
            parse_lifetime_days(&days.to_string()).map_err(|message| ConfigError::Toml {
                path: None,
                message: format!("auth.session-lifetime-days: {message}"),
            })?;
        }
        let toml_error = |message: String| ConfigError::Toml {
            path: None,
            message,
        };
        let trusted_proxies = match &file.http.trusted_proxies {
            Some(list) => Some(
                list.iter()
                    .map(|text| parse_proxy(text))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| toml_error(format!("http.trusted-proxies: {e}")))?,
            ),
            None => None,
        };
        let metrics_token = match &file.metrics.token {
            Some(token) => Some(
                MetricsToken::new(token).map_err(|e| toml_error(format!("metrics.token: {e}")))?,
            ),
            None => None,
        };
        let metrics_enabled = file.metrics.enabled;
        if let Some(hosts) = &file.files.pull_allowed_hosts {
            check_allowed_hosts(hosts.iter().map(String::as_str))
                .map_err(|e| toml_error(format!("files.pull-allowed-hosts: {e}")))?;
        }
        let mut layer = ConfigLayer::from(file);
        layer.rate_limits = rate_limits;
        layer.trusted_proxies = trusted_proxies;
        layer.metrics_enabled = metrics_enabled;
        layer.metrics_token = metrics_token;
        Ok(layer)
    }

    /// Reads and parses a TOML config file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ReadFile`] or [`ConfigError::Toml`].
    pub fn from_file(path: &Path) -> Result<ConfigLayer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Toml { message, .. } => ConfigError::Toml {
                path: Some(path.to_owned()),
                message,
            },
            other => other,
        })
    }

    /// Reads the `CAP_*` variables (and `DATABASE_URL`) from `vars`; other
    /// variables are ignored. Empty values count as unset.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] naming the variable whose value is invalid.
    pub fn from_env<K, V>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ConfigLayer, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut layer = ConfigLayer::default();
        let mut generic_database_url = None;
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref());
            if value.is_empty() {
                continue;
            }
            match key {
                "CAP_LISTEN" => layer.listen = Some(parse_env(key, value)?),
                "CAP_PUBLIC_URL" => layer.public_url = Some(parse_env(key, value)?),
                "CAP_DATA" => layer.data_dir = Some(PathBuf::from(value)),
                "CAP_DATABASE_URL" => layer.database_url = Some(value.to_owned()),
                "DATABASE_URL" => generic_database_url = Some(value.to_owned()),
                "CAP_DATABASE_MAX_CONNECTIONS" => {
                    layer.database_max_connections = Some(parse_env(key, value)?);
                }
                "CAP_HTTP_BODY_LIMIT" => layer.body_limit = Some(parse_env(key, value)?),
                "CAP_CONFIG" => layer.config_file = Some(PathBuf::from(value)),
                "CAP_MARKETPLACE_URL" => layer.marketplace_url = Some(value.to_owned()),
                "CAP_MARKETPLACE_KEY" => layer.marketplace_key = Some(value.to_owned()),
                "CAP_SESSION_LIFETIME_DAYS" => {
                    layer.session_lifetime_days = Some(parse_lifetime_days(value).map_err(
                        |message| ConfigError::Env {
                            var: key.to_owned(),
                            message,
                        },
                    )?);
                }
                "CAP_TRUSTED_PROXIES" => {
                    layer.trusted_proxies = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(parse_proxy)
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|message| ConfigError::Env {
                                var: key.to_owned(),
                                message,
                            })?,
                    );
                }
                "CAP_METRICS_ENABLED" => layer.metrics_enabled = Some(parse_env(key, value)?),
                "CAP_FILES_PULL" => layer.files_pull = Some(parse_env(key, value)?),
                "CAP_MAIL_ROOTS" => layer.mail_roots = Some(PathBuf::from(value)),
                "CAP_FILES_PULL_ALLOWED_HOSTS" => {
                    let hosts: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect();
                    check_allowed_hosts(hosts.iter().map(String::as_str)).map_err(|message| {
                        ConfigError::Env {
                            var: key.to_owned(),
                            message,
                        }
                    })?;
                    layer.files_pull_allowed_hosts = Some(hosts);
                }
                "CAP_METRICS_TOKEN" => {
                    layer.metrics_token =
                        Some(
                            MetricsToken::new(value).map_err(|message| ConfigError::Env {
                                var: key.to_owned(),
                                message,
                            })?,
                        );
                }
                SECRET_KEY_ENV => {
                    layer.secret_key =
                        Some(SecretKey::from_base64(value).map_err(|reason| ConfigError::Env {
                            var: key.to_owned(),
                            message: format!(
                                "{reason}; expected 32 random bytes in base64, e.g. `openssl rand -base64 32`"
                            ),
                        })?);
                }
                _ => {
                    if let Some(suffix) = key.strip_prefix(RATE_LIMIT_ENV_PREFIX) {
                        let name = suffix.to_ascii_lowercase().replace('_', "-");
                        let rule =
                            parse_rate_limit(&name, value).map_err(|message| ConfigError::Env {
                                var: key.to_owned(),
                                message,
                            })?;
                        layer.rate_limits.insert(name, rule);
                    }
                }
            }
        }
        // The product-specific name wins over the generic one.
        layer.database_url = layer.database_url.or(generic_database_url);
        Ok(layer)
    }

    /// [`ConfigLayer::from_env`] over the process environment's raw form
    /// (`std::env::vars_os()`). Variables this layer does not read may hold
    /// anything; ours must be UTF-8.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] for a non-UTF-8 or invalid value of one of ours.
    pub fn from_os_env(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<ConfigLayer, ConfigError> {
        let mut ours = Vec::new();
        for (key, value) in vars {
            let Some(key) = key.to_str() else { continue };
            if !(key.starts_with("CAP_") || key == "DATABASE_URL") {
                continue;
            }
            let value = value.into_string().map_err(|_| ConfigError::Env {
                var: key.to_owned(),
                message: "not valid UTF-8".to_owned(),
            })?;
            ours.push((key.to_owned(), value));
        }
        Self::from_env(ours)
    }
}

/// The prefix of the rate-limit variables: `CAP_RATE_LIMIT_LOGIN_PER_IP`
/// sets `login-per-ip`.
pub const RATE_LIMIT_ENV_PREFIX: &str = "CAP_RATE_LIMIT_";

/// Checks a rate-limit rule's name and parses its `BURST/PERIOD` text.
fn parse_rate_limit(name: &str, text: &str) -> Result<Rule, String> {
    if !RateLimits::NAMES.contains(&name) {
        return Err(format!(
            "unknown rate limit {name:?}; known: {}",
            RateLimits::NAMES.join(", ")
        ));
    }
    text.parse::<Rule>().map_err(|e| format!("{text:?}: {e}"))
}

/// Parses a trusted proxy: an address (`10.0.0.5`, `::1`) or a CIDR range
/// (`10.0.0.0/8`).
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| ipnet::IpNet::from(ip.to_canonical()))
        .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR range"))
}

/// Parses a `--rate-limit NAME=RULE` flag, e.g. `login-per-ip=5/10s`.
///
/// # Errors
///
/// What is wrong, for people: a missing `=`, an unknown name or a
/// malformed rule.
pub fn parse_rate_limit_flag(flag: &str) -> Result<(String, Rule), String> {
    let (name, rule) = flag
        .split_once('=')
        .ok_or_else(|| format!("{flag:?} is not NAME=RULE, e.g. login-per-ip=5/10s"))?;
    let name = name.trim();
    Ok((name.to_owned(), parse_rate_limit(name, rule)?))
}

/// Parses a session lifetime in days: 1 to 3650.
fn parse_lifetime_days(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(days @ 1..=3650) => Ok(days),
        _ => Err(format!("{text:?}: must be a number of days from 1 to 3650")),
    }
}

fn parse_env<T>(var: &str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Env {
        var: var.to_owned(),
        message: format!("{value:?}: {e}"),
    })
}

/// The Panel's public base URL: `http` or `https`, a host, an optional
/// port, no path, query, fragment or credentials; kept without a trailing
/// slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// The URL, e.g. `https://panel.example.com`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PublicUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{text:?} must start with https:// or http://"));
        }
        if url.host_str().is_none_or(str::is_empty)
            || !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(format!(
                "{text:?} must be scheme://host[:port] only, without a path, query or credentials"
            ));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PublicUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Toml {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An environment variable holds an invalid value.
    #[error("invalid environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong with it.
        message: String,
    },
    /// Metrics are turned on, but no token protects them.
    #[error(
        "metrics.enabled is true but no token is set: set metrics.token or CAP_METRICS_TOKEN \
         (at least {MIN_METRICS_TOKEN_CHARS} characters), or turn metrics off"
    )]
    MetricsWithoutToken,
    /// The mail roots file (`mail.roots`, `CAP_MAIL_ROOTS`) cannot be used.
    #[error("mail.roots {path}: {message}")]
    MailRoots {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        message: String,
    },
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    public_url: Option<PublicUrl>,
    data: Option<PathBuf>,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    rate_limits: BTreeMap<String, String>,
    #[serde(default)]
    marketplace: FileMarketplace,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    metrics: FileMetrics,
    #[serde(default)]
    files: FileFiles,
    #[serde(default)]
    mail: FileMail,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileMail {
    roots: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileFiles {
    pull: Option<bool>,
    pull_allowed_hosts: Option<Vec<String>>,
}

/// `Ok` when every entry is a host grant plugins' HTTP would accept.
fn check_allowed_hosts<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    for host in hosts {
        cap_runtime::capabilities::http::HostPattern::parse(host)
            .map_err(|e| format!("{host:?}: {e}"))?;
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileAuth {
    session_lifetime_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileMetrics {
    enabled: Option<bool>,
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileMarketplace {
    url: Option<String>,
    public_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileDatabase {
    url: Option<String>,
    max_connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileHttp {
    body_limit: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
}

impl From<FileConfig> for ConfigLayer {
    fn from(file: FileConfig) -> Self {
        ConfigLayer {
            listen: file.listen,
            public_url: file.public_url,
            data_dir: file.data,
            database_url: file.database.url,
            database_max_connections: file.database.max_connections,
            body_limit: file.http.body_limit,
            config_file: None,
            rate_limits: BTreeMap::new(),
            marketplace_url: file.marketplace.url,
            marketplace_key: file.marketplace.public_key,
            session_lifetime_days: file.auth.session_lifetime_days,
            trusted_proxies: None,
            metrics_enabled: None,
            metrics_token: None,
            secret_key: None,
            files_pull: file.files.pull,
            files_pull_allowed_hosts: file.files.pull_allowed_hosts,
            mail_roots: file.mail.roots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test addresses are valid")
    }

    #[test]
    fn the_session_lifetime_comes_from_the_file_or_the_environment_and_is_bounded() {
        assert_eq!(
            Config::default().session_lifetime_days,
            DEFAULT_SESSION_LIFETIME_DAYS
        );
        let file =
            ConfigLayer::from_toml_str("[auth]\nsession-lifetime-days = 7\n").expect("valid");
        assert_eq!(Config::from_layers([file.clone()]).session_lifetime_days, 7);
        let env = ConfigLayer::from_env([("CAP_SESSION_LIFETIME_DAYS", "2")]).expect("valid");
        assert_eq!(Config::from_layers([file, env]).session_lifetime_days, 2);
        for bad in ["0", "3651", "soon"] {
            let error = ConfigLayer::from_env([("CAP_SESSION_LIFETIME_DAYS", bad)])
                .expect_err("out of range");
            assert!(
                error.to_string().contains("CAP_SESSION_LIFETIME_DAYS"),
                "{error}"
            );
        }
        let error = ConfigLayer::from_toml_str("[auth]\nsession-lifetime-days = 0\n")
            .expect_err("out of range");
        assert!(
            error.to_string().contains("session-lifetime-days"),
            "{error}"
        );
    }

    #[test]
    fn uses_the_defaults_when_no_source_says_anything() {
        let config = Config::from_layers([]);
        assert_eq!(config, Config::default());
        assert_eq!(config.listen, addr(DEFAULT_LISTEN));
        assert_eq!(
            config.database_location(),
            DatabaseLocation::SqliteFile(PathBuf::from("data/panel.db"))
        );
    }

    #[test]
    fn flags_beat_environment_which_beats_the_file_which_beats_defaults() {
        let file = ConfigLayer::from_toml_str(
            r#"
            listen = "10.0.0.1:1"
            data = "/file"
            [database]
            url = "postgres://file"
            max-connections = 3
            [http]
            body-limit = 100
            "#,
        )
        .expect("valid file");
        let env = ConfigLayer::from_env([("CAP_LISTEN", "10.0.0.2:2"), ("CAP_DATA", "/env")])
            .expect("valid env");
        let flags = ConfigLayer {
            listen: Some(addr("10.0.0.3:3")),
            ..ConfigLayer::default()
        };
        let config = Config::from_layers([file, env, flags]);
        assert_eq!(config.listen, addr("10.0.0.3:3"), "flag wins");
        assert_eq!(config.data_dir, PathBuf::from("/env"), "env beats file");
        assert_eq!(config.database_url.as_deref(), Some("postgres://file"));
        assert_eq!(config.database_max_connections, 3);
        assert_eq!(config.body_limit, 100, "file beats default");
    }

    #[test]
    fn the_marketplace_url_and_key_come_from_the_file_and_the_environment() {
        let file = ConfigLayer::from_toml_str(
            r#"
            [marketplace]
            url = "https://file.example"
            public-key = "ab"
            "#,
        )
        .expect("valid file");
        let env = ConfigLayer::from_env([("CAP_MARKETPLACE_URL", "http://env.example")])
            .expect("valid env");
        let config = Config::from_layers([file, env]);
        assert_eq!(
            config.marketplace_url.as_deref(),
            Some("http://env.example")
        );
        assert_eq!(
            config.marketplace_key.as_deref(),
            Some("ab"),
            "the file's key stays"
        );
        assert!(ConfigLayer::from_toml_str("[marketplace]\nkey = \"x\"\n").is_err());
        assert_eq!(Config::from_layers([]).marketplace_url, None);
    }

    #[test]
    fn prefers_cap_database_url_over_database_url_in_either_order() {
        for vars in [
            [
                ("DATABASE_URL", "mysql://generic"),
                ("CAP_DATABASE_URL", "mysql://ours"),
            ],
            [
                ("CAP_DATABASE_URL", "mysql://ours"),
                ("DATABASE_URL", "mysql://generic"),
            ],
        ] {
            let layer = ConfigLayer::from_env(vars).expect("valid env");
            assert_eq!(layer.database_url.as_deref(), Some("mysql://ours"));
        }
        let layer = ConfigLayer::from_env([("DATABASE_URL", "mysql://generic")]).expect("valid");
        assert_eq!(layer.database_url.as_deref(), Some("mysql://generic"));
    }

    #[test]
    fn layers_each_rate_limit_rule_on_its_own() {
        let file = ConfigLayer::from_toml_str(
            r#"
            [rate-limits]
            login-per-ip = "7/1m"
            refresh-per-ip = "3/10s"
            "#,
        )
        .expect("valid file");
        let env = ConfigLayer::from_env([("CAP_RATE_LIMIT_LOGIN_PER_IP", "5/2s")]).expect("env");
        let (name, rule) = parse_rate_limit_flag("second-factor-per-account=2/1h").expect("flag");
        let flags = ConfigLayer {
            rate_limits: BTreeMap::from([(name, rule)]),
            ..ConfigLayer::default()
        };
        let limits = Config::from_layers([file, env, flags]).rate_limits;
        let defaults = RateLimits::default();
        assert_eq!(
            limits.login_per_ip,
            "5/2s".parse().expect("rule"),
            "env beats file"
        );
        assert_eq!(
            limits.refresh_per_ip,
            "3/10s".parse().expect("rule"),
            "file beats default"
        );
        assert_eq!(
            limits.second_factor_per_account,
            "2/1h".parse().expect("rule")
        );
        assert_eq!(limits.login_per_account, defaults.login_per_account);
        assert_eq!(limits.second_factor_per_ip, defaults.second_factor_per_ip);
    }

    #[test]
    fn refuses_unknown_and_malformed_rate_limits_naming_where() {
        let err = ConfigLayer::from_toml_str("[rate-limits]\nlogin-per-ipp = \"5/1s\"")
            .expect_err("unknown name");
        assert!(err.to_string().contains("login-per-ipp"), "{err}");
        let err = ConfigLayer::from_toml_str("[rate-limits]\nlogin-per-ip = \"5 per second\"")
            .expect_err("malformed rule");
        assert!(
            err.to_string().contains("rate-limits.login-per-ip"),
            "{err}"
        );
        let err = ConfigLayer::from_env([("CAP_RATE_LIMIT_LOGIN_PER_IP", "0/1s")])
            .expect_err("zero burst");
        assert!(
            err.to_string().contains("CAP_RATE_LIMIT_LOGIN_PER_IP"),
            "{err}"
        );
        let err = ConfigLayer::from_env([("CAP_RATE_LIMIT_NOPE", "1/1s")]).expect_err("unknown");
        assert!(err.to_string().contains("unknown rate limit"), "{err}");
        assert!(parse_rate_limit_flag("login-per-ip").is_err());
    }

    #[test]
    fn reads_the_secret_key_from_the_environment_only() {
        let key = SecretKey::generate();
        let env = ConfigLayer::from_env([(SECRET_KEY_ENV, key.to_base64())]).expect("env");
        assert_eq!(Config::from_layers([env]).secret_key, Some(key));
        let file = ConfigLayer::from_toml_str("secret-key = \"abc\"\n");
        assert!(file.is_err(), "the file has no secret key setting");
    }

    #[test]
    fn a_malformed_secret_key_names_the_variable_and_not_the_value() {
        let err = ConfigLayer::from_env([(SECRET_KEY_ENV, "c2hvcnQta2V5")]).expect_err("9 bytes");
        let message = err.to_string();
        assert!(message.contains(SECRET_KEY_ENV), "{message}");
        assert!(message.contains("9 bytes instead of 32"), "{message}");
        assert!(!message.contains("c2hvcnQta2V5"), "{message}");
    }

    #[test]
    fn ignores_empty_and_unrelated_variables() {
        let layer = ConfigLayer::from_env([("CAP_LISTEN", ""), ("HOME", "/root")]).expect("valid");
        assert_eq!(layer, ConfigLayer::default());
    }

    #[test]
    fn names_the_variable_that_holds_an_invalid_value() {
        let err = ConfigLayer::from_env([("CAP_LISTEN", "not an address")])
            .expect_err("an invalid address is refused");
        let message = err.to_string();
        assert!(message.contains("CAP_LISTEN"), "{message}");
        assert!(message.contains("not an address"), "{message}");
    }

    #[test]
    fn rejects_unknown_keys_in_the_file() {
        let err = ConfigLayer::from_toml_str("lisen = \"127.0.0.1:1\"")
            .expect_err("an unknown key is refused");
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn reads_the_file_named_by_the_flag_before_the_one_named_by_the_environment() {
        let dir = tempfile::tempdir().expect("temp dir");
        let by_flag = dir.path().join("flag.toml");
        let by_env = dir.path().join("env.toml");
        std::fs::write(&by_flag, "data = \"/from-flag-file\"").expect("write");
        std::fs::write(&by_env, "data = \"/from-env-file\"").expect("write");
        let env = vec![(
            OsString::from("CAP_CONFIG"),
            by_env.clone().into_os_string(),
        )];

        let flags = ConfigLayer {
            config_file: Some(by_flag),
            ..ConfigLayer::default()
        };
        let config = Config::load(flags, env.clone()).expect("loads");
        assert_eq!(config.data_dir, PathBuf::from("/from-flag-file"));

        let config = Config::load(ConfigLayer::default(), env).expect("loads");
        assert_eq!(config.data_dir, PathBuf::from("/from-env-file"));
    }

    #[test]
    fn reports_a_missing_config_file_with_its_path() {
        let flags = ConfigLayer {
            config_file: Some(PathBuf::from("/nonexistent/cap.toml")),
            ..ConfigLayer::default()
        };
        let err = Config::load(flags, Vec::new()).expect_err("a missing file is an error");
        assert!(err.to_string().contains("/nonexistent/cap.toml"), "{err}");
    }

    #[test]
    fn the_public_url_is_scheme_host_and_port_only_and_names_the_panel() {
        let url: PublicUrl = "https://panel.example.com/".parse().expect("valid");
        assert_eq!(url.as_str(), "https://panel.example.com");
        let file = ConfigLayer::from_toml_str(r#"public-url = "https://panel.example.com:8443""#)
            .expect("file");
        let env = ConfigLayer::from_env([("CAP_PUBLIC_URL", "http://10.0.0.5:8080")]).expect("env");
        assert_eq!(
            Config::from_layers([file.clone(), env]).base_url(),
            "http://10.0.0.5:8080"
        );
        assert_eq!(
            Config::from_layers([file]).base_url(),
            "https://panel.example.com:8443"
        );
        assert_eq!(Config::default().base_url(), "http://127.0.0.1:8080");
        for bad in [
            "panel.example.com",
            "ftp://panel.example.com",
            "https://panel.example.com/panel",
            "https://user:pw@panel.example.com",
            "https://panel.example.com/?x=1",
            "https://panel.example.com/#top",
        ] {
            assert!(bad.parse::<PublicUrl>().is_err(), "{bad}");
        }
        assert!(ConfigLayer::from_toml_str(r#"public-url = "https://x/y""#).is_err());
        assert!(ConfigLayer::from_env([("CAP_PUBLIC_URL", "x")]).is_err());
    }
}
