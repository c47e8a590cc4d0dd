//! Insights (SPEC §7) on real SQLite and PostgreSQL: the lifecycle (first
//! seen, re-observed, moved severity, resolved by age, reopened, silenced
//! stays silenced, silences that expire, purge), analysis rules and
//! full-mode `analysis[]` through real file scrapes, and bad rules
//! rejected at load with their line.

use chrono::Duration;
use sea_orm::ConnectionTrait;
use serde_json::json;
use stratum_domain::entities::insight;
use stratum_domain::{InsightObservation, ItemRef, ScrapedInsight, Severity, Store, ids};
use stratum_scrapers::load_str;
use stratum_tests::{Backend, TestDb, item, keep_everything, scrape_items};
use uuid::Uuid;

stratum_tests::on_both_backends!(
    lifecycle_of_one_finding,
    silences_end_by_observation,
    analysis_rules_find_and_resolve_insights,
    full_mode_documents_carry_insights,
);

const SCRAPER: &str = "insights";

fn finding(analyzer: &str, severity: Severity, summary: &str) -> ScrapedInsight {
    ScrapedInsight {
        analyzer: analyzer.into(),
        analysis_type: "security".into(),
        severity,
        summary: summary.into(),
        message: String::new(),
        details: json!({"cve": "CVE-2026-1"}),
        key: String::new(),
    }
}

fn on(ext: &str, insight: ScrapedInsight) -> InsightObservation {
    InsightObservation {
        target: ItemRef::External {
            item_type: "Test::Box".into(),
            external_id: ext.into(),
        },
        insight,
    }
}

async fn run(db: &TestDb, sql: &str, values: Vec<sea_orm::Value>) {
    db.store
        .connection()
        .execute_raw(stratum_tests::statement(&db.store, sql, values))
        .await
        .expect("sql");
}

async fn get(store: &Store, id: Uuid) -> insight::Model {
    store
        .get_insights(&[id])
        .await
        .expect("get")
        .remove(&id)
        .expect("insight exists")
}

async fn catalog(db: &TestDb) -> (Uuid, Uuid) {
    let scraper = scrape_items(
        &db.store,
        SCRAPER,
        vec![
            item("Test::Box", "a", json!({})),
            item("Test::Box", "b", json!({})),
        ],
        keep_everything(),
    )
    .await;
    let a = ids::item_id(scraper, "Test::Box", "a");
    (scraper, a)
}

