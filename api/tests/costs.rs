//! A `cost` source through a real file scrape on both backends: CSV and
//! JSON files (renamed columns), a malformed file rejected whole with its
//! row number while the rest imports, unattributed spend reported on the
//! run, and the GraphQL cost fields (`cost`, `costs`, `subtreeCost`, the
//! `costs` report) over what was imported.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use stratum_tests::{Backend, TestDb};

stratum_tests::on_both_backends!(cost_source_through_a_scrape);

const CONFIG: &str = r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {name: billing, namespace: test}
spec:
  file:
    - paths: [accounts.json]
      items: $.accounts[*]
      id: $.arn
      type: AWS::RDS::DBInstance
      name: $.name
  cost:
    - paths: ["costs/*.csv"]
    - paths: [focus.json]
      columns: {resourceId: arn}
"#;

async fn cost_source_through_a_scrape(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("accounts.json"),
        r#"{"accounts": [{"arn": "arn:aws:rds:eu:1:db:orders", "name": "orders"}]}"#,
    )
    .expect("write");
    std::fs::create_dir(dir.path().join("costs")).expect("dir");
    let now = Utc::now();
    let ts = |h: i64| (now - Duration::hours(h)).to_rfc3339();
    std::fs::write(
        dir.path().join("costs/nov.csv"),
        format!(
            "ResourceId,ServiceName,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency\n\
             ARN:AWS:RDS:EU:1:DB:ORDERS,AmazonRDS,{},{},2.5,2.0,USD\n\
             arn:aws:ec2:eu:1:i-gone,AmazonEC2,{},{},1.25,1.25,USD\n",
            ts(3),
            ts(2),
            ts(3),
            ts(2)
        ),
    )
    .expect("write");
    // A malformed file: nothing of it is imported, the run reports why.
    std::fs::write(
        dir.path().join("costs/bad.csv"),
        format!(
            "ResourceId,ChargePeriodStart,ChargePeriodEnd,EffectiveCost,BillingCurrency\n\
             arn:aws:rds:eu:1:db:orders,{},{},9,USD\n\
             arn:aws:rds:eu:1:db:orders,{},{},lots,USD\n",
            ts(5),
            ts(4),
            ts(5),
            ts(4)
        ),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("focus.json"),
        json!([{"arn": "arn:aws:rds:eu:1:db:orders", "ChargePeriodStart": ts(2),
                "ChargePeriodEnd": ts(1), "EffectiveCost": 0.5, "BillingCurrency": "USD"}])
        .to_string(),
    )
    .expect("write");
    let config = stratum_scrapers::load_str(&dir.path().join("billing.yaml"), CONFIG)
        .expect("config")
        .remove(0);
    let report = stratum_scrapers::run_scrape(store, &config, &Default::default())
        .await
        .expect("scrape");
    assert_eq!(report.status, stratum_domain::RunStatus::Partial);
    let errors = report.summary.errors.join("\n");
    assert!(
        errors.contains(
            "bad.csv: row 2: EffectiveCost: \"lots\" is not a number (the file was not imported)"
        ),
        "{errors}"
    );
    let warnings = report.summary.warnings.join("\n");
    assert!(
        warnings.contains("1 cost row(s) match no item (1.25 USD)"),
        "{warnings}"
    );

    let schema = stratum_api::graphql::build_schema(Some(store.clone()));
    let body: Value = serde_json::to_value(
        schema
            .execute(
                "{ configItems(filter: {types: [\"AWS::RDS::DBInstance\"]}) { nodes { name \
                 cost { currency total1d total30d } costs { currency total7d } subtreeCost(window: D7) { amount currency } } } \
                 costs(groupBy: [\"type\"], window: D1) { groups { key items cost { amount currency } } unattributed { amount currency } mixedCurrency } }",
            )
            .await,
    )
    .expect("json");
    let node = &body["data"]["configItems"]["nodes"][0];
    assert_eq!(node["name"], "orders", "{body}");
    assert_eq!(
        node["cost"],
        json!({"currency": "USD", "total1d": "2.5", "total30d": "2.5"}),
        "{body}"
    );
    assert_eq!(
        node["costs"],
        json!([{"currency": "USD", "total7d": "2.5"}])
    );
    assert_eq!(
        node["subtreeCost"],
        json!([{"amount": "2.5", "currency": "USD"}])
    );
    assert_eq!(
        body["data"]["costs"],
        json!({
            "groups": [{"key": {"type": "AWS::RDS::DBInstance"}, "items": 1, "cost": [{"amount": "2.5", "currency": "USD"}]}],
            "unattributed": [{"amount": "1.25", "currency": "USD"}],
            "mixedCurrency": false
        })
    );
    let bad = serde_json::to_value(
        schema
            .execute("{ costs(groupBy: [\"health\"]) { mixedCurrency } }")
            .await,
    )
    .expect("json");
    assert_eq!(
        bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{bad}"
    );
}
