//! Black-box tests of the `stratum` binary on both backends: `scrape --once`
//! with bad input (a missing path, a malformed data file, an invalid CEL
//! expression), `check-config`, and `serve --demo` answering GraphQL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use stratum_domain::store::{ItemFilter, PageRequest};
use stratum_tests::{Backend, Server, TestDb, repo_root};

stratum_tests::on_both_backends!(
    bad_scrapes_fail_clearly_and_change_nothing,
    demo_serves_hundreds_of_items,
    migrate_applies_lists_and_rolls_back,
);

fn stratum(db: &TestDb, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(args)
        .current_dir(dir)
        .env("STRATUM_DATABASE_URL", &db.url)
        .env("STRATUM_LOG", "warn")
        .output()
        .expect("run stratum")
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn config(paths: &str, type_expr: &str) -> String {
    format!(
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata:\n  name: inventory\nspec:\n  retention: {{staleItemAge: 0s}}\n  file:\n    - paths: [{paths}]\n      items: $.services[*]\n      id: $.id\n      type: {{expr: '{type_expr}'}}\n      name: $.name\n"
    )
}

async fn snapshot(db: &TestDb) -> Vec<(uuid::Uuid, String, Option<chrono::DateTime<chrono::Utc>>)> {
    db.store
        .list_items(&ItemFilter::default(), &[], &PageRequest::first(100))
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|(_, m)| (m.id, m.config_hash, m.deleted_at))
        .collect()
}

async fn last_run_status(db: &TestDb) -> (String, Vec<String>) {
    let id = stratum_domain::ids::scraper_id("default", "inventory");
    let runs = db.store.list_runs(id, 1).await.expect("runs");
    let run = runs.first().expect("a run was recorded");
    (
        run.status.clone(),
        serde_json::from_value(run.errors.clone()).unwrap_or_default(),
    )
}

