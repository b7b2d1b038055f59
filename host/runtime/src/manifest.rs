//! `plugin.toml`: what a plugin is, what it implements and what it asks for.
//!
//! Parsing is strict (unknown keys are errors) and validation collects every
//! problem at once, each naming the offending field, so an author fixes a
//! manifest in one pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::api::EventKind;

/// The longest manifest the host reads, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// A parsed and validated `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Manifest {
    /// Identity and API version.
    pub plugin: PluginSection,
    /// Host capabilities the plugin requests.
    #[serde(default)]
    pub capabilities: CapabilityRequest,
    /// Events the plugin subscribes to (kind `hooks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HookSubscriptions>,
    /// Resource limits the plugin asks for; the admin's caps win.
    #[serde(default)]
    pub limits: LimitRequest,
    /// Configuration keys the admin may set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigKey>,
    /// Other plugins this one needs, as cargo-style version requirements.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, semver::VersionReq>,
    /// UI contributions (kind `ui`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<UiSection>,
    /// Permissions the plugin adds to the Panel's catalogue, by name, with
    /// a description for admins: `"<plugin id>.<action>" = "what it
    /// allows"`. Once the plugin is loaded they can be granted to roles and
    /// API keys like built-in ones, and plugins see them among the viewer's
    /// permissions (e.g. in a UI `render-context`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions: BTreeMap<String, String>,
    /// Where a game type's servers can run (kind `game-type`); absent means
    /// natively only, as every game type before this table did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game: Option<GameSection>,
}

/// The `[game]` table of a game type: the runtimes its servers run on.
///
/// ```toml
/// [game]
/// runtimes = ["native", "container"]
/// image = "ghcr.io/example/game:1.2"
/// install-image = "debian:bookworm-slim"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GameSection {
    /// The runtimes it supports, at least one.
    pub runtimes: Vec<GameRuntime>,
    /// The image servers run in on a container node (required with
    /// `container`). The startup plan's program runs in it; an empty
    /// program keeps the image's own entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image install scripts run in on a container node; `image` when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_image: Option<String>,
}

/// A runtime a game type's servers can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GameRuntime {
    /// The startup plan's program as a process of the node.
    Native,
    /// In a container of [`GameSection::image`].
    Container,
}

impl GameRuntime {
    /// The name used in manifests and the node capability that offers it
    /// (`native-process`, `container`).
    pub fn capability(self) -> &'static str {
        match self {
            Self::Native => "native-process",
            Self::Container => "container",
        }
    }
}

impl Manifest {
    /// The runtimes a game type supports: its `[game]` table's, or native
    /// only without one.
    pub fn game_runtimes(&self) -> Vec<GameRuntime> {
        self.game
            .as_ref()
            .map_or_else(|| vec![GameRuntime::Native], |g| g.runtimes.clone())
    }
}

/// Whether `image` is a well-formed container image reference
/// (`[registry/]path[:tag][@sha256:digest]`): at most 255 characters of
/// `a-z 0-9 . _ - / : @`, no whitespace, not starting with `-`.
pub fn is_image_reference(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= 255
        && !image.starts_with(['-', '/', ':', '@'])
        && !image.ends_with(['/', ':', '@'])
        && image.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_uppercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        })
}

/// How many permissions one plugin may declare.
pub const MAX_DECLARED_PERMISSIONS: usize = 64;

/// The `[plugin]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PluginSection {
    /// Stable identifier: `^[a-z][a-z0-9-]{1,62}$`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The plugin's own version.
    pub version: semver::Version,
    /// One or two sentences for people.
    #[serde(default)]
    pub description: String,
    /// Authors, free form.
    #[serde(default)]
    pub authors: Vec<String>,
    /// SPDX license expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// What the component implements.
    pub kinds: Vec<PluginKind>,
    /// The WIT API version the component targets.
    pub api: semver::Version,
    /// Marketplace price id for paid plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
}

