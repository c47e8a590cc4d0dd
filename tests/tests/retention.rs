//! Retention (SPEC §5) on real SQLite and PostgreSQL: change rules by type
//! glob, age and per-item count with first-match-wins and the 60-day
//! default; a backlog larger than one batch; a pass over the other
//! scrapers' items; and the hard purge of long-deleted items with what hangs
//! off them, which spares an item a kept child still names as its parent;
//! and the scheduler applying a loaded config's rules on its own.

use chrono::{DateTime, Duration, Utc};
use sea_orm::ConnectionTrait;
use serde_json::json;
use stratum_domain::store::external::ExternalChange;
use stratum_domain::store::retention::{ChangeRetentionRule, RetentionPolicy, RetentionTarget};
use stratum_domain::{ItemRef, ScrapedRelationship, Severity, Store, ids};
use stratum_tests::{Backend, TestDb, item, keep_everything, scrape_items};
use uuid::Uuid;

stratum_tests::on_both_backends!(
    change_rules_prune_by_age_and_count,
    purge_removes_long_deleted_items,
    the_scheduler_applies_a_configs_rules,
);

const TYPE: &str = "Test::Box";

fn at(ext: &str, change_type: &str, n: usize, created_at: DateTime<Utc>) -> ExternalChange {
    ExternalChange {
        target: ItemRef::External {
            item_type: TYPE.into(),
            external_id: ext.into(),
        },
        external_change_id: format!("{ext}-{change_type}-{n}"),
        change_type: change_type.into(),
        severity: Severity::Info,
        source: "test".into(),
        summary: format!("{change_type} {n}"),
        details: None,
        count: 1,
        first_observed: None,
        created_at: Some(created_at),
    }
}

async fn write(store: &Store, changes: Vec<ExternalChange>) {
    for chunk in changes.chunks(500) {
        let stats = store
            .upsert_external_changes(chunk.to_vec(), None)
            .await
            .expect("changes");
        assert_eq!(stats.inserted, chunk.len() as i64);
    }
}

async fn count(store: &Store, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
    let row = store
        .connection()
        .query_one_raw(stratum_tests::statement(store, sql, values))
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("n")
}

async fn changes_of(store: &Store, id: Uuid, change_type: &str) -> Vec<String> {
    let mut rows: Vec<String> = store
        .item_changes(id, 10_000)
        .await
        .expect("changes")
        .into_iter()
        .filter(|c| c.change_type == change_type)
        .map(|c| c.summary)
        .collect();
    rows.sort();
    rows
}

