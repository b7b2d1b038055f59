//! A server's allocations, as Pterodactyl's and Pelican's "Network" tab
//! has them: the primary allocation the game runs on, and extra ones its
//! users take from the pool of the server's node, up to the server's
//! allocation limit, each with notes.
//!
//! | What | Function | Event |
//! | --- | --- | --- |
//! | the limit an administrator sets | [`set_limit`] | `server.allocation-limit.set` |
//! | take a free allocation of the node (one asked for, or the first) | [`add`] | `server.allocation.added` |
//! | write or clear its notes | [`set_notes`] | `server.allocation.notes.set` |
//! | make it the primary | [`set_primary`] | `server.allocation.primary.set` |
//! | give an extra one back to the pool | [`remove`] | `server.allocation.removed` |
//!
//! The primary is the one a server is created with
//! ([`super::server::create`]); the game runs on it (`SERVER_IP` and
//! `SERVER_PORT`, the `game` port of the plugin's `server-context`). The
//! others reach the Agent with the server's spec
//! ([`crate::agents::plans`]): the container runtime publishes every
//! allocation's port (TCP and UDP), and both runtimes name them in the
//! game's environment (`SERVER_PORTS`, `SERVER_IP_1`, `SERVER_PORT_1`…,
//! see `cap_agent::runtime`).
//!
//! # Decisions
//!
//! - **The limit counts extra allocations.** `0` (the default, as
//!   Pterodactyl's) allows the primary only; `2` allows the primary and two
//!   more. Pterodactyl's own field counts the primary too; "extra
//!   allocations" is what users are told, so that is what is stored. The
//!   limit binds every caller of these routes, administrators included:
//!   they raise it first ([`MAX_LIMIT`] at most). Lowering it below what a
//!   server holds takes nothing away; only new allocations are refused.
//! - **Race-safe.** Each change first touches the server's row inside its
//!   transaction (a row lock on PostgreSQL and MySQL, the write lock on
//!   SQLite), so two additions cannot both spend the last place of the
//!   limit, nor two primary switches leave two primaries; an allocation is
//!   taken with a conditional `UPDATE … WHERE server_id IS NULL`, so two
//!   servers never hold one. A unique index allows one primary per server.
//! - **Every change is an event** in the same transaction, and the
//!   `allocations` and `servers` projections hold everything the events
//!   say (notes, the primary flag, the limit), so replay rebuilds them
//!   ([`crate::db::replay`]).
//! - **Changes reach a running game at its next start.** The Agent gets
//!   the allocations with each start's spec; nothing is pushed to a
//!   running server (Wings does the same). Switching the primary of a
//!   running server is allowed; the answer says it applies at the next
//!   start.
//! - **The primary stays.** It cannot be removed (`allocation-primary`);
//!   another one is made primary first. A removed allocation goes back to
//!   the pool with its notes cleared, for any server of the node to take.
//! - **Addressed by ip and port**, as the node's pool is
//!   (`/servers/{id}/allocations/{ip}/{port}`): an IPv6 address is one path
//!   segment (`%3A` or `:`), written in its canonical form.

use std::net::IpAddr;

use super::nodes::{ALLOCATION_COLUMNS, Allocation, AllocationRow};
use super::server::{STATE_DELETING, Server};
use super::{FieldProblem, ServersError};
use crate::db::domain::{
    AllocationLimit, AllocationNotes, ServerAllocation, ServerEvent, ServerId,
};
use crate::db::{Actor, Database, DbError, NewEvent, on_pool, query_builder};
use crate::error_code::Code;

/// The highest allocation limit an administrator may set.
pub const MAX_LIMIT: u32 = 100;
/// The longest notes, in characters.
pub const MAX_NOTES_LEN: usize = 255;

/// `ip` in its canonical form, if it is an IPv4 or IPv6 address.
pub fn canonical_ip(ip: &str) -> Option<String> {
    ip.trim()
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical().to_string())
}

/// Notes as stored: trimmed, `None` when empty.
///
/// # Errors
///
/// A problem naming `notes` when they are longer than [`MAX_NOTES_LEN`]
/// characters or hold control characters (line breaks included: notes
/// are one line).
pub fn checked_notes(notes: Option<&str>) -> Result<Option<String>, FieldProblem> {
    let Some(notes) = notes.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if notes.chars().count() > MAX_NOTES_LEN {
        return Err(FieldProblem::new(
            "notes",
            format!("must be at most {MAX_NOTES_LEN} characters"),
        ));
    }
    if notes.chars().any(char::is_control) {
        return Err(FieldProblem::new(
            "notes",
            "must be one line, without control characters",
        ));
    }
    Ok(Some(notes.to_owned()))
}

