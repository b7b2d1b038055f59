//! Deciding an Agent's SFTP sign-in ([`cap_protocol::sftp`]).
//!
//! An Agent asks with the username (`<panel username>.<server>`), the
//! password or the public key, and the client's address; [`decide`]
//! answers allow, with the server's full id, the user's id, the file
//! manager's [`FileScope`](cap_protocol::files::FileScope) and the file
//! permissions the session holds, or deny with a reason. In order:
//!
//! 1. The username parses ([`SftpUsername`]) and the rate limits allow
//!    the attempt: the Panel's login limits, per client address for every
//!    attempt and per account for passwords (keys cannot be guessed).
//! 2. The user exists, is not disabled and need not change their password
//!    first.
//! 3. The server part names exactly one server on the asking node (a node
//!    never learns of another node's servers).
//! 4. The credential: a password goes to the auth-provider plugin that owns
//!    the user's password identity, as a password change does (the core
//!    checks no password); a user with TOTP on may only sign in with a key,
//!    since SFTP has no place for a second factor. A public key must be one
//!    the user stored ([`crate::identity::ssh_keys`]), compared by its
//!    SHA-256 fingerprint.
//! 5. The user holds `file.sftp` on the server, worked out as every file
//!    route does ([`crate::servers::access`]: owner, administrator, or
//!    subuser grant, with the user's own permissions as they are now).
//! 6. The scope is the file manager's ([`super::scope`]): no scope (the
//!    game-type plugin cannot say what the denylist is), no sign-in.
//!
//! Every refusal is the same to the client (the Agent says only that the
//! sign-in failed); the reason goes to the Agent's and the Panel's logs.

use cap_protocol::sftp::{
    SftpAuthRequest, SftpCredential, SftpDecision, SftpPermissions, SftpUsername,
};
use cap_runtime::api::{Credentials, PasswordCredentials};

use crate::db::Database;
use crate::identity::permissions::{Gate, Permission};
use crate::identity::principal::Principal;
use crate::identity::{IdentityService, passwords, ssh_keys, totp, users};
use crate::plugins::PluginManager;
use crate::servers::{access, server};

/// Decides `request`, which the Agent of node `node_id` sent. Never fails:
/// a database or plugin failure is a refusal.
pub async fn decide(
    db: &Database,
    identity: Option<&IdentityService>,
    plugins: Option<&PluginManager>,
    node_id: &str,
    request: &SftpAuthRequest,
) -> SftpDecision {
    let decision = match check(db, identity, plugins, node_id, request).await {
        Ok(allow) => allow,
        Err(reason) => SftpDecision::Deny { reason },
    };
    match &decision {
        SftpDecision::Allow { server_id, .. } => {
            tracing::info!(node = node_id, username = %request.username, server = %server_id, method = request.credential.method(), "SFTP sign-in allowed");
        }
        SftpDecision::Deny { reason } => {
            tracing::info!(node = node_id, username = %request.username, method = request.credential.method(), client = ?request.client_addr, %reason, "SFTP sign-in refused");
        }
    }
    decision
}

async fn check(
    db: &Database,
    identity: Option<&IdentityService>,
    plugins: Option<&PluginManager>,
    node_id: &str,
    request: &SftpAuthRequest,
) -> Result<SftpDecision, String> {
    let identity = identity.ok_or("sign-ins are not configured on this Panel")?;
    let name = SftpUsername::parse(&request.username).ok_or_else(|| {
        "the username is not `<panel username>.<last 8 hex digits of the server id>`".to_owned()
    })?;
    let limits = identity.options().rate_limits;
    let limited = |_| "too many sign-in attempts; try again later".to_owned();
    if let Some(addr) = &request.client_addr {
        identity
            .limiter()
            .check(&format!("sftp:ip:{addr}"), limits.login_per_ip)
            .map_err(limited)?;
    }
    if matches!(request.credential, SftpCredential::Password { .. }) {
        identity
            .limiter()
            .check(
                &format!("sftp:account:{}", name.user.to_lowercase()),
                limits.login_per_account,
            )
            .map_err(limited)?;
    }
    let db_error = |e: crate::db::DbError| format!("the database failed: {e}");
    let user = users::find_user_by_name(db, &name.user)
        .await
        .map_err(db_error)?
        .ok_or_else(|| format!("no user is called {:?}", name.user))?;
    if user.disabled {
        return Err("the user is disabled".into());
    }
    if user.must_change_password {
        return Err("the user must set a new password on the Panel first".into());
    }
    let matching: Vec<String> = server::states_on_node(db, node_id)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| name.names(id))
        .collect();
    let server_id = match matching.as_slice() {
        [one] => one.clone(),
        [] => return Err(format!("no server {:?} is on this node", name.server)),
        _ => {
            return Err(format!(
                "{:?} names more than one server on this node: sign in with the whole server id",
                name.server
            ));
        }
    };
    let server = server::get(db, &server_id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| format!("server {server_id} no longer exists"))?;
    match &request.credential {
        SftpCredential::Password { password } => {
            if totp::is_enabled(db, &user.id).await.map_err(db_error)? {
                return Err(
                    "the user has a second factor on: SFTP takes their SSH keys, not their password"
                        .into(),
                );
            }
            check_password(identity, &user, password).await?;
        }
        SftpCredential::PublicKey { public_key } => {
            let parsed = ssh_keys::parse(public_key).map_err(|e| e.to_string())?;
            ssh_keys::find(db, &user.id, &parsed.fingerprint)
                .await
                .map_err(db_error)?
                .ok_or_else(|| {
                    format!(
                        "the key {} is not on the user's account",
                        parsed.fingerprint
                    )
                })?;
        }
    }
    let held = users::permissions_of(db, &user).await.map_err(db_error)?;
    let principal = Principal::new(user.id.clone()).with_permissions(held);
    let access = access::resolve(db, &principal, &server)
        .await
        .map_err(db_error)?
        .ok_or("the user may not see this server")?;
    if access.require(Gate::FILE_SFTP).is_err() {
        return Err("the user lacks file.sftp on this server".into());
    }
    let scope = super::scope(plugins, &server)
        .await
        .map_err(|e| format!("the server's file scope is unknown: {e}"))?;
    Ok(SftpDecision::Allow {
        server_id: server.id,
        user_id: user.id,
        scope,
        permissions: SftpPermissions {
            read: access.has(Permission::FileRead),
            read_content: access.has(Permission::FileReadContent),
            create: access.has(Permission::FileCreate),
            update: access.has(Permission::FileUpdate),
            delete: access.has(Permission::FileDelete),
        },
    })
}

/// Checks `password` through the provider of `user`'s password identity,
/// one attempt per account at a time (as a login does).
async fn check_password(
    identity: &IdentityService,
    user: &users::User,
    password: &str,
) -> Result<(), String> {
    let (plugin, link) = passwords::password_identity(identity, &user.id)
        .await
        .map_err(|e| format!("the database failed: {e}"))?
        .ok_or("the user signs in without a password")?;
    let turn = identity
        .account_turn(&link.provider_id, &user.username)
        .await;
    let checked = plugin
        .authenticate(&Credentials::Password(PasswordCredentials {
            username: user.username.clone(),
            password: password.to_owned(),
            second_factor: None,
        }))
        .await;
    drop(turn);
    match checked {
        Ok(Ok(found)) if found.subject == link.subject => Ok(()),
        Ok(Ok(_)) => Err("the password belongs to another identity".into()),
        Ok(Err(error)) => Err(format!("the sign-in provider refused: {error}")),
        Err(error) => Err(format!("the sign-in provider failed: {error}")),
    }
}
