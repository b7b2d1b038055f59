//! The event store: an append-only log of what happened, who did it, when,
//! from which address and in which request.
//!
//! Every state-changing operation appends an [`Event`]; the audit-log API
//! reads them back with [`EventStore::query`], and projections of current
//! state will be rebuilt from them in id order. There is deliberately no
//! update or delete here, and the migrations install a trigger on every
//! backend that rejects `UPDATE` on the `events` table. (Deleting stays
//! possible at the SQL level for a future retention policy.)
//!
//! Ids are assigned by the database and increase with insertion order, so
//! they are the ordering and pagination key: pages are keyset-paginated by
//! id, never by offset, which stays fast and stable while events arrive.
//! On PostgreSQL and MySQL an id is allocated before commit, so a
//! transaction that commits late can make a lower id appear after a higher
//! one was read; readers that tail the log (rather than browse it) must
//! allow for that.
//!
//! What an event says is a [`DomainEvent`](super::DomainEvent): the store
//! writes its stored form (kind, subject, data) and hands it back as an
//! [`Event`], whose [`Event::decode`] reads it again. Writers that change
//! other tables record their event in the same transaction through a
//! `Recorder` (see [`crate::db`]), so a change is never
//! committed without its event.

use std::net::IpAddr;

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Encode, MySqlConnection, PgConnection, QueryBuilder, SqliteConnection, Type};
use time::OffsetDateTime;

use super::domain::{DecodeError, DomainEvent, Stored};
use super::{Database, DbError, from_micros, now, on_pool, query_builder, to_micros};

/// The largest page [`EventStore::query`] returns, whatever the caller
/// asks for.
pub const MAX_PAGE_SIZE: u32 = 200;
/// The page size when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Maximum lengths, in characters, matching the column sizes.
pub(crate) const MAX_KIND_LEN: usize = 128;
pub(crate) const MAX_SUBJECT_TYPE_LEN: usize = 64;
pub(crate) const MAX_SUBJECT_ID_LEN: usize = 128;
pub(crate) const MAX_USER_ID_LEN: usize = 64;
pub(crate) const MAX_REQUEST_ID_LEN: usize = 128;

/// An event's id: positive, assigned by the database, increasing with
/// insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub i64);

/// Who caused an event: the authenticated user (if any), the client's
/// address and the request's id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The user's id; `None` for the system itself or an anonymous caller.
    pub user_id: Option<String>,
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The id of the HTTP request that caused the event.
    pub request_id: Option<String>,
}

impl Actor {
    /// The Panel itself: no user, no address, no request.
    pub fn system() -> Actor {
        Actor::default()
    }
}

/// What an event is about, e.g. `("server", "42")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The kind of thing: `server`, `user`, `setting`… (lowercase, digits,
    /// `.`, `_`, `-`; at most 64 characters).
    pub kind: String,
    /// Its id, at most 128 characters.
    pub id: String,
}

impl Subject {
    /// A subject of `kind` with `id`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Subject {
        Subject {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

/// An event to append: what happened, who did it and when.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub event: DomainEvent,
    /// When; `None` means now.
    pub occurred_at: Option<OffsetDateTime>,
    /// Who.
    pub actor: Actor,
}

impl NewEvent {
    /// `event`, now, by the system.
    pub fn new(event: impl Into<DomainEvent>) -> NewEvent {
        NewEvent {
            event: event.into(),
            occurred_at: None,
            actor: Actor::system(),
        }
    }

    /// Sets who caused it.
    pub fn actor(mut self, actor: Actor) -> NewEvent {
        self.actor = actor;
        self
    }

    /// Sets when it happened.
    pub fn occurred_at(mut self, at: OffsetDateTime) -> NewEvent {
        self.occurred_at = Some(at);
        self
    }

