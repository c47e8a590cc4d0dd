//! Stratum's scrapers: ScrapeConfig documents, the `file`, `kubernetes`,
//! `http` and `sql` scrapers, the ingest pipeline that turns scraped
//! documents into catalog items and insights (through `stratum-domain`
//! only), and the scheduler that runs them.

pub mod analysis;
pub mod change_mapping;
pub mod config;
pub mod cost;
pub mod crd;
pub mod crd_controller;
pub mod error;
pub mod extract;
pub mod file;
pub mod kubernetes;
pub mod kubernetes_links;
pub mod ownership;
pub mod pipeline;
pub mod relationships;
pub mod remote;
pub mod scheduler;
pub mod topology;

pub use config::{
    Diagnostic, LoadedScrapeConfig, Severity as DiagnosticSeverity, load_path, load_str,
};
pub use error::ScraperError;
pub use pipeline::{HealthSubject, RunOptions, RunReport, apply_health_rules, run_scrape};
