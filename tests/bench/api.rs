//! API benchmark (issue #3, SPEC §15): a seeded PostgreSQL catalog (100k
//! items of ~3 KB, ~300k relationships, 1M changes), the real `stratum
//! serve` binary in its own process, and concurrent clients on loopback.
//! For each scenario it prints req/s, p50 and p99 (GraphQL `errors` inside
//! a 200 count as failures), then the same query's raw SQL through pgbench
//! as the floor.
//!
//! The list and detail scenarios also run against PostGraphile 4 (npm
//! `postgraphile`, installed on first use into `target/bench-postgraphile`)
//! pointed at the same database, in the same run, and the ratio is printed.
//! `STRATUM_BENCH_POSTGRAPHILE=0` leaves it out.
//!
//! `cargo bench -p stratum-api --bench api` runs the full profile
//! (`STRATUM_BENCH_ITEMS`, `STRATUM_BENCH_SECONDS`, `STRATUM_BENCH_CLIENTS`
//! override it). Under `cargo test` a 2k-item smoke pass keeps the harness
//! itself tested.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use stratum_domain::{ItemRef, ScrapedItem, Store, ids};
use stratum_tests::{Backend, Server, TestDb, item};
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCRAPER: &str = "bench";
const NAMESPACES: usize = 50;
const NODES: usize = 100;
/// The issue's throughput target for the list page (req/s), offered
/// open-loop by all the clients together.
const LIST_TARGET_RATE: f64 = 2_000.0;

struct Profile {
    items: usize,
    changes_per_pod: usize,
    seconds: u64,
    clients: usize,
    latency_clients: usize,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn id_of(t: &str, ext: &str) -> Uuid {
    ids::item_id(ids::scraper_id("default", SCRAPER), t, ext)
}

/// A pod document of about 3 KB.
fn pod_config(i: usize, deployment: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("pod-{i}"), "namespace": format!("ns-{}", deployment % NAMESPACES),
            "labels": {"app": format!("app-{deployment}"), "team": format!("team-{}", deployment % 20), "tier": "backend",
                       "pod-template-hash": format!("{:x}", i * 7919)},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                            "description": "x".repeat(600)}
        },
        "spec": {
            "nodeName": format!("node-{}", i % NODES),
            "serviceAccountName": "default",
            "containers": [{
                "name": "app", "image": format!("registry.example.com/app-{deployment}:1.{}.0", i % 7),
                "ports": [{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9090, "name": "metrics"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "env": (0..12).map(|e| json!({"name": format!("ENV_{e}"), "value": format!("value-{e}-{i}")})).collect::<Vec<_>>(),
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10},
                "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}, "periodSeconds": 20}
            }],
            "volumes": [{"name": "config", "configMap": {"name": format!("app-{deployment}")}}]
        },
        "status": {
            "phase": "Running", "podIP": format!("10.{}.{}.{}", i % 250, (i / 250) % 250, i % 7),
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": i % 3,
                                   "state": {"running": {"startedAt": "2026-11-01T00:00:05Z"}}}]
        }
    })
}

fn with_parent(
    mut it: ScrapedItem,
    parent_type: &str,
    parent: &str,
    relation: &str,
) -> ScrapedItem {
    it.parent = Some((
        ItemRef::External {
            item_type: parent_type.into(),
            external_id: parent.into(),
        },
        relation.into(),
    ));
    it
}