async fn bad_scrapes_fail_clearly_and_change_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let items: Vec<serde_json::Value> = (0..15)
        .map(|i| serde_json::json!({"id": format!("svc-{i}"), "kind": "Service", "name": format!("svc {i}")}))
        .collect();
    write(
        d,
        "data/services.json",
        &serde_json::json!({"services": items}).to_string(),
    );
    write(
        d,
        "good.yaml",
        &config("data/*.json", r#""Inventory::" + config.kind"#),
    );
    let out = stratum(&db, d, &["scrape", "--once", "good.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("15 created"));
    let before = snapshot(&db).await;
    assert_eq!(before.len(), 15);

    // A path that does not exist.
    write(
        d,
        "missing.yaml",
        &config("nowhere/services.json", r#""Inventory::" + config.kind"#),
    );
    let out = stratum(&db, d, &["scrape", "--once", "missing.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nowhere/services.json: no such file"),
        "{stderr}"
    );
    assert_eq!(last_run_status(&db).await.0, "failed");
    assert_eq!(snapshot(&db).await, before);

    // A malformed YAML data file.
    write(
        d,
        "broken/services.yaml",
        "services:\n  - {id: a, kind: Service\n",
    );
    write(
        d,
        "malformed.yaml",
        &config("broken/*.yaml", r#""Inventory::" + config.kind"#),
    );
    let out = stratum(&db, d, &["scrape", "--once", "malformed.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken/services.yaml:") && stderr.contains("invalid YAML"),
        "{stderr}"
    );
    let (status, errors) = last_run_status(&db).await;
    assert_eq!(status, "failed");
    assert!(
        errors.iter().any(|e| e.contains("broken/services.yaml")),
        "{errors:?}"
    );
    assert_eq!(snapshot(&db).await, before);

    // An invalid CEL expression: rejected at load with file:line:col.
    write(
        d,
        "bad-cel.yaml",
        &config("data/*.json", r#""Inventory::" + config.kind +"#),
    );
    let out = stratum(&db, d, &["scrape", "--once", "bad-cel.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad-cel.yaml:11:"), "{stderr}");
    assert!(stderr.contains("invalid CEL expression"), "{stderr}");
    let (status, errors) = last_run_status(&db).await;
    assert_eq!(status, "failed");
    assert!(
        errors.iter().any(|e| e.contains("bad-cel.yaml:11:")),
        "{errors:?}"
    );
    assert_eq!(snapshot(&db).await, before);

    // check-config reports the same diagnostic and exits 2; a good file passes.
    let out = stratum(&db, d, &["check-config", "bad-cel.yaml", "good.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("bad-cel.yaml:11:") && stdout.contains(": error: "),
        "{stdout}"
    );
    assert!(
        stratum(&db, d, &["check-config", "good.yaml"])
            .status
            .success()
    );

    // A directory is checked file by file, topologies included.
    let configs = d.join("configs");
    std::fs::create_dir(&configs).expect("mkdir");
    std::fs::copy(d.join("good.yaml"), configs.join("good.yaml")).expect("copy");
    std::fs::write(
        configs.join("topology.yaml"),
        concat!(
            "apiVersion: stratum.dev/v1\nkind: Topology\nmetadata: {name: loop}\nspec:\n  components:\n",
            "    - {name: A, type: Queue, selectors: [{types: [Queue]}]}\n",
            "    - {name: B, type: Queue, selectors: [{types: [Queue]}]}\n",
        ),
    )
    .expect("write");
    let out = stratum(&db, d, &["check-config", "configs"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("topology.yaml:6:") && stdout.contains("component selectors form a cycle"),
        "{stdout}"
    );
    std::fs::remove_file(configs.join("topology.yaml")).expect("rm");
    assert!(
        stratum(&db, d, &["check-config", "configs"])
            .status
            .success()
    );
}

async fn demo_serves_hundreds_of_items(backend: Backend) {
    let db = TestDb::new(backend).await;
    let work = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--demo-work-dir",
        ])
        .arg(work.path())
        .arg("--data-dir")
        .arg(work.path())
        .current_dir(repo_root())
        .env("STRATUM_DATABASE_URL", &db.url)
        .env("STRATUM_LOG", "info")
        .env("STRATUM_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.path().join("serve.log")).expect("log"))
        .spawn()
        .expect("start stratum serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        line
    })
    .await
    .expect("read address");
    let url = line
        .trim()
        .strip_prefix("stratum listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();

    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .post(&url)
        .json(&serde_json::json!({"query": "{ configItems(first: 5) { totalCount edges { node { id name type health } } } }"}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert!(body.get("errors").is_none(), "{body}");
    let total = body
        .pointer("/data/configItems/totalCount")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    assert!((200..1000).contains(&total), "total {total} in {body}");
    assert_eq!(
        body.pointer("/data/configItems/edges")
            .and_then(|e| e.as_array())
            .map(Vec::len),
        Some(5)
    );

    // The demo has real diff changes and unhealthy items.
    let body: serde_json::Value = client
        .post(&url)
        .json(&serde_json::json!({"query": "{ configItems(first: 100, filter: {health: [UNHEALTHY]}) { totalCount nodes { name changes(first: 5) { nodes { changeType } } } } }"}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let unhealthy = body
        .pointer("/data/configItems/totalCount")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    assert!(unhealthy >= 3, "{body}");
    let diffs = db.store.count_changes(None).await.expect("count");
    assert!(diffs > 0);

    // Mutations over GET are refused; browsers get GraphiQL.
    let get = client
        .get(&url)
        .query(&[("query", "mutation { x }")])
        .send()
        .await
        .expect("get");
    assert_eq!(get.status().as_u16(), 405);
    let page = client
        .get(&url)
        .header("Accept", "text/html")
        .send()
        .await
        .expect("graphiql");
    assert!(page.text().await.unwrap_or_default().contains("graphiql"));

    // Authentication is on: the first start generated a signing key
    // (0600), logged where it is and how to mint a token, never the key.
    // Anonymous demo callers are viewers; a minted admin token may mutate.
    let key_file = work.path().join("stratum.key");
    let key = std::fs::read_to_string(&key_file).expect("generated key");
    assert_eq!(key.len(), 64, "32 random bytes, hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let log = std::fs::read_to_string(work.path().join("serve.log")).expect("log");
    assert!(
        log.contains("stratum.key") && log.contains("stratum token"),
        "{log}"
    );
    assert!(log.contains("anonymous viewer access"), "{log}");
    assert!(!log.contains(key.trim()), "the key is never logged");
    let mutation = serde_json::json!({"query": "mutation { resolveInsight(id: \"SW5zaWdodDowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDE\") { id } }"});
    let code = |body: serde_json::Value| body["errors"][0]["extensions"]["code"].clone();
    let anonymous: serde_json::Value = client
        .post(&url)
        .json(&mutation)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(code(anonymous), "FORBIDDEN");
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["token", "--subject", "me", "--role", "admin", "--data-dir"])
        .arg(work.path())
        .env("STRATUM_DATABASE_URL", &db.url)
        .output()
        .expect("token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let admin: serde_json::Value = client
        .post(&url)
        .bearer_auth(&token)
        .json(&mutation)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(code(admin), "NOT_FOUND", "an admin gets past the guard");
    drop(server);
}

async fn migrate_applies_lists_and_rolls_back(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let status = |db: &TestDb| {
        String::from_utf8_lossy(&stratum(db, dir.path(), &["migrate", "status"]).stdout).to_string()
    };
    let lines = |db: &TestDb| -> Vec<String> { status(db).lines().map(str::to_string).collect() };
    assert_eq!(
        lines(&db),
        [
            "applied m20261124_000001_catalog",
            "applied m20261201_000001_read_indexes",
            "applied m20261202_000001_insight_lifecycle_costs",
            "applied m20261203_000001_api_tokens",
            "applied m20261204_000001_scraper_owners"
        ]
    );
    let out = stratum(&db, dir.path(), &["migrate", "down", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines(&db),
        [
            "applied m20261124_000001_catalog",
            "applied m20261201_000001_read_indexes",
            "applied m20261202_000001_insight_lifecycle_costs",
            "pending m20261203_000001_api_tokens",
            "pending m20261204_000001_scraper_owners"
        ]
    );
    let out = stratum(&db, dir.path(), &["migrate", "down", "3"]);
    assert!(out.status.success());
    assert!(
        lines(&db).iter().all(|l| l.starts_with("pending")),
        "{}",
        status(&db)
    );
    let out = stratum(&db, dir.path(), &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status(&db).starts_with("applied"));
    // A bad URL is a clear error, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["migrate", "--database-url", "mysql://nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("sqlite://… or postgres://…"), "{stderr}");
}

/// `stratum health FILE…` prints one verdict per object, reports each bad
/// file or object with where it is, and still prints the rest.
#[test]
fn health_prints_a_verdict_per_object_and_reports_bad_input() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("objects.yaml");
    std::fs::write(
        &good,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: api-1, namespace: payments}\n\
         status:\n  phase: Running\n  startTime: '2020-01-01T00:00:00Z'\n  conditions: [{type: Ready, status: 'True'}]\n\
         ---\nkind: List\nitems:\n- {apiVersion: argoproj.io/v1alpha1, kind: Application, metadata: {name: shop}, \
         status: {health: {status: Degraded}, sync: {status: OutOfSync}}}\n---\nmetadata: {name: no-kind}\n",
    )
    .expect("write");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"kind\": \"Pod\",\n  bad").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("health")
        .arg(&good)
        .arg(&broken)
        .output()
        .expect("run stratum health");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad object or file fails the run"
    );
    let verdicts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert_eq!(verdicts[0]["object"], "Pod/payments/api-1");
    assert_eq!(
        (
            &verdicts[0]["health"],
            &verdicts[0]["status"],
            &verdicts[0]["ready"]
        ),
        (
            &serde_json::json!("healthy"),
            &serde_json::json!("Running"),
            &serde_json::json!(true)
        )
    );
    assert_eq!(verdicts[1]["object"], "Application/shop");
    assert_eq!(verdicts[1]["health"], "unhealthy");
    assert_eq!(verdicts[1]["status"], "Degraded/OutOfSync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("objects.yaml: error: object 3: the object has no kind"),
        "{stderr}"
    );
    // A ScrapeConfig's overrides apply on top of the built-in rules; a bad
    // one is a configuration error (exit 2) with its line.
    let config = dir.path().join("rules.yaml");
    std::fs::write(
        &config,
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: rules}\nspec:\n  transform:\n    health:\n\
         \x20     - filter: type == 'Kubernetes::Pod' && item.namespace == 'payments'\n        expr: \"{'health': 'warning', 'status': 'Overridden'}\"\n",
    )
    .expect("write");
    let with_rules = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["health", "--scrape-config"])
        .arg(&config)
        .arg(&good)
        .output()
        .expect("run stratum health");
    let first: serde_json::Value = String::from_utf8_lossy(&with_rules.stdout)
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("a verdict");
    assert_eq!(
        (&first["health"], &first["status"]),
        (
            &serde_json::json!("warning"),
            &serde_json::json!("Overridden")
        )
    );
    std::fs::write(
        &config,
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: rules}\nspec:\n  transform:\n    health:\n      - expr: \"'warning' +\"\n",
    )
    .expect("write");
    let bad_rules = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["health", "--scrape-config"])
        .arg(&config)
        .arg(&good)
        .output()
        .expect("run stratum health");
    assert_eq!(bad_rules.status.code(), Some(2));
    let said = String::from_utf8_lossy(&bad_rules.stderr);
    assert!(
        said.contains("rules.yaml:7:") && said.contains("transform.health[0].expr"),
        "{said}"
    );
    // A syntax error names the file and the line:column where parsing stopped.
    let at = stderr.split("broken.json:").nth(1).unwrap_or_default();
    assert!(
        at.chars().next().is_some_and(|c| c.is_ascii_digit()) && at.contains(':'),
        "{stderr}"
    );
}

/// `serve` refuses anonymous access off loopback and keys it cannot use,
/// naming the problem (and never the key).
#[test]
fn serve_refuses_unsafe_or_broken_authentication() {
    let dir = tempfile::tempdir().expect("tmp");
    let short = dir.path().join("short");
    std::fs::write(&short, "too-short-a-secret").expect("write");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let cases: [(&[&str], &str); 3] = [
        (
            &["--listen", "0.0.0.0:0", "--anonymous"],
            "only allowed on a loopback address",
        ),
        (
            &[
                "--auth-hs256-secret-file",
                short.to_str().unwrap_or_default(),
            ],
            "at least 32 are required",
        ),
        (
            &["--auth-public-key", &format!("k1={}", not_pem.display())],
            "neither an RSA nor a P-256 public key",
        ),
    ];
    for (args, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
            .args(["serve", "--database-url", &db])
            .args(args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("too-short-a-secret"),
            "the secret is never printed"
        );
    }
}

/// The configuration file (SPEC §14): an unknown field or a bad value is
/// refused at start-up (and by `check-config`) naming its path; a good
/// file configures `serve`, a `STRATUM_<SECTION>__<FIELD>` variable
/// overrides it, and a flag overrides both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_is_checked_then_layered_under_env_and_flags() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let bad = [
        (
            "limits: {maxDepht: 3}\n",
            "limits.maxDepht: unknown field `maxDepht`",
        ),
        (
            "server: {shutdownGrace: forever}\n",
            "server.shutdownGrace: \"forever\" is not a duration",
        ),
        (
            "limits: {rateBurst: -1}\n",
            "limits.rateBurst: invalid value",
        ),
    ];
    for (text, expected) in bad {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, text).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
            .args(["serve", "--database-url", &url, "--config"])
            .arg(&path)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains("bad.yaml"),
            "{text}: {stderr}"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_ne!(out.status.code(), Some(0), "{text}: {stdout}");
        assert!(stdout.contains(expected), "check-config {text}: {stdout}");
    }

    let path = dir.path().join("stratum.yaml");
    std::fs::write(
        &path,
        format!(
            "server: {{listen: \"127.0.0.1:0\", dataDir: {dir:?}}}\ndatabase: {{url: {url:?}}}\n\
             auth: {{anonymous: {{enabled: true, role: viewer}}}}\nlimits: {{maxDepth: 3}}\n",
            dir = dir.path().display().to_string()
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A query five levels deep: refused at depth 3 (file) and 4 (env),
    // answered at 10 (flag).
    let deep = serde_json::json!({"query": "{ configItems(first: 1) { nodes { parent { parent { parent { name } } } } } }"});
    for (env, flag, refused) in [
        (None, None, true),
        (Some("4"), None, true),
        (Some("4"), Some("10"), false),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stratum"));
        command.args(["serve", "--config"]).arg(&path);
        if let Some(flag) = flag {
            command.args(["--max-depth", flag]);
        }
        if let Some(env) = env {
            command.env("STRATUM_LIMITS__MAX_DEPTH", env);
        }
        let mut child = command
            .env_remove("STRATUM_DATABASE_URL")
            .env("STRATUM_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve");
        let addr = stratum_tests::listening_addr(&mut child).expect("serve starts");
        let _server = Server(child);
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .json(&deep)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        let message = body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            message.contains("levels deep"),
            refused,
            "env {env:?}, flag {flag:?}: {body}"
        );
        if refused {
            let limit = if env.is_some() { "4" } else { "3" };
            assert!(
                message.ends_with(&format!("the limit is {limit}")),
                "{message}"
            );
        }
    }
}
