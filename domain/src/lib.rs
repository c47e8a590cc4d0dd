//! Stratum's domain: the catalog model, the pure logic that shapes scraped
//! data (normalization, diffs, fingerprints, health rules, CEL) and the
//! catalog store that persists it on SQLite or PostgreSQL.
//!
//! This crate knows nothing about GraphQL, HTTP or Kubernetes clients; the
//! `api` and `scrapers` crates call into it.
#![warn(missing_docs)]

pub mod celx;
pub mod change_rules;
pub mod diff;
pub mod entities;
pub mod error;
pub mod events;
pub mod fingerprint;
pub mod health;
pub mod ids;
pub mod model;
pub mod normalize;
pub mod scope;
pub mod search;
pub mod store;

pub use error::DomainError;
pub use model::*;
pub use store::Store;