/// Cluster → namespaces → deployments (and a service each) → pods; nodes.
fn catalog(items: usize) -> Vec<ScrapedItem> {
    let deployments = (items / 50).max(NAMESPACES);
    let mut out = vec![item("Kubernetes::Cluster", "prod", json!({"name": "prod"}))];
    for n in 0..NAMESPACES {
        out.push(with_parent(
            item(
                "Kubernetes::Namespace",
                &format!("ns-{n}"),
                json!({"name": n}),
            ),
            "Kubernetes::Cluster",
            "prod",
            "ClusterNamespace",
        ));
    }
    for n in 0..NODES {
        out.push(with_parent(
            item("Kubernetes::Node", &format!("node-{n}"), json!({"name": n})),
            "Kubernetes::Cluster",
            "prod",
            "ClusterNode",
        ));
    }
    for d in 0..deployments {
        let ns = format!("ns-{}", d % NAMESPACES);
        for t in ["Kubernetes::Deployment", "Kubernetes::Service"] {
            let mut it = with_parent(
                item(t, &format!("app-{d}"), json!({"replicas": 3, "app": d})),
                "Kubernetes::Namespace",
                &ns,
                "NamespaceApp",
            );
            it.namespace = Some(ns.clone());
            it.tags.insert("team".into(), format!("team-{}", d % 20));
            out.push(it);
        }
    }
    let pods = items.saturating_sub(out.len());
    for i in 0..pods {
        let d = i % deployments;
        let mut it = with_parent(
            item("Kubernetes::Pod", &format!("pod-{i}"), pod_config(i, d)),
            "Kubernetes::Deployment",
            &format!("app-{d}"),
            "DeploymentPod",
        );
        it.namespace = Some(format!("ns-{}", d % NAMESPACES));
        it.tags.insert("team".into(), format!("team-{}", d % 20));
        if i % 17 == 0 {
            it.health.health = stratum_domain::Health::Unhealthy;
        }
        out.push(it);
    }
    out
}

async fn seed(store: &Store, profile: &Profile) -> anyhow::Result<()> {
    stratum_tests::scrape_items(
        store,
        SCRAPER,
        catalog(profile.items),
        stratum_tests::keep_everything(),
    )
    .await;
    let db = store.connection();
    // Soft edges: Node → Pod and Service → Pod, one each per pod.
    db.execute_unprepared(
        "INSERT INTO config_relationships (id, from_id, to_id, relation, hard, scraper_id, created_at, last_seen_at) \
         SELECT gen_random_uuid(), n.id, p.id, 'NodePod', false, p.scraper_id, now(), now() \
         FROM config_items p JOIN config_items n ON n.type = 'Kubernetes::Node' \
           AND n.name = 'node-' || (substr(p.name, 5)::int % 100) WHERE p.type = 'Kubernetes::Pod'",
    )
    .await?;
    db.execute_unprepared(
        "INSERT INTO config_relationships (id, from_id, to_id, relation, hard, scraper_id, created_at, last_seen_at) \
         SELECT gen_random_uuid(), s.id, p.id, 'ServicePod', false, p.scraper_id, now(), now() \
         FROM config_items p JOIN config_items d ON d.id = p.parent_id \
         JOIN config_items s ON s.type = 'Kubernetes::Service' AND s.name = d.name AND s.namespace = d.namespace \
         WHERE p.type = 'Kubernetes::Pod'",
    )
    .await?;
    // Changes: spread over 30 days, five types, every severity.
    db.execute_unprepared(&format!(
        "INSERT INTO config_changes (id, seq, config_id, change_type, severity, source, summary, fingerprint, count, first_observed, created_at) \
         SELECT gen_random_uuid(), nextval('stratum_event_seq'), p.id, \
           (ARRAY['diff','Pulled','BackOff','Unhealthy','Healthy'])[1 + (g % 5)], \
           (ARRAY['info','low','high','medium','info'])[1 + (g % 5)], 'bench', \
           'change ' || g || ' of ' || p.name, md5(p.id::text || g), 1, \
           now() - (g * 3 + (substr(p.name, 5)::int % 60)) * interval '1 hour', \
           now() - (g * 3 + (substr(p.name, 5)::int % 60)) * interval '1 hour' \
         FROM config_items p CROSS JOIN generate_series(1, {}) g WHERE p.type = 'Kubernetes::Pod'",
        profile.changes_per_pod
    ))
    .await?;
    db.execute_unprepared("ANALYZE").await?;
    Ok(())
}

async fn count(store: &Store, sql: &str) -> i64 {
    let row = store
        .connection()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await
        .ok()
        .flatten();
    row.and_then(|r| r.try_get::<i64>("", "n").ok())
        .unwrap_or(-1)
}

