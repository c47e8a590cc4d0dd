//! Runs each loaded ScrapeConfig on its schedule until cancelled, and the
//! watches of its `kubernetes` entries between runs, on the replica that
//! owns it ([`crate::ownership`]). A config's full runs and watch batches
//! never write at the same time. A failed run is retried with backoff
//! (sooner than its schedule, never later); a replica that takes a config
//! over runs it at once. Everything a config writes goes through the store
//! handle its ownership claim fences.

use std::sync::Arc;
use std::time::Duration;

use stratum_domain::{RunStatus, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::LoadedScrapeConfig;
use crate::ownership::Ownership;
use crate::pipeline::{RunOptions, run_scrape};

/// The first retry after a failure; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait before retry number `failures` (1-based).
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

/// How often a config's retention rules are applied (SPEC §5: hourly).
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The id a config's scraper has.
pub fn scraper_id(config: &LoadedScrapeConfig) -> Uuid {
    stratum_domain::ids::scraper_id(&config.metadata.namespace, &config.metadata.name)
}

/// Spawns one loop per config on `tracker`; each runs at once (when
/// asked, or when this replica takes it over), then on its schedule with
/// its jitter, while this replica owns it; everything stops when `cancel`
/// fires.
pub fn spawn_all(
    store: Store,
    configs: Vec<Arc<LoadedScrapeConfig>>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
    run_immediately: bool,
    ownership: Ownership,
) {
    for config in configs {
        spawn_one(
            store.clone(),
            config,
            tracker,
            cancel.clone(),
            run_immediately,
            ownership.clone(),
            None,
        );
    }
}

/// Told the outcome of every full run of a config (the CRD controller
/// writes it to the resource's status).
pub type RunReporter =
    Arc<dyn Fn(&Result<crate::pipeline::RunReport, crate::error::ScraperError>) + Send + Sync>;

/// Spawns the loops of one config (its runs, and the watches of its
/// `kubernetes` entries) on `tracker` until `cancel` fires; see
/// [`spawn_all`]. `reporter` hears of every finished run.
pub fn spawn_one(
    store: Store,
    config: Arc<LoadedScrapeConfig>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
    run_immediately: bool,
    ownership: Ownership,
    reporter: Option<RunReporter>,
) {
    {
        let id = scraper_id(&config);
        let serial = Arc::new(tokio::sync::Mutex::new(()));
        for source in config.kubernetes.iter().filter(|s| s.watch) {
            let (store, config, source) = (store.clone(), config.clone(), source.clone());
            let (serial, cancel, mut ownership) =
                (serial.clone(), cancel.clone(), ownership.clone());
            tracker.spawn(async move {
                let name = config.metadata.name.clone();
                let cluster = source.cluster.clone();
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = ownership.until_owned(id) => {}
                    }
                    let session = cancel.child_token();
                    let watch = crate::kubernetes::watch::run(
                        ownership.store_for(&store, id),
                        config.clone(),
                        source.clone(),
                        serial.clone(),
                        session.clone(),
                    );
                    tokio::pin!(watch);
                    let ended = tokio::select! {
                        ended = &mut watch => Some(ended),
                        _ = ownership.until_lost(id) => None,
                    };
                    let ended = match ended {
                        Some(ended) => ended,
                        None => {
                            tracing::info!(scraper = %name, %cluster, "ownership lost; stopping the watch");
                            session.cancel();
                            watch.await
                        }
                    };
                    if let Err(error) = ended {
                        tracing::error!(scraper = %name, %cluster, %error, "watch stopped; restarting");
                    }
                    if cancel.is_cancelled() {
                        return;
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(FIRST_BACKOFF) => {}
                    }
                }
            });
        }
        tracker.spawn(retention_loop(
            store.clone(),
            config.clone(),
            serial.clone(),
            cancel.clone(),
            ownership.clone(),
        ));
        let store = store.clone();
        let (cancel, mut ownership) = (cancel.clone(), ownership.clone());
        tracker.spawn(async move {
            let name = config.metadata.name.clone();
            let mut immediate = run_immediately;
            let mut failures = 0u32;
            loop {
                if !ownership.owns(id) {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = ownership.until_owned(id) => {}
                    }
                    tracing::info!(scraper = %name, "owning this scraper now; running it");
                    immediate = true;
                }
                if !immediate {
                    let mut delay = config.schedule.next_delay(chrono::Utc::now(), &name);
                    if failures > 0 {
                        delay = delay.min(backoff(failures));
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = ownership.until_lost(id) => continue,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                immediate = false;
                let options = RunOptions::default();
                let _serial = serial.lock().await;
                let fenced = ownership.store_for(&store, id);
                let result = tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ownership.until_lost(id) => {
                        tracing::warn!(scraper = %name, "ownership lost mid-run; the run is abandoned");
                        continue;
                    }
                    result = run_scrape(&fenced, &config, &options) => result,
                };
                if let Some(report) = &reporter {
                    report(&result);
                }
                match result {
                    Ok(report) => {
                        failures = match report.status {
                            RunStatus::Succeeded => 0,
                            _ => failures + 1,
                        };
                        tracing::info!(
                            scraper = %name,
                            run_id = %report.run_id,
                            status = %report.status,
                            created = report.summary.created,
                            updated = report.summary.updated,
                            unchanged = report.summary.unchanged,
                            errors = report.summary.errors.len(),
                            "scrape finished"
                        )
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::error!(scraper = %name, %error, retry_in = ?backoff(failures), "scrape failed")
                    }
                }
            }
        });
    }
}

/// Applies the config's retention rules when this replica takes it over
/// and then every [`RETENTION_EVERY`] while it owns it, between runs.
async fn retention_loop(
    store: Store,
    config: Arc<LoadedScrapeConfig>,
    serial: Arc<tokio::sync::Mutex<()>>,
    cancel: CancellationToken,
    mut ownership: Ownership,
) {
    use stratum_domain::store::retention::RetentionTarget;
    let id = scraper_id(&config);
    let name = config.metadata.name.clone();
    loop {
        if !ownership.owns(id) {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ownership.until_owned(id) => {}
            }
        }
        let applied = {
            let _serial = tokio::select! {
                _ = cancel.cancelled() => return,
                guard = serial.lock() => guard,
            };
            ownership
                .store_for(&store, id)
                .apply_retention(
                    &RetentionTarget::Scraper(id),
                    &config.retention,
                    stratum_domain::store::now(),
                )
                .await
        };
        match applied {
            Ok(done) if done != Default::default() => tracing::info!(
                scraper = %name,
                changes_deleted = done.changes_deleted,
                items_purged = done.items_purged,
                "retention applied"
            ),
            Ok(_) => {}
            Err(error) => tracing::error!(scraper = %name, %error, "retention failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ownership.until_lost(id) => {}
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
