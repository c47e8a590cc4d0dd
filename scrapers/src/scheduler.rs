//! Runs each loaded ScrapeConfig on its schedule until cancelled, and the
//! watches of its `kubernetes` entries between runs. A config's full runs
//! and watch batches never write at the same time.

use std::sync::Arc;

use stratum_domain::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::LoadedScrapeConfig;
use crate::pipeline::{RunOptions, run_scrape};

/// Spawns one loop per config on `tracker`; each runs at once (when
/// asked), then on its schedule with its jitter, and stops when `cancel`
/// fires.
pub fn spawn_all(
    store: Store,
    configs: Vec<Arc<LoadedScrapeConfig>>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
    run_immediately: bool,
) {
    for config in configs {
        let serial = Arc::new(tokio::sync::Mutex::new(()));
        for source in config.kubernetes.iter().filter(|s| s.watch) {
            let (store, config, source) = (store.clone(), config.clone(), source.clone());
            let (serial, cancel) = (serial.clone(), cancel.clone());
            tracker.spawn(async move {
                let name = config.metadata.name.clone();
                let cluster = source.cluster.clone();
                if let Err(error) =
                    crate::kubernetes::watch::run(store, config, source, serial, cancel).await
                {
                    tracing::error!(scraper = %name, %cluster, %error, "watch stopped");
                }
            });
        }
        let store = store.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let mut first = run_immediately;
            loop {
                if !first {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(
                            config.schedule.next_delay(chrono::Utc::now(), &config.metadata.name)
                        ) => {}
                    }
                }
                first = false;
                let name = config.metadata.name.clone();
                let options = RunOptions::default();
                let _serial = serial.lock().await;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    result = run_scrape(&store, &config, &options) => match result {
                        Ok(report) => tracing::info!(
                            scraper = %name,
                            run_id = %report.run_id,
                            status = %report.status,
                            created = report.summary.created,
                            updated = report.summary.updated,
                            unchanged = report.summary.unchanged,
                            errors = report.summary.errors.len(),
                            "scrape finished"
                        ),
                        Err(error) => tracing::error!(scraper = %name, %error, "scrape failed"),
                    }
                }
            }
        });
    }
}
