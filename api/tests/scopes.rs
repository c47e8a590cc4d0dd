//! Scoped tokens over a real socket on both backends (SPEC §12, issue #6):
//! a token scoped to the `payments` namespace sees exactly its items in
//! lists, totals, summaries, facets, changes, insights and scrapers; an
//! out-of-scope id is `NOT_FOUND`; a walk stops at the scope's boundary;
//! subscriptions deliver only in-scope events; and writes that reach items
//! by reference are refused to scoped tokens.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use stratum_api::auth::{AuthSettings, Authenticator};
use stratum_api::graphql::{SchemaOptions, global_id};
use stratum_api::http::AppState;
use stratum_domain::{ItemRef, ScrapedInsight, ScrapedItem, ScrapedRelationship, Severity, ids};
use stratum_tests::ws::Client;
use stratum_tests::{Backend, TestDb, item};
use uuid::Uuid;

mod common;

stratum_tests::on_both_backends!(
    a_namespace_scoped_token_sees_exactly_its_items,
    scoped_subscriptions_deliver_only_in_scope_events
);

const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-1234";
const SCRAPER: &str = "scopes";

fn id_of(t: &str, ext: &str) -> Uuid {
    ids::item_id(ids::scraper_id("default", SCRAPER), t, ext)
}

fn pod(name: &str) -> Uuid {
    id_of("Kubernetes::Pod", name)
}

fn external(t: &str, ext: &str) -> ItemRef {
    ItemRef::External {
        item_type: t.into(),
        external_id: ext.into(),
    }
}

fn soft(t: &str, ext: &str, upstream: bool) -> ScrapedRelationship {
    ScrapedRelationship {
        other: external(t, ext),
        other_is_upstream: upstream,
        relation: "Test".into(),
    }
}

fn finding(analyzer: &str) -> ScrapedInsight {
    ScrapedInsight {
        analyzer: analyzer.into(),
        analysis_type: "security".into(),
        severity: Severity::High,
        summary: analyzer.into(),
        message: String::new(),
        details: Value::Null,
        key: String::new(),
    }
}

/// `api` (Deployment) → `api-1` → `worker-1` (shipping) → `api-2`, and
/// `node-1` (no namespace, so hidden by a namespace scope) → `api-1`. Every config carries `version`, so
/// a second scrape with another version changes every item.
fn catalog(version: u32) -> Vec<ScrapedItem> {
    let k8s = |t: &str, name: &str, ns: Option<&str>| {
        let mut i = item(t, name, json!({"version": version}));
        i.namespace = ns.map(str::to_string);
        i.tags
            .insert("team".into(), ns.unwrap_or("platform").to_string());
        i
    };
    let deployment = k8s("Kubernetes::Deployment", "api", Some("payments"));
    let mut api1 = k8s("Kubernetes::Pod", "api-1", Some("payments"));
    api1.parent = Some((
        external("Kubernetes::Deployment", "api"),
        "DeploymentPod".into(),
    ));
    api1.insights.push(finding("privileged"));
    let mut worker = k8s("Kubernetes::Pod", "worker-1", Some("shipping"));
    worker
        .relationships
        .push(soft("Kubernetes::Pod", "api-1", true));
    worker.insights.push(finding("latest-tag"));
    let mut api2 = k8s("Kubernetes::Pod", "api-2", Some("payments"));
    api2.relationships
        .push(soft("Kubernetes::Pod", "worker-1", true));
    let mut node = k8s("Kubernetes::Node", "node-1", None);
    node.relationships
        .push(soft("Kubernetes::Pod", "api-1", false));
    vec![deployment, api1, worker, api2, node]
}

/// A component attached to `items`.
async fn component(db: &TestDb, name: &str, items: &[Uuid]) -> Uuid {
    use sea_orm::{ActiveModelTrait, Set};
    use stratum_domain::entities::{component, config_component_relationship};
    let id = Uuid::now_v7();
    let now = chrono::Utc::now();
    component::ActiveModel {
        id: Set(id),
        topology_id: Set(Uuid::nil()),
        parent_id: Set(None),
        path: Set(String::new()),
        name: Set(name.into()),
        component_type: Set("Service".into()),
        health: Set("healthy".into()),
        status: Set(None),
        properties: Set(json!([])),
        selectors: Set(json!([])),
        rolled_up_health: Set("healthy".into()),
        summary: Set(json!({})),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db.store.connection())
    .await
    .expect("component");
    for config in items {
        config_component_relationship::ActiveModel {
            component_id: Set(id),
            config_id: Set(*config),
            selector_id: Set("s0".into()),
            created_at: Set(now),
            deleted_at: Set(None),
        }
        .insert(db.store.connection())
        .await
        .expect("attach");
    }
    id
}

