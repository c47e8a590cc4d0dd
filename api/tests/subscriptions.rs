//! Live subscriptions over real sockets (SPEC §13): both WebSocket
//! subprotocols receive a health change caused by a real file scrape,
//! filters and unsubscribes hold, protocol errors close with their codes,
//! a stalled subscriber lags without slowing 100 others and resumes with
//! `since` exactly once, and server-sent events carry the same stream.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use stratum_api::graphql::SchemaOptions;
use stratum_api::http::{AppState, router};
use stratum_domain::{Health, HealthResult, Store};
use stratum_scrapers::{RunOptions, load_path, run_scrape};
use stratum_tests::ws::{Client, Message, WAIT};
use stratum_tests::{Backend, TestDb, item, keep_everything, scrape_items};

stratum_tests::on_both_backends!(
    a_scraped_health_change_reaches_both_protocols,
    a_stalled_subscriber_lags_alone_and_resumes_exactly_once
);

async fn serve_with(store: Store, options: SchemaOptions) -> SocketAddr {
    let state = AppState::new(store, options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(stratum_api::http::listener(listener), router(state)).await;
    });
    addr
}

async fn serve(store: Store) -> SocketAddr {
    serve_with(store, SchemaOptions::default()).await
}

const HEALTH: &str = "subscription($filter: ConfigFilter, $since: String) { healthChanged(filter: $filter, since: $since) { cursor previous current status rolledUp at item { name health namespace } change { id changeType } } }";

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

async fn scrape(store: &Store, config: &Path) {
    let configs = load_path(config).expect("config loads");
    let report = run_scrape(store, &configs[0], &RunOptions::default())
        .await
        .expect("scrape");
    assert!(
        report.summary.errors.is_empty(),
        "{:?}",
        report.summary.errors
    );
}

