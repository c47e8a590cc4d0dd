//! Topologies (SPEC §9) on real SQLite and PostgreSQL: components written
//! from a Topology document, items attached by selectors (types,
//! namespaces, search), components adopted across the tree, health rolled
//! up so a pod turning unhealthy turns its component chain unhealthy in
//! the same ingest batch with one history row per changed component (and
//! back), `healthExpr`/`statusExpr`, removal of components no longer
//! produced, and bad documents rejected at load with their line.

use serde_json::json;
use stratum_domain::store::topology::component_id;
use stratum_domain::{Health, HealthResult, ItemRef, ScrapedItem, Store};
use stratum_scrapers::topology::{LoadedTopology, load_str};
use stratum_tests::{Backend, TestDb, item, keep_everything, scrape_items};
use uuid::Uuid;

stratum_tests::on_both_backends!(
    pod_health_rolls_up_the_component_chain,
    re_evaluation_attaches_and_removes,
);

const TOPOLOGY: &str = r#"apiVersion: stratum.dev/v1
kind: Topology
metadata: {name: shop, namespace: platform}
spec:
  schedule: "@every 1m"
  components:
    - name: Payments
      type: Service
      configs: [{namespaces: [payments], types: [Kubernetes::Deployment]}]
      selectors: [{types: [Queue], labels: {domain: payments}}]
      components:
        - name: API
          type: Service
          configs: [{search: "type=Kubernetes::Pod name=payments-api-*"}]
        - name: Database
          type: Database
          configs: [{types: ["AWS::RDS::DBInstance"]}]
          healthExpr: 'summary.unhealthy > 0 ? "unhealthy" : "healthy"'
          statusExpr: '"items: " + string(summary.items)'
    - name: Queue
      type: Queue
      labels: {domain: payments}
      configs: [{types: ["AWS::SQS::Queue"]}]
"#;

fn topology() -> LoadedTopology {
    load_str(std::path::Path::new("shop.yaml"), TOPOLOGY)
        .expect("topology loads")
        .remove(0)
}

fn with_health(mut i: ScrapedItem, health: Health) -> ScrapedItem {
    i.health = HealthResult {
        health,
        status: None,
        ready: health == Health::Healthy,
        message: None,
    };
    i
}

fn catalog(sick: Option<usize>, pods: usize) -> Vec<ScrapedItem> {
    let mut deployment = item("Kubernetes::Deployment", "payments-api", json!({}));
    deployment.namespace = Some("payments".into());
    let mut items = vec![
        deployment,
        item("AWS::RDS::DBInstance", "payments-db", json!({})),
        item("AWS::SQS::Queue", "payments-events", json!({})),
    ];
    for p in 0..pods {
        let health = if sick == Some(p) {
            Health::Unhealthy
        } else {
            Health::Healthy
        };
        let mut pod = with_health(
            item("Kubernetes::Pod", &format!("payments-api-{p}"), json!({})),
            health,
        );
        pod.namespace = Some("payments".into());
        pod.parent = Some((
            ItemRef::External {
                item_type: "Kubernetes::Deployment".into(),
                external_id: "payments-api".into(),
            },
            "DeploymentPod".into(),
        ));
        items.push(pod);
    }
    items
}

struct Ids {
    payments: Uuid,
    api: Uuid,
    database: Uuid,
    queue: Uuid,
}

fn ids(t: &LoadedTopology) -> Ids {
    let topology = t.plan.id();
    let payments = component_id(topology, None, "Service", "Payments");
    Ids {
        payments,
        api: component_id(topology, Some(payments), "Service", "API"),
        database: component_id(topology, Some(payments), "Database", "Database"),
        queue: component_id(topology, None, "Queue", "Queue"),
    }
}

async fn health_of(store: &Store, id: Uuid) -> (String, String, Option<String>, serde_json::Value) {
    let c = store
        .get_components(&[id])
        .await
        .expect("get")
        .remove(&id)
        .expect("component exists");
    (c.health, c.rolled_up_health, c.status, c.summary)
}

async fn history_len(store: &Store, id: Uuid) -> usize {
    store
        .component_health_history(id)
        .await
        .expect("history")
        .len()
}

