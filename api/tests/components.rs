//! Components seen from GraphQL on both backends: keyset pages by name
//! both ways with `totalCount`, filters (roots, children own and adopted,
//! type, health), `node(id)` round-trips, a component's parent, children
//! and attached items, an item's components batched across a page (no
//! N+1), and bad input.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Utc;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use stratum_api::graphql::{StratumSchema, build_schema, global_id};
use stratum_domain::entities::{component, component_relationship, config_component_relationship};
use stratum_domain::{ScrapedItem, Store, ids};
use stratum_tests::{Backend, TestDb, item};
use uuid::Uuid;

stratum_tests::on_both_backends!(components_page_filter_round_trip_and_batch);

const SCRAPER: &str = "components";

fn id_of(t: &str, ext: &str) -> Uuid {
    ids::item_id(ids::scraper_id("default", SCRAPER), t, ext)
}

fn catalog() -> Vec<ScrapedItem> {
    let mut items = vec![
        item("Kubernetes::Deployment", "api", json!({})),
        item("AWS::RDS::DBInstance", "billing-db", json!({})),
    ];
    for p in 0..10 {
        items.push(item(
            "Kubernetes::Pod",
            &format!("api-{p}"),
            json!({"p": p}),
        ));
    }
    items
}

async fn add_component(
    store: &Store,
    name: &str,
    kind: &str,
    parent: Option<Uuid>,
    health: &str,
    deleted: bool,
) -> Uuid {
    let id = Uuid::now_v7();
    let now = Utc::now();
    component::ActiveModel {
        id: Set(id),
        topology_id: Set(Uuid::nil()),
        parent_id: Set(parent),
        path: Set(parent.map(|p| p.to_string()).unwrap_or_default()),
        name: Set(name.into()),
        component_type: Set(kind.into()),
        health: Set(health.into()),
        status: Set(None),
        properties: Set(json!([])),
        selectors: Set(json!([])),
        rolled_up_health: Set(health.into()),
        summary: Set(json!({"healthy": 1})),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(deleted.then_some(now)),
    }
    .insert(store.connection())
    .await
    .expect("component");
    id
}

async fn attach(store: &Store, component: Uuid, config: Uuid, deleted: bool) {
    config_component_relationship::ActiveModel {
        component_id: Set(component),
        config_id: Set(config),
        selector_id: Set("s0".into()),
        created_at: Set(Utc::now()),
        deleted_at: Set(deleted.then(Utc::now)),
    }
    .insert(store.connection())
    .await
    .expect("attach");
}

async fn run(schema: &StratumSchema, q: &str) -> Value {
    let body = serde_json::to_value(schema.execute(q).await).expect("json");
    assert!(body.get("errors").is_none(), "{q}: {body}");
    body
}

