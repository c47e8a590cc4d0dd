//! Probes and shutdown of the real binary (SPEC §14, issue #8): `/readyz`
//! goes unready while the database is unreachable and ready again when it
//! returns; on SIGTERM, `/readyz` turns 503 while connections are still
//! accepted (the shutdown delay), then new connections are refused, an in-flight request
//! still gets its answer, a subscription is closed with 1001 and the
//! process exits cleanly within the grace period, and a request that never
//! finishes does not hold the process past it.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use stratum_tests::proxy::TcpProxy;
use stratum_tests::ws::Client;
use stratum_tests::{Backend, Server, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn start(url: &str, data_dir: &std::path::Path, delay: &str, grace: &str) -> (Server, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            grace,
            "--shutdown-delay",
            delay,
        ])
        .args(stratum_tests::open_serve_flags(data_dir, "admin"))
        .env("STRATUM_DATABASE_URL", url)
        .env("STRATUM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start stratum serve");
    let addr = stratum_tests::listening_addr(&mut child).expect("serve starts");
    (Server(child), addr)
}

async fn readyz(addr: SocketAddr) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("readyz");
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

/// Polls `/readyz` until it answers `status`.
async fn until_readyz(addr: SocketAddr, status: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (now, body) = readyz(addr).await;
        if now == status {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {now}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm(server: &Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits for the process to exit; its status and how long it took.
fn exit_within(server: &mut Server, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            return (status, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "still running {limit:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A POST whose body is only half sent: in flight until `finish`.
struct SlowRequest {
    socket: tokio::net::TcpStream,
    rest: Vec<u8>,
}

async fn slow_request(addr: SocketAddr) -> SlowRequest {
    let body = json!({"query": "{ configItems(first: 1) { totalCount } }"}).to_string();
    let (head, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /graphql HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.expect("headers");
    socket.write_all(head).await.expect("half a body");
    SlowRequest {
        socket,
        rest: rest.to_vec(),
    }
}

impl SlowRequest {
    /// Sends the rest of the body; the response text.
    async fn finish(mut self) -> String {
        self.socket.write_all(&self.rest).await.expect("the rest");
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(1), self.socket.read(&mut buf)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    response.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&response).contains("totalCount") {
                        break;
                    }
                }
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
        }
        String::from_utf8_lossy(&response).to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("tmp");
    let upstream: SocketAddr = "127.0.0.1:5432".parse().expect("addr");
    let proxy = TcpProxy::start(upstream).await.expect("proxy");
    let (_server, addr) = start(&proxy.url_for(&db.url), dir.path(), "0s", "5s");
    let body = until_readyz(addr, 200).await;
    assert_eq!(
        body,
        json!({"database": true, "migrations": true, "shuttingDown": false})
    );
    proxy.down();
    let body = until_readyz(addr, 503).await;
    assert_eq!(body["database"], false, "{body}");
    // Liveness does not depend on the database.
    let live = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(live.status(), 200);
    proxy.up();
    until_readyz(addr, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_work_and_closes_subscriptions() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (mut server, addr) = start(&db.url, dir.path(), "1s", "10s");
    until_readyz(addr, 200).await;

    let mut subscriber = Client::connect(addr, "graphql-transport-ws").await;
    subscriber.init().await;
    subscriber
        .subscribe(
            "graphql-transport-ws",
            "h",
            "subscription { healthChanged { current } }",
            json!({}),
        )
        .await;
    let in_flight = slow_request(addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    sigterm(&server);
    // First unready while still serving (the shutdown delay)...
    let body = until_readyz(addr, 503).await;
    assert_eq!(body["shuttingDown"], true, "{body}");
    // ... then the subscription is closed and connections refused.
    let (code, reason) = subscriber.expect_close().await;
    assert_eq!(code, 1001, "{reason}");
    // New connections are refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The in-flight request is answered in full.
    let response = in_flight.finish().await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"totalCount\":0"), "{response}");
    let (status, _) = exit_within(&mut server, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited within the grace period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_a_request_that_never_finishes() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (mut server, addr) = start(&db.url, dir.path(), "0s", "1s");
    until_readyz(addr, 200).await;
    let _stuck = slow_request(addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(&server);
    let (status, took) = exit_within(&mut server, Duration::from_secs(8));
    assert!(status.success(), "exit status {status}");
    assert!(
        took >= Duration::from_millis(900),
        "it waited for the request: {took:?}"
    );
}