    /// The stored form, checked against the column rules.
    fn stored(&self) -> Result<Stored, DbError> {
        let stored = self.event.to_stored().map_err(|e| DbError::Invalid {
            field: "data",
            reason: e.to_string(),
        })?;
        check_name("kind", stored.kind, MAX_KIND_LEN)?;
        if let Some(subject) = &stored.subject {
            check_name("subject.kind", &subject.kind, MAX_SUBJECT_TYPE_LEN)?;
            check_len("subject.id", &subject.id, MAX_SUBJECT_ID_LEN)?;
        }
        if let Some(user) = &self.actor.user_id {
            check_len("actor.user_id", user, MAX_USER_ID_LEN)?;
        }
        if let Some(request_id) = &self.actor.request_id {
            check_len("actor.request_id", request_id, MAX_REQUEST_ID_LEN)?;
        }
        Ok(stored)
    }
}

/// True if and only if `s` is a valid event kind or subject kind: 1 to
/// `max` characters, starting with a lowercase letter or digit, then
/// lowercase letters, digits, `.`, `_` or `-`.
pub fn is_valid_name(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.len() <= max
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), DbError> {
    if is_valid_name(value, max) {
        Ok(())
    } else {
        Err(DbError::Invalid {
            field,
            reason: format!(
                "{value:?} must be 1 to {max} characters: a lowercase letter or digit, then lowercase letters, digits, '.', '_' or '-'"
            ),
        })
    }
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), DbError> {
    let len = value.chars().count();
    if (1..=max).contains(&len) {
        Ok(())
    } else {
        Err(DbError::Invalid {
            field,
            reason: format!("must be 1 to {max} characters, is {len}"),
        })
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its id.
    pub id: EventId,
    /// When it happened (microsecond precision, UTC).
    pub occurred_at: OffsetDateTime,
    /// Who caused it.
    pub actor: Actor,
    /// What happened.
    pub kind: String,
    /// About what.
    pub subject: Option<Subject>,
    /// Details.
    pub data: Value,
}

impl Event {
    /// What the event says, typed.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for a kind this build does not know or data that
    /// does not have its kind's shape.
    pub fn decode(&self) -> Result<DomainEvent, DecodeError> {
        DomainEvent::from_stored(&self.kind, self.subject.as_ref(), self.data.clone())
    }
}

/// Which events a query selects; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Exactly this kind.
    pub kind: Option<String>,
    /// Subjects of this kind.
    pub subject_kind: Option<String>,
    /// Subjects with this id (usually together with `subject_kind`).
    pub subject_id: Option<String>,
    /// Caused by this user.
    pub actor_user_id: Option<String>,
    /// Occurred at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Occurred before this instant.
    pub until: Option<OffsetDateTime>,
}

/// The order of a page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Highest id first: the audit log's order.
    #[default]
    NewestFirst,
    /// Lowest id first: the replay order.
    OldestFirst,
}

/// A page request: filter, order, where to continue and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Which events.
    pub filter: EventFilter,
    /// In which order.
    pub order: Order,
    /// Continue after this id (in `order`); `None` starts at the beginning.
    /// Pass the previous page's [`EventPage::next`].
    pub after: Option<EventId>,
    /// At most this many events, capped at [`MAX_PAGE_SIZE`]; 0 counts as 1.
    pub limit: u32,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            filter: EventFilter::default(),
            order: Order::default(),
            after: None,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

/// One page of events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// The events, in the query's order.
    pub events: Vec<Event>,
    /// Where the next page starts, or `None` if this is the last one.
    pub next: Option<EventId>,
}

/// The event store of one [`Database`]; see [`Database::events`].
#[derive(Debug, Clone, Copy)]
pub struct EventStore<'a> {
    db: &'a Database,
}

impl<'a> EventStore<'a> {
    pub(crate) fn new(db: &'a Database) -> Self {
        EventStore { db }
    }

    /// Appends `event` on its own and returns it as stored. A change of
    /// other tables records its event in its own transaction instead
    /// (`Recorder::record`, see [`crate::db`]); this is for tools
    /// and tests.
    ///
    /// # Errors
    ///
    /// [`DbError::Invalid`] if a field breaks the rules documented on
    /// [`Subject`] and [`Actor`] (a subject id or request id too long);
    /// [`DbError::Unavailable`] and other database errors.
    pub async fn append(&self, event: &NewEvent) -> Result<Event, DbError> {
        on_pool!(self.db, |pool| pool
            .raw()
            .acquire()
            .await?
            .append_event(event)
            .await)
    }

    /// One page of events matching `query`.
    ///
    /// # Errors
    ///
    /// [`DbError::Unavailable`] and other database errors;
    /// [`DbError::Corrupt`] if a stored row cannot be decoded.
    pub async fn query(&self, query: &EventQuery) -> Result<EventPage, DbError> {
        let limit = query.limit.clamp(1, MAX_PAGE_SIZE);
        let rows: Vec<EventRow> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, "");
            push_select(&mut qb, query, limit);
            qb.build_query_as::<EventRow>().fetch_all(pool).await?
        });
        let mut events = rows
            .into_iter()
            .map(Event::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|e| e.id)
        } else {
            None
        };
        Ok(EventPage { events, next })
    }

    /// The event with `id`, if there is one.
    ///
    /// # Errors
    ///
    /// As for [`EventStore::query`].
    pub async fn get(&self, id: EventId) -> Result<Option<Event>, DbError> {
        let row: Option<EventRow> = on_pool!(self.db, |pool| {
            let mut qb = query_builder(pool, SELECT_EVENTS);
            qb.push(" WHERE id = ").push_bind(id.0);
            qb.build_query_as::<EventRow>().fetch_optional(pool).await?
        });
        row.map(Event::try_from).transpose()
    }
}