async fn lifecycle_of_one_finding(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let (scraper, a) = catalog(&db).await;
    let id = ids::insight_id(a, "trivy", "");

    // First seen: open, one row, a seq.
    let stats = store
        .observe_insights(
            scraper,
            vec![
                on("a", finding("trivy", Severity::High, "CVE in a")),
                on("nowhere", finding("trivy", Severity::High, "lost")),
            ],
        )
        .await
        .expect("observe");
    assert_eq!((stats.opened, stats.unknown_target), (1, 1));
    let first = get(store, id).await;
    assert_eq!(first.status, "open");
    assert_eq!(first.config_id, a);

    // Re-observed unchanged: same row, same seq, later last_observed.
    let stats = store
        .observe_insights(
            scraper,
            vec![on("a", finding("trivy", Severity::High, "CVE in a"))],
        )
        .await
        .expect("observe");
    assert_eq!(stats.unchanged, 1);
    let again = get(store, id).await;
    assert_eq!(again.seq, first.seq);
    assert!(again.last_observed >= first.last_observed);
    assert_eq!(again.first_observed, first.first_observed);
    assert_eq!(
        store
            .count_insights(&Default::default())
            .await
            .expect("count"),
        1
    );

    // Severity moved: the seq moves.
    let stats = store
        .observe_insights(
            scraper,
            vec![on("a", finding("trivy", Severity::Critical, "CVE in a"))],
        )
        .await
        .expect("observe");
    assert_eq!(stats.updated, 1);
    let moved = get(store, id).await;
    assert!(moved.seq > again.seq);
    assert_eq!(moved.severity, "critical");

    // Not re-observed for three days: a succeeded run resolves it.
    let three_days_ago = stratum_domain::store::now() - Duration::days(3);
    run(
        &db,
        "UPDATE insights SET last_observed = ? WHERE id = ?",
        vec![three_days_ago.into(), id.into()],
    )
    .await;
    let now = stratum_domain::store::now();
    assert_eq!(
        store
            .resolve_unobserved_insights(scraper, now - Duration::hours(48))
            .await
            .expect("resolve"),
        1
    );
    let resolved = get(store, id).await;
    assert_eq!(resolved.status, "resolved");
    assert!(resolved.seq > moved.seq);
    // A fresh one is not resolved.
    assert_eq!(
        store
            .resolve_unobserved_insights(scraper, now - Duration::hours(48))
            .await
            .expect("resolve"),
        0
    );

    // Observed again: it reopens.
    let stats = store
        .observe_insights(
            scraper,
            vec![on("a", finding("trivy", Severity::Critical, "CVE in a"))],
        )
        .await
        .expect("observe");
    assert_eq!(stats.reopened, 1);
    assert_eq!(get(store, id).await.status, "open");

    // Silenced for good: re-observation keeps it silenced.
    let silenced = store.silence_insight(id, None).await.expect("silence");
    assert_eq!(silenced.status, "silenced");
    store
        .observe_insights(
            scraper,
            vec![on("a", finding("trivy", Severity::Low, "CVE in a"))],
        )
        .await
        .expect("observe");
    let still = get(store, id).await;
    assert_eq!(still.status, "silenced");
    assert_eq!(still.severity, "low");
    // Resolving by hand, then purging after 30 days.
    assert_eq!(
        store.resolve_insight(id).await.expect("resolve").status,
        "resolved"
    );
    run(
        &db,
        "UPDATE insights SET status_changed_at = ? WHERE id = ?",
        vec![(now - Duration::days(31)).into(), id.into()],
    )
    .await;
    let upkeep = store.insight_upkeep(now).await.expect("upkeep");
    assert_eq!(upkeep.purged, 1);
    assert!(store.get_insights(&[id]).await.expect("get").is_empty());

    // Bad input: unknown ids, silences in the past, unknown types.
    assert!(matches!(
        store.resolve_insight(Uuid::now_v7()).await,
        Err(stratum_domain::DomainError::NotFound(_))
    ));
    assert!(matches!(
        store
            .silence_insight(Uuid::now_v7(), Some(now - Duration::hours(1)))
            .await,
        Err(stratum_domain::DomainError::Invalid { .. })
    ));
    let mut bad = finding("trivy", Severity::Low, "x");
    bad.analysis_type = "vibes".into();
    let err = store
        .observe_insights(
            scraper,
            vec![on("b", finding("ok", Severity::Low, "x")), on("b", bad)],
        )
        .await
        .expect_err("an unknown type is rejected");
    assert!(err.to_string().contains("insight 2"), "{err}");
    assert_eq!(
        store
            .count_insights(&Default::default())
            .await
            .expect("count"),
        0,
        "nothing of a rejected set is written"
    );
}

async fn silences_end_by_observation(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let (scraper, a) = catalog(&db).await;
    let b = ids::item_id(scraper, "Test::Box", "b");
    store
        .observe_insights(
            scraper,
            vec![
                on("a", finding("lint", Severity::Low, "a")),
                on("b", finding("lint", Severity::Low, "b")),
            ],
        )
        .await
        .expect("observe");
    let now = stratum_domain::store::now();
    let (ia, ib) = (
        ids::insight_id(a, "lint", ""),
        ids::insight_id(b, "lint", ""),
    );
    for id in [ia, ib] {
        store
            .silence_insight(id, Some(now + Duration::hours(1)))
            .await
            .expect("silence");
    }
    // Only a's finding is seen again while silenced.
    let earlier = now - Duration::hours(2);
    run(
        &db,
        "UPDATE insights SET status_changed_at = ?, last_observed = ?",
        vec![earlier.into(), earlier.into()],
    )
    .await;
    store
        .observe_insights(scraper, vec![on("a", finding("lint", Severity::Low, "a"))])
        .await
        .expect("observe");
    // Before the silences end nothing moves.
    assert_eq!(
        store.insight_upkeep(now).await.expect("upkeep"),
        Default::default()
    );
    let later = now + Duration::hours(2);
    let upkeep = store.insight_upkeep(later).await.expect("upkeep");
    assert_eq!((upkeep.reopened, upkeep.resolved), (1, 1));
    assert_eq!(get(store, ia).await.status, "open");
    assert_eq!(get(store, ib).await.status, "resolved");
    assert_eq!(get(store, ia).await.silenced_until, None);
}

