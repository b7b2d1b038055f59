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
//! data = "/var/lib/ctrl-alt-play"    # relative paths are relative to the working directory
//!
//! [database]
//! url = "postgres://cap@db.internal/cap"   # default: SQLite at <data>/panel.db
//! max-connections = 10
//!
//! [http]
//! body-limit = 1048576   # bytes
//! ```
//!
//! | Setting | Flag | Environment | File |
//! | --- | --- | --- | --- |
//! | listen address | `--listen` | `CAP_LISTEN` | `listen` |
//! | data directory | `--data` | `CAP_DATA` | `data` |
//! | database URL | `--database-url` | `CAP_DATABASE_URL`, else `DATABASE_URL` | `database.url` |
//! | pool size | | `CAP_DATABASE_MAX_CONNECTIONS` | `database.max-connections` |
//! | request body limit | | `CAP_HTTP_BODY_LIMIT` | `http.body-limit` |
//!
//! The config file itself is named by `--config` or `CAP_CONFIG`.
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

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::db::{DatabaseLocation, DatabaseOptions};

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

/// The resolved configuration the Panel runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Directory for the embedded database, plugin data and caches; created
    /// at start if missing.
    pub data_dir: PathBuf,
    /// Database URL; `None` selects SQLite at `<data_dir>/panel.db`.
    pub database_url: Option<String>,
    /// Maximum pooled database connections.
    pub database_max_connections: u32,
    /// Maximum request body size in bytes; larger bodies get `413`.
    pub body_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            database_max_connections: DEFAULT_MAX_CONNECTIONS,
            body_limit: DEFAULT_BODY_LIMIT,
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
            data_dir: merged.data_dir.unwrap_or(defaults.data_dir),
            database_url: merged.database_url,
            database_max_connections: merged
                .database_max_connections
                .unwrap_or(defaults.database_max_connections),
            body_limit: merged.body_limit.unwrap_or(defaults.body_limit),
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
        Ok(Config::from_layers([file, env, flags]))
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
}

impl ConfigLayer {
    /// This layer over `lower`: each setting this layer has wins.
    pub fn over(self, lower: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            database_url: self.database_url.or(lower.database_url),
            database_max_connections: self
                .database_max_connections
                .or(lower.database_max_connections),
            body_limit: self.body_limit.or(lower.body_limit),
            config_file: self.config_file.or(lower.config_file),
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
        Ok(file.into())
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
                "CAP_DATA" => layer.data_dir = Some(PathBuf::from(value)),
                "CAP_DATABASE_URL" => layer.database_url = Some(value.to_owned()),
                "DATABASE_URL" => generic_database_url = Some(value.to_owned()),
                "CAP_DATABASE_MAX_CONNECTIONS" => {
                    layer.database_max_connections = Some(parse_env(key, value)?);
                }
                "CAP_HTTP_BODY_LIMIT" => layer.body_limit = Some(parse_env(key, value)?),
                "CAP_CONFIG" => layer.config_file = Some(PathBuf::from(value)),
                _ => {}
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
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    http: FileHttp,
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
}

impl From<FileConfig> for ConfigLayer {
    fn from(file: FileConfig) -> Self {
        ConfigLayer {
            listen: file.listen,
            data_dir: file.data,
            database_url: file.database.url,
            database_max_connections: file.database.max_connections,
            body_limit: file.http.body_limit,
            config_file: None,
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
}