/// `event` about server `server_id`, by `actor`.
fn server_event(event: ServerEvent, actor: &Actor) -> NewEvent {
    NewEvent::new(event).actor(actor.clone())
}

/// Refuses changes to a server that is being deleted, and to one on no
/// node (it has no pool to take from); returns its node.
fn node_of(server: &Server) -> Result<&str, ServersError> {
    if server.state == STATE_DELETING {
        return Err(ServersError::conflict(
            Code::ServerDeleting,
            "the server is being deleted",
        ));
    }
    server.node_id.as_deref().ok_or_else(|| {
        ServersError::conflict(
            Code::AllocationUnavailable,
            "the server is on no node, so it has no allocations to change",
        )
    })
}

/// The server's allocation limit: how many allocations it may hold besides
/// its primary.
///
/// # Errors
///
/// [`DbError::NotFound`] for an unknown server, database errors.
pub async fn limit(db: &Database, server_id: &str) -> Result<u32, DbError> {
    let found: Option<i32> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, "SELECT allocation_limit FROM servers WHERE id = ");
        qb.push_bind(server_id);
        qb.build_query_scalar::<i32>().fetch_optional(pool).await?
    });
    let found = found.ok_or(DbError::NotFound)?;
    Ok(u32::try_from(found).unwrap_or(0))
}

/// Sets the server's allocation limit, appending
/// `server.allocation-limit.set` by `actor`. Allocations the server holds
/// over a lowered limit stay.
///
/// # Errors
///
/// [`ServersError::Invalid`] over [`MAX_LIMIT`], [`ServersError::NotFound`],
/// database errors.
pub async fn set_limit(
    db: &Database,
    server_id: &str,
    limit: u32,
    actor: &Actor,
) -> Result<(), ServersError> {
    if limit > MAX_LIMIT {
        return Err(ServersError::field(
            "limit",
            format!("must be 0 to {MAX_LIMIT}"),
        ));
    }
    let event = server_event(
        ServerEvent::AllocationLimitSet {
            subject: ServerId::new(server_id),
            data: AllocationLimit { limit },
        },
        actor,
    );
    let stored = i32::try_from(limit).unwrap_or(i32::MAX);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "SELECT COUNT(*) FROM servers WHERE id = ");
        qb.push_bind(server_id);
        let exists: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
        if exists == 0 {
            return Err(ServersError::NotFound(format!("server {server_id}")));
        }
        // MySQL counts an UPDATE to the same value as changing nothing, so
        // the row count says nothing here; the server was found above.
        let mut qb = query_builder(pool, "UPDATE servers SET allocation_limit = ");
        qb.push_bind(stored)
            .push(" WHERE id = ")
            .push_bind(server_id);
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// The allocations `server` holds, the primary first, then by ip and port.
///
/// # Errors
///
/// Database errors.
pub async fn list(db: &Database, server: &Server) -> Result<Vec<Allocation>, DbError> {
    super::nodes::allocations_of_server(db, &server.id).await
}

/// One allocation `server` holds.
async fn held(
    db: &Database,
    server: &Server,
    ip: &str,
    port: u16,
) -> Result<Allocation, ServersError> {
    let not_found = || ServersError::NotFound(format!("allocation {ip}:{port} of the server"));
    let Some(node_id) = server.node_id.as_deref() else {
        return Err(not_found());
    };
    let row: Option<AllocationRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(pool, ALLOCATION_COLUMNS);
        qb.push(" WHERE node_id = ")
            .push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(ip)
            .push(" AND port = ")
            .push_bind(i32::from(port))
            .push(" AND server_id = ")
            .push_bind(server.id.as_str());
        qb.build_query_as::<AllocationRow>()
            .fetch_optional(pool)
            .await?
    });
    row.map(Allocation::try_from)
        .transpose()?
        .ok_or_else(not_found)
}

/// Touches the server's row first in a transaction (see "Race-safe"),
/// refuses a server being deleted (a delete command marks it so in the
/// same row, so the check cannot race with it), and reads how many
/// allocations it may hold besides its primary. Expands inside `on_pool!`.
macro_rules! lock_server {
    ($pool:ident, $tx:ident, $server_id:expr) => {{
        let mut qb = query_builder(
            $pool,
            "UPDATE servers SET allocation_limit = allocation_limit WHERE id = ",
        );
        qb.push_bind($server_id);
        qb.build().execute(&mut *$tx).await?;
        let mut qb = query_builder(
            $pool,
            "SELECT allocation_limit, state FROM servers WHERE id = ",
        );
        qb.push_bind($server_id);
        let row: Option<(i32, String)> = qb.build_query_as().fetch_optional(&mut *$tx).await?;
        let Some((limit, state)) = row else {
            return Err(ServersError::NotFound(format!("server {}", $server_id)));
        };
        if state == STATE_DELETING {
            return Err(ServersError::conflict(
                Code::ServerDeleting,
                "the server is being deleted",
            ));
        }
        u32::try_from(limit).unwrap_or(0)
    }};
}

