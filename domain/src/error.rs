//! The domain's one error type.

use thiserror::Error;

/// Every failure the domain reports to its callers.
#[derive(Debug, Error)]
pub enum DomainError {
    /// A value supplied by a caller is malformed; the message is safe to show.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which input was invalid (e.g. `cursor`, `filter`).
        what: &'static str,
        /// A human-readable explanation.
        message: String,
    },
    /// A CEL expression failed to compile or evaluate.
    #[error("CEL: {0}")]
    Cel(String),
    /// The referenced entity does not exist (or is out of scope).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The database failed; details are logged, never shown to clients.
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    /// A subscription's `since` cursor is too old to replay from.
    #[error("cursor expired: {0}")]
    CursorExpired(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Another replica has taken the scraper over; this handle may no
    /// longer write for it.
    #[error("scraper {0} is owned by another replica now")]
    Fenced(uuid::Uuid),
}

impl DomainError {
    /// Shorthand for [`DomainError::Invalid`].
    pub fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            what,
            message: message.into(),
        }
    }
}

/// Result alias for the domain.
pub type Result<T, E = DomainError> = std::result::Result<T, E>;
