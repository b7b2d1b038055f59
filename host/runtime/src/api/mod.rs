//! The data model of the plugin API, as the Panel, the Agent and the host
//! capabilities see it, whatever WIT version a plugin was built against.
//!
//! # Why hand-written
//!
//! These types are written here, not generated: a WIT version's bindings
//! live in its own module under [`crate::wit`] and convert into and out of
//! these types at the edge, so nothing outside `wit/` depends on a generated
//! path and releasing `ctrl-alt-play:plugin@0.2.0` changes these types only
//! where the new version adds something.
//!
//! # What they look like to the outside
//!
//! The types mirror the WIT definitions of `ctrl-alt-play:plugin@0.1.0`
//! field for field and case for case, and keep what the bindgen output of
//! that version showed to the outside, because the Panel stores and sends
//! it: serde's default representation (Rust field names; externally tagged
//! enums with their Rust case names), `Debug` in bindgen's form
//! (`Verdict::Deny("…")`, record fields by their WIT names), and for the
//! error types a `Display` equal to `Debug`. Snapshots of every type
//! (`src/api/snapshots/`, taken from the generated types before these
//! replaced them) hold this in place.
//!
//! The host-side types of the `log` and `http` imports carry a prefix
//! ([`LogLevel`], [`HttpMethod`], [`HttpRequest`], [`HttpResponse`]) that
//! their WIT names (`level`, `method`, `request`, `response`) lack, so that
//! they read well in this flat module.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A record field's name in WIT (`min-memory-mb`) from its Rust name
/// (`min_memory_mb`), as bindgen's `Debug` printed it.
fn wit_name(rust: &str) -> String {
    rust.replace('_', "-")
}

/// Records: a struct with bindgen's `Debug` (fields by their WIT names).
macro_rules! records {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty, )*
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    $( .field(&wit_name(stringify!($field)), &self.$field) )*
                    .finish()
            }
        }
    )*};
}

/// Binds a case's payload in a pattern (the type only selects the arm).
macro_rules! payload {
    ($ty:ty, $binding:ident) => {
        $binding
    };
}

/// WIT variants and enums: an enum with bindgen's `Debug`
/// (`Name::Case(payload)`). Enums add `Copy, Eq` through their attributes.
macro_rules! variants {
    ($(
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$case_meta:meta])* $case:ident $(($payload:ty))?, )*
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Clone, PartialEq, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$case_meta])* $case $(($payload))?, )*
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(
                        Self::$case $((payload!($payload, e)))? => f
                            .debug_tuple(concat!(stringify!($name), "::", stringify!($case)))
                            $( .field(payload!($payload, e)) )?
                            .finish(),
                    )*
                }
            }
        }
    )*};
}

/// Error types: `Display` shows the `Debug` text, as bindgen's did.
macro_rules! errors {
    ($($name:ident),* $(,)?) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{self:?}")
            }
        }

        impl std::error::Error for $name {}
    )*};
}

errors!(
    PluginError,
    CapabilityError,
    AuthError,
    HttpError,
    CatalogueError
);

// ---------------------------------------------------------------------------
// `types`: shared by every interface.

records! {
    /// A `KEY=value` pair, for environment variables and game variables.
    pub struct KeyValue {
        /// The key.
        pub key: String,
        /// The value.
        pub value: String,
    }

    /// A failure reported by a plugin export.
    pub struct PluginError {
        /// A short stable machine-readable identifier (`invalid-variable`).
        pub code: String,
        /// For people.
        pub message: String,
    }
}

variants! {
    /// Why a host capability call was refused or failed.
    pub enum CapabilityError {
        /// Not requested by the manifest or not granted by the admin; names
        /// what was denied.
        Denied(String),
        /// The thing asked for does not exist.
        NotFound(String),
        /// The arguments were rejected; says why.
        Invalid(String),
        /// A quota or size limit was hit.
        LimitExceeded(String),
        /// The host could not complete the call right now.
        Unavailable(String),
    }
}

// ---------------------------------------------------------------------------
// `log`.

variants! {
    /// The level of a plugin's log record.
    #[derive(Copy, Eq)]
    pub enum LogLevel {
        /// `trace`.
        Trace,
        /// `debug`.
        Debug,
        /// `info`.
        Info,
        /// `warn`.
        Warn,
        /// `error`.
        Error,
    }
}

