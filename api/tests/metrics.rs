//! `/metrics` of the real binary (SPEC §14, issue #8): after a scrape, a
//! named query, a failing query and an open WebSocket, the Prometheus text
//! carries request counts and latencies by operation, errors by code,
//! scrape runs, durations and items by scraper, the WebSocket and
//! subscription gauges, event-bus lag and database pool usage.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use stratum_tests::ws::Client;
use stratum_tests::{Backend, Server, TestDb};

/// The value of the first sample line that starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_requests_errors_scrapes_sockets_and_pools() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("manifests")).expect("dir");
    std::fs::write(
        dir.path().join("k8s.yaml"),
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: k8s}\nspec:\n  schedule: \"@every 1h\"\n  file:\n    - paths: [manifests/*.yaml]\n      items: $.items[*]\n",
    )
    .expect("config");
    std::fs::write(
        dir.path().join("manifests/shop.yaml"),
        stratum_tests::pod_manifest(true),
    )
    .expect("manifest");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["serve", "--listen", "127.0.0.1:0", "--scrape-config"])
        .arg(dir.path().join("k8s.yaml"))
        .args(stratum_tests::open_serve_flags(dir.path(), "admin"))
        .env("STRATUM_DATABASE_URL", &db.url)
        .env("STRATUM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start stratum serve");
    let addr = stratum_tests::listening_addr(&mut child).expect("serve starts");
    let _server = Server(child);
    let http = reqwest::Client::new();
    let metrics = || async {
        let response = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("metrics");
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with("text/plain; version=0.0.4")
        );
        response.text().await.expect("text")
    };

    // The first scheduled run happens at start-up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = metrics().await;
    while sample(&text, "stratum_scrape_runs_total{").is_none() {
        assert!(Instant::now() < deadline, "no scrape run recorded:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        text = metrics().await;
    }
    assert_eq!(
        sample(
            &text,
            "stratum_scrape_runs_total{scraper=\"default/k8s\",status=\"succeeded\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "stratum_scrape_items_total{scraper=\"default/k8s\"}"),
        Some(2.0),
        "a namespace and a pod:\n{text}"
    );
    assert!(
        sample(
            &text,
            "stratum_scrape_duration_seconds_count{scraper=\"default/k8s\"}"
        ) == Some(1.0),
        "{text}"
    );

    // A named query twice, and a query that fails validation.
    for _ in 0..2 {
        let body = json!({"query": "query Pods { configItems(first: 5) { totalCount } }", "operationName": "Pods"});
        let r = http
            .post(format!("http://{addr}/graphql"))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    let bad = json!({"query": "{ noSuchField }"});
    http.post(format!("http://{addr}/graphql"))
        .json(&bad)
        .send()
        .await
        .expect("post");
    // An open WebSocket with one subscription.
    let mut ws = Client::connect(addr, "graphql-transport-ws").await;
    ws.init().await;
    ws.subscribe(
        "graphql-transport-ws",
        "h",
        "subscription { healthChanged { current } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = metrics().await;
    assert_eq!(
        sample(&text, "stratum_graphql_requests_total{operation=\"Pods\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "stratum_graphql_request_duration_seconds_count{operation=\"Pods\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        text.contains(
            "stratum_graphql_request_duration_seconds_bucket{operation=\"Pods\",le=\"0.005\"}"
        ),
        "a true histogram:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            "stratum_graphql_errors_total{code=\"GRAPHQL_VALIDATION_FAILED\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "stratum_websocket_connections "),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "stratum_subscriptions_active "),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "stratum_db_pool_max_connections{pool=\"main\"}").is_some_and(|n| n > 0.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "stratum_db_pool_connections{pool=\"main\",state=\"idle\"}"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        text.contains("# HELP stratum_graphql_requests_total"),
        "described:\n{text}"
    );

    // The socket closes: the gauges come back down.
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics().await;
        if sample(&text, "stratum_websocket_connections ") == Some(0.0)
            && sample(&text, "stratum_subscriptions_active ") == Some(0.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "gauges stuck:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
