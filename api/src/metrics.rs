//! Prometheus metrics (SPEC §14): the process-wide recorder behind the
//! `metrics` facade, rendered at `/metrics` in the text format. The API
//! records requests, latencies and error codes by operation, WebSocket and
//! subscription counts; the store records event-bus lag; the scrapers
//! record runs, durations, items, errors and watch lag; database pool
//! usage is read when `/metrics` is scraped.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use stratum_domain::Store;

/// Latency buckets, seconds: 1 ms to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Distinct operation names kept as labels; later ones count as `other`,
/// so clients cannot grow the series without bound.
const MAX_OPERATION_NAMES: usize = 200;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static OPERATION_NAMES: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` when another
/// recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the metrics recorder; /metrics is off");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "stratum_graphql_requests_total",
        "GraphQL operations executed, by operation name and type"
    );
    describe_histogram!(
        "stratum_graphql_request_duration_seconds",
        Unit::Seconds,
        "Execution time of GraphQL queries and mutations, by operation name"
    );
    describe_counter!(
        "stratum_graphql_errors_total",
        "GraphQL errors returned, by extensions.code"
    );
    describe_gauge!(
        "stratum_websocket_connections",
        "Open GraphQL WebSocket connections"
    );
    describe_gauge!(
        "stratum_subscriptions_active",
        "Running operations on WebSocket connections"
    );
    describe_gauge!(
        "stratum_db_pool_connections",
        "Database pool connections, by pool (writes, reads) and state (idle, in_use)"
    );
    describe_gauge!(
        "stratum_db_pool_max_connections",
        "Largest size of each database pool"
    );
}

/// The label for a client-chosen operation name: itself while few names
/// are known and it is a plain GraphQL name, `other` beyond that,
/// `anonymous` when absent.
pub fn operation_label(name: Option<&str>) -> String {
    let Some(name) = name else {
        return "anonymous".into();
    };
    let plain = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return "other".into();
    }
    let names = OPERATION_NAMES.get_or_init(Default::default);
    let Ok(mut names) = names.lock() else {
        return "other".into();
    };
    if names.contains(name) {
        return name.to_string();
    }
    if names.len() < MAX_OPERATION_NAMES {
        names.insert(name.to_string());
        return name.to_string();
    }
    "other".into()
}

/// One unit of a gauge for as long as it lives (an open connection, a
/// running operation).
pub struct Held(metrics::Gauge);

impl Held {
    /// Adds one to the gauge `name` until dropped.
    pub fn new(name: &'static str) -> Held {
        let gauge = metrics::gauge!(name);
        gauge.increment(1.0);
        Held(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The `/metrics` body: the database pools' gauges are set from `store`
/// first. `None` when no recorder is installed.
pub fn render(store: &Store) -> Option<String> {
    let handle = handle()?;
    for pool in store.pool_usage() {
        metrics::gauge!("stratum_db_pool_connections", "pool" => pool.name, "state" => "idle")
            .set(pool.idle as f64);
        metrics::gauge!("stratum_db_pool_connections", "pool" => pool.name, "state" => "in_use")
            .set((pool.size as usize).saturating_sub(pool.idle) as f64);
        metrics::gauge!("stratum_db_pool_max_connections", "pool" => pool.name)
            .set(pool.max as f64);
    }
    handle.run_upkeep();
    Some(handle.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded_and_plain() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("ListPods")), "ListPods");
        assert_eq!(operation_label(Some("x-y")), "other");
        assert_eq!(operation_label(Some(&"a".repeat(65))), "other");
        for n in 0..(MAX_OPERATION_NAMES + 10) {
            operation_label(Some(&format!("op_{n}")));
        }
        assert_eq!(operation_label(Some("never_seen_before")), "other");
        assert_eq!(operation_label(Some("ListPods")), "ListPods");
    }
}
