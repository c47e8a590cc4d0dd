//! Kubernetes scraper benchmark (SPEC §15, issue #4) against the fake API
//! server (`stratum_tests::fake_kube`) on PostgreSQL:
//!
//! 1. a first full list of N pods by `stratum scrape --once` (a child
//!    process, so its peak RSS is the scraper's own);
//! 2. a full re-list of the N unchanged pods, in objects/s, with its peak RSS;
//! 3. a watch (in-process) while 20 pod changes per second are made on the
//!    server: the latency from each change to its committed row.
//!
//! `cargo bench -p stratum-api --bench kubernetes` runs 50k pods for 30 s
//! (`STRATUM_BENCH_PODS`, `STRATUM_BENCH_SECONDS`). Under `cargo test` it
//! runs a 1k-pod, 3 s smoke pass so the harness itself stays tested.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use stratum_tests::fake_kube::FakeCluster;
use stratum_tests::{Backend, TestDb};
use uuid::Uuid;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pod(i: usize) -> Value {
    let name = format!("api-{:05}-{}", i / 10, i % 10);
    let ns = format!("team-{:02}", i % 50);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns,
            "uid": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("bench-pod-{i}").as_bytes()).to_string(),
            "creationTimestamp": "2026-11-01T00:00:00Z",
            "labels": {"app": format!("app-{}", i % 500), "team": format!("team-{}", i % 20), "pod-template-hash": "7d9f8b6c5"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-11-01T00:00:05Z",
                               "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:phase": {}, "f:podIP": {}}}}]
        },
        "spec": {
            "nodeName": format!("node-{:03}", i % 100),
            "containers": [{
                "name": "app", "image": format!("registry.example.com/app-{}:1.{}.0", i % 500, i % 7),
                "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu-west-1"}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10},
                "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access", "readOnly": true}]
            }],
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]
        },
        "status": {
            "phase": "Running", "podIP": format!("10.{}.{}.{}", i % 250, (i / 250) % 250, i % 7), "hostIP": "10.0.1.11",
            "qosClass": "Burstable", "startTime": "2026-11-01T00:00:00Z",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
                           {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "started": true,
                                   "image": format!("registry.example.com/app-{}:1.{}.0", i % 500, i % 7),
                                   "imageID": format!("registry.example.com/app@sha256:{:064x}", i),
                                   "containerID": format!("containerd://{:064x}", i * 7919),
                                   "state": {"running": {"startedAt": "2026-11-01T00:00:05Z"}}}]
        }
    })
}

fn objects(pods: usize) -> Vec<Value> {
    let mut out: Vec<Value> = (0..50)
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("team-{n:02}"),
              "uid": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("bench-ns-{n}").as_bytes()).to_string()},
              "status": {"phase": "Active"}}))
        .collect();
    out.extend((0..100).map(|n| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("node-{n:03}"),
              "uid": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("bench-node-{n}").as_bytes()).to_string()},
              "status": {"conditions": [{"type": "Ready", "status": "True"}]}})));
    out.extend((0..pods).map(pod));
    out
}