/// Starts `stratum serve` on `url` with its signing key in `data_dir`:
/// requests without a token are anonymous viewers, and the rate limits
/// are out of the load's reach (they are charged all the same).
async fn start_server(url: &str, data_dir: &std::path::Path) -> anyhow::Result<(Server, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            url,
        ])
        .args(stratum_tests::open_serve_flags(data_dir, "viewer"))
        .env("STRATUM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let server = Server(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok((server, format!("{base}/graphql")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the server did not become ready")
}

/// The PostGraphile version the comparison runs.
const POSTGRAPHILE: &str = "postgraphile@4.14.1";

/// Installs PostGraphile into `target/bench-postgraphile` unless it is
/// there already, and returns its CLI.
fn install_postgraphile() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-postgraphile");
    let cli = dir.join("node_modules/.bin/postgraphile");
    if !cli.exists() {
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(POSTGRAPHILE)
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "npm install {POSTGRAPHILE} failed");
    }
    Ok(cli)
}

/// Starts PostGraphile on the bench database with its recommended
/// production flags and one worker per core. Our tables declare no
/// foreign keys, so smart comments give it the relations it needs.
async fn start_postgraphile(store: &Store, db_url: &str) -> anyhow::Result<(Server, String)> {
    let cli = install_postgraphile()?;
    for comment in [
        "COMMENT ON TABLE config_changes IS E'@foreignKey (config_id) references config_items (id)|@foreignFieldName changes'",
        "COMMENT ON TABLE config_relationships IS E'@foreignKey (from_id) references config_items (id)|@fieldName from|@foreignFieldName outgoing\\n@foreignKey (to_id) references config_items (id)|@fieldName to|@foreignFieldName incoming'",
    ] {
        store.connection().execute_unprepared(comment).await?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(cli)
        .args([
            "-c",
            db_url,
            "-s",
            "public",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args([
            "--disable-graphiql",
            "--disable-query-log",
            "--disable-default-mutations",
            "--dynamic-json",
        ])
        .args([
            "--no-setof-functions-contain-nulls",
            "--no-ignore-rbac",
            "--cluster-workers",
            "2",
        ])
        .env("NODE_ENV", "production")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = Server(child);
    let url = format!("http://127.0.0.1:{port}/graphql");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ready = http
            .post(&url)
            .json(&json!({"query": "{ __typename }"}))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok((server, url));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("PostGraphile did not become ready")
}

struct Outcome {
    requests: usize,
    failures: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }

    /// Prints a follow-up row of a scenario (`label` under its name) and
    /// fails the run on any GraphQL error.
    fn print_row(&self, name: &str, label: &str, clients: usize) {
        println!(
            "{label:<64} {clients:>7} {:>9.0} {:>9.2} {:>9.2} {:>8} |",
            self.requests as f64 / self.seconds,
            self.percentile(0.5),
            self.percentile(0.99),
            self.failures,
        );
        assert_eq!(self.failures, 0, "{name}: GraphQL errors");
    }
}

/// Where a scenario's requests go: a GraphQL endpoint and the bearer
/// token sent on every request, if any.
#[derive(Clone)]
struct Target {
    url: String,
    token: Option<String>,
}

/// Mints a viewer token (optionally scoped) with `stratum token`, signed
/// with the key the server generated in `data_dir`.
fn mint(db_url: &str, data_dir: &std::path::Path, scope: Option<&str>) -> anyhow::Result<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stratum"));
    command
        .args([
            "token",
            "--subject",
            "bench",
            "--role",
            "viewer",
            "--ttl",
            "2h",
        ])
        .args(["--database-url", db_url, "--data-dir"])
        .arg(data_dir);
    if let Some(scope) = scope {
        command.args(["--scope", scope]);
    }
    let out = command.output()?;
    anyhow::ensure!(
        out.status.success(),
        "stratum token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Drives `clients` concurrent clients for `seconds`, each sending the
/// query `make(n)` builds for its n-th request: back to back (closed
/// loop), or with `rate`, at that many requests per second in all on a
/// fixed schedule (open loop). An open-loop latency runs from the request's
/// scheduled time, so a server that falls behind is not hidden by clients
/// that wait for it (no coordinated omission).
async fn drive(
    target: &Target,
    clients: usize,
    seconds: u64,
    rate: Option<f64>,
    make: Arc<dyn Fn(usize) -> Value + Send + Sync>,
) -> Outcome {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &target.token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .default_headers(headers)
        .build()
        .expect("client");
    let url = target.url.as_str();
    let failures = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, make, failures) = (
            http.clone(),
            url.to_string(),
            make.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = c * 1_000_003;
            // Open loop: client c sends at c/rate, then every clients/rate.
            let schedule = rate.map(|r| {
                (
                    Duration::from_secs_f64(c as f64 / r),
                    Duration::from_secs_f64(clients as f64 / r),
                )
            });
            let mut k = 0u32;
            while Instant::now() < deadline {
                n += 1;
                let body = make(n);
                let sent = match schedule {
                    Some((offset, every)) => {
                        let at = start + offset + every * k;
                        k += 1;
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => Instant::now(),
                };
                let ok = match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                        Ok(v) => v.get("errors").is_none() && !v["data"].is_null(),
                        Err(_) => false,
                    },
                    _ => false,
                };
                latencies.push(sent.elapsed());
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort();
    Outcome {
        requests: latencies.len(),
        failures: failures.load(Ordering::Relaxed),
        seconds,
        latencies,
    }
}

/// CPU seconds (user + system) a process has used so far, from
/// `/proc/<pid>/stat` (Linux; clock ticks of 1/100 s).
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs a pgbench script for the same query; returns (tps, mean ms).
fn pgbench(url: &str, script: &str, clients: usize, seconds: u64) -> Option<(f64, f64)> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("query.sql");
    std::fs::write(&path, script).ok()?;
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
            &path.display().to_string(),
            url,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps"))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()?;
    let mean = text
        .lines()
        .find(|l| l.starts_with("latency average"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some((tps, mean))
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let profile = if full {
        Profile {
            items: env_or("STRATUM_BENCH_ITEMS", 100_000),
            changes_per_pod: 10,
            seconds: env_or("STRATUM_BENCH_SECONDS", 10),
            clients: env_or("STRATUM_BENCH_CLIENTS", 50),
            latency_clients: env_or("STRATUM_BENCH_LATENCY_CLIENTS", 4),
        }
    } else {
        Profile {
            items: 2_000,
            changes_per_pod: 10,
            seconds: 1,
            clients: 4,
            latency_clients: 2,
        }
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let db = TestDb::for_bench(Backend::Postgres).await;
        let clock = Instant::now();
        seed(&db.store, &profile).await?;
        let items = count(&db.store, "SELECT COUNT(*) AS n FROM config_items").await;
        let edges = count(&db.store, "SELECT COUNT(*) AS n FROM config_relationships").await;
        let changes = count(&db.store, "SELECT COUNT(*) AS n FROM config_changes").await;
        println!(
            "api benchmark: {items} items, {edges} relationships, {changes} changes seeded in {:.1} s; {} clients, {} s per scenario",
            clock.elapsed().as_secs_f64(),
            profile.clients,
            profile.seconds
        );
        // `STRATUM_BENCH_HOLD_SECS` keeps the seeded database around for
        // EXPLAIN and profiling before the load starts.
        let hold: u64 = env_or("STRATUM_BENCH_HOLD_SECS", 0);
        if hold > 0 {
            println!("holding {hold} s: {}", db.url);
            tokio::time::sleep(Duration::from_secs(hold)).await;
        }
        // The database settings both servers run with: no JIT (PostGraphile's
        // own advice; its nested statements otherwise spend ~850 ms in JIT
        // compilation) and no parallel workers for request-sized statements
        // (stratum's connections set both themselves).
        let name = db
            .url
            .rsplit('/')
            .next()
            .and_then(|n| n.split('?').next())
            .unwrap_or_default()
            .to_string();
        db.store
            .connection()
            .execute_unprepared(&format!(
                "ALTER DATABASE {name} SET jit = off; ALTER DATABASE {name} SET max_parallel_workers_per_gather = 0"
            ))
            .await?;
        let data_dir = tempfile::tempdir()?;
        let (server, url) = start_server(&db.url, data_dir.path()).await?;
        let anonymous = Target { url: url.clone(), token: None };
        let bearer = Target {
            url: url.clone(),
            token: Some(mint(&db.url, data_dir.path(), None)?),
        };
        let scoped = Target {
            url: url.clone(),
            token: Some(mint(&db.url, data_dir.path(), Some(r#"{"namespaces": ["ns-*"]}"#))?),
        };

        let deployments = (profile.items / 50).max(NAMESPACES);
        let pods = profile.items.saturating_sub(1 + NAMESPACES + NODES + 2 * deployments);
        let deployment = move |n: usize| id_of("Kubernetes::Deployment", &format!("app-{}", n % deployments));
        let pod = move |n: usize| id_of("Kubernetes::Pod", &format!("pod-{}", (n * 7919) % pods.max(1)));
        type Make = Arc<dyn Fn(usize) -> Value + Send + Sync>;
        // (name, clients, query, raw SQL). The whole-catalog summary is a
        // dashboard query: a handful of clients, not fifty.
        let clients = profile.clients;
        let dashboards = profile.clients.min(5);
        // The same request in PostGraphile's generated schema, where it has
        // one: related items at depth 3 become three nested levels of
        // relationships in each direction.
        let related = |dir: &str, end: &str, inner: &str| {
            format!("{dir}(condition: {{deletedAt: null}}) {{ nodes {{ {end} {{ id name type health {inner} }} }} }}")
        };
        let walk = |dir: &str, end: &str| related(dir, end, &related(dir, end, &related(dir, end, "")));
        let pg_detail = format!(
            "id name type health status config {} {} changes(first: 20, orderBy: [CREATED_AT_DESC, ID_DESC]) {{ nodes {{ changeType severity summary createdAt }} }}",
            walk("outgoing", "to"),
            walk("incoming", "from")
        );
        let pg_list: Make = Arc::new(|n: usize| json!({"query": format!(
            "{{ allConfigItems(first: 50, condition: {{namespace: \"ns-{}\", deletedAt: null}}, orderBy: [NAME_ASC, ID_ASC]) {{ edges {{ cursor node {{ id name type health status namespace updatedAt }} }} pageInfo {{ hasNextPage endCursor }} }} }}",
            n % NAMESPACES)}));
        let pg_detail: Make = Arc::new(move |n: usize| json!({"query": format!(
            "{{ configItemById(id: \"{}\") {{ {pg_detail} }} }}", pod(n))}));
        let list: Make = Arc::new(|n: usize| json!({"query": format!(
            "{{ configItems(first: 50, filter: {{namespaces: [\"ns-{}\"]}}) {{ edges {{ cursor node {{ id name type health status namespace updatedAt }} }} pageInfo {{ hasNextPage endCursor }} }} }}",
            n % NAMESPACES)}));
        let list_sql = "\\set ns random(0, 49)\nSELECT id, name, type, health, status, namespace, updated_at FROM config_items \
                 WHERE deleted_at IS NULL AND namespace = 'ns-' || :ns ORDER BY name, id LIMIT 51;\n".to_string();
        /// (name, clients, query, raw SQL, PostGraphile twin, target, the
        /// issue's throughput target: also offered open-loop by all the clients).
        type Scenario<'a> = (&'a str, usize, Make, String, Option<Make>, &'a Target, Option<f64>);
        let scenarios: Vec<Scenario> = vec![
            (
                "list page (50 items, summary fields, 1 filter)",
                clients,
                list.clone(),
                list_sql.clone(),
                Some(pg_list),
                &anonymous,
                Some(LIST_TARGET_RATE),
            ),
            (
                "list page, a bearer token on every request",
                clients,
                list.clone(),
                list_sql.clone(),
                None,
                &bearer,
                None,
            ),
            (
                "list page, a scoped token (namespaces: [ns-*])",
                clients,
                list,
                list_sql,
                None,
                &scoped,
                None,
            ),
            (
                "item detail (config, related depth 3, 20 latest changes)",
                clients,
                Arc::new(move |n: usize| json!({"query": format!(
                    "{{ configItem(uuid: \"{}\") {{ id name type health status config relatedItems(depth: 3, first: 50) {{ totalCount edges {{ depth node {{ id name type health }} }} }} changes(first: 20) {{ nodes {{ changeType severity summary createdAt }} }} }} }}",
                    pod(n))})),
                format!(
                    "\\set p random(0, {})\nSELECT * FROM config_items WHERE name = 'pod-' || :p;\n\
                     SELECT * FROM config_changes WHERE config_id = (SELECT id FROM config_items WHERE name = 'pod-' || :p) ORDER BY created_at DESC, id DESC LIMIT 21;\n",
                    pods.saturating_sub(1)
                ),
                Some(pg_detail),
                &anonymous,
                None,
            ),
            (
                "graph depth 3 from a deployment",
                clients,
                Arc::new(move |n: usize| json!({"query": format!(
                    "{{ graph(rootIds: [\"{}\"], depth: 3) {{ truncated nodes {{ depth item {{ id name type health }} }} edges {{ relation fromUuid toUuid }} }} }}",
                    deployment(n))})),
                format!(
                    "\\set d random(0, {})\nWITH RECURSIVE down(id, depth) AS ( \
                     SELECT r.to_id, 1 FROM config_relationships r WHERE r.from_id = (SELECT id FROM config_items WHERE type = 'Kubernetes::Deployment' AND name = 'app-' || :d) AND r.deleted_at IS NULL \
                     UNION SELECT r.to_id, w.depth + 1 FROM down w JOIN config_relationships r ON r.from_id = w.id WHERE w.depth < 3 AND r.deleted_at IS NULL) \
                     SELECT c.id, c.name, c.type, c.health FROM config_items c JOIN (SELECT id, MIN(depth) d FROM down GROUP BY id) t ON t.id = c.id;\n",
                    deployments - 1
                ),
                None,
                &anonymous,
                None,
            ),
            (
                "recursive change search (deployment downstream, low or worse)",
                clients,
                Arc::new(move |n: usize| json!({"query": format!(
                    "{{ configChanges(first: 50, filter: {{configIds: [\"{}\"], recursive: DOWNSTREAM, minSeverity: LOW}}) {{ edges {{ cursor node {{ changeType severity summary createdAt }} }} pageInfo {{ hasNextPage }} }} }}",
                    deployment(n))})),
                format!(
                    "\\set d random(0, {})\nSELECT c.* FROM config_changes c WHERE c.config_id IN ( \
                     SELECT r.to_id FROM config_relationships r WHERE r.from_id = (SELECT id FROM config_items WHERE type = 'Kubernetes::Deployment' AND name = 'app-' || :d)) \
                     AND c.severity IN ('low', 'medium', 'high', 'critical') ORDER BY c.created_at DESC, c.id DESC LIMIT 51;\n",
                    deployments - 1
                ),
                None,
                &anonymous,
                None,
            ),
            (
                "catalog summary by type (7-day changes)",
                dashboards,
                Arc::new(|_| json!({"query": "{ catalogSummary(groupBy: [\"type\"]) { key count health { healthy unhealthy } changes } }"})),
                "SELECT type, COUNT(*) FROM config_items WHERE deleted_at IS NULL GROUP BY type;\n\
                 SELECT ci.type, COUNT(*) FROM config_items ci JOIN config_changes c ON c.config_id = ci.id \
                 WHERE ci.deleted_at IS NULL AND c.created_at >= now() - interval '7 days' GROUP BY ci.type;\n".to_string(),
                None,
                &anonymous,
                None,
            ),
        ];
        println!(
            "{:<64} {:>7} {:>9} {:>9} {:>9} {:>8} | {:>10} {:>11} | CPU µs/req: server, load",
            "scenario", "clients", "req/s", "p50 ms", "p99 ms", "errors", "SQL tps", "SQL mean ms"
        );
        let server_pid = Some(server.0.id());
        let postgraphile = if full && env_or("STRATUM_BENCH_POSTGRAPHILE", 1) == 1 {
            Some(start_postgraphile(&db.store, &db.url).await?)
        } else {
            None
        };
        let mut unauthenticated_rate = None;
        for (name, clients, make, sql, twin, target, target_rate) in scenarios {
            // Warm up, then measure.
            drive(target, clients.min(4), 1, None, make.clone()).await;
            let make_again = make.clone();
            let cpu_before = (cpu_seconds(server_pid), cpu_seconds(None));
            let o = drive(target, clients, profile.seconds, None, make.clone()).await;
            let per_request = |before: Option<f64>, after: Option<f64>| match (before, after) {
                (Some(b), Some(a)) if o.requests > 0 => {
                    format!("{:.0}", (a - b) * 1e6 / o.requests as f64)
                }
                _ => "-".into(),
            };
            let cpu = (
                per_request(cpu_before.0, cpu_seconds(server_pid)),
                per_request(cpu_before.1, cpu_seconds(None)),
            );
            let floor = pgbench(&db.url, &sql, clients, profile.seconds);
            println!(
                "{name:<64} {clients:>7} {:>9.0} {:>9.2} {:>9.2} {:>8} | {:>10} {:>11} | {}, {}",
                o.requests as f64 / o.seconds,
                o.percentile(0.5),
                o.percentile(0.99),
                o.failures,
                floor.map(|f| format!("{:.0}", f.0)).unwrap_or_else(|| "-".into()),
                floor.map(|f| format!("{:.2}", f.1)).unwrap_or_else(|| "-".into()),
                cpu.0,
                cpu.1,
            );
            assert_eq!(o.failures, 0, "{name}: GraphQL errors under load");
            assert!(o.requests > 0, "{name}: no request completed");
            // Latency below saturation: a few clients.
            let few = profile.latency_clients.min(clients);
            if few < clients {
                drive(target, few, profile.seconds, None, make_again)
                    .await
                    .print_row(name, "  (same, below saturation)", few);
            }
            // All the clients at once, offering 60% of the saturated rate.
            let offered = (o.requests as f64 / o.seconds * 0.6).max(1.0);
            drive(target, clients, profile.seconds, Some(offered), make.clone())
                .await
                .print_row(name, &format!("  (same, open loop at {offered:.0} req/s)"), clients);
            if let Some(rate) = target_rate.filter(|_| full) {
                drive(target, clients, profile.seconds, Some(rate), make)
                    .await
                    .print_row(
                        name,
                        &format!("  (same, open loop at the target's {rate:.0} req/s)"),
                        clients,
                    );
            }
            let rate = o.requests as f64 / o.seconds;
            match (target.token.is_some(), unauthenticated_rate) {
                (false, None) => unauthenticated_rate = Some(rate),
                (true, Some(without)) => println!(
                    "{:<64} {:>7} {:>9.2}x req/s of the anonymous list page",
                    "  (authenticated / anonymous)", "", rate / without
                ),
                _ => {}
            }
            if let (Some((_, pg_url)), Some(twin)) = (&postgraphile, twin) {
                let pg = Target { url: pg_url.clone(), token: None };
                drive(&pg, clients.min(4), 1, None, twin.clone()).await;
                let p = drive(&pg, clients, profile.seconds, None, twin).await;
                let ours = o.requests as f64 / o.seconds;
                let theirs = p.requests as f64 / p.seconds;
                println!(
                    "{:<64} {clients:>7} {theirs:>9.0} {:>9.2} {:>9.2} {:>8} | stratum/postgraphile: {:.2}x req/s, {:.2}x p99",
                    "  (PostGraphile 4, same query)",
                    p.percentile(0.5),
                    p.percentile(0.99),
                    p.failures,
                    ours / theirs,
                    p.percentile(0.99) / o.percentile(0.99),
                );
                assert_eq!(p.failures, 0, "{name}: PostGraphile errors");
            }
        }
        Ok::<_, anyhow::Error>(())
    })
}