async fn change_rules_prune_by_age_and_count(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let scraper = scrape_items(
        store,
        "retention",
        vec![
            item(TYPE, "a", json!({"n": 1})),
            item(TYPE, "b", json!({"n": 2})),
        ],
        keep_everything(),
    )
    .await;
    let other = scrape_items(
        store,
        "other",
        vec![item(TYPE, "c", json!({"n": 3}))],
        keep_everything(),
    )
    .await;
    let (a, b, c) = (
        ids::item_id(scraper, TYPE, "a"),
        ids::item_id(scraper, TYPE, "b"),
        ids::item_id(other, TYPE, "c"),
    );
    let now = stratum_domain::store::now();
    let day = |d: f64| now - Duration::minutes((d * 1440.0) as i64);
    let mut changes = Vec::new();
    // a: ten pulls, half a day apart from 0.5 to 9.5 days old.
    for n in 0..10 {
        changes.push(at("a", "Pulled", n, day(0.5 + n as f64)));
    }
    // a: backoffs at 100, 30 and 1 days; a PullFailed (not a Pulled) 20 days old.
    for (n, d) in [100.0, 30.0, 1.0].into_iter().enumerate() {
        changes.push(at("a", "BackOff", n, day(d)));
    }
    changes.push(at("a", "PullFailed", 0, day(20.0)));
    // b: five recent pulls; c (another scraper): one old pull.
    for n in 0..5 {
        changes.push(at("b", "Pulled", n, day(0.1 * (n + 1) as f64)));
    }
    changes.push(at("c", "Pulled", 0, day(100.0)));
    // A backlog of old diffs on b, larger than one batch.
    for n in 0..2_345 {
        changes.push(at("b", "diff", n, day(61.0 + n as f64 / 1000.0)));
    }
    write(store, changes).await;

    let policy = RetentionPolicy {
        changes: vec![
            ChangeRetentionRule {
                types: "Pulled".into(),
                max_age: Some(Duration::days(7)),
                max_count: Some(3),
            },
            // Never reached for Pulled: the first matching rule governs.
            ChangeRetentionRule {
                types: "Pull*".into(),
                max_age: Some(Duration::days(10)),
                max_count: None,
            },
        ],
        purge_deleted_after: None,
    };
    let report = store
        .apply_retention(&RetentionTarget::Scraper(scraper), &policy, now)
        .await
        .expect("retention");
    // a: pulls 7.5–9.5 days old by age (3), then the four oldest of the
    // seven left by count; the 20-day PullFailed by the Pull* rule; the
    // 100-day backoff by the 60-day default. b: two pulls by count, the
    // whole diff backlog by the default.
    assert_eq!(report.changes_deleted, 3 + 4 + 1 + 1 + 2 + 2_345);
    assert_eq!(
        changes_of(store, a, "Pulled").await,
        vec!["Pulled 0", "Pulled 1", "Pulled 2"]
    );
    assert_eq!(
        changes_of(store, a, "BackOff").await,
        vec!["BackOff 1", "BackOff 2"]
    );
    assert!(changes_of(store, a, "PullFailed").await.is_empty());
    assert_eq!(
        changes_of(store, b, "Pulled").await,
        vec!["Pulled 0", "Pulled 1", "Pulled 2"]
    );
    assert!(changes_of(store, b, "diff").await.is_empty());
    // The other scraper's items are not touched.
    assert_eq!(changes_of(store, c, "Pulled").await, vec!["Pulled 0"]);
    // A second pass finds nothing more.
    let again = store
        .apply_retention(&RetentionTarget::Scraper(scraper), &policy, now)
        .await
        .expect("retention");
    assert_eq!(again.changes_deleted, 0);

    // The pass over everyone else applies the default to c only.
    let rest = store
        .apply_retention(
            &RetentionTarget::OtherThan(vec![scraper]),
            &RetentionPolicy::default(),
            now,
        )
        .await
        .expect("retention");
    assert_eq!(rest.changes_deleted, 1);
    assert!(changes_of(store, c, "Pulled").await.is_empty());
    assert_eq!(changes_of(store, a, "Pulled").await.len(), 3);
}