const SELECT_EVENTS: &str = "SELECT id, occurred_at, actor_user_id, actor_ip, request_id, kind, \
     subject_type, subject_id, data FROM events";

/// Writes the `SELECT` for `query` in `DB`'s dialect. One row more than
/// `limit` is fetched to learn whether another page follows.
fn push_select<'q, DB>(qb: &mut QueryBuilder<DB>, query: &'q EventQuery, limit: u32)
where
    DB: sqlx::Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let filter = &query.filter;
    qb.push(SELECT_EVENTS).push(" WHERE 1 = 1");
    if let Some(kind) = &filter.kind {
        qb.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(subject_kind) = &filter.subject_kind {
        qb.push(" AND subject_type = ")
            .push_bind(subject_kind.as_str());
    }
    if let Some(subject_id) = &filter.subject_id {
        qb.push(" AND subject_id = ").push_bind(subject_id.as_str());
    }
    if let Some(user) = &filter.actor_user_id {
        qb.push(" AND actor_user_id = ").push_bind(user.as_str());
    }
    if let Some(since) = filter.since {
        qb.push(" AND occurred_at >= ").push_bind(to_micros(since));
    }
    if let Some(until) = filter.until {
        qb.push(" AND occurred_at < ").push_bind(to_micros(until));
    }
    match (query.order, query.after) {
        (Order::NewestFirst, Some(after)) => {
            qb.push(" AND id < ").push_bind(after.0);
        }
        (Order::OldestFirst, Some(after)) => {
            qb.push(" AND id > ").push_bind(after.0);
        }
        (_, None) => {}
    }
    qb.push(match query.order {
        Order::NewestFirst => " ORDER BY id DESC",
        Order::OldestFirst => " ORDER BY id ASC",
    });
    qb.push(" LIMIT ").push_bind(i64::from(limit) + 1);
}

/// The values of one `events` row, borrowed for binding.
struct InsertRow<'a> {
    occurred_at: i64,
    actor_user_id: Option<&'a str>,
    actor_ip: Option<String>,
    request_id: Option<&'a str>,
    kind: &'a str,
    subject_type: Option<&'a str>,
    subject_id: Option<&'a str>,
    data: Json<&'a Value>,
}

impl<'a> InsertRow<'a> {
    fn new(event: &'a NewEvent, stored: &'a Stored, occurred_at: OffsetDateTime) -> Self {
        InsertRow {
            occurred_at: to_micros(occurred_at),
            actor_user_id: event.actor.user_id.as_deref(),
            actor_ip: event.actor.ip.map(|ip| ip.to_string()),
            request_id: event.actor.request_id.as_deref(),
            kind: stored.kind,
            subject_type: stored.subject.as_ref().map(|s| s.kind.as_str()),
            subject_id: stored.subject.as_ref().map(|s| s.id.as_str()),
            data: Json(&stored.data),
        }
    }

