//! `user.*`, `identity.*`, `role.*`, `session.*`, `jwt-key.*`, `api-key.*`
//! and `totp.*`: who may sign in and what they may do
//! ([`crate::identity`]). Secrets never appear here: tokens, keys and
//! TOTP secrets are named by id or counted, never copied.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Empty, JwtKeyId, RoleId, UserId, double_option, namespace};

namespace! {
    /// `user.*`: Panel users.
    pub enum UserEvent {
        /// A user was created.
        Created = "user.created" { subject: UserId, data: UserCreated },
        /// Some of a user's fields changed.
        Updated = "user.updated" { subject: UserId, data: UserUpdated },
        /// A user's roles were replaced.
        RolesSet = "user.roles-set" { subject: UserId, data: UserRoles },
        /// A user was disabled; their sessions and API keys were revoked.
        Disabled = "user.disabled" { subject: UserId, data: UserDisabled },
        /// A disabled user was enabled again.
        Enabled = "user.enabled" { subject: UserId, data: Empty },
        /// A user was deleted.
        Deleted = "user.deleted" { subject: UserId, data: UserDeleted },
        /// A user changed their password; their other sessions ended.
        PasswordChanged = "user.password-changed" { subject: UserId, data: PasswordChanged },
        /// A one-time link was issued: an invitation to set a first
        /// password, or a password reset ([`crate::identity::links`]).
        LinkIssued = "user.link-issued" { subject: UserId, data: LinkIssued },
        /// A password was set for the user by someone else (an
        /// administrator) or through a one-time link; every session of the
        /// user ended.
        PasswordSet = "user.password-set" { subject: UserId, data: PasswordSet },
        /// The user added an SSH public key for SFTP sign-ins.
        SshKeyAdded = "user.ssh-key-added" { subject: UserId, data: SshKeyAdded },
        /// The user removed an SSH public key.
        SshKeyRemoved = "user.ssh-key-removed" { subject: UserId, data: SshKeyRef },
    }
}

/// A new SSH public key, named in the event by its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SshKeyAdded {
    /// Its id.
    pub key: String,
    /// Its name.
    pub name: String,
    /// Its SHA-256 fingerprint (`SHA256:…`).
    pub fingerprint: String,
}

/// An SSH public key, by id and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SshKeyRef {
    /// Its id.
    pub key: String,
    /// Its SHA-256 fingerprint.
    pub fingerprint: String,
}

/// A new user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserCreated {
    /// The login name.
    pub username: String,
    /// Whether the user is an administrator.
    pub admin: bool,
}

/// The fields of a user that changed; the others are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserUpdated {
    /// The new email address (`null`: cleared).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    #[schema(value_type = Option<String>, required = false)]
    pub email: Option<Option<String>>,
    /// The new display name (`null`: cleared).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    #[schema(value_type = Option<String>, required = false)]
    pub display_name: Option<Option<String>>,
    /// Whether the user is now an administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub admin: Option<bool>,
}

/// The roles a user has now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserRoles {
    /// Role ids.
    pub roles: BTreeSet<String>,
}

/// What disabling a user revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserDisabled {
    /// Sessions ended.
    pub sessions_revoked: u64,
    /// API keys revoked.
    pub api_keys_revoked: u64,
}

/// A deleted user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserDeleted {
    /// Their login name.
    pub username: String,
}

/// A password change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PasswordChanged {
    /// The sign-in provider that stores the password.
    pub provider: String,
    /// The user's other sessions that were ended.
    pub sessions_revoked: u64,
}

/// A one-time link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkIssued {
    /// The link's id (never its token).
    pub link: String,
    /// `invitation` or `reset`.
    pub purpose: String,
    /// When it stops working, in microseconds since the Unix epoch.
    pub expires_at: i64,
    /// Whether it is to be sent by mail (what happened is on the link).
    pub mail: bool,
}

/// A password set for a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PasswordSet {
    /// The sign-in provider that stores the password.
    pub provider: String,
    /// How: `admin` (set by an administrator), `invitation` or `reset`.
    pub by: String,
    /// The one-time link used, for `invitation` and `reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub link: Option<String>,
    /// Whether the user must change it at their next sign-in.
    pub must_change: bool,
    /// The user's sessions that were ended.
    pub sessions_revoked: u64,
}

namespace! {
    /// `identity.*`: links between users and provider identities.
    pub enum IdentityEvent {
        /// A provider identity was linked to a user.
        Linked = "identity.linked" { subject: UserId, data: IdentityLinked },
    }
}