async fn pod_health_rolls_up_the_component_chain(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let t = topology();
    let ids = ids(&t);
    scrape_items(store, "shop", catalog(None, 3), keep_everything()).await;
    let outcome = store.apply_topology(&t.plan).await.expect("apply");
    assert_eq!(
        (outcome.components, outcome.attached, outcome.adopted),
        (4, 6, 1)
    );
    assert_eq!(health_of(store, ids.api).await.1, "healthy");
    let database = health_of(store, ids.database).await;
    assert_eq!(
        (database.0.as_str(), database.2.as_deref()),
        ("healthy", Some("items: 1"))
    );
    let payments = health_of(store, ids.payments).await;
    assert_eq!(
        (payments.1.as_str(), payments.2.as_deref()),
        ("healthy", Some("ok"))
    );
    // Payments counts its deployment, its two children and the adopted queue.
    assert_eq!(payments.3["items"], 1);
    assert_eq!(payments.3["children"], 3);
    assert_eq!(payments.3["healthy"], 4);

    let before: Vec<usize> = futures_util::future::join_all(
        [ids.payments, ids.api, ids.database, ids.queue].map(|id| history_len(store, id)),
    )
    .await;

    // One pod crashes: in that same ingest batch, API and Payments turn
    // unhealthy (and the deployment's rollup with them); one event each.
    scrape_items(store, "shop", catalog(Some(1), 3), keep_everything()).await;
    let api = health_of(store, ids.api).await;
    assert_eq!((api.0.as_str(), api.1.as_str()), ("unhealthy", "unhealthy"));
    assert_eq!(api.2.as_deref(), Some("1 unhealthy, 0 warning"));
    let payments = health_of(store, ids.payments).await;
    assert_eq!(
        (payments.0.as_str(), payments.1.as_str()),
        ("unhealthy", "unhealthy"),
        "its own deployment rolls up the pod too"
    );
    assert_eq!(health_of(store, ids.queue).await.1, "healthy");
    assert_eq!(health_of(store, ids.database).await.1, "healthy");
    let after: Vec<usize> = futures_util::future::join_all(
        [ids.payments, ids.api, ids.database, ids.queue].map(|id| history_len(store, id)),
    )
    .await;
    assert_eq!(
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>(),
        vec![1, 1, 0, 0]
    );
    let last = store
        .component_health_history(ids.payments)
        .await
        .expect("history");
    let (previous, current, _) = last.last().expect("a transition");
    assert_eq!(
        (previous.as_str(), current.as_str()),
        ("healthy", "unhealthy")
    );

    // It recovers: the chain reverts, one more event each.
    scrape_items(store, "shop", catalog(None, 3), keep_everything()).await;
    assert_eq!(health_of(store, ids.api).await.1, "healthy");
    assert_eq!(health_of(store, ids.payments).await.1, "healthy");
    assert_eq!(history_len(store, ids.payments).await, after[0] + 1);
}

async fn re_evaluation_attaches_and_removes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let t = topology();
    let ids = ids(&t);
    scrape_items(store, "shop", catalog(None, 1), keep_everything()).await;
    store.apply_topology(&t.plan).await.expect("apply");
    // A new pod appears; the next evaluation attaches it.
    scrape_items(store, "shop", catalog(Some(1), 2), keep_everything()).await;
    assert_eq!(
        health_of(store, ids.api).await.1,
        "healthy",
        "not attached yet"
    );
    let outcome = store.apply_topology(&t.plan).await.expect("apply");
    assert_eq!(outcome.attached, 5);
    assert_eq!(health_of(store, ids.api).await.1, "unhealthy");

    // The API component leaves the document: it is removed, and Payments
    // no longer counts it.
    let mut plan = t.plan.clone();
    plan.components[0].components.retain(|c| c.name != "API");
    let outcome = store.apply_topology(&plan).await.expect("apply");
    assert_eq!(outcome.removed, 1);
    let gone = store
        .get_components(&[ids.api])
        .await
        .expect("get")
        .remove(&ids.api)
        .expect("row kept");
    assert!(gone.deleted_at.is_some());
    let payments = health_of(store, ids.payments).await;
    assert_eq!(payments.3["children"], 2);
    // The deployment still rolls up its crashing pod.
    assert_eq!(payments.1, "unhealthy");
}

fn load_error(text: &str) -> String {
    match load_str(std::path::Path::new("bad.yaml"), text) {
        Ok(_) => panic!("{text} loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_topologies_are_rejected_with_their_line() {
    let head =
        "apiVersion: stratum.dev/v1\nkind: Topology\nmetadata: {name: bad}\nspec:\n  components:\n";
    let cycle = format!(
        "{head}    - name: A\n      type: Queue\n      selectors: [{{types: [Queue]}}]\n    - name: B\n      type: Queue\n      selectors: [{{types: [Queue]}}]\n"
    );
    let err = load_error(&cycle);
    assert!(
        err.contains("component selectors form a cycle: A → B → A"),
        "{err}"
    );
    assert!(err.starts_with("bad.yaml:6:"), "{err}");

    let search = format!(
        "{head}    - name: A\n      type: Service\n      configs: [{{search: \"type=(\"}}]\n"
    );
    let err = load_error(&search);
    assert!(err.contains("configs[0].search"), "{err}");
    assert!(err.starts_with("bad.yaml:8:"), "{err}");

    let cel = format!(
        "{head}    - name: A\n      type: Service\n      healthExpr: 'summary.unhealthy >'\n"
    );
    let err = load_error(&cel);
    assert!(err.contains("healthExpr: invalid CEL"), "{err}");

    let unknown = format!("{head}    - name: A\n      type: Service\n      colour: red\n");
    let err = load_error(&unknown);
    assert!(
        err.contains("unknown field `colour`") && err.starts_with("bad.yaml:8:"),
        "{err}"
    );

    let empty = format!("{head}    - name: A\n      type: Service\n      configs: [{{}}]\n");
    assert!(load_error(&empty).contains("selects nothing"));

    let twins =
        format!("{head}    - {{name: A, type: Service}}\n    - {{name: A, type: Service}}\n");
    assert!(load_error(&twins).contains("is named \"A\""));
}