const RULES: &str = r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {name: analysis, namespace: test}
spec:
  retention: {resolveInsightsAfter: 1h}
  file:
    - paths: ["*.yaml"]
  transform:
    analysis:
      - name: privileged-container
        filter: type == "Kubernetes::Pod"
        expr: config.spec.containers.exists(c, has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged)
        type: security
        severity: high
        summary: '"Privileged container in " + name'
      - name: single-replica
        filter: type == "Kubernetes::Deployment"
        expr: config.spec.replicas == 1
        type: reliability
        severity: medium
        summary: '"Only one replica of " + name'
      - name: latest-tag
        expr: has(config.spec.containers) && config.spec.containers.exists(c, c.image.endsWith(":latest"))
        type: reliability
        severity: low
        key: config.spec.containers.filter(c, c.image.endsWith(":latest"))[0].name
      - name: broken
        expr: config.spec.nope.deeper == 1
        type: other
        severity: info
"#;

fn pod(privileged: bool, image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: api-0, namespace: shop, uid: 6a9b7d0e-1111-4a4a-9a9a-000000000001}}
spec:
  containers:
    - name: api
      image: {image}
      securityContext: {{privileged: {privileged}}}
status: {{phase: Running}}
"#
    )
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop, uid: 6a9b7d0e-1111-4a4a-9a9a-000000000002}
spec: {replicas: 1}
status: {replicas: 1, readyReplicas: 1, availableReplicas: 1}
"#;

async fn open_insights(store: &Store) -> Vec<(String, String, String, String)> {
    let page = store
        .list_insights(
            &stratum_domain::store::InsightFilter {
                statuses: vec!["open".into()],
                ..Default::default()
            },
            &stratum_domain::store::PageRequest::first(100),
        )
        .await
        .expect("list");
    let mut out: Vec<_> = page
        .items
        .into_iter()
        .map(|(_, i)| (i.analyzer, i.analysis_type, i.severity, i.summary))
        .collect();
    out.sort();
    out
}

async fn analysis_rules_find_and_resolve_insights(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("pod.yaml"), pod(true, "shop/api:latest")).expect("write");
    std::fs::write(dir.path().join("deployment.yaml"), DEPLOYMENT).expect("write");
    let config = load_str(&dir.path().join("config.yml"), RULES)
        .expect("config")
        .remove(0);
    let report = stratum_tests::scrape_succeeds(store, &config).await;
    let expected = vec![
        (
            "latest-tag".to_string(),
            "reliability".to_string(),
            "low".to_string(),
            "latest-tag".to_string(),
        ),
        (
            "privileged-container".into(),
            "security".into(),
            "high".into(),
            "Privileged container in api-0".into(),
        ),
        (
            "single-replica".into(),
            "reliability".into(),
            "medium".into(),
            "Only one replica of api".into(),
        ),
    ];
    assert_eq!(open_insights(store).await, expected);
    // The broken rule is skipped per item and said so; the run succeeds.
    assert!(
        report
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("analysis \"broken\"")),
        "{:?}",
        report.summary.warnings
    );
    // Deterministic ids: the key names the container.
    let pod_id = Uuid::parse_str("6a9b7d0e-1111-4a4a-9a9a-000000000001").expect("uuid");
    let latest = get(store, ids::insight_id(pod_id, "latest-tag", "api")).await;
    assert_eq!(latest.status, "open");

    // A second run observes the same findings: no new rows.
    stratum_tests::scrape_succeeds(store, &config).await;
    assert_eq!(
        store
            .count_insights(&Default::default())
            .await
            .expect("count"),
        3
    );

    // The pod is fixed; its finding is no longer observed. After the
    // resolve age (1h here) a succeeded run resolves it.
    std::fs::write(dir.path().join("pod.yaml"), pod(false, "shop/api:1.2")).expect("write");
    stratum_tests::scrape_succeeds(store, &config).await;
    assert_eq!(open_insights(store).await.len(), 3, "too young to resolve");
    let two_hours_ago = stratum_domain::store::now() - Duration::hours(2);
    run(
        &db,
        "UPDATE insights SET last_observed = ? WHERE analyzer <> ?",
        vec![two_hours_ago.into(), "single-replica".into()],
    )
    .await;
    stratum_tests::scrape_succeeds(store, &config).await;
    assert_eq!(
        open_insights(store).await,
        vec![expected[2].clone()],
        "the fixed pod's findings are resolved, the deployment's stays"
    );
}

