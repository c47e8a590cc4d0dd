//! Rollup benchmark (issue #7): re-ingest of 10k changed pods under a
//! cluster → 50 namespaces tree, on a catalog without a topology and on
//! one whose 200 components attach all of them, on SQLite and PostgreSQL.
//!
//! Each round rewrites every pod's config; "health flips" rounds also turn
//! every pod's health (so every ancestor count and every component moves),
//! "config only" rounds keep it (no rollup work). The figures: ingest time
//! per round, and what the component rollup adds to the health-flip
//! rounds.
//!
//! `cargo bench -p stratum-tests --bench rollup` runs 10k pods and 5 rounds
//! per scenario (`STRATUM_BENCH_ITEMS`, `STRATUM_BENCH_ROUNDS` override);
//! under `cargo test` a 1k-pod, 1-round smoke pass keeps it tested.

use std::time::Instant;

use serde_json::json;
use stratum_domain::store::topology::{ComponentSpec, ConfigSelector, TopologyPlan};
use stratum_domain::store::{IngestSession, RunCompletion, ScraperRecord};
use stratum_domain::{Health, HealthResult, ItemRef, RunMode, ScrapedItem, ScraperSource, Store};
use stratum_tests::{Backend, TestDb, item};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAMESPACES: usize = 50;

fn catalog(pods: usize, round: usize, flip: bool) -> Vec<ScrapedItem> {
    let mut items = vec![item("Kubernetes::Cluster", "bench", json!({}))];
    for n in 0..NAMESPACES {
        let mut ns = item("Kubernetes::Namespace", &format!("ns-{n}"), json!({}));
        ns.parent = Some((
            ItemRef::External {
                item_type: "Kubernetes::Cluster".into(),
                external_id: "bench".into(),
            },
            "ClusterNamespace".into(),
        ));
        items.push(ns);
    }
    for p in 0..pods {
        let mut pod = item(
            "Kubernetes::Pod",
            &format!("pod-{p}"),
            json!({"spec": {"nodeName": format!("node-{}", p % 100)}, "round": round}),
        );
        let namespace = format!("ns-{}", p % NAMESPACES);
        pod.namespace = Some(namespace.clone());
        pod.labels.insert("app".into(), format!("app-{}", p % 4));
        let sick = flip && round % 2 == 1;
        pod.health = HealthResult {
            health: if sick {
                Health::Unhealthy
            } else {
                Health::Healthy
            },
            status: Some(if sick { "CrashLoopBackOff" } else { "Running" }.into()),
            ready: !sick,
            message: None,
        };
        pod.parent = Some((
            ItemRef::External {
                item_type: "Kubernetes::Namespace".into(),
                external_id: namespace,
            },
            "NamespacePod".into(),
        ));
        items.push(pod);
    }
    items
}

/// 10 products of 19 services each plus the products: 200 components; every
/// service attaches the pods of one namespace and one `app` label.
fn topology() -> TopologyPlan {
    let components = (0..10)
        .map(|product| ComponentSpec {
            name: format!("product-{product}"),
            component_type: "Product".into(),
            components: (0..19)
                .map(|s| {
                    let k = product * 19 + s;
                    let mut labels = std::collections::BTreeMap::new();
                    labels.insert("app".to_string(), format!("app-{}", k % 4));
                    ComponentSpec {
                        name: format!("service-{k}"),
                        component_type: "Service".into(),
                        configs: vec![ConfigSelector {
                            namespaces: vec![format!("ns-{}", k % NAMESPACES)],
                            labels,
                            ..ConfigSelector::default()
                        }],
                        ..ComponentSpec::default()
                    }
                })
                .collect(),
            ..ComponentSpec::default()
        })
        .collect();
    TopologyPlan {
        namespace: "bench".into(),
        name: "bench".into(),
        components,
    }
}

