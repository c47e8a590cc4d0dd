//! The `stratum` binary.

use std::process::ExitCode;

use clap::Parser;
use stratum_api::cli::{Cli, Command, MigrateAction, check_config, health, scrape_once};

/// mimalloc: scrapes build and drop millions of small JSON nodes, where the
/// system allocator spends a third of the CPU (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            stratum_api::serve::serve(*args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(args) => {
            stratum_api::cli::token(*args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate {
            database_url,
            action,
        } => {
            let store = stratum_domain::Store::connect(&database_url).await?;
            match action.unwrap_or(MigrateAction::Up) {
                MigrateAction::Up => {
                    store.migrate().await?;
                    println!("migrations applied");
                }
                MigrateAction::Down { n } => {
                    store.migrate_down(n).await?;
                    println!("rolled back {n} migration(s)");
                }
                MigrateAction::Status => {
                    for (name, applied) in store.migration_status().await? {
                        println!("{} {name}", if applied { "applied" } else { "pending" });
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Scrape {
            configs,
            database_url,
            allow_mass_delete,
            ..
        } => scrape_once(&configs, &database_url, allow_mass_delete).await,
        Command::Schema => {
            print!("{}", stratum_api::graphql::sdl());
            Ok(ExitCode::SUCCESS)
        }
        Command::Crds => {
            let yaml = stratum_scrapers::crd::crds_yaml()
                .map_err(|e| anyhow::anyhow!("rendering the CRDs: {e}"))?;
            print!("{yaml}");
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig {
            paths,
            config,
            strict,
        } => Ok(check_config(&paths, config.as_deref(), strict)),
        Command::Health {
            files,
            scrape_config,
        } => Ok(health(&files, scrape_config.as_deref())),
    }
}

fn main() -> ExitCode {
    let args = match stratum_api::config::expand_args(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let _telemetry = stratum_api::telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
