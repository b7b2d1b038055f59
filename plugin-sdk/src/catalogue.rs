//! Game catalogues (plugin kind `game-catalogue`, API 0.2.0, feature
//! `api-0-2`): game types that are data. An admin imports a document (a
//! Pterodactyl egg, say); the plugin checks it, keeps it (in [`kv`](crate::kv))
//! and offers it through [`GameTypes::list`] like any game type. The Panel
//! knows no format: it hands the document over as it is and shows what
//! comes back.
//!
//! A catalogue is a game-type plugin too: list both kinds, `kinds =
//! ["game-type", "game-catalogue"]` in `plugin.toml` and
//! `export_plugin!(T: game_type, game_catalogue)`.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Mutex;
//!
//! use cap_plugin_sdk::catalogue::*;
//! use cap_plugin_sdk::prelude::*;
//!
//! /// Game types from one-line documents: `id program`. (A real catalogue
//! /// keeps its documents in `kv`; a field lives only as long as the
//! /// instance.)
//! #[derive(Default)]
//! struct Lines(Mutex<BTreeMap<String, String>>);
//!
//! fn game(id: &str) -> GameInfo {
//!     GameInfo {
//!         id: id.into(),
//!         name: id.into(),
//!         version: "1.0.0".into(),
//!         description: String::new(),
//!         variables: vec![],
//!         ports: vec![PortRequest {
//!             name: "game".into(),
//!             protocol: PortProtocol::Tcp,
//!             primary: true,
//!             env: Some("SERVER_PORT".into()),
//!         }],
//!         platforms: vec![Platform { os: Os::Linux, arch: Arch::Amd64 }],
//!         features: vec![],
//!         min_memory_mb: 64,
//!         images: vec![],
//!         startup_commands: vec![],
//!         file_denylist: vec![],
//!     }
//! }
//!
//! fn parse(document: &[u8]) -> Result<(String, String), CatalogueError> {
//!     let text = std::str::from_utf8(document)
//!         .map_err(|_| CatalogueError::invalid("document", "not UTF-8"))?;
//!     let (id, program) = text
//!         .trim()
//!         .split_once(' ')
//!         .ok_or_else(|| CatalogueError::invalid("program", "missing"))?;
//!     Ok((id.to_owned(), program.to_owned()))
//! }
//!
//! fn entry(id: &str) -> Entry {
//!     Entry { game: game(id), format: "lines".into(), update_url: None, unsupported: vec![] }
//! }
//!
//! impl GameTypes for Lines {
//!     fn list(&self) -> Vec<GameInfo> {
//!         self.0.lock().unwrap_or_else(|e| e.into_inner()).keys().map(|id| game(id)).collect()
//!     }
//!     fn install_plan(&self, _: &ServerContext) -> Result<InstallPlan, PluginError> {
//!         Ok(InstallPlan { steps: vec![], image: None })
//!     }
//!     fn startup_plan(&self, server: &ServerContext) -> Result<StartupPlan, PluginError> {
//!         let programs = self.0.lock().unwrap_or_else(|e| e.into_inner());
//!         let program = programs
//!             .get(&server.game_type)
//!             .ok_or_else(|| PluginError::new("not-found", "no such game type"))?;
//!         Ok(StartupPlan {
//!             program: program.clone(),
//!             args: vec![],
//!             env: vec![],
//!             working_dir: ".".into(),
//!             config_edits: vec![],
//!             console_context: String::new(),
//!         })
//!     }
//!     fn stop_plan(&self, _: &ServerContext) -> StopPlan {
//!         StopPlan { method: StopMethod::SendSignal(Signal::Terminate), grace_secs: 10 }
//!     }
//! }
//!
//! impl GameCatalogue for Lines {
//!     fn preview(&self, document: &[u8]) -> Result<Entry, CatalogueError> {
//!         let (id, _) = parse(document)?;
//!         Ok(entry(&id))
//!     }
//!     fn import(&self, document: &[u8], replace: bool) -> Result<Entry, CatalogueError> {
//!         let (id, program) = parse(document)?;
//!         let mut programs = self.0.lock().unwrap_or_else(|e| e.into_inner());
//!         if programs.contains_key(&id) && !replace {
//!             return Err(CatalogueError::Exists(id));
//!         }
//!         programs.insert(id.clone(), program);
//!         Ok(entry(&id))
//!     }
//!     fn entries(&self) -> Vec<Entry> {
//!         self.list().iter().map(|g| entry(&g.id)).collect()
//!     }
//!     fn export(&self, game_type: &str) -> Result<Vec<u8>, CatalogueError> {
//!         let programs = self.0.lock().unwrap_or_else(|e| e.into_inner());
//!         let program = programs
//!             .get(game_type)
//!             .ok_or_else(|| CatalogueError::NotFound(game_type.into()))?;
//!         Ok(format!("{game_type} {program}").into_bytes())
//!     }
//!     fn remove(&self, game_type: &str) -> Result<(), CatalogueError> {
//!         let mut programs = self.0.lock().unwrap_or_else(|e| e.into_inner());
//!         programs
//!             .remove(game_type)
//!             .map(drop)
//!             .ok_or_else(|| CatalogueError::NotFound(game_type.into()))
//!     }
//! }
//!
//! let lines = Lines::default();
//! lines.import(b"echo /bin/cat", false)?;
//! assert!(matches!(lines.import(b"echo /bin/tac", false), Err(CatalogueError::Exists(_))));
//! assert_eq!(lines.export("echo")?, b"echo /bin/cat");
//! assert!(matches!(
//!     lines.preview(b"lonely"),
//!     Err(CatalogueError::Invalid(errors)) if errors[0].key == "program"
//! ));
//!
//! cap_plugin_sdk::export_plugin!(Lines: game_type, game_catalogue);
//! # Ok::<(), CatalogueError>(())
//! ```

