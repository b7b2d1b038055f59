//! Domain events: everything the Panel records, as types.
//!
//! Every change the Panel makes is recorded as one [`DomainEvent`]: a
//! sub-enum per namespace ([`SettingEvent`] for `setting.*`,
//! [`ServerEvent`] for `server.*`, …), one variant per kind, each variant
//! holding what the event is about (`subject`) and what happened (`data`).
//! Writers build these values and nothing else; replay
//! ([`crate::db::replay`]) and the audit log match on them; the OpenAPI
//! document describes them from the same types.
//!
//! # The stored form is the contract
//!
//! A row of the `events` table holds a kind, a subject (type and id, or
//! none) and a JSON `data` object. The types here are serialised with
//! serde so that their JSON *is* that row:
//!
//! ```json
//! { "kind": "node.online",
//!   "subject": { "type": "node", "id": "node_1f…" },
//!   "data": { "at": 1764000000000000 } }
//! ```
//!
//! - `kind` is the stable tag (`#[serde(tag = "kind")]` on every
//!   namespace, the kind string as the variant's name). A kind is never
//!   renamed and never reused for another shape.
//! - `subject` is a typed id ([`NodeId`], [`ServerId`], …) that
//!   (de)serialises as `{"type", "id"}` and refuses an id of another type.
//! - `data` is a struct per shape, whose field names are the stored keys.
//!   A field is never renamed or retyped; a new field is added with a
//!   default (`#[serde(default)]`), so that every event already stored
//!   keeps decoding. `tests/fixtures/events-v1.json` holds one stored event
//!   of every kind written before the types existed, and the tests decode
//!   and re-encode each of them to exactly the stored JSON.
//!
//! [`DomainEvent::to_stored`] and [`DomainEvent::from_stored`] convert
//! between a value and the three stored parts; the event store
//! ([`crate::db::events`]) is the only caller.
//!
//! # The audit log
//!
//! `GET /api/v1/audit-log` shows each event as
//! `{id, occurred_at, actor, kind, subject, data}`: `kind`, `subject` and
//! `data` are this module's JSON, after [`DomainEvent::redact`] replaced
//! what the audit log must not show (the values of a game's hidden
//! variables, see [`ServerCreated`]). An event this build cannot decode (a
//! kind it does not know) is listed with its kind and subject and `data:
//! null`. The document's `AuditEvent` schema is generated from these
//! types.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::Subject;

mod backup;
mod database;
mod identity;
mod node;
mod plugin;
mod server;
mod setting;

pub use backup::{
    BackupCompleted, BackupDeleted, BackupEvent, BackupFailed, BackupLimitSet, BackupLock,
    BackupStarted, BackupStorageConfigured, BackupStorageEvent, RestoreFinished, RestoreStarted,
};
pub use database::{
    DatabaseCreated, DatabaseDeleted, DatabaseEvent, DatabaseHostCreated, DatabaseHostEvent,
    DatabaseHostUpdated, DatabaseLimitSet, DatabaseRef,
};
pub use identity::{
    ApiKeyCreated, ApiKeyEvent, ApiKeyRef, IdentityEvent, IdentityLinked, JwtKeyEvent, LinkIssued,
    PasswordChanged, PasswordSet, RecoveryCodeUsed, RecoveryCodes, RoleAssigned, RoleCreated,
    RoleDeleted, RoleEvent, RoleUpdated, SessionCreated, SessionEvent, SessionRef, SshKeyAdded,
    SshKeyRef, TotpEvent, TotpLocked, UserCreated, UserDeleted, UserDisabled, UserEvent, UserRoles,
    UserUpdated,
};
pub use node::{
    AllocationPort, AllocationsAdded, NodeCapabilities, NodeCreated, NodeEvent, NodeRegistered,
    NodeUpdated, RegistrationTokenIssued,
};
pub use plugin::{
    PluginConfigUpdated, PluginDeactivated, PluginEvent, PluginGranted, PluginInstalled,
    PluginQuarantined, PluginSecretSet, PluginUninstalled, PluginUpdated, PluginVersion,
};
pub use server::{
    AllocationLimit, AllocationNotes, CommandQueued, CommandSettled, GameVersion, IpPort, REDACTED,
    Resources, ServerAllocation, ServerCreated, ServerDeleted, ServerEvent, ServerSuspended,
    ServerTransferred, ServerUnsuspended, ServerUpdated, StateChanged, SubuserEvent,
    SubuserPermissions, SubuserRemoved, TransferFailed, TransferStarted,
};
pub use setting::{
    MailConfigured, MailEvent, SecretsEvent, SecretsSealed, SettingEvent, SettingValueData,
};

