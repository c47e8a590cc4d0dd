//! Topologies seen from GraphQL on both backends: `topology(id:)` by
//! `namespace/name` with depth, a component's children (own and adopted),
//! attached items, health and rolled-up health, subtree insight counts,
//! change counts and cost; and bad arguments.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use stratum_api::graphql::build_schema;
use stratum_domain::store::costs::CostRow;
use stratum_domain::{Health, InsightObservation, ItemRef, ScrapedInsight, Severity};
use stratum_tests::{Backend, TestDb, item, keep_everything, scrape_items};

stratum_tests::on_both_backends!(topology_over_graphql);

const TOPOLOGY: &str = r#"apiVersion: stratum.dev/v1
kind: Topology
metadata: {name: shop, namespace: platform}
spec:
  components:
    - name: Shop
      type: Product
      selectors: [{types: [Queue]}]
      components:
        - name: Payments
          type: Service
          configs: [{types: ["Kubernetes::Deployment"], namespaces: [payments]}]
          components:
            - name: Database
              type: Database
              configs: [{types: ["AWS::RDS::DBInstance"]}]
    - name: Events
      type: Queue
      configs: [{types: ["AWS::SQS::Queue"]}]
"#;

async fn topology_over_graphql(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let mut deployment = item("Kubernetes::Deployment", "payments-api", json!({"v": 1}));
    deployment.namespace = Some("payments".into());
    deployment.health.health = Health::Warning;
    let catalog = |deployment: stratum_domain::ScrapedItem| {
        vec![
            deployment,
            item("AWS::RDS::DBInstance", "payments-db", json!({})),
            item("AWS::SQS::Queue", "payments-events", json!({})),
        ]
    };
    let scraper = scrape_items(
        store,
        "shop",
        catalog(deployment.clone()),
        keep_everything(),
    )
    .await;
    let topology = stratum_scrapers::topology::load_str(std::path::Path::new("t.yaml"), TOPOLOGY)
        .expect("loads")
        .remove(0);
    store.apply_topology(&topology.plan).await.expect("apply");
    // A finding on the database, a change on the deployment, spend on both.
    store
        .observe_insights(
            scraper,
            vec![InsightObservation {
                target: ItemRef::External {
                    item_type: "AWS::RDS::DBInstance".into(),
                    external_id: "payments-db".into(),
                },
                insight: ScrapedInsight {
                    analyzer: "prowler".into(),
                    analysis_type: "security".into(),
                    severity: Severity::High,
                    summary: "public snapshot".into(),
                    message: String::new(),
                    details: Value::Null,
                    key: String::new(),
                },
            }],
        )
        .await
        .expect("insight");
    let mut changed = deployment.clone();
    changed.config = stratum_domain::normalize::CanonicalConfig::from_value(json!({"v": 2}));
    scrape_items(store, "shop", catalog(changed), keep_everything()).await;
    let now = Utc::now();
    let row = |ext: &str, usd: i64| CostRow {
        external_id: ext.into(),
        service: None,
        period_start: now - Duration::hours(3),
        period_end: now - Duration::hours(2),
        billed: usd * 1_000_000,
        effective: usd * 1_000_000,
        currency: "USD".into(),
    };
    store
        .import_costs(
            scraper,
            vec![row("payments-db", 7), row("payments-events", 2)],
        )
        .await
        .expect("costs");

    let schema = build_schema(Some(store.clone()));
    let query = r#"{ topology(id: "platform/shop", depth: 2) { name type health rolledUpHealth
        children { name } configItems { nodes { name } }
        insightCounts { total high } changeCount cost(window: D1) { amount currency } } }"#;
    let body = serde_json::to_value(schema.execute(query).await).expect("json");
    let components = body["data"]["topology"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let names: Vec<&str> = components
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Events", "Shop", "Payments"],
        "depth 2, top level first"
    );
    let shop = &components[1];
    let mut children: Vec<&str> = shop["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    children.sort();
    assert_eq!(
        children,
        ["Events", "Payments"],
        "own child and adopted queue"
    );
    assert_eq!(shop["health"], "UNKNOWN", "no items of its own");
    assert_eq!(shop["rolledUpHealth"], "WARNING", "{body}");
    assert_eq!(shop["insightCounts"], json!({"total": 1, "high": 1}));
    assert_eq!(
        shop["changeCount"], 2,
        "the deployment turning warning, and its diff: {body}"
    );
    assert_eq!(
        shop["cost"],
        json!([{"amount": "9", "currency": "USD"}]),
        "database and adopted queue, each once"
    );
    let payments = &components[2];
    assert_eq!(
        payments["configItems"]["nodes"],
        json!([{"name": "payments-api"}])
    );
    assert_eq!(payments["health"], "WARNING");

    for bad in [
        r#"{ topology(id: "nonsense") { name } }"#,
        r#"{ topology(id: "platform/shop", depth: 0) { name } }"#,
        r#"{ components { nodes { changeCount(since: "soon") } } }"#,
    ] {
        let body = serde_json::to_value(schema.execute(bad).await).expect("json");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{bad}: {body}"
        );
    }
    let none = serde_json::to_value(
        schema
            .execute(r#"{ topology(id: "platform/none") { name } }"#)
            .await,
    )
    .expect("json");
    assert_eq!(none["data"]["topology"], json!([]));
}