async fn purge_removes_long_deleted_items(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let ext = |e: &str| ItemRef::External {
        item_type: TYPE.into(),
        external_id: e.into(),
    };
    let mut gone = item(TYPE, "gone", json!({"n": 1}));
    gone.relationships.push(ScrapedRelationship {
        other: ext("kept"),
        other_is_upstream: false,
        relation: "BoxBox".into(),
    });
    let mut parent = item(TYPE, "parent", json!({"n": 2}));
    parent.parent = None;
    let mut child = item(TYPE, "child", json!({"n": 3}));
    child.parent = Some((ext("parent"), "BoxBox".into()));
    let kept = item(TYPE, "kept", json!({"n": 4}));
    let scraper = scrape_items(
        store,
        "purge",
        vec![gone, parent, child, kept],
        keep_everything(),
    )
    .await;
    let id = |e: &str| ids::item_id(scraper, TYPE, e);
    write(
        store,
        vec![
            at("gone", "Pulled", 0, stratum_domain::store::now()),
            at("kept", "Pulled", 0, stratum_domain::store::now()),
        ],
    )
    .await;
    let edges_of_gone = "SELECT COUNT(*) FROM config_relationships WHERE from_id = ? OR to_id = ?";
    assert_eq!(
        count(
            store,
            edges_of_gone,
            vec![id("gone").into(), id("gone").into()]
        )
        .await,
        1
    );
    // "gone" and "parent" were deleted eight days ago; "child" (of
    // "parent") is still live.
    let eight_days_ago = stratum_domain::store::now() - Duration::days(8);
    for e in ["gone", "parent"] {
        store
            .connection()
            .execute_raw(stratum_tests::statement(
                store,
                "UPDATE config_items SET deleted_at = ?, delete_reason = 'STALE' WHERE id = ?",
                vec![eight_days_ago.into(), id(e).into()],
            ))
            .await
            .expect("delete");
    }
    let now = stratum_domain::store::now();
    // Kept for longer than eight days: nothing goes.
    let patient = RetentionPolicy {
        changes: vec![],
        purge_deleted_after: Some(Duration::days(10)),
    };
    let report = store
        .apply_retention(&RetentionTarget::Scraper(scraper), &patient, now)
        .await
        .expect("retention");
    assert_eq!(report.items_purged, 0);
    // The default (7 days) purges "gone" with its change and edge, but not
    // "parent", whose live child still names it.
    let report = store
        .apply_retention(
            &RetentionTarget::Scraper(scraper),
            &RetentionPolicy::default(),
            now,
        )
        .await
        .expect("retention");
    assert_eq!(report.items_purged, 1);
    let items = "SELECT COUNT(*) FROM config_items WHERE id = ?";
    assert_eq!(count(store, items, vec![id("gone").into()]).await, 0);
    assert_eq!(count(store, items, vec![id("parent").into()]).await, 1);
    assert_eq!(
        count(
            store,
            edges_of_gone,
            vec![id("gone").into(), id("gone").into()]
        )
        .await,
        0
    );
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM config_changes WHERE config_id = ?",
            vec![id("gone").into()]
        )
        .await,
        0
    );
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM config_external_ids WHERE config_id = ?",
            vec![id("gone").into()]
        )
        .await,
        0
    );
    assert_eq!(changes_of(store, id("kept"), "Pulled").await.len(), 1);
    assert!(store.get_item(id("kept")).await.expect("get").is_some());
}

async fn the_scheduler_applies_a_configs_rules(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("boxes.json"),
        json!([{"id": "a", "name": "a"}]).to_string(),
    )
    .expect("write");
    let config_path = dir.path().join("boxes.yaml");
    std::fs::write(
        &config_path,
        format!(
            "apiVersion: configs.flanksource.com/v1\nkind: ScrapeConfig\nmetadata: {{name: boxes}}\n\
             spec:\n  schedule: \"@every 1h\"\n  retention:\n    changes: [{{name: Pulled, count: 1}}]\n  \
             file:\n    - paths: [boxes.json]\n      items: $[*]\n      id: $.id\n      type: {TYPE}\n      name: $.name\n"
        ),
    )
    .expect("write");
    let config = std::sync::Arc::new(
        stratum_scrapers::load_path(&config_path)
            .expect("config")
            .remove(0),
    );
    let report = stratum_tests::scrape_succeeds(store, &config).await;
    let a = ids::item_id(report.scraper_id, TYPE, "a");
    let now = stratum_domain::store::now();
    write(
        store,
        (0..3)
            .map(|n| at("a", "Pulled", n, now - Duration::minutes(n as i64 + 1)))
            .collect(),
    )
    .await;
    assert_eq!(changes_of(store, a, "Pulled").await.len(), 3);

    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    stratum_scrapers::scheduler::spawn_all(
        store.clone(),
        vec![config],
        &tracker,
        cancel.clone(),
        false,
        stratum_scrapers::ownership::Ownership::everything(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = changes_of(store, a, "Pulled").await;
        if left == vec!["Pulled 0".to_string()] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not run: {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}
