//! `POST /api/v1/agents/register`: an Agent trades a one-time registration
//! token for node credentials.

use serde::{Deserialize, Serialize};

/// What an Agent sends to register itself.
///
/// ```json
/// {"token":"…","agentId":"…","version":"0.1.0","capabilities":["native"],
///  "supportedGames":[{"plugin":"test-game","version":"1.0.0"}],
///  "resourceLimits":{"memoryMb":4096,"diskMb":10240,"cpuPercent":400},
///  "healthEndpoint":"http://10.0.0.2:8081/health"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrationRequest {
    /// The one-time registration token an administrator created.
    pub token: String,
    /// A stable id the Agent generated for itself (kept across restarts).
    pub agent_id: String,
    /// The Agent's version (semver).
    pub version: String,
    /// What the Agent can do, e.g. `native`, `cgroup-v2`, `rlimit`.
    pub capabilities: Vec<String>,
    /// The game-type plugins the Agent has loaded.
    pub supported_games: Vec<SupportedGame>,
    /// What the node offers to game servers.
    pub resource_limits: ResourceLimits,
    /// Where the Panel can probe the Agent's health.
    pub health_endpoint: String,
}

/// A game-type plugin an Agent can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SupportedGame {
    /// The plugin id, e.g. `minecraft-paper`.
    pub plugin: String,
    /// The plugin version (semver).
    pub version: String,
}

/// Resources a node offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceLimits {
    /// Memory in MiB.
    pub memory_mb: u64,
    /// Disk in MiB.
    pub disk_mb: u64,
    /// CPU in percent of one core (400 = four cores).
    pub cpu_percent: u32,
}

/// The Panel's answer to a successful registration.
///
/// ```json
/// {"nodeId":"…","nodeToken":"…","panelUrl":"https://panel.example","heartbeatSeconds":15}
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponse {
    /// The node the Agent now is.
    pub node_id: String,
    /// The secret the Agent authenticates its WebSocket with.
    pub node_token: String,
    /// The Panel's configured public URL. Informational: the Agent keeps
    /// the URL it registered with (an answer cannot move it elsewhere, nor
    /// from `https` to `http`), and the Panel never builds this from the
    /// request's `Host` header. In the Agent's stored credentials, this
    /// field holds the URL the Agent uses.
    pub panel_url: String,
    /// How often the Agent sends a heartbeat.
    pub heartbeat_seconds: u32,
}

impl std::fmt::Debug for RegistrationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationResponse")
            .field("node_id", &self.node_id)
            .field("node_token", &"<redacted>")
            .field("panel_url", &self.panel_url)
            .field("heartbeat_seconds", &self.heartbeat_seconds)
            .finish()
    }
}