/// Declares one namespace's sub-enum, one variant a line:
/// `Variant = "kind" { subject: SubjectType, data: DataType }`. The kind is
/// the variant's stable serde tag; the macro adds `KINDS` and `kind()`, so
/// the kind string is written once.
///
/// (The kind is taken as a `tt`, not a `literal`: a `literal` fragment
/// reaches derive macros wrapped in an invisible group, which utoipa does
/// not read, and the OpenAPI document would name the variant instead.)
macro_rules! namespace {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $kind:tt { subject: $subject:ty, data: $data:ty $(,)? }
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(tag = "kind")]
        pub enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $kind)]
                $variant {
                    /// What it is about.
                    subject: $subject,
                    /// What happened.
                    data: $data,
                },
            )+
        }

        impl $name {
            /// Every kind of this namespace, in declaration order.
            pub const KINDS: &'static [&'static str] = &[$($kind),+];

            /// The kind: the stable tag the event is stored under.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => $kind,)+
                }
            }
        }
    };
}
pub(crate) use namespace;

/// Declares typed subject ids: `{"type": <type>, "id": <id>}` in JSON,
/// refusing any other type.
macro_rules! subject_ids {
    ($($(#[$meta:meta])* $name:ident = $kind:literal;)+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(pub String);

        impl $name {
            /// The subject type stored with the id.
            pub const TYPE: &'static str = $kind;

            /// The subject with `id`.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                SubjectJson { subject_type: $kind, id: &self.0 }.serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let subject = OwnedSubjectJson::deserialize(deserializer)?;
                if subject.subject_type == $kind {
                    Ok($name(subject.id))
                } else {
                    Err(D::Error::custom(format!(
                        "the subject must be a {}, not a {}",
                        $kind, subject.subject_type
                    )))
                }
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                subject_schema($kind)
            }
        }

        impl ToSchema for $name {}
    )+};
}

subject_ids! {
    /// A setting, by name (subject type `setting`).
    SettingName = "setting";
    /// A user (subject type `user`).
    UserId = "user";
    /// A role (subject type `role`).
    RoleId = "role";
    /// A JWT signing key, by key id (subject type `jwt-key`).
    JwtKeyId = "jwt-key";
    /// A node (subject type `node`).
    NodeId = "node";
    /// A game server (subject type `server`).
    ServerId = "server";
    /// A plugin (subject type `plugin`).
    PluginId = "plugin";
    /// A database host (subject type `database-host`).
    DatabaseHostId = "database-host";
}

#[derive(Serialize)]
struct SubjectJson<'a> {
    #[serde(rename = "type")]
    subject_type: &'a str,
    id: &'a str,
}

#[derive(Deserialize)]
struct OwnedSubjectJson {
    #[serde(rename = "type")]
    subject_type: String,
    id: String,
}

fn subject_schema(kind: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .description(Some(format!("What the event is about: a `{kind}`.")))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([kind])),
        )
        .required("type")
        .property("id", ObjectBuilder::new().schema_type(Type::String))
        .required("id")
        .into()
}

/// Always `null`: the subject of an event about nothing in particular, or
/// a field kept only so that the stored JSON stays as it was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Null;

impl Serialize for Null {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_none()
    }
}

impl<'de> Deserialize<'de> for Null {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<serde::de::IgnoredAny>::deserialize(deserializer)?
            .map_or(Ok(Null), |_| Err(D::Error::custom("must be null")))
    }
}

impl utoipa::PartialSchema for Null {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}

impl ToSchema for Null {}

/// The data of an event that has none: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Empty {}

/// A moment, as the events store it: microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct At {
    /// Microseconds since the Unix epoch (UTC).
    pub at: i64,
}

