//! Traces over OTLP (SPEC §14, issue #8): with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! set, `stratum serve` exports its request spans as OTLP/HTTP protobuf to
//! the collector there, under the `stratum` service with the request's id,
//! and flushes what is left when it stops. Without it, nothing is sent.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use stratum_tests::Server;

/// A collector that keeps every export it receives: (path, content type, body).
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

async fn collector() -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let keep = received.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                if let Ok(mut all) = keep.lock() {
                    all.push((uri.path().to_string(), kind, body.to_vec()));
                }
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, received)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_the_otlp_collector() {
    let (collector_addr, received) = collector().await;
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    for (endpoint, expect_export) in [(None, false), (Some(collector_addr), true)] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stratum"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
            .args(stratum_tests::open_serve_flags(dir.path(), "viewer"))
            .args(["--shutdown-delay", "0s"])
            .env("STRATUM_LOG", "warn")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(addr) = endpoint {
            command.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"));
        }
        let mut child = Server(command.spawn().expect("serve"));
        let addr = stratum_tests::listening_addr(&mut child.0).expect("serve starts");
        let request_id = format!("otlp-test-{}", expect_export);
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .header("x-request-id", &request_id)
            .json(&serde_json::json!({"query": "{ configItems(first: 1) { totalCount } }"}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200);
        if expect_export {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let found = received.lock().map(|all| {
                    all.iter().any(|(path, kind, body)| {
                        path == "/v1/traces"
                            && kind == "application/x-protobuf"
                            && contains(body, "stratum")
                            && contains(body, &request_id)
                    })
                });
                if found.unwrap_or(false) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no span with the request id reached the collector"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                received.lock().map(|all| all.is_empty()).unwrap_or(false),
                "nothing is exported without an endpoint"
            );
        }
        // SIGTERM, so the exporter flushes at exit.
        let _ = Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status();
        let _ = child.0.wait();
    }
}
