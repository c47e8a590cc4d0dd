//! The `http` scraper against a real local HTTP server (pages, headers from
//! the environment, a 500, a timeout, a malformed body), and the `sql`
//! scraper against real PostgreSQL, MariaDB (MySQL) and SQLite databases,
//! on both catalog backends. Every failure is a recorded failed run that deletes nothing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;
use stratum_domain::store::{ItemFilter, PageRequest};
use stratum_domain::{RunStatus, Store};
use stratum_scrapers::{RunOptions, load_str, run_scrape};
use stratum_tests::{Backend, TestDb};

stratum_tests::on_both_backends!(
    http_pages_then_each_fault_is_a_failed_run_that_deletes_nothing,
    sql_rows_become_items_on_postgres_and_sqlite,
    sql_rows_from_mysql_keep_their_types
);

/// How the status API answers.
const OK: u8 = 0;
const FAIL_500: u8 = 1;
const SLOW: u8 = 2;
const MALFORMED: u8 = 3;

async fn status_api(
    State(mode): State<Arc<AtomicU8>>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cret") {
        return (StatusCode::UNAUTHORIZED, "no token").into_response();
    }
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    match mode.load(Ordering::SeqCst) {
        FAIL_500 if page == 2 => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
        }
        SLOW => tokio::time::sleep(Duration::from_secs(3)).await,
        MALFORMED => {
            return (
                [("content-type", "application/json")],
                "{\"components\": [{\"id\": ",
            )
                .into_response();
        }
        _ => {}
    }
    let components: Vec<_> = (0..3)
        .map(|i| {
            let n = (page - 1) * 3 + i;
            json!({"id": format!("c{n}"), "name": format!("component {n}"),
                   "status": if n == 4 { "major_outage" } else { "operational" }})
        })
        .collect();
    let next = (page < 3).then(|| format!("/api/v2/components.json?page={}", page + 1));
    axum::Json(json!({"page": page, "components": components, "links": {"next": next}}))
        .into_response()
}

