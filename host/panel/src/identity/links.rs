//! One-time links: an invitation to set a first password, and a password
//! reset. Both end with a password set through the user's password
//! provider, so the core still checks and stores no password.
//!
//! # Decisions
//!
//! - **A link is a bearer secret, kept as a digest.** The token (`capl_` and
//!   64 hex digits, 256 random bits) is shown once, to the administrator who
//!   made the link or in the mail; only its SHA-256 is stored. A link has
//!   an id (`lnk_…`) for the audit log and the Users page.
//! - **One open link per user and purpose.** Issuing a new invitation (or
//!   reset) removes the user's earlier unused one, so only the latest link
//!   works.
//! - **Single use, decided by the database.** [`claim`] marks a link used
//!   with one conditional `UPDATE` (unused and unexpired), so of two
//!   concurrent uses exactly one proceeds; [`release`] gives the link back
//!   when the provider then refused the new password (its policy), so a
//!   typo in a new password does not burn an invitation. A Panel that stops
//!   between the two leaves the link used; the administrator issues another.
//! - **Refusals are precise where that leaks nothing.** The token itself is
//!   the secret, so an unknown token ([`LinkState::NotFound`]), an expired
//!   one and a used one are told apart: whoever holds a real token learns
//!   only about that token.
//! - **Mail is best effort and recorded.** A link exists whether or not its
//!   mail went out; [`record_mail`] keeps what happened (`sent`, or
//!   `failed: <reason>`) so the Users page can say it.

use time::{Duration, OffsetDateTime};

use crate::db::domain::{LinkIssued, UserEvent, UserId};
use crate::db::{
    Actor, Database, DbError, NewEvent, Unrecorded, from_micros, now, on_pool, query_builder,
    to_micros,
};

use super::tokens::{digest, random_secret};
use super::users::new_id;

/// The prefix of a link's token.
pub const TOKEN_PREFIX: &str = "capl_";

/// How long an invitation works unless the administrator says otherwise.
pub const INVITATION_TTL: Duration = Duration::hours(72);
/// The longest an invitation may work.
pub const MAX_INVITATION_TTL: Duration = Duration::days(30);
/// How long a password reset link works.
pub const RESET_TTL: Duration = Duration::hours(1);

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A new user sets their first password.
    Invitation,
    /// A user sets a new password in place of a forgotten one.
    Reset,
}

impl Purpose {
    /// The stored and wire form: `invitation` or `reset`.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Invitation => "invitation",
            Purpose::Reset => "reset",
        }
    }

    fn parse(text: &str) -> Result<Purpose, DbError> {
        match text {
            "invitation" => Ok(Purpose::Invitation),
            "reset" => Ok(Purpose::Reset),
            other => Err(DbError::Corrupt(format!("a link's purpose is {other:?}"))),
        }
    }
}

/// A link just issued: the only time its token is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The link's id.
    pub id: String,
    /// The secret token that makes the link's URL.
    pub token: String,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// A stored link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its id.
    pub id: String,
    /// The user it is for.
    pub user_id: String,
    /// What it is for.
    pub purpose: Purpose,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was used, if it was.
    pub used_at: Option<OffsetDateTime>,
    /// What happened to its mail: `None` (none asked for), `sent`, or
    /// `failed: <reason>`.
    pub mail: Option<String>,
}

/// What a presented token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// No link has this token.
    NotFound,
    /// The link expired.
    Expired(Link),
    /// The link was used.
    Used(Link),
    /// The link works.
    Usable(Link),
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    id: String,
    user_id: String,
    purpose: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    mail: Option<String>,
}

impl TryFrom<LinkRow> for Link {
    type Error = DbError;

    fn try_from(row: LinkRow) -> Result<Link, DbError> {
        Ok(Link {
            id: row.id,
            user_id: row.user_id,
            purpose: Purpose::parse(&row.purpose)?,
            created_at: from_micros(row.created_at)?,
            expires_at: from_micros(row.expires_at)?,
            used_at: row.used_at.map(from_micros).transpose()?,
            mail: row.mail,
        })
    }
}

const LINK_COLUMNS: &str =
    "SELECT id, user_id, purpose, created_at, expires_at, used_at, mail FROM account_links";

