//! Mail: the Panel's SMTP settings and the messages it sends (invitations
//! and password resets).
//!
//! # Decisions
//!
//! - **Settings live in the database**, one row of `mail_settings`, set by
//!   an administrator through `/api/v1/mail` (so every Panel of a
//!   deployment sends the same way, and the web UI can change them). The
//!   password is sealed under the secret key like every secret at rest
//!   ([`crate::secrets`]); the `mail.configured` event records whether
//!   there is one, never the password.
//! - **lettre** speaks SMTP, with rustls for `starttls` (upgrade on the
//!   submission port, 587 usually) and `tls` (implicit TLS, 465), the
//!   server's certificate checked against the web PKI roots and the
//!   certificates of `mail.roots` ([`crate::config::Config::mail_roots`],
//!   for an internal CA or a self-signed server), read at each send so a
//!   renewed file needs no restart. `none` is
//!   plain SMTP; a password is refused over it unless the server is on
//!   loopback, so credentials never cross a network in the clear.
//! - **Bounded.** Every send has a deadline ([`SEND_TIMEOUT`]); a failure
//!   is typed ([`MailError`]): the server refused the message (with its
//!   reply), or could not be reached. Callers decide what a failure means;
//!   an invitation exists whether its mail went out or not.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use time::OffsetDateTime;

use crate::db::domain::{Empty, MailConfigured, MailEvent, Null};
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};
use crate::secrets::Purpose;

/// The longest a send may take, connection and all.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP (loopback relays; no password elsewhere).
    None,
    /// SMTP upgraded with `STARTTLS`, which the server must offer.
    StartTls,
    /// TLS from the first byte.
    Tls,
}

impl Security {
    /// The stored and wire form: `none`, `starttls`, `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::StartTls => "starttls",
            Security::Tls => "tls",
        }
    }

    /// The security named `text`, if it is one.
    pub fn parse(text: &str) -> Option<Security> {
        match text {
            "none" => Some(Security::None),
            "starttls" => Some(Security::StartTls),
            "tls" => Some(Security::Tls),
            _ => None,
        }
    }
}

/// The Panel's SMTP settings.
#[derive(Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// The server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
    /// The user name to sign in with, if the server wants one.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// The sender, `address` or `Name <address>`.
    pub from: String,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("from", &self.from)
            .finish()
    }
}

/// A field of [`MailSettings`] that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidSetting {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl MailSettings {
    /// Every problem with these settings, field by field.
    pub fn problems(&self) -> Vec<InvalidSetting> {
        let mut problems = Vec::new();
        let mut bad = |field, reason: &str| {
            problems.push(InvalidSetting {
                field,
                reason: reason.to_owned(),
            });
        };
        let host = self.host.trim();
        if host.is_empty()
            || host.len() > 255
            || host.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            bad(
                "host",
                "must be a host name or address of 1 to 255 characters without spaces",
            );
        }
        if self.port == 0 {
            bad("port", "must be 1 to 65535");
        }
        if self
            .username
            .as_ref()
            .is_some_and(|u| u.is_empty() || u.len() > 255)
        {
            bad("username", "must be 1 to 255 characters");
        }
        if self
            .password
            .as_ref()
            .is_some_and(|p| p.is_empty() || p.len() > 1024)
        {
            bad("password", "must be 1 to 1024 characters");
        }
        if self.password.is_some() && self.username.is_none() {
            bad("username", "is needed with a password");
        }
        if self.password.is_some() && self.security == Security::None && !is_loopback(host) {
            bad(
                "security",
                "a password is only sent over starttls or tls (or to a server on loopback)",
            );
        }
        if self.from.len() > 255 || self.from.parse::<Mailbox>().is_err() {
            bad("from", "must be a mail address, or Name <address>");
        }
        problems
    }
}

