//! Minecraft: Java Edition on [Paper](https://papermc.io), as a game type.
//!
//! Modelled on Pterodactyl's Paper egg, with the difference that every
//! download is verified:
//!
//! - **Install** asks PaperMC's downloads service (Fill v3, the config key
//!   `downloads-api`, by default `https://fill.papermc.io`) for the build:
//!   `GET {api}/v3/projects/paper/versions/{MINECRAFT_VERSION}/builds/{BUILD_NUMBER}`.
//!   Its `server:default` download gives the jar's URL and SHA-256; the
//!   Agent downloads the jar to `SERVER_JARFILE` and refuses it unless it
//!   matches. Nobody pastes a checksum by hand. `JAR_SHA256` stays as an
//!   optional pin: when set, the checksum PaperMC lists must equal it, so
//!   an admin who pinned a build notices if what is served changes.
//!   Install also writes `eula.txt` (only when `EULA` is `true`) and sets
//!   `server-ip`, `server-port`, `query.port`, `enable-query` and `motd` in
//!   `server.properties`.
//! - **Decisions.** The jar's URL is taken from the answer, as PaperMC asks
//!   (its URL format may change), but only when it is `https` on a
//!   `papermc.io` host or on the configured service's own origin (a
//!   mirror, or a local one in tests): a compromised or wrong answer cannot
//!   send the Agent elsewhere. The download is verified by the Agent in
//!   every case, so the service is trusted for which bytes are Paper, as it
//!   is for every other PaperMC user. An unreachable service, an unknown
//!   version or build, or an answer without a SHA-256 refuses the install
//!   with an error naming what failed; nothing is downloaded unverified.
//!   Requests carry the `User-Agent` with a contact that PaperMC requires.
//! - **Start** runs `java -Xms128M -Xmx{memory}M -Dterminal.jline=false
//!   -Dterminal.ansi=true -jar {SERVER_JARFILE} nogui`, re-applying the
//!   port settings first in case the allocation changed.
//! - **Stop** sends `stop` and allows 30 s to save the worlds.
//! - **Console**: `Done (…)!` is ready; `<name> joined/left the game` are
//!   player events (names are checked, so chat cannot fake them); other
//!   `WARN` and `ERROR` records are warnings; `Encountered an unexpected exception`, crash-report
//!   lines and exceptions outside `INFO`/`WARN` records are crashes. `list`
//!   reports the players.

use cap_plugin_sdk::game::{
    AllocatedPort, Arch, ConfigEdit, ConfigFormat, Download, FieldError, GameInfo, GameType,
    InstallPlan, InstallStep, LineKind, Os, Platform, PlayerStatus, PortProtocol, PortRequest,
    ServerContext, StartupPlan, StopMethod, StopPlan, ValidationRule, Variable, VariableType,
    WriteFile,
};
use cap_plugin_sdk::types::{KeyValue, PluginError, lookup};
use cap_plugin_sdk::{config, http};

/// The plugin. Stateless: everything comes from the server context.
#[derive(Debug, Default)]
pub struct Paper;

cap_plugin_sdk::export_plugin!(Paper: game_type);

const MINECRAFT_VERSION: &str = "MINECRAFT_VERSION";
const BUILD_NUMBER: &str = "BUILD_NUMBER";
const JAR_SHA256: &str = "JAR_SHA256";
const SERVER_JARFILE: &str = "SERVER_JARFILE";
const EULA: &str = "EULA";

/// The config key naming the downloads service.
const DOWNLOADS_API: &str = "downloads-api";
const DEFAULT_DOWNLOADS_API: &str = "https://fill.papermc.io";
/// PaperMC asks every client to name itself with a contact.
const USER_AGENT: &str =
    "ctrl-alt-play-minecraft-paper/1.1.0 (https://example.invalid/ctrl-alt-play)";

const DEFAULT_VERSION: &str = "1.21.4";
const DEFAULT_BUILD: &str = "232";
const DEFAULT_JARFILE: &str = "server.jar";

/// The smallest heap the start command asks for, in MiB.
const INITIAL_HEAP_MB: u64 = 128;

impl GameType for Paper {
    fn describe(&self) -> GameInfo {
        describe()
    }

    fn validate(&self, variables: &[KeyValue]) -> Result<(), Vec<FieldError>> {
        Settings::from_variables(variables).map(|_| ())
    }

    fn install_plan(&self, server: &ServerContext) -> Result<InstallPlan, PluginError> {
        // Refuses bad variables, an unaccepted EULA among them, before
        // anything is asked of PaperMC.
        let settings = Settings::from_server(server)?;
        let api = config::get_or(DOWNLOADS_API, DEFAULT_DOWNLOADS_API.to_owned())
            .map_err(|e| PluginError::new("config-unavailable", e.to_string()))?;
        let jar = fetch_jar(&api, &settings)?;
        install_plan(server, &settings, &jar)
    }

    fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {
        startup_plan(server)
    }

    fn stop_plan(&self, _server: &ServerContext) -> StopPlan {
        StopPlan {
            method: StopMethod::ConsoleCommand("stop".into()),
            grace_secs: 30,
        }
    }

    fn classify_line(&self, line: &str) -> LineKind {
        classify_line(line)
    }

    fn status_command(&self) -> Option<String> {
        Some("list".into())
    }

    fn parse_status(&self, lines: &[String]) -> Option<PlayerStatus> {
        parse_status(lines)
    }
}

fn describe() -> GameInfo {
    GameInfo {
        id: "minecraft-paper".into(),
        name: "Minecraft: Paper".into(),
        version: "1.1.0".into(),
        description: "High-performance Minecraft: Java Edition server that fixes gameplay and \
                      mechanics inconsistencies of Spigot."
            .into(),
        variables: vec![
            Variable::new(MINECRAFT_VERSION, "Minecraft version", VariableType::String)
                .with_description("The Minecraft version to install, e.g. 1.21.4.")
                .with_default(DEFAULT_VERSION)
                .with_rule(ValidationRule::Required)
                .with_rule(ValidationRule::MaxLength(20))
                .with_rule(ValidationRule::Pattern(r"^\d+\.\d+(\.\d+)?$".into())),
            Variable::new(BUILD_NUMBER, "Paper build", VariableType::Integer)
                .with_description("The Paper build of that version, e.g. 232.")
                .with_default(DEFAULT_BUILD)
                .with_rule(ValidationRule::Required)
                .with_rule(ValidationRule::Min(1)),
            Variable::new(
                JAR_SHA256,
                "Pinned jar checksum (SHA-256, optional)",
                VariableType::String,
            )
            .with_description(
                "Leave empty: the checksum comes from the PaperMC downloads service and \
                     the download is verified against it. Set it to pin a build: the install \
                     then also fails when PaperMC lists another checksum.",
            )
            .with_default("")
            .with_rule(ValidationRule::Pattern("^([0-9a-fA-F]{64})?$".into())),
            Variable::new(SERVER_JARFILE, "Server jar file", VariableType::String)
                .with_description("The file name the server jar is saved as and started from.")
                .with_default(DEFAULT_JARFILE)
                .with_rule(ValidationRule::Required)
                .with_rule(ValidationRule::MaxLength(128))
                .with_rule(ValidationRule::Pattern(r"^[\w.-]+\.jar$".into())),
            Variable::new(EULA, "Accept the Minecraft EULA", VariableType::Boolean)
                .with_description(
                    "You must accept the Minecraft End User License Agreement \
                     (https://aka.ms/MinecraftEULA) to run the server.",
                )
                .with_default("false")
                .with_rule(ValidationRule::Required),
        ],
        ports: vec![
            PortRequest {
                name: "game".into(),
                protocol: PortProtocol::Tcp,
                primary: true,
                env: Some("SERVER_PORT".into()),
            },
            PortRequest {
                name: "query".into(),
                protocol: PortProtocol::Udp,
                primary: false,
                env: Some("QUERY_PORT".into()),
            },
        ],
        platforms: vec![
            Platform {
                os: Os::Linux,
                arch: Arch::Amd64,
            },
            Platform {
                os: Os::Linux,
                arch: Arch::Arm64,
            },
        ],
        features: vec!["eula".into(), "java-21".into()],
        min_memory_mb: 1024,
    }
}

/// The validated variables.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    version: String,
    build: u32,
    /// The admin's pin, lower case; `None` when not pinned.
    pin: Option<String>,
    jarfile: String,
    eula: bool,
}

impl Settings {
    /// Reads and checks the variables, with one error per bad variable.
    /// Missing variables take their defaults (the checksum has none).
    fn from_variables(variables: &[KeyValue]) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut check = |key: &str, default: &str, rule: fn(&str) -> Result<(), String>| {
            let value = lookup(variables, key).unwrap_or(default).trim();
            if let Err(message) = rule(value) {
                errors.push(FieldError::new(key, message));
            }
            value.to_owned()
        };
        let version = check(MINECRAFT_VERSION, DEFAULT_VERSION, check_version);
        let build = check(BUILD_NUMBER, DEFAULT_BUILD, check_build);
        let sha256 = check(JAR_SHA256, "", check_pin);
        let jarfile = check(SERVER_JARFILE, DEFAULT_JARFILE, check_jarfile);
        let eula = check(EULA, "false", check_eula);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            version,
            // `check_build` accepted it, so it parses.
            build: build.parse().unwrap_or_default(),
            pin: (!sha256.is_empty()).then(|| sha256.to_ascii_lowercase()),
            jarfile,
            eula: eula.eq_ignore_ascii_case("true"),
        })
    }

    fn from_server(server: &ServerContext) -> Result<Self, PluginError> {
        Self::from_variables(&server.variables).map_err(|errors| {
            let details: Vec<String> = errors
                .iter()
                .map(|error| format!("{}: {}", error.key, error.message))
                .collect();
            PluginError::new("invalid-variable", details.join("; "))
        })
    }

    /// The build's path on the downloads service.
    fn build_path(&self) -> String {
        format!(
            "/v3/projects/paper/versions/{v}/builds/{b}",
            v = self.version,
            b = self.build
        )
    }
}

