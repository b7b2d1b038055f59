//! Node-side plugins: the game-type plugins an Agent's servers need,
//! pulled from the Panel and run in the Agent's own sandbox.
//!
//! A start command's [`ServerSpec`] names the game-type plugin's component
//! by SHA-256 ([`GamePackage`]); the command arrives over the
//! authenticated WebSocket, so that digest is what the Agent trusts. When
//! the runtime has no classifier for the game yet, [`PluginSource`]
//! fetches the manifest (`GET /api/v1/agents/plugins/{id}`) and the
//! component (`…/component`) with the node token, refuses bytes whose
//! digest differs, keeps them under `<data>/plugins/` (so later starts and
//! restarts need no Panel), loads them without any capability grant
//! (classification needs none) and registers the classifier.
//!
//! [`ServerSpec`]: cap_protocol::ServerSpec

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cap_protocol::GamePackage;
use cap_runtime::{Grants, HostServices, Manifest, PluginSpec};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::console::{Classifier, PluginClassifier};
use crate::install::write_atomically;

/// Largest component accepted from the Panel.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// Why a plugin could not be pulled or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The Panel could not be reached or answered with an error.
    #[error("fetching plugin {plugin} from the Panel: {message}")]
    Fetch {
        /// The plugin.
        plugin: String,
        /// What went wrong.
        message: String,
    },
    /// The bytes are not the ones the command named.
    #[error("plugin {plugin}: the component's SHA-256 is {actual}, the command named {expected}")]
    ChecksumMismatch {
        /// The plugin.
        plugin: String,
        /// The digest in the command.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The Panel sent another plugin or version than the command named.
    #[error("plugin {plugin}: the Panel offers {offered}, the command named {expected}")]
    WrongVersion {
        /// The plugin.
        plugin: String,
        /// What the command named.
        expected: String,
        /// What the Panel offered.
        offered: String,
    },
    /// The manifest or component does not load.
    #[error("loading plugin {plugin}: {message}")]
    Load {
        /// The plugin.
        plugin: String,
        /// Why.
        message: String,
    },
}

impl PullError {
    /// A stable code for the command's failure.
    pub fn code(&self) -> &'static str {
        match self {
            PullError::Fetch { .. } => "plugin-unavailable",
            PullError::ChecksumMismatch { .. } => "plugin-checksum-mismatch",
            PullError::WrongVersion { .. } => "plugin-version-mismatch",
            PullError::Load { .. } => "plugin-invalid",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    id: String,
    version: String,
    component_sha256: String,
    manifest: String,
}

/// Fetches and loads game-type plugins from the Panel.
pub struct PluginSource {
    client: reqwest::Client,
    panel_url: String,
    node_token: String,
    dir: PathBuf,
    runtime: cap_runtime::Runtime,
}

impl std::fmt::Debug for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSource")
            .field("panel_url", &self.panel_url)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl PluginSource {
    /// A source talking to `panel_url` with `node_token`, caching under
    /// `data_dir/plugins`.
    ///
    /// # Errors
    ///
    /// The plugin runtime or HTTP client could not be created.
    pub fn new(
        panel_url: &str,
        node_token: &str,
        data_dir: &std::path::Path,
    ) -> Result<Self, PullError> {
        let dir = data_dir.join("plugins");
        let failed = |message: String| PullError::Load {
            plugin: "*".into(),
            message,
        };
        let runtime = cap_runtime::Runtime::new(cap_runtime::RuntimeConfig {
            cache_dir: Some(dir.join("cache")),
            pool_instances: 64,
            ..cap_runtime::RuntimeConfig::default()
        })
        .map_err(|e| failed(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        Ok(PluginSource {
            client,
            panel_url: panel_url.trim_end_matches('/').to_owned(),
            node_token: node_token.to_owned(),
            dir,
            runtime,
        })
    }

    /// The classifier of `package`, from the cache or the Panel.
    ///
    /// # Errors
    ///
    /// [`PullError`]; nothing is cached then.
    pub async fn classifier(
        &self,
        package: &GamePackage,
    ) -> Result<Arc<dyn Classifier>, PullError> {
        let (manifest, component) = match self.cached(package) {
            Some(found) => found,
            None => self.fetch(package).await?,
        };
        let load = |message: String| PullError::Load {
            plugin: package.id.clone(),
            message,
        };
        let manifest = Manifest::parse(manifest.as_bytes()).map_err(|e| load(e.to_string()))?;
        let plugin = self
            .runtime
            .load(PluginSpec {
                manifest,
                component: component.into(),
                grants: Grants::none(),
                limit_caps: None,
                services: HostServices::in_memory(),
            })
            .await
            .map_err(|e| load(e.to_string()))?;
        Ok(Arc::new(PluginClassifier::new(plugin)))
    }

    fn paths(&self, package: &GamePackage) -> (PathBuf, PathBuf) {
        let stem = &package.component_sha256;
        (
            self.dir.join(format!("{stem}.toml")),
            self.dir.join(format!("{stem}.wasm")),
        )
    }

    fn cached(&self, package: &GamePackage) -> Option<(String, Vec<u8>)> {
        let (manifest, component) = self.paths(package);
        let component = std::fs::read(component).ok()?;
        if sha256_hex(&component) != package.component_sha256 {
            return None;
        }
        Some((std::fs::read_to_string(manifest).ok()?, component))
    }

    async fn get(&self, path: &str, plugin: &str) -> Result<reqwest::Response, PullError> {
        let fetch = |message: String| PullError::Fetch {
            plugin: plugin.to_owned(),
            message,
        };
        let response = self
            .client
            .get(format!("{}{path}", self.panel_url))
            .bearer_auth(&self.node_token)
            .send()
            .await
            .map_err(|e| fetch(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fetch(format!("the Panel answered {}", response.status())));
        }
        Ok(response)
    }

    async fn fetch(&self, package: &GamePackage) -> Result<(String, Vec<u8>), PullError> {
        let id = &package.id;
        let fetch = |message: String| PullError::Fetch {
            plugin: id.clone(),
            message,
        };
        let metadata: Metadata = self
            .get(&format!("/api/v1/agents/plugins/{id}"), id)
            .await?
            .json()
            .await
            .map_err(|e| fetch(e.to_string()))?;
        if metadata.id != package.id || metadata.component_sha256 != package.component_sha256 {
            return Err(PullError::WrongVersion {
                plugin: id.clone(),
                expected: format!("{} {}", package.version, package.component_sha256),
                offered: format!("{} {}", metadata.version, metadata.component_sha256),
            });
        }
        let response = self
            .get(&format!("/api/v1/agents/plugins/{id}/component"), id)
            .await?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_COMPONENT_BYTES)
        {
            return Err(fetch("the component is too large".into()));
        }
        let component = response.bytes().await.map_err(|e| fetch(e.to_string()))?;
        let actual = sha256_hex(&component);
        if actual != package.component_sha256 {
            return Err(PullError::ChecksumMismatch {
                plugin: id.clone(),
                expected: package.component_sha256.clone(),
                actual,
            });
        }
        let (manifest_path, component_path) = self.paths(package);
        let store = |e: std::io::Error| fetch(format!("caching: {e}"));
        std::fs::create_dir_all(&self.dir).map_err(store)?;
        write_atomically(&component_path, &component, Some(0o600)).map_err(store)?;
        write_atomically(&manifest_path, metadata.manifest.as_bytes(), Some(0o600))
            .map_err(store)?;
        Ok((metadata.manifest, component.to_vec()))
    }
}