/// Issues a link for `user_id`, valid for `ttl`, replacing the user's
/// earlier unused link of the same purpose, and records `user.link-issued`
/// by `actor` (`mail`: whether it will be mailed).
///
/// # Errors
///
/// [`DbError::ForeignKey`] if the user does not exist, and other database
/// errors.
pub async fn issue(
    db: &Database,
    user_id: &str,
    purpose: Purpose,
    ttl: Duration,
    mail: bool,
    actor: &Actor,
) -> Result<Issued, DbError> {
    let id = new_id("lnk");
    let token = random_secret(TOKEN_PREFIX);
    let at = now();
    let expires_at = at + ttl;
    let event = NewEvent::new(UserEvent::LinkIssued {
        subject: UserId::new(user_id),
        data: LinkIssued {
            link: id.clone(),
            purpose: purpose.as_str().to_owned(),
            expires_at: to_micros(expires_at),
            mail,
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(
            pool,
            "DELETE FROM account_links WHERE used_at IS NULL AND user_id = ",
        );
        qb.push_bind(user_id)
            .push(" AND purpose = ")
            .push_bind(purpose.as_str());
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO account_links (id, user_id, purpose, token_hash, created_at, expires_at) VALUES (",
        );
        qb.separated(", ")
            .push_bind(&id)
            .push_bind(user_id)
            .push_bind(purpose.as_str())
            .push_bind(digest(&token))
            .push_bind(to_micros(at))
            .push_bind(to_micros(expires_at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(Issued {
        id,
        token,
        expires_at,
    })
}

/// What `token` stands for now.
///
/// # Errors
///
/// Database errors.
pub async fn check(db: &Database, token: &str) -> Result<LinkState, DbError> {
    let hash = digest(token);
    let row: Option<LinkRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, LINK_COLUMNS);
        qb.push(" WHERE token_hash = ").push_bind(&hash);
        qb.build_query_as::<LinkRow>().fetch_optional(pool).await?
    });
    let Some(link) = row.map(Link::try_from).transpose()? else {
        return Ok(LinkState::NotFound);
    };
    Ok(if link.used_at.is_some() {
        LinkState::Used(link)
    } else if link.expires_at <= now() {
        LinkState::Expired(link)
    } else {
        LinkState::Usable(link)
    })
}

/// The links of `user_id` that still work, newest first.
///
/// # Errors
///
/// Database errors.
pub async fn open_links(db: &Database, user_id: &str) -> Result<Vec<Link>, DbError> {
    let at = to_micros(now());
    let rows: Vec<LinkRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, LINK_COLUMNS);
        qb.push(" WHERE used_at IS NULL AND user_id = ")
            .push_bind(user_id)
            .push(" AND expires_at > ")
            .push_bind(at)
            .push(" ORDER BY created_at DESC, id");
        qb.build_query_as::<LinkRow>().fetch_all(pool).await?
    });
    rows.into_iter().map(Link::try_from).collect()
}

/// Marks link `id` used; `false` if it was not usable any more (used by a
/// concurrent request, or expired).
///
/// # Errors
///
/// Database errors.
pub async fn claim(db: &Database, id: &str) -> Result<bool, DbError> {
    let at = to_micros(now());
    Ok(on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "UPDATE account_links SET used_at = ");
        qb.push_bind(at)
            .push(" WHERE used_at IS NULL AND id = ")
            .push_bind(id)
            .push(" AND expires_at > ")
            .push_bind(at);
        qb.build()
            .execute(pool.unrecorded(Unrecorded::Credentials))
            .await?
            .rows_affected()
            == 1
    }))
}

/// Gives back a link [`claim`] took, when nothing was done with it.
///
/// # Errors
///
/// Database errors.
pub async fn release(db: &Database, id: &str) -> Result<(), DbError> {
    on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "UPDATE account_links SET used_at = NULL WHERE id = ");
        qb.push_bind(id);
        qb.build()
            .execute(pool.unrecorded(Unrecorded::Credentials))
            .await?;
    });
    Ok(())
}

/// Records what happened to link `id`'s mail (`sent` or `failed: …`).
///
/// # Errors
///
/// Database errors.
pub async fn record_mail(db: &Database, id: &str, outcome: &str) -> Result<(), DbError> {
    let outcome: String = outcome.chars().take(512).collect();
    on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "UPDATE account_links SET mail = ");
        qb.push_bind(&outcome).push(" WHERE id = ").push_bind(id);
        qb.build()
            .execute(pool.unrecorded(Unrecorded::Credentials))
            .await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_read_back_from_their_stored_form() {
        for purpose in [Purpose::Invitation, Purpose::Reset] {
            assert_eq!(Purpose::parse(purpose.as_str()).unwrap(), purpose);
        }
        assert!(Purpose::parse("welcome").is_err());
    }

    #[test]
    fn an_invitation_lasts_less_than_the_longest_allowed() {
        assert!(INVITATION_TTL < MAX_INVITATION_TTL);
        assert!(RESET_TTL < INVITATION_TTL);
    }
}