async fn ingest(store: &Store, items: Vec<ScrapedItem>) -> f64 {
    let scraper = store
        .upsert_scraper(
            &ScraperRecord {
                name: "rollup".into(),
                namespace: "bench".into(),
                spec: json!({}),
                source: ScraperSource::File,
            },
            false,
        )
        .await
        .expect("scraper");
    let (run, started) = store.start_run(scraper, RunMode::Full).await.expect("run");
    let t = Instant::now();
    let mut session = IngestSession::new(scraper, run, started);
    store.preload_existing(&mut session).await.expect("preload");
    for batch in items.chunks(500) {
        store
            .ingest_batch(&mut session, batch.to_vec())
            .await
            .expect("ingest");
    }
    store
        .complete_run(
            &mut session,
            &RunCompletion {
                full: false,
                errors: vec![],
                warnings: vec![],
                stale_item_age: None,
                max_delete_percent: 20.0,
                allow_mass_delete: false,
            },
        )
        .await
        .expect("complete");
    t.elapsed().as_secs_f64()
}

/// Mean seconds per round of `rounds` re-ingests.
async fn rounds(store: &Store, pods: usize, rounds: usize, flip: bool, offset: usize) -> f64 {
    let mut total = 0.0;
    for r in 0..rounds {
        total += ingest(store, catalog(pods, offset + r + 1, flip)).await;
    }
    total / rounds as f64
}

async fn scenario(backend: Backend, pods: usize, n: usize, with_topology: bool) -> (f64, f64) {
    let db = TestDb::for_bench(backend).await;
    let store = &db.store;
    ingest(store, catalog(pods, 0, false)).await;
    if with_topology {
        let outcome = store.apply_topology(&topology()).await.expect("topology");
        assert_eq!(outcome.components, 200);
        assert!(outcome.attached as usize >= pods, "every pod is attached");
    }
    // Steady state: planner statistics for what was just loaded (a fresh
    // PostgreSQL table has none until autovacuum gets to it), and one
    // unmeasured round of each kind.
    if store.backend() == sea_orm::DbBackend::Postgres {
        use sea_orm::ConnectionTrait;
        store
            .connection()
            .execute_unprepared("ANALYZE")
            .await
            .expect("analyze");
    }
    rounds(store, pods, 1, false, 500).await;
    rounds(store, pods, 2, true, 600).await;
    let config_only = rounds(store, pods, n, false, 0).await;
    // An even number of flips ends healthy, so rounds are alike.
    let flips = rounds(store, pods, n.max(1) * 2, true, 1000).await;
    let drift = store.recompute_rollups().await.expect("recount");
    assert_eq!(drift.repaired, 0, "rollup drifted");
    (config_only, flips)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (pods, n) = if full {
        (
            env("STRATUM_BENCH_ITEMS", 10_000),
            env("STRATUM_BENCH_ROUNDS", 5),
        )
    } else {
        (1_000, 1)
    };
    let only = std::env::var("STRATUM_BENCH_BACKENDS").unwrap_or_default();
    let backends: Vec<Backend> = if full {
        [Backend::Sqlite, Backend::Postgres]
            .into_iter()
            .filter(|b| only.is_empty() || only.contains(&format!("{b:?}").to_lowercase()))
            .collect()
    } else {
        vec![Backend::Sqlite]
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("rollup benchmark: {pods} changed pods under 50 namespaces, mean of rounds");
    for backend in backends {
        let (plain_config, plain_flip) = rt.block_on(scenario(backend, pods, n, false));
        let (topo_config, topo_flip) = rt.block_on(scenario(backend, pods, n, true));
        let ms = |s: f64| s * 1000.0;
        println!(
            "{backend:?}: no topology: config only {:>7.0} ms, health flips {:>7.0} ms | 200 components: config only {:>7.0} ms, health flips {:>7.0} ms",
            ms(plain_config),
            ms(plain_flip),
            ms(topo_config),
            ms(topo_flip)
        );
        println!(
            "{backend:?}: component rollup adds {:+.1}% to a health-flip ingest; item + component rollup and health changes add {:+.1}% over a config-only ingest",
            (topo_flip / plain_flip - 1.0) * 100.0,
            (topo_flip / topo_config - 1.0) * 100.0
        );
    }
}
