//! [`Principal`]: who is calling, as the domain sees it.
//!
//! A principal is a user id, the permission strings the caller holds
//! (built-in ones and those plugins declared, `resource.action`), the
//! [`ReadVersion`] taken before the caller was read, and the
//! [`Credential`] it authenticated with. Authenticators in the HTTP layer
//! ([`crate::http::Authenticator`]) make principals; the domain modules
//! ([`crate::servers::access`], for instance) take them. It lives here,
//! below the HTTP layer, so that those modules need not depend on it: a
//! missing permission is a [`Forbidden`], which the HTTP layer answers with
//! `403 forbidden`.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::db::ReadVersion;
use crate::identity::permissions::Gate;

/// The caller lacks a built-in permission: [`Principal::require`]'s
/// refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this needs the permission {permission}")]
pub struct Forbidden {
    /// The permission's name.
    pub permission: String,
}

/// What a caller authenticated with, kept so that a connection outliving
/// its request (the console WebSocket) can ask again whether it still
/// stands: see [`crate::http::auth::recheck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A login session's access token; the session's id.
    Session(String),
    /// An API key; the key's id.
    ApiKey(String),
}

/// An authenticated caller.
///
/// Cheap to clone: the permission set is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    user_id: String,
    permissions: Arc<BTreeSet<String>>,
    read_version: Option<ReadVersion>,
    credential: Option<Credential>,
    password_change_required: bool,
}

impl Principal {
    /// A caller with `user_id` and no permissions.
    pub fn new(user_id: impl Into<String>) -> Principal {
        Principal {
            user_id: user_id.into(),
            permissions: Arc::default(),
            read_version: None,
            credential: None,
            password_change_required: false,
        }
    }

    /// Marks a caller who must set a new password before anything else
    /// (see [`crate::identity::links`]).
    pub fn with_password_change_required(mut self, required: bool) -> Principal {
        self.password_change_required = required;
        self
    }

    /// True if and only if the caller must set a new password before
    /// anything else.
    pub fn password_change_required(&self) -> bool {
        self.password_change_required
    }

    /// Records the credential the caller authenticated with.
    pub fn with_credential(mut self, credential: Credential) -> Principal {
        self.credential = Some(credential);
        self
    }

    /// The credential the caller authenticated with; `None` from an
    /// authenticator that does not say (such as a test's).
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// Records the [`ReadVersion`] taken before this caller was read, so
    /// the request's handler can answer from caches valid at that version
    /// (the [`Authenticated`](crate::http::Authenticated) extractor does this).
    pub fn at_version(mut self, version: Option<ReadVersion>) -> Principal {
        self.read_version = version;
        self
    }

    /// The version taken before this caller was read; `None` where the
    /// backend has none or the authenticator did not take one.
    pub fn read_version(&self) -> Option<ReadVersion> {
        self.read_version
    }

    /// The caller's permission strings.
    pub fn permissions(&self) -> &Arc<BTreeSet<String>> {
        &self.permissions
    }

    /// Adds permissions.
    pub fn with_permissions<I, P>(mut self, permissions: I) -> Principal
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        Arc::make_mut(&mut self.permissions).extend(permissions.into_iter().map(Into::into));
        self
    }

    /// The user's id.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// True if and only if the caller holds `permission`, built-in or
    /// plugin-declared. Routes check built-in permissions with
    /// `Principal::passes` or `Principal::require` instead (see
    /// [`crate::identity::permissions`]).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// True if and only if the caller holds the permission `gate` checks.
    pub(crate) fn passes(&self, gate: Gate) -> bool {
        self.has_permission(gate.permission().as_str())
    }

    /// `Ok` if the caller holds the permission `gate` checks.
    ///
    /// # Errors
    ///
    /// [`Forbidden`] naming the permission (the HTTP layer answers it with
    /// `403 forbidden`).
    pub(crate) fn require(&self, gate: Gate) -> Result<(), Forbidden> {
        if self.passes(gate) {
            Ok(())
        } else {
            Err(Forbidden {
                permission: gate.permission().as_str().to_owned(),
            })
        }
    }
}