    /// Writes the `INSERT` in `DB`'s dialect, without a `RETURNING` clause.
    fn push_insert<DB>(&'a self, qb: &mut QueryBuilder<DB>)
    where
        DB: sqlx::Database,
        i64: Encode<'a, DB> + Type<DB>,
        &'a str: Encode<'a, DB> + Type<DB>,
        Option<&'a str>: Encode<'a, DB> + Type<DB>,
        Json<&'a Value>: Encode<'a, DB> + Type<DB>,
    {
        qb.push(
            "INSERT INTO events (occurred_at, actor_user_id, actor_ip, request_id, kind, \
             subject_type, subject_id, data) VALUES (",
        );
        let mut values = qb.separated(", ");
        values.push_bind(self.occurred_at);
        values.push_bind(self.actor_user_id);
        values.push_bind(self.actor_ip.as_deref());
        values.push_bind(self.request_id);
        values.push_bind(self.kind);
        values.push_bind(self.subject_type);
        values.push_bind(self.subject_id);
        values.push_bind(Json(self.data.0));
        values.push_unseparated(")");
    }
}

fn stored_event(event: &NewEvent, stored: Stored, id: i64, occurred_at: OffsetDateTime) -> Event {
    Event {
        id: EventId(id),
        occurred_at,
        actor: event.actor.clone(),
        kind: stored.kind.to_owned(),
        subject: stored.subject,
        data: stored.data,
    }
}

/// The moment to store: the event's own, truncated to microseconds, or now.
fn occurred_at(event: &NewEvent) -> Result<OffsetDateTime, DbError> {
    match event.occurred_at {
        None => Ok(now()),
        Some(at) => from_micros(to_micros(at)),
    }
}

/// Appending an event on a connection or inside a transaction (a
/// `Recorder` calls it), so writers can record their
/// change and its event atomically. One impl per backend: SQLite and PostgreSQL return the new
/// id with `RETURNING`; MySQL has no `INSERT … RETURNING`, so the id is the
/// connection's last insert id.
pub(crate) trait AppendEvent {
    /// Validates and appends `event`, returning it as stored.
    async fn append_event(&mut self, event: &NewEvent) -> Result<Event, DbError>;
}

/// SQLite and PostgreSQL share one body: both return the id with `RETURNING`.
macro_rules! append_returning_id {
    ($($conn:ty),+) => {$(
        impl AppendEvent for $conn {
            async fn append_event(&mut self, event: &NewEvent) -> Result<Event, DbError> {
                let stored = event.stored()?;
                let at = occurred_at(event)?;
                let row = InsertRow::new(event, &stored, at);
                let mut qb = QueryBuilder::new("");
                row.push_insert(&mut qb);
                qb.push(" RETURNING id");
                let id: i64 = qb.build_query_scalar().fetch_one(self).await?;
                Ok(stored_event(event, stored, id, at))
            }
        }
    )+};
}

append_returning_id!(SqliteConnection, PgConnection);

impl AppendEvent for MySqlConnection {
    async fn append_event(&mut self, event: &NewEvent) -> Result<Event, DbError> {
        let stored = event.stored()?;
        let at = occurred_at(event)?;
        let row = InsertRow::new(event, &stored, at);
        let mut qb = QueryBuilder::new("");
        row.push_insert(&mut qb);
        let result = qb.build().execute(self).await?;
        let id = i64::try_from(result.last_insert_id())
            .map_err(|_| DbError::Corrupt("event id beyond i64".into()))?;
        Ok(stored_event(event, stored, id, at))
    }
}

/// One `events` row as read.
#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    occurred_at: i64,
    actor_user_id: Option<String>,
    actor_ip: Option<String>,
    request_id: Option<String>,
    kind: String,
    subject_type: Option<String>,
    subject_id: Option<String>,
    data: Json<Value>,
}

impl TryFrom<EventRow> for Event {
    type Error = DbError;

    fn try_from(row: EventRow) -> Result<Self, DbError> {
        let ip = row
            .actor_ip
            .map(|ip| {
                ip.parse::<IpAddr>().map_err(|e| {
                    DbError::Corrupt(format!("event {}: actor_ip {ip:?}: {e}", row.id))
                })
            })
            .transpose()?;
        let subject = match (row.subject_type, row.subject_id) {
            (Some(kind), Some(id)) => Some(Subject { kind, id }),
            (None, None) => None,
            _ => {
                return Err(DbError::Corrupt(format!(
                    "event {}: subject type and id must be both set or both empty",
                    row.id
                )));
            }
        };
        Ok(Event {
            id: EventId(row.id),
            occurred_at: from_micros(row.occurred_at)?,
            actor: Actor {
                user_id: row.actor_user_id,
                ip,
                request_id: row.request_id,
            },
            kind: row.kind,
            subject,
            data: row.data.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dotted_lowercase_names_only() {
        assert!(is_valid_name("server.created", 128));
        assert!(is_valid_name("plugin.my-hooks.fired_2", 128));
        assert!(!is_valid_name("", 128));
        assert!(!is_valid_name(".server", 128));
        assert!(!is_valid_name("Server.Created", 128));
        assert!(!is_valid_name("server created", 128));
        assert!(!is_valid_name("abc", 2));
    }

    #[test]
    fn refuses_an_event_whose_subject_id_is_too_long() {
        let event = NewEvent::new(crate::db::domain::SettingEvent::Deleted {
            subject: crate::db::domain::SettingName::new("x".repeat(129)),
            data: crate::db::domain::Empty {},
        });
        assert!(matches!(
            event.stored(),
            Err(DbError::Invalid {
                field: "subject.id",
                ..
            })
        ));
    }

    #[test]
    fn every_kind_is_a_valid_event_name() {
        for kind in DomainEvent::kinds() {
            assert!(is_valid_name(kind, MAX_KIND_LEN), "{kind}");
        }
    }
}