async fn error_code(schema: &StratumSchema, q: &str) -> (String, String) {
    let body = serde_json::to_value(schema.execute(q).await).expect("json");
    let error = &body["errors"][0];
    (
        error["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        error["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|n| n["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn components_page_filter_round_trip_and_batch(backend: Backend) {
    let db = TestDb::new(backend).await;
    stratum_tests::scrape_items(
        &db.store,
        SCRAPER,
        catalog(),
        stratum_tests::keep_everything(),
    )
    .await;
    let store = &db.store;
    // Payments → API, Database (own tree), Queue (adopted from another
    // root); a deleted child that must not show.
    let payments = add_component(store, "Payments", "Service", None, "unhealthy", false).await;
    let api = add_component(store, "API", "Service", Some(payments), "unhealthy", false).await;
    let database = add_component(
        store,
        "Database",
        "Database",
        Some(payments),
        "healthy",
        false,
    )
    .await;
    let queue = add_component(store, "Queue", "Queue", None, "warning", false).await;
    add_component(store, "Old", "Service", Some(payments), "healthy", true).await;
    component_relationship::ActiveModel {
        component_id: Set(queue),
        parent_id: Set(payments),
        selector_id: Set("s0".into()),
        created_at: Set(Utc::now()),
        deleted_at: Set(None),
    }
    .insert(store.connection())
    .await
    .expect("adopt");
    attach(store, api, id_of("Kubernetes::Deployment", "api"), false).await;
    for p in 0..10 {
        attach(
            store,
            api,
            id_of("Kubernetes::Pod", &format!("api-{p}")),
            false,
        )
        .await;
    }
    attach(
        store,
        database,
        id_of("AWS::RDS::DBInstance", "billing-db"),
        false,
    )
    .await;
    // A link that no longer matches.
    attach(store, database, id_of("Kubernetes::Pod", "api-0"), true).await;

    let statements = Arc::new(AtomicUsize::new(0));
    let mut counted = db.store.clone();
    let counter = statements.clone();
    counted.observe_statements(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let schema = build_schema(Some(counted));

    // Pages by name, forwards and backwards, with the total.
    let first = run(
        &schema,
        "{ components(first: 2) { totalCount nodes { name } pageInfo { hasNextPage endCursor } } }",
    )
    .await;
    let page = &first["data"]["components"];
    assert_eq!(page["totalCount"], 4);
    assert_eq!(names(&page["nodes"]), ["API", "Database"]);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let cursor = page["pageInfo"]["endCursor"].as_str().expect("cursor");
    let second = run(
        &schema,
        &format!(
            "{{ components(first: 2, after: \"{cursor}\") {{ nodes {{ name }} pageInfo {{ hasNextPage hasPreviousPage }} }} }}"
        ),
    )
    .await;
    let page = &second["data"]["components"];
    assert_eq!(names(&page["nodes"]), ["Payments", "Queue"]);
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    assert_eq!(page["pageInfo"]["hasPreviousPage"], true);
    let last = run(&schema, "{ components(last: 1) { nodes { name } } }").await;
    assert_eq!(names(&last["data"]["components"]["nodes"]), ["Queue"]);

    // Filters.
    let filtered = |filter: &str| {
        let schema = schema.clone();
        let q = format!("{{ components(filter: {filter}) {{ totalCount nodes {{ name }} }} }}");
        async move { run(&schema, &q).await["data"]["components"].clone() }
    };
    assert_eq!(
        names(&filtered("{rootsOnly: true}").await["nodes"]),
        ["Payments", "Queue"]
    );
    let payments_id = global_id("Component", payments);
    let children = filtered(&format!("{{parentId: \"{}\"}}", payments_id.as_str())).await;
    assert_eq!(names(&children["nodes"]), ["API", "Database", "Queue"]);
    assert_eq!(children["totalCount"], 3);
    assert_eq!(
        names(&filtered("{types: [\"Database\"]}").await["nodes"]),
        ["Database"]
    );
    assert_eq!(
        names(&filtered("{health: [UNHEALTHY]}").await["nodes"]),
        ["API", "Payments"]
    );
    assert_eq!(
        names(&filtered("{rolledUpHealth: [WARNING]}").await["nodes"]),
        ["Queue"]
    );
    assert_eq!(filtered("{includeDeleted: true}").await["totalCount"], 5);

    // node(id) round-trips, with parent, children and attached items.
    let api_id = global_id("Component", api);
    let node = run(
        &schema,
        &format!(
            "{{ node(id: \"{}\") {{ __typename id ... on Component {{ name type health rolledUpHealth summary parent {{ name }} children {{ name }} configItems(first: 3) {{ totalCount nodes {{ name }} pageInfo {{ hasNextPage }} }} }} }} }}",
            api_id.as_str()
        ),
    )
    .await;
    let node = &node["data"]["node"];
    assert_eq!(node["__typename"], "Component");
    assert_eq!(node["id"], api_id.as_str());
    assert_eq!(node["type"], "Service");
    assert_eq!(node["health"], "UNHEALTHY");
    assert_eq!(node["summary"], json!({"healthy": 1}));
    assert_eq!(node["parent"]["name"], "Payments");
    assert_eq!(names(&node["children"]), Vec::<String>::new());
    assert_eq!(node["configItems"]["totalCount"], 11);
    assert_eq!(
        names(&node["configItems"]["nodes"]),
        ["api", "api-0", "api-1"]
    );
    assert_eq!(node["configItems"]["pageInfo"]["hasNextPage"], true);
    let tree = run(
        &schema,
        &format!(
            "{{ nodes(ids: [\"{}\"]) {{ ... on Component {{ children {{ name children {{ name }} }} }} }} }}",
            payments_id.as_str()
        ),
    )
    .await;
    assert_eq!(
        names(&tree["data"]["nodes"][0]["children"]),
        ["API", "Database", "Queue"]
    );

    // An item's components, batched across a page: the statement count
    // does not grow with the page.
    let mut counts = Vec::new();
    let mut bodies = Vec::new();
    for n in [3, 12] {
        statements.store(0, Ordering::SeqCst);
        bodies.push(
            run(
                &schema,
                &format!("{{ configItems(first: {n}) {{ nodes {{ name components {{ name children {{ name }} }} }} }} }}"),
            )
            .await,
        );
        counts.push(statements.load(Ordering::SeqCst));
    }
    assert_eq!(
        counts[0], counts[1],
        "statements grow with the page: {counts:?}"
    );
    let by_name: std::collections::HashMap<String, Vec<String>> = bodies[1]["data"]["configItems"]
        ["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or_default().to_string(),
                names(&n["components"]),
            )
        })
        .collect();
    assert_eq!(by_name["api-0"], ["API"], "a deleted link does not show");
    assert_eq!(by_name["billing-db"], ["Database"]);
    assert_eq!(by_name["api"], ["API"]);

    // Bad input: a clear error and code each.
    let (code, message) =
        error_code(&schema, "{ components(first: 101) { nodes { name } } }").await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("between 1 and 100"), "{message}");
    let item_id = global_id("ConfigItem", id_of("Kubernetes::Deployment", "api"));
    let (code, message) = error_code(
        &schema,
        &format!(
            "{{ components(filter: {{parentId: \"{}\"}}) {{ nodes {{ name }} }} }}",
            item_id.as_str()
        ),
    )
    .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("is a ConfigItem id"), "{message}");
    let (code, _) = error_code(
        &schema,
        &format!(
            "{{ components(filter: {{parentId: \"{}\", rootsOnly: true}}) {{ nodes {{ name }} }} }}",
            payments_id.as_str()
        ),
    )
    .await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = error_code(
        &schema,
        &format!(
            "{{ node(id: \"{}\") {{ id }} }}",
            global_id("Component", Uuid::now_v7()).as_str()
        ),
    )
    .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = error_code(
        &schema,
        "{ components(filter: {topologyIds: [\"not-a-uuid\"]}) { nodes { name } } }",
    )
    .await;
    assert_eq!(code, "BAD_USER_INPUT");
}
