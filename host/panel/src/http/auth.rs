//! Authentication: the extension point the identity work plugs into.
//!
//! Handlers that need a caller take the [`Authenticated`] extractor. It asks
//! the Panel's [`Authenticator`] who made the request; the resulting
//! [`Principal`] carries the user id and the caller's permission strings
//! (`resource.action`, such as `audit.read`), and [`Principal::require`]
//! turns a missing permission into `403 forbidden`.
//!
//! **No authenticator ships yet.** The Panel is built with [`DenyAll`],
//! which answers every protected route with `401 unauthenticated`: the
//! audit log and settings routes are registered and documented, but nobody
//! can use them until identity (sessions, API keys, auth-provider plugins)
//! supplies a real [`Authenticator`] through
//! [`PanelBuilder::authenticator`](crate::PanelBuilder::authenticator).
//! Tests install their own.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use futures::future::BoxFuture;

use super::AppState;
use super::error::ApiError;
use super::request_id::RequestId;
use crate::db::Actor;

/// The permission strings the foundation's routes check.
pub mod permissions {
    /// Read the audit log.
    pub const AUDIT_READ: &str = "audit.read";
    /// Read settings.
    pub const SETTINGS_READ: &str = "settings.read";
    /// Create, change and delete settings.
    pub const SETTINGS_WRITE: &str = "settings.write";
}

/// Decides who made a request.
///
/// Implementations read what they need from the request head (an
/// `Authorization` header, a cookie, the client address in the
/// [`ConnectInfo`] extension) and return the caller, or an [`ApiError`]:
/// normally [`ApiError::Unauthenticated`], or
/// [`ApiError::Unavailable`] when a backing store is down.
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates the request whose head is `parts`.
    fn authenticate<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<Principal, ApiError>>;
}

/// The default [`Authenticator`]: refuses everyone, because no identity
/// provider is installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyAll;

impl Authenticator for DenyAll {
    fn authenticate<'a>(&'a self, _parts: &'a Parts) -> BoxFuture<'a, Result<Principal, ApiError>> {
        Box::pin(async {
            Err(ApiError::Unauthenticated(
                "no authentication provider is configured on this Panel".into(),
            ))
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    user_id: String,
    permissions: BTreeSet<String>,
}

impl Principal {
    /// A caller with `user_id` and no permissions.
    pub fn new(user_id: impl Into<String>) -> Principal {
        Principal {
            user_id: user_id.into(),
            permissions: BTreeSet::new(),
        }
    }

    /// Adds permissions.
    pub fn with_permissions<I, P>(mut self, permissions: I) -> Principal
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.permissions
            .extend(permissions.into_iter().map(Into::into));
        self
    }

    /// The user's id.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// True if and only if the caller holds `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// `Ok` if the caller holds `permission`.
    ///
    /// # Errors
    ///
    /// [`ApiError::Forbidden`] naming the permission.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.has_permission(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                permission: permission.to_owned(),
            })
        }
    }
}

/// The extractor for protected handlers: the caller, and the [`Actor`] to
/// record in the events the request causes (user, client address, request
/// id).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who is calling.
    pub principal: Principal,
    /// The caller as the event store records it.
    pub actor: Actor,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let authenticator: Arc<dyn Authenticator> = state.authenticator();
        let principal = authenticator.authenticate(parts).await?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.as_str().to_owned());
        let actor = Actor {
            user_id: Some(principal.user_id().to_owned()),
            ip: client_ip(parts),
            request_id,
        };
        Ok(Authenticated { principal, actor })
    }
}

/// The client's address as the TCP connection shows it.
///
/// Behind a reverse proxy this is the proxy's address; honouring
/// `X-Forwarded-For` needs a configured list of trusted proxies, which does
/// not exist yet.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}
