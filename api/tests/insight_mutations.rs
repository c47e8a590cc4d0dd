//! The insight mutations on both backends: `pushInsights` by id and by
//! external id (a re-push updates one row, unknown items are counted),
//! `silenceInsight` and `resolveInsight` round-trips, the item's
//! `insights` field, and bad input with its `extensions.code`.

use serde_json::{Value, json};
use stratum_api::graphql::{StratumSchema, build_schema, global_id};
use stratum_tests::{Backend, TestDb, item, keep_everything, scrape_items};

stratum_tests::on_both_backends!(push_silence_and_resolve);

async fn exec(schema: &StratumSchema, q: &str, variables: Value) -> Value {
    let request =
        async_graphql::Request::new(q).variables(async_graphql::Variables::from_json(variables));
    serde_json::to_value(schema.execute(request).await).expect("json")
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

const PUSH: &str = "mutation($insights: [InsightInput!]!) { pushInsights(insights: $insights) \
                    { opened reopened updated unchanged unknownTarget } }";

async fn push_silence_and_resolve(backend: Backend) {
    let db = TestDb::new(backend).await;
    let scraper = scrape_items(
        &db.store,
        "mutations",
        vec![item("AWS::RDS::DBInstance", "billing-db", json!({}))],
        keep_everything(),
    )
    .await;
    let item_id = stratum_domain::ids::item_id(scraper, "AWS::RDS::DBInstance", "billing-db");
    let schema = build_schema(Some(db.store.clone()));
    let by_external = json!({
        "configType": "AWS::RDS::DBInstance", "externalId": "BILLING-DB",
        "analyzer": "prowler", "analysisType": "security", "severity": "HIGH",
        "summary": "public snapshot", "details": {"check": "rds_snapshots_public"}
    });
    let body = exec(
        &schema,
        PUSH,
        json!({"insights": [by_external, {
            "configType": "AWS::RDS::DBInstance", "externalId": "gone",
            "analyzer": "prowler", "analysisType": "security", "severity": "LOW", "summary": "x"
        }]}),
    )
    .await;
    assert_eq!(
        body["data"]["pushInsights"],
        json!({"opened": 1, "reopened": 0, "updated": 0, "unchanged": 0, "unknownTarget": 1}),
        "{body}"
    );
    // The same finding by the item's global id updates that row.
    let gid = global_id("ConfigItem", item_id).0;
    let body = exec(
        &schema,
        PUSH,
        json!({"insights": [{
            "configId": gid, "analyzer": "prowler", "analysisType": "security", "severity": "CRITICAL",
            "summary": "public snapshot"
        }]}),
    )
    .await;
    assert_eq!(body["data"]["pushInsights"]["updated"], 1, "{body}");

    let body = exec(
        &schema,
        "query($id: ID!) { configItem(id: $id) { insights { totalCount edges { node { id severity status analyzer } } } } }",
        json!({"id": gid}),
    )
    .await;
    let insights = &body["data"]["configItem"]["insights"];
    assert_eq!(insights["totalCount"], 1, "{body}");
    let node = &insights["edges"][0]["node"];
    assert_eq!(node["severity"], "critical");
    let insight_id = node["id"].as_str().expect("id").to_string();

    let body = exec(
        &schema,
        "mutation($id: ID!, $until: DateTime) { silenceInsight(id: $id, until: $until) { status silencedUntil } }",
        json!({"id": insight_id, "until": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        body["data"]["silenceInsight"],
        json!({"status": "silenced", "silencedUntil": "2099-01-01T00:00:00+00:00"}),
        "{body}"
    );
    // Open insights no longer list it.
    let body = exec(
        &schema,
        "query($id: ID!) { configItem(id: $id) { insights { totalCount } } }",
        json!({"id": gid}),
    )
    .await;
    assert_eq!(
        body["data"]["configItem"]["insights"]["totalCount"], 0,
        "{body}"
    );

    let body = exec(
        &schema,
        "mutation($id: ID!) { resolveInsight(id: $id) { status silencedUntil } }",
        json!({"id": insight_id}),
    )
    .await;
    assert_eq!(
        body["data"]["resolveInsight"],
        json!({"status": "resolved", "silencedUntil": null}),
        "{body}"
    );

    // Bad input.
    let missing = global_id("Insight", uuid::Uuid::now_v7()).0;
    let body = exec(
        &schema,
        "mutation($id: ID!) { resolveInsight(id: $id) { status } }",
        json!({"id": missing}),
    )
    .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = exec(
        &schema,
        "mutation($id: ID!) { resolveInsight(id: $id) { status } }",
        json!({"id": gid}),
    )
    .await;
    assert_eq!(
        code(&body),
        "BAD_USER_INPUT",
        "an item id is not an insight id: {body}"
    );
    let body = exec(
        &schema,
        "mutation($id: ID!) { silenceInsight(id: $id, until: \"2001-01-01T00:00:00Z\") { status } }",
        json!({"id": insight_id}),
    )
    .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = exec(
        &schema,
        PUSH,
        json!({"insights": [{
            "configId": gid, "analyzer": "prowler", "analysisType": "vibes", "severity": "LOW", "summary": "x"
        }]}),
    )
    .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("insights[0]") && m.contains("vibes"))
    );
    let body = exec(
        &schema,
        PUSH,
        json!({"insights": [{"analyzer": "a", "analysisType": "other", "severity": "LOW", "summary": "no target"}]}),
    )
    .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let many: Vec<Value> = (0..1001)
        .map(|n| json!({"configId": gid, "analyzer": "a", "analysisType": "other", "severity": "LOW", "summary": "x", "key": n.to_string()}))
        .collect();
    let body = exec(&schema, PUSH, json!({"insights": many})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    // Nothing of the rejected calls was written.
    let body = exec(
        &schema,
        "{ insights(filter: {statuses: [OPEN, RESOLVED, SILENCED]}) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["insights"]["totalCount"], 1, "{body}");
}
