//! Stratum's API layer: the GraphQL schema over the catalog, the HTTP
//! router that serves it, and the subcommands of the `stratum` binary.

pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod graphql;
pub mod http;
pub mod maintenance;
pub mod metrics;
pub mod ratelimit;
pub mod serve;
pub mod telemetry;
pub mod ws;
