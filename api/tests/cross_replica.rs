//! `stratum serve` processes and their subscribers (SPEC §13): with two on
//! one PostgreSQL database, a subscriber on the replica that does not
//! scrape receives the health change the other one ingested, and keeps
//! receiving after every database connection of both processes is
//! terminated and after the database is unreachable for a while (through a
//! proxy the test takes down); on SIGTERM, WebSocket clients get close 1001 and
//! the process exits.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use serde_json::json;
use stratum_tests::proxy::TcpProxy;
use stratum_tests::ws::Client;
use stratum_tests::{Backend, TestDb, postgres_admin_url};

struct Server(Child, SocketAddr);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(database_url: &str, configs: Option<&Path>, log: &Path) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stratum"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(stratum_tests::open_serve_flags(
            log.parent().expect("the log's directory"),
            "admin",
        ));
    if let Some(configs) = configs {
        command.arg("--scrape-config").arg(configs);
    }
    let mut child = command
        .env("STRATUM_DATABASE_URL", database_url)
        .env("STRATUM_LOG", "stratum_domain=info,warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start stratum serve");
    let addr = stratum_tests::listening_addr(&mut child).expect("serve starts");
    Server(child, addr)
}

/// The next health event of operation `h`, checked to go `from` → `to`.
async fn expect_transition(client: &mut Client, from: &str, to: &str) -> serde_json::Value {
    let event = client.recv_for("h").await;
    let health = &event["payload"]["data"]["healthChanged"];
    assert_eq!(
        (health["previous"].as_str(), health["current"].as_str()),
        (Some(from), Some(to)),
        "{event}"
    );
    event
}

const HEALTH: &str = "subscription { healthChanged(filter: {types: [\"Kubernetes::Pod\"]}) { previous current item { name } } }";

// Multi-threaded: `start` blocks on the server's first line while the
// proxy, on this runtime, carries the server's database connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_ingested_on_one_replica_reaches_a_subscriber_on_the_other() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("tmp");
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(configs.join("manifests")).expect("mkdir");
    std::fs::write(
        configs.join("k8s.yaml"),
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: k8s}\nspec:\n  schedule: \"@every 1s\"\n  file:\n    - paths: [manifests/*.yaml]\n      items: $.items[*]\n",
    )
    .expect("config");
    let manifest = configs.join("manifests/pod.yaml");
    std::fs::write(&manifest, stratum_tests::pod_manifest(true)).expect("pod");

    // Both servers reach the database through a proxy the test can take
    // down, as a database restart would.
    let upstream: SocketAddr = tokio::net::lookup_host(
        db.url
            .split_once('@')
            .map_or(db.url.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default(),
    )
    .await
    .expect("resolve the database host")
    .next()
    .expect("an address");
    let proxy = TcpProxy::start(upstream).await.expect("proxy");
    let proxied = proxy.url_for(&db.url);
    let _scraper = start(&proxied, Some(&configs), &dir.path().join("a.log"));
    let listener = start(&proxied, None, &dir.path().join("b.log"));
    let mut client = Client::connect(listener.1, "graphql-transport-ws").await;
    client.init().await;
    client
        .subscribe("graphql-transport-ws", "h", HEALTH, json!({}))
        .await;
    // Let the first scrape create the pod healthy before it turns bad.
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::write(&manifest, stratum_tests::pod_manifest(false)).expect("pod");
    let event = expect_transition(&mut client, "HEALTHY", "UNHEALTHY").await;
    assert_eq!(
        event["payload"]["data"]["healthChanged"]["item"]["name"],
        "web-1"
    );

    // Every connection to the database goes away, as in a restart: the
    // scraper's batches retry, the listener reconnects (replaying what it
    // missed), and the subscriber sees the recovery.
    let admin = Database::connect(postgres_admin_url())
        .await
        .expect("admin connection");
    let name = db.url.rsplit('/').next().unwrap_or_default().to_string();
    let killed = admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .await
        .expect("terminate");
    assert!(killed.rows_affected() >= 2, "both servers were connected");
    std::fs::write(&manifest, stratum_tests::pod_manifest(true)).expect("pod");
    expect_transition(&mut client, "UNHEALTHY", "HEALTHY").await;

    // The database is unreachable for three seconds (connections dropped,
    // new ones refused) while the pod breaks again: the scraper retries,
    // the listener reconnects and replays, and the subscriber hears of it.
    proxy.down();
    std::fs::write(&manifest, stratum_tests::pod_manifest(false)).expect("pod");
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.up();
    expect_transition(&mut client, "HEALTHY", "UNHEALTHY").await;
    let b_log = std::fs::read_to_string(dir.path().join("b.log")).unwrap_or_default();
    assert!(
        b_log.contains("event listener"),
        "the listener noticed the lost connection: {b_log}"
    );
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let mut server = start(&url, None, &dir.path().join("s.log"));
    let mut client = Client::connect(server.1, "graphql-transport-ws").await;
    client.init().await;
    client
        .subscribe("graphql-transport-ws", "h", HEALTH, json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1001, "{reason}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = server.0.try_wait().expect("wait") {
            assert!(exit.success(), "{exit:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "serve did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
