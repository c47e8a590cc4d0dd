//! The `stratum` command line (SPEC §2 "Subcommands"). Exit codes: 0 ok,
//! 1 failure, 2 usage or configuration error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stratum_domain::{RunStatus, Store};
use stratum_scrapers::config::LoadedScrapeConfig;
use stratum_scrapers::{RunOptions, ScraperError, load_path, run_scrape};

/// The default embedded database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://stratum.db";

/// Stratum: a catalog of everything your systems run, as one GraphQL graph.
#[derive(Debug, Parser)]
#[command(name = "stratum", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server and the scrapers.
    Serve(ServeArgs),
    /// Apply or inspect database migrations.
    Migrate {
        /// Database URL.
        #[arg(long, env = "STRATUM_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
        database_url: String,
        /// `up` (default), `down N` or `status`.
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Run scrape configs once and exit.
    Scrape {
        /// Run once (the only mode).
        #[arg(long, required = true)]
        once: bool,
        /// ScrapeConfig files.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Database URL.
        #[arg(long, env = "STRATUM_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
        database_url: String,
        /// Override the deletion safety valve.
        #[arg(long)]
        allow_mass_delete: bool,
    },
    /// Print the GraphQL SDL (the content of `schema.graphql`).
    Schema,
    /// Validate ScrapeConfig files; prints `file:line:col: level: msg`.
    CheckConfig {
        /// Files to check.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
}

/// `migrate` actions.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply pending migrations.
    Up,
    /// Roll back the last N migrations.
    Down {
        /// How many.
        n: u32,
    },
    /// List migrations and whether they are applied.
    Status,
}

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "STRATUM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Database URL (`sqlite://…` or `postgres://…`).
    #[arg(long, env = "STRATUM_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// ScrapeConfig files or directories to run on their schedules.
    #[arg(
        long = "scrape-config",
        env = "STRATUM_SCRAPE_CONFIG",
        value_delimiter = ','
    )]
    pub scrape_configs: Vec<PathBuf>,
    /// Load the demo catalog.
    #[arg(long, env = "STRATUM_DEMO")]
    pub demo: bool,
    /// Where the demo's working copy lives.
    #[arg(long, env = "STRATUM_DEMO_WORK_DIR", default_value = ".stratum-demo")]
    pub demo_work_dir: PathBuf,
    /// Serve schema introspection (and field suggestions in errors).
    #[arg(long, env = "STRATUM_INTROSPECTION", default_value = "on")]
    pub introspection: Switch,
    /// Deepest query accepted.
    #[arg(long, env = "STRATUM_MAX_DEPTH", default_value_t = 10)]
    pub max_depth: usize,
    /// Largest query complexity accepted (a connection costs `first × child`).
    #[arg(long, env = "STRATUM_MAX_COMPLEXITY", default_value_t = 5000)]
    pub max_complexity: usize,
    /// Most aliases in one query.
    #[arg(long, env = "STRATUM_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    /// Most operations in one batch.
    #[arg(long, env = "STRATUM_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,
    /// Largest request body, bytes.
    #[arg(long, env = "STRATUM_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest a request may run (`15s`, `1m`).
    #[arg(long, env = "STRATUM_REQUEST_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub request_timeout: std::time::Duration,
}

/// An on/off switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl ServeArgs {
    /// The schema options these flags ask for.
    pub fn schema_options(&self) -> crate::graphql::SchemaOptions {
        let defaults = crate::graphql::Limits::default();
        crate::graphql::SchemaOptions {
            limits: crate::graphql::Limits {
                depth: self.max_depth,
                complexity: self.max_complexity,
                aliases: self.max_aliases,
                batch: self.max_batch,
                body_bytes: self.max_body_bytes,
                timeout: self.request_timeout,
                ..defaults
            },
            introspection: self.introspection == Switch::On,
        }
    }
}

/// Connects and migrates.
pub async fn open_store(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Loads configs from files or directories (directories: `*.yaml`, `*.yml`).
pub fn load_configs(paths: &[PathBuf]) -> Result<Vec<LoadedScrapeConfig>, ScraperError> {
    let mut configs = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| ScraperError::Io {
                    path: path.display().to_string(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            for f in files {
                configs.extend(load_path(&f)?);
            }
        } else {
            configs.extend(load_path(path)?);
        }
    }
    Ok(configs)
}

/// Best-effort `metadata` of a config file that failed to load.
fn identity_of(path: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: serde_json::Value = serde_yaml_ng_value(&text)?;
    let name = doc.pointer("/metadata/name")?.as_str()?.to_string();
    let namespace = doc
        .pointer("/metadata/namespace")
        .and_then(|v| v.as_str())
        .unwrap_or("default")
        .to_string();
    Some((namespace, name))
}

fn serde_yaml_ng_value(text: &str) -> Option<serde_json::Value> {
    stratum_scrapers::file::parse_file(Path::new("config.yaml"), text, Some("yaml"))
        .ok()?
        .into_iter()
        .next()
}

/// `stratum scrape --once`.
pub async fn scrape_once(
    configs: &[PathBuf],
    url: &str,
    allow_mass_delete: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_store(url).await?;
    let mut code = ExitCode::SUCCESS;
    for path in configs {
        let loaded = match load_path(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                if let Some((namespace, name)) = identity_of(path) {
                    stratum_scrapers::pipeline::record_rejected(
                        &store,
                        &namespace,
                        &name,
                        vec![e.to_string()],
                    )
                    .await
                    .context("recording the failed run")?;
                }
                code = ExitCode::from(2);
                continue;
            }
        };
        for config in loaded {
            for w in &config.warnings {
                eprintln!("{w}");
            }
            let report = run_scrape(&store, &config, &RunOptions { allow_mass_delete })
                .await
                .with_context(|| format!("scraping {}", config.metadata.name))?;
            let s = &report.summary;
            println!(
                "{}/{}: {} — {} scraped, {} created, {} updated, {} unchanged, {} deleted, {} changes",
                config.metadata.namespace,
                config.metadata.name,
                report.status,
                s.scraped,
                s.created,
                s.updated,
                s.unchanged,
                s.deleted,
                s.changes
            );
            for e in &s.errors {
                eprintln!("error: {e}");
            }
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            if report.status != RunStatus::Succeeded && code == ExitCode::SUCCESS {
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

/// `stratum check-config`.
pub fn check_config(paths: &[PathBuf], strict: bool) -> ExitCode {
    let mut errors = 0;
    let mut warnings = 0;
    for path in paths {
        match load_path(path) {
            Ok(configs) => {
                for c in configs {
                    for w in &c.warnings {
                        println!("{w}");
                        warnings += 1;
                    }
                }
            }
            Err(ScraperError::Invalid(diags)) => {
                for d in diags {
                    println!("{d}");
                    errors += 1;
                }
            }
            Err(e) => {
                println!("{}:1:1: error: {e}", path.display());
                errors += 1;
            }
        }
    }
    if errors > 0 || (strict && warnings > 0) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