/// Gives `server` a free allocation of its node: `wanted` (ip, port) when
/// given, else the node's first free one (by ip, then port). Appends
/// `server.allocation.added` by `actor`.
///
/// # Errors
///
/// [`ServersError::Invalid`] for an ip that is not an address, or an
/// allocation that is not in the node's pool; [`ServersError::Conflict`]:
/// `allocation-limit-reached` at the limit, `no-free-allocation` when the
/// node has none free, `allocation-assigned` when the one asked for is
/// taken (or was taken meanwhile), `server-deleting`; database errors.
pub async fn add(
    db: &Database,
    server: &Server,
    wanted: Option<(&str, u16)>,
    actor: &Actor,
) -> Result<Allocation, ServersError> {
    let node_id = node_of(server)?;
    let wanted = match wanted {
        None => None,
        Some((ip, port)) => {
            let ip = canonical_ip(ip)
                .ok_or_else(|| ServersError::field("ip", "must be an IPv4 or IPv6 address"))?;
            if port == 0 {
                return Err(ServersError::field("port", "must be 1 to 65535"));
            }
            Some((ip, port))
        }
    };
    let server_id = server.id.as_str();
    let (ip, port, primary) = on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let limit = lock_server!(pool, tx, server_id);
        let mut qb = query_builder(pool, "SELECT COUNT(*) FROM allocations WHERE server_id = ");
        qb.push_bind(server_id);
        let holds: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
        let extra = u64::try_from(holds.saturating_sub(1)).unwrap_or(0);
        if extra >= u64::from(limit) {
            return Err(ServersError::conflict(
                Code::AllocationLimitReached,
                if limit == 0 {
                    "the server may hold its primary allocation only (its allocation limit is 0); an administrator can raise the limit".to_owned()
                } else {
                    format!(
                        "the server holds its primary allocation and {extra} more, its limit of {limit}; remove one, or ask an administrator to raise the limit"
                    )
                },
            ));
        }
        let (ip, port) = match &wanted {
            Some((ip, port)) => {
                let mut qb =
                    query_builder(pool, "SELECT server_id FROM allocations WHERE node_id = ");
                qb.push_bind(node_id)
                    .push(" AND ip = ")
                    .push_bind(ip.as_str())
                    .push(" AND port = ")
                    .push_bind(i32::from(*port));
                let holder: Option<Option<String>> =
                    qb.build_query_scalar().fetch_optional(&mut *tx).await?;
                match holder {
                    None => {
                        return Err(ServersError::field(
                            "port",
                            format!("{ip}:{port} is not an allocation of the server's node"),
                        ));
                    }
                    Some(Some(holder)) if holder == server_id => {
                        return Err(ServersError::conflict(
                            Code::AllocationAssigned,
                            format!("the server holds {ip}:{port} already"),
                        ));
                    }
                    Some(Some(_)) => {
                        return Err(ServersError::conflict(
                            Code::AllocationAssigned,
                            format!("{ip}:{port} is taken by another server"),
                        ));
                    }
                    Some(None) => (ip.clone(), *port),
                }
            }
            None => {
                let mut qb =
                    query_builder(pool, "SELECT ip, port FROM allocations WHERE node_id = ");
                qb.push_bind(node_id)
                    .push(" AND server_id IS NULL ORDER BY ip, port LIMIT 1");
                let free: Option<(String, i32)> =
                    qb.build_query_as().fetch_optional(&mut *tx).await?;
                let Some((ip, port)) = free else {
                    return Err(ServersError::conflict(
                        Code::NoFreeAllocation,
                        "the server's node has no free allocation; an administrator can add some to the node",
                    ));
                };
                let port = u16::try_from(port)
                    .map_err(|_| DbError::Corrupt(format!("allocation port {port}")))?;
                (ip, port)
            }
        };
        // A server without any allocation (none has one today) takes it as
        // its primary.
        let primary = holds == 0;
        let mut qb = query_builder(pool, "UPDATE allocations SET server_id = ");
        qb.push_bind(server_id)
            .push(", is_primary = ")
            .push_bind(primary)
            .push(", notes = NULL WHERE node_id = ")
            .push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(ip.as_str())
            .push(" AND port = ")
            .push_bind(i32::from(port))
            .push(" AND server_id IS NULL");
        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(ServersError::conflict(
                Code::AllocationAssigned,
                format!("{ip}:{port} was just taken by another server; try again"),
            ));
        }
        let data = ServerAllocation {
            node_id: node_id.to_owned(),
            ip: ip.clone(),
            port,
        };
        let subject = || ServerId::new(server_id);
        tx.record(&server_event(
            ServerEvent::AllocationAdded {
                subject: subject(),
                data: data.clone(),
            },
            actor,
        ))
        .await?;
        if primary {
            // Replay applies both, in this order.
            tx.record(&server_event(
                ServerEvent::PrimaryAllocationSet {
                    subject: subject(),
                    data,
                },
                actor,
            ))
            .await?;
        }
        tx.commit().await?;
        (ip, port, primary)
    });
    Ok(Allocation {
        node_id: node_id.to_owned(),
        ip,
        port,
        server_id: Some(server.id.clone()),
        notes: None,
        primary,
    })
}

