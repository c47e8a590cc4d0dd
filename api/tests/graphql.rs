//! In-process GraphQL tests on both backends: keyset pagination walks every
//! item exactly once, filters and totals agree, and bad input gets
//! `BAD_USER_INPUT` / `NOT_FOUND` codes.

use serde_json::{Value, json};
use stratum_api::graphql::build_schema;
use stratum_domain::RunMode;
use stratum_domain::store::{IngestSession, RunCompletion, ScraperRecord};
use stratum_tests::{Backend, TestDb, item};

stratum_tests::on_both_backends!(
    pages_filters_and_errors,
    pages_read_json_members_only_when_shown
);

async fn query(schema: &stratum_api::graphql::StratumSchema, q: &str) -> Value {
    let response = schema.execute(q).await;
    serde_json::to_value(&response).expect("serializable response")
}

async fn pages_filters_and_errors(backend: Backend) {
    let db = TestDb::new(backend).await;
    let scraper = db
        .store
        .upsert_scraper(
            &ScraperRecord {
                name: "gql".into(),
                namespace: "default".into(),
                spec: json!({}),
                source: stratum_domain::ScraperSource::File,
            },
            true,
        )
        .await
        .expect("scraper");
    let (run, started) = db
        .store
        .start_run(scraper, RunMode::Full)
        .await
        .expect("run");
    let mut session = IngestSession::new(scraper, run, started);
    // 45 items; several share a name so the cursor must order by (name, id).
    let items = (0..45)
        .map(|i| {
            let mut it = item(
                if i % 3 == 0 {
                    "Test::Pod"
                } else {
                    "Test::Service"
                },
                &format!("x{i}"),
                json!({"i": i}),
            );
            it.name = format!("item-{}", i / 2);
            if i % 5 == 0 {
                it.health.health = stratum_domain::Health::Unhealthy;
            }
            it
        })
        .collect();
    db.store
        .ingest_batch(&mut session, items)
        .await
        .expect("ingest");
    db.store
        .complete_run(
            &mut session,
            &RunCompletion {
                full: true,
                errors: vec![],
                warnings: vec![],
                stale_item_age: None,
                max_delete_percent: 20.0,
                allow_mass_delete: false,
            },
        )
        .await
        .expect("complete");
    let schema = build_schema(Some(db.store.clone()));

    // Walk all pages of 10.
    let mut after: Option<String> = None;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let cursor = after
            .as_ref()
            .map(|c| format!(", after: \"{c}\""))
            .unwrap_or_default();
        let body = query(&schema, &format!("{{ configItems(first: 10{cursor}) {{ totalCount pageInfo {{ hasNextPage endCursor }} nodes {{ uuid name }} }} }}")).await;
        assert!(body.get("errors").is_none(), "{body}");
        let page = &body["data"]["configItems"];
        assert_eq!(page["totalCount"], 45);
        for n in page["nodes"].as_array().expect("nodes") {
            seen.push(n["uuid"].as_str().expect("uuid").to_string());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (45, 45));

    let body = query(&schema, "{ configItems(first: 100, filter: {types: [\"Test::Pod\"], health: [UNHEALTHY]}) { totalCount nodes { type health } } }").await;
    let page = &body["data"]["configItems"];
    assert_eq!(page["totalCount"], 3, "{body}");
    assert!(
        page["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .all(|n| n["type"] == "Test::Pod" && n["health"] == "UNHEALTHY")
    );

    let code = |body: &Value| {
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_string)
    };
    let body = query(&schema, "{ configItems(first: 101) { totalCount } }").await;
    assert_eq!(code(&body).as_deref(), Some("BAD_USER_INPUT"), "{body}");
    let body = query(
        &schema,
        "{ configItems(first: 5, after: \"not-a-cursor\") { totalCount } }",
    )
    .await;
    assert_eq!(code(&body).as_deref(), Some("BAD_USER_INPUT"), "{body}");
    let body = query(&schema, "{ configItem(id: \"garbage\") { name } }").await;
    assert_eq!(code(&body).as_deref(), Some("BAD_USER_INPUT"), "{body}");
    let body = query(
        &schema,
        "{ configItem(uuid: \"00000000-0000-4000-8000-000000000000\") { name } }",
    )
    .await;
    assert_eq!(code(&body).as_deref(), Some("NOT_FOUND"), "{body}");
    assert_eq!(body["data"]["configItem"], Value::Null);

    // The search language, ANDed with the structured filter.
    let body = query(
        &schema,
        "{ configItems(first: 100, search: \"type=test::pod health=unhealthy\") { totalCount } }",
    )
    .await;
    assert_eq!(body["data"]["configItems"]["totalCount"], 3, "{body}");
    let body = query(
        &schema,
        "{ configItems(first: 100, filter: {types: [\"Test::Service\"]}, search: \"health=unhealthy | name=item-0\") { totalCount } }",
    )
    .await;
    // Unhealthy services (i = 5, 10, 20, 25, 35, 40) plus item-0's service (i = 1).
    assert_eq!(body["data"]["configItems"]["totalCount"], 7, "{body}");
    // A syntax error names its column in `extensions.position`.
    let body = query(
        &schema,
        "{ configItems(first: 5, search: \"health=sick\") { totalCount } }",
    )
    .await;
    assert_eq!(code(&body).as_deref(), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["position"]["column"], 8,
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a health")),
        "{body}"
    );

    // Round trip: a global id from a list resolves to the same item.
    let body = query(
        &schema,
        "{ configItems(first: 1) { nodes { id name config(path: \"i\") } } }",
    )
    .await;
    let node = &body["data"]["configItems"]["nodes"][0];
    let id = node["id"].as_str().expect("id");
    let again = query(
        &schema,
        &format!("{{ configItem(id: \"{id}\") {{ name config(path: \"/i\") }} }}"),
    )
    .await;
    assert_eq!(again["data"]["configItem"]["name"], node["name"]);
    assert_eq!(again["data"]["configItem"]["config"], node["config"]);
}