const FULL: &str = r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {name: full-insights, namespace: test}
spec:
  full: true
  file:
    - paths: [dbs.json]
      items: $.databases[*]
      id: $.id
      type: Inventory::Database
      name: $.name
"#;

const DBS: &str = r#"{"databases": [
  {"config": {"id": "db-1", "name": "orders"},
   "analysis": [
     {"analyzer": "pg-audit", "analysis_type": "security", "severity": "critical", "summary": "superuser login allowed",
      "message": "rolcanlogin on postgres", "analysis": {"role": "postgres"}},
     {"analyzer": "cost-bot", "analysis_type": "cost", "severity": "low", "summary": "idle replica",
      "external_id": "DB-2", "type": "Inventory::Database"},
     {"analyzer": "x", "analysis_type": "mood"},
     {"summary": "no analyzer"}
   ]},
  {"config": {"id": "db-2", "name": "replica"}}
]}"#;

async fn full_mode_documents_carry_insights(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("dbs.json"), DBS).expect("write");
    let config = load_str(&dir.path().join("full.yaml"), FULL)
        .expect("config")
        .remove(0);
    let report = stratum_tests::scrape_succeeds(store, &config).await;
    let warnings = report.summary.warnings.join("\n");
    assert!(warnings.contains("analysis[2]"), "{warnings}");
    assert!(
        warnings.contains("analysis[3]: analyzer is required"),
        "{warnings}"
    );
    let page = store
        .list_insights(
            &Default::default(),
            &stratum_domain::store::PageRequest::first(10),
        )
        .await
        .expect("list");
    let mut got: Vec<(String, String, String)> = Vec::new();
    for (_, i) in &page.items {
        let item = store
            .get_item(i.config_id)
            .await
            .expect("get")
            .expect("item");
        got.push((item.name, i.analyzer.clone(), i.severity.clone()));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("orders".into(), "pg-audit".into(), "critical".into()),
            ("replica".into(), "cost-bot".into(), "low".into()),
        ]
    );
    let (_, audit) = page
        .items
        .iter()
        .find(|(_, i)| i.analyzer == "pg-audit")
        .expect("audit");
    assert_eq!(audit.details, json!({"role": "postgres"}));
    assert_eq!(audit.message, "rolcanlogin on postgres");
    // A replay writes no new rows.
    stratum_tests::scrape_succeeds(store, &config).await;
    assert_eq!(
        store
            .count_insights(&Default::default())
            .await
            .expect("count"),
        2
    );
}

#[test]
fn bad_analysis_rules_are_rejected_with_their_line() {
    let bad = r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {name: bad}
spec:
  file: [{paths: ["*.yaml"]}]
  transform:
    analysis:
      - name: typo
        expr: config.spec.replicas ==
        type: reliability
        severity: low
      - name: wrong-type
        expr: "true"
        type: feelings
        severity: low
      - name: wrong-severity
        expr: "true"
        type: security
        severity: apocalyptic
"#;
    let Err(err) = load_str(std::path::Path::new("bad.yaml"), bad) else {
        panic!("bad rules load");
    };
    let text = err.to_string();
    assert!(
        text.contains("bad.yaml:9:") && text.contains("transform.analysis[0].expr: invalid CEL"),
        "{text}"
    );
    assert!(
        text.contains("bad.yaml:14:") && text.contains("\"feelings\""),
        "{text}"
    );
    assert!(
        text.contains("bad.yaml:19:") && text.contains("apocalyptic"),
        "{text}"
    );
}
