//! `serve --demo`: loads the demo catalog kept in `demo/` through the real
//! file scraper (with its analysis rules and cost file), and its topology. The first load ingests the older versions of some files
//! (`demo/previous/`) and then the current ones, so the demo has real diff
//! changes; later starts only re-scrape the current files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use stratum_domain::Store;
use stratum_scrapers::config::LoadedScrapeConfig;
use stratum_scrapers::{RunOptions, load_path, run_scrape};

/// Finds the demo directory: `$STRATUM_DEMO_DIR`, `./demo`, or the one
/// beside the source tree.
pub fn demo_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("STRATUM_DEMO_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let local = PathBuf::from("demo");
    if local.join("scrapers").is_dir() {
        return Ok(local);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo");
    if beside.join("scrapers").is_dir() {
        return Ok(beside);
    }
    bail!("demo catalog not found: run from the repository root or set STRATUM_DEMO_DIR")
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| {
                format!("copying {} to {}", entry.path().display(), target.display())
            })?;
        }
    }
    Ok(())
}

/// Moves the charge periods of the demo's cost files (`costs/*.csv` under
/// `catalog`) by whole days so the latest one ends at today's midnight UTC:
/// the demo's 1d/7d/30d cost windows are never empty.
fn shift_costs(catalog: &Path) -> anyhow::Result<()> {
    use chrono::{DateTime, Duration, Utc};
    let dir = catalog.join("costs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let today = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .context("today's midnight")?;
    let stamp = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let latest = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(3).and_then(|s| stamp(s).ok()))
            .max();
        let Some(latest) = latest else { continue };
        let shift = Duration::days((today - latest).num_days());
        let mut out = String::with_capacity(text.len());
        for (i, line) in text.lines().enumerate() {
            if i == 0 {
                out.push_str(line);
            } else {
                let fields: Vec<String> = line
                    .split(',')
                    .enumerate()
                    .map(|(n, f)| match (n, stamp(f)) {
                        (2 | 3, Ok(t)) => (t + shift).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        _ => f.to_string(),
                    })
                    .collect();
                out.push_str(&fields.join(","));
            }
            out.push('\n');
        }
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn load_configs(dir: &Path) -> anyhow::Result<Vec<LoadedScrapeConfig>> {
    let files = stratum_scrapers::config::config_files(&[dir.to_path_buf()])
        .with_context(|| format!("reading {}", dir.display()))?;
    let mut configs = Vec::new();
    for file in files {
        configs.extend(load_path(&file).with_context(|| format!("loading {}", file.display()))?);
    }
    Ok(configs)
}

/// The demo's topologies (in `work_dir/scrapers`, copied by [`load`]).
pub fn topologies(
    work_dir: &Path,
) -> anyhow::Result<Vec<Arc<stratum_scrapers::topology::LoadedTopology>>> {
    let loaded = stratum_scrapers::topology::load_paths(&[work_dir.join("scrapers")])
        .context("loading the demo topologies")?;
    Ok(loaded.into_iter().map(Arc::new).collect())
}

/// Copies the demo into `work_dir`, ingests it and returns its configs for
/// the scheduler.
pub async fn load(store: &Store, work_dir: &Path) -> anyhow::Result<Vec<Arc<LoadedScrapeConfig>>> {
    let source = demo_dir()?;
    let current = work_dir.join("catalog");
    if current.exists() {
        std::fs::remove_dir_all(&current)
            .with_context(|| format!("clearing {}", current.display()))?;
    }
    copy_tree(&source.join("catalog"), &current)?;
    shift_costs(&current)?;
    copy_tree(&source.join("scrapers"), &work_dir.join("scrapers"))?;
    let configs = load_configs(&work_dir.join("scrapers"))?;

    let mut first_load = true;
    for config in &configs {
        let id = stratum_domain::ids::scraper_id(&config.metadata.namespace, &config.metadata.name);
        if store.has_succeeded_run(id).await? {
            first_load = false;
        }
    }
    let previous = source.join("previous");
    if first_load && previous.is_dir() {
        copy_tree(&previous, &current)?;
        for config in &configs {
            run_scrape(store, config, &RunOptions::default()).await?;
        }
        std::fs::remove_dir_all(&current)?;
        copy_tree(&source.join("catalog"), &current)?;
        shift_costs(&current)?;
    }
    let mut total = 0;
    for config in &configs {
        let report = run_scrape(store, config, &RunOptions::default()).await?;
        total += report.summary.scraped;
        for e in &report.summary.errors {
            tracing::warn!(scraper = %config.metadata.name, error = %e, "demo scrape error");
        }
    }
    tracing::info!(items = total, dir = %work_dir.display(), "demo catalog loaded");
    Ok(configs.into_iter().map(Arc::new).collect())
}
