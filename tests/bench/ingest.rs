//! Ingest benchmark: generated items written to files, scraped through the
//! real file scraper and pipeline into SQLite and PostgreSQL; first scrape
//! and unchanged re-scrape, in items/s.
//!
//! `cargo bench -p stratum-tests --bench ingest` runs 100k items per backend
//! (`STRATUM_BENCH_ITEMS` overrides). Under `cargo test` it runs a 2k-item
//! smoke pass so the harness itself stays tested.

use std::path::Path;
use std::time::Instant;

use stratum_domain::RunStatus;
use stratum_scrapers::{RunOptions, load_path, run_scrape};
use stratum_tests::{Backend, TestDb};

/// The same allocator as the `stratum` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PER_FILE: usize = 1000;

fn generate(dir: &Path, items: usize) {
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    let files = items.div_ceil(PER_FILE);
    for f in 0..files {
        let start = f * PER_FILE;
        let end = (start + PER_FILE).min(items);
        let docs: Vec<serde_json::Value> = (start..end)
            .map(|i| {
                serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {
                        "name": format!("pod-{i}"), "namespace": format!("ns-{}", i % 50),
                        "uid": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("pod-{i}").as_bytes()).to_string(),
                        "labels": {"app": format!("app-{}", i % 500), "team": format!("team-{}", i % 20), "tier": "backend"},
                        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}
                    },
                    "spec": {
                        "nodeName": format!("node-{}", i % 100),
                        "containers": [{
                            "name": "app", "image": format!("registry.example.com/app-{}:1.{}.0", i % 500, i % 7),
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu-west-1"}],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10}
                        }]
                    },
                    "status": {
                        "phase": "Running", "podIP": format!("10.{}.{}.{}", i % 250, (i / 250) % 250, i % 7),
                        "startTime": "2026-11-01T00:00:00Z",
                        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
                        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-11-01T00:00:05Z"}}}]
                    }
                })
            })
            .collect();
        std::fs::write(
            dir.join(format!("data/{f:04}.json")),
            serde_json::to_vec(&serde_json::json!({"items": docs})).expect("json"),
        )
        .expect("write");
    }
    std::fs::write(
        dir.join("bench.yaml"),
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: bench}\nspec:\n  file:\n    - paths: [data/*.json]\n      items: $.items[*]\n      tags: {cluster: bench}\n",
    )
    .expect("config");
}

async fn measure(backend: Backend, dir: &Path, items: usize) -> (f64, f64) {
    let db = TestDb::for_bench(backend).await;
    let config = load_path(&dir.join("bench.yaml"))
        .expect("config")
        .remove(0);
    let t = Instant::now();
    let first = run_scrape(&db.store, &config, &RunOptions::default())
        .await
        .expect("first scrape");
    let first_secs = t.elapsed().as_secs_f64();
    println!("  {backend:?} first scrape phases: {:?}", first.timings);
    assert_eq!(
        first.status,
        RunStatus::Succeeded,
        "{:?}",
        first.summary.errors
    );
    assert_eq!(first.summary.created as usize, items);
    let t = Instant::now();
    let second = run_scrape(&db.store, &config, &RunOptions::default())
        .await
        .expect("re-scrape");
    let second_secs = t.elapsed().as_secs_f64();
    println!("  {backend:?} re-scrape phases: {:?}", second.timings);
    assert_eq!(second.summary.unchanged as usize, items);
    (items as f64 / first_secs, items as f64 / second_secs)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let items: usize = if full {
        std::env::var("STRATUM_BENCH_ITEMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000)
    } else {
        2_000
    };
    let dir = tempfile::tempdir().expect("tmp");
    generate(dir.path(), items);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // `STRATUM_BENCH_BACKENDS=sqlite|postgres` narrows a full run.
    let only = std::env::var("STRATUM_BENCH_BACKENDS").unwrap_or_default();
    let backends: Vec<Backend> = if full {
        [Backend::Sqlite, Backend::Postgres]
            .into_iter()
            .filter(|b| only.is_empty() || only.contains(&format!("{b:?}").to_lowercase()))
            .collect()
    } else {
        vec![Backend::Sqlite]
    };
    println!("ingest benchmark: {items} items through the file scraper");
    for backend in &backends {
        let (first, again) = rt.block_on(measure(*backend, dir.path(), items));
        println!(
            "{backend:?}: first scrape {first:>9.0} items/s, unchanged re-scrape {again:>9.0} items/s"
        );
    }
}