/// Writes the notes of one allocation `server` holds (`None`, or only
/// whitespace, clears them), appending `server.allocation.notes.set` by
/// `actor`.
///
/// # Errors
///
/// [`ServersError::Invalid`] for notes [`checked_notes`] refuses,
/// [`ServersError::NotFound`] for an allocation the server does not hold,
/// `server-deleting`, database errors.
pub async fn set_notes(
    db: &Database,
    server: &Server,
    ip: &str,
    port: u16,
    notes: Option<&str>,
    actor: &Actor,
) -> Result<Allocation, ServersError> {
    let node_id = node_of(server)?;
    let notes = checked_notes(notes).map_err(|p| ServersError::Invalid(vec![p]))?;
    let ip = canonical_ip(ip).unwrap_or_else(|| ip.to_owned());
    let current = held(db, server, &ip, port).await?;
    let event = server_event(
        ServerEvent::AllocationNotesSet {
            subject: ServerId::new(&server.id),
            data: AllocationNotes {
                node_id: node_id.to_owned(),
                ip: ip.clone(),
                port,
                notes: notes.clone(),
            },
        },
        actor,
    );
    let server_id = server.id.as_str();
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        // Serialized with a removal, so that the allocation is still the
        // server's when the notes are written (and replay finds it so).
        lock_server!(pool, tx, server_id);
        let mut qb = query_builder(pool, "SELECT COUNT(*) FROM allocations WHERE node_id = ");
        qb.push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(ip.as_str())
            .push(" AND port = ")
            .push_bind(i32::from(port))
            .push(" AND server_id = ")
            .push_bind(server.id.as_str());
        let still: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
        if still == 0 {
            return Err(ServersError::NotFound(format!(
                "allocation {ip}:{port} of the server"
            )));
        }
        let mut qb = query_builder(pool, "UPDATE allocations SET notes = ");
        qb.push_bind(notes.as_deref())
            .push(" WHERE node_id = ")
            .push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(ip.as_str())
            .push(" AND port = ")
            .push_bind(i32::from(port))
            .push(" AND server_id = ")
            .push_bind(server.id.as_str());
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(Allocation { notes, ..current })
}

/// Makes one allocation `server` holds its primary (the one that was
/// becomes an extra one), appending `server.allocation.primary.set` by
/// `actor`. Making the primary primary again changes nothing and records
/// nothing.
///
/// # Errors
///
/// [`ServersError::NotFound`] for an allocation the server does not hold,
/// `server-deleting`, database errors.
pub async fn set_primary(
    db: &Database,
    server: &Server,
    ip: &str,
    port: u16,
    actor: &Actor,
) -> Result<Allocation, ServersError> {
    let node_id = node_of(server)?;
    let ip = canonical_ip(ip).unwrap_or_else(|| ip.to_owned());
    let server_id = server.id.as_str();
    let event = server_event(
        ServerEvent::PrimaryAllocationSet {
            subject: ServerId::new(server_id),
            data: ServerAllocation {
                node_id: node_id.to_owned(),
                ip: ip.clone(),
                port,
            },
        },
        actor,
    );
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        lock_server!(pool, tx, server_id);
        let mut qb = query_builder(pool, "SELECT is_primary FROM allocations WHERE node_id = ");
        qb.push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(ip.as_str())
            .push(" AND port = ")
            .push_bind(i32::from(port))
            .push(" AND server_id = ")
            .push_bind(server_id);
        let primary: Option<bool> = qb.build_query_scalar().fetch_optional(&mut *tx).await?;
        match primary {
            None => {
                return Err(ServersError::NotFound(format!(
                    "allocation {ip}:{port} of the server"
                )));
            }
            // Dropped unchanged: rolled back.
            Some(true) => {}
            Some(false) => {
                let mut qb = query_builder(pool, "UPDATE allocations SET is_primary = ");
                qb.push_bind(false)
                    .push(" WHERE server_id = ")
                    .push_bind(server_id)
                    .push(" AND is_primary = ")
                    .push_bind(true);
                qb.build().execute(&mut *tx).await?;
                let mut qb = query_builder(pool, "UPDATE allocations SET is_primary = ");
                qb.push_bind(true)
                    .push(" WHERE node_id = ")
                    .push_bind(node_id)
                    .push(" AND ip = ")
                    .push_bind(ip.as_str())
                    .push(" AND port = ")
                    .push_bind(i32::from(port))
                    .push(" AND server_id = ")
                    .push_bind(server_id);
                qb.build().execute(&mut *tx).await?;
                tx.record(&event).await?;
                tx.commit().await?;
            }
        }
    });
    held(db, server, &ip, port).await
}