async fn live_items_of(store: &Store, item_type: &str) -> Vec<(String, String, String)> {
    let filter = ItemFilter {
        types: vec![item_type.to_string()],
        ..ItemFilter::default()
    };
    let page = store
        .list_items(&filter, &[], &PageRequest::first(100))
        .await
        .expect("list");
    let mut out: Vec<(String, String, String)> = page
        .into_rows()
        .into_iter()
        .map(|i| {
            (
                i.name.clone(),
                i.health.clone(),
                i.status.clone().unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

fn load(dir: &Path, text: &str) -> stratum_scrapers::LoadedScrapeConfig {
    load_str(&dir.join("config.yaml"), text)
        .expect("config loads")
        .remove(0)
}

async fn http_pages_then_each_fault_is_a_failed_run_that_deletes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mode = Arc::new(AtomicU8::new(OK));
    let app = axum::Router::new()
        .route("/api/v2/components.json", axum::routing::get(status_api))
        .with_state(mode.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    // The token comes from a file (env vars are process-wide, and tests run in parallel).
    std::fs::write(dir.path().join("token"), "s3cret\n").expect("token");
    let config = load(
        dir.path(),
        &format!(
            r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {{name: status, namespace: test}}
spec:
  retention: {{staleItemAge: 0s}}
  http:
    - url: http://{addr}/api/v2/components.json?page=1
      headers: {{Authorization: {{fromFile: token, prefix: "Bearer "}}, Accept: application/json}}
      items: $.components[*]
      next: $.links.next
      timeout: 500ms
      id: $.id
      type: StatusPage::Component
      name: $.name
  transform:
    health:
      - filter: type == "StatusPage::Component"
        expr: 'config.status == "operational" ? "healthy" : {{"health": "unhealthy", "status": config.status}}'
"#
        ),
    );
    let first = stratum_tests::scrape_succeeds(&db.store, &config).await;
    let components = live_items_of(&db.store, "StatusPage::Component").await;
    assert_eq!(components.len(), 9, "three pages of three: {components:?}");
    assert!(
        components.contains(&(
            "component 4".into(),
            "unhealthy".into(),
            "major_outage".into()
        )),
        "{components:?}"
    );
    // The stored spec shows no literal header value.
    let scraper = db
        .store
        .get_scraper(first.scraper_id)
        .await
        .expect("get")
        .expect("scraper");
    assert_eq!(scraper.spec["http"][0]["headers"]["Accept"], "***");
    assert_eq!(
        scraper.spec["http"][0]["headers"]["Authorization"]["fromFile"],
        "token"
    );

    for (fault, says) in [
        (FAIL_500, "HTTP 500"),
        (SLOW, "timed out"),
        (MALFORMED, "invalid JSON at line 1"),
    ] {
        mode.store(fault, Ordering::SeqCst);
        let run = run_scrape(&db.store, &config, &RunOptions::default())
            .await
            .expect("scrape");
        assert_ne!(run.status, RunStatus::Succeeded, "{says}");
        assert!(run.summary.deletions_blocked, "{says}");
        assert_eq!(run.summary.deleted, 0, "{says}");
        assert!(
            run.summary.errors.iter().any(|e| e.contains(says)),
            "{says}: {:?}",
            run.summary.errors
        );
        let runs = db.store.list_runs(first.scraper_id, 1).await.expect("runs");
        assert_ne!(
            runs[0].status, "succeeded",
            "{says}: the failure is recorded"
        );
        assert_eq!(
            live_items_of(&db.store, "StatusPage::Component")
                .await
                .len(),
            9,
            "{says}: nothing deleted"
        );
    }
    // A missing secret is a clear failed run too.
    std::fs::remove_file(dir.path().join("token")).expect("rm");
    mode.store(OK, Ordering::SeqCst);
    let run = run_scrape(&db.store, &config, &RunOptions::default())
        .await
        .expect("scrape");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.summary.errors[0].contains("header authorization"),
        "{:?}",
        run.summary.errors
    );
    assert_eq!(
        live_items_of(&db.store, "StatusPage::Component")
            .await
            .len(),
        9
    );
}

async fn sql_rows_become_items_on_postgres_and_sqlite(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    // A PostgreSQL source database and a SQLite one, whatever the catalog's backend.
    let pg = TestDb::new(Backend::Postgres).await;
    // Trust auth ignores the password; it must never show up anywhere.
    let pg_url = pg
        .url
        .replacen("postgres://postgres@", "postgres://postgres:hunter2@", 1);
    let sqlite_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("billing.db").display()
    );
    for url in [&pg_url, &sqlite_url] {
        let conn = Database::connect(url.as_str())
            .await
            .expect("connect source");
        conn.execute_unprepared(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, status TEXT, region TEXT); \
             INSERT INTO accounts VALUES (1, 'acme', 'active', 'eu'), (2, 'globex', 'suspended', 'us'), (3, 'initech', 'active', NULL);",
        )
        .await
        .expect("seed");
    }
    let config = load(
        dir.path(),
        &format!(
            r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {{name: billing, namespace: test}}
spec:
  retention: {{staleItemAge: 0s}}
  sql:
    - connection: "{pg_url}"
      query: SELECT id, name, status, region FROM accounts ORDER BY id
      type: Billing::Account
      id: {{expr: '"pg-" + string(config.id)'}}
      name: $.name
      status: $.status
      tags: {{region: $.region}}
    - connection: "{sqlite_url}"
      query: SELECT id, name, status FROM accounts WHERE status = 'active'
      type: Billing::LegacyAccount
      name: $.name
"#
        ),
    );
    stratum_tests::scrape_succeeds(&db.store, &config).await;
    let accounts = live_items_of(&db.store, "Billing::Account").await;
    assert_eq!(
        accounts,
        vec![
            (
                "acme".to_string(),
                "healthy".to_string(),
                "active".to_string()
            ),
            ("globex".into(), "unknown".into(), "suspended".into()),
            ("initech".into(), "healthy".into(), "active".into()),
        ]
    );
    let legacy = live_items_of(&db.store, "Billing::LegacyAccount").await;
    assert_eq!(
        legacy.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        ["acme", "initech"],
        "numeric ids work as ids"
    );

    // A bad query fails the run, with the database's message, and deletes nothing.
    let broken = load(
        dir.path(),
        &format!(
            "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {{name: billing, namespace: test}}\nspec:\n  retention: {{staleItemAge: 0s}}\n  sql:\n    - connection: \"{pg_url}\"\n      query: SELECT id, name FROM acounts\n      type: Billing::Account\n      name: $.name\n"
        ),
    );
    let run = run_scrape(&db.store, &broken, &RunOptions::default())
        .await
        .expect("scrape");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.summary.errors[0].contains("acounts"),
        "{:?}",
        run.summary.errors
    );
    assert!(
        !run.summary.errors[0].contains("hunter2"),
        "no credentials in errors: {:?}",
        run.summary.errors
    );
    let scraper = db
        .store
        .get_scraper(run.scraper_id)
        .await
        .expect("get")
        .expect("scraper");
    assert!(
        !scraper.spec.to_string().contains("hunter2"),
        "no credentials stored: {}",
        scraper.spec
    );
    assert_eq!(live_items_of(&db.store, "Billing::Account").await.len(), 3);
    // An unreachable database is a failed run too.
    let unreachable = load(
        dir.path(),
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: billing, namespace: test}\nspec:\n  sql:\n    - connection: \"postgres://nobody:pw@127.0.0.1:1/none\"\n      query: SELECT 1 AS id\n      timeout: 2s\n      type: Billing::Account\n      name: $.id\n",
    );
    let run = run_scrape(&db.store, &unreachable, &RunOptions::default())
        .await
        .expect("scrape");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        !run.summary.errors[0].contains(":pw@"),
        "{:?}",
        run.summary.errors
    );
    assert_eq!(live_items_of(&db.store, "Billing::Account").await.len(), 3);
}

