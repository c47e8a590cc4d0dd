//! `full: true` documents (SPEC §10): `config` holds the item's document,
//! `changes[]` become changes of the item (or of the item they name), a
//! replay records nothing new, and a malformed entry is skipped with a
//! warning while the rest of the run goes on.

use sea_orm::{ConnectionTrait, Statement};
use stratum_scrapers::load_str;
use stratum_tests::{Backend, TestDb};

stratum_tests::on_both_backends!(full_mode_documents_carry_changes);

const CONFIG: &str = r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {name: databases, namespace: test}
spec:
  full: true
  file:
    - paths: [databases.json]
      items: $.databases[*]
      id: $.id
      type: Inventory::Database
      name: $.name
"#;

const DATA: &str = r#"{"databases": [
  {"config": {"id": "db-1", "name": "orders", "engine": "postgres"},
   "changes": [
     {"change_type": "Backup", "external_change_id": "bk-1", "severity": "low", "summary": "nightly backup",
      "created_at": "2026-11-30T02:00:00Z", "details": {"size_gb": 12}},
     {"change_type": "Failover", "external_change_id": "fo-1", "external_id": "db-2", "type": "Inventory::Database"},
     {"change_type": "NoId"}
   ]},
  {"config": {"id": "db-2", "name": "replica", "engine": "postgres"}}
]}"#;

async fn changes(db: &TestDb) -> Vec<(String, String, String, i64)> {
    let rows = db
        .store
        .connection()
        .query_all_raw(Statement::from_string(
            db.store.backend(),
            "SELECT i.name, c.change_type, c.severity, c.count FROM config_changes c JOIN config_items i ON i.id = c.config_id \
             WHERE c.external_change_id IS NOT NULL ORDER BY c.change_type",
        ))
        .await
        .expect("changes");
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "name").expect("name"),
                r.try_get("", "change_type").expect("type"),
                r.try_get("", "severity").expect("severity"),
                r.try_get("", "count").expect("count"),
            )
        })
        .collect()
}

async fn full_mode_documents_carry_changes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("databases.json"), DATA).expect("write");
    let config = load_str(&dir.path().join("databases.yaml"), CONFIG)
        .expect("config")
        .remove(0);
    let first = stratum_tests::scrape_succeeds(&db.store, &config).await;
    assert!(
        first
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("changes[2]") && w.contains("required")),
        "{:?}",
        first.summary.warnings
    );
    assert_eq!(
        changes(&db).await,
        vec![
            (
                "orders".to_string(),
                "Backup".to_string(),
                "low".to_string(),
                1
            ),
            ("replica".into(), "Failover".into(), "info".into(), 1),
        ]
    );
    let id = stratum_domain::ids::item_id(
        stratum_domain::ids::scraper_id("test", "databases"),
        "Inventory::Database",
        "db-1",
    );
    let item = db.store.get_item(id).await.expect("get").expect("db-1");
    let stored = &item.config;
    assert_eq!(
        stored["engine"], "postgres",
        "the item's document is `config`"
    );
    assert!(
        stored.get("changes").is_none(),
        "reserved keys are not stored: {stored}"
    );

    let again = stratum_tests::scrape_succeeds(&db.store, &config).await;
    assert_eq!(
        again.summary.changes, 0,
        "a replay records nothing: {:?}",
        again.summary
    );
    assert_eq!(changes(&db).await.len(), 2);
}