/// The jar to download, as the downloads service lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Jar {
    url: String,
    sha256: String,
}

/// Asks the downloads service at `api` for the build `settings` name.
fn fetch_jar(api: &str, settings: &Settings) -> Result<Jar, PluginError> {
    let api = api.trim_end_matches('/');
    let url = format!("{api}{}", settings.build_path());
    let unavailable = |detail: String| {
        PluginError::new(
            "checksum-unavailable",
            format!(
                "cannot ask the PaperMC downloads service ({url}) for the jar's checksum: {detail}"
            ),
        )
    };
    let response = http::get(&url)
        .header("User-Agent", USER_AGENT)
        .header("Accept", "application/json")
        .timeout_ms(10_000)
        .send()
        .map_err(|e| unavailable(http::describe(&e)))?;
    match response.status {
        200 => {}
        404 => {
            return Err(PluginError::new(
                "unknown-build",
                format!(
                    "PaperMC lists no build {} of Minecraft {} ({url} answered 404)",
                    settings.build, settings.version
                ),
            ));
        }
        status => return Err(unavailable(format!("it answered HTTP {status}"))),
    }
    let body: serde_json::Value = response
        .json()
        .map_err(|e| unavailable(format!("the answer is not JSON: {e}")))?;
    jar_of(api, &body, settings).map_err(unavailable)
}

/// The `server:default` download of a Fill v3 build, checked: its URL
/// must be `https` on a `papermc.io` host or on `api`'s own origin, its
/// SHA-256 64 hex digits, equal to the admin's pin if there is one.
fn jar_of(api: &str, build: &serde_json::Value, settings: &Settings) -> Result<Jar, String> {
    let download = build
        .pointer("/downloads/server:default")
        .ok_or("the build lists no `server:default` download")?;
    let sha256 = download
        .pointer("/checksums/sha256")
        .and_then(serde_json::Value::as_str)
        .ok_or("the download lists no SHA-256")?
        .to_ascii_lowercase();
    if check_sha256(&sha256).is_err() {
        return Err(format!("`{sha256}` is not a SHA-256"));
    }
    let url = download
        .get("url")
        .and_then(serde_json::Value::as_str)
        .ok_or("the download has no URL")?;
    if !trusted_download(api, url) {
        return Err(format!(
            "the download URL {url} is neither https on papermc.io nor on {api}"
        ));
    }
    if let Some(pin) = &settings.pin
        && *pin != sha256
    {
        return Err(format!(
            "PaperMC lists SHA-256 {sha256} for build {} of {}, not the pinned {pin}",
            settings.build, settings.version
        ));
    }
    Ok(Jar {
        url: url.to_owned(),
        sha256,
    })
}

/// `https://…papermc.io/…`, or a URL on the service's own origin.
fn trusted_download(api: &str, url: &str) -> bool {
    let origin = |u: &str| -> Option<(String, String)> {
        let (scheme, rest) = u.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        Some((scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
    };
    let Some((scheme, authority)) = origin(url) else {
        return false;
    };
    let host = authority.split(':').next().unwrap_or_default();
    let papermc = scheme == "https" && (host == "papermc.io" || host.ends_with(".papermc.io"));
    papermc || origin(api) == Some((scheme, authority))
}

/// `1.21`, `1.21.4`: dot-separated numbers, two or three of them.
fn check_version(value: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split('.').collect();
    let numeric = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if (2..=3).contains(&parts.len()) && parts.iter().all(numeric) && value.len() <= 20 {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a Minecraft version such as {DEFAULT_VERSION}"
        ))
    }
}

fn check_build(value: &str) -> Result<(), String> {
    match value.parse::<u32>() {
        Ok(build) if build >= 1 => Ok(()),
        _ => Err(format!(
            "`{value}` is not a Paper build number such as {DEFAULT_BUILD}"
        )),
    }
}

/// Empty (not pinned) or 64 hexadecimal digits.
fn check_pin(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Ok(())
    } else {
        check_sha256(value)
    }
}

fn check_sha256(value: &str) -> Result<(), String> {
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Err("must be 64 hexadecimal characters".into())
    } else {
        Ok(())
    }
}

/// `^[\w.-]+\.jar$`, with a length cap.
fn check_jarfile(value: &str) -> Result<(), String> {
    let stem_ok = value.strip_suffix(".jar").is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    });
    if stem_ok && value.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "`{value}` must be a file name ending in .jar, made of letters, digits, `_`, `.` and `-`"
        ))
    }
}

