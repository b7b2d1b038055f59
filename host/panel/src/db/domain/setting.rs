//! `setting.*`, `secrets.*` and `mail.*`: the Panel's own state.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Empty, Null, SettingName, namespace};

namespace! {
    /// `setting.*`: the Panel-wide settings ([`crate::db::settings`]). The
    /// setting's `updated_at` is the event's `occurred_at`.
    pub enum SettingEvent {
        /// A setting that did not exist was created.
        Created = "setting.created" { subject: SettingName, data: SettingValueData },
        /// A setting was set (created if it did not exist).
        Updated = "setting.updated" { subject: SettingName, data: SettingValueData },
        /// A setting was deleted.
        Deleted = "setting.deleted" { subject: SettingName, data: Empty },
    }
}

/// The value a setting was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SettingValueData {
    /// The new value.
    pub value: Value,
}

namespace! {
    /// `secrets.*`: sealing secrets at rest ([`crate::secrets`]).
    pub enum SecretsEvent {
        /// The secrets a database held from before sealing existed were
        /// sealed (once, when a Panel with a key first opened it).
        Sealed = "secrets.sealed" { subject: Null, data: SecretsSealed },
    }
}

/// How many secrets were sealed, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretsSealed {
    /// TOTP secrets.
    pub totp_secrets: u64,
    /// Plugin secrets.
    pub plugin_secrets: u64,
    /// Marketplace instance tokens.
    pub marketplace_tokens: u64,
}

namespace! {
    /// `mail.*`: the Panel's SMTP settings ([`crate::mail`]). The password
    /// is never recorded, only whether there is one.
    pub enum MailEvent {
        /// The SMTP settings were set (created or replaced).
        Configured = "mail.configured" { subject: Null, data: MailConfigured },
        /// The SMTP settings were removed: the Panel sends no mail.
        Cleared = "mail.cleared" { subject: Null, data: Empty },
    }
}

/// The SMTP settings as set, without the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MailConfigured {
    /// The SMTP server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    /// The user name to sign in with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub username: Option<String>,
    /// Whether a password is set.
    pub has_password: bool,
    /// The sender address.
    pub from: String,
}