use crate::bindings::exports::ctrl_alt_play::plugin::game_catalogue;
use crate::game::{FieldError, GameTypes};
use crate::types::PluginError;

pub use game_catalogue::{CatalogueError, Entry, Update};

/// A game catalogue: the `game-catalogue` export of API 0.2.0. See the
/// [module documentation](self) for a complete example.
///
/// Every method that keeps something (`import`, `remove`) must keep all of
/// it or nothing: the host may stop a call at its deadline, and the Panel
/// shows the admin what the call answered. [`check_update`](Self::check_update)
/// keeps nothing; it defaults to "the format has no updates".
pub trait GameCatalogue: GameTypes {
    /// What `document` would create; keeps nothing.
    ///
    /// # Errors
    ///
    /// [`CatalogueError::Invalid`] naming each field that is wrong.
    fn preview(&self, document: &[u8]) -> Result<Entry, CatalogueError>;

    /// Checks and keeps `document`; an entry with the same id is replaced
    /// only when `replace`.
    ///
    /// # Errors
    ///
    /// [`CatalogueError::Invalid`] as for [`preview`](Self::preview),
    /// [`CatalogueError::Exists`] when the id is kept and `replace` is
    /// false, [`CatalogueError::Failed`] when keeping fails.
    fn import(&self, document: &[u8], replace: bool) -> Result<Entry, CatalogueError>;

    /// The kept entries.
    fn entries(&self) -> Vec<Entry>;

    /// The entry `game_type` as a document of its own format; importing it
    /// gives the same game type.
    ///
    /// # Errors
    ///
    /// [`CatalogueError::NotFound`].
    fn export(&self, game_type: &str) -> Result<Vec<u8>, CatalogueError>;

    /// Fetches the newer document of `game_type` from where its entry says
    /// it is published and lists what would change; keeps nothing.
    ///
    /// # Errors
    ///
    /// [`CatalogueError::NotFound`], or [`CatalogueError::Failed`] when
    /// there is no update source or it cannot be reached. The default
    /// answers `Failed` with code `no-update-url`.
    fn check_update(&self, game_type: &str) -> Result<Update, CatalogueError> {
        Err(CatalogueError::Failed(PluginError::new(
            "no-update-url",
            format!("{game_type} names no place where updates are published"),
        )))
    }

    /// Forgets the entry `game_type` (the Panel refuses while servers use it).
    ///
    /// # Errors
    ///
    /// [`CatalogueError::NotFound`].
    fn remove(&self, game_type: &str) -> Result<(), CatalogueError>;
}

impl CatalogueError {
    /// An [`Invalid`](Self::Invalid) error with one problem, at `field`.
    ///
    /// ```
    /// use cap_plugin_sdk::catalogue::CatalogueError;
    ///
    /// let error = CatalogueError::invalid("variables[2].rules", "unknown rule \"foo\"");
    /// let CatalogueError::Invalid(fields) = error else { unreachable!() };
    /// assert_eq!(fields[0].key, "variables[2].rules");
    /// ```
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<PluginError> for CatalogueError {
    /// Anything that is not about the document: [`CatalogueError::Failed`].
    ///
    /// ```
    /// use cap_plugin_sdk::catalogue::CatalogueError;
    /// use cap_plugin_sdk::types::PluginError;
    ///
    /// let error = CatalogueError::from(PluginError::new("unavailable", "kv is down"));
    /// assert!(matches!(error, CatalogueError::Failed(e) if e.code == "unavailable"));
    /// ```
    fn from(error: PluginError) -> Self {
        Self::Failed(error)
    }
}

impl From<crate::Error> for CatalogueError {
    /// A capability helper's error ([`kv::get_json`](crate::kv::get_json),
    /// [`http`](crate::http) ...), as [`CatalogueError::Failed`].
    ///
    /// ```
    /// use cap_plugin_sdk::catalogue::CatalogueError;
    ///
    /// let error = CatalogueError::from(cap_plugin_sdk::Error::Missing("token".into()));
    /// assert!(matches!(error, CatalogueError::Failed(e) if e.code == "missing-config"));
    /// ```
    fn from(error: crate::Error) -> Self {
        Self::Failed(error.into())
    }
}

impl From<crate::types::CapabilityError> for CatalogueError {
    /// A refused or failed host call, as [`CatalogueError::Failed`].
    ///
    /// ```
    /// use cap_plugin_sdk::catalogue::CatalogueError;
    /// use cap_plugin_sdk::types::CapabilityError;
    ///
    /// let error = CatalogueError::from(CapabilityError::LimitExceeded("quota".into()));
    /// assert!(matches!(error, CatalogueError::Failed(e) if e.code == "limit-exceeded"));
    /// ```
    fn from(error: crate::types::CapabilityError) -> Self {
        Self::Failed(error.into())
    }
}
