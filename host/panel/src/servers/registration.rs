//! Agent registration: an admin issues a single-use registration token
//! for a node (`capreg_…`, shown once, stored as SHA-256, expiring); the
//! Agent sends it once to `POST /api/v1/agents/register` with what the
//! machine offers, and receives the node's long-lived token (`capnode_…`,
//! also stored only as SHA-256) that it authenticates the Agent link with
//! ([`authenticate_node`]).
//!
//! Registering again (a reinstalled Agent) needs a new registration token
//! and replaces the node token, so a leaked old node token stops working.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use super::nodes::{SupportedGame, check_resource};
use super::{FieldProblem, ServersError, digest, new_id, random_secret, to_i64};
use crate::db::domain::{
    GameVersion, NodeEvent, NodeId, NodeRegistered, RegistrationTokenIssued, Resources,
};
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};
use crate::error_code::Code;

/// The prefix of every registration token.
pub const REGISTRATION_TOKEN_PREFIX: &str = "capreg_";
/// The prefix of every node token.
pub const NODE_TOKEN_PREFIX: &str = "capnode_";
/// How long a registration token lives unless the admin says otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::hours(1);
/// The longest a registration token may live.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::days(7);
/// How often the Agent should send a heartbeat, seconds.
pub const HEARTBEAT_SECONDS: u32 = 15;
/// Most capabilities or supported games one registration may list.
pub const MAX_LIST_LEN: usize = 64;

/// Why a registration token was refused. Each has a stable problem code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// `401 registration-token-invalid`: no such token.
    #[error("the registration token is not valid")]
    Invalid,
    /// `409 registration-token-used`: the token was used already.
    #[error("the registration token has already been used; issue a new one")]
    Used,
    /// `401 registration-token-expired`: the token expired unused.
    #[error("the registration token has expired; issue a new one")]
    Expired,
}

impl RegistrationError {
    /// The stable problem code (its status is the code's).
    pub fn code(self) -> Code {
        match self {
            RegistrationError::Invalid => Code::RegistrationTokenInvalid,
            RegistrationError::Used => Code::RegistrationTokenUsed,
            RegistrationError::Expired => Code::RegistrationTokenExpired,
        }
    }
}

/// A registration token, as issued (the secret is shown this once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token's id (not secret).
    pub id: String,
    /// The node it registers.
    pub node_id: String,
    /// The secret, `capreg_` + 64 hex digits.
    pub token: String,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// Issues a registration token for node `node_id` living `lifetime`,
/// appending `node.registration-token.issued` by `actor` (without the
/// secret).
///
/// # Errors
///
/// [`ServersError::NotFound`], [`ServersError::Invalid`] for a lifetime
/// that is not positive or longer than [`MAX_TOKEN_LIFETIME`], database
/// errors.
pub async fn issue_token(
    db: &Database,
    node_id: &str,
    lifetime: Duration,
    actor: &Actor,
) -> Result<IssuedToken, ServersError> {
    if lifetime <= Duration::ZERO || lifetime > MAX_TOKEN_LIFETIME {
        return Err(ServersError::field(
            "expires_in_seconds",
            format!(
                "must be between 1 and {}",
                MAX_TOKEN_LIFETIME.whole_seconds()
            ),
        ));
    }
    let id = new_id("rtk");
    let token = random_secret(REGISTRATION_TOKEN_PREFIX);
    let hash = digest(&token);
    let at = now();
    let expires_at = at + lifetime;
    let event = NewEvent::new(NodeEvent::RegistrationTokenIssued {
        subject: NodeId::new(node_id),
        data: RegistrationTokenIssued {
            token_id: id.clone(),
            expires_at: to_micros(expires_at),
            token_hash: hash.clone(),
            at: to_micros(at),
        },
    })
    .actor(actor.clone());
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "SELECT COUNT(*) FROM nodes WHERE id = ");
        qb.push_bind(node_id);
        let exists: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
        if exists == 0 {
            return Err(ServersError::NotFound(format!("node {node_id}")));
        }
        let mut qb = query_builder(
            pool,
            "INSERT INTO node_registration_tokens (id, node_id, token_hash, created_at, expires_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(id.as_str())
            .push_bind(node_id)
            .push_bind(hash.as_str())
            .push_bind(to_micros(at))
            .push_bind(to_micros(expires_at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(IssuedToken {
        id,
        node_id: node_id.to_owned(),
        token,
        expires_at,
    })
}

/// What an Agent sends to register (camelCase on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRequest {
    /// The registration token (`capreg_…`).
    pub token: String,
    /// The Agent's own id, a UUID.
    pub agent_id: String,
    /// The Agent's version (semver).
    pub version: String,
    /// What the Agent can do, e.g. `native-process`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The games it can run.
    #[serde(default)]
    pub supported_games: Vec<SupportedGame>,
    /// What the machine offers to servers.
    pub resource_limits: ResourceLimits,
    /// Where the Panel can check the Agent's health (http or https URL).
    pub health_endpoint: String,
}

/// What a machine offers to servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLimits {
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Disk, MiB.
    pub disk_mb: u64,
    /// CPU, percent of one core.
    pub cpu_percent: u64,
}

