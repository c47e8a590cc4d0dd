//! The graph seen from GraphQL on both backends: a 50-item page with its
//! parents, costs, latest changes, insight counts and scrapers runs a small
//! constant number of SQL statements (no N+1), batched and unbatched paths
//! agree, every `Node` type round-trips through `node(id)`, and recursive
//! change search walks upstream and downstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use stratum_api::graphql::{StratumSchema, build_schema};
use stratum_domain::entities::insight;
use stratum_domain::{Health, ItemRef, ScrapedItem, Store, ids};
use stratum_tests::{Backend, TestDb, item};
use uuid::Uuid;

stratum_tests::on_both_backends!(pages_batch_edges_nodes_round_trip_and_changes_recurse);

const SCRAPER: &str = "edges";

fn id_of(t: &str, ext: &str) -> Uuid {
    ids::item_id(ids::scraper_id("default", SCRAPER), t, ext)
}

/// Three deployments with 20 pods each; `version` changes the pods' config
/// and `sick` makes every third pod unhealthy.
fn catalog(version: u32, sick: bool) -> Vec<ScrapedItem> {
    let mut items = Vec::new();
    for d in 0..3 {
        items.push(item(
            "Test::Deployment",
            &format!("d{d}"),
            json!({"replicas": 20}),
        ));
        for p in 0..20 {
            let mut pod = item(
                "Test::Pod",
                &format!("d{d}-p{p:02}"),
                // A new key each version: distinct diff fingerprints, no dedupe.
                json!({"image": format!("app:{version}"), format!("v{version}"): true, "p": p}),
            );
            pod.parent = Some((
                ItemRef::External {
                    item_type: "Test::Deployment".into(),
                    external_id: format!("d{d}"),
                },
                "DeploymentPod".into(),
            ));
            if sick && p % 3 == 0 {
                pod.health.health = Health::Unhealthy;
            }
            items.push(pod);
        }
    }
    items
}

async fn scrape(store: &Store, items: Vec<ScrapedItem>) -> Uuid {
    stratum_tests::scrape_items(store, SCRAPER, items, stratum_tests::keep_everything()).await
}

async fn run(schema: &StratumSchema, q: &str) -> Value {
    let body = serde_json::to_value(schema.execute(q).await).expect("json");
    assert!(body.get("errors").is_none(), "{q}: {body}");
    body
}

