//! The API's one error type and its single mapping to GraphQL
//! `extensions.code` (SPEC §11 "Errors").

use async_graphql::ErrorExtensions;
use stratum_domain::DomainError;
use thiserror::Error;

/// Errors a resolver can return.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The client sent something invalid.
    #[error("{0}")]
    BadUserInput(String),
    /// A search query that does not parse; points at its column.
    #[error("invalid search: {0}")]
    InvalidSearch(#[from] stratum_domain::search::SearchError),
    /// The entity does not exist (or is out of scope).
    #[error("{0} not found")]
    NotFound(String),
    /// The caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// A subscription's `since` cursor is too old to replay from.
    #[error("{0}")]
    CursorExpired(String),
    /// A subscriber fell behind the live stream; it resumes from `resume`.
    #[error(
        "the subscriber fell more than {buffer} events behind; resubscribe with since: resumeCursor"
    )]
    Lagged {
        /// The cursor to resume from.
        resume: String,
        /// The subscriber's buffer.
        buffer: usize,
    },
    /// The server is not set up for this (e.g. it holds no signing key).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Anything else; the details are logged, never returned.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadUserInput(_) | ApiError::InvalidSearch(_) => "BAD_USER_INPUT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::CursorExpired(_) => "CURSOR_EXPIRED",
            ApiError::Lagged { .. } => "LAGGED",
            ApiError::FailedPrecondition(_) => "FAILED_PRECONDITION",
            ApiError::Internal => "INTERNAL",
        }
    }
}

impl From<&DomainError> for ApiError {
    fn from(e: &DomainError) -> Self {
        match e {
            DomainError::Invalid { what, message } => {
                ApiError::BadUserInput(format!("invalid {what}: {message}"))
            }
            DomainError::NotFound(what) => ApiError::NotFound(what.to_string()),
            DomainError::CursorExpired(message) => ApiError::CursorExpired(message.clone()),
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(other), "request failed");
                ApiError::Internal
            }
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::from(&e)
    }
}

/// A data loader's shared failure.
impl From<std::sync::Arc<DomainError>> for ApiError {
    fn from(e: std::sync::Arc<DomainError>) -> Self {
        ApiError::from(e.as_ref())
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        let code = self.code();
        let column = match self {
            ApiError::InvalidSearch(e) => Some(e.column),
            _ => None,
        };
        let resume = match self {
            ApiError::Lagged { resume, .. } => Some(resume.clone()),
            _ => None,
        };
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(resume) = &resume {
                ext.set("resumeCursor", resume.as_str());
            }
            if let Some(column) = column {
                ext.set("position", async_graphql::value!({ "column": column }));
            }
        })
    }
}

/// Converts any API or domain error into a GraphQL error carrying its code.
/// Use this (never a bare `?`) so every error has `extensions.code`.
pub fn gql(e: impl Into<ApiError>) -> async_graphql::Error {
    e.into().extend()
}

/// Result type of resolvers.
pub type ApiResult<T> = Result<T, async_graphql::Error>;