/// A kind of plugin, i.e. which exported interfaces the host may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Exports `game-type` and `game-console`.
    GameType,
    /// Exports `auth-provider`.
    AuthProvider,
    /// Exports `hooks`.
    Hooks,
    /// Exports `ui`.
    Ui,
    /// Exports `game-catalogue` (since 0.2.0): its game types are documents
    /// admins import. Declared beside `game-type`.
    GameCatalogue,
}

impl PluginKind {
    /// Every kind, in declaration order.
    pub const ALL: [PluginKind; 5] = [
        Self::GameType,
        Self::AuthProvider,
        Self::Hooks,
        Self::Ui,
        Self::GameCatalogue,
    ];

    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GameType => "game-type",
            Self::AuthProvider => "auth-provider",
            Self::Hooks => "hooks",
            Self::Ui => "ui",
            Self::GameCatalogue => "game-catalogue",
        }
    }

    /// The unversioned WIT interfaces (`ctrl-alt-play:plugin/<name>`) this kind exports.
    pub fn interfaces(self) -> &'static [&'static str] {
        match self {
            Self::GameType => &["game-type", "game-console"],
            Self::AuthProvider => &["auth-provider"],
            Self::Hooks => &["hooks"],
            Self::Ui => &["ui"],
            Self::GameCatalogue => &["game-catalogue"],
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[capabilities]` table. Anything absent is not requested.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CapabilityRequest {
    /// Plugin-scoped key-value store.
    #[serde(default)]
    pub kv: bool,
    /// Reading the plugin's configuration.
    #[serde(default)]
    pub config: bool,
    /// Secret keys the plugin may read.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub secrets: BTreeSet<String>,
    /// A real wall clock (otherwise WASI clocks read a frozen time).
    #[serde(default)]
    pub clock: bool,
    /// A real *insecure* random source (otherwise `wasi:random/insecure` is
    /// a fixed-seed stream). The secure source is always real.
    #[serde(default)]
    pub random: bool,
    /// Outbound HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequest>,
    /// Publishing events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsRequest>,
    /// Panel API scopes.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub panel: BTreeSet<PanelScope>,
    /// Timers (API 0.2.0): wake-ups delivered to the plugin's own
    /// after-hook as `schedule.tick` events, which it must subscribe to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timers: bool,
}

/// `capabilities.http`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpRequest {
    /// `host`, an IP address (IPv6 in brackets) or a CIDR range, each with
    /// an optional `:port` that may be `*`. Names reach public addresses
    /// only; non-public ones need an address or range entry (see
    /// [`crate::capabilities::http`]).
    pub allowed_hosts: Vec<String>,
}

/// `capabilities.events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EventsRequest {
    /// Topics the plugin may publish.
    pub publish: BTreeSet<String>,
}

/// A scope of the `panel` capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PanelScope {
    /// `list-servers`, `get-server`.
    #[serde(rename = "servers.read")]
    ServersRead,
    /// `send-console-command`.
    #[serde(rename = "console.send")]
    ConsoleSend,
    /// `power-action` (API 0.2.0).
    #[serde(rename = "power")]
    Power,
    /// `create-backup` (API 0.2.0).
    #[serde(rename = "backups.create")]
    BackupsCreate,
    /// `suspend-server`, `unsuspend-server` (API 0.2.0).
    #[serde(rename = "servers.suspend")]
    ServersSuspend,
}

impl PanelScope {
    /// Every scope.
    pub const ALL: [PanelScope; 5] = [
        PanelScope::ServersRead,
        PanelScope::ConsoleSend,
        PanelScope::Power,
        PanelScope::BackupsCreate,
        PanelScope::ServersSuspend,
    ];

    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServersRead => "servers.read",
            Self::ConsoleSend => "console.send",
            Self::Power => "power",
            Self::BackupsCreate => "backups.create",
            Self::ServersSuspend => "servers.suspend",
        }
    }

    /// The scope named `name` in manifests.
    pub fn from_name(name: &str) -> Option<PanelScope> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The minor version of the plugin API (0.x) whose `panel` interface
    /// has the functions of this scope: a plugin of an older API cannot
    /// ask for it.
    pub fn since_minor(self) -> u64 {
        match self {
            Self::ServersRead | Self::ConsoleSend => 1,
            Self::Power | Self::BackupsCreate | Self::ServersSuspend => 2,
        }
    }
}