async fn pages_batch_edges_nodes_round_trip_and_changes_recurse(backend: Backend) {
    let db = TestDb::new(backend).await;
    // Seven scrapes: every pod gets six diff changes; a third of them also
    // turn unhealthy and back (one row each, repeats deduped).
    let mut scraper = Uuid::nil();
    for version in 0..7 {
        scraper = scrape(&db.store, catalog(version, version % 2 == 1)).await;
    }
    // Open insights on the first deployment's pods.
    for p in 0..4 {
        insight::ActiveModel {
            id: Set(Uuid::new_v4()),
            seq: Set(1000 + p),
            config_id: Set(id_of("Test::Pod", &format!("d0-p{p:02}"))),
            scraper_id: Set(scraper),
            analyzer: Set("privileged".into()),
            analysis_type: Set("security".into()),
            severity: Set(if p == 0 { "critical" } else { "high" }.into()),
            status: Set("open".into()),
            summary: Set("privileged container".into()),
            message: Set(String::new()),
            details: Set(json!({})),
            first_observed: Set(chrono::Utc::now()),
            last_observed: Set(chrono::Utc::now()),
            silenced_until: Set(None),
            status_changed_at: Set(None),
        }
        .insert(db.store.connection())
        .await
        .expect("insight");
    }

    // A schema whose store counts the statements it runs.
    let statements = Arc::new(AtomicUsize::new(0));
    let mut counted = db.store.clone();
    let counter = statements.clone();
    counted.observe_statements(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let schema = build_schema(Some(counted));

    let page = |n: usize, changes: &str| {
        format!(
            "{{ configItems(first: {n}, filter: {{types: [\"Test::Pod\"]}}) {{ totalCount nodes {{ uuid name health \
             parent {{ name }} cost {{ total30d }} changes({changes}) {{ pageInfo {{ hasNextPage }} edges {{ cursor node {{ changeType summary }} }} }} \
             insightCounts {{ total critical high }} scraper {{ name }} }} }} }}"
        )
    };
    let mut counts = Vec::new();
    let mut bodies = Vec::new();
    for n in [10, 50] {
        statements.store(0, Ordering::SeqCst);
        let body = run(&schema, &page(n, "first: 5")).await;
        counts.push(statements.load(Ordering::SeqCst));
        bodies.push(body);
    }
    assert_eq!(
        counts[0], counts[1],
        "statements grow with the page: {counts:?}"
    );
    assert!(
        counts[1] <= 6,
        "a 50-item page ran {} statements",
        counts[1]
    );

    let nodes = bodies[1]["data"]["configItems"]["nodes"]
        .as_array()
        .expect("nodes")
        .clone();
    assert_eq!(nodes.len(), 50);
    for node in &nodes {
        let name = node["name"].as_str().expect("name");
        let deployment = &name[..2];
        assert_eq!(node["parent"]["name"], deployment, "{node}");
        assert_eq!(node["scraper"]["name"], SCRAPER);
        let changes = node["changes"]["edges"].as_array().expect("changes");
        assert_eq!(changes.len(), 5, "{node}");
        assert_eq!(node["changes"]["pageInfo"]["hasNextPage"], true);
    }
    let d0p00 = nodes
        .iter()
        .find(|n| n["name"] == "d0-p00")
        .expect("d0-p00");
    assert_eq!(
        d0p00["insightCounts"],
        json!({"total": 1, "critical": 1, "high": 0})
    );
    let d0p01 = nodes.iter().find(|n| n["name"] == "d0-p01").expect("p01");
    assert_eq!(d0p01["insightCounts"]["high"], 1);
    let d1p00 = nodes.iter().find(|n| n["name"] == "d1-p00").expect("d1");
    assert_eq!(d1p00["insightCounts"]["total"], 0);

    // The batched path and the per-item path return the same page.
    let unbatched = run(&schema, &page(50, "first: 5, filter: {minSeverity: INFO}")).await;
    for (a, b) in nodes.iter().zip(
        unbatched["data"]["configItems"]["nodes"]
            .as_array()
            .expect("nodes"),
    ) {
        assert_eq!(a["changes"], b["changes"], "{}", a["name"]);
    }
    // The batched cursors page on through the per-item path.
    let cursor = d0p00["changes"]["edges"][4]["cursor"]
        .as_str()
        .expect("cursor");
    let rest = run(
        &schema,
        &format!(
            "{{ configItem(uuid: \"{}\") {{ changes(first: 100, after: \"{cursor}\") {{ totalCount edges {{ node {{ changeType }} }} }} }} }}",
            d0p00["uuid"].as_str().expect("uuid")
        ),
    )
    .await;
    let total = rest["data"]["configItem"]["changes"]["totalCount"]
        .as_i64()
        .expect("total");
    let after = rest["data"]["configItem"]["changes"]["edges"]
        .as_array()
        .expect("edges")
        .len() as i64;
    assert_eq!(after, total - 5);

    // Every Node type round-trips through node(id).
    let ids_body = run(
        &schema,
        "{ configItems(first: 1, filter: {types: [\"Test::Pod\"]}) { nodes { id changes(first: 1) { nodes { id } } scraper { id runs(first: 1) { id } } } } }",
    )
    .await;
    let item = &ids_body["data"]["configItems"]["nodes"][0];
    let ids = [
        ("ConfigItem", item["id"].clone()),
        ("ConfigChange", item["changes"]["nodes"][0]["id"].clone()),
        ("Scraper", item["scraper"]["id"].clone()),
        ("ScrapeRun", item["scraper"]["runs"][0]["id"].clone()),
    ];
    for (type_name, id) in &ids {
        let id = id.as_str().expect("id");
        let body = run(
            &schema,
            &format!("{{ node(id: \"{id}\") {{ __typename id }} }}"),
        )
        .await;
        assert_eq!(body["data"]["node"]["__typename"], *type_name);
        assert_eq!(body["data"]["node"]["id"], id);
    }
    let list: Vec<String> = ids
        .iter()
        .map(|(_, id)| format!("\"{}\"", id.as_str().expect("id")))
        .collect();
    let missing = stratum_api::graphql::global_id("ConfigItem", Uuid::new_v4());
    let body = run(
        &schema,
        &format!(
            "{{ nodes(ids: [{}, \"{}\"]) {{ __typename }} }}",
            list.join(", "),
            missing.as_str()
        ),
    )
    .await;
    let typenames: Vec<Value> = body["data"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["__typename"].clone())
        .collect();
    assert_eq!(
        typenames,
        vec![
            json!("ConfigItem"),
            json!("ConfigChange"),
            json!("Scraper"),
            json!("ScrapeRun"),
            Value::Null
        ]
    );
    // An unknown id is NOT_FOUND with a null field; a malformed one or one
    // of the wrong type is BAD_USER_INPUT.
    let code = |q: String| {
        let schema = schema.clone();
        async move {
            let body = serde_json::to_value(schema.execute(q).await).expect("json");
            (
                body["errors"][0]["extensions"]["code"].clone(),
                body["data"].clone(),
            )
        }
    };
    let (c, data) = code(format!("{{ node(id: \"{}\") {{ id }} }}", missing.as_str())).await;
    assert_eq!(c, "NOT_FOUND");
    assert_eq!(data["node"], Value::Null);
    let (c, _) = code("{ node(id: \"bm9wZQ\") { id } }".into()).await;
    assert_eq!(c, "BAD_USER_INPUT");
    let scraper_gid = ids[2].1.as_str().expect("scraper id").to_string();
    let (c, _) = code(format!(
        "{{ configItem(id: \"{scraper_gid}\") {{ name }} }}"
    ))
    .await;
    assert_eq!(c, "BAD_USER_INPUT");

    // The graph around a deployment, its edges, the node cap, and the
    // Relationship node.
    let d0 = id_of("Test::Deployment", "d0");
    let body = run(
        &schema,
        &format!(
            "{{ graph(rootIds: [\"{d0}\"], direction: OUTGOING, depth: 2) {{ truncated \
             nodes {{ depth direction item {{ name }} }} edges {{ id relation hard from {{ name }} to {{ name }} }} }} }}"
        ),
    )
    .await;
    let graph = &body["data"]["graph"];
    assert_eq!(graph["truncated"], false);
    assert_eq!(graph["nodes"].as_array().map(Vec::len), Some(21));
    assert_eq!(
        graph["nodes"][0],
        json!({"depth": 0, "direction": "BOTH", "item": {"name": "d0"}})
    );
    assert!(
        graph["nodes"].as_array().expect("nodes")[1..]
            .iter()
            .all(|n| n["depth"] == 1 && n["direction"] == "OUTGOING")
    );
    let edges = graph["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 20);
    assert!(edges.iter().all(|e| e["relation"] == "DeploymentPod"
        && e["hard"] == true
        && e["from"]["name"] == "d0"));
    let edge_id = edges[0]["id"].as_str().expect("edge id");
    let body = run(
        &schema,
        &format!("{{ node(id: \"{edge_id}\") {{ __typename id }} }}"),
    )
    .await;
    assert_eq!(body["data"]["node"]["__typename"], "Relationship");
    let body = run(
        &schema,
        &format!("{{ graph(rootIds: [\"{d0}\"], nodeLimit: 5) {{ truncated nodes {{ depth }} edges {{ hard }} }} }}"),
    )
    .await;
    assert_eq!(body["data"]["graph"]["truncated"], true);
    assert_eq!(
        body["data"]["graph"]["nodes"].as_array().map(Vec::len),
        Some(6)
    );
    assert_eq!(
        body["data"]["graph"]["edges"].as_array().map(Vec::len),
        Some(5)
    );
    let body = run(
        &schema,
        &format!(
            "{{ configItem(uuid: \"{}\") {{ ancestors {{ name }} relatedItems(direction: INCOMING) {{ totalCount edges {{ depth direction node {{ name }} }} }} }} }}",
            id_of("Test::Pod", "d2-p05")
        ),
    )
    .await;
    assert_eq!(
        body["data"]["configItem"]["ancestors"],
        json!([{"name": "d2"}])
    );
    assert_eq!(
        body["data"]["configItem"]["relatedItems"],
        json!({"totalCount": 1, "edges": [{"depth": 1, "direction": "INCOMING", "node": {"name": "d2"}}]})
    );
    // A walk pages like any list.
    let related = |args: String| {
        let schema = schema.clone();
        async move {
            let body = run(
                &schema,
                &format!(
                    "{{ configItem(uuid: \"{d0}\") {{ relatedItems(direction: OUTGOING, {args}) {{ totalCount truncated pageInfo {{ hasNextPage endCursor }} nodes {{ name }} }} }} }}"
                ),
            )
            .await;
            body["data"]["configItem"]["relatedItems"].clone()
        }
    };
    let first = related("first: 15".into()).await;
    assert_eq!(
        (first["totalCount"].clone(), first["truncated"].clone()),
        (json!(20), json!(false))
    );
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let cursor = first["pageInfo"]["endCursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let rest = related(format!("first: 15, after: \"{cursor}\"")).await;
    assert_eq!(rest["nodes"].as_array().map(Vec::len), Some(5));
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);

    // Recursive change search.
    let pod = id_of("Test::Pod", "d0-p00");
    let total = |filter: String| {
        let schema = schema.clone();
        async move {
            let body = run(
                &schema,
                &format!("{{ configChanges(filter: {filter}) {{ totalCount }} }}"),
            )
            .await;
            body["data"]["configChanges"]["totalCount"]
                .as_i64()
                .expect("total")
        }
    };
    let own = total(format!("{{configIds: [\"{d0}\"]}}")).await;
    let down = total(format!("{{configIds: [\"{d0}\"], recursive: DOWNSTREAM}}")).await;
    let pods = total(
        "{configIds: [".to_string()
            + &(0..20)
                .map(|p| format!("\"{}\"", id_of("Test::Pod", &format!("d0-p{p:02}"))))
                .collect::<Vec<_>>()
                .join(", ")
            + "]}",
    )
    .await;
    assert_eq!(own, 0, "the deployment itself never changed");
    assert_eq!(down, pods, "downstream adds every pod's changes");
    assert!(pods >= 100);
    let pod_own = total(format!("{{configIds: [\"{pod}\"]}}")).await;
    let pod_up = total(format!("{{configIds: [\"{pod}\"], recursive: UPSTREAM}}")).await;
    assert_eq!(pod_up, pod_own + own);
    let unhealthy = total(format!(
        "{{configIds: [\"{d0}\"], recursive: DOWNSTREAM, changeTypes: [\"Unhealthy\"]}}"
    ))
    .await;
    let medium_or_worse = total(format!(
        "{{configIds: [\"{d0}\"], recursive: DOWNSTREAM, minSeverity: MEDIUM}}"
    ))
    .await;
    // Pods 0, 3, …, 18 (7 of 20) turned unhealthy; dedupe folds repeats
    // within the hour into one row each.
    assert_eq!(unhealthy, 7);
    assert_eq!(medium_or_worse, 7);
    // Type counts cover the whole filtered set, not the page: six diffs per
    // pod, and the sick pods' two transitions.
    let body = run(
        &schema,
        &format!(
            "{{ configChanges(first: 1, filter: {{configIds: [\"{d0}\"], recursive: DOWNSTREAM}}) {{ changeTypeCounts {{ value count }} }} }}"
        ),
    )
    .await;
    assert_eq!(
        body["data"]["configChanges"]["changeTypeCounts"],
        json!([
            {"value": "diff", "count": 120},
            {"value": "Healthy", "count": 7},
            {"value": "Unhealthy", "count": 7}
        ]),
        "{body}"
    );
    let (c, _) = code("{ configChanges(filter: {recursive: ALL}) { totalCount } }".into()).await;
    assert_eq!(c, "BAD_USER_INPUT");
    let (c, _) = code(format!(
        "{{ configChanges(filter: {{configIds: [\"{d0}\"], from: \"yesterday\"}}) {{ totalCount }} }}"
    ))
    .await;
    assert_eq!(c, "BAD_USER_INPUT");
}
