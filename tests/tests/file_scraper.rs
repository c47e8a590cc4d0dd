//! The file scraper through the real pipeline on both backends: an
//! unchanged re-scrape writes nothing, one changed file yields exactly one
//! diff change, and Kubernetes manifests get parents, edges and health.

use std::path::Path;

use stratum_domain::store::{Direction, ItemFilter, RelationKind, TraversalQuery};
use stratum_domain::{RunStatus, Store};
use stratum_scrapers::{RunOptions, load_path, run_scrape};
use stratum_tests::{Backend, TestDb};

stratum_tests::on_both_backends!(
    unchanged_rescrape_writes_nothing_and_one_edit_is_one_diff,
    manifests_get_parents_edges_and_health,
    health_overrides_replace_the_builtin_and_failures_warn
);

const CONFIG: &str = r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {name: inventory, namespace: test}
spec:
  retention: {staleItemAge: 0s}
  file:
    - paths: ["data/*.json"]
      items: $.services[*]
      id: $.id
      type: {expr: '"Inventory::" + config.kind'}
      name: $.name
      tags: {team: $.team}
  transform:
    exclude:
      - jsonpath: $.scrapedAt
"#;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn services(file: usize, version: &str, scraped_at: &str) -> String {
    let items: Vec<serde_json::Value> = (0..20)
        .map(|i| {
            serde_json::json!({
                "id": format!("svc-{file}-{i}"), "kind": "Service", "name": format!("service {file}/{i}"),
                "team": "payments", "version": if i == 3 { version } else { "1.0.0" },
                "scrapedAt": scraped_at, "status": "running"
            })
        })
        .collect();
    serde_json::json!({ "services": items }).to_string()
}

/// The uid of the n-th object of [`MANIFESTS`].
fn id(n: u8) -> uuid::Uuid {
    uuid::Uuid::parse_str(&format!("00000000-0000-4000-8000-00000000000{n}")).expect("uuid")
}

async fn scrape(store: &Store, config: &Path) -> stratum_scrapers::RunReport {
    let configs = load_path(config).expect("config loads");
    run_scrape(store, &configs[0], &RunOptions::default())
        .await
        .expect("scrape")
}

async fn unchanged_rescrape_writes_nothing_and_one_edit_is_one_diff(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "inventory.yaml", CONFIG);
    for f in 0..3 {
        write(
            dir.path(),
            &format!("data/{f}.json"),
            &services(f, "1.0.0", "2026-11-01T00:00:00Z"),
        );
    }
    let config = dir.path().join("inventory.yaml");
    let first = scrape(&db.store, &config).await;
    assert_eq!(
        first.status,
        RunStatus::Succeeded,
        "{:?}",
        first.summary.errors
    );
    assert_eq!((first.summary.created, first.summary.scraped), (60, 60));
    let before = db
        .store
        .list_items(&ItemFilter::default(), &[], &page())
        .await
        .expect("list");

    // Only an excluded field moves: nothing is written but the touch.
    for f in 0..3 {
        write(
            dir.path(),
            &format!("data/{f}.json"),
            &services(f, "1.0.0", "2026-11-02T00:00:00Z"),
        );
    }
    let second = scrape(&db.store, &config).await;
    assert_eq!(
        (
            second.summary.created,
            second.summary.updated,
            second.summary.unchanged,
            second.summary.changes
        ),
        (0, 0, 60, 0)
    );
    assert_eq!(
        second.outcome.edges_created + second.outcome.edges_tombstoned + second.outcome.deleted,
        0
    );
    assert_eq!(db.store.count_changes(None).await.expect("count"), 0);
    let after = db
        .store
        .list_items(&ItemFilter::default(), &[], &page())
        .await
        .expect("list");
    for ((_, a), (_, b)) in before.items.iter().zip(after.items.iter()) {
        assert_eq!(
            (a.id, &a.config_hash, a.updated_at),
            (b.id, &b.config_hash, b.updated_at)
        );
    }

    // One changed file, one changed item: exactly one diff change.
    write(
        dir.path(),
        "data/1.json",
        &services(1, "1.1.0", "2026-11-03T00:00:00Z"),
    );
    let third = scrape(&db.store, &config).await;
    assert_eq!(
        (
            third.summary.updated,
            third.summary.unchanged,
            third.summary.changes
        ),
        (1, 59, 1)
    );
    assert_eq!(db.store.count_changes(None).await.expect("count"), 1);
    let changed = db
        .store
        .list_items(&ItemFilter::default(), &[], &page())
        .await
        .expect("list")
        .items
        .into_iter()
        .find(|(_, m)| m.name == "service 1/3")
        .expect("changed item")
        .1;
    let changes = db.store.item_changes(changed.id, 5).await.expect("changes");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].change_type, "diff");
    assert_eq!(changes[0].summary, "version");
    assert_eq!(
        changes[0].patches,
        Some(serde_json::json!({"version": "1.1.0"}))
    );
    assert_eq!(changed.tags, serde_json::json!({"team": "payments"}));
    assert_eq!(changed.health, "healthy");
}

fn page() -> stratum_domain::store::PageRequest {
    stratum_domain::store::PageRequest::first(100)
}

