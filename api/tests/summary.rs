//! `catalogSummary` and `facets` on both backends against a hand-counted
//! catalog: five items, three changes, four insights (one resolved) and
//! costs in two currencies.

use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::{Value, json};
use stratum_api::graphql::{StratumSchema, build_schema};
use stratum_domain::entities::insight;
use stratum_domain::{Health, ScrapedItem, Store, ids};
use stratum_tests::{Backend, TestDb, item};
use uuid::Uuid;

stratum_tests::on_both_backends!(summary_and_facets_match_the_hand_count);

const SCRAPER: &str = "summary";

fn id_of(t: &str, ext: &str) -> Uuid {
    ids::item_id(ids::scraper_id("default", SCRAPER), t, ext)
}

fn catalog(version: u32) -> Vec<ScrapedItem> {
    let k8s = |t: &str, name: &str, ns: &str, health: Health, config: Value| {
        let mut i = item(t, name, config);
        i.namespace = Some(ns.into());
        i.tags.insert("team".into(), ns.into());
        i.health.health = health;
        i
    };
    let mut api1 = k8s(
        "Kubernetes::Pod",
        "api-1",
        "payments",
        Health::Healthy,
        json!({"v": version}),
    );
    api1.labels.insert("app".into(), "api".into());
    vec![
        k8s(
            "Kubernetes::Deployment",
            "api",
            "payments",
            Health::Healthy,
            json!({}),
        ),
        api1,
        k8s(
            "Kubernetes::Pod",
            "api-2",
            "payments",
            Health::Unhealthy,
            json!({}),
        ),
        k8s(
            "Kubernetes::Pod",
            "worker-1",
            "shipping",
            Health::Warning,
            json!({}),
        ),
        item("AWS::RDS::DBInstance", "billing-db", json!({})),
    ]
}

async fn scrape(store: &Store, items: Vec<ScrapedItem>) -> Uuid {
    stratum_tests::scrape_items(store, SCRAPER, items, stratum_tests::keep_everything()).await
}

async fn set_cost(store: &Store, id: Uuid, currency: &str, micros: i64) {
    let backend = store.backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "UPDATE config_items SET currency = $1, cost_total_30d = $2 WHERE id = $3"
        }
        _ => "UPDATE config_items SET currency = ?, cost_total_30d = ? WHERE id = ?",
    };
    store
        .connection()
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [currency.into(), micros.into(), id.into()],
        ))
        .await
        .expect("cost");
}

async fn add_insight(
    store: &Store,
    scraper: Uuid,
    config: Uuid,
    analyzer: &str,
    severity: &str,
    status: &str,
) {
    insight::ActiveModel {
        id: Set(Uuid::new_v4()),
        seq: Set(rand_seq()),
        config_id: Set(config),
        scraper_id: Set(scraper),
        analyzer: Set(analyzer.into()),
        analysis_type: Set("security".into()),
        severity: Set(severity.into()),
        status: Set(status.into()),
        summary: Set(analyzer.into()),
        message: Set(String::new()),
        details: Set(json!({})),
        first_observed: Set(chrono::Utc::now()),
        last_observed: Set(chrono::Utc::now()),
        silenced_until: Set(None),
        status_changed_at: Set(None),
    }
    .insert(store.connection())
    .await
    .expect("insight");
}

fn rand_seq() -> i64 {
    (Uuid::new_v4().as_u128() % 1_000_000_000) as i64
}

async fn query(schema: &StratumSchema, q: &str) -> Value {
    serde_json::to_value(schema.execute(q).await).expect("json")
}

/// Groups as `{key-json: (count, health, changes, insights total, cost)}`.
fn groups(body: &Value) -> Vec<(Value, i64, Value, i64, i64, Value)> {
    let mut out: Vec<_> = body["data"]["catalogSummary"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|g| {
            (
                g["key"].clone(),
                g["count"].as_i64().unwrap_or(-1),
                g["health"].clone(),
                g["changes"].as_i64().unwrap_or(-1),
                g["insights"]["total"].as_i64().unwrap_or(-1),
                g["cost"].clone(),
            )
        })
        .collect();
    out.sort_by_key(|g| g.0.to_string());
    out
}

fn health(healthy: i64, warning: i64, unhealthy: i64) -> Value {
    json!({"healthy": healthy, "warning": warning, "unhealthy": unhealthy, "unknown": 0})
}