/// A page whose nodes show no JSON member (tags, labels, properties,
/// external ids, descendant health) reads summaries; one that shows them,
/// directly, through a fragment or beside a summary field, gets exactly
/// what the item itself answers.
async fn pages_read_json_members_only_when_shown(backend: Backend) {
    let db = TestDb::new(backend).await;
    let items = (0..4)
        .map(|i| {
            let mut it = item("Test::Pod", &format!("m{i}"), json!({"i": i}));
            it.tags.insert("team".into(), format!("t{i}"));
            it.labels.insert("app".into(), "api".into());
            it.properties = json!([{"name": "owner", "text": format!("o{i}")}]);
            it.external_ids.push(format!("alias-{i}"));
            it
        })
        .collect();
    stratum_tests::scrape_items(
        &db.store,
        "members",
        items,
        stratum_tests::keep_everything(),
    )
    .await;
    let schema = build_schema(Some(db.store.clone()));
    let members = "uuid externalIds tags labels properties descendantHealth { healthy unhealthy }";
    let mut expected = Vec::new();
    for i in 0..4 {
        let uuid = stratum_domain::ids::item_id(
            stratum_domain::ids::scraper_id("default", "members"),
            "Test::Pod",
            &format!("m{i}"),
        );
        let one = query(
            &schema,
            &format!("{{ configItem(uuid: \"{uuid}\") {{ {members} }} }}"),
        )
        .await;
        assert!(one.get("errors").is_none(), "{one}");
        assert_eq!(one["data"]["configItem"]["tags"]["team"], format!("t{i}"));
        expected.push(one["data"]["configItem"].clone());
    }
    expected.sort_by_key(|v| v["uuid"].as_str().map(str::to_string));
    for q in [
        format!("{{ configItems(orderBy: [{{field: NAME}}]) {{ nodes {{ {members} }} }} }}"),
        format!(
            "{{ configItems {{ edges {{ node {{ ...M }} }} }} }} fragment M on ConfigItem {{ {members} }}"
        ),
        format!(
            "{{ configItems {{ nodes {{ ... on Node {{ ... on ConfigItem {{ {members} }} }} }} }} }}"
        ),
    ] {
        let page = query(&schema, &q).await;
        assert!(page.get("errors").is_none(), "{q}: {page}");
        let c = &page["data"]["configItems"];
        let mut nodes: Vec<Value> = match c.get("nodes") {
            Some(nodes) => nodes.as_array().expect("nodes").clone(),
            None => c["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"].clone())
                .collect(),
        };
        nodes.sort_by_key(|v| v["uuid"].as_str().map(str::to_string));
        assert_eq!(nodes, expected, "{q}");
    }
    // Summary fields alone read summaries, and still answer.
    let page = query(&schema, "{ configItems { nodes { name type health } } }").await;
    assert_eq!(
        page["data"]["configItems"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(4),
        "{page}"
    );
    let summaries = db
        .store
        .list_items_with(
            &Default::default(),
            &[],
            &stratum_domain::store::PageRequest::first(10),
            stratum_domain::store::ItemColumns::Summary,
        )
        .await
        .expect("summaries");
    assert_eq!(summaries.items.len(), 4);
    for (_, summary) in &summaries.items {
        assert!(stratum_domain::store::ItemColumns::is_summary(summary));
        assert!(summary.tags.is_null() && summary.labels.is_null() && summary.properties.is_null());
        assert!(summary.name.starts_with('m') && !summary.item_type.is_empty());
    }
}
