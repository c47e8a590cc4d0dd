//! Store tests on real SQLite and PostgreSQL: upsert idempotence, diff and
//! health changes, dedupe, traversal, tombstoning and the safety valve.

use chrono::Duration;
use sea_orm::ConnectionTrait;
use serde_json::json;
use stratum_domain::store::{
    Direction, IngestSession, RelationKind, RunCompletion, TraversalQuery,
};
use stratum_domain::{Health, ItemRef, RunMode, ScrapedItem, ScrapedRelationship, Store, ids};
use stratum_tests::{Backend, TestDb, item};
use uuid::Uuid;

stratum_tests::on_both_backends!(
    upsert_is_idempotent,
    config_change_records_one_diff,
    repeated_change_bumps_count,
    health_transition_is_a_change,
    traversal_follows_direction_relation_and_depth,
    traversal_is_cycle_safe_and_capped,
    full_run_tombstones_missing_edges,
    stale_items_are_deleted_behind_the_safety_valve,
    safety_valve_counts_in_sql_without_an_index,
    reappearing_item_is_undeleted,
    listed_rows_decode_every_column,
);

const SCRAPER: &str = "test";

async fn run(store: &Store, items: Vec<ScrapedItem>) -> stratum_domain::store::BatchStats {
    run_with(store, items, completion(vec![])).await.0
}

/// Whether runs preload the scraper's index as the pipeline does (the
/// safety valve then counts from memory) or leave the store to count in SQL.
#[derive(Clone, Copy)]
enum Index {
    Preloaded,
    NotLoaded,
}

fn completion(errors: Vec<String>) -> RunCompletion {
    RunCompletion {
        full: true,
        errors,
        warnings: vec![],
        stale_item_age: Some(Duration::zero()),
        max_delete_percent: 20.0,
        allow_mass_delete: false,
    }
}

async fn run_with(
    store: &Store,
    items: Vec<ScrapedItem>,
    completion: RunCompletion,
) -> (
    stratum_domain::store::BatchStats,
    stratum_domain::store::RunOutcome,
) {
    run_indexed(store, items, completion, Index::Preloaded).await
}

async fn run_indexed(
    store: &Store,
    items: Vec<ScrapedItem>,
    completion: RunCompletion,
    index: Index,
) -> (
    stratum_domain::store::BatchStats,
    stratum_domain::store::RunOutcome,
) {
    backdate_previous_scrapes(store).await;
    let scraper = scraper(store).await;
    let (run_id, started) = store
        .start_run(scraper, RunMode::Full)
        .await
        .expect("start run");
    let mut session = IngestSession::new(scraper, run_id, started);
    if matches!(index, Index::Preloaded) {
        store.preload_existing(&mut session).await.expect("preload");
    }
    let stats = if items.is_empty() {
        Default::default()
    } else {
        store
            .ingest_batch(&mut session, items)
            .await
            .expect("ingest")
    };
    let outcome = store
        .complete_run(&mut session, &completion)
        .await
        .expect("complete");
    (stats, outcome)
}

/// Moves every item's `last_scraped_at` an hour back, as if the previous
/// scrape ran an hour ago, so stale deletion (which spares items scraped
/// within twice the run's duration) does not depend on how fast tests run.
async fn backdate_previous_scrapes(store: &Store) {
    use sea_orm::ConnectionTrait;
    let backend = store.backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "UPDATE config_items SET last_scraped_at = $1",
        _ => "UPDATE config_items SET last_scraped_at = ?",
    };
    let hour_ago = stratum_domain::store::now() - Duration::hours(1);
    store
        .connection()
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [hour_ago.into()],
        ))
        .await
        .expect("backdate");
}

async fn scraper(store: &Store) -> Uuid {
    store
        .upsert_scraper(
            &stratum_domain::store::ScraperRecord {
                name: SCRAPER.into(),
                namespace: "default".into(),
                spec: json!({}),
                source: stratum_domain::ScraperSource::File,
            },
            false,
        )
        .await
        .expect("scraper")
}

fn id_of(t: &str, ext: &str) -> Uuid {
    ids::item_id(ids::scraper_id("default", SCRAPER), t, ext)
}

