//! Background upkeep of derived data while `serve` runs: the health rollup
//! recount (SPEC §6: at startup and every 6 h, logging any drift it
//! repairs).

use std::time::Duration;

use stratum_domain::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the rollup counts are rebuilt from the paths.
pub const ROLLUP_RECOUNT_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Starts the upkeep loop; it stops when `cancel` fires.
pub fn spawn(store: Store, tracker: &TaskTracker, cancel: CancellationToken) {
    tracker.spawn(async move {
        loop {
            recount_rollups(&store).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(ROLLUP_RECOUNT_EVERY) => {}
            }
        }
    });
}

async fn recount_rollups(store: &Store) {
    match store.recompute_rollups().await {
        Ok(drift) if drift.repaired > 0 => tracing::warn!(
            items = drift.items,
            repaired = drift.repaired,
            "health rollup counts had drifted; repaired"
        ),
        Ok(drift) => tracing::debug!(items = drift.items, "health rollup counts verified"),
        Err(e) => tracing::error!(error = %e, "health rollup recount failed"),
    }
}
