//! Item health rollup (SPEC §6) on real SQLite and PostgreSQL: a pod going
//! unhealthy turns its ancestors' `rolled_up_health` unhealthy in the same
//! batch while their own health stays, recovery reverts it, deletes,
//! re-parenting and late-resolved parents keep the counts exact, concurrent
//! writers sharing ancestors lose no update, and the recompute job finds no
//! drift (and repairs drift it is shown).

use serde_json::{Value, json};
use stratum_domain::store::{IngestSession, RunCompletion};
use stratum_domain::{Health, HealthResult, ItemRef, RunMode, ScrapedItem, Store, ids};
use stratum_tests::{Backend, TestDb, item, keep_everything, scrape_items};
use uuid::Uuid;

stratum_tests::on_both_backends!(
    unhealthy_pod_rolls_up_and_recovers,
    deletes_and_moves_keep_counts_exact,
    late_parents_are_counted,
    concurrent_writers_sharing_ancestors_lose_nothing,
    recompute_repairs_drift,
);

const SCRAPER: &str = "rollup";

fn id_of(t: &str, ext: &str) -> Uuid {
    ids::item_id(ids::scraper_id("default", SCRAPER), t, ext)
}

fn with_health(mut i: ScrapedItem, health: Health) -> ScrapedItem {
    i.health = HealthResult {
        health,
        status: Some(health.as_str().into()),
        ready: health == Health::Healthy,
        message: None,
    };
    i
}

fn under(t: &str, ext: &str, parent_type: &str, parent_ext: &str, health: Health) -> ScrapedItem {
    let mut i = with_health(item(t, ext, json!({"name": ext})), health);
    i.parent = Some((
        ItemRef::External {
            item_type: parent_type.into(),
            external_id: parent_ext.into(),
        },
        "parent".into(),
    ));
    i
}

/// Cluster → two namespaces → a deployment each → pods; `sick` pods of
/// `payments` are unhealthy. Namespaces are unknown (as Kubernetes's are).
fn catalog(sick: &[usize], payments_pods: usize) -> Vec<ScrapedItem> {
    let mut items = vec![with_health(
        item("Kubernetes::Cluster", "prod", json!({})),
        Health::Healthy,
    )];
    for ns in ["payments", "search"] {
        items.push(under(
            "Kubernetes::Namespace",
            ns,
            "Kubernetes::Cluster",
            "prod",
            Health::Unknown,
        ));
        items.push(under(
            "Kubernetes::Deployment",
            &format!("{ns}-api"),
            "Kubernetes::Namespace",
            ns,
            Health::Healthy,
        ));
    }
    for p in 0..payments_pods {
        let health = if sick.contains(&p) {
            Health::Unhealthy
        } else {
            Health::Healthy
        };
        items.push(under(
            "Kubernetes::Pod",
            &format!("payments-api-{p}"),
            "Kubernetes::Deployment",
            "payments-api",
            health,
        ));
    }
    items.push(under(
        "Kubernetes::Pod",
        "search-api-0",
        "Kubernetes::Deployment",
        "search-api",
        Health::Healthy,
    ));
    items
}

fn full() -> RunCompletion {
    RunCompletion {
        full: true,
        errors: vec![],
        warnings: vec![],
        stale_item_age: Some(chrono::Duration::zero()),
        max_delete_percent: 100.0,
        allow_mass_delete: true,
    }
}

/// `(own health, rolled-up health, descendant counts)` of an item.
async fn rollup_of(store: &Store, t: &str, ext: &str) -> (String, String, Value) {
    let item = store
        .get_item(id_of(t, ext))
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{t}/{ext} exists"));
    (item.health, item.rolled_up_health, item.descendant_health)
}

async fn assert_no_drift(store: &Store) {
    let drift = store.recompute_rollups().await.expect("recompute");
    assert_eq!(drift.repaired, 0, "the incremental counts drifted");
}

