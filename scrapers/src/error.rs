//! The scrapers crate's one error type.

use thiserror::Error;

use crate::config::Diagnostic;

/// Failures of loading or running a scraper.
#[derive(Debug, Error)]
pub enum ScraperError {
    /// A ScrapeConfig could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A ScrapeConfig is invalid; every error diagnostic is listed.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// A run took longer than its `timeout`.
    #[error("the run timed out after {}", humantime::format_duration(*.0))]
    TimedOut(std::time::Duration),
    /// A run panicked.
    #[error("the run panicked: {0}")]
    Panicked(String),
    /// The catalog store failed.
    #[error(transparent)]
    Domain(#[from] stratum_domain::DomainError),
}
