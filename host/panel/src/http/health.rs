//! `GET /api/v1/health`: is the Panel up, and can it reach its database?

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ErrorChain;

/// How long the health check waits for the database.
pub const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Everything the Panel needs answers.
    Ok,
    /// A dependency does not answer; the Panel cannot serve requests.
    Unavailable,
}

/// The health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` (then the status code is 503).
    pub status: HealthStatus,
    /// The Panel's version.
    pub version: String,
    /// The database check.
    pub database: DatabaseHealth,
}

/// The database part of the health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseHealth {
    /// `sqlite`, `postgres` or `mysql`.
    pub backend: String,
    /// Whether a `SELECT 1` succeeded within two seconds.
    pub reachable: bool,
    /// How long the check took, in milliseconds.
    pub latency_ms: f64,
}

/// Reports the Panel's version and whether its database answers a query.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    responses(
        (status = 200, description = "The Panel and its database are up", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    )
)]
pub(super) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let db = state.db();
    let start = Instant::now();
    let reachable = match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, db.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(error = %ErrorChain(&error), "health check: database query failed");
            false
        }
        Err(_) => {
            tracing::warn!("health check: database did not answer in time");
            false
        }
    };
    let health = Health {
        status: if reachable {
            HealthStatus::Ok
        } else {
            HealthStatus::Unavailable
        },
        version: env!("CARGO_PKG_VERSION").to_owned(),
        database: DatabaseHealth {
            backend: db.backend().to_string(),
            reachable,
            latency_ms: start.elapsed().as_secs_f64() * 1000.0,
        },
    };
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}