/// The `[hooks]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HookSubscriptions {
    /// Events delivered to `before` (in dotted form, e.g. `server.create`).
    #[serde(default)]
    pub before: BTreeSet<String>,
    /// Events delivered to `after`.
    #[serde(default)]
    pub after: BTreeSet<String>,
    /// Whether a failing `before` call denies the operation (default: allow).
    #[serde(default)]
    pub fail_closed: bool,
}

impl HookSubscriptions {
    /// Whether the plugin's `before` hook receives `kind`.
    pub fn wants_before(&self, kind: EventKind) -> bool {
        self.before.contains(kind.dotted())
    }

    /// Whether the plugin's `after` hook receives `kind`.
    pub fn wants_after(&self, kind: EventKind) -> bool {
        self.after.contains(kind.dotted())
    }
}

/// The `[limits]` table: what the plugin asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LimitRequest {
    /// Linear memory, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// Wall-clock time per call, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

/// One `[[config]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigKey {
    /// The key passed to `config.get`.
    pub key: String,
    /// What it does, for the admin.
    #[serde(default)]
    pub description: String,
    /// Value type.
    #[serde(rename = "type", default)]
    pub value_type: ConfigType,
    /// Default value, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Whether the admin must set it before activation.
    #[serde(default)]
    pub required: bool,
}

/// Type of a configuration value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigType {
    /// Any UTF-8 string.
    #[default]
    String,
    /// A signed 64-bit integer.
    Integer,
    /// `true` or `false`.
    Boolean,
}

impl ConfigType {
    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
        }
    }

    /// Checks that `value` parses as this type.
    pub fn check(self, value: &str) -> bool {
        match self {
            Self::String => true,
            Self::Integer => value.parse::<i64>().is_ok(),
            Self::Boolean => matches!(value, "true" | "false"),
        }
    }
}

/// The `[ui]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UiSection {
    /// Places the plugin contributes to.
    #[serde(default)]
    pub contributions: Vec<UiContribution>,
}

/// One `[[ui.contributions]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UiContribution {
    /// Passed to `render` as `contribution`.
    pub id: String,
    /// Where it is shown.
    pub slot: UiSlot,
    /// Title in navigation or on the widget.
    pub title: String,
}

/// Where a UI contribution appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UiSlot {
    /// A page of its own, linked from the navigation.
    NavPage,
    /// A widget on a server's page.
    ServerWidget,
    /// A widget on the dashboard.
    DashboardWidget,
}

/// One problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `plugin.id` or `hooks.before[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("plugin.toml is {0} bytes; the limit is {MAX_MANIFEST_BYTES}")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("plugin.toml is not valid UTF-8")]
    NotUtf8,
    /// TOML syntax or shape error (unknown key, wrong type, missing field).
    #[error("plugin.toml: {0}")]
    Syntax(String),
    /// Parsed, but values are invalid.
    #[error("plugin.toml is invalid: {}", join_errors(.0))]
    Invalid(Vec<FieldError>),
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether `id` is a valid plugin id (also used for dependencies).
pub fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (2..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !id.ends_with('-')
        && !id.contains("--")
}

