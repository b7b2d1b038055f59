//! The traits and the types most plugins need, for a glob import.
//!
//! ```
//! use cap_plugin_sdk::prelude::*;
//!
//! let verdict = Verdict::Deny("not today".into());
//! assert!(matches!(verdict, Verdict::Deny(_)));
//! ```

pub use crate::auth::AuthProvider;
pub use crate::game::GameType;
pub use crate::hooks::{Event, EventKind, Hooks, Payload, ServerInfo, Verdict};
pub use crate::log;
pub use crate::types::{CapabilityError, KeyValue, PluginError};
pub use crate::ui::{
    Action, ActionResult, Button, Element, RenderContext, Tone, TreeBuilder, Ui, UiTree,
};