fn counts(body: &Value, field: &str) -> std::collections::BTreeMap<String, i64> {
    body["data"]["facets"][field]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap_or_default().to_string(),
                v["count"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

async fn summary_and_facets_match_the_hand_count(backend: Backend) {
    let db = TestDb::new(backend).await;
    scrape(&db.store, catalog(1)).await;
    // api-1 changes: one diff. api-2 and worker-1 were created bad: one
    // health transition each.
    let scraper = scrape(&db.store, catalog(2)).await;
    let pod = |n: &str| id_of("Kubernetes::Pod", n);
    set_cost(&db.store, pod("api-1"), "USD", 1_500_000).await;
    set_cost(&db.store, pod("api-2"), "USD", 2_000_000).await;
    set_cost(
        &db.store,
        id_of("AWS::RDS::DBInstance", "billing-db"),
        "EUR",
        10_000_000,
    )
    .await;
    add_insight(
        &db.store,
        scraper,
        pod("api-1"),
        "privileged",
        "high",
        "open",
    )
    .await;
    add_insight(
        &db.store,
        scraper,
        pod("api-2"),
        "privileged",
        "critical",
        "open",
    )
    .await;
    add_insight(
        &db.store,
        scraper,
        pod("api-2"),
        "latest-tag",
        "low",
        "resolved",
    )
    .await;
    add_insight(
        &db.store,
        scraper,
        pod("worker-1"),
        "replicas",
        "medium",
        "open",
    )
    .await;
    let schema = build_schema(Some(db.store.clone()));

    let fields = "key count health { healthy warning unhealthy unknown } changes insights { total critical high medium } cost { amount currency }";
    let body = query(&schema, &format!("{{ catalogSummary {{ {fields} }} }}")).await;
    assert_eq!(
        groups(&body),
        vec![
            (
                json!({"type": "AWS::RDS::DBInstance"}),
                1,
                health(1, 0, 0),
                0,
                0,
                json!([{"amount": "10", "currency": "EUR"}])
            ),
            (
                json!({"type": "Kubernetes::Deployment"}),
                1,
                health(1, 0, 0),
                0,
                0,
                json!([])
            ),
            (
                json!({"type": "Kubernetes::Pod"}),
                3,
                health(1, 1, 1),
                3,
                3,
                json!([{"amount": "3.5", "currency": "USD"}])
            ),
        ],
        "{body}"
    );
    let pods = body["data"]["catalogSummary"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["key"]["type"] == "Kubernetes::Pod")
        .expect("pods")
        .clone();
    assert_eq!(
        pods["insights"],
        json!({"total": 3, "critical": 1, "high": 1, "medium": 1})
    );

    let body = query(
        &schema,
        &format!("{{ catalogSummary(groupBy: [\"namespace\", \"health\"]) {{ {fields} }} }}"),
    )
    .await;
    let by_ns: Vec<(Value, i64)> = groups(&body).into_iter().map(|g| (g.0, g.1)).collect();
    assert_eq!(
        by_ns,
        vec![
            (json!({"health": "healthy", "namespace": ""}), 1),
            (json!({"health": "healthy", "namespace": "payments"}), 2),
            (json!({"health": "unhealthy", "namespace": "payments"}), 1),
            (json!({"health": "warning", "namespace": "shipping"}), 1),
        ]
    );
    let body = query(
        &schema,
        &format!("{{ catalogSummary(groupBy: [\"tag:team\"]) {{ {fields} }} }}"),
    )
    .await;
    let by_team: Vec<(Value, i64, i64)> =
        groups(&body).into_iter().map(|g| (g.0, g.1, g.3)).collect();
    assert_eq!(
        by_team,
        vec![
            (json!({"tag:team": ""}), 1, 0),
            (json!({"tag:team": "payments"}), 3, 2),
            (json!({"tag:team": "shipping"}), 1, 1),
        ]
    );
    let body = query(
        &schema,
        &format!("{{ catalogSummary(search: \"namespace=payments\", changesSince: \"1h\") {{ {fields} }} }}"),
    )
    .await;
    let filtered: Vec<(Value, i64, i64)> =
        groups(&body).into_iter().map(|g| (g.0, g.1, g.3)).collect();
    assert_eq!(
        filtered,
        vec![
            (json!({"type": "Kubernetes::Deployment"}), 1, 0),
            (json!({"type": "Kubernetes::Pod"}), 2, 2),
        ]
    );

    // Facets.
    let body = query(
        &schema,
        "{ facets { configTypes { value count } configClasses { value count } tagKeys { value count } \
         tagValues(key: \"team\") { value count } labelKeys { value count } changeTypes { value count } analyzers { value count } } }",
    )
    .await;
    let map = |pairs: &[(&str, i64)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(
        counts(&body, "configTypes"),
        map(&[
            ("AWS::RDS::DBInstance", 1),
            ("Kubernetes::Deployment", 1),
            ("Kubernetes::Pod", 3)
        ])
    );
    assert_eq!(
        body["data"]["facets"]["configTypes"][0]["value"], "Kubernetes::Pod",
        "most frequent first"
    );
    assert_eq!(counts(&body, "tagKeys"), map(&[("team", 4)]));
    assert_eq!(
        counts(&body, "tagValues"),
        map(&[("payments", 3), ("shipping", 1)])
    );
    assert_eq!(counts(&body, "labelKeys"), map(&[("app", 1)]));
    assert_eq!(
        counts(&body, "changeTypes"),
        map(&[("Unhealthy", 1), ("Warning", 1), ("diff", 1)])
    );
    assert_eq!(
        counts(&body, "analyzers"),
        map(&[("privileged", 2), ("replicas", 1)])
    );
    let body = query(
        &schema,
        "{ facets(filter: {namespaces: [\"shipping\"]}) { configTypes { value count } analyzers { value count } } }",
    )
    .await;
    assert_eq!(counts(&body, "configTypes"), map(&[("Kubernetes::Pod", 1)]));
    assert_eq!(counts(&body, "analyzers"), map(&[("replicas", 1)]));

    // Insights: catalog-wide and per item, open by default.
    let total = |q: String| {
        let schema = schema.clone();
        async move {
            let body = query(&schema, &q).await;
            body.pointer("/data/insights/totalCount")
                .or_else(|| body.pointer("/data/configItem/insights/totalCount"))
                .and_then(Value::as_i64)
                .unwrap_or_else(|| panic!("{q}: {body}"))
        }
    };
    assert_eq!(total("{ insights { totalCount } }".into()).await, 3);
    assert_eq!(
        total("{ insights(filter: {statuses: [RESOLVED]}) { totalCount } }".into()).await,
        1
    );
    assert_eq!(
        total("{ insights(filter: {minSeverity: HIGH}) { totalCount } }".into()).await,
        2
    );
    assert_eq!(total("{ insights(filter: {analyzers: [\"privileged\"], types: [\"security\"]}) { totalCount } }".into()).await, 2);
    let api2 = pod("api-2");
    assert_eq!(
        total(format!(
            "{{ configItem(uuid: \"{api2}\") {{ insights {{ totalCount }} }} }}"
        ))
        .await,
        1
    );
    assert_eq!(
        total(format!("{{ configItem(uuid: \"{api2}\") {{ insights(status: [OPEN, RESOLVED]) {{ totalCount }} }} }}")).await,
        2
    );
    let body = query(&schema, "{ insights(first: 1, filter: {severities: [CRITICAL]}) { nodes { id analyzer type severity config { name } } } }").await;
    let critical = &body["data"]["insights"]["nodes"][0];
    assert_eq!(critical["config"]["name"], "api-2", "{body}");
    assert_eq!(
        (critical["analyzer"].clone(), critical["type"].clone()),
        (json!("privileged"), json!("security"))
    );
    let id = critical["id"].as_str().expect("id");
    let body = query(
        &schema,
        &format!("{{ node(id: \"{id}\") {{ __typename id }} }}"),
    )
    .await;
    assert_eq!(body["data"]["node"]["__typename"], "Insight");

    // Bad input.
    for q in [
        "{ catalogSummary(groupBy: [\"colour\"]) { count } }",
        "{ catalogSummary(groupBy: [\"type\", \"class\", \"health\", \"namespace\"]) { count } }",
        "{ catalogSummary(changesSince: \"soon\") { count } }",
        "{ catalogSummary(search: \"health=sick\") { count } }",
    ] {
        let body = query(&schema, q).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{q}: {body}"
        );
    }
}
