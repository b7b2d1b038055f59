//! `GET /api/v1/audit-log`: the event store, filtered and paginated,
//! newest first. Needs the `audit.read` permission.
//!
//! Each entry is `{id, occurred_at, actor, kind, subject, data}`, where
//! `kind`, `subject` and `data` are the event's [`DomainEvent`] as stored
//! (see [`crate::db::domain`] for the schema of every kind), redacted by
//! [`DomainEvent::redact`]. An event this build cannot decode (a kind it
//! does not know) is listed with its kind and subject and `data: null`.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, FieldError, FieldLocation};
use super::extract::ApiQuery;
use super::pagination::{Cursor, PageParams, Pagination};
use crate::db::events::{
    MAX_KIND_LEN, MAX_SUBJECT_ID_LEN, MAX_SUBJECT_TYPE_LEN, MAX_USER_ID_LEN, is_valid_name,
};
use crate::db::{DomainEvent, Event, EventFilter, EventId, EventQuery, Order};
use crate::identity::permissions::{Gate, Permission};

pub use crate::db::domain::REDACTED;

/// Audit-log filters; every one given must match.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogFilter {
    /// Only events of this kind, e.g. `setting.updated`.
    pub kind: Option<String>,
    /// Only events about subjects of this type, e.g. `server`.
    pub subject_type: Option<String>,
    /// Only events about the subject with this id (needs `subject_type`).
    pub subject_id: Option<String>,
    /// Only events caused by this user id.
    pub actor: Option<String>,
    /// Only events at or after this instant (RFC 3339, e.g. `2026-01-31T12:00:00Z`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Only events before this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

impl AuditLogFilter {
    fn validate(self) -> Result<EventFilter, ApiError> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: String| {
            errors.push(FieldError::new(FieldLocation::Query, field, message));
        };
        let name_rule = |max: usize| {
            format!(
                "must be 1 to {max} characters: a lowercase letter or digit, then lowercase letters, digits, '.', '_' or '-'"
            )
        };
        if let Some(kind) = &self.kind
            && !is_valid_name(kind, MAX_KIND_LEN)
        {
            bad("kind", name_rule(MAX_KIND_LEN));
        }
        if let Some(subject_type) = &self.subject_type
            && !is_valid_name(subject_type, MAX_SUBJECT_TYPE_LEN)
        {
            bad("subject_type", name_rule(MAX_SUBJECT_TYPE_LEN));
        }
        if let Some(subject_id) = &self.subject_id {
            if !(1..=MAX_SUBJECT_ID_LEN).contains(&subject_id.chars().count()) {
                bad(
                    "subject_id",
                    format!("must be 1 to {MAX_SUBJECT_ID_LEN} characters"),
                );
            }
            if self.subject_type.is_none() {
                bad("subject_id", "needs subject_type as well".to_owned());
            }
        }
        if let Some(actor) = &self.actor
            && !(1..=MAX_USER_ID_LEN).contains(&actor.chars().count())
        {
            bad(
                "actor",
                format!("must be 1 to {MAX_USER_ID_LEN} characters"),
            );
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since > until
        {
            bad("until", "must not be before since".to_owned());
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(EventFilter {
            kind: self.kind,
            subject_kind: self.subject_type,
            subject_id: self.subject_id,
            actor_user_id: self.actor,
            since: self.since,
            until: self.until,
        })
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditActor {
    /// The user's id; null for the Panel itself.
    pub user_id: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// The id of the request that caused the event.
    pub request_id: Option<String>,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditSubject {
    /// The kind of thing, e.g. `server`.
    #[serde(rename = "type")]
    pub subject_type: String,
    /// Its id.
    pub id: String,
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// The event's id; ids increase with insertion order.
    pub id: i64,
    /// When it happened (RFC 3339, UTC, microsecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Who caused it.
    pub actor: AuditActor,
    /// What happened: `kind`, `subject` and `data`.
    #[serde(flatten)]
    pub event: AuditRecord,
}

/// What an audit-log entry says happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AuditRecord {
    /// An event of a kind this build knows, redacted (boxed: the largest
    /// event is far larger than an undecodable one).
    Known(Box<DomainEvent>),
    /// An event this build cannot decode.
    Undecodable(UndecodableEvent),
}

/// An event this build cannot decode: its kind and subject, no data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UndecodableEvent {
    /// What happened, e.g. `setting.updated`.
    pub kind: String,
    /// What it is about, if anything.
    pub subject: Option<AuditSubject>,
    /// Always `null`.
    pub data: crate::db::domain::Null,
}

impl From<Event> for AuditEvent {
    fn from(event: Event) -> Self {
        let record = match event.decode() {
            Ok(mut decoded) => {
                decoded.redact();
                AuditRecord::Known(Box::new(decoded))
            }
            Err(error) => {
                tracing::warn!(event = event.id.0, %error, "an event the audit log cannot decode");
                AuditRecord::Undecodable(UndecodableEvent {
                    kind: event.kind,
                    subject: event.subject.map(|s| AuditSubject {
                        subject_type: s.kind,
                        id: s.id,
                    }),
                    data: crate::db::domain::Null,
                })
            }
        };
        AuditEvent {
            id: event.id.0,
            occurred_at: event.occurred_at,
            actor: AuditActor {
                user_id: event.actor.user_id,
                ip: event.actor.ip.map(|ip| ip.to_string()),
                request_id: event.actor.request_id,
            },
            event: record,
        }
    }
}

/// One page of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditLogPage {
    /// The entries, newest first.
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Lists audit-log entries, newest first, filtered and paginated.
#[utoipa::path(
    get,
    path = "/audit-log",
    tag = "audit",
    params(AuditLogFilter, PageParams),
    security(("bearer" = [])),
    extensions(("x-permissions" = json!([Permission::AuditRead]))),
    responses(
        (status = 200, description = "One page of entries", body = AuditLogPage),
        (status = 422, description = "A filter or pagination parameter is invalid"),
        (status = 503, description = "The database is unavailable"),
    )
)]
pub(super) async fn list(
    auth: Authenticated,
    State(state): State<AppState>,
    page: Pagination,
    ApiQuery(filter): ApiQuery<AuditLogFilter>,
) -> ApiResult<Json<AuditLogPage>> {
    let after = page.after_number()?;
    auth.principal.require(Gate::AUDIT_READ)?;
    let query = EventQuery {
        filter: filter.validate()?,
        order: Order::NewestFirst,
        after: after.map(EventId),
        limit: page.limit,
    };
    let result = state.db().events().query(&query).await?;
    Ok(Json(AuditLogPage {
        items: result.events.into_iter().map(AuditEvent::from).collect(),
        next_cursor: result.next.map(|id| Cursor::after(id.0).encode()),
    }))
}