/// True if and only if `host` is a loopback address or `localhost`.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The Panel has no mail settings.
    #[error("the Panel has no mail settings")]
    NotConfigured,
    /// The recipient's address is not one.
    #[error("{0:?} is not a mail address")]
    BadRecipient(String),
    /// The SMTP server answered with an error.
    #[error("the SMTP server refused the message: {0}")]
    Refused(String),
    /// The SMTP server could not be reached, or the connection failed.
    #[error("the SMTP server could not be reached: {0}")]
    Unreachable(String),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// Sends `mail` with `settings`.
///
/// # Errors
///
/// [`MailError`].
pub async fn send(
    settings: &MailSettings,
    roots: Option<&Path>,
    mail: &Mail,
) -> Result<(), MailError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|_| MailError::BadRecipient(mail.to.clone()))?;
    let from: Mailbox = settings.from.parse().map_err(|_| {
        MailError::Refused(format!(
            "the sender {:?} is not a mail address",
            settings.from
        ))
    })?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(&mail.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| MailError::Refused(e.to_string()))?;
    let host = settings.host.trim();
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(settings.port)
        .timeout(Some(SEND_TIMEOUT));
    if settings.security != Security::None {
        let mut tls = TlsParameters::builder(host.to_owned());
        if let Some(path) = roots {
            let pem = read_roots(path).map_err(|message| {
                MailError::Unreachable(format!("mail.roots {}: {message}", path.display()))
            })?;
            let certificates = Certificate::from_pem(&pem)
                .map_err(|e| MailError::Unreachable(format!("mail.roots: {e}")))?;
            tls = tls.add_root_certificate(certificates);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| MailError::Unreachable(e.to_string()))?;
        builder = builder.tls(match settings.security {
            Security::StartTls => Tls::Required(tls),
            Security::None | Security::Tls => Tls::Wrapper(tls),
        });
    }
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let transport = builder.build();
    match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
        Err(_) => Err(MailError::Unreachable(format!(
            "no answer within {} seconds",
            SEND_TIMEOUT.as_secs()
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) if error.is_permanent() || error.is_transient() => {
            Err(MailError::Refused(error.to_string()))
        }
        Ok(Err(error)) => Err(MailError::Unreachable(error.to_string())),
    }
}

#[derive(sqlx::FromRow)]
struct SettingsRow {
    host: String,
    port: i32,
    security: String,
    username: Option<String>,
    password: Option<String>,
    from_addr: String,
    updated_at: i64,
}

/// The stored settings and when they were set.
///
/// # Errors
///
/// Database errors, and [`DbError::Sealed`] if the password does not open.
pub async fn load(db: &Database) -> Result<Option<(MailSettings, OffsetDateTime)>, DbError> {
    let row: Option<SettingsRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT host, port, security, username, password, from_addr, updated_at FROM mail_settings WHERE id = 1",
        );
        qb.build_query_as::<SettingsRow>()
            .fetch_optional(pool)
            .await?
    });
    let Some(row) = row else {
        return Ok(None);
    };
    let security = Security::parse(&row.security)
        .ok_or_else(|| DbError::Corrupt(format!("mail security {:?}", row.security)))?;
    let port =
        u16::try_from(row.port).map_err(|_| DbError::Corrupt(format!("mail port {}", row.port)))?;
    let password = match row.password {
        Some(sealed) => Some(db.sealer()?.open(&Purpose::mail_password(), &sealed)?),
        None => None,
    };
    Ok(Some((
        MailSettings {
            host: row.host,
            port,
            security,
            username: row.username,
            password,
            from: row.from_addr,
        },
        from_micros(row.updated_at)?,
    )))
}

