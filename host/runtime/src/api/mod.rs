//! The data model of the plugin API, as the Panel and Agent see it: the
//! newest WIT version's types (older versions convert into these).

pub use crate::bindings::v0_1::ctrl_alt_play::plugin::http::{
    HttpError, Method as HttpMethod, Request as HttpRequest, Response as HttpResponse,
};
pub use crate::bindings::v0_1::ctrl_alt_play::plugin::log::Level as LogLevel;
pub use crate::bindings::v0_1::ctrl_alt_play::plugin::panel::ServerSummary;
pub use crate::bindings::v0_1::ctrl_alt_play::plugin::types::{
    CapabilityError, KeyValue, PluginError,
};
pub use crate::bindings::v0_1::exports::ctrl_alt_play::plugin::auth_provider::{
    AuthError, Credentials, Identity, LoginRedirect, PasswordCredentials, ProviderInfo,
    ProviderKind,
};
pub use crate::bindings::v0_1::exports::ctrl_alt_play::plugin::game_console::{
    LineKind, PlayerStatus,
};
pub use crate::bindings::v0_1::exports::ctrl_alt_play::plugin::game_type::{
    AllocatedPort, Arch, ConfigEdit, ConfigFormat, Download, FieldError, GameInfo, InstallPlan,
    InstallStep, Os, Platform, PortProtocol, PortRequest, Script, ServerContext, Signal,
    StartupPlan, StopMethod, StopPlan, ValidationRule, Variable, VariableType, WriteFile,
};
pub use crate::bindings::v0_1::exports::ctrl_alt_play::plugin::hooks::{
    Actor, ConsoleInfo, Event, EventKind, NodeInfo, Payload, PluginRef, ScheduleInfo, ServerInfo,
    UserInfo, Verdict,
};
pub use crate::bindings::v0_1::exports::ctrl_alt_play::plugin::ui::{
    Action, ActionResult, Button, Chart, ChartKind, Element, FieldKind, Form, FormField, Node,
    RenderContext, Series, Table, TableRow, Tone, UiTree,
};

#[cfg(test)]
mod tests;