async fn scrape(db: &TestDb, items: Vec<ScrapedItem>) {
    stratum_tests::scrape_items(&db.store, SCRAPER, items, stratum_tests::keep_everything()).await;
}

async fn serve(db: &TestDb) -> SocketAddr {
    let dir = tempfile::tempdir().expect("tmp");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    let settings = AuthSettings {
        hs256_secret_file: Some(secret),
        role_claim: "stratum/role".into(),
        ..AuthSettings::default()
    };
    let mut state = AppState::new(db.store.clone(), SchemaOptions::default());
    state.auth = Arc::new(Authenticator::from_settings(&settings).expect("auth settings"));
    common::spawn(state).await
}

fn token(role: &str, scope: Option<Value>) -> String {
    let mut claims = json!({
        "sub": "ci", "stratum/role": role, "jti": Uuid::new_v4().to_string(),
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    if let Some(scope) = scope {
        claims["stratum/scope"] = scope;
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET).expect("key"),
    )
    .expect("encode")
}

fn payments() -> Option<Value> {
    Some(json!({"namespaces": ["pay*"]}))
}

/// POSTs `query` with `token`; the status and the body.
async fn post(addr: SocketAddr, token: &str, query: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(json!({"query": query}).to_string())
        .send()
        .await
        .expect("post");
    (
        response.status().as_u16(),
        response.json().await.expect("json"),
    )
}

/// The data of a query that must succeed.
async fn data(addr: SocketAddr, token: &str, query: &str) -> Value {
    let (status, body) = post(addr, token, query).await;
    assert!(
        status == 200 && body.get("errors").is_none(),
        "{query}: {status} {body}"
    );
    body["data"].clone()
}

fn names(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|n| {
            n["name"]
                .as_str()
                .or_else(|| n["item"]["name"].as_str())
                .or_else(|| n["config"]["name"].as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    out.sort();
    out
}

fn facet(list: &Value) -> Vec<(String, i64)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap_or("?").to_string(),
                v["count"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn item_id(t: &str, ext: &str) -> String {
    global_id("ConfigItem", id_of(t, ext)).0
}

async fn a_namespace_scoped_token_sees_exactly_its_items(backend: Backend) {
    let db = TestDb::new(backend).await;
    scrape(&db, catalog(1)).await;
    scrape(&db, catalog(2)).await;
    let addr = serve(&db).await;
    let admin = token("admin", None);
    let scoped = token("viewer", payments());

    // Lists and totals.
    let lists = "{ configItems(first: 50) { totalCount nodes { name } }
                   pods: configItems(first: 50, search: \"type=Kubernetes::Pod\") { totalCount }
                   configChanges(first: 50) { totalCount nodes { config { name } } }
                   insights(first: 50) { totalCount nodes { config { name } } }
                   scrapers { name } }";
    let all = data(addr, &admin, lists).await;
    assert_eq!(all["configItems"]["totalCount"], 5, "{all}");
    assert_eq!(all["configChanges"]["totalCount"], 5, "{all}");
    assert_eq!(all["insights"]["totalCount"], 2, "{all}");
    let mine = data(addr, &scoped, lists).await;
    assert_eq!(mine["configItems"]["totalCount"], 3, "{mine}");
    assert_eq!(
        names(&mine["configItems"]["nodes"]),
        ["api", "api-1", "api-2"]
    );
    assert_eq!(mine["pods"]["totalCount"], 2);
    assert_eq!(mine["configChanges"]["totalCount"], 3, "{mine}");
    assert_eq!(
        names(&mine["configChanges"]["nodes"]),
        ["api", "api-1", "api-2"]
    );
    assert_eq!(mine["insights"]["totalCount"], 1);
    assert_eq!(names(&mine["insights"]["nodes"]), ["api-1"]);
    assert_eq!(names(&mine["scrapers"]), [SCRAPER]);

    // Summaries and facets count only what the token sees.
    let summary = "{ catalogSummary(groupBy: [\"namespace\"]) { key count changes insights { total } }
                     facets { configTypes { value count } tagValues(key: \"team\") { value count } analyzers { value count } } }";
    let mine = data(addr, &scoped, summary).await;
    assert_eq!(
        mine["catalogSummary"],
        json!([{"key": {"namespace": "payments"}, "count": 3, "changes": 3, "insights": {"total": 1}}]),
        "{mine}"
    );
    assert_eq!(
        facet(&mine["facets"]["configTypes"]),
        [
            ("Kubernetes::Pod".to_string(), 2),
            ("Kubernetes::Deployment".to_string(), 1)
        ]
    );
    assert_eq!(
        facet(&mine["facets"]["tagValues"]),
        [("payments".to_string(), 3)]
    );
    assert_eq!(
        facet(&mine["facets"]["analyzers"]),
        [("privileged".to_string(), 1)]
    );
    let all = data(addr, &admin, summary).await;
    assert_eq!(
        all["catalogSummary"].as_array().map(Vec::len),
        Some(3),
        "{all}"
    );

    // An out-of-scope id does not exist, exactly like a made-up one.
    let worker = item_id("Kubernetes::Pod", "worker-1");
    let made_up = global_id("ConfigItem", Uuid::new_v4()).0;
    for id in [&worker, &made_up] {
        let q = format!("{{ node(id: \"{id}\") {{ id }} }}");
        let (status, body) = post(addr, &scoped, &q).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["node"], Value::Null, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{body}"
        );
        let q = format!("{{ configItem(id: \"{id}\") {{ name }} }}");
        let (_, body) = post(addr, &scoped, &q).await;
        assert_eq!(body["data"], Value::Null, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{body}"
        );
        assert_eq!(body["errors"][0]["message"], "config item not found");
    }
    let (_, body) = post(
        addr,
        &admin,
        &format!("{{ node(id: \"{worker}\") {{ id }} }}"),
    )
    .await;
    assert_eq!(body["data"]["node"]["id"], worker.as_str(), "{body}");
    let q = format!(
        "{{ nodes(ids: [\"{worker}\", \"{}\"]) {{ id }} }}",
        item_id("Kubernetes::Pod", "api-1")
    );
    let (_, body) = post(addr, &scoped, &q).await;
    assert_eq!(body["data"]["nodes"][0], Value::Null, "{body}");
    assert!(body["data"]["nodes"][1]["id"].is_string(), "{body}");

    // Components: visible when every attached item is.
    component(&db, "checkout", &[pod("api-1"), pod("api-2")]).await;
    let mixed = component(&db, "mixed", &[pod("api-1"), pod("worker-1")]).await;
    component(&db, "empty", &[]).await;
    let q = "{ components(first: 10) { totalCount nodes { name } } configItems(first: 10, search: \"type=Kubernetes::Pod\") { nodes { name components { name } } } }";
    let all = data(addr, &admin, q).await;
    assert_eq!(all["components"]["totalCount"], 3, "{all}");
    let mine = data(addr, &scoped, q).await;
    assert_eq!(mine["components"]["totalCount"], 1, "{mine}");
    assert_eq!(names(&mine["components"]["nodes"]), ["checkout"]);
    for pod in mine["configItems"]["nodes"].as_array().expect("pods") {
        assert_eq!(names(&pod["components"]), ["checkout"], "{mine}");
    }
    let q = format!(
        "{{ node(id: \"{}\") {{ id }} }}",
        global_id("Component", mixed).0
    );
    let (_, body) = post(addr, &scoped, &q).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );

    // Walks stop at the boundary: api-2 is reached only through worker-1.
    let graph = |root: &str| {
        format!(
            "{{ graph(rootIds: [\"{root}\"], depth: 5) {{ nodes {{ item {{ name }} }} edges {{ from {{ name }} to {{ name }} }} }} }}"
        )
    };
    let root = item_id("Kubernetes::Deployment", "api");
    let all = data(addr, &admin, &graph(&root)).await;
    assert_eq!(
        names(&all["graph"]["nodes"]),
        ["api", "api-1", "api-2", "worker-1"],
        "{all}"
    );
    let mine = data(addr, &scoped, &graph(&root)).await;
    assert_eq!(names(&mine["graph"]["nodes"]), ["api", "api-1"], "{mine}");
    assert_eq!(
        mine["graph"]["edges"],
        json!([{"from": {"name": "api"}, "to": {"name": "api-1"}}]),
        "{mine}"
    );
    for hidden in [&worker, &made_up] {
        let (_, body) = post(addr, &scoped, &graph(hidden)).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{body}"
        );
        assert_eq!(body["errors"][0]["message"], "root items not found");
    }
    // The search language's walks are scoped too.
    let q = format!(
        "{{ configItems(first: 50, search: \"related={},depth=5\") {{ totalCount }} }}",
        id_of("Kubernetes::Deployment", "api")
    );
    assert_eq!(
        data(addr, &scoped, &q).await["configItems"]["totalCount"],
        1
    );
    assert_eq!(data(addr, &admin, &q).await["configItems"]["totalCount"], 3);

    // Edges out of a visible item to hidden ones are not listed.
    let q = format!(
        "{{ configItem(id: \"{}\") {{ parent {{ name }} changes(first: 10) {{ totalCount }} }} }}",
        item_id("Kubernetes::Pod", "api-1")
    );
    let mine = data(addr, &scoped, &q).await;
    assert_eq!(mine["configItem"]["parent"]["name"], "api", "{mine}");

    // Scoped writes: by-reference pushes are refused; an out-of-scope
    // insight is not found; an in-scope one can be resolved.
    let editor = token("editor", payments());
    let push = "mutation { pushInsights(insights: [{configType: \"Kubernetes::Pod\", externalId: \"worker-1\", analyzer: \"x\", analysisType: \"security\", severity: HIGH, summary: \"x\"}]) { opened unknownTarget } }";
    let (_, body) = post(addr, &editor, push).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let insight = |config: Uuid, analyzer: &str| {
        global_id("Insight", ids::insight_id(config, analyzer, "")).0
    };
    let resolve = |id: String| format!("mutation {{ resolveInsight(id: \"{id}\") {{ status }} }}");
    let (_, body) = post(
        addr,
        &editor,
        &resolve(insight(pod("worker-1"), "latest-tag")),
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    let open = data(addr, &admin, "{ insights(first: 10) { totalCount } }").await;
    assert_eq!(open["insights"]["totalCount"], 2, "nothing was resolved");
    let done = data(addr, &editor, &resolve(insight(pod("api-1"), "privileged"))).await;
    assert_eq!(done["resolveInsight"]["status"], "resolved", "{done}");

    // A malformed scope is a bad token, not an unscoped one.
    for bad in [
        json!({}),
        json!({"namespaces": []}),
        json!({"namespace": ["payments"]}),
        json!("payments"),
    ] {
        let (status, body) = post(
            addr,
            &token("viewer", Some(bad.clone())),
            "{ scrapers { name } }",
        )
        .await;
        assert_eq!(status, 401, "{bad}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
}

const CHANGES: &str =
    "subscription($f: ChangeFilter) { configChanges(filter: $f) { change { config { name } } } }";

async fn scoped_subscriptions_deliver_only_in_scope_events(backend: Backend) {
    let db = TestDb::new(backend).await;
    scrape(&db, catalog(1)).await;
    let addr = serve(&db).await;
    let protocol = "graphql-transport-ws";
    let mut client = Client::connect(addr, protocol).await;
    client
        .send(json!({"type": "connection_init", "payload": {"token": token("viewer", payments())}}))
        .await;
    assert_eq!(client.recv_json().await["type"], "connection_ack");
    client.subscribe(protocol, "c", CHANGES, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // worker-1 (shipping) changes first, then api-1 (payments).
    let mut items = catalog(1);
    items[2].config = stratum_domain::normalize::CanonicalConfig::from_value(json!({"version": 9}));
    scrape(&db, items.clone()).await;
    items[1].config = stratum_domain::normalize::CanonicalConfig::from_value(json!({"version": 9}));
    scrape(&db, items).await;

    let first = client.recv_for("c").await;
    assert_eq!(
        first["payload"]["data"]["configChanges"]["change"]["config"]["name"], "api-1",
        "{first}"
    );
    // Nothing else is pending: a query on the same connection is answered
    // after anything queued before it.
    client
        .send(json!({"type": "subscribe", "id": "q", "payload": {"query": "{ configItems(first: 1) { totalCount } }"}}))
        .await;
    let answer = client.recv_for("q").await;
    assert_eq!(
        answer["payload"]["data"]["configItems"]["totalCount"], 3,
        "{answer}"
    );
    assert!(
        client.stash.iter().all(|m| m["id"] != "c"),
        "an out-of-scope event was delivered: {:?}",
        client.stash
    );
}
