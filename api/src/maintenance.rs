//! Background upkeep of derived data while `serve` runs: the health rollup
//! recount (SPEC §6: at startup and every 6 h, logging any drift it
//! repairs), the insight lifecycle (SPEC §7: expired silences end,
//! pushed insights not re-pushed for 48 h resolve, insights resolved for
//! 30 days are purged), item cost totals (SPEC §8: hourly, so windows
//! keep ending now) and the default retention (SPEC §5: hourly) for items
//! of scrapers no loaded ScrapeConfig governs, such as pushed ones; each
//! config's own rules are applied by its scheduler on its owning replica.

use std::time::Duration;

use stratum_domain::Store;
use stratum_domain::store::insights::DEFAULT_RESOLVE_AFTER;
use stratum_domain::store::retention::{RetentionPolicy, RetentionTarget};
use stratum_scrapers::ownership::ScraperSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the rollup counts are rebuilt from the paths.
pub const ROLLUP_RECOUNT_EVERY: Duration = Duration::from_secs(6 * 3600);

/// How often item cost totals are recomputed.
pub const COST_RECOMPUTE_EVERY: Duration = Duration::from_secs(3600);

/// How often the insight lifecycle is advanced.
pub const INSIGHT_UPKEEP_EVERY: Duration = Duration::from_secs(60);

/// How often the default retention runs over ungoverned items.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Starts the upkeep loop; it stops when `cancel` fires. `governed` are the
/// scrapers whose configs apply retention rules of their own.
pub fn spawn(store: Store, governed: ScraperSet, tracker: &TaskTracker, cancel: CancellationToken) {
    tracker.spawn(async move {
        let mut last_recount: Option<tokio::time::Instant> = None;
        let mut last_costs: Option<tokio::time::Instant> = None;
        let mut last_retention: Option<tokio::time::Instant> = None;
        loop {
            if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
                default_retention(&store, &governed).await;
                last_retention = Some(tokio::time::Instant::now());
            }
            if last_recount.is_none_or(|t| t.elapsed() >= ROLLUP_RECOUNT_EVERY) {
                recount_rollups(&store).await;
                last_recount = Some(tokio::time::Instant::now());
            }
            if last_costs.is_none_or(|t| t.elapsed() >= COST_RECOMPUTE_EVERY) {
                match store.recompute_costs(stratum_domain::store::now()).await {
                    Ok(moved) => tracing::debug!(items = moved, "item cost totals recomputed"),
                    Err(e) => tracing::error!(error = %e, "cost recompute failed"),
                }
                last_costs = Some(tokio::time::Instant::now());
            }
            insight_upkeep(&store).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(INSIGHT_UPKEEP_EVERY) => {}
            }
        }
    });
}

async fn default_retention(store: &Store, governed: &ScraperSet) {
    let target = RetentionTarget::OtherThan(governed.snapshot());
    match store
        .apply_retention(
            &target,
            &RetentionPolicy::default(),
            stratum_domain::store::now(),
        )
        .await
    {
        Ok(done) if done != Default::default() => tracing::info!(
            changes_deleted = done.changes_deleted,
            items_purged = done.items_purged,
            "default retention applied"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "default retention failed"),
    }
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

async fn insight_upkeep(store: &Store) {
    let now = stratum_domain::store::now();
    match store.insight_upkeep(now).await {
        Ok(done) if done != Default::default() => tracing::info!(
            reopened = done.reopened,
            resolved = done.resolved,
            purged = done.purged,
            "insight silences ended and old insights purged"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "insight upkeep failed"),
    }
    let (namespace, name) = crate::graphql::mutations::PUSH_SCRAPER;
    let push = stratum_domain::ids::scraper_id(namespace, name);
    match store
        .resolve_unobserved_insights(push, now - DEFAULT_RESOLVE_AFTER)
        .await
    {
        Ok(n) if n > 0 => tracing::info!(resolved = n, "pushed insights not re-pushed resolved"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "resolving pushed insights failed"),
    }
}