/// True if and only if `permission` is a well-formed `resource.action`
/// permission string: two or more dot-separated parts of lowercase letters,
/// digits and `-`, at most 128 characters. The Panel applies the same rule
/// to every permission it knows.
pub fn is_valid_permission(permission: &str) -> bool {
    permission.len() <= 128
        && permission.split('.').count() >= 2
        && permission.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

impl Manifest {
    /// Parses and validates manifest bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
        let manifest: Manifest = toml::from_str(text)
            .map_err(|e| ManifestError::Syntax(describe_toml_error(text, &e)))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every value, returning all problems at once.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut errors = Vec::new();
        let mut err = |field: String, message: String| errors.push(FieldError { field, message });
        let p = &self.plugin;

        if !is_valid_id(&p.id) {
            err(
                "plugin.id".into(),
                format!(
                    "{:?} is not a valid id: use 2-63 characters of a-z, 0-9 and single '-', starting with a letter",
                    p.id
                ),
            );
        }
        if p.name.trim().is_empty() || p.name.len() > 100 {
            err("plugin.name".into(), "must be 1-100 characters".into());
        }
        if p.description.len() > 1000 {
            err(
                "plugin.description".into(),
                "must be at most 1000 characters".into(),
            );
        }
        if p.kinds.is_empty() {
            err(
                "plugin.kinds".into(),
                "must list at least one of game-type, auth-provider, hooks, ui, game-catalogue"
                    .into(),
            );
        }
        let kinds: BTreeSet<_> = p.kinds.iter().copied().collect();
        if kinds.len() != p.kinds.len() {
            err("plugin.kinds".into(), "lists a kind twice".into());
        }
        if let Some(price) = &p.price
            && (price.is_empty() || price.len() > 255 || price.chars().any(char::is_whitespace))
        {
            err(
                "plugin.price".into(),
                "must be a non-empty price id without spaces".into(),
            );
        }

        if kinds.contains(&PluginKind::GameCatalogue) {
            if !kinds.contains(&PluginKind::GameType) {
                err(
                    "plugin.kinds".into(),
                    "game-catalogue is for game-type plugins (add game-type)".into(),
                );
            }
            if p.api < semver::Version::new(0, 2, 0) {
                err(
                    "plugin.kinds".into(),
                    format!("game-catalogue needs api 0.2.0 or newer, not {}", p.api),
                );
            }
        }

        if let Some(game) = &self.game {
            if !kinds.contains(&PluginKind::GameType) {
                err(
                    "game".into(),
                    "is for game-type plugins only (add game-type to plugin.kinds)".into(),
                );
            }
            if game.runtimes.is_empty() {
                err(
                    "game.runtimes".into(),
                    "must list native, container or both".into(),
                );
            }
            let runtimes: BTreeSet<_> = game.runtimes.iter().copied().collect();
            if runtimes.len() != game.runtimes.len() {
                err("game.runtimes".into(), "lists a runtime twice".into());
            }
            // Since 0.2.0 each game type may name its own images.
            if runtimes.contains(&GameRuntime::Container)
                && game.image.is_none()
                && p.api < semver::Version::new(0, 2, 0)
            {
                err(
                    "game.image".into(),
                    "is required when game.runtimes lists container".into(),
                );
            }
            for (field, image) in [
                ("game.image", &game.image),
                ("game.install-image", &game.install_image),
            ] {
                if let Some(image) = image
                    && !is_image_reference(image)
                {
                    err(
                        field.into(),
                        format!("{image:?} is not a container image reference"),
                    );
                }
            }
        }

        let caps = &self.capabilities;
        for secret in &caps.secrets {
            if !is_config_key(secret) {
                err(
                    "capabilities.secrets".into(),
                    format!("{secret:?} is not a valid key"),
                );
            }
        }
        if let Some(http) = &caps.http {
            if http.allowed_hosts.is_empty() {
                err(
                    "capabilities.http.allowed-hosts".into(),
                    "must list at least one host (or remove capabilities.http)".into(),
                );
            }
            for (i, host) in http.allowed_hosts.iter().enumerate() {
                if let Err(message) = crate::capabilities::http::HostPattern::parse(host) {
                    err(format!("capabilities.http.allowed-hosts[{i}]"), message);
                }
            }
        }
        if let Some(events) = &caps.events {
            for topic in &events.publish {
                if !is_topic(topic) {
                    err(
                        "capabilities.events.publish".into(),
                        format!("{topic:?} is not a valid topic (dotted lowercase words)"),
                    );
                }
            }
        }

        for scope in &caps.panel {
            if p.api.major == 0 && scope.since_minor() > p.api.minor {
                err(
                    "capabilities.panel".into(),
                    format!(
                        "{:?} needs plugin API 0.{}.0 (this plugin targets {})",
                        scope.as_str(),
                        scope.since_minor(),
                        p.api
                    ),
                );
            }
        }
        if caps.timers {
            if p.api < semver::Version::new(0, 2, 0) {
                err(
                    "capabilities.timers".into(),
                    format!(
                        "needs plugin API 0.2.0 or newer (this plugin targets {})",
                        p.api
                    ),
                );
            }
            let ticked = kinds.contains(&PluginKind::Hooks)
                && self
                    .hooks
                    .as_ref()
                    .is_some_and(|h| h.wants_after(EventKind::ScheduleTick));
            if !ticked {
                err(
                    "capabilities.timers".into(),
                    "timers are delivered to the plugin's after-hook: add kind hooks and \"schedule.tick\" to hooks.after".into(),
                );
            }
        }

        match (&self.hooks, kinds.contains(&PluginKind::Hooks)) {
            (Some(hooks), true) => {
                for (list, names) in [("before", &hooks.before), ("after", &hooks.after)] {
                    for name in names {
                        match EventKind::from_dotted(name) {
                            None => err(
                                format!("hooks.{list}"),
                                format!(
                                    "{name:?} is not a known event (e.g. server.create, console.player-joined)"
                                ),
                            ),
                            Some(kind)
                                if self.plugin.api.major == 0
                                    && kind.since_minor() > self.plugin.api.minor =>
                            {
                                err(
                                    format!("hooks.{list}"),
                                    format!(
                                        "{name:?} needs plugin API 0.{}.0 (this plugin targets {})",
                                        kind.since_minor(),
                                        self.plugin.api
                                    ),
                                );
                            }
                            Some(_) => {}
                        }
                    }
                }
                if hooks.before.is_empty() && hooks.after.is_empty() {
                    err("hooks".into(), "subscribes to no event".into());
                }
            }
            (None, true) => err("hooks".into(), "kind hooks needs a [hooks] table".into()),
            (Some(_), false) => err(
                "hooks".into(),
                "[hooks] needs kind hooks in plugin.kinds".into(),
            ),
            (None, false) => {}
        }

        if let Some(memory) = self.limits.memory_mb
            && !(1..=4096).contains(&memory)
        {
            err(
                "limits.memory-mb".into(),
                "must be between 1 and 4096".into(),
            );
        }
        if let Some(timeout) = self.limits.timeout_ms
            && !(1..=600_000).contains(&timeout)
        {
            err(
                "limits.timeout-ms".into(),
                "must be between 1 and 600000".into(),
            );
        }

        let mut seen = BTreeSet::new();
        for (i, key) in self.config.iter().enumerate() {
            if !is_config_key(&key.key) {
                err(
                    format!("config[{i}].key"),
                    format!("{:?} is not a valid key", key.key),
                );
            }
            if !seen.insert(&key.key) {
                err(
                    format!("config[{i}].key"),
                    format!("{:?} is declared twice", key.key),
                );
            }
            if let Some(default) = &key.default
                && !key.value_type.check(default)
            {
                err(
                    format!("config[{i}].default"),
                    format!("{default:?} is not a valid {}", key.value_type.as_str()),
                );
            }
        }

        for name in self.dependencies.keys() {
            if !is_valid_id(name) {
                err(
                    "dependencies".into(),
                    format!("{name:?} is not a valid plugin id"),
                );
            } else if *name == p.id {
                err(
                    "dependencies".into(),
                    "a plugin cannot depend on itself".into(),
                );
            }
        }

        match (&self.ui, kinds.contains(&PluginKind::Ui)) {
            (Some(ui), true) => {
                let mut ids = BTreeSet::new();
                for (i, c) in ui.contributions.iter().enumerate() {
                    if !is_config_key(&c.id) {
                        err(
                            format!("ui.contributions[{i}].id"),
                            format!("{:?} is not a valid id", c.id),
                        );
                    }
                    if !ids.insert(&c.id) {
                        err(
                            format!("ui.contributions[{i}].id"),
                            format!("{:?} is declared twice", c.id),
                        );
                    }
                    if c.title.trim().is_empty() || c.title.len() > 60 {
                        err(
                            format!("ui.contributions[{i}].title"),
                            "must be 1-60 characters".into(),
                        );
                    }
                }
                if ui.contributions.is_empty() {
                    err(
                        "ui.contributions".into(),
                        "kind ui needs at least one contribution".into(),
                    );
                }
            }
            (None, true) => err(
                "ui".into(),
                "kind ui needs a [[ui.contributions]] entry".into(),
            ),
            (Some(_), false) => err("ui".into(), "[ui] needs kind ui in plugin.kinds".into()),
            (None, false) => {}
        }

        if self.permissions.len() > MAX_DECLARED_PERMISSIONS {
            err(
                "permissions".into(),
                format!("declares more than {MAX_DECLARED_PERMISSIONS} permissions"),
            );
        }
        let own = format!("{}.", p.id);
        for (name, description) in &self.permissions {
            let field = format!("permissions.{name:?}");
            if !is_valid_permission(name) {
                err(
                    field.clone(),
                    format!(
                        "{name:?} is not a valid permission: use dot-separated parts of a-z, 0-9 and '-', at most 128 characters"
                    ),
                );
            } else if !name.starts_with(&own) {
                err(
                    field.clone(),
                    format!("{name:?} must start with the plugin's own id, as in \"{own}kick\""),
                );
            }
            if description.trim().is_empty() || description.len() > 256 {
                err(field, "the description must be 1-256 characters".into());
            }
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::Invalid(errors))
        }
    }

    /// Whether the manifest declares `kind`.
    pub fn has_kind(&self, kind: PluginKind) -> bool {
        self.plugin.kinds.contains(&kind)
    }

    /// Serialises back to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# unserialisable manifest: {e}\n"))
    }
}

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_topic(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= 128 && topic.split('.').all(is_config_key)
}