/// Stores `settings` (valid, see [`MailSettings::problems`]) in place of
/// any, recording `mail.configured` by `actor`.
///
/// # Errors
///
/// Database errors.
pub async fn save(db: &Database, settings: &MailSettings, actor: &Actor) -> Result<(), DbError> {
    let sealed = match &settings.password {
        Some(password) => Some(db.sealer()?.seal(&Purpose::mail_password(), password)),
        None => None,
    };
    let at = now();
    let event = NewEvent::new(MailEvent::Configured {
        subject: Null,
        data: MailConfigured {
            host: settings.host.trim().to_owned(),
            port: settings.port,
            security: settings.security.as_str().to_owned(),
            username: settings.username.clone(),
            has_password: settings.password.is_some(),
            from: settings.from.clone(),
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM mail_settings WHERE id = 1");
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO mail_settings (id, host, port, security, username, password, from_addr, updated_at) VALUES (1, ",
        );
        qb.separated(", ")
            .push_bind(settings.host.trim())
            .push_bind(i32::from(settings.port))
            .push_bind(settings.security.as_str())
            .push_bind(settings.username.as_deref())
            .push_bind(sealed.as_deref())
            .push_bind(&settings.from)
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Removes the settings, recording `mail.cleared` by `actor`; `false` if
/// there were none.
///
/// # Errors
///
/// Database errors.
pub async fn clear(db: &Database, actor: &Actor) -> Result<bool, DbError> {
    let event = NewEvent::new(MailEvent::Cleared {
        subject: Null,
        data: Empty {},
    })
    .actor(actor.clone());
    crate::db::clear_singleton(db, "mail_settings", &event).await
}

/// Sends `mail` with the stored settings.
///
/// # Errors
///
/// [`MailError::NotConfigured`] without settings, [`MailError`] from
/// [`send`]; a database failure reading the settings is
/// [`MailError::Unreachable`] naming it.
pub async fn send_stored(
    db: &Database,
    roots: Option<&Path>,
    mail: &Mail,
) -> Result<(), MailError> {
    let settings = load(db)
        .await
        .map_err(|e| MailError::Unreachable(format!("the mail settings could not be read: {e}")))?
        .ok_or(MailError::NotConfigured)?;
    send(&settings.0, roots, mail).await
}

/// The largest roots file read, in bytes: a CA bundle is well below it.
const MAX_ROOTS_BYTES: u64 = 1 << 20;

/// The PEM certificates in the file at `path` (`mail.roots`), checked:
/// readable, at most 1 MiB, and holding at least one certificate and
/// nothing that is not PEM.
///
/// # Errors
///
/// Why the file cannot be used, as a sentence.
pub fn read_roots(path: &Path) -> Result<Vec<u8>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    use std::io::Read as _;

    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let mut pem = Vec::new();
    file.take(MAX_ROOTS_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if pem.len() as u64 > MAX_ROOTS_BYTES {
        return Err(format!("is larger than {MAX_ROOTS_BYTES} bytes"));
    }
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not PEM: {e}"))?;
    if certificates.is_empty() {
        return Err("holds no certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MailSettings {
        MailSettings {
            host: "smtp.example.org".into(),
            port: 587,
            security: Security::StartTls,
            username: Some("panel".into()),
            password: Some("secret".into()),
            from: "Panel <panel@example.org>".into(),
        }
    }

    #[test]
    fn good_settings_have_no_problems() {
        assert_eq!(settings().problems(), vec![]);
    }

    #[test]
    fn a_password_is_refused_over_plain_smtp_off_loopback() {
        let plain = MailSettings {
            security: Security::None,
            ..settings()
        };
        let fields: Vec<_> = plain.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, vec!["security"]);
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            let local = MailSettings {
                host: host.into(),
                ..plain.clone()
            };
            assert_eq!(local.problems(), vec![], "{host}");
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = MailSettings {
            host: "smtp host".into(),
            port: 0,
            security: Security::Tls,
            username: None,
            password: Some("x".into()),
            from: "not an address".into(),
        };
        let fields: Vec<_> = bad.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, vec!["host", "port", "username", "from"]);
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        assert!(!format!("{:?}", settings()).contains("secret"));
    }

    #[test]
    fn securities_read_back_from_their_wire_form() {
        for security in [Security::None, Security::StartTls, Security::Tls] {
            assert_eq!(Security::parse(security.as_str()), Some(security));
        }
        assert_eq!(Security::parse("ssl"), None);
    }
}
