//! GraphQL over HTTP through a real socket: media types and status codes of
//! the GraphQL-over-HTTP specification, GET rules, automatic persisted
//! queries, request ids, and every bad input of the API issue (and the
//! graphql-cop payloads), each with its code, after which the server still
//! answers.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stratum_api::graphql::SchemaOptions;
use stratum_api::http::{AppState, router};
use stratum_tests::{Backend, TestDb};

stratum_tests::on_both_backends!(
    graphql_over_http_and_bad_input,
    admitted_documents_answer_as_on_first_sight
);

const GRJ: &str = "application/graphql-response+json";

async fn start(db: &TestDb) -> String {
    let options = SchemaOptions::default();
    let state = AppState::new(db.store.clone(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(state)).await;
    });
    format!("http://{addr}/graphql")
}

struct Reply {
    status: u16,
    content_type: String,
    request_id: Option<String>,
    body: Value,
}

impl Reply {
    fn code(&self) -> Option<&str> {
        let errors = if self.body.is_array() {
            &self.body[0]["errors"]
        } else {
            &self.body["errors"]
        };
        errors[0]["extensions"]["code"].as_str()
    }
    fn message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.expect("body");
    Reply {
        status,
        content_type,
        request_id,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn graphql_over_http_and_bad_input(backend: Backend) {
    let db = TestDb::new(backend).await;
    let url = start(&db).await;
    let client = reqwest::Client::new();
    let post = |accept: &str, body: Value| client.post(&url).header("accept", accept).json(&body);
    let ok_query = json!({"query": "{ configItems(first: 1) { totalCount } }"});

    // Media types: both work; graphql-response+json is preferred when listed.
    let r = send(post(GRJ, ok_query.clone())).await;
    assert_eq!(
        (r.status, r.content_type.starts_with(GRJ)),
        (200, true),
        "{}",
        r.body
    );
    assert_eq!(r.body["data"]["configItems"]["totalCount"], 0);
    let r = send(post("application/json", ok_query.clone())).await;
    assert_eq!(
        (r.status, r.content_type.starts_with("application/json")),
        (200, true)
    );
    let r = send(post("text/csv", ok_query.clone())).await;
    assert_eq!(r.status, 406);

    // Malformed JSON, wrong content types (the CSRF guard).
    let r = send(
        client
            .post(&url)
            .header("content-type", "application/json")
            .body("{\"query\": "),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (400, Some("GRAPHQL_PARSE_FAILED")),
        "{}",
        r.body
    );
    assert!(r.message().contains("line 1"), "{}", r.message());
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let r = send(
            client
                .post(&url)
                .header("content-type", content_type)
                .body("query=mutation%20%7B%20x%20%7D"),
        )
        .await;
        assert_eq!(r.status, 415, "{content_type}");
    }

    // A GraphQL syntax error and an unknown field: 400 without data under
    // graphql-response+json, 200 under application/json.
    let r = send(post(GRJ, json!({"query": "{ configItems("}))).await;
    assert_eq!((r.status, r.code()), (400, Some("GRAPHQL_PARSE_FAILED")));
    assert!(r.body.get("data").is_none());
    assert!(r.body["errors"][0]["locations"].is_array(), "{}", r.body);
    let r = send(post(GRJ, json!({"query": "{ nope }"}))).await;
    assert_eq!(
        (r.status, r.code()),
        (400, Some("GRAPHQL_VALIDATION_FAILED"))
    );
    let r = send(post("application/json", json!({"query": "{ nope }"}))).await;
    assert_eq!(
        (r.status, r.code()),
        (200, Some("GRAPHQL_VALIDATION_FAILED"))
    );

    // Unknown operation name.
    let r = send(post(
        GRJ,
        json!({"query": "query A { configItems { totalCount } }", "operationName": "B"}),
    ))
    .await;
    assert_eq!(
        (r.status, r.code()),
        (400, Some("GRAPHQL_VALIDATION_FAILED")),
        "{}",
        r.body
    );

    // A query 50 levels deep.
    let deep = format!(
        "{{ configItems {{ nodes {{ {} name {} }} }} }}",
        "parent { ".repeat(50),
        "}".repeat(50)
    );
    let r = send(post(GRJ, json!({ "query": deep }))).await;
    assert_eq!(
        (r.status, r.code()),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{}",
        r.body
    );
    assert!(
        r.message().contains("levels deep; the limit is 10"),
        "{}",
        r.message()
    );

    let twelve = format!(
        "{{ configItems {{ nodes {{ {} name {} }} }} }}",
        "parent { ".repeat(12),
        "}".repeat(12)
    );
    let r = send(post(GRJ, json!({ "query": twelve }))).await;
    assert_eq!(r.code(), Some("QUERY_TOO_COMPLEX"));
    assert!(
        r.message().contains("is 15 levels deep; the limit is 10"),
        "{}",
        r.message()
    );

    // 200 aliases of one field; 101 aliases; 500 duplicate fields.
    for n in [200, 101] {
        let aliases: String = (0..n)
            .map(|i| format!("a{i}: configItems {{ totalCount }} "))
            .collect();
        let r = send(post(GRJ, json!({ "query": format!("{{ {aliases} }}") }))).await;
        assert_eq!((r.status, r.code()), (400, Some("QUERY_TOO_COMPLEX")));
        assert!(
            r.message()
                .contains(&format!("{n} aliases; the limit is 30")),
            "{}",
            r.message()
        );
    }
    let dupes = "configItems { totalCount } ".repeat(500);
    let r = send(post(GRJ, json!({ "query": format!("{{ {dupes} }}") }))).await;
    assert_eq!(r.code(), Some("QUERY_TOO_COMPLEX"), "{}", r.body);

    // Complexity: a connection costs first × child.
    let r = send(post(
        GRJ,
        json!({"query": "{ configItems(first: 100) { nodes { children(first: 100) { nodes { name } } } } }"}),
    ))
    .await;
    assert_eq!(r.code(), Some("QUERY_TOO_COMPLEX"), "{}", r.body);
    assert!(r.message().contains("complexity"), "{}", r.message());

    // Circular fragments.
    let r = send(post(
        GRJ,
        json!({"query": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"}),
    ))
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Batches: up to 10 operations; 11 and 100 are refused.
    let batch = |n: usize| Value::Array(vec![ok_query.clone(); n]);
    let r = send(post(GRJ, batch(3))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_array().map(Vec::len), Some(3));
    for n in [11, 100] {
        let r = send(post(GRJ, batch(n))).await;
        assert_eq!(
            (r.status, r.code()),
            (400, Some("QUERY_TOO_COMPLEX")),
            "{n}"
        );
        assert!(
            r.message()
                .contains(&format!("{n} operations; the limit is 10"))
        );
    }

    // A 10 MB body.
    let big = json!({"query": format!("{{ configItems {{ totalCount }} }} #{}", "x".repeat(10 * 1024 * 1024))});
    let r = send(post(GRJ, big)).await;
    assert_eq!((r.status, r.code()), (413, Some("QUERY_TOO_COMPLEX")));

    // first: 100000 and ids: BAD_USER_INPUT / NOT_FOUND after execution
    // started, so 200 with the field null.
    let r = send(post(
        GRJ,
        json!({"query": "{ configItems(first: 100000) { totalCount } }"}),
    ))
    .await;
    assert_eq!((r.status, r.code()), (200, Some("BAD_USER_INPUT")));
    assert!(r.message().contains("between 1 and 100"), "{}", r.message());
    let missing = stratum_api::graphql::global_id("ConfigItem", uuid::Uuid::new_v4());
    let r = send(post(
        GRJ,
        json!({"query": format!("{{ node(id: \"{}\") {{ id }} }}", missing.as_str())}),
    ))
    .await;
    assert_eq!((r.status, r.code()), (200, Some("NOT_FOUND")));
    assert_eq!(r.body["data"]["node"], Value::Null);
    let wrong = stratum_api::graphql::global_id("Scraper", uuid::Uuid::new_v4());
    let r = send(post(
        GRJ,
        json!({"query": format!("{{ configItem(id: \"{}\") {{ name }} }}", wrong.as_str())}),
    ))
    .await;
    assert_eq!(r.code(), Some("BAD_USER_INPUT"));
    assert!(r.message().contains("is a Scraper id"), "{}", r.message());

    // Every error carries the request id, which the response header echoes.
    let r = send(post(GRJ, json!({"query": "{ nope }"})).header("x-request-id", "req-42")).await;
    assert_eq!(r.request_id.as_deref(), Some("req-42"));
    assert_eq!(r.body["errors"][0]["extensions"]["requestId"], "req-42");

    // GET: queries only; browsers without a query get GraphiQL.
    let r = send(
        client
            .get(&url)
            .header("accept", GRJ)
            .query(&[("query", "{ configItems { totalCount } }")]),
    )
    .await;
    assert_eq!(
        (
            r.status,
            r.body["data"]["configItems"]["totalCount"].clone()
        ),
        (200, json!(0))
    );
    let r = send(client.get(&url).query(&[("query", "mutation { x }")])).await;
    assert_eq!(r.status, 405);
    let html = client
        .get(&url)
        .header("accept", "text/html")
        .send()
        .await
        .expect("graphiql");
    assert_eq!(html.status().as_u16(), 200);
    assert!(html.text().await.expect("html").contains("graphiql"));

    // Automatic persisted queries: an unknown hash, then registration, then
    // the hash alone.
    let query = "{ configItems { totalCount } }";
    let hash = hex::encode(Sha256::digest(query.as_bytes()));
    let persisted = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    let r = send(post(GRJ, json!({"extensions": persisted}))).await;
    assert_eq!(
        (r.status, r.code()),
        (200, Some("PERSISTED_QUERY_NOT_FOUND")),
        "{}",
        r.body
    );
    let r = send(post(GRJ, json!({"query": query, "extensions": persisted}))).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("errors").is_none(), "{}", r.body);
    let r = send(post(GRJ, json!({"extensions": persisted}))).await;
    assert_eq!(r.body["data"]["configItems"]["totalCount"], 0, "{}", r.body);
    let r = send(
        client
            .get(&url)
            .query(&[("extensions", persisted.to_string())]),
    )
    .await;
    assert_eq!(r.body["data"]["configItems"]["totalCount"], 0, "{}", r.body);

    // The SDL, and the server still serves after all of the above.
    let sdl = client
        .get(url.replace("/graphql", "/schema.graphql"))
        .send()
        .await
        .expect("sdl")
        .text()
        .await
        .expect("text");
    assert_eq!(sdl, stratum_api::graphql::sdl());
    let r = send(post(GRJ, ok_query)).await;
    assert_eq!(r.status, 200);
}

/// `body` without the per-request `requestId`s of its errors.
fn without_request_ids(mut body: Value) -> Value {
    let errors = match body.as_array_mut() {
        Some(batch) => batch
            .iter_mut()
            .filter_map(|b| b.get_mut("errors"))
            .collect(),
        None => body.get_mut("errors").into_iter().collect::<Vec<_>>(),
    };
    for list in errors {
        for error in list.as_array_mut().into_iter().flatten() {
            if let Some(extensions) = error["extensions"].as_object_mut() {
                extensions.remove("requestId");
            }
        }
    }
    body
}

/// A document the guard has admitted once runs on the schema without
/// extensions from then on: every answer, error and status must be the
/// one the guard gave on first sight.
async fn admitted_documents_answer_as_on_first_sight(backend: Backend) {
    let db = TestDb::new(backend).await;
    let items = (0..5)
        .map(|i| {
            let mut it =
                stratum_tests::item("Kubernetes::Pod", &format!("pod-{i}"), json!({"i": i}));
            it.namespace = Some(if i % 2 == 0 { "even" } else { "odd" }.into());
            it
        })
        .collect();
    stratum_tests::scrape_items(&db.store, "fast", items, stratum_tests::keep_everything()).await;
    let url = start(&db).await;
    let client = reqwest::Client::new();
    let by_namespace = "query Page($ns: String!) { configItems(first: 10, filter: {namespaces: [$ns]}) { totalCount edges { cursor node { id name namespace health } } pageInfo { hasNextPage endCursor } } }";
    let twelve = format!(
        "{{ configItems {{ nodes {{ {} name {} }} }} }}",
        "parent { ".repeat(12),
        "}".repeat(12)
    );
    let requests = [
        json!({"query": "{ configItems(first: 10) { totalCount nodes { name type } } }"}),
        json!({"query": by_namespace, "variables": {"ns": "even"}}),
        json!({"query": by_namespace, "variables": {"ns": "odd"}}),
        // A resolver's own error keeps its code.
        json!({"query": "{ configItems(first: 100000) { totalCount } }"}),
        // A node id that is not one: an error with a path.
        json!({"query": "{ node(id: \"nope\") { id } }"}),
        // Validated, then over the depth limit every time.
        json!({ "query": twelve }),
        json!({"query": "query A { configItems { totalCount } }", "operationName": "B"}),
        // A mutation never takes the fast path (the audit log sees it).
        json!({"query": "mutation { resolveInsight(id: \"nope\") { id } }"}),
    ];
    for request in &requests {
        let first = send(client.post(&url).header("accept", GRJ).json(request)).await;
        for _ in 0..2 {
            let again = send(client.post(&url).header("accept", GRJ).json(request)).await;
            assert_eq!(
                (again.status, without_request_ids(again.body)),
                (first.status, without_request_ids(first.body.clone())),
                "{request}"
            );
        }
    }
    // The fast path answers what the data says now, not what it said.
    let even = send(client.post(&url).json(&requests[1])).await;
    assert_eq!(
        even.body["data"]["configItems"]["totalCount"], 3,
        "{}",
        even.body
    );
    let odd = send(client.post(&url).json(&requests[2])).await;
    assert_eq!(odd.body["data"]["configItems"]["totalCount"], 2);
    stratum_tests::scrape_items(
        &db.store,
        "fast",
        vec![{
            let mut it = stratum_tests::item("Kubernetes::Pod", "pod-9", json!({"i": 9}));
            it.namespace = Some("odd".into());
            it
        }],
        stratum_tests::keep_everything(),
    )
    .await;
    let odd = send(client.post(&url).json(&requests[2])).await;
    assert_eq!(odd.body["data"]["configItems"]["totalCount"], 3);
    // A GET of an admitted query answers the same as its POST.
    let get = send(client.get(&url).query(&[(
        "query",
        "{ configItems(first: 10) { totalCount nodes { name type } } }",
    )]))
    .await;
    let post = send(client.post(&url).json(&requests[0])).await;
    assert_eq!((get.status, get.body), (post.status, post.body));
}