async fn unhealthy_pod_rolls_up_and_recovers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    scrape_items(store, SCRAPER, catalog(&[], 3), keep_everything()).await;
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "payments").await,
        ("unknown".into(), "healthy".into(), json!({"healthy": 4}))
    );
    assert_eq!(
        rollup_of(store, "Kubernetes::Cluster", "prod").await,
        (
            "healthy".into(),
            "healthy".into(),
            json!({"healthy": 6, "unknown": 2})
        )
    );
    assert_no_drift(store).await;

    // One pod crashes: its chain turns unhealthy in rollup, not in health.
    scrape_items(store, SCRAPER, catalog(&[1], 3), keep_everything()).await;
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "payments").await,
        (
            "unknown".into(),
            "unhealthy".into(),
            json!({"healthy": 3, "unhealthy": 1})
        )
    );
    let deployment = rollup_of(store, "Kubernetes::Deployment", "payments-api").await;
    assert_eq!(
        (deployment.0.as_str(), deployment.1.as_str()),
        ("healthy", "unhealthy")
    );
    let cluster = rollup_of(store, "Kubernetes::Cluster", "prod").await;
    assert_eq!(cluster.1, "unhealthy");
    let search = rollup_of(store, "Kubernetes::Namespace", "search").await;
    assert_eq!(search.1, "healthy", "a sibling subtree is untouched");
    let pod = rollup_of(store, "Kubernetes::Pod", "payments-api-1").await;
    assert_eq!((pod.0.as_str(), pod.1.as_str()), ("unhealthy", "unhealthy"));
    assert_no_drift(store).await;

    // It recovers: everything reverts.
    scrape_items(store, SCRAPER, catalog(&[], 3), keep_everything()).await;
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "payments").await,
        ("unknown".into(), "healthy".into(), json!({"healthy": 4}))
    );
    assert_eq!(
        rollup_of(store, "Kubernetes::Cluster", "prod").await.1,
        "healthy"
    );
    assert_no_drift(store).await;
}

async fn deletes_and_moves_keep_counts_exact(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    scrape_items(store, SCRAPER, catalog(&[2], 3), full()).await;
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "payments")
            .await
            .1,
        "unhealthy"
    );

    // The crashing pod is gone from the source: a full run deletes it.
    scrape_items(store, SCRAPER, catalog(&[], 2), full()).await;
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "payments").await,
        ("unknown".into(), "healthy".into(), json!({"healthy": 3}))
    );
    assert_no_drift(store).await;

    // It comes back crashing: the revived row counts again.
    scrape_items(store, SCRAPER, catalog(&[2], 3), full()).await;
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "payments")
            .await
            .2,
        json!({"healthy": 3, "unhealthy": 1})
    );

    // The deployment moves to `search` with its pods.
    let mut moved = catalog(&[2], 3);
    for i in &mut moved {
        if i.external_ids[0] == "payments-api" {
            i.parent = Some((
                ItemRef::External {
                    item_type: "Kubernetes::Namespace".into(),
                    external_id: "search".into(),
                },
                "parent".into(),
            ));
        }
    }
    scrape_items(store, SCRAPER, moved, full()).await;
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "payments").await,
        ("unknown".into(), "unknown".into(), json!({}))
    );
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "search").await,
        (
            "unknown".into(),
            "unhealthy".into(),
            json!({"healthy": 5, "unhealthy": 1})
        )
    );
    assert_eq!(
        rollup_of(store, "Kubernetes::Cluster", "prod").await.2,
        json!({"healthy": 5, "unhealthy": 1, "unknown": 2})
    );
    assert_no_drift(store).await;
}

/// Children written in a batch before their parent exists get their parent
/// when the run settles; the parent's counts include them.
async fn late_parents_are_counted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let scraper = store
        .upsert_scraper(
            &stratum_domain::store::ScraperRecord {
                name: SCRAPER.into(),
                namespace: "default".into(),
                spec: json!({}),
                source: stratum_domain::ScraperSource::File,
            },
            true,
        )
        .await
        .expect("scraper");
    let (run, started) = store
        .start_run(scraper, RunMode::Full)
        .await
        .expect("start");
    let mut session = IngestSession::new(scraper, run, started);
    let mut items = catalog(&[0], 2);
    // Pods first, one batch each; their deployment comes last.
    items.reverse();
    for i in items {
        store
            .ingest_batch(&mut session, vec![i])
            .await
            .expect("ingest");
    }
    store
        .complete_run(&mut session, &keep_everything())
        .await
        .expect("complete");
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "payments").await,
        (
            "unknown".into(),
            "unhealthy".into(),
            json!({"healthy": 2, "unhealthy": 1})
        )
    );
    assert_eq!(
        rollup_of(store, "Kubernetes::Cluster", "prod").await.2,
        json!({"healthy": 4, "unhealthy": 1, "unknown": 2})
    );
    assert_no_drift(store).await;
}