const MANIFESTS: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: stratum.dev/v1
  kind: Cluster
  metadata: {name: c1, uid: 00000000-0000-4000-8000-000000000001}
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop, uid: 00000000-0000-4000-8000-000000000002}
  status: {phase: Active}
- apiVersion: v1
  kind: Node
  metadata: {name: node-1, uid: 00000000-0000-4000-8000-000000000003}
  status: {conditions: [{type: Ready, status: "True"}]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop, uid: 00000000-0000-4000-8000-000000000004, resourceVersion: "9"}
  spec: {replicas: 1}
  status: {replicas: 1, readyReplicas: 0, updatedReplicas: 1}
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-1
    namespace: shop
    uid: 00000000-0000-4000-8000-000000000005
    labels: {app: web}
    ownerReferences: [{kind: Deployment, name: web, uid: 00000000-0000-4000-8000-000000000004, controller: true}]
  spec: {nodeName: node-1}
  status:
    phase: Running
    startTime: "2026-01-01T00:00:00Z"
    conditions: [{type: Ready, status: "False"}]
    containerStatuses: [{name: web, ready: false, state: {waiting: {reason: CrashLoopBackOff}}}]
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop, uid: 00000000-0000-4000-8000-000000000006}
  spec: {type: ClusterIP, selector: {app: web}}
"#;

async fn manifests_get_parents_edges_and_health(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "k8s.yaml",
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: k8s}\nspec:\n  file:\n    - paths: [manifests/*.yaml]\n      items: $.items[*]\n      tags: {cluster: c1}\n",
    );
    write(dir.path(), "manifests/shop.yaml", MANIFESTS);
    let report = scrape(&db.store, &dir.path().join("k8s.yaml")).await;
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "{:?}",
        report.summary.errors
    );
    assert_eq!(report.summary.created, 6);
    assert_eq!(report.outcome.edges_unresolved, 0);
    let pod = db.store.get_item(id(5)).await.expect("get").expect("pod");
    assert_eq!(pod.item_type, "Kubernetes::Pod");
    assert_eq!(
        (pod.health.as_str(), pod.status.as_deref()),
        ("unhealthy", Some("CrashLoopBackOff"))
    );
    assert_eq!(pod.parent_id, Some(id(4)));
    assert_eq!(pod.path, format!("{}.{}.{}", id(1), id(2), id(4)));
    let deploy = db
        .store
        .get_item(id(4))
        .await
        .expect("get")
        .expect("deployment");
    assert_eq!(deploy.health, "unhealthy");
    assert!(
        deploy.config.pointer("/metadata/name").is_some(),
        "{}",
        deploy.config
    );
    assert!(
        deploy.config.pointer("/metadata/resourceVersion").is_none(),
        "noise stripped"
    );

    let mut q = TraversalQuery::new(vec![id(5)]);
    q.direction = Direction::Incoming;
    q.relation = RelationKind::Soft;
    q.depth = 1;
    let mut upstream: Vec<uuid::Uuid> = db
        .store
        .traverse(&q)
        .await
        .expect("walk")
        .nodes
        .iter()
        .map(|n| n.id)
        .collect();
    upstream.sort();
    assert_eq!(
        upstream,
        vec![id(2), id(3), id(6)],
        "namespace, node and service point at the pod"
    );
}

/// `transform.health` rules: the first matching one replaces the built-in
/// verdict; one that fails at run time keeps it and warns, naming the item.
async fn health_overrides_replace_the_builtin_and_failures_warn(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "k8s.yaml",
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: k8s}\nspec:\n  file:\n    - paths: [manifests/*.yaml]\n      items: $.items[*]\n\
         \x20 transform:\n    health:\n\
         \x20     - filter: type == 'Kubernetes::Pod'\n        expr: \"{'health': 'warning', 'status': 'Overridden', 'message': name + ' was ' + health}\"\n\
         \x20     - filter: type == 'Kubernetes::Deployment'\n        expr: config.nope.deeper\n\
         \x20   mask:\n\
         \x20     - filter: type == 'Kubernetes::Pod'\n        jsonpath: $.status.containerStatuses[*].name\n        value: '***'\n\
         \x20     - filter: class == 'Pod'\n        jsonpath: $.status.phase\n        value: sha256\n",
    );
    write(dir.path(), "manifests/shop.yaml", MANIFESTS);
    let report = scrape(&db.store, &dir.path().join("k8s.yaml")).await;
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "{:?}",
        report.summary.errors
    );
    let pod = db.store.get_item(id(5)).await.expect("get").expect("pod");
    assert_eq!(
        (pod.health.as_str(), pod.status.as_deref()),
        ("warning", Some("Overridden"))
    );
    assert!(
        pod.description
            .as_deref()
            .is_some_and(|d| d.ends_with("was unhealthy")),
        "{:?}",
        pod.description
    );
    let deploy = db
        .store
        .get_item(id(4))
        .await
        .expect("get")
        .expect("deployment");
    assert_eq!(
        deploy.health, "unhealthy",
        "a failed rule keeps the built-in verdict"
    );
    assert!(
        report
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("Kubernetes::Deployment") && w.contains("health expr")),
        "{:?}",
        report.summary.warnings
    );
}