impl LogLevel {
    /// The level's WIT name (`trace` … `error`), as admins see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

// ---------------------------------------------------------------------------
// `http`.

variants! {
    /// An HTTP method a plugin may use.
    #[derive(Copy, Eq)]
    pub enum HttpMethod {
        /// `GET`.
        Get,
        /// `HEAD`.
        Head,
        /// `POST`.
        Post,
        /// `PUT`.
        Put,
        /// `PATCH`.
        Patch,
        /// `DELETE`.
        Delete,
    }

    /// Why an outbound request failed.
    pub enum HttpError {
        /// The host is not on the allow-list (or the capability is not granted).
        Denied(String),
        /// The request was malformed.
        InvalidRequest(String),
        /// The deadline passed.
        Timeout,
        /// Connection, TLS or protocol failure.
        Transport(String),
        /// The response body exceeded the host's size limit.
        TooLarge,
    }
}

records! {
    /// An outbound request.
    pub struct HttpRequest {
        /// The method.
        pub method: HttpMethod,
        /// The absolute URL.
        pub url: String,
        /// Request headers.
        pub headers: Vec<KeyValue>,
        /// The body.
        pub body: Vec<u8>,
        /// Capped by the host's own per-call deadline.
        pub timeout_ms: Option<u32>,
    }

    /// The answer to an [`HttpRequest`].
    pub struct HttpResponse {
        /// The status code.
        pub status: u16,
        /// Response headers.
        pub headers: Vec<KeyValue>,
        /// The body.
        pub body: Vec<u8>,
    }
}

// ---------------------------------------------------------------------------
// `panel`.

records! {
    /// A server as the `panel` capability shows it to plugins.
    pub struct ServerSummary {
        /// Server id.
        pub id: String,
        /// Display name.
        pub name: String,
        /// Owning user.
        pub owner_id: String,
        /// Node it runs on.
        pub node_id: String,
        /// Game type id.
        pub game_type: String,
        /// Lifecycle state (`running`, `offline`, …).
        pub state: String,
    }
}

variants! {
    /// 0.2.0: a power action a plugin asks for (`panel.power-action`).
    #[derive(Copy, Eq)]
    pub enum PowerSignal {
        /// Start the server.
        Start,
        /// Stop it gracefully.
        Stop,
        /// Stop, then start it.
        Restart,
        /// Kill it at once.
        Kill,
    }
}

// ---------------------------------------------------------------------------
// `timers` (0.2.0).

records! {
    /// An armed timer of a plugin (`timers.list`).
    pub struct Timer {
        /// The plugin's key for it.
        pub key: String,
        /// When it fires, milliseconds since the Unix epoch.
        pub at_ms: u64,
    }
}

// ---------------------------------------------------------------------------
// `game-type`.

variants! {
    /// The type of a game variable.
    #[derive(Copy, Eq)]
    pub enum VariableType {
        /// Free text.
        String,
        /// A whole number.
        Integer,
        /// `true` or `false`.
        Boolean,
        /// One of the values listed in a `one-of` rule.
        Choice,
    }

    /// A validation rule on a variable's value.
    pub enum ValidationRule {
        /// A value must be given.
        Required,
        /// At least this many characters.
        MinLength(u32),
        /// At most this many characters.
        MaxLength(u32),
        /// Inclusive lower bound for `integer` variables.
        Min(i64),
        /// Inclusive upper bound for `integer` variables.
        Max(i64),
        /// A regular expression the whole value must match.
        Pattern(String),
        /// The allowed values.
        OneOf(Vec<String>),
    }

    /// The transport of a requested port.
    #[derive(Copy, Eq)]
    pub enum PortProtocol {
        /// TCP only.
        Tcp,
        /// UDP only.
        Udp,
        /// Both.
        TcpAndUdp,
    }

    /// An operating system.
    #[derive(Copy, Eq)]
    pub enum Os {
        /// Linux.
        Linux,
        /// Windows.
        Windows,
        /// macOS.
        Macos,
    }

    /// A CPU architecture, in Debian's naming.
    #[derive(Copy, Eq)]
    pub enum Arch {
        /// x86-64.
        Amd64,
        /// AArch64.
        Arm64,
    }

    /// The format of a config file an edit applies to.
    #[derive(Copy, Eq)]
    pub enum ConfigFormat {
        /// Java properties.
        Properties,
        /// YAML.
        Yaml,
        /// JSON.
        Json,
        /// INI.
        Ini,
        /// XML.
        Xml,
        /// Plain lines.
        Plain,
    }

    /// One step of an install plan.
    pub enum InstallStep {
        /// Download a file.
        Download(Download),
        /// Run a script.
        RunScript(Script),
        /// Write a file.
        WriteFile(WriteFile),
        /// Edit a config file.
        EditConfig(ConfigEdit),
    }

    /// A signal to stop a server with.
    #[derive(Copy, Eq)]
    pub enum Signal {
        /// SIGINT.
        Interrupt,
        /// SIGTERM.
        Terminate,
        /// SIGQUIT.
        Quit,
        /// SIGHUP.
        Hangup,
        /// SIGKILL.
        Kill,
    }

    /// How to ask a server to stop.
    pub enum StopMethod {
        /// Write this line to the server's console.
        ConsoleCommand(String),
        /// Send a signal.
        SendSignal(Signal),
    }
}

records! {
    /// A game variable a server is configured with.
    pub struct Variable {
        /// The environment variable the value is passed as.
        pub key: String,
        /// Display name.
        pub name: String,
        /// What it is for.
        pub description: String,
        /// Its type.
        pub kind: VariableType,
        /// The default, if any.
        pub default_value: Option<String>,
        /// Whether users see it.
        pub user_viewable: bool,
        /// Whether users may change it.
        pub user_editable: bool,
        /// Rules its value must follow.
        pub rules: Vec<ValidationRule>,
    }

    /// A port the game needs.
    pub struct PortRequest {
        /// `game`, `query`, `rcon`, …
        pub name: String,
        /// Its transport.
        pub protocol: PortProtocol,
        /// The allocation players connect to.
        pub primary: bool,
        /// Environment variable receiving the allocated port, if any.
        pub env: Option<String>,
    }

    /// An operating system and architecture.
    #[derive(Copy)]
    pub struct Platform {
        /// Operating system.
        pub os: Os,
        /// Architecture.
        pub arch: Arch,
    }

    /// What a game type is.
    pub struct GameInfo {
        /// Stable identifier, e.g. `minecraft-paper`.
        pub id: String,
        /// Display name.
        pub name: String,
        /// Semantic version of the game-type definition.
        pub version: String,
        /// What it is.
        pub description: String,
        /// Declared variables.
        pub variables: Vec<Variable>,
        /// Requested ports.
        pub ports: Vec<PortRequest>,
        /// Supported platforms.
        pub platforms: Vec<Platform>,
        /// Free-form feature flags.
        pub features: Vec<String>,
        /// Smallest memory limit in MiB the game can run with.
        pub min_memory_mb: u32,
        /// The images it runs in on container nodes, the default first
        /// (since 0.2.0; empty for 0.1.0 plugins, whose packages name one).
        #[serde(default)]
        pub images: Vec<Image>,
        /// Names of the startup commands a server may pick among, the
        /// default first (since 0.2.0; empty: one startup).
        #[serde(default)]
        pub startup_commands: Vec<String>,
        /// Files users may not reach through the Panel's file access, in
        /// `.gitignore` syntax (since 0.2.0).
        #[serde(default)]
        pub file_denylist: Vec<String>,
    }

    /// A container image a game can run in (since 0.2.0).
    pub struct Image {
        /// What people see, e.g. `Java 21`.
        pub name: String,
        /// The image reference.
        pub reference: String,
    }

    /// A port allocated to a server.
    pub struct AllocatedPort {
        /// The requested port's name.
        pub name: String,
        /// Bound address.
        pub ip: String,
        /// Port number.
        pub port: u16,
    }

    /// What the Panel knows about the server a plan is made for.
    pub struct ServerContext {
        /// Server id.
        pub server_id: String,
        /// Display name.
        pub name: String,
        /// Memory limit in MiB.
        pub memory_mb: u64,
        /// Disk limit in MiB.
        pub disk_mb: u64,
        /// CPU limit in percent of one core.
        pub cpu_percent: u32,
        /// Every declared variable, defaults filled in, validated.
        pub variables: Vec<KeyValue>,
        /// Allocated ports.
        pub ports: Vec<AllocatedPort>,
        /// Where it runs.
        pub platform: Platform,
        /// The game type it was created from (a [`GameInfo::id`]; since
        /// 0.2.0, which lets a plugin offer several).
        #[serde(default)]
        pub game_type: String,
        /// The image it runs in, on container nodes (since 0.2.0).
        #[serde(default)]
        pub image: Option<String>,
        /// The startup command it runs, one of its game type's
        /// [`GameInfo::startup_commands`]; `None`: the first (since 0.2.0).
        #[serde(default)]
        pub startup_command: Option<String>,
        /// The node it is on (since 0.2.0).
        #[serde(default)]
        pub node: NodeContext,
    }

    /// The node a server is on (since 0.2.0).
    #[derive(Default)]
    pub struct NodeContext {
        /// Its name in the Panel.
        pub name: String,
        /// The address players reach it at.
        pub address: String,
        /// The address a game server reaches the node's host at (the
        /// container network's gateway, or `127.0.0.1` on native nodes);
        /// empty until the node's Agent has said.
        pub host_address: String,
    }

    /// A variable whose value failed validation.
    pub struct FieldError {
        /// The variable.
        pub key: String,
        /// Why.
        pub message: String,
    }

    /// A file to download.
    pub struct Download {
        /// Where from.
        pub url: String,
        /// Lowercase hex sha256 of the file.
        pub sha256: String,
        /// Path relative to the server directory.
        pub destination: String,
        /// Whether to mark it executable.
        pub executable: bool,
    }

    /// A script to run.
    pub struct Script {
        /// `bash`, `sh`, `python3`, …
        pub interpreter: String,
        /// The script.
        pub contents: String,
        /// Its environment.
        pub env: Vec<KeyValue>,
        /// How long it may run.
        pub timeout_secs: u32,
    }

    /// A file to write.
    pub struct WriteFile {
        /// Path relative to the server directory.
        pub path: String,
        /// Contents.
        pub contents: String,
        /// Unix permission bits.
        pub mode: u32,
    }

    /// Edits to a config file.
    pub struct ConfigEdit {
        /// Path relative to the server directory.
        pub path: String,
        /// Its format.
        pub format: ConfigFormat,
        /// Keys to set.
        pub set: Vec<KeyValue>,
        /// Keys set only where their current value is as expected, after
        /// `set`, in order (since 0.2.0).
        #[serde(default)]
        pub set_if: Vec<ConditionalSet>,
    }

    /// A key set only where its current value equals `if_value`, or
    /// matches it when it is `regex:<pattern>` (then `value` replaces each
    /// match and may name its groups, `$1`); never where the key has no
    /// value (since 0.2.0).
    pub struct ConditionalSet {
        /// The key, as in [`ConfigEdit::set`].
        pub key: String,
        /// The condition.
        pub if_value: String,
        /// What is written.
        pub value: String,
    }

    /// How to install a server.
    pub struct InstallPlan {
        /// Steps, in order.
        pub steps: Vec<InstallStep>,
        /// The image the steps run in on container nodes (since 0.2.0).
        #[serde(default)]
        pub image: Option<String>,
    }

    /// How to start a server.
    pub struct StartupPlan {
        /// Program to execute.
        pub program: String,
        /// Its arguments.
        pub args: Vec<String>,
        /// Its environment.
        pub env: Vec<KeyValue>,
        /// Relative to the server directory.
        pub working_dir: String,
        /// Config edits applied before every start.
        pub config_edits: Vec<ConfigEdit>,
        /// Passed unchanged to the node's console calls for this run (since
        /// 0.2.0; empty for 0.1.0 plugins).
        #[serde(default)]
        pub console_context: String,
    }

    /// How to stop a server: `method`, then SIGKILL after `grace_secs`.
    pub struct StopPlan {
        /// What to do first.
        pub method: StopMethod,
        /// Seconds before SIGKILL.
        pub grace_secs: u32,
    }

    /// Console commands around a backup of a running server (API 0.2.0).
    pub struct BackupCommands {
        /// Written before the archive is made, in order.
        pub before: Vec<String>,
        /// Milliseconds to wait after `before`.
        pub settle_ms: u32,
        /// Written after it, whether or not it worked.
        pub after: Vec<String>,
    }
}

// ---------------------------------------------------------------------------
// `game-console`.

variants! {
    /// What a console line means.
    pub enum LineKind {
        /// Nothing in particular.
        Plain,
        /// The server finished starting.
        Ready,
        /// A player joined.
        PlayerJoined(String),
        /// A player left.
        PlayerLeft(String),
        /// A warning.
        Warning(String),
        /// The server crashed; the cause as far as the line tells.
        Crash(String),
    }
}

records! {
    /// Who is online.
    pub struct PlayerStatus {
        /// Players online.
        pub online: u32,
        /// Player slots.
        pub max: u32,
        /// Names.
        pub players: Vec<String>,
    }
}

// ---------------------------------------------------------------------------
// `game-catalogue` (since 0.2.0).

records! {
    /// A game type as an imported document describes it.
    pub struct CatalogueEntry {
        /// The game type.
        pub game: GameInfo,
        /// The document's format, e.g. `PTDL_v2`.
        pub format: String,
        /// Where newer versions of the document are published.
        pub update_url: Option<String>,
        /// What the document asks for that the game type does not honour.
        pub unsupported: Vec<String>,
    }

    /// A newer document for an entry and what it would change.
    pub struct CatalogueUpdate {
        /// The newer document.
        pub document: Vec<u8>,
        /// One line per change.
        pub changes: Vec<String>,
    }
}

variants! {
    /// Why a catalogue call failed.
    pub enum CatalogueError {
        /// The document is not one the plugin takes; each problem names its
        /// field.
        Invalid(Vec<FieldError>),
        /// An entry with this id is kept already.
        Exists(String),
        /// No entry with this id.
        NotFound(String),
        /// Anything else.
        Failed(PluginError),
    }
}

// ---------------------------------------------------------------------------
// `auth-provider`.

variants! {
    /// How a provider authenticates.
    #[derive(Copy, Eq)]
    pub enum ProviderKind {
        /// Username and password.
        Password,
        /// Browser redirect (OAuth2 / OpenID Connect).
        Redirect,
        /// A bearer token issued elsewhere.
        Token,
    }

    /// What a user presents.
    pub enum Credentials {
        /// Username and password.
        Password(PasswordCredentials),
        /// A bearer token.
        Token(String),
    }

    /// Why authentication failed.
    pub enum AuthError {
        /// Wrong credentials.
        InvalidCredentials,
        /// Locked out; retry after this many seconds, when known.
        Locked(Option<u64>),
        /// A second factor is required.
        NeedsSecondFactor,
        /// The provider's backend could not be reached.
        ProviderUnavailable(String),
        /// The provider does not support the operation.
        Unsupported,
        /// The new secret breaks the provider's policy; one message per rule.
        PolicyViolation(Vec<String>),
        /// The request was malformed.
        InvalidRequest(String),
    }
}

records! {
    /// A provider's description.
    pub struct ProviderInfo {
        /// Provider id.
        pub id: String,
        /// Display name.
        pub name: String,
        /// How it authenticates.
        pub kind: ProviderKind,
        /// What it is.
        pub description: String,
    }

    /// A username and password.
    pub struct PasswordCredentials {
        /// The username.
        pub username: String,
        /// The password.
        pub password: String,
        /// A TOTP or recovery code, when asked for.
        pub second_factor: Option<String>,
    }

    /// Who the user is, as verified by the provider.
    pub struct Identity {
        /// Stable identifier within the provider.
        pub subject: String,
        /// Username.
        pub username: String,
        /// Email, if known.
        pub email: Option<String>,
        /// Display name, if known.
        pub display_name: Option<String>,
        /// Groups.
        pub groups: Vec<String>,
        /// Further claims.
        pub claims: Vec<KeyValue>,
        /// Whether the provider lets an account be created for this
        /// identity (0.2.0; always `false` from 0.1.0 providers).
        pub may_create_account: bool,
    }

    /// Where to send the browser for a redirect login.
    pub struct LoginRedirect {
        /// The provider's authorize URL.
        pub authorize_url: String,
        /// Opaque state to hand back.
        pub state: String,
    }
}

// ---------------------------------------------------------------------------
// `hooks`.

variants! {
    /// Every event the Panel emits.
    #[derive(Copy, Eq)]
    pub enum EventKind {
        /// `user.create`.
        UserCreate,
        /// `user.update`.
        UserUpdate,
        /// `user.delete`.
        UserDelete,
        /// `user.login`.
        UserLogin,
        /// `user.logout`.
        UserLogout,
        /// `server.create`.
        ServerCreate,
        /// `server.update`.
        ServerUpdate,
        /// `server.delete`.
        ServerDelete,
        /// `server.install`.
        ServerInstall,
        /// `server.start`.
        ServerStart,
        /// `server.stop`.
        ServerStop,
        /// `server.restart`.
        ServerRestart,
        /// `server.kill`.
        ServerKill,
        /// `server.state-changed`.
        ServerStateChanged,
        /// `node.create`.
        NodeCreate,
        /// `node.delete`.
        NodeDelete,
        /// `node.online`.
        NodeOnline,
        /// `node.offline`.
        NodeOffline,
        /// `plugin.install`.
        PluginInstall,
        /// `plugin.activate`.
        PluginActivate,
        /// `plugin.deactivate`.
        PluginDeactivate,
        /// `plugin.uninstall`.
        PluginUninstall,
        /// `console.command`.
        ConsoleCommand,
        /// `console.ready`.
        ConsoleReady,
        /// `console.player-joined`.
        ConsolePlayerJoined,
        /// `console.player-left`.
        ConsolePlayerLeft,
        /// `console.crash`.
        ConsoleCrash,
        /// `schedule.tick`.
        ScheduleTick,
        /// `user.invite` (API 0.2.0): a one-time link is issued for a user
        /// to choose a first password.
        UserInvite,
        /// `file.write` (API 0.2.0): a server's files change.
        FileWrite,
        /// `backup.create` (API 0.2.0): a backup is asked for.
        BackupCreate,
        /// `backup.complete` (API 0.2.0): a backup ended, done or failed.
        BackupComplete,
        /// `backup.restore` (API 0.2.0): a restore is asked for.
        BackupRestore,
        /// `backup.delete` (API 0.2.0): a backup is to be deleted.
        BackupDelete,
        /// `database.create` (API 0.2.0): a database is to be created for
        /// a server.
        DatabaseCreate,
        /// `database.delete` (API 0.2.0): a server's database is to be
        /// deleted.
        DatabaseDelete,
        /// `server.suspend` (API 0.2.0): a server is to be suspended.
        ServerSuspend,
        /// `server.unsuspend` (API 0.2.0): a server's suspension is to be
        /// lifted.
        ServerUnsuspend,
        /// `server.transfer` (API 0.2.0): a server is to be moved to
        /// another node (before), or its move ended (after).
        ServerTransfer,
    }

    /// What an event is about.
    pub enum Payload {
        /// A user.
        User(UserInfo),
        /// A server.
        Server(ServerInfo),
        /// A node.
        Node(NodeInfo),
        /// A plugin.
        Plugin(PluginRef),
        /// A console line.
        Console(ConsoleInfo),
        /// A schedule.
        Schedule(ScheduleInfo),
        /// A change to a server's files (API 0.2.0).
        File(FileInfo),
        /// A backup (API 0.2.0).
        Backup(BackupInfo),
        /// A server's database (API 0.2.0).
        Database(DatabaseInfo),
        /// A server's suspension (API 0.2.0).
        Suspension(SuspensionInfo),
        /// A server's move to another node (API 0.2.0).
        Transfer(TransferInfo),
    }

    /// A before-hook's answer.
    pub enum Verdict {
        /// Go ahead.
        Allow,
        /// Refuse; the reason is shown to the client.
        Deny(String),
        /// Allow with a JSON merge patch applied to the payload.
        Modify(String),
    }
}

records! {
    /// A user.
    pub struct UserInfo {
        /// User id.
        pub id: String,
        /// Username.
        pub username: String,
        /// Email, if any.
        pub email: Option<String>,
        /// Whether an admin.
        pub admin: bool,
    }

    /// A server.
    pub struct ServerInfo {
        /// Server id.
        pub id: String,
        /// Display name.
        pub name: String,
        /// Owning user.
        pub owner_id: String,
        /// Node.
        pub node_id: String,
        /// Game type id.
        pub game_type: String,
        /// Memory limit in MiB.
        pub memory_mb: u64,
        /// Disk limit in MiB.
        pub disk_mb: u64,
        /// CPU limit in percent of one core.
        pub cpu_percent: u32,
        /// Variables.
        pub variables: Vec<KeyValue>,
        /// Lifecycle state.
        pub state: String,
    }

    /// A node.
    pub struct NodeInfo {
        /// Node id.
        pub id: String,
        /// Display name.
        pub name: String,
        /// Address.
        pub address: String,
    }

    /// A plugin.
    pub struct PluginRef {
        /// Plugin id.
        pub id: String,
        /// Version.
        pub version: String,
    }

    /// A console line or command.
    pub struct ConsoleInfo {
        /// Server id.
        pub server_id: String,
        /// The line or command.
        pub line: String,
        /// A player name for join/leave events, a cause for crashes.
        pub detail: Option<String>,
    }

    /// A schedule.
    pub struct ScheduleInfo {
        /// Schedule name.
        pub name: String,
        /// The server it belongs to, if any.
        pub server_id: Option<String>,
    }

    /// A change to a server's files (API 0.2.0).
    pub struct FileInfo {
        /// Server id.
        pub server_id: String,
        /// `upload`, `create-folder`, `rename`, `copy`, `delete`, `chmod`,
        /// `pull`, `compress` or `decompress`.
        pub action: String,
        /// The paths it touches; for a rename or copy the source, then the
        /// target.
        pub paths: Vec<String>,
        /// `api` or `sftp`.
        pub via: String,
    }

    /// A backup of a server's files (API 0.2.0).
    pub struct BackupInfo {
        /// Server id.
        pub server_id: String,
        /// Backup id.
        pub id: String,
        /// Its name.
        pub name: String,
        /// `pending`, `done` or `failed`.
        pub state: String,
        /// Its size in bytes, once done.
        pub size_bytes: Option<u64>,
        /// The archive's SHA-256 (hex), once done.
        pub sha256: Option<String>,
        /// Why it failed.
        pub reason: Option<String>,
        /// Whether it is locked against deletion.
        pub locked: bool,
    }

    /// A database of a server, on a database host (API 0.2.0). Its
    /// password is never part of it.
    pub struct DatabaseInfo {
        /// Server id.
        pub server_id: String,
        /// Database id.
        pub id: String,
        /// Its name on the host.
        pub name: String,
        /// The host's id.
        pub host_id: String,
        /// `mysql` or `postgres`.
        pub host_kind: String,
        /// Its user's name on the host.
        pub username: String,
        /// Where its user may connect from (a MySQL host pattern).
        pub remote: String,
    }

    /// A server's suspension (API 0.2.0).
    pub struct SuspensionInfo {
        /// The server.
        pub server: ServerInfo,
        /// Why it is suspended (for `server.unsuspend`: why it was).
        pub reason: String,
    }

    /// A server's move to another node (API 0.2.0).
    pub struct TransferInfo {
        /// The server (its node the one it leaves).
        pub server: ServerInfo,
        /// The transfer's id.
        pub id: String,
        /// The node it leaves.
        pub from_node: String,
        /// The node it goes to.
        pub to_node: String,
        /// `pending` (before-hooks), `done` or `failed` (after-hooks).
        pub state: String,
        /// Why it failed.
        pub reason: Option<String>,
    }

    /// Who caused an event.
    pub struct Actor {
        /// The user, if any.
        pub user_id: Option<String>,
        /// The client address, if any.
        pub ip: Option<String>,
        /// The request id, if any.
        pub request_id: Option<String>,
    }

    /// A Panel event.
    pub struct Event {
        /// Event id.
        pub id: String,
        /// What happened.
        pub kind: EventKind,
        /// Milliseconds since the Unix epoch.
        pub occurred_at_ms: u64,
        /// Who caused it.
        pub actor: Actor,
        /// What it is about.
        pub payload: Payload,
    }
}

// ---------------------------------------------------------------------------
// `ui`.

variants! {
    /// The colour of a UI element.
    #[derive(Copy, Eq)]
    pub enum Tone {
        /// Neutral.
        Neutral,
        /// Informational.
        Info,
        /// Success.
        Success,
        /// Warning.
        Warning,
        /// Danger.
        Danger,
    }

    /// The kind of a form field.
    #[derive(Copy, Eq)]
    pub enum FieldKind {
        /// Text.
        Text,
        /// A number.
        Number,
        /// On/off.
        Toggle,
        /// One of `options`.
        Select,
        /// Hidden text.
        Secret,
    }

    /// The kind of a chart.
    #[derive(Copy, Eq)]
    pub enum ChartKind {
        /// Lines.
        Line,
        /// Bars.
        Bar,
    }

    /// One element of a UI tree.
    pub enum Element {
        /// Vertical stack of children, with an optional title.
        Section(Option<String>),
        /// Horizontal row of children.
        Row,
        /// A heading.
        Heading(String),
        /// Text.
        Text(String),
        /// A badge.
        Badge((String, Tone)),
        /// A labelled value.
        Stat(KeyValue),
        /// An alert.
        Alert((String, Tone)),
        /// A button.
        Button(Button),
        /// A form.
        Form(Form),
        /// A table.
        Table(Table),
        /// A chart.
        Chart(Chart),
        /// A divider.
        Divider,
    }

    /// What handling an action asks the Panel to do.
    pub enum ActionResult {
        /// Re-render the contribution.
        Refresh,
        /// Show a short message.
        Notify((String, Tone)),
    }
}

records! {
    /// A button.
    pub struct Button {
        /// Label.
        pub label: String,
        /// Passed back to `handle-action`.
        pub action: String,
        /// Colour.
        pub tone: Tone,
        /// A confirmation question, if any.
        pub confirm: Option<String>,
    }

    /// A form field.
    pub struct FormField {
        /// Field name.
        pub name: String,
        /// Label.
        pub label: String,
        /// Kind.
        pub kind: FieldKind,
        /// Current value.
        pub value: Option<String>,
        /// Choices for `select`.
        pub options: Vec<String>,
        /// Whether required.
        pub required: bool,
    }

    /// A form.
    pub struct Form {
        /// Fields.
        pub fields: Vec<FormField>,
        /// Submit button.
        pub submit: Button,
    }

    /// A table row.
    pub struct TableRow {
        /// Cells.
        pub cells: Vec<String>,
        /// Buttons at the end of the row.
        pub actions: Vec<Button>,
    }

    /// A table.
    pub struct Table {
        /// Column headings.
        pub columns: Vec<String>,
        /// Rows.
        pub rows: Vec<TableRow>,
    }

    /// A chart series.
    pub struct Series {
        /// Name.
        pub name: String,
        /// `(x, y)` points.
        pub points: Vec<(f64, f64)>,
    }

    /// A chart.
    pub struct Chart {
        /// Kind.
        pub kind: ChartKind,
        /// Series.
        pub series: Vec<Series>,
    }

    /// A node of a UI tree.
    pub struct Node {
        /// The element.
        pub element: Element,
        /// Indices of its children in [`UiTree::nodes`].
        pub children: Vec<u32>,
    }

    /// A UI tree.
    pub struct UiTree {
        /// Index of the root.
        pub root: u32,
        /// The nodes.
        pub nodes: Vec<Node>,
    }

    /// Where a tree will be shown and for whom.
    pub struct RenderContext {
        /// The contribution id from the manifest.
        pub contribution: String,
        /// The server, if any.
        pub server_id: Option<String>,
        /// The viewing user.
        pub user_id: String,
        /// The `resource.action` permissions the viewing user has. For a
        /// 0.1.x plugin's server widget, their permissions on the server
        /// (and the plugin's own ones they hold); otherwise everything
        /// their roles give.
        pub permissions: Vec<String>,
        /// For a server widget of a 0.2.x plugin, the viewer's permissions
        /// on the server alone; empty otherwise (0.1.x has no such field).
        pub server_permissions: Vec<String>,
    }

    /// A clicked button or submitted form.
    pub struct Action {
        /// The button's or form's `action`.
        pub name: String,
        /// Form fields, or the row's cells.
        pub values: Vec<KeyValue>,
    }
}

#[cfg(test)]
mod tests;

impl AllocatedPort {
    /// The name the Panel gives a server's `n`-th extra allocation (from
    /// 1): `extra-1`, `extra-2`, … The primary is named by the game type's
    /// first port request (`game` when it declared none).
    pub fn extra_name(n: usize) -> String {
        format!("{EXTRA_PORT_PREFIX}{n}")
    }

    /// Whether this is one of a server's extra allocations (API 0.2.0),
    /// which 0.1.x game types are not shown.
    pub fn is_extra(&self) -> bool {
        self.name
            .strip_prefix(EXTRA_PORT_PREFIX)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// What the names of a server's extra allocations start with
/// ([`AllocatedPort::extra_name`]).
pub const EXTRA_PORT_PREFIX: &str = "extra-";