fn child(t: &str, ext: &str, parent_type: &str, parent_ext: &str) -> ScrapedItem {
    let mut i = item(t, ext, json!({"name": ext}));
    i.parent = Some((
        ItemRef::External {
            item_type: parent_type.into(),
            external_id: parent_ext.into(),
        },
        format!("{parent_type}{t}"),
    ));
    i
}

async fn upsert_is_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let items = || {
        (0..50)
            .map(|i| {
                item(
                    "Test::Thing",
                    &format!("t{i}"),
                    json!({"i": i, "nested": {"b": 1, "a": 2}}),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = run(&db.store, items()).await;
    assert_eq!((first.created, first.updated, first.unchanged), (50, 0, 0));
    let before = db
        .store
        .get_item(id_of("Test::Thing", "t7"))
        .await
        .expect("get")
        .expect("exists");

    let second = run(&db.store, items()).await;
    assert_eq!(
        (
            second.created,
            second.updated,
            second.unchanged,
            second.changes
        ),
        (0, 0, 50, 0)
    );
    let after = db
        .store
        .get_item(id_of("Test::Thing", "t7"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(before.updated_at, after.updated_at);
    assert_eq!(before.config, after.config);
    assert!(after.last_scraped_at >= before.last_scraped_at);
    assert_eq!(db.store.count_changes(None).await.expect("count"), 0);
}

async fn config_change_records_one_diff(backend: Backend) {
    let db = TestDb::new(backend).await;
    run(
        &db.store,
        vec![item(
            "Test::Deployment",
            "api",
            json!({"spec": {"replicas": 2, "image": "api:1"}}),
        )],
    )
    .await;
    let stats = run(
        &db.store,
        vec![item(
            "Test::Deployment",
            "api",
            json!({"spec": {"replicas": 2, "image": "api:2"}}),
        )],
    )
    .await;
    assert_eq!((stats.updated, stats.changes), (1, 1));
    let changes = db
        .store
        .item_changes(id_of("Test::Deployment", "api"), 10)
        .await
        .expect("changes");
    assert_eq!(changes.len(), 1);
    let c = &changes[0];
    assert_eq!(c.change_type, "diff");
    assert_eq!(c.summary, "spec.image");
    assert_eq!(c.patches, Some(json!({"spec": {"image": "api:2"}})));
    let diff = c.diff.clone().expect("unified diff");
    assert!(
        diff.contains("-    \"image\": \"api:1\"") && diff.contains("+    \"image\": \"api:2\""),
        "{diff}"
    );
}

async fn repeated_change_bumps_count(backend: Backend) {
    let db = TestDb::new(backend).await;
    let with = |n: i64| {
        vec![item(
            "Test::Deployment",
            "api",
            json!({"spec": {"replicas": n}}),
        )]
    };
    run(&db.store, with(1)).await;
    run(&db.store, with(2)).await;
    run(&db.store, with(3)).await;
    let id = id_of("Test::Deployment", "api");
    let changes = db.store.item_changes(id, 10).await.expect("changes");
    assert_eq!(
        changes.len(),
        1,
        "same-shaped changes within the window dedupe"
    );
    assert_eq!(changes[0].count, 2);
    assert_eq!(
        changes[0].patches,
        Some(json!({"spec": {"replicas": 3}})),
        "latest values win"
    );
}

async fn health_transition_is_a_change(backend: Backend) {
    let db = TestDb::new(backend).await;
    run(&db.store, vec![item("Test::Pod", "p", json!({"a": 1}))]).await;
    let mut bad = item("Test::Pod", "p", json!({"a": 1}));
    bad.health.health = Health::Unhealthy;
    bad.health.status = Some("CrashLoopBackOff".into());
    bad.health.message = Some("back-off".into());
    let stats = run(&db.store, vec![bad]).await;
    assert_eq!((stats.updated, stats.changes), (1, 1));
    let changes = db
        .store
        .item_changes(id_of("Test::Pod", "p"), 10)
        .await
        .expect("changes");
    assert_eq!(changes[0].change_type, "Unhealthy");
    assert_eq!(changes[0].severity, "medium");
    assert_eq!(changes[0].summary, "CrashLoopBackOff: back-off");
    assert_eq!(
        changes[0]
            .details
            .as_ref()
            .and_then(|d| d.pointer("/previous/health"))
            .cloned(),
        Some(json!("healthy"))
    );
    let stored = db
        .store
        .get_item(id_of("Test::Pod", "p"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.health, "unhealthy");
}

/// cluster → ns → deploy → rs → pod (hard), node → pod (soft).
fn tree() -> Vec<ScrapedItem> {
    let mut pod = child("K::Pod", "pod", "K::ReplicaSet", "rs");
    pod.relationships.push(ScrapedRelationship {
        other: ItemRef::External {
            item_type: "K::Node".into(),
            external_id: "node".into(),
        },
        other_is_upstream: true,
        relation: "NodePod".into(),
    });
    vec![
        // Deliberately children first: the store must resolve parents late.
        pod,
        child("K::ReplicaSet", "rs", "K::Deployment", "deploy"),
        child("K::Deployment", "deploy", "K::Namespace", "ns"),
        child("K::Namespace", "ns", "K::Cluster", "cluster"),
        item("K::Cluster", "cluster", json!({})),
        child("K::Node", "node", "K::Cluster", "cluster"),
    ]
}

async fn walk(
    store: &Store,
    root: Uuid,
    direction: Direction,
    relation: RelationKind,
    depth: u32,
) -> Vec<(Uuid, u32)> {
    let mut q = TraversalQuery::new(vec![root]);
    q.direction = direction;
    q.relation = relation;
    q.depth = depth;
    store
        .traverse(&q)
        .await
        .expect("traverse")
        .nodes
        .into_iter()
        .map(|n| (n.id, n.depth))
        .collect()
}

async fn traversal_follows_direction_relation_and_depth(backend: Backend) {
    let db = TestDb::new(backend).await;
    run(&db.store, tree()).await;
    let (cluster, ns, deploy, rs, pod, node) = (
        id_of("K::Cluster", "cluster"),
        id_of("K::Namespace", "ns"),
        id_of("K::Deployment", "deploy"),
        id_of("K::ReplicaSet", "rs"),
        id_of("K::Pod", "pod"),
        id_of("K::Node", "node"),
    );
    let stored = db.store.get_item(pod).await.expect("get").expect("pod");
    assert_eq!(stored.parent_id, Some(rs));
    assert_eq!(stored.path, format!("{cluster}.{ns}.{deploy}.{rs}"));

    let mut down = walk(&db.store, ns, Direction::Outgoing, RelationKind::Hard, 10).await;
    down.sort_by_key(|(_, d)| *d);
    assert_eq!(down, vec![(deploy, 1), (rs, 2), (pod, 3)]);
    assert_eq!(
        walk(&db.store, ns, Direction::Outgoing, RelationKind::Hard, 2)
            .await
            .len(),
        2
    );
    let mut up = walk(&db.store, pod, Direction::Incoming, RelationKind::Both, 10).await;
    up.sort();
    let mut expected = vec![(rs, 1), (node, 1), (deploy, 2), (cluster, 2), (ns, 3)];
    expected.sort();
    assert_eq!(
        up, expected,
        "cluster is reached at depth 2 through the node"
    );
    assert_eq!(
        walk(&db.store, pod, Direction::Incoming, RelationKind::Soft, 10).await,
        vec![(node, 1)]
    );
    // BOTH never turns around: from the rs it cannot reach the node.
    let both = walk(&db.store, rs, Direction::Both, RelationKind::Both, 10).await;
    assert!(both.iter().all(|(id, _)| *id != node));
    assert!(both.contains(&(pod, 1)) && both.contains(&(deploy, 1)));
}

async fn traversal_is_cycle_safe_and_capped(backend: Backend) {
    let db = TestDb::new(backend).await;
    // A ring of soft edges a → b → c → a, plus a fan-out of 30 leaves from a.
    let mut items: Vec<ScrapedItem> = Vec::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a")] {
        let mut i = item("G::Node", from, json!({}));
        i.relationships.push(ScrapedRelationship {
            other: ItemRef::External {
                item_type: "G::Node".into(),
                external_id: to.into(),
            },
            other_is_upstream: false,
            relation: "Next".into(),
        });
        items.push(i);
    }
    for n in 0..30 {
        let mut leaf = item("G::Leaf", &format!("leaf{n}"), json!({}));
        leaf.relationships.push(ScrapedRelationship {
            other: ItemRef::External {
                item_type: "G::Node".into(),
                external_id: "a".into(),
            },
            other_is_upstream: true,
            relation: "Fan".into(),
        });
        items.push(leaf);
    }
    run(&db.store, items).await;
    let a = id_of("G::Node", "a");
    let ring = walk(&db.store, a, Direction::Outgoing, RelationKind::Soft, 10).await;
    assert_eq!(
        ring.len(),
        32,
        "b, c and 30 leaves, each once; the root is excluded"
    );
    let mut q = TraversalQuery::new(vec![a]);
    q.direction = Direction::Outgoing;
    q.node_limit = 5;
    let capped = db.store.traverse(&q).await.expect("traverse");
    assert!(capped.truncated);
    assert_eq!(capped.nodes.len(), 5);
    assert!(
        capped
            .nodes
            .windows(2)
            .all(|w| (w[0].depth, w[0].id) <= (w[1].depth, w[1].id))
    );
    let mut bad = TraversalQuery::new(vec![a]);
    bad.depth = 11;
    assert!(db.store.traverse(&bad).await.is_err());
}

async fn full_run_tombstones_missing_edges(backend: Backend) {
    let db = TestDb::new(backend).await;
    run(&db.store, tree()).await;
    let (pod, node) = (id_of("K::Pod", "pod"), id_of("K::Node", "node"));
    assert_eq!(
        walk(&db.store, pod, Direction::Incoming, RelationKind::Soft, 1).await,
        vec![(node, 1)]
    );

    // A failed run that no longer emits the edge keeps it.
    let mut without = tree();
    without[0].relationships.clear();
    let (_, outcome) = run_with(&db.store, without.clone(), completion(vec!["boom".into()])).await;
    assert!(outcome.deletions_blocked.is_some());
    assert_eq!(outcome.edges_tombstoned, 0);
    assert_eq!(
        walk(&db.store, pod, Direction::Incoming, RelationKind::Soft, 1)
            .await
            .len(),
        1
    );

    // A successful full run tombstones it.
    let (_, outcome) = run_with(&db.store, without, completion(vec![])).await;
    assert_eq!(outcome.edges_tombstoned, 1);
    assert!(
        walk(&db.store, pod, Direction::Incoming, RelationKind::Soft, 1)
            .await
            .is_empty()
    );
    // Hard edges stay.
    assert_eq!(
        walk(&db.store, pod, Direction::Incoming, RelationKind::Hard, 1)
            .await
            .len(),
        1
    );
}

async fn stale_items_are_deleted_behind_the_safety_valve(backend: Backend) {
    safety_valve(backend, Index::Preloaded).await;
}

async fn safety_valve_counts_in_sql_without_an_index(backend: Backend) {
    safety_valve(backend, Index::NotLoaded).await;
}

async fn safety_valve(backend: Backend, index: Index) {
    let db = TestDb::new(backend).await;
    let run_with = |store: &Store, items, completion| {
        let store = store.clone();
        async move { run_indexed(&store, items, completion, index).await }
    };
    let items = |n: usize| {
        (0..n)
            .map(|i| item("Test::Thing", &format!("t{i}"), json!({"i": i})))
            .collect::<Vec<_>>()
    };
    run(&db.store, items(100)).await;
    let live = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .count_items(&stratum_domain::store::ItemFilter::default())
                .await
                .expect("count")
        }
    };

    // Errors block deletion.
    let (_, o) = run_with(
        &db.store,
        items(90),
        completion(vec!["a file failed".into()]),
    )
    .await;
    assert!(o.deletions_blocked.is_some());
    assert_eq!(live(&db.store).await, 100);
    // Zero items while live items exist block deletion.
    let (_, o) = run_with(&db.store, vec![], completion(vec![])).await;
    assert!(o.deletions_blocked.is_some());
    assert_eq!(live(&db.store).await, 100);
    // Removing more than 20% (and more than 10) is blocked...
    let (_, o) = run_with(&db.store, items(70), completion(vec![])).await;
    assert!(
        o.deletions_blocked
            .as_deref()
            .is_some_and(|r| r.contains("30 of 100")),
        "{o:?}"
    );
    assert_eq!(live(&db.store).await, 100);
    // ...unless overridden.
    let mut allow = completion(vec![]);
    allow.allow_mass_delete = true;
    let (_, o) = run_with(&db.store, items(70), allow).await;
    assert_eq!(o.deleted, 30);
    assert_eq!(live(&db.store).await, 70);
    // A small, plausible deletion goes through, and records a Deleted change.
    let (_, o) = run_with(&db.store, items(65), completion(vec![])).await;
    assert_eq!(o.deleted, 5);
    let gone = db
        .store
        .get_item(id_of("Test::Thing", "t66"))
        .await
        .expect("get")
        .expect("kept as soft-deleted");
    assert_eq!(gone.delete_reason.as_deref(), Some("STALE"));
    let changes = db.store.item_changes(gone.id, 5).await.expect("changes");
    assert_eq!(changes[0].change_type, "Deleted");
}

async fn reappearing_item_is_undeleted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let items = |n: usize| {
        (0..n)
            .map(|i| item("Test::Thing", &format!("t{i}"), json!({"i": i})))
            .collect::<Vec<_>>()
    };
    run(&db.store, items(12)).await;
    let (_, o) = run_with(&db.store, items(11), completion(vec![])).await;
    assert_eq!(o.deleted, 1);
    let stats = run(&db.store, items(12)).await;
    assert_eq!((stats.created, stats.updated), (0, 1));
    let back = db
        .store
        .get_item(id_of("Test::Thing", "t11"))
        .await
        .expect("get")
        .expect("exists");
    assert!(back.deleted_at.is_none());
}

/// Lists read items without their documents, decoding columns by position
/// (on PostgreSQL without sqlx's type checks): every column, set to a
/// non-default value, must come back as the entity's own decoding reads it.
async fn listed_rows_decode_every_column(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut pod = child("Kubernetes::Pod", "p1", "Kubernetes::Namespace", "ns1");
    pod.namespace = Some("ns1".into());
    pod.tags.insert("team".into(), "core".into());
    pod.labels.insert("app".into(), "api".into());
    pod.properties = json!([{"name": "owner", "text": "ops"}]);
    pod.health.status = Some("Running".into());
    run(
        &db.store,
        vec![item("Kubernetes::Namespace", "ns1", json!({})), pod],
    )
    .await;
    let id = id_of("Kubernetes::Pod", "p1");
    db.store
        .connection()
        .execute_raw(stratum_tests::statement(
            &db.store,
            "UPDATE config_items SET description = 'd', source = 'src', cost_per_minute = 1, \
             cost_total_1d = 2, cost_total_7d = 3, cost_total_30d = 4, currency = 'EUR', \
             deleted_at = created_at, delete_reason = 'gone' WHERE id = ?",
            vec![id.into()],
        ))
        .await
        .expect("update");
    let listed = db
        .store
        .list_items(
            &stratum_domain::store::ItemFilter {
                ids: vec![id],
                include_deleted: true,
                ..Default::default()
            },
            &[],
            &stratum_domain::store::PageRequest::first(10),
        )
        .await
        .expect("list");
    let mut whole = db.store.get_item(id).await.expect("get").expect("item");
    assert_eq!(listed.items.len(), 1);
    let slim = &listed.items[0].1;
    assert_eq!(
        slim.config,
        serde_json::Value::Null,
        "lists leave documents out"
    );
    whole.config = serde_json::Value::Null;
    assert_eq!(slim, &whole);
    assert!(whole.parent_id.is_some() && whole.deleted_at.is_some());
    assert_eq!(whole.cost_total_30d, Some(4));
}
