//! Relay pagination of `configItems` on both backends: every ordering walks
//! forwards and backwards over the same sequence, cursors stay stable while
//! items are inserted, and bad page arguments are `BAD_USER_INPUT`.

use serde_json::{Value, json};
use stratum_api::graphql::{StratumSchema, build_schema};
use stratum_domain::{Health, ScrapedItem, Store};
use stratum_tests::{Backend, TestDb, item};

stratum_tests::on_both_backends!(orderings_walk_both_ways_and_cursors_survive_inserts);

async fn ingest(store: &Store, items: Vec<ScrapedItem>) {
    stratum_tests::scrape_items(store, "pages", items, stratum_tests::keep_everything()).await;
}

fn things(range: std::ops::Range<usize>) -> Vec<ScrapedItem> {
    range
        .map(|i| {
            let mut it = item(
                if i % 4 == 0 { "Test::B" } else { "Test::A" },
                &format!("x{i}"),
                json!({"i": i}),
            );
            // Names repeat, so every ordering needs its id tie-break.
            it.name = format!("n{:02}", (i * 7) % 13);
            it.health.health = match i % 3 {
                0 => Health::Unhealthy,
                1 => Health::Warning,
                _ => Health::Healthy,
            };
            it
        })
        .collect()
}

async fn run(schema: &StratumSchema, q: &str) -> Value {
    serde_json::to_value(schema.execute(q).await).expect("json")
}

/// One page: (uuids, hasNext, hasPrevious, startCursor, endCursor).
async fn page(
    schema: &StratumSchema,
    order: &str,
    args: &str,
) -> (Vec<String>, bool, bool, Option<String>, Option<String>) {
    let body = run(
        schema,
        &format!(
            "{{ configItems(orderBy: {order}, {args}) {{ totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} nodes {{ uuid }} }} }}"
        ),
    )
    .await;
    assert!(body.get("errors").is_none(), "{order} {args}: {body}");
    let c = &body["data"]["configItems"];
    let info = &c["pageInfo"];
    (
        c["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["uuid"].as_str().expect("uuid").to_string())
            .collect(),
        info["hasNextPage"] == true,
        info["hasPreviousPage"] == true,
        info["startCursor"].as_str().map(str::to_string),
        info["endCursor"].as_str().map(str::to_string),
    )
}

async fn orderings_walk_both_ways_and_cursors_survive_inserts(backend: Backend) {
    let db = TestDb::new(backend).await;
    ingest(&db.store, things(0..45)).await;
    let schema = build_schema(Some(db.store.clone()));

    for order in [
        "[]",
        "[{field: NAME, direction: DESC}]",
        "[{field: HEALTH, direction: DESC}, {field: NAME}]",
        "[{field: TYPE}, {field: NAME, direction: DESC}]",
        "[{field: CREATED_AT, direction: DESC}]",
        "[{field: COST_30D}]",
    ] {
        let (all, more, _, _, _) = page(&schema, order, "first: 100").await;
        assert_eq!((all.len(), more), (45, false), "{order}");

        // Forwards in pages of 7.
        let mut forward = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let args = match &after {
                Some(c) => format!("first: 7, after: \"{c}\""),
                None => "first: 7".to_string(),
            };
            let (ids, next, previous, _, end) = page(&schema, order, &args).await;
            assert_eq!(previous, after.is_some(), "{order}");
            forward.extend(ids);
            if !next {
                break;
            }
            after = end;
        }
        assert_eq!(forward, all, "{order}: forward walk");

        // Backwards in pages of 7.
        let mut backward: Vec<String> = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let args = match &before {
                Some(c) => format!("last: 7, before: \"{c}\""),
                None => "last: 7".to_string(),
            };
            let (mut ids, next, previous, start, _) = page(&schema, order, &args).await;
            assert_eq!(next, before.is_some(), "{order}");
            ids.extend(backward);
            backward = ids;
            if !previous {
                break;
            }
            before = start;
        }
        assert_eq!(backward, all, "{order}: backward walk");
    }

    // Cursors stay valid while items are inserted: a walk started before
    // the insert visits every original item exactly once.
    let order = "[{field: NAME}]";
    let (first_page, _, _, _, mut after) = page(&schema, order, "first: 10").await;
    ingest(&db.store, things(45..60)).await;
    let mut seen = first_page;
    while let Some(cursor) = after.clone() {
        let (ids, next, _, _, end) =
            page(&schema, order, &format!("first: 10, after: \"{cursor}\"")).await;
        seen.extend(ids);
        after = if next { end } else { None };
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no item twice");
    let (everything, _, _, _, _) = page(&schema, order, "first: 100").await;
    assert_eq!(everything.len(), 60);
    let originals = {
        let store = db.store.clone();
        let mut ids = Vec::new();
        for it in things(0..45) {
            let id = stratum_domain::ids::item_id(
                stratum_domain::ids::scraper_id("default", "pages"),
                &it.item_type,
                &it.primary_external_id(),
            );
            assert!(store.get_item(id).await.expect("get").is_some());
            ids.push(id.to_string());
        }
        ids
    };
    assert!(
        originals.iter().all(|id| seen.contains(id)),
        "every original item visited"
    );

    // Bad page arguments.
    let (_, _, _, _, name_cursor) = page(&schema, "[]", "first: 3").await;
    let name_cursor = name_cursor.expect("cursor");
    for args in [
        "first: 0".to_string(),
        "first: 101".to_string(),
        "first: 100000".to_string(),
        "last: 101".to_string(),
        "first: -1".to_string(),
        "first: 5, last: 5".to_string(),
        "first: 5, after: \"bm90LWEtY3Vyc29y\"".to_string(),
        // A cursor of another ordering is refused, not misread.
        format!("first: 5, after: \"{name_cursor}\", orderBy: [{{field: TYPE}}]"),
    ] {
        let body = run(
            &schema,
            &format!("{{ configItems({args}) {{ totalCount }} }}"),
        )
        .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{args}: {body}"
        );
        assert_eq!(body["data"], Value::Null, "{args}");
    }
}