async fn a_scraped_health_change_reaches_both_protocols(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "k8s.yaml",
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: k8s}\nspec:\n  file:\n    - paths: [manifests/*.yaml]\n      items: $.items[*]\n      tags: {cluster: c1}\n",
    );
    write(
        dir.path(),
        "manifests/shop.yaml",
        &stratum_tests::pod_manifest(true),
    );
    let config = dir.path().join("k8s.yaml");
    scrape(&db.store, &config).await;
    let addr = serve(db.store.clone()).await;

    let mut clients = Vec::new();
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        let mut client = Client::connect(addr, protocol).await;
        client.init().await;
        let pods =
            json!({"types": ["Kubernetes::Pod"], "tags": [{"key": "cluster", "values": ["c*"]}]});
        client
            .subscribe(protocol, "pods", HEALTH, json!({"filter": pods}))
            .await;
        let miss = json!({"namespaces": ["elsewhere"]});
        client
            .subscribe(protocol, "miss", HEALTH, json!({"filter": miss}))
            .await;
        clients.push((protocol, client));
    }
    // Let both subscriptions reach the bus before the change is written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    write(
        dir.path(),
        "manifests/shop.yaml",
        &stratum_tests::pod_manifest(false),
    );
    scrape(&db.store, &config).await;

    let mut cursors = Vec::new();
    for (protocol, client) in &mut clients {
        let message = client.recv_for("pods").await;
        let kind = if *protocol == "graphql-ws" {
            "data"
        } else {
            "next"
        };
        assert_eq!(message["type"], kind, "{protocol}: {message}");
        let event = &message["payload"]["data"]["healthChanged"];
        assert_eq!(event["previous"], "HEALTHY", "{protocol}: {message}");
        assert_eq!(event["current"], "UNHEALTHY");
        assert_eq!(event["status"], "CrashLoopBackOff");
        assert_eq!(event["item"]["name"], "web-1");
        assert_eq!(event["item"]["health"], "UNHEALTHY");
        assert_eq!(event["change"]["changeType"], "Unhealthy");
        cursors.push(event["cursor"].as_str().expect("cursor").to_string());
    }
    assert_eq!(cursors[0], cursors[1], "one event, one cursor");

    // Unsubscribe: the legacy protocol confirms with `complete`; neither
    // delivers later events to a stopped operation, and `miss` never heard
    // of the pod.
    let (_, legacy) = &mut clients[1];
    legacy.send(json!({"type": "stop", "id": "pods"})).await;
    assert_eq!(legacy.recv_for("pods").await["type"], "complete");
    let (_, transport) = &mut clients[0];
    transport
        .send(json!({"type": "complete", "id": "pods"}))
        .await;
    write(
        dir.path(),
        "manifests/shop.yaml",
        &stratum_tests::pod_manifest(true),
    );
    scrape(&db.store, &config).await;
    // A query on each connection is answered after anything queued before it.
    for (protocol, client) in &mut clients {
        let query = json!({"query": "{ configItems(first: 1) { totalCount } }"});
        let kind = if *protocol == "graphql-ws" {
            "start"
        } else {
            "subscribe"
        };
        client
            .send(json!({"type": kind, "id": "q", "payload": query}))
            .await;
        let answer = client.recv_for("q").await;
        assert_eq!(
            answer["payload"]["data"]["configItems"]["totalCount"], 2,
            "{answer}"
        );
        assert_eq!(client.recv_for("q").await["type"], "complete");
        assert!(
            client
                .stash
                .iter()
                .all(|m| m["id"] != "miss" && m["id"] != "pods"),
            "{protocol}: nothing for stopped or filtered-out operations: {:?}",
            client.stash
        );
    }

    // Resuming from the first cursor replays the recovery exactly once.
    let mut resumed = Client::connect(addr, "graphql-transport-ws").await;
    resumed.init().await;
    resumed
        .subscribe(
            "graphql-transport-ws",
            "again",
            HEALTH,
            json!({"since": cursors[0], "filter": {"types": ["Kubernetes::Pod"]}}),
        )
        .await;
    let replayed = resumed.recv_for("again").await;
    let event = &replayed["payload"]["data"]["healthChanged"];
    assert_eq!(
        (event["previous"].as_str(), event["current"].as_str()),
        (Some("UNHEALTHY"), Some("HEALTHY")),
        "{replayed}"
    );
}

#[tokio::test]
async fn protocol_errors_close_with_their_codes_and_spare_everyone_else() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut options = SchemaOptions::default();
    options.limits.connection_init_timeout = Duration::from_millis(300);
    let addr = serve_with(db.store.clone(), options).await;
    const T: &str = "graphql-transport-ws";
    const L: &str = "graphql-ws";

    // A bystander subscribed throughout keeps being served.
    let mut bystander = Client::connect(addr, T).await;
    bystander.init().await;

    let closed = |code: u16| move |(c, reason): (u16, String)| assert_eq!(c, code, "{reason}");

    // No connection_init in time.
    for protocol in [T, L] {
        let mut c = Client::connect(addr, protocol).await;
        closed(4408)(c.expect_close().await);
    }
    // Subscribing before the handshake.
    let mut c = Client::connect(addr, T).await;
    c.subscribe(T, "1", HEALTH, json!({})).await;
    closed(4401)(c.expect_close().await);
    // Two initialisations.
    let mut c = Client::connect(addr, T).await;
    c.init().await;
    c.send(json!({"type": "connection_init"})).await;
    closed(4429)(c.expect_close().await);
    // Malformed messages.
    for bad in [
        Message::Text("not json".into()),
        Message::Text("{\"type\": \"launch\"}".into()),
        Message::Text("{\"id\": \"1\"}".into()),
        Message::Text("{\"type\": \"subscribe\", \"payload\": {\"query\": \"{ a }\"}}".into()),
        Message::Text(
            "{\"type\": \"subscribe\", \"id\": \"1\", \"payload\": {\"query\": 5}}".into(),
        ),
        Message::Binary(vec![1, 2, 3].into()),
    ] {
        let mut c = Client::connect(addr, T).await;
        c.init().await;
        c.send_raw(bad.clone()).await;
        closed(4400)(c.expect_close().await);
    }
    let mut c = Client::connect(addr, T).await;
    c.send(json!({"type": "connection_init", "payload": "token"}))
        .await;
    closed(4400)(c.expect_close().await);

    // A duplicate id closes graphql-transport-ws with 4409 and is refused
    // (connection kept) on the legacy protocol.
    let mut c = Client::connect(addr, T).await;
    c.init().await;
    c.subscribe(T, "dup", HEALTH, json!({})).await;
    c.subscribe(T, "dup", HEALTH, json!({})).await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (4409, "Subscriber for dup already exists")
    );
    let mut legacy = Client::connect(addr, L).await;
    legacy.init().await;
    legacy.subscribe(L, "dup", HEALTH, json!({})).await;
    legacy.subscribe(L, "dup", HEALTH, json!({})).await;
    let refused = legacy.recv_for("dup").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "BAD_REQUEST");

    // Operation-level refusals answer with `error` and keep the connection.
    let mut c = Client::connect(addr, T).await;
    c.init().await;
    let cases = [
        (
            "filter",
            HEALTH,
            json!({"filter": {"health": ["PURPLE"]}}),
            None,
        ),
        (
            "related",
            HEALTH,
            json!({"filter": {"relatedTo": {"id": "00000000-0000-4000-8000-000000000001"}}}),
            Some("BAD_USER_INPUT"),
        ),
        (
            "cursor",
            HEALTH,
            json!({"since": "garbage"}),
            Some("BAD_USER_INPUT"),
        ),
        (
            "old",
            HEALTH,
            json!({"since": old_cursor()}),
            Some("CURSOR_EXPIRED"),
        ),
        (
            "syntax",
            "subscription { healthChanged { ",
            json!({}),
            Some("GRAPHQL_PARSE_FAILED"),
        ),
        (
            "mutation",
            "mutation { resolveInsight(id: \"x\") { id } }",
            json!({}),
            Some("METHOD_NOT_ALLOWED"),
        ),
        (
            "window",
            "subscription { configChanges(filter: {from: \"now-1d\"}) { cursor } }",
            json!({}),
            Some("BAD_USER_INPUT"),
        ),
    ];
    for (id, query, variables, code) in cases {
        c.subscribe(T, id, query, variables).await;
        let answer = c.recv_for(id).await;
        assert_eq!(answer["type"], "error", "{id}: {answer}");
        if let Some(code) = code {
            assert_eq!(
                answer["payload"][0]["extensions"]["code"], code,
                "{id}: {answer}"
            );
        }
        assert!(
            answer["payload"][0]["extensions"]["requestId"].is_string(),
            "{answer}"
        );
    }
    // The same connection still runs a query: next, then complete.
    c.subscribe(
        T,
        "q",
        "{ configItems(first: 1) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(
        c.recv_for("q").await["payload"]["data"]["configItems"]["totalCount"],
        0
    );
    assert_eq!(c.recv_for("q").await["type"], "complete");
    c.send(json!({"type": "ping"})).await;
    c.send(json!({"type": "pong"})).await;

    // 1,000 subscriptions on one connection: 50 run, the rest are refused.
    let mut many = Client::connect(addr, T).await;
    many.init().await;
    for i in 0..1000 {
        many.subscribe(T, &format!("s{i}"), HEALTH, json!({})).await;
    }
    let mut refused = 0;
    for i in 50..1000 {
        let answer = many.recv_for(&format!("s{i}")).await;
        assert_eq!(answer["type"], "error");
        assert_eq!(
            answer["payload"][0]["extensions"]["code"],
            "QUERY_TOO_COMPLEX"
        );
        refused += 1;
    }
    assert_eq!(refused, 950);
    assert!(
        many.stash.is_empty(),
        "the first 50 got nothing: {:?}",
        many.stash
    );

    // The bystander still gets a health change.
    bystander.subscribe(T, "b", HEALTH, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut pod = item("Kubernetes::Pod", "p1", json!({"x": 1}));
    scrape_items(&db.store, "s", vec![pod.clone()], keep_everything()).await;
    pod.health.health = Health::Unhealthy;
    scrape_items(&db.store, "s", vec![pod], keep_everything()).await;
    let event = bystander.recv_for("b").await;
    assert_eq!(
        event["payload"]["data"]["healthChanged"]["current"], "UNHEALTHY",
        "{event}"
    );
    assert_eq!(many.recv_for("s0").await["type"], "next");
}

fn old_cursor() -> String {
    stratum_domain::events::EventCursor::new(1, chrono::Utc::now() - chrono::TimeDelta::hours(25))
        .encode()
}

fn letters(mut n: usize) -> String {
    let mut out = String::new();
    loop {
        out.insert(0, (b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return out;
        }
    }
}

fn flipped(n: usize, round: usize) -> Vec<stratum_domain::ScrapedItem> {
    (0..n)
        .map(|i| {
            let mut it = item(
                "Test::Box",
                &format!("box-{i}"),
                // Large enough that a stalled socket fills quickly.
                json!({"i": i, "padding": "x".repeat(2000)}),
            );
            it.health = HealthResult {
                health: if round.is_multiple_of(2) {
                    Health::Healthy
                } else {
                    Health::Unhealthy
                },
                // Letters, not digits: a transition whose fingerprint
                // repeats within an hour is deduplicated into one row
                // (SPEC §5), and digits are tokenised away.
                status: Some(format!("round {}", letters(round))),
                ready: true,
                message: None,
            };
            it
        })
        .collect()
}

const CHANGE_IDS: &str = "subscription($since: String) { healthChanged(since: $since) { cursor change { id } item { config } } }";

async fn a_stalled_subscriber_lags_alone_and_resumes_exactly_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    const T: &str = "graphql-transport-ws";
    // A steady churn the others can follow (a burst larger than a
    // subscriber's buffer lags every subscriber that cannot drain it in
    // time, by design): 60 rounds of 20 transitions, 100 ms apart.
    const ITEMS: usize = 20;
    const ROUNDS: usize = 61;
    // Round 0 creates the items healthy (no transitions); each later round
    // flips all of them.
    scrape_items(&db.store, "boxes", flipped(ITEMS, 0), keep_everything()).await;
    let addr = serve(db.store.clone()).await;

    let mut stalled = Client::connect_small(addr, T).await;
    stalled.init().await;
    stalled.subscribe(T, "s", CHANGE_IDS, json!({})).await;

    // 100 others on 10 connections, counting what they receive.
    let mut others = Vec::new();
    for c in 0..10 {
        let mut client = Client::connect(addr, T).await;
        client.init().await;
        for s in 0..10 {
            client
                .subscribe(
                    T,
                    &format!("o{c}-{s}"),
                    "subscription { healthChanged { change { id } } }",
                    json!({}),
                )
                .await;
        }
        others.push(client);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expected = ITEMS * (ROUNDS - 1);
    let readers: Vec<_> = others
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut counts: HashMap<String, usize> = HashMap::new();
                while counts.values().sum::<usize>() < expected * 10 {
                    let Ok(m) =
                        tokio::time::timeout(Duration::from_secs(5), client.recv_json()).await
                    else {
                        panic!(
                            "stuck at {} of {}: {counts:?}",
                            counts.values().sum::<usize>(),
                            expected * 10
                        );
                    };
                    assert_eq!(m["type"], "next", "{m}");
                    assert!(m["payload"]["errors"].is_null(), "{m}");
                    *counts
                        .entry(m["id"].as_str().unwrap_or_default().to_string())
                        .or_default() += 1;
                }
                counts
            })
        })
        .collect();
    for round in 1..ROUNDS {
        scrape_items(&db.store, "boxes", flipped(ITEMS, round), keep_everything()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for reader in readers {
        let counts = tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("the others keep up")
            .expect("reader");
        assert_eq!(counts.len(), 10);
        assert!(counts.values().all(|&n| n == expected), "{counts:?}");
    }

    // The stalled client now reads: some events, one LAGGED with a resume
    // cursor, then complete.
    let mut seen: Vec<String> = Vec::new();
    let resume = loop {
        let m = stalled.recv_for("s").await;
        match m["type"].as_str() {
            Some("next") if m["payload"]["errors"].is_array() => {
                let error = &m["payload"]["errors"][0];
                assert_eq!(error["extensions"]["code"], "LAGGED", "{m}");
                break error["extensions"]["resumeCursor"]
                    .as_str()
                    .expect("cursor")
                    .to_string();
            }
            Some("next") => seen.push(
                m["payload"]["data"]["healthChanged"]["change"]["id"]
                    .as_str()
                    .expect("id")
                    .to_string(),
            ),
            other => panic!("unexpected {other:?}: {m}"),
        }
    };
    assert!(
        seen.len() < expected,
        "it lagged: saw {} of {expected}",
        seen.len()
    );
    assert_eq!(stalled.recv_for("s").await["type"], "complete");
    stalled
        .subscribe(T, "r", CHANGE_IDS, json!({"since": resume}))
        .await;
    while seen.len() < expected {
        let m = stalled.recv_for("r").await;
        assert_eq!(m["type"], "next", "{m}");
        seen.push(
            m["payload"]["data"]["healthChanged"]["change"]["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), expected, "every missed event exactly once");
    // Nothing more arrives: a query answers first.
    stalled
        .subscribe(
            T,
            "q",
            "{ configItems(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    let answer = stalled.recv_json().await;
    assert_eq!(answer["id"], "q", "no duplicate after the replay: {answer}");
}

#[tokio::test]
async fn server_sent_events_carry_subscriptions() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut pod = item("Kubernetes::Pod", "p1", json!({"x": 1}));
    scrape_items(&db.store, "s", vec![pod.clone()], keep_everything()).await;
    let addr = serve(db.store.clone()).await;
    let client = reqwest::Client::new();
    let mut response = client
        .post(format!("http://{addr}/graphql"))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(
            json!({"query": "subscription { healthChanged { current item { name } } }"})
                .to_string(),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/event-stream")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    pod.health.health = Health::Warning;
    scrape_items(&db.store, "s", vec![pod], keep_everything()).await;
    let mut text = String::new();
    while !text.contains("\n\n") || !text.contains("event: next") {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .expect("an event in time")
            .expect("chunk")
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    let event: Value = serde_json::from_str(data).expect("json");
    assert_eq!(
        event["data"]["healthChanged"]["current"], "WARNING",
        "{text}"
    );
    assert_eq!(event["data"]["healthChanged"]["item"]["name"], "p1");

    // A subscription that cannot start ends with one `next` carrying the
    // error, then `complete`.
    let text = client
        .post(format!("http://{addr}/graphql"))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(
            json!({"query": "subscription { healthChanged(since: \"nope\") { current } }"})
                .to_string(),
        )
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("body");
    assert!(text.contains("BAD_USER_INPUT"), "{text}");
    assert!(text.contains("event: complete"), "{text}");
}