fn check_eula(value: &str) -> Result<(), String> {
    if value.eq_ignore_ascii_case("true") {
        Ok(())
    } else {
        Err("the Minecraft EULA (https://aka.ms/MinecraftEULA) must be accepted".into())
    }
}

fn port<'a>(server: &'a ServerContext, name: &str) -> Result<&'a AllocatedPort, PluginError> {
    server
        .port(name)
        .ok_or_else(|| PluginError::new("missing-port", format!("no `{name}` port is allocated")))
}

/// The `server.properties` settings that follow the allocation and the
/// server's name. Applied on install and before every start.
fn properties(server: &ServerContext) -> Result<ConfigEdit, PluginError> {
    let game = port(server, "game")?;
    let query = port(server, "query")?;
    Ok(ConfigEdit {
        path: "server.properties".into(),
        format: ConfigFormat::Properties,
        set: vec![
            KeyValue::new("server-ip", game.ip.clone()),
            KeyValue::new("server-port", game.port.to_string()),
            KeyValue::new("enable-query", "true"),
            KeyValue::new("query.port", query.port.to_string()),
            KeyValue::new("motd", motd(&server.name)),
        ],
    })
}

/// The server name as a one-line MOTD: control characters (which would end
/// the property or inject formatting) become spaces, and it is cut to the
/// 59 characters the server list shows.
fn motd(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_control() || c == '§' { ' ' } else { c })
        .take(59)
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        "A Minecraft Server".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The install of `server` with its checked `settings`, downloading `jar`.
fn install_plan(
    server: &ServerContext,
    settings: &Settings,
    jar: &Jar,
) -> Result<InstallPlan, PluginError> {
    Ok(InstallPlan {
        steps: vec![
            InstallStep::Download(Download {
                url: jar.url.clone(),
                sha256: jar.sha256.clone(),
                destination: settings.jarfile.clone(),
                executable: false,
            }),
            InstallStep::WriteFile(WriteFile {
                path: "eula.txt".into(),
                // `settings` holds only an accepted EULA (validation refuses
                // any other), so this is always `eula=true`.
                contents: format!(
                    "# Accepted through Ctrl-Alt-Play (https://aka.ms/MinecraftEULA)\neula={}\n",
                    settings.eula
                ),
                mode: 0o644,
            }),
            InstallStep::EditConfig(properties(server)?),
        ],
    })
}

fn startup_plan(server: &ServerContext) -> Result<StartupPlan, PluginError> {
    let settings = Settings::from_server(server)?;
    if server.memory_mb < INITIAL_HEAP_MB {
        return Err(PluginError::new(
            "not-enough-memory",
            format!(
                "Paper needs at least {INITIAL_HEAP_MB} MiB; the server has {}",
                server.memory_mb
            ),
        ));
    }
    Ok(StartupPlan {
        program: "java".into(),
        args: vec![
            format!("-Xms{INITIAL_HEAP_MB}M"),
            format!("-Xmx{}M", server.memory_mb),
            "-Dterminal.jline=false".into(),
            "-Dterminal.ansi=true".into(),
            "-jar".into(),
            settings.jarfile,
            "nogui".into(),
        ],
        env: vec![KeyValue::new("SERVER_MEMORY", server.memory_mb.to_string())],
        working_dir: ".".into(),
        config_edits: vec![properties(server)?],
    })
}

/// Removes ANSI escape sequences (`-Dterminal.ansi=true` colours the log).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, up to the final byte @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            // A two-character escape such as `ESC c`.
            chars.next();
        }
    }
    out
}

/// Splits `[12:34:56 INFO]: message` into `(Some("INFO"), "message")`.
/// Lines without that prefix (stack traces, output of the JVM itself) have
/// no level.
fn split_record(line: &str) -> (Option<&str>, &str) {
    let Some(rest) = line.strip_prefix('[') else {
        return (None, line);
    };
    let Some((header, message)) = rest.split_once("]: ") else {
        return (None, line);
    };
    // `12:34:56 INFO`, or `Server thread/INFO` in older formats.
    let level = header.rsplit([' ', '/']).next().unwrap_or(header);
    if level.is_empty() || !level.bytes().all(|b| b.is_ascii_uppercase()) {
        return (None, line);
    }
    (Some(level), message)
}