/// Everything the Panel records: one sub-enum per namespace (the part of
/// the kind before the first `.`). See the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DomainEvent {
    /// `setting.*`.
    Setting(SettingEvent),
    /// `secrets.*`.
    Secrets(SecretsEvent),
    /// `mail.*`.
    Mail(MailEvent),
    /// `user.*`.
    User(UserEvent),
    /// `identity.*`.
    Identity(IdentityEvent),
    /// `role.*`.
    Role(RoleEvent),
    /// `session.*`.
    Session(SessionEvent),
    /// `jwt-key.*`.
    JwtKey(JwtKeyEvent),
    /// `api-key.*`.
    ApiKey(ApiKeyEvent),
    /// `totp.*`.
    Totp(TotpEvent),
    /// `node.*`.
    Node(NodeEvent),
    /// `server.*`.
    Server(ServerEvent),
    /// `subuser.*`.
    Subuser(SubuserEvent),
    /// `plugin.*`.
    Plugin(PluginEvent),
    /// `backup.*`.
    Backup(BackupEvent),
    /// `backup-storage.*`.
    BackupStorage(BackupStorageEvent),
    /// `database-host.*`.
    DatabaseHost(DatabaseHostEvent),
    /// `database.*`.
    Database(DatabaseEvent),
}

/// Runs `$body` with `$event` bound to the sub-enum value, whatever the
/// namespace.
macro_rules! each_namespace {
    ($value:expr, |$event:ident| $body:expr) => {
        match $value {
            DomainEvent::Setting($event) => $body,
            DomainEvent::Secrets($event) => $body,
            DomainEvent::Mail($event) => $body,
            DomainEvent::User($event) => $body,
            DomainEvent::Identity($event) => $body,
            DomainEvent::Role($event) => $body,
            DomainEvent::Session($event) => $body,
            DomainEvent::JwtKey($event) => $body,
            DomainEvent::ApiKey($event) => $body,
            DomainEvent::Totp($event) => $body,
            DomainEvent::Node($event) => $body,
            DomainEvent::Server($event) => $body,
            DomainEvent::Subuser($event) => $body,
            DomainEvent::Plugin($event) => $body,
            DomainEvent::Backup($event) => $body,
            DomainEvent::BackupStorage($event) => $body,
            DomainEvent::DatabaseHost($event) => $body,
            DomainEvent::Database($event) => $body,
        }
    };
}

macro_rules! from_namespaces {
    ($($variant:ident($name:ty)),+ $(,)?) => {$(
        impl From<$name> for DomainEvent {
            fn from(event: $name) -> Self {
                DomainEvent::$variant(event)
            }
        }
    )+};
}

from_namespaces!(
    Setting(SettingEvent),
    Secrets(SecretsEvent),
    Mail(MailEvent),
    User(UserEvent),
    Identity(IdentityEvent),
    Role(RoleEvent),
    Session(SessionEvent),
    JwtKey(JwtKeyEvent),
    ApiKey(ApiKeyEvent),
    Totp(TotpEvent),
    Node(NodeEvent),
    Server(ServerEvent),
    Subuser(SubuserEvent),
    Plugin(PluginEvent),
    Backup(BackupEvent),
    BackupStorage(BackupStorageEvent),
    DatabaseHost(DatabaseHostEvent),
    Database(DatabaseEvent),
);

/// An event in the three parts the `events` table stores.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The kind, e.g. `server.created`.
    pub kind: &'static str,
    /// What it is about, if anything.
    pub subject: Option<Subject>,
    /// What happened: a JSON object.
    pub data: Value,
}

/// Why a stored event is not a [`DomainEvent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No namespace of this build has the kind: a newer Panel wrote it, or
    /// it was never written by a Panel.
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    /// The kind is known but the subject or data do not have its shape;
    /// `reason` names the field.
    #[error("{kind}: {reason}")]
    Invalid {
        /// The kind.
        kind: String,
        /// What is wrong, naming the field.
        reason: String,
    },
}