/// Two scrapers write, batch after batch and at the same time, items under
/// one shared parent (a parent by id): no count is lost.
async fn concurrent_writers_sharing_ancestors_lose_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    scrape_items(store, SCRAPER, catalog(&[], 1), keep_everything()).await;
    let cluster = id_of("Kubernetes::Cluster", "prod");
    let writer = |name: &'static str| {
        let store = store.clone();
        async move {
            for round in 0..4 {
                let items: Vec<ScrapedItem> = (0..300)
                    .map(|n| {
                        let health = if (n + round) % 7 == 0 {
                            Health::Unhealthy
                        } else {
                            Health::Healthy
                        };
                        let mut i = with_health(
                            item("Test::Thing", &format!("{name}-{n}"), json!({"n": n})),
                            health,
                        );
                        i.parent = Some((ItemRef::Id(cluster), "parent".into()));
                        i
                    })
                    .collect();
                write_in_small_batches(&store, name, items).await;
            }
        }
    };
    tokio::join!(writer("left"), writer("right"));
    let (_, rolled, counts) = rollup_of(store, "Kubernetes::Cluster", "prod").await;
    assert_eq!(rolled, "unhealthy");
    let total: i64 = counts
        .as_object()
        .expect("counts")
        .values()
        .filter_map(Value::as_i64)
        .sum();
    assert_eq!(total, 2 + 2 + 2 + 600, "{counts}");
    assert_no_drift(store).await;
}

/// One run of scraper `name` in batches of 10, so two writers' transactions
/// overlap many times.
async fn write_in_small_batches(store: &Store, name: &str, items: Vec<ScrapedItem>) {
    let scraper = store
        .upsert_scraper(
            &stratum_domain::store::ScraperRecord {
                name: name.into(),
                namespace: "default".into(),
                spec: json!({}),
                source: stratum_domain::ScraperSource::File,
            },
            true,
        )
        .await
        .expect("scraper");
    let (run, started) = store
        .start_run(scraper, RunMode::Full)
        .await
        .expect("start");
    let mut session = IngestSession::new(scraper, run, started);
    for batch in items.chunks(10) {
        store
            .ingest_batch(&mut session, batch.to_vec())
            .await
            .expect("ingest");
    }
    store
        .complete_run(&mut session, &keep_everything())
        .await
        .expect("complete");
}

async fn recompute_repairs_drift(backend: Backend) {
    use sea_orm::ConnectionTrait;
    let db = TestDb::new(backend).await;
    let store = &db.store;
    scrape_items(store, SCRAPER, catalog(&[1], 3), keep_everything()).await;
    let namespace = id_of("Kubernetes::Namespace", "payments");
    let sql = match store.backend() {
        sea_orm::DbBackend::Postgres => {
            "UPDATE config_items SET descendant_health = '{}', rolled_up_health = 'unknown' WHERE id = $1"
        }
        _ => {
            "UPDATE config_items SET descendant_health = '{}', rolled_up_health = 'unknown' WHERE id = ?"
        }
    };
    store
        .connection()
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            store.backend(),
            sql,
            [namespace.into()],
        ))
        .await
        .expect("corrupt");
    let drift = store.recompute_rollups().await.expect("recompute");
    assert_eq!(drift.repaired, 1);
    assert!(drift.items >= 9);
    assert_eq!(
        rollup_of(store, "Kubernetes::Namespace", "payments").await,
        (
            "unknown".into(),
            "unhealthy".into(),
            json!({"healthy": 3, "unhealthy": 1})
        )
    );
    assert_no_drift(store).await;
}
