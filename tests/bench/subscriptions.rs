//! Subscription fan-out benchmark (issue #5, SPEC §15): the real `stratum
//! serve` binary on SQLite in its own process, N WebSocket clients on
//! loopback (graphql-transport-ws), one `insightChanges` subscription each.
//!
//! For each N it reports the server's memory per idle subscription (RSS
//! growth over the open subscriptions) and the delivery latency: each
//! round pushes one insight through the `pushInsights` mutation, and every
//! client records the time from the event's committed `at` to its arrival.
//! Deliveries count only when every client received every event.
//!
//! `cargo bench -p stratum-api --bench subscriptions` runs 1,000 and 5,000
//! subscribers (`STRATUM_BENCH_SUBSCRIBERS=1000,5000`,
//! `STRATUM_BENCH_ROUNDS`, `STRATUM_BENCH_ROUND_MS` override it). Under
//! `cargo test` a 50-subscriber smoke pass keeps the harness tested.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use stratum_tests::ws::Client;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Resident memory of the server process, KiB.
    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

fn start(dir: &std::path::Path) -> anyhow::Result<Server> {
    let configs = dir.join("configs");
    std::fs::create_dir_all(configs.join("data"))?;
    std::fs::write(
        configs.join("data/boxes.json"),
        r#"{"items": [{"id": "box-0", "name": "box-0"}]}"#,
    )?;
    std::fs::write(
        configs.join("boxes.yaml"),
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: boxes}\nspec:\n  schedule: \"@every 1h\"\n  file:\n    - paths: [data/boxes.json]\n      items: $.items[*]\n      type: Test::Box\n",
    )?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["serve", "--listen", "127.0.0.1:0", "--scrape-config"])
        .arg(&configs)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("bench.db").display()))
        .args(stratum_tests::open_serve_flags(dir, "admin"))
        .env("STRATUM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log"))?)
        .spawn()?;
    let addr = stratum_tests::listening_addr(&mut child)?;
    Ok(Server { child, addr })
}

async fn push_insight(http: &reqwest::Client, addr: SocketAddr, key: &str) -> anyhow::Result<()> {
    let query = "mutation($key: String!) { pushInsights(insights: [{configType: \"Test::Box\", externalId: \"box-0\", analyzer: \"bench\", analysisType: \"reliability\", severity: MEDIUM, summary: \"bench\", key: $key}]) { opened } }";
    let body: serde_json::Value = http
        .post(format!("http://{addr}/graphql"))
        .json(&json!({"query": query, "variables": {"key": key}}))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(body["errors"].is_null(), "pushInsights failed: {body}");
    Ok(())
}

/// Waits until the item the mutation targets exists.
async fn wait_for_item(http: &reqwest::Client, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let body: serde_json::Value = http
            .post(format!("http://{addr}/graphql"))
            .json(&json!({"query": "{ configItems(first: 1) { totalCount } }"}))
            .send()
            .await?
            .json()
            .await?;
        if body["data"]["configItems"]["totalCount"].as_i64() == Some(1) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the scrape never created the item")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(subscribers: usize, rounds: usize, round_gap: Duration) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path())?;
    let http = reqwest::Client::new();
    wait_for_item(&http, server.addr).await?;
    // One warm-up connection so the runtime's lazy structures exist before
    // the baseline is read.
    let mut warm = Client::connect(server.addr, "graphql-transport-ws").await;
    warm.init().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss_kib();

    let addr = server.addr;
    let opened = Instant::now();
    let clients: Vec<Client> = futures_util::stream::iter(0..subscribers)
        .map(|_| async move {
            let mut client = Client::connect(addr, "graphql-transport-ws").await;
            client.init().await;
            client
                .subscribe(
                    "graphql-transport-ws",
                    "i",
                    "subscription { insightChanges { at } }",
                    json!({}),
                )
                .await;
            client
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let open_secs = opened.elapsed().as_secs_f64();
    // Let every subscription reach the bus, then read the idle footprint.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = server.rss_kib();
    let per_subscription_kib = rss_idle.saturating_sub(rss_before) as f64 / subscribers as f64;

    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(rounds);
                while latencies.len() < rounds {
                    let message = client.recv_for("i").await;
                    let received = chrono::Utc::now();
                    let at = message["payload"]["data"]["insightChanges"]["at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                    let Some(at) = at else {
                        panic!("not an event: {message}");
                    };
                    let ms = (received - at.with_timezone(&chrono::Utc)).num_microseconds();
                    latencies.push(ms.unwrap_or(i64::MAX) as f64 / 1000.0);
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    for round in 0..rounds {
        push_insight(&http, addr, &format!("round-{round}")).await?;
        tokio::time::sleep(round_gap).await;
    }
    let mut all: Vec<f64> = Vec::with_capacity(subscribers * rounds);
    for reader in readers {
        all.extend(
            tokio::time::timeout(Duration::from_secs(120), reader)
                .await
                .map_err(|_| anyhow::anyhow!("a subscriber missed events"))??,
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    println!(
        "  {subscribers:>5} subscribers: {rounds} events, {} deliveries; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         idle memory {per_subscription_kib:.1} KiB/subscription (RSS {} → {} MiB); opened in {open_secs:.1} s; {:.0} deliveries/s over the run",
        all.len(),
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        all.last().copied().unwrap_or(f64::NAN),
        rss_before / 1024,
        rss_idle / 1024,
        all.len() as f64 / elapsed,
    );
    drop(warm);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let (sizes, rounds, gap_ms): (Vec<usize>, usize, u64) = if full {
        (
            std::env::var("STRATUM_BENCH_SUBSCRIBERS")
                .unwrap_or_else(|_| "1000,5000".into())
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect(),
            env_or("STRATUM_BENCH_ROUNDS", 40),
            env_or("STRATUM_BENCH_ROUND_MS", 250),
        )
    } else {
        (vec![50], 3, 100)
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        println!(
            "subscription benchmark: stratum serve (SQLite) in its own process, {rounds} events per size, {gap_ms} ms apart"
        );
        for subscribers in sizes {
            run(subscribers, rounds, Duration::from_millis(gap_ms)).await?;
        }
        anyhow::Ok(())
    })
}
