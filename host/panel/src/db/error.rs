//! [`DbError`]: what went wrong in the database, in terms callers can act on.

use sqlx::error::ErrorKind;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A database operation failed.
///
/// The variants callers branch on are the constraint violations
/// ([`Conflict`](DbError::Conflict), [`ForeignKey`](DbError::ForeignKey),
/// [`Constraint`](DbError::Constraint)), [`NotFound`](DbError::NotFound) and
/// [`Unavailable`](DbError::Unavailable). The HTTP layer maps them to
/// `409`, `422`, `404` and `503`; every other variant is an internal error
/// whose details are logged, never sent to a client.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique or primary-key constraint was violated: the thing exists.
    #[error("already exists{}", constraint_suffix(.constraint))]
    Conflict {
        /// The violated constraint or index, when the backend names it.
        constraint: Option<String>,
    },
    /// A foreign-key constraint was violated: a referenced row is missing
    /// or a referencing row still exists.
    #[error("foreign key violated{}", constraint_suffix(.constraint))]
    ForeignKey {
        /// The violated constraint, when the backend names it.
        constraint: Option<String>,
    },
    /// A not-null or check constraint was violated.
    #[error("constraint violated{}", constraint_suffix(.constraint))]
    Constraint {
        /// The violated constraint, when the backend names it.
        constraint: Option<String>,
    },
    /// The row that must exist does not.
    #[error("not found")]
    NotFound,
    /// A value handed to the database layer breaks one of its rules (a
    /// field too long, a malformed event kind). Callers validate user input
    /// before this point, so this is a programming error.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The database cannot be reached: connecting failed, the pool timed
    /// out or was closed, or the connection broke.
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// The database URL does not parse or names an unsupported backend.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Running migrations failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value cannot be decoded into its Rust type.
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
    /// A sealed secret cannot be read or written: no key, the wrong key,
    /// or a value that does not open (see [`crate::secrets`]).
    #[error(transparent)]
    Sealed(#[from] crate::secrets::SealError),
    /// A write transaction changed rows of `tables` without recording an
    /// event, and was rolled back (see [`crate::db`]): a programming error.
    #[error("a transaction changed {tables} without recording an event")]
    Unrecorded {
        /// The tables it changed.
        tables: String,
    },
    /// Any other database error.
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

fn constraint_suffix(constraint: &Option<String>) -> String {
    constraint
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default()
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::RowNotFound => DbError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => DbError::Unavailable(Box::new(error)),
            sqlx::Error::Database(db) => {
                let constraint = db.constraint().map(str::to_owned);
                match db.kind() {
                    ErrorKind::UniqueViolation => DbError::Conflict { constraint },
                    ErrorKind::ForeignKeyViolation => DbError::ForeignKey { constraint },
                    ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                        DbError::Constraint { constraint }
                    }
                    _ => DbError::Other(sqlx::Error::Database(db)),
                }
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                DbError::Corrupt(error.to_string())
            }
            other => DbError::Other(other),
        }
    }
}

impl DbError {
    /// True if and only if the error means the database could not be
    /// reached, as opposed to refusing or failing the operation.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }
}