/// Gives an extra allocation of `server` back to its node's pool, its notes
/// cleared, appending `server.allocation.removed` by `actor`.
///
/// # Errors
///
/// [`ServersError::NotFound`] for an allocation the server does not hold,
/// [`ServersError::Conflict`] `allocation-primary` for its primary,
/// `server-deleting`, database errors.
pub async fn remove(
    db: &Database,
    server: &Server,
    ip: &str,
    port: u16,
    actor: &Actor,
) -> Result<(), ServersError> {
    let node_id = node_of(server)?;
    let ip = canonical_ip(ip).unwrap_or_else(|| ip.to_owned());
    let server_id = server.id.as_str();
    let event = server_event(
        ServerEvent::AllocationRemoved {
            subject: ServerId::new(server_id),
            data: ServerAllocation {
                node_id: node_id.to_owned(),
                ip: ip.clone(),
                port,
            },
        },
        actor,
    );
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        lock_server!(pool, tx, server_id);
        let mut qb = query_builder(pool, "SELECT is_primary FROM allocations WHERE node_id = ");
        qb.push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(ip.as_str())
            .push(" AND port = ")
            .push_bind(i32::from(port))
            .push(" AND server_id = ")
            .push_bind(server_id);
        let primary: Option<bool> = qb.build_query_scalar().fetch_optional(&mut *tx).await?;
        match primary {
            None => {
                return Err(ServersError::NotFound(format!(
                    "allocation {ip}:{port} of the server"
                )));
            }
            Some(true) => {
                return Err(ServersError::conflict(
                    Code::AllocationPrimary,
                    format!(
                        "{ip}:{port} is the server's primary allocation, which it runs on: make another allocation primary first"
                    ),
                ));
            }
            Some(false) => {}
        }
        let mut qb = query_builder(
            pool,
            "UPDATE allocations SET server_id = NULL, notes = NULL WHERE node_id = ",
        );
        qb.push_bind(node_id)
            .push(" AND ip = ")
            .push_bind(ip.as_str())
            .push(" AND port = ")
            .push_bind(i32::from(port))
            .push(" AND server_id = ")
            .push_bind(server_id)
            .push(" AND is_primary = ")
            .push_bind(false);
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_trimmed_empty_ones_clear_and_long_or_multi_line_ones_are_refused() {
        assert_eq!(
            checked_notes(Some("  query port ")),
            Ok(Some("query port".to_owned()))
        );
        assert_eq!(checked_notes(Some("   ")), Ok(None));
        assert_eq!(checked_notes(None), Ok(None));
        assert_eq!(
            checked_notes(Some(&"é".repeat(MAX_NOTES_LEN))),
            Ok(Some("é".repeat(MAX_NOTES_LEN))),
            "characters, not bytes"
        );
        let long = checked_notes(Some(&"x".repeat(MAX_NOTES_LEN + 1))).expect_err("too long");
        assert_eq!(long.field, "notes");
        let lines = checked_notes(Some("one\ntwo")).expect_err("two lines");
        assert!(lines.message.contains("one line"), "{}", lines.message);
    }

    #[test]
    fn addresses_are_compared_in_their_canonical_form() {
        assert_eq!(canonical_ip("0:0:0:0:0:0:0:1").as_deref(), Some("::1"));
        assert_eq!(canonical_ip("::ffff:10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(canonical_ip(" 10.0.0.1 ").as_deref(), Some("10.0.0.1"));
        assert_eq!(canonical_ip("localhost"), None);
    }
}
