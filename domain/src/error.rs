//! The domain's one error type. Callers map it to their surface (HTTP status, CLI exit,
//! worker retry decision); nothing in it is ever shown to a client verbatim unless it is a
//! [`Error::Validation`]/[`Error::Malformed`]-style message written for people.

/// Result of the domain layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not JSON at all (syntax error, truncated, too deeply nested).
    #[error("{message}")]
    Malformed { message: String },
    /// The input is JSON but breaks a rule; `field` is its path (`steps[0].kind`).
    #[error("{message}")]
    Validation {
        field: Option<String>,
        message: String,
    },
    /// The thing asked for does not exist (or belongs to another team).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique thing already exists (an e-mail address, a team).
    #[error("{0}")]
    Conflict(String),
    /// An idempotency key (the `Idempotency-Key` header, or without one the flow's id and
    /// version) came back with a different body; the message says which and what to do.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// The input is larger than a bound the operation keeps (a bundle unpacking past its
    /// limit); the message gives the bound.
    #[error("{0}")]
    TooLarge(String),
    /// A stored payload does not match its recorded SHA-256.
    #[error("payload integrity check failed: {0}")]
    Integrity(String),
    /// A storage engine is not configured or not supported in this build.
    #[error("{0}")]
    Config(String),
    /// The metadata database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The object store failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// Redis failed or did not answer in time.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A local I/O operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An engine is down or overloaded right now; retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an impossible state; logged, never detailed to clients.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// A validation error on `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// Whether the database answered that a statement failed (a constraint, an overflow, a
    /// deadlock…) — the engine is up, so the cause may be one flow of a batch.
    pub fn is_statement_error(&self) -> bool {
        matches!(self, Error::Database(sqlx::Error::Database(_)))
    }

    /// Whether a disk is full: SQLite's `SQLITE_FULL` (code 13), PostgreSQL's `disk_full`
    /// (SQLSTATE 53100), or `ENOSPC` from a file or object write (POSIX errno 28, "No space
    /// left on device"). Not the flow's fault: the work is retried until space is freed,
    /// without counting against its attempts.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("13") | Some("53100"))
            }
            Error::Io(e) => e.raw_os_error() == Some(28),
            Error::Database(_) | Error::ObjectStore(_) | Error::Unavailable(_) => {
                let text = self.to_string();
                text.contains("database or disk is full")
                    || text.contains("No space left on device")
                    || text.contains("os error 28")
            }
            _ => false,
        }
    }

    /// Whether retrying the same operation later may succeed (engine down, busy, timeout),
    /// as opposed to a permanent error (invalid data, integrity failure).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(e) => !matches!(
                e,
                sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::Decode(_)
                    | sqlx::Error::TypeNotFound { .. }
                    | sqlx::Error::ColumnNotFound(_)
            ),
            Error::ObjectStore(e) => !matches!(
                e,
                object_store::Error::NotFound { .. } | object_store::Error::InvalidPath { .. }
            ),
            Error::Io(_) | Error::Unavailable(_) | Error::Redis(_) => true,
            _ => false,
        }
    }
}