/// `line L, column C: message`, on one line.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[plugin]
id = "quota-guard"
name = "Quota guard"
version = "1.0.0"
kinds = ["hooks"]
api = "0.1.0"

[capabilities]
kv = true
http = { allowed-hosts = ["discord.com", "127.0.0.1:*"] }
panel = ["servers.read"]

[hooks]
before = ["server.create"]
fail-closed = true

[[config]]
key = "max-memory-mb"
type = "integer"
default = "8192"
"#;

    fn errors_of(text: &str) -> String {
        match Manifest::parse(text.as_bytes()) {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_a_complete_hooks_manifest() {
        let m = Manifest::parse(GOOD.as_bytes()).expect("valid manifest");
        assert_eq!(m.plugin.id, "quota-guard");
        assert!(m.capabilities.kv);
        assert!(m.capabilities.panel.contains(&PanelScope::ServersRead));
        assert!(m.hooks.as_ref().is_some_and(|h| h.fail_closed));
    }

    #[test]
    fn declared_permissions_are_kept_and_survive_a_round_trip() {
        let text = format!(
            "{GOOD}\n[permissions]\n\"quota-guard.override\" = \"Create servers beyond the quota\"\n"
        );
        let m = Manifest::parse(text.as_bytes()).expect("valid manifest");
        assert_eq!(
            m.permissions
                .get("quota-guard.override")
                .map(String::as_str),
            Some("Create servers beyond the quota")
        );
        let again = Manifest::parse(m.to_toml().as_bytes()).expect("re-parses");
        assert_eq!(m, again);
    }

    #[test]
    fn a_declared_permission_must_be_well_formed_described_and_in_the_plugins_namespace() {
        let text = format!(
            "{GOOD}\n[permissions]\n\"admin.everything\" = \"Take over\"\n\"quota-guard.Bad Name\" = \"x\"\n\"quota-guard.silent\" = \" \"\n"
        );
        let message = errors_of(&text);
        assert!(
            message.contains(r#"permissions."admin.everything": "admin.everything" must start with the plugin's own id"#),
            "{message}"
        );
        assert!(
            message.contains(r#"permissions."quota-guard.Bad Name": "quota-guard.Bad Name" is not a valid permission"#),
            "{message}"
        );
        assert!(
            message.contains(
                r#"permissions."quota-guard.silent": the description must be 1-256 characters"#
            ),
            "{message}"
        );
    }

    #[test]
    fn a_manifest_may_declare_at_most_64_permissions_with_descriptions_of_at_most_256_characters() {
        let mut text = format!("{GOOD}\n[permissions]\n");
        for i in 0..=MAX_DECLARED_PERMISSIONS {
            text.push_str(&format!("\"quota-guard.p{i}\" = \"allows p{i}\"\n"));
        }
        let message = errors_of(&text);
        assert!(
            message.contains("permissions: declares more than 64 permissions"),
            "{message}"
        );

        let long = "x".repeat(257);
        let text = format!("{GOOD}\n[permissions]\n\"quota-guard.p\" = \"{long}\"\n");
        assert!(
            errors_of(&text).contains("the description must be 1-256 characters"),
            "a 257-character description is refused"
        );
        let text = text.replace(&long, &"x".repeat(256));
        assert_eq!(errors_of(&text), "ok", "256 characters are allowed");
    }

    #[test]
    fn round_trips_through_toml() {
        let m = Manifest::parse(GOOD.as_bytes()).expect("valid manifest");
        let again = Manifest::parse(m.to_toml().as_bytes()).expect("re-parses");
        assert_eq!(m, again);
    }

    #[test]
    fn names_every_invalid_field_at_once() {
        let text = GOOD
            .replace("id = \"quota-guard\"", "id = \"Quota Guard\"")
            .replace("\"server.create\"", "\"server.explode\"")
            .replace("default = \"8192\"", "default = \"lots\"");
        insta::assert_snapshot!(errors_of(&text));
    }

    #[test]
    fn an_event_kind_of_a_later_api_is_refused_naming_the_version_it_needs() {
        let text = GOOD.replace("\"server.create\"", "\"user.invite\"");
        let errors = errors_of(&text);
        assert!(
            errors.contains("\"user.invite\" needs plugin API 0.2.0 (this plugin targets 0.1.0)"),
            "{errors}"
        );
        let later = text.replace("api = \"0.1.0\"", "api = \"0.2.0\"");
        assert_eq!(errors_of(&later), "ok");
    }

    #[test]
    fn timers_need_api_0_2_and_an_after_hook_on_schedule_ticks() {
        let with_timers = GOOD.replace("kv = true", "kv = true\ntimers = true");
        let errors = errors_of(&with_timers);
        assert!(
            errors.contains("capabilities.timers: needs plugin API 0.2.0 or newer"),
            "{errors}"
        );
        assert!(
            errors.contains("add kind hooks and \"schedule.tick\" to hooks.after"),
            "{errors}"
        );
        let later = with_timers.replace("api = \"0.1.0\"", "api = \"0.2.0\"");
        let errors = errors_of(&later);
        assert!(!errors.contains("needs plugin API"), "{errors}");
        assert!(errors.contains("hooks.after"), "{errors}");
        let ticked = later.replace(
            "fail-closed = true",
            "after = [\"schedule.tick\"]\nfail-closed = true",
        );
        assert_eq!(errors_of(&ticked), "ok");
        let manifest = Manifest::parse(ticked.as_bytes()).expect("valid");
        assert!(manifest.capabilities.timers);
        assert!(crate::Grants::all_requested(&manifest).timers);
        let again = Manifest::parse(manifest.to_toml().as_bytes()).expect("re-parses");
        assert_eq!(again, manifest);
        // Without timers, the stored manifest does not mention them.
        let plain = Manifest::parse(GOOD.as_bytes()).expect("valid");
        assert!(!plain.to_toml().contains("timers"), "{}", plain.to_toml());
    }

    #[test]
    fn power_and_backup_scopes_need_api_0_2() {
        let text = GOOD.replace(
            "panel = [\"servers.read\"]",
            "panel = [\"servers.read\", \"power\", \"backups.create\"]",
        );
        let errors = errors_of(&text);
        assert!(
            errors.contains("\"power\" needs plugin API 0.2.0 (this plugin targets 0.1.0)"),
            "{errors}"
        );
        assert!(
            errors.contains("\"backups.create\" needs plugin API 0.2.0"),
            "{errors}"
        );
        let later = text.replace("api = \"0.1.0\"", "api = \"0.2.0\"");
        assert_eq!(errors_of(&later), "ok");
        let manifest = Manifest::parse(later.as_bytes()).expect("valid");
        assert!(manifest.capabilities.panel.contains(&PanelScope::Power));
        assert!(
            manifest
                .capabilities
                .panel
                .contains(&PanelScope::BackupsCreate)
        );
        for scope in PanelScope::ALL {
            assert_eq!(PanelScope::from_name(scope.as_str()), Some(scope));
        }
        assert_eq!(PanelScope::from_name("power.all"), None);
    }

    #[test]
    fn the_servers_suspend_scope_needs_api_0_2() {
        let text = GOOD.replace(
            "panel = [\"servers.read\"]",
            "panel = [\"servers.read\", \"servers.suspend\"]",
        );
        let errors = errors_of(&text);
        assert!(
            errors
                .contains("\"servers.suspend\" needs plugin API 0.2.0 (this plugin targets 0.1.0)"),
            "{errors}"
        );
        let later = text.replace("api = \"0.1.0\"", "api = \"0.2.0\"");
        assert_eq!(errors_of(&later), "ok");
        let manifest = Manifest::parse(later.as_bytes()).expect("valid");
        assert!(
            manifest
                .capabilities
                .panel
                .contains(&PanelScope::ServersSuspend)
        );
        assert_eq!(
            PanelScope::from_name("servers.suspend"),
            Some(PanelScope::ServersSuspend)
        );
    }

    #[test]
    fn rejects_unknown_keys_with_their_name() {
        let text = GOOD.replace("kv = true", "kv = true\nfilesystem = true");
        insta::assert_snapshot!(errors_of(&text));
    }

    #[test]
    fn rejects_a_version_that_is_not_semver() {
        let text = GOOD.replace("version = \"1.0.0\"", "version = \"1.0\"");
        insta::assert_snapshot!(errors_of(&text));
    }

    #[test]
    fn rejects_a_missing_required_field() {
        let text = GOOD.replace("api = \"0.1.0\"\n", "");
        insta::assert_snapshot!(errors_of(&text));
    }

    #[test]
    fn rejects_hooks_without_the_hooks_kind() {
        let text = GOOD.replace("kinds = [\"hooks\"]", "kinds = [\"ui\"]");
        insta::assert_snapshot!(errors_of(&text));
    }

    #[test]
    fn rejects_a_malformed_allowed_host() {
        let text = GOOD.replace("\"discord.com\"", "\"https://discord.com/api\"");
        insta::assert_snapshot!(errors_of(&text));
    }

    #[test]
    fn rejects_an_oversized_manifest() {
        let big = vec![b'#'; MAX_MANIFEST_BYTES + 1];
        assert_eq!(
            Manifest::parse(&big),
            Err(ManifestError::TooLarge(MAX_MANIFEST_BYTES + 1))
        );
    }

    #[test]
    fn rejects_bytes_that_are_not_utf8() {
        assert_eq!(
            Manifest::parse(&[0xff, 0xfe, 0x00]),
            Err(ManifestError::NotUtf8)
        );
    }

    #[test]
    fn checks_plugin_ids() {
        for good in ["ab", "minecraft-paper", "a1-b2"] {
            assert!(is_valid_id(good), "{good}");
        }
        for bad in ["a", "1abc", "Abc", "a--b", "ab-", "a_b", &"a".repeat(64)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