impl DomainEvent {
    /// The kind: the stable tag the event is stored under.
    pub fn kind(&self) -> &'static str {
        each_namespace!(self, |event| event.kind())
    }

    /// Every kind this build knows, by namespace.
    pub fn kinds() -> impl Iterator<Item = &'static str> {
        [
            SettingEvent::KINDS,
            SecretsEvent::KINDS,
            MailEvent::KINDS,
            UserEvent::KINDS,
            IdentityEvent::KINDS,
            RoleEvent::KINDS,
            SessionEvent::KINDS,
            JwtKeyEvent::KINDS,
            ApiKeyEvent::KINDS,
            TotpEvent::KINDS,
            NodeEvent::KINDS,
            ServerEvent::KINDS,
            SubuserEvent::KINDS,
            PluginEvent::KINDS,
            BackupEvent::KINDS,
            BackupStorageEvent::KINDS,
            DatabaseHostEvent::KINDS,
            DatabaseEvent::KINDS,
        ]
        .into_iter()
        .flatten()
        .copied()
    }

    /// The three parts the `events` table stores.
    ///
    /// # Errors
    ///
    /// A value that does not serialise to the stored form (none of this
    /// module's types can fail; the error is kept for honesty).
    pub fn to_stored(&self) -> Result<Stored, serde_json::Error> {
        let Value::Object(mut envelope) = serde_json::to_value(self)? else {
            return Err(serde_json::Error::custom("an event is a JSON object"));
        };
        let subject = match envelope.remove("subject") {
            None | Some(Value::Null) => None,
            Some(subject) => {
                let subject = OwnedSubjectJson::deserialize(subject)?;
                Some(Subject::new(subject.subject_type, subject.id))
            }
        };
        let data = envelope
            .remove("data")
            .unwrap_or_else(|| Value::Object(Map::new()));
        Ok(Stored {
            kind: self.kind(),
            subject,
            data,
        })
    }

    /// The event stored as `kind`, `subject` and `data`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnknownKind`] for a kind no namespace has,
    /// [`DecodeError::Invalid`] naming the field that does not fit.
    pub fn from_stored(
        kind: &str,
        subject: Option<&Subject>,
        data: Value,
    ) -> Result<DomainEvent, DecodeError> {
        let subject = match subject {
            Some(s) => serde_json::json!({ "type": s.kind, "id": s.id }),
            None => Value::Null,
        };
        let mut envelope = Map::new();
        envelope.insert("kind".into(), Value::String(kind.to_owned()));
        envelope.insert("subject".into(), subject);
        envelope.insert("data".into(), data);
        Self::from_envelope(kind, Value::Object(envelope))
    }

    fn from_envelope(kind: &str, envelope: Value) -> Result<DomainEvent, DecodeError> {
        fn decode<T: serde::de::DeserializeOwned>(
            kind: &str,
            envelope: Value,
        ) -> Result<T, DecodeError> {
            serde_json::from_value(envelope).map_err(|e| DecodeError::Invalid {
                kind: kind.to_owned(),
                reason: e.to_string(),
            })
        }
        let known = |kinds: &[&str]| kinds.contains(&kind);
        if known(SettingEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Setting)
        } else if known(SecretsEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Secrets)
        } else if known(MailEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Mail)
        } else if known(UserEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::User)
        } else if known(IdentityEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Identity)
        } else if known(RoleEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Role)
        } else if known(SessionEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Session)
        } else if known(JwtKeyEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::JwtKey)
        } else if known(ApiKeyEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::ApiKey)
        } else if known(TotpEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Totp)
        } else if known(NodeEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Node)
        } else if known(ServerEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Server)
        } else if known(SubuserEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Subuser)
        } else if known(PluginEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Plugin)
        } else if known(BackupEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Backup)
        } else if known(BackupStorageEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::BackupStorage)
        } else if known(DatabaseHostEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::DatabaseHost)
        } else if known(DatabaseEvent::KINDS) {
            decode(kind, envelope).map(DomainEvent::Database)
        } else {
            Err(DecodeError::UnknownKind(kind.to_owned()))
        }
    }

    /// Replaces what the audit log must not show (the values of a game's
    /// hidden variables) with [`REDACTED`]. The stored event keeps them:
    /// replay needs them.
    pub fn redact(&mut self) {
        if let DomainEvent::Server(event) = self {
            event.redact();
        }
    }
}

/// Reads the envelope `{"kind", "subject", "data"}` that
/// [`Serialize`] writes.
impl<'de> Deserialize<'de> for DomainEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let envelope = Value::deserialize(deserializer)?;
        let kind = envelope
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| D::Error::missing_field("kind"))?
            .to_owned();
        Self::from_envelope(&kind, envelope).map_err(D::Error::custom)
    }
}

/// `Option<Option<T>>` for a field that is absent when unchanged and may
/// be `null`: `None` is absent (skip it when serialising), `Some(None)` is
/// `null`.
pub(crate) mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the inner option (`null` for `Some(None)`).
    pub(crate) fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a present field, `null` included, as `Some`.
    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests;