/// Java edition names are 3-16 characters of `[A-Za-z0-9_]`; Bedrock players
/// joining through Geyser/Floodgate carry a `.` or `*` prefix. Anything else
/// (chat lines start with `<name>`, `say` output with `[name]`) is not a
/// join or leave.
fn is_player_name(name: &str) -> bool {
    let bare = name.strip_prefix(['.', '*']).unwrap_or(name);
    (1..=16).contains(&bare.len()) && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The exception in a line such as
/// `java.lang.IllegalStateException: Ticking entity`, from the class name on.
fn exception_in(message: &str) -> Option<&str> {
    let position = message
        .find("Exception")
        .or_else(|| message.find("Error:"))?;
    // Walk back to the start of the fully qualified class name.
    let start = message[..position]
        .rfind(|c: char| !(c.is_alphanumeric() || c == '.' || c == '$' || c == '_'))
        .map_or(0, |i| i + 1);
    Some(message[start..].trim())
}

fn classify_line(line: &str) -> LineKind {
    let clean = strip_ansi(line);
    let clean = clean.trim_end();
    let (level, message) = split_record(clean);

    if level != Some("WARN") && level != Some("ERROR") {
        if message.starts_with("Done (") {
            return LineKind::Ready;
        }
        if let Some(name) = message.strip_suffix(" joined the game")
            && is_player_name(name)
        {
            return LineKind::PlayerJoined(name.to_owned());
        }
        if let Some(name) = message.strip_suffix(" left the game")
            && is_player_name(name)
        {
            return LineKind::PlayerLeft(name.to_owned());
        }
    }

    if level != Some("INFO") {
        let lower = message.to_ascii_lowercase();
        if message.contains("Encountered an unexpected exception")
            || message.contains("Exception in server tick loop")
            || lower.contains("crash report")
        {
            return LineKind::Crash(message.trim().to_owned());
        }
        if level != Some("WARN")
            && let Some(cause) = exception_in(message)
        {
            return LineKind::Crash(cause.to_owned());
        }
    }

    if matches!(level, Some("WARN" | "ERROR")) {
        return LineKind::Warning(message.trim().to_owned());
    }
    LineKind::Plain
}

/// Parses the answer to `list`:
/// `There are 2 of a max of 20 players online: Steve, Alex`, or the older
/// `There are 2/20 players online:` followed by a line of names.
fn parse_status(lines: &[String]) -> Option<PlayerStatus> {
    let messages: Vec<String> = lines
        .iter()
        .map(|line| {
            let clean = strip_ansi(line);
            split_record(clean.trim_end()).1.to_owned()
        })
        .collect();
    for (index, message) in messages.iter().enumerate() {
        let Some(rest) = message.trim().strip_prefix("There are ") else {
            continue;
        };
        let Some((counts, names)) = rest.split_once(" players online:") else {
            continue;
        };
        let (online, max) = match counts.split_once(" of a max of ") {
            Some(pair) => pair,
            None => match counts.split_once('/') {
                Some(pair) => pair,
                None => continue,
            },
        };
        let (Ok(online), Ok(max)) = (online.trim().parse::<u32>(), max.trim().parse::<u32>())
        else {
            continue;
        };
        let names = if names.trim().is_empty() && online > 0 {
            // Older format: the names follow on the next line.
            messages.get(index + 1).map_or("", String::as_str)
        } else {
            names
        };
        let players: Vec<String> = names
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        return Some(PlayerStatus {
            online,
            max,
            players,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF";

    fn variables(overrides: &[(&str, &str)]) -> Vec<KeyValue> {
        let mut vars = vec![
            KeyValue::new(MINECRAFT_VERSION, "1.21.4"),
            KeyValue::new(BUILD_NUMBER, "232"),
            KeyValue::new(JAR_SHA256, SHA),
            KeyValue::new(SERVER_JARFILE, "server.jar"),
            KeyValue::new(EULA, "true"),
        ];
        for &(key, value) in overrides {
            vars.retain(|pair| pair.key != key);
            vars.push(KeyValue::new(key, value));
        }
        vars
    }

    fn server(overrides: &[(&str, &str)]) -> ServerContext {
        ServerContext {
            server_id: "s-1".into(),
            name: "Survival\nworld".into(),
            memory_mb: 4096,
            disk_mb: 20_480,
            cpu_percent: 200,
            variables: variables(overrides),
            ports: vec![
                AllocatedPort {
                    name: "game".into(),
                    ip: "10.0.0.5".into(),
                    port: 25565,
                },
                AllocatedPort {
                    name: "query".into(),
                    ip: "10.0.0.5".into(),
                    port: 25566,
                },
            ],
            platform: Platform {
                os: Os::Linux,
                arch: Arch::Arm64,
            },
        }
    }

    fn error_keys(overrides: &[(&str, &str)]) -> Vec<String> {
        Settings::from_variables(&variables(overrides))
            .unwrap_err()
            .into_iter()
            .map(|error| error.key)
            .collect()
    }

    #[test]
    fn describes_a_primary_tcp_game_port_and_a_udp_query_port() {
        let info = describe();
        assert_eq!(info.id, "minecraft-paper");
        let primary: Vec<&PortRequest> = info.ports.iter().filter(|p| p.primary).collect();
        assert_eq!(primary.len(), 1);
        assert_eq!(primary[0].protocol, PortProtocol::Tcp);
        assert_eq!(primary[0].env.as_deref(), Some("SERVER_PORT"));
        assert!(
            info.ports
                .iter()
                .any(|p| p.name == "query" && p.protocol == PortProtocol::Udp)
        );
    }

    #[test]
    fn every_variable_key_is_unique() {
        let info = describe();
        let mut keys: Vec<&str> = info.variables.iter().map(|v| v.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), info.variables.len());
    }

    #[test]
    fn accepts_a_complete_set_of_variables() {
        let settings = Settings::from_variables(&variables(&[])).unwrap();
        assert_eq!(settings.pin.as_deref(), Some(&*SHA.to_ascii_lowercase()));
        assert!(settings.eula);
    }

    #[test]
    fn rejects_a_jar_name_without_the_jar_extension() {
        assert_eq!(
            error_keys(&[(SERVER_JARFILE, "server.zip")]),
            [SERVER_JARFILE]
        );
        assert_eq!(error_keys(&[(SERVER_JARFILE, ".jar")]), [SERVER_JARFILE]);
    }

    #[test]
    fn rejects_a_jar_name_with_a_path() {
        assert_eq!(
            error_keys(&[(SERVER_JARFILE, "../x.jar")]),
            [SERVER_JARFILE]
        );
        assert_eq!(error_keys(&[(SERVER_JARFILE, "a b.jar")]), [SERVER_JARFILE]);
    }

    #[test]
    fn refuses_to_validate_until_the_eula_is_accepted() {
        assert_eq!(error_keys(&[(EULA, "false")]), [EULA]);
        assert_eq!(error_keys(&[(EULA, "")]), [EULA]);
    }

    #[test]
    fn a_pin_is_optional_and_when_given_is_sixty_four_hex_digits() {
        let mut vars = variables(&[]);
        vars.retain(|pair| pair.key != JAR_SHA256);
        assert_eq!(Settings::from_variables(&vars).unwrap().pin, None);
        assert_eq!(
            Settings::from_variables(&variables(&[(JAR_SHA256, "")]))
                .unwrap()
                .pin,
            None
        );
        assert_eq!(error_keys(&[(JAR_SHA256, &SHA[..63])]), [JAR_SHA256]);
        let not_hex = format!("{}g", &SHA[..63]);
        assert_eq!(error_keys(&[(JAR_SHA256, &not_hex)]), [JAR_SHA256]);
    }

    #[test]
    fn reports_each_bad_variable_separately() {
        assert_eq!(
            error_keys(&[
                (MINECRAFT_VERSION, "latest"),
                (BUILD_NUMBER, "0"),
                (EULA, "no")
            ]),
            [MINECRAFT_VERSION, BUILD_NUMBER, EULA]
        );
    }

    #[test]
    fn accepts_two_and_three_part_versions_only() {
        assert!(check_version("1.21").is_ok());
        assert!(check_version("1.21.4").is_ok());
        assert!(check_version("1").is_err());
        assert!(check_version("1.21.4.1").is_err());
        assert!(check_version("1..4").is_err());
        assert!(check_version("1.21-pre1").is_err());
    }

    const API: &str = "https://fill.papermc.io";
    const JAR_URL: &str = "https://fill-data.papermc.io/v1/objects/0123/paper-1.21.4-232.jar";

    fn jar() -> Jar {
        Jar {
            url: JAR_URL.into(),
            sha256: SHA.to_ascii_lowercase(),
        }
    }

    /// A Fill v3 build as the service answers it.
    fn build(sha256: &str, url: &str) -> serde_json::Value {
        serde_json::json!({
            "id": 232,
            "time": "2025-01-01T00:00:00Z",
            "channel": "STABLE",
            "commits": [],
            "downloads": {
                "server:default": {
                    "name": "paper-1.21.4-232.jar",
                    "checksums": { "sha256": sha256 },
                    "size": 51_234_567,
                    "url": url
                }
            }
        })
    }

    fn settings(overrides: &[(&str, &str)]) -> Settings {
        Settings::from_variables(&variables(overrides)).unwrap()
    }

    #[test]
    fn the_jar_is_the_server_default_download_with_its_checksum() {
        let unpinned = settings(&[(JAR_SHA256, "")]);
        assert_eq!(
            unpinned.build_path(),
            "/v3/projects/paper/versions/1.21.4/builds/232"
        );
        assert_eq!(jar_of(API, &build(SHA, JAR_URL), &unpinned), Ok(jar()));
    }

    #[test]
    fn a_pin_must_equal_the_listed_checksum() {
        let listed = "f".repeat(64);
        let error = jar_of(API, &build(&listed, JAR_URL), &settings(&[])).unwrap_err();
        assert!(error.contains("not the pinned"), "{error}");
        assert_eq!(jar_of(API, &build(SHA, JAR_URL), &settings(&[])), Ok(jar()));
    }

    #[test]
    fn a_build_without_a_checksum_or_with_a_bad_one_is_refused() {
        let unpinned = settings(&[(JAR_SHA256, "")]);
        let mut no_checksum = build(SHA, JAR_URL);
        no_checksum["downloads"]["server:default"]["checksums"] = serde_json::json!({});
        assert!(
            jar_of(API, &no_checksum, &unpinned)
                .unwrap_err()
                .contains("SHA-256")
        );
        assert!(jar_of(API, &build("abc", JAR_URL), &unpinned).is_err());
        assert!(
            jar_of(API, &serde_json::json!({"downloads": {}}), &unpinned)
                .unwrap_err()
                .contains("server:default")
        );
    }

    #[test]
    fn the_download_url_must_be_https_on_papermc_or_on_the_service_itself() {
        let unpinned = settings(&[(JAR_SHA256, "")]);
        for bad in [
            "http://fill-data.papermc.io/x.jar",
            "https://evil.example/x.jar",
            "https://papermc.io.evil.example/x.jar",
            "https://user@fill-data.papermc.io/x.jar",
            "file:///etc/passwd",
            "x.jar",
        ] {
            assert!(jar_of(API, &build(SHA, bad), &unpinned).is_err(), "{bad}");
        }
        let mirror = "http://127.0.0.1:8080";
        assert!(jar_of(mirror, &build(SHA, "http://127.0.0.1:8080/jar"), &unpinned).is_ok());
        assert!(jar_of(mirror, &build(SHA, "http://127.0.0.1:8081/jar"), &unpinned).is_err());
    }

    #[test]
    fn install_downloads_the_listed_build_and_accepts_the_eula() {
        let plan = install_plan(&server(&[]), &settings(&[]), &jar()).unwrap();
        let InstallStep::Download(download) = &plan.steps[0] else {
            panic!("expected a download first, got {:?}", plan.steps[0]);
        };
        assert_eq!(download.url, JAR_URL);
        assert_eq!(download.sha256, SHA.to_ascii_lowercase());
        assert_eq!(download.destination, "server.jar");
        assert!(matches!(
            &plan.steps[1],
            InstallStep::WriteFile(file) if file.path == "eula.txt" && file.contents.contains("eula=true\n")
        ));
    }

    #[test]
    fn install_points_server_properties_at_the_allocation() {
        let plan = install_plan(&server(&[]), &settings(&[]), &jar()).unwrap();
        let InstallStep::EditConfig(edit) = &plan.steps[2] else {
            panic!("expected a config edit, got {:?}", plan.steps[2]);
        };
        assert_eq!(edit.path, "server.properties");
        assert_eq!(edit.format, ConfigFormat::Properties);
        assert_eq!(lookup(&edit.set, "server-ip"), Some("10.0.0.5"));
        assert_eq!(lookup(&edit.set, "server-port"), Some("25565"));
        assert_eq!(lookup(&edit.set, "query.port"), Some("25566"));
        assert_eq!(lookup(&edit.set, "motd"), Some("Survival world"));
    }

    #[test]
    fn install_refuses_without_the_eula_before_asking_anyone() {
        // On the host there is no HTTP: the refusal comes first.
        let error = Paper.install_plan(&server(&[(EULA, "false")])).unwrap_err();
        assert_eq!(error.code, "invalid-variable");
    }

    #[test]
    fn startup_gives_java_the_server_memory() {
        let plan = startup_plan(&server(&[(SERVER_JARFILE, "paper.jar")])).unwrap();
        assert_eq!(plan.program, "java");
        assert_eq!(
            plan.args,
            [
                "-Xms128M",
                "-Xmx4096M",
                "-Dterminal.jline=false",
                "-Dterminal.ansi=true",
                "-jar",
                "paper.jar",
                "nogui"
            ]
        );
        assert_eq!(plan.config_edits.len(), 1);
    }

    #[test]
    fn startup_refuses_less_memory_than_the_initial_heap() {
        let mut context = server(&[]);
        context.memory_mb = 64;
        assert_eq!(
            startup_plan(&context).unwrap_err().code,
            "not-enough-memory"
        );
    }

    #[test]
    fn a_missing_query_port_is_an_error() {
        let mut context = server(&[]);
        context.ports.retain(|port| port.name != "query");
        assert_eq!(startup_plan(&context).unwrap_err().code, "missing-port");
    }

    #[test]
    fn the_motd_is_one_line_without_formatting_codes() {
        assert_eq!(motd("§4Red\r\nserver"), "4Red  server");
        assert_eq!(motd("   "), "A Minecraft Server");
        assert_eq!(motd(&"x".repeat(100)).len(), 59);
    }

    #[test]
    fn recognises_the_ready_line() {
        assert_eq!(
            classify_line(r#"[12:00:01 INFO]: Done (6.413s)! For help, type "help""#),
            LineKind::Ready
        );
    }

    #[test]
    fn recognises_a_coloured_ready_line() {
        let line = "\u{1b}[0;32m[12:00:01 INFO]: Done (6.413s)! For help, type \"help\"\u{1b}[m";
        assert_eq!(classify_line(line), LineKind::Ready);
    }

    #[test]
    fn recognises_players_joining_and_leaving() {
        assert_eq!(
            classify_line("[12:01:00 INFO]: Steve joined the game"),
            LineKind::PlayerJoined("Steve".into())
        );
        assert_eq!(
            classify_line("[12:02:00 INFO]: Alex_99 left the game"),
            LineKind::PlayerLeft("Alex_99".into())
        );
        assert_eq!(
            classify_line("[12:01:00 INFO]: .BedrockBob joined the game"),
            LineKind::PlayerJoined(".BedrockBob".into())
        );
    }

    #[test]
    fn chat_cannot_fake_a_join() {
        assert_eq!(
            classify_line("[12:01:00 INFO]: <Steve> Herobrine joined the game"),
            LineKind::Plain
        );
        assert_eq!(
            classify_line("[12:01:00 INFO]: [Server] Notch joined the game"),
            LineKind::Plain
        );
    }

    #[test]
    fn warn_records_are_warnings() {
        assert_eq!(
            classify_line(
                "[12:03:00 WARN]: Can't keep up! Is the server overloaded? Running 5012ms or 100 ticks behind"
            ),
            LineKind::Warning(
                "Can't keep up! Is the server overloaded? Running 5012ms or 100 ticks behind"
                    .into()
            )
        );
    }

    #[test]
    fn an_exception_in_a_warning_is_only_a_warning() {
        assert!(matches!(
            classify_line("[12:03:00 WARN]: java.io.IOException: Connection reset"),
            LineKind::Warning(_)
        ));
    }

    #[test]
    fn chat_about_exceptions_is_not_a_crash() {
        assert_eq!(
            classify_line("[12:03:00 INFO]: <Steve> I got a NullPointerException lol"),
            LineKind::Plain
        );
    }

    #[test]
    fn the_unexpected_exception_line_is_a_crash() {
        assert_eq!(
            classify_line("[12:04:00 ERROR]: Encountered an unexpected exception"),
            LineKind::Crash("Encountered an unexpected exception".into())
        );
    }

    #[test]
    fn an_exception_outside_a_log_record_is_a_crash_with_its_cause() {
        assert_eq!(
            classify_line("java.lang.IllegalStateException: Ticking entity"),
            LineKind::Crash("java.lang.IllegalStateException: Ticking entity".into())
        );
        assert_eq!(
            classify_line(
                "[12:04:00 ERROR]: Failed to start: java.net.BindException: Address already in use"
            ),
            LineKind::Crash("java.net.BindException: Address already in use".into())
        );
    }

    #[test]
    fn crash_report_lines_are_crashes() {
        assert!(matches!(
            classify_line("---- Minecraft Crash Report ----"),
            LineKind::Crash(_)
        ));
        assert!(matches!(
            classify_line(
                "[12:04:01 ERROR]: This crash report has been saved to: /srv/crash-reports/crash.txt"
            ),
            LineKind::Crash(_)
        ));
    }

    #[test]
    fn an_error_record_without_an_exception_is_a_warning() {
        assert_eq!(
            classify_line("[12:03:00 ERROR]: Could not load 'plugins/Broken.jar'"),
            LineKind::Warning("Could not load 'plugins/Broken.jar'".into())
        );
    }

    #[test]
    fn ordinary_lines_are_plain() {
        for line in [
            "[12:00:00 INFO]: Starting minecraft server version 1.21.4",
            "Starting org.bukkit.craftbukkit.Main",
            "",
            "[12:00:00 INFO]: Preparing spawn area: 42%",
        ] {
            assert_eq!(classify_line(line), LineKind::Plain, "{line:?}");
        }
    }

    #[test]
    fn parses_the_list_answer() {
        let lines =
            vec!["[12:05:00 INFO]: There are 2 of a max of 20 players online: Steve, Alex".into()];
        assert_eq!(
            parse_status(&lines),
            Some(PlayerStatus {
                online: 2,
                max: 20,
                players: vec!["Steve".into(), "Alex".into()]
            })
        );
    }

    #[test]
    fn parses_an_empty_list_answer() {
        let lines = vec!["[12:05:00 INFO]: There are 0 of a max of 20 players online: ".into()];
        assert_eq!(
            parse_status(&lines),
            Some(PlayerStatus {
                online: 0,
                max: 20,
                players: Vec::new()
            })
        );
    }

    #[test]
    fn parses_the_older_two_line_list_answer() {
        let lines = vec![
            "[12:05:00 INFO]: There are 1/10 players online:".into(),
            "[12:05:00 INFO]: Notch".into(),
        ];
        assert_eq!(
            parse_status(&lines),
            Some(PlayerStatus {
                online: 1,
                max: 10,
                players: vec!["Notch".into()]
            })
        );
    }

    #[test]
    fn unrelated_lines_are_no_status() {
        let lines = vec!["[12:05:00 INFO]: Saving chunks".into()];
        assert_eq!(parse_status(&lines), None);
    }
}