/// Runs `stratum scrape --once`, returning its wall time and peak RSS (MiB).
fn scrape_once(config: &Path, url: &str) -> (Duration, f64) {
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["scrape", "--once"])
        .arg(config)
        .env("STRATUM_DATABASE_URL", url)
        .env("STRATUM_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start stratum scrape");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
            && let Some(kib) = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "stratum scrape failed: {status}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    println!("    {}", out.trim());
    (started.elapsed(), peak_kib as f64 / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let pods = env_or("STRATUM_BENCH_PODS", if full { 50_000 } else { 1_000 });
    let seconds = env_or("STRATUM_BENCH_SECONDS", if full { 30 } else { 3 });
    if let Ok(filter) = std::env::var("STRATUM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let db = TestDb::for_bench(Backend::Postgres).await;
        let fake = FakeCluster::start(json!({"major": "1", "minor": "31", "gitVersion": "v1.31.4"}), objects(pods))
            .await
            .expect("fake API server");
        let dir = tempfile::tempdir().expect("tmp");
        let kubeconfig = fake.write_kubeconfig(dir.path(), "bench").expect("kubeconfig");
        let config_path = dir.path().join("bench.yaml");
        std::fs::write(
            &config_path,
            format!(
                "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {{name: bench, namespace: bench}}\nspec:\n  kubernetes:\n    - clusterName: bench\n      kubeconfig: {}\n      kinds: {{include: [Namespace, Node, Pod]}}\n      watch: true\n",
                kubeconfig.display()
            ),
        )
        .expect("config");
        println!("kubernetes bench: {pods} pods, PostgreSQL, page size 500");

        let (first, first_rss) = scrape_once(&config_path, &db.url);
        println!(
            "  first list + ingest: {:.2}s, {:.0} objects/s, peak RSS {first_rss:.0} MiB",
            first.as_secs_f64(),
            pods as f64 / first.as_secs_f64()
        );
        let (again, again_rss) = scrape_once(&config_path, &db.url);
        println!(
            "  unchanged re-list:   {:.2}s, {:.0} objects/s, peak RSS {again_rss:.0} MiB (process start included)",
            again.as_secs_f64(),
            pods as f64 / again.as_secs_f64()
        );

        // The watch: wait for its initial list to settle, then change 20 pods a second.
        let configs = stratum_scrapers::load_path(&config_path).expect("config");
        let config = Arc::new(configs.into_iter().next().expect("one config"));
        let cancel = tokio_util::sync::CancellationToken::new();
        let watch = tokio::spawn(stratum_scrapers::kubernetes::watch::run(
            db.store.clone(),
            config.clone(),
            config.kubernetes[0].clone(),
            Arc::new(tokio::sync::Mutex::new(())),
            cancel.clone(),
        ));
        let store = db.store.clone();
        let committed = |id: Uuid, seq: usize| {
            let store = store.clone();
            async move {
                let row = store
                    .connection()
                    .query_one_raw(Statement::from_sql_and_values(
                        store.backend(),
                        "SELECT labels->>'bench-seq' AS seq FROM config_items WHERE id = $1",
                        [id.into()],
                    ))
                    .await
                    .ok()
                    .flatten();
                row.and_then(|r| r.try_get::<Option<String>>("", "seq").ok().flatten()) == Some(seq.to_string())
            }
        };
        let change = |i: usize, seq: usize| {
            let mut p = pod(i);
            p["metadata"]["labels"]["bench-seq"] = seq.to_string().into();
            fake.apply(p).expect("apply");
            Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("bench-pod-{i}").as_bytes())
        };
        // Warm up: the watch's own initial list must be written first, so
        // probe until five changes in a row, across the key space, commit
        // within a second each.
        let warm = Instant::now();
        let mut seq = 0usize;
        let mut fast = 0;
        while fast < 5 {
            seq += 1;
            let sent = Instant::now();
            let id = change((seq * 104_729) % pods, seq);
            while !committed(id, seq).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            fast = if sent.elapsed() < Duration::from_secs(1) { fast + 1 } else { 0 };
        }
        println!("  watch ready (its initial list written) after {:.1}s", warm.elapsed().as_secs_f64());

        let mut pending: HashMap<usize, (Uuid, Instant)> = HashMap::new();
        let mut latencies: Vec<Duration> = Vec::new();
        let events = seconds * 20;
        let start = Instant::now();
        let mut sent_count = 0usize;
        while latencies.len() < events {
            let due = start + Duration::from_millis(50 * sent_count as u64);
            if sent_count < events && Instant::now() >= due {
                seq += 1;
                let i = (seq * 7919) % pods;
                let id = change(i, seq);
                pending.insert(seq, (id, Instant::now()));
                sent_count += 1;
            }
            let mut done = Vec::new();
            for (s, (id, sent)) in &pending {
                if committed(*id, *s).await {
                    done.push((*s, sent.elapsed()));
                }
            }
            for (s, latency) in done {
                pending.remove(&s);
                latencies.push(latency);
            }
            if start.elapsed() > Duration::from_secs(seconds as u64 * 4 + 30) {
                for (s, (id, _)) in &pending {
                    let row = store
                        .connection()
                        .query_one_raw(Statement::from_sql_and_values(
                            store.backend(),
                            "SELECT name, labels::text AS l, updated_at::text AS u FROM config_items WHERE id = $1",
                            [(*id).into()],
                        ))
                        .await
                        .ok()
                        .flatten();
                    let row = row.map(|r| (r.try_get::<String>("", "name").ok(), r.try_get::<String>("", "l").ok()));
                    eprintln!("pending seq {s} {id}: {row:?}");
                }
                panic!("watch stalled: {} pending", pending.len());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies.sort();
        println!(
            "  watch, 20 changes/s for {seconds}s: change → committed row p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
        );
        cancel.cancel();
        watch.await.expect("join").expect("watch");
    });
}