/// A fresh database on the test MariaDB server
/// (`STRATUM_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`),
/// dropped at the end; a server that cannot be reached fails the test.
struct MysqlDb {
    admin: sea_orm::DatabaseConnection,
    name: String,
    url: String,
}

impl MysqlDb {
    async fn new() -> MysqlDb {
        let admin_url = std::env::var("STRATUM_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string());
        let admin = Database::connect(admin_url.as_str())
            .await
            .unwrap_or_else(|e| panic!("MariaDB is required for tests ({admin_url}): {e}"));
        let name = format!("stratum_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).expect("url");
        MysqlDb {
            admin,
            url: format!("{base}/{name}"),
            name,
        }
    }

    async fn drop_database(self) {
        let _ = self
            .admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {}", self.name))
            .await;
    }
}

async fn sql_rows_from_mysql_keep_their_types(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mysql = MysqlDb::new().await;
    let source = Database::connect(mysql.url.as_str())
        .await
        .expect("connect source");
    for sql in [
        "CREATE TABLE hosts (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, cost DECIMAL(10,2), \
         active BOOLEAN NOT NULL, seen DATETIME, meta JSON, note TEXT)",
        "INSERT INTO hosts VALUES \
         (1, 'db-1', 12.50, TRUE, '2026-11-30 10:00:00', '{\"rack\": \"r1\", \"u\": 4}', NULL), \
         (2, 'db-2', NULL, FALSE, NULL, NULL, 'spare')",
    ] {
        source.execute_unprepared(sql).await.expect("seed");
    }
    let _ = source.close().await;
    // The mariadb:// spelling is accepted as well.
    let url = mysql.url.replacen("mysql://", "mariadb://", 1);
    let config = load(
        dir.path(),
        &format!(
            r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {{name: hosts, namespace: test}}
spec:
  retention: {{staleItemAge: 0s}}
  sql:
    - connection: "{url}"
      query: SELECT id, name, cost, active, seen, meta, note FROM hosts ORDER BY id
      type: Inventory::Host
      id: {{expr: '"host-" + string(config.id)'}}
      name: $.name
      status: {{expr: 'config.active ? "active" : "idle"'}}
      tags: {{rack: $.meta.rack}}
"#
        ),
    );
    let report = stratum_tests::scrape_succeeds(&db.store, &config).await;
    let mut hosts = Vec::new();
    for ext in ["host-1", "host-2"] {
        let id = stratum_domain::ids::item_id(report.scraper_id, "Inventory::Host", ext);
        hosts.push(db.store.get_item(id).await.expect("get").expect("item"));
    }
    assert_eq!(hosts.len(), 2);
    assert_eq!(
        hosts[0].config,
        json!({
            "id": 1, "name": "db-1", "cost": "12.50", "active": true,
            "seen": "2026-11-30T10:00:00", "meta": {"rack": "r1", "u": 4}
        })
    );
    assert_eq!(hosts[0].status.as_deref(), Some("active"));
    assert_eq!(hosts[0].tags["rack"], json!("r1"));
    assert_eq!(hosts[1].config["active"], json!(false));
    assert_eq!(hosts[1].config["note"], json!("spare"));
    assert_eq!(hosts[1].status.as_deref(), Some("idle"));

    // A query against a missing table fails the run with MariaDB's message
    // and deletes nothing.
    let broken = load(
        dir.path(),
        &format!(
            "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {{name: hosts, namespace: test}}\nspec:\n  retention: {{staleItemAge: 0s}}\n  sql:\n    - connection: \"{url}\"\n      query: SELECT id, name FROM hostz\n      type: Inventory::Host\n      name: $.name\n"
        ),
    );
    let run = run_scrape(&db.store, &broken, &RunOptions::default())
        .await
        .expect("scrape");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.summary.errors[0].contains("hostz"),
        "{:?}",
        run.summary.errors
    );
    assert_eq!(live_items_of(&db.store, "Inventory::Host").await.len(), 2);
    mysql.drop_database().await;
}
