//! `/api/v1/plugins/{id}/timers` and `/timer-runs`: a plugin's armed
//! timers and the record of their firings ([`crate::timers`]), for
//! administrators (`admin.plugins`).
//!
//! A firing is `ok` when the plugin took the tick and answered without an
//! error, `failed` with the reason otherwise: the plugin's own error (the
//! scheduler names the task that failed), a trap or timeout, or why the
//! plugin could not take it at all (quarantined, inactive, not installed,
//! not granted `timers`); such a firing waits for the plugin and is
//! delivered late, recorded again then. The plugin does not have to be
//! installed for its timers and runs to be read: they outlive an
//! uninstall.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult};
use super::pagination::{Cursor, PageParams, Pagination};
use crate::identity::permissions::{Gate, Permission};
use crate::timers::{ArmedTimer, TimerRun, Timers};

/// Most timers one listing shows.
pub const MAX_LISTED: u32 = 1000;

/// An armed timer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimerBody {
    /// The plugin's key for it.
    pub key: String,
    /// When it is due (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    /// Until when a Panel holds it: delivering it, or re-examining a
    /// firing the plugin could not take (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub leased_until: Option<OffsetDateTime>,
    /// When its firing was recorded failed because the plugin could not
    /// take it; it is delivered, late, once the plugin can (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub missed_at: Option<OffsetDateTime>,
}

impl From<ArmedTimer> for TimerBody {
    fn from(t: ArmedTimer) -> Self {
        TimerBody {
            key: t.key,
            due_at: t.due_at,
            leased_until: t.leased_until,
            missed_at: t.missed_at,
        }
    }
}

/// A plugin's armed timers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimerList {
    /// By key, at most 1000.
    pub items: Vec<TimerBody>,
}

/// One firing of a timer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimerRunBody {
    /// Its id.
    pub id: String,
    /// The timer's key.
    pub key: String,
    /// When the timer was due (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    /// When the delivery started (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// `ok` or `failed`.
    pub outcome: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// The Panel process that delivered or recorded it.
    pub panel_id: String,
}

impl From<TimerRun> for TimerRunBody {
    fn from(run: TimerRun) -> Self {
        TimerRunBody {
            outcome: run.outcome.as_str().to_owned(),
            id: run.id,
            key: run.key,
            due_at: run.due_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            reason: run.reason,
            panel_id: run.panel_id,
        }
    }
}

/// A page of runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimerRunPage {
    /// Newest first.
    pub items: Vec<TimerRunBody>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

fn timers(state: &AppState) -> ApiResult<&Timers> {
    state
        .plugins()
        .map(crate::plugins::PluginManager::timers)
        .ok_or_else(|| {
            ApiError::Unavailable("plugin management is not running on this Panel".into())
        })
}

/// A plugin's armed timers.
#[utoipa::path(
    get,
    path = "/plugins/{id}/timers",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id")),
    responses(
        (status = 200, description = "Its armed timers, by key", body = TimerList),
    )
)]
pub(super) async fn list_timers(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TimerList>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let items = timers(&state)?.armed(&id, MAX_LISTED).await?;
    Ok(Json(TimerList {
        items: items.into_iter().map(TimerBody::from).collect(),
    }))
}

/// The firings of a plugin's timers, newest first.
#[utoipa::path(
    get,
    path = "/plugins/{id}/timer-runs",
    tag = "plugins",
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AdminPlugins]))),
    params(("id" = String, Path, description = "The plugin's id"), PageParams),
    responses(
        (status = 200, description = "A page of runs", body = TimerRunPage),
    )
)]
pub(super) async fn list_runs(
    auth: Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    page: Pagination,
) -> ApiResult<Json<TimerRunPage>> {
    auth.principal.require(Gate::ADMIN_PLUGINS)?;
    let (items, more) = timers(&state)?
        .runs(&id, page.after_key(), page.limit)
        .await?;
    Ok(Json(TimerRunPage {
        next_cursor: more
            .then(|| items.last().map(|r| Cursor::after(&r.id).encode()))
            .flatten(),
        items: items.into_iter().map(TimerRunBody::from).collect(),
    }))
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_timers))
        .routes(routes!(list_runs))
}
