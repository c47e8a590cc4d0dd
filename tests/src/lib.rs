//! Test support shared by Stratum's cross-crate tests: a fresh database per
//! test on SQLite (a temp file) or PostgreSQL (a randomly named database,
//! dropped when the handle is dropped), and helpers to run the binary.
//!
//! PostgreSQL comes from `STRATUM_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); a test that cannot reach
//! it fails rather than skips.

pub mod fake_kube;
pub mod proxy;
pub mod ws;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database};

use serde_json::Value;
use stratum_domain::{HealthResult, ScrapedItem, Store};

/// Defines, for each named `async fn name(backend: Backend)`, a module with
/// a `sqlite` and a `postgres` `#[tokio::test]` that call it.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await;
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temp-file SQLite database.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// The admin URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("STRATUM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh, migrated database that disappears with the handle.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// The store, migrated.
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// Creates and migrates a fresh database.
    pub async fn new(backend: Backend) -> TestDb {
        TestDb::create(backend, postgres_admin_url()).await
    }

    /// A fresh database for a benchmark: on PostgreSQL, reached over TCP
    /// without TLS (`sslmode=disable`) unless `STRATUM_TEST_POSTGRES_URL`
    /// sets its own `sslmode`. The benchmarks measure the catalog against a
    /// server on the same box, not loopback encryption (libpq and sqlx
    /// default to TLS when the server offers it; node-postgres does not).
    pub async fn for_bench(backend: Backend) -> TestDb {
        let admin = postgres_admin_url();
        let admin = if admin.contains("sslmode=") {
            admin
        } else if admin.contains('?') {
            format!("{admin}&sslmode=disable")
        } else {
            format!("{admin}?sslmode=disable")
        };
        TestDb::create(backend, admin).await
    }

    async fn create(backend: Backend, admin: String) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                let store = Store::connect(&url).await.expect("open sqlite");
                store.migrate().await.expect("migrate sqlite");
                TestDb {
                    url,
                    store,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let name = format!("stratum_test_{}", uuid::Uuid::new_v4().simple());
                let conn = Database::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL is required for tests ({admin}): {e}"));
                conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let (address, query) = match admin.split_once('?') {
                    Some((a, q)) => (a, format!("?{q}")),
                    None => (admin.as_str(), String::new()),
                };
                let url = match address.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}{query}"),
                    None => panic!("bad STRATUM_TEST_POSTGRES_URL"),
                };
                let store = Store::connect(&url).await.expect("open postgres");
                store.migrate().await.expect("migrate postgres");
                TestDb {
                    url,
                    store,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = postgres_admin_url();
        // Drop runs outside the test's runtime: use a short-lived one.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(conn) = Database::connect(&admin).await {
                    let _ = conn
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// A statement for `store`'s backend from SQL with `?` placeholders
/// (numbered `$1…` on PostgreSQL).
pub fn statement(store: &Store, sql: &str, values: Vec<sea_orm::Value>) -> sea_orm::Statement {
    let backend = store.backend();
    let sql = if backend == sea_orm::DbBackend::Postgres {
        let mut n = 0;
        sql.chars()
            .map(|c| {
                if c == '?' {
                    n += 1;
                    format!("${n}")
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        sql.to_string()
    };
    sea_orm::Statement::from_sql_and_values(backend, sql, values)
}

/// A scraped item with the given identity and config, healthy unless the
/// config says otherwise through `health`.
pub fn item(item_type: &str, external_id: &str, config: Value) -> ScrapedItem {
    ScrapedItem {
        source_id: None,
        external_ids: vec![external_id.to_string()],
        item_type: item_type.to_string(),
        class: item_type
            .rsplit("::")
            .next()
            .unwrap_or(item_type)
            .to_string(),
        name: external_id.to_string(),
        namespace: None,
        tags: BTreeMap::new(),
        labels: BTreeMap::new(),
        properties: Value::Array(Vec::new()),
        config: stratum_domain::normalize::CanonicalConfig::from_value(config),
        health: HealthResult {
            health: stratum_domain::Health::Healthy,
            status: Some("OK".into()),
            ready: true,
            message: None,
        },
        source: Some("test".into()),
        parent: None,
        relationships: Vec::new(),
        ignored_change_types: Vec::new(),
        insights: Vec::new(),
    }
}

/// A settled run that neither deletes stale items nor tombstones edges.
pub fn keep_everything() -> stratum_domain::store::RunCompletion {
    stratum_domain::store::RunCompletion {
        full: false,
        errors: vec![],
        warnings: vec![],
        stale_item_age: None,
        max_delete_percent: 20.0,
        allow_mass_delete: false,
    }
}

/// Writes `items` as one run of the file-sourced scraper `name` (namespace
/// `default`) the way the pipeline does: register, start, preload, batches
/// of 500, settle with `completion`, finish as succeeded. Returns the
/// scraper id.
pub async fn scrape_items(
    store: &Store,
    name: &str,
    items: Vec<ScrapedItem>,
    completion: stratum_domain::store::RunCompletion,
) -> uuid::Uuid {
    use stratum_domain::store::{IngestSession, RunSummary, ScraperRecord};
    let scraper = store
        .upsert_scraper(
            &ScraperRecord {
                name: name.into(),
                namespace: "default".into(),
                spec: serde_json::json!({}),
                source: stratum_domain::ScraperSource::File,
            },
            true,
        )
        .await
        .expect("register scraper");
    let (run, started) = store
        .start_run(scraper, stratum_domain::RunMode::Full)
        .await
        .expect("start run");
    let mut session = IngestSession::new(scraper, run, started);
    store.preload_existing(&mut session).await.expect("preload");
    // Batches of the pipeline's size, each its own transaction.
    for batch in items.chunks(500) {
        store
            .ingest_batch(&mut session, batch.to_vec())
            .await
            .expect("ingest");
    }
    store
        .complete_run(&mut session, &completion)
        .await
        .expect("complete run");
    store
        .finish_run(
            run,
            scraper,
            &RunSummary {
                status: Some(stratum_domain::RunStatus::Succeeded),
                ..RunSummary::default()
            },
        )
        .await
        .expect("finish run");
    scraper
}

/// Runs one full scrape of `config` and asserts that it succeeded.
pub async fn scrape_succeeds(
    store: &Store,
    config: &stratum_scrapers::LoadedScrapeConfig,
) -> stratum_scrapers::RunReport {
    let report =
        stratum_scrapers::run_scrape(store, config, &stratum_scrapers::RunOptions::default())
            .await
            .expect("scrape");
    assert_eq!(
        report.status,
        stratum_domain::RunStatus::Succeeded,
        "{:?}",
        report.summary.errors
    );
    report
}

/// Path of the built `stratum` binary (cargo builds it for integration tests).
pub fn stratum_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join(if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        })
        .join("stratum")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Kubernetes `List` with namespace `shop` and pod `web-1` in it, ready
/// or crash-looping: a fixture a test rewrites to flip the pod's health.
pub fn pod_manifest(healthy: bool) -> String {
    let (ready, state) = if healthy {
        ("True", "{running: {startedAt: '2026-01-01T00:00:00Z'}}")
    } else {
        ("False", "{waiting: {reason: CrashLoopBackOff}}")
    };
    format!(
        "apiVersion: v1\nkind: List\nitems:\n\
         - apiVersion: v1\n  kind: Namespace\n  metadata: {{name: shop, uid: 00000000-0000-4000-8000-000000000002}}\n  status: {{phase: Active}}\n\
         - apiVersion: v1\n  kind: Pod\n  metadata: {{name: web-1, namespace: shop, uid: 00000000-0000-4000-8000-000000000005}}\n  \
         status:\n    phase: Running\n    conditions: [{{type: Ready, status: \"{ready}\"}}]\n    \
         containerStatuses: [{{name: web, ready: {healthy}, state: {state}}}]\n"
    )
}

/// The address a `stratum serve` child announces on its first stdout line
/// (`stratum listening on http://ADDR/graphql`); takes the child's stdout.
pub fn listening_addr(child: &mut std::process::Child) -> anyhow::Result<std::net::SocketAddr> {
    use std::io::BufRead;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("the child's stdout is not piped"))?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    line.trim()
        .strip_prefix("stratum listening on http://")
        .and_then(|rest| rest.strip_suffix("/graphql"))
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("unexpected first line: {line:?}"))
}

/// Flags for a `stratum serve` child of a test that is not about
/// authentication: its generated signing key goes to `data_dir`, requests
/// without a token run as an anonymous `role` (loopback only), and the rate
/// limits are out of any test's reach.
pub fn open_serve_flags(data_dir: &std::path::Path, role: &str) -> Vec<std::ffi::OsString> {
    let mut flags: Vec<std::ffi::OsString> = vec!["--data-dir".into(), data_dir.into()];
    for flag in [
        "--anonymous",
        "--anonymous-role",
        role,
        "--rate-per-second",
        "1000000",
        "--rate-burst",
        "1000000",
        "--points-per-minute",
        "1000000000",
        "--max-connections-per-token",
        "1000000",
    ] {
        flags.push(flag.into());
    }
    flags
}

/// A child process (a `stratum serve`) killed and reaped when dropped, so a
/// failed assertion leaves no server behind.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