/// A successful registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The node the Agent now is.
    pub node_id: String,
    /// Its token (`capnode_…`), shown this once.
    pub node_token: String,
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Checks a node's capabilities: at most [`MAX_LIST_LEN`] slugs.
pub(crate) fn check_capabilities(capabilities: &[String]) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if capabilities.len() > MAX_LIST_LEN {
        problems.push(FieldProblem::new(
            "capabilities",
            format!("at most {MAX_LIST_LEN} entries"),
        ));
    }
    for (i, capability) in capabilities.iter().enumerate() {
        if !is_slug(capability) {
            problems.push(FieldProblem::new(
                format!("capabilities[{i}]"),
                "must be 1 to 64 lowercase letters, digits, '-' or '_'",
            ));
        }
    }
    problems
}

/// Checks everything but the token; problems name camelCase paths.
fn validate(request: &RegistrationRequest) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if uuid::Uuid::parse_str(&request.agent_id).is_err() {
        problems.push(FieldProblem::new("agentId", "must be a UUID"));
    }
    if request.version.len() > 64 || semver::Version::parse(&request.version).is_err() {
        problems.push(FieldProblem::new("version", "must be a semantic version"));
    }
    problems.extend(check_capabilities(&request.capabilities));
    if request.supported_games.len() > MAX_LIST_LEN {
        problems.push(FieldProblem::new(
            "supportedGames",
            format!("at most {MAX_LIST_LEN} entries"),
        ));
    }
    for (i, game) in request.supported_games.iter().enumerate() {
        if !is_slug(&game.plugin) {
            problems.push(FieldProblem::new(
                format!("supportedGames[{i}].plugin"),
                "must be a plugin id",
            ));
        }
        if game.version.len() > 64 || semver::Version::parse(&game.version).is_err() {
            problems.push(FieldProblem::new(
                format!("supportedGames[{i}].version"),
                "must be a semantic version",
            ));
        }
    }
    let limits = request.resource_limits;
    check_resource(&mut problems, "resourceLimits.memoryMb", limits.memory_mb);
    check_resource(&mut problems, "resourceLimits.diskMb", limits.disk_mb);
    check_resource(
        &mut problems,
        "resourceLimits.cpuPercent",
        limits.cpu_percent,
    );
    let endpoint_ok = request.health_endpoint.len() <= 2048
        && url::Url::parse(&request.health_endpoint)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !endpoint_ok {
        problems.push(FieldProblem::new(
            "healthEndpoint",
            "must be an http or https URL",
        ));
    }
    problems
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    node_id: String,
    expires_at: i64,
    used_at: Option<i64>,
}

