//! Two `stratum serve` processes on one PostgreSQL database with the same
//! ScrapeConfigs (SPEC §2 (b)): each config is scraped by exactly one of
//! them at a time, and when that one is killed the other takes over within
//! one schedule period.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stratum_tests::{Backend, Server, TestDb};

fn start(db: &TestDb, configs: &Path, log: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ownership-interval",
            "300ms",
            "--scrape-config",
        ])
        .arg(configs)
        .args(stratum_tests::open_serve_flags(
            log.parent().expect("the log's directory"),
            "admin",
        ))
        .env("STRATUM_DATABASE_URL", &db.url)
        .env("STRATUM_LOG", "stratum_scrapers=info,warn")
        .env("STRATUM_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start stratum serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    assert!(
        line.starts_with("stratum listening on "),
        "unexpected first line: {line:?}"
    );
    Server(child)
}

/// `(scraper, unix millis)` of every finished scrape in a log.
fn finished(log: &Path) -> Vec<(String, i64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v.pointer("/fields/message").and_then(|m| m.as_str()) == Some("scrape finished")
        })
        .filter_map(|v| {
            let scraper = v.pointer("/fields/scraper")?.as_str()?.to_string();
            let at = chrono::DateTime::parse_from_rfc3339(v.get("timestamp")?.as_str()?).ok()?;
            Some((scraper, at.timestamp_millis()))
        })
        .collect()
}

fn runs_of(runs: &[(String, i64)], scraper: &str) -> usize {
    runs.iter().filter(|(s, _)| s == scraper).count()
}

#[tokio::test]
async fn each_config_has_one_owner_and_a_killed_owner_is_replaced() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("tmp");
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(configs.join("data")).expect("mkdir");
    std::fs::write(
        configs.join("data/items.json"),
        r#"{"items": [{"id": "a", "name": "a"}, {"id": "b", "name": "b"}]}"#,
    )
    .expect("data");
    for name in ["alpha", "beta"] {
        std::fs::write(
            configs.join(format!("{name}.yaml")),
            format!(
                "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  schedule: \"@every 2s\"\n  file:\n    - paths: [data/items.json]\n      items: $.items[*]\n      type: Test::{name}\n"
            ),
        )
        .expect("config");
    }
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = start(&db, &configs, &log_a);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = start(&db, &configs, &log_b);
    tokio::time::sleep(Duration::from_secs(5)).await;

    let (runs_a, runs_b) = (finished(&log_a), finished(&log_b));
    for scraper in ["alpha", "beta"] {
        let (on_a, on_b) = (runs_of(&runs_a, scraper), runs_of(&runs_b, scraper));
        assert!(
            on_a > 0 && on_b == 0,
            "{scraper}: {on_a} runs on A, {on_b} on B (one owner expected)"
        );
    }
    // The database agrees: no two runs of one scraper overlap.
    for scraper in ["alpha", "beta"] {
        let id = stratum_domain::ids::scraper_id("test", scraper);
        let mut runs = db.store.list_runs(id, 100).await.expect("runs");
        runs.sort_by_key(|r| r.started_at);
        for pair in runs.windows(2) {
            let ended = pair[0].finished_at.expect("finished");
            assert!(
                pair[1].started_at >= ended,
                "{scraper}: runs overlap: {pair:?}"
            );
        }
    }

    // Kill the owner without a chance to clean up: its locks die with its connection.
    a.0.kill().expect("kill");
    let _ = a.0.wait();
    let killed = chrono::Utc::now().timestamp_millis();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after: Vec<(String, i64)> = finished(&log_b)
            .into_iter()
            .filter(|(_, t)| *t > killed)
            .collect();
        if runs_of(&after, "alpha") > 0 && runs_of(&after, "beta") > 0 {
            for scraper in ["alpha", "beta"] {
                let first = after
                    .iter()
                    .filter(|(s, _)| s == scraper)
                    .map(|(_, t)| *t)
                    .min()
                    .unwrap_or(i64::MAX);
                assert!(
                    first - killed <= 2_000,
                    "{scraper} taken over {} ms after the kill (schedule: 2 s)",
                    first - killed
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never took over: {:?}",
            finished(&log_b)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(b);
}