/// A linked provider identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentityLinked {
    /// The auth-provider plugin.
    pub provider: String,
    /// The provider's id of the person.
    pub subject: String,
}

namespace! {
    /// `role.*`: roles and who has them.
    pub enum RoleEvent {
        /// A role was created.
        Created = "role.created" { subject: RoleId, data: RoleCreated },
        /// A role changed.
        Updated = "role.updated" { subject: RoleId, data: RoleUpdated },
        /// A role was deleted (and taken from its users).
        Deleted = "role.deleted" { subject: RoleId, data: RoleDeleted },
        /// A user was given a role (the subject is the user).
        Assigned = "role.assigned" { subject: UserId, data: RoleAssigned },
    }
}

/// A new role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleCreated {
    /// Its name.
    pub name: String,
    /// Its permissions, as given.
    pub permissions: Vec<String>,
}

/// A role's changes; `null` for what stayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleUpdated {
    /// The new name.
    pub name: Option<String>,
    /// The new description.
    pub description: Option<String>,
    /// The new permission set.
    pub permissions: Option<BTreeSet<String>>,
}

/// A deleted role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleDeleted {
    /// Its name.
    pub name: String,
}

/// A role given to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleAssigned {
    /// The role's id.
    pub role: String,
}

namespace! {
    /// `session.*`: sign-in sessions (the subject is the user).
    pub enum SessionEvent {
        /// A session started.
        Created = "session.created" { subject: UserId, data: SessionCreated },
        /// A session was ended by a logout.
        Revoked = "session.revoked" { subject: UserId, data: SessionRef },
        /// A used refresh token came back: the session was ended.
        ReuseDetected = "session.reuse-detected" { subject: UserId, data: SessionRef },
        /// A session outlived its absolute lifetime and was ended.
        Expired = "session.expired" { subject: UserId, data: SessionRef },
    }
}

/// A new session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionCreated {
    /// The session's id.
    pub session: String,
    /// The sign-in provider used.
    pub provider: String,
}

/// A session, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionRef {
    /// The session's id.
    pub session: String,
}

namespace! {
    /// `jwt-key.*`: the keys that sign access tokens (never their secret).
    pub enum JwtKeyEvent {
        /// A signing key was created.
        Created = "jwt-key.created" { subject: JwtKeyId, data: Empty },
    }
}

namespace! {
    /// `api-key.*`: API keys (the subject is their owner).
    pub enum ApiKeyEvent {
        /// An API key was created.
        Created = "api-key.created" { subject: UserId, data: ApiKeyCreated },
        /// An API key was revoked.
        Revoked = "api-key.revoked" { subject: UserId, data: ApiKeyRef },
    }
}

/// A new API key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreated {
    /// Its id.
    pub key: String,
    /// Its name.
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    /// The permissions it may use.
    pub scopes: Vec<String>,
}

/// An API key, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyRef {
    /// Its id.
    pub key: String,
}

namespace! {
    /// `totp.*`: a user's second factor (never its secret or codes).
    pub enum TotpEvent {
        /// An enrollment started.
        EnrollmentStarted = "totp.enrollment-started" { subject: UserId, data: Empty },
        /// TOTP was turned on, with fresh recovery codes.
        Enabled = "totp.enabled" { subject: UserId, data: RecoveryCodes },
        /// A recovery code was spent.
        RecoveryCodeUsed = "totp.recovery-code-used" { subject: UserId, data: RecoveryCodeUsed },
        /// Too many wrong codes: the second factor is locked for a while.
        Locked = "totp.locked" { subject: UserId, data: TotpLocked },
        /// The user turned TOTP off.
        Disabled = "totp.disabled" { subject: UserId, data: Empty },
        /// The recovery codes were replaced.
        RecoveryCodesRegenerated = "totp.recovery-codes-regenerated" { subject: UserId, data: RecoveryCodes },
        /// An administrator removed the user's TOTP.
        Reset = "totp.reset" { subject: UserId, data: Empty },
    }
}

/// How many recovery codes were issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    /// Their number.
    pub recovery_codes: u64,
}

/// A spent recovery code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodeUsed {
    /// Unused codes left.
    pub remaining: u64,
}

/// A lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TotpLocked {
    /// Wrong codes in a row that caused it.
    pub failed_attempts: u64,
    /// How long it lasts.
    pub locked_for_seconds: u64,
}