/// Registers an Agent: spends the registration token, records what the
/// Agent reported on its node, and issues the node token. Appends
/// `node.registered` by `actor`.
///
/// Field problems are reported before the token is looked at, so a
/// malformed request does not spend the token.
///
/// # Errors
///
/// [`ServersError::Invalid`] per field, [`ServersError::Registration`]
/// for a token that is unknown, used or expired, database errors.
pub async fn register(
    db: &Database,
    request: &RegistrationRequest,
    actor: &Actor,
) -> Result<Registration, ServersError> {
    let problems = validate(request);
    if !problems.is_empty() {
        return Err(ServersError::Invalid(problems));
    }
    let hash = digest(request.token.trim());
    let node_token = random_secret(NODE_TOKEN_PREFIX);
    let node_hash = digest(&node_token);
    let at = now();
    let capabilities = sqlx::types::Json(&request.capabilities);
    let games = sqlx::types::Json(&request.supported_games);
    let limits = request.resource_limits;
    let node_id = on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "SELECT id, node_id, expires_at, used_at FROM node_registration_tokens WHERE token_hash = ",
        );
        qb.push_bind(hash.as_str());
        let row: Option<TokenRow> = qb.build_query_as().fetch_optional(&mut *tx).await?;
        let Some(row) = row else {
            return Err(RegistrationError::Invalid.into());
        };
        if row.used_at.is_some() {
            return Err(RegistrationError::Used.into());
        }
        if from_micros(row.expires_at)? <= at {
            return Err(RegistrationError::Expired.into());
        }
        let mut qb = query_builder(pool, "UPDATE node_registration_tokens SET used_at = ");
        qb.push_bind(to_micros(at))
            .push(" WHERE id = ")
            .push_bind(row.id.as_str())
            .push(" AND used_at IS NULL");
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            // Another request spent it between our read and our write.
            return Err(RegistrationError::Used.into());
        }
        let mut qb = query_builder(pool, "UPDATE nodes SET token_hash = ");
        qb.push_bind(node_hash.as_str())
            .push(", agent_id = ")
            .push_bind(request.agent_id.as_str())
            .push(", agent_version = ")
            .push_bind(request.version.as_str())
            .push(", capabilities = ")
            .push_bind(capabilities)
            .push(", supported_games = ")
            .push_bind(games)
            .push(", memory_mb = ")
            .push_bind(to_i64(limits.memory_mb))
            .push(", disk_mb = ")
            .push_bind(to_i64(limits.disk_mb))
            .push(", cpu_percent = ")
            .push_bind(to_i64(limits.cpu_percent))
            .push(", health_endpoint = ")
            .push_bind(request.health_endpoint.as_str())
            .push(", registered_at = ")
            .push_bind(to_micros(at))
            .push(", updated_at = ")
            .push_bind(to_micros(at))
            .push(" WHERE id = ")
            .push_bind(row.node_id.as_str());
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(RegistrationError::Invalid.into());
        }
        let event = NewEvent::new(NodeEvent::Registered {
            subject: NodeId::new(&row.node_id),
            data: NodeRegistered {
                agent_id: request.agent_id.clone(),
                version: request.version.clone(),
                capabilities: request.capabilities.clone(),
                supported_games: request
                    .supported_games
                    .iter()
                    .map(|g| GameVersion {
                        plugin: g.plugin.clone(),
                        version: g.version.clone(),
                        game_type: None,
                    })
                    .collect(),
                resource_limits: Resources {
                    memory_mb: limits.memory_mb,
                    disk_mb: limits.disk_mb,
                    cpu_percent: limits.cpu_percent,
                },
                health_endpoint: request.health_endpoint.clone(),
                token_id: row.id.clone(),
                token_hash: node_hash.clone(),
                at: to_micros(at),
            },
        })
        .actor(actor.clone());
        tx.record(&event).await?;
        tx.commit().await?;
        row.node_id
    });
    Ok(Registration {
        node_id,
        node_token,
    })
}

/// The node a node token belongs to, or `None` for an unknown token or a
/// node whose Agent has not registered. For the Agent link.
///
/// # Errors
///
/// Database errors.
pub async fn authenticate_node(db: &Database, token: &str) -> Result<Option<String>, DbError> {
    if !token.starts_with(NODE_TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = digest(token);
    let id: Option<String> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT id FROM nodes WHERE token_hash = ");
        qb.push_bind(hash.as_str())
            .push(" AND registered_at IS NOT NULL");
        qb.build_query_scalar().fetch_optional(pool).await?
    });
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RegistrationRequest {
        RegistrationRequest {
            token: "capreg_x".into(),
            agent_id: "6f1c2f0e-5b7a-4b8e-9d7c-1f2e3d4c5b6a".into(),
            version: "0.1.0".into(),
            capabilities: vec!["native-process".into()],
            supported_games: vec![SupportedGame {
                plugin: "minecraft-paper".into(),
                version: "1.0.0".into(),
            }],
            resource_limits: ResourceLimits {
                memory_mb: 8192,
                disk_mb: 100_000,
                cpu_percent: 400,
            },
            health_endpoint: "http://127.0.0.1:8081/health".into(),
        }
    }

    #[test]
    fn accepts_the_documented_request() {
        assert_eq!(validate(&request()), []);
    }

    #[test]
    fn names_every_bad_field_in_camel_case() {
        let mut bad = request();
        bad.agent_id = "agent-1".into();
        bad.version = "one".into();
        bad.capabilities = vec!["Native Process".into()];
        bad.supported_games[0].version = "latest".into();
        bad.health_endpoint = "ftp://x/health".into();
        let fields: Vec<String> = validate(&bad).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "agentId",
                "version",
                "capabilities[0]",
                "supportedGames[0].version",
                "healthEndpoint"
            ]
        );
    }
}
