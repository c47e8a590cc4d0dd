//! ScrapeConfig and Topology resources applied live (SPEC §10, §14, issue
//! #8), against the fake Kubernetes API server: `stratum serve
//! --watch-crds` starts a resource's scraper and writes its status; a new
//! generation that does not load is reported `invalid` with the loader's
//! errors and keeps the last good one running; a fixed one runs again; a
//! deleted one stops; a Topology resource is applied and says so.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stratum_tests::fake_kube::FakeCluster;
use stratum_tests::{Backend, Server, TestDb};

fn scrape_config(manifests: &Path, schedule: &str, tags: Value) -> Value {
    json!({
        "apiVersion": "stratum.dev/v1", "kind": "ScrapeConfig",
        "metadata": {"name": "files", "namespace": "platform", "uid": "7d1e9a44-0000-4000-8000-000000000001"},
        "spec": {
            "schedule": schedule,
            "file": [{"paths": [format!("{}/*.yaml", manifests.display())], "items": "$.items[*]", "tags": tags}],
            "sparkles": true
        }
    })
}

/// Waits until the resource's status satisfies `done`; returns it.
async fn status_until(
    cluster: &FakeCluster,
    kind: &str,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster
            .get("stratum.dev/v1", kind, Some("platform"), name)
            .and_then(|o| o.get("status").cloned())
            .unwrap_or(Value::Null);
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} {name}: status stayed {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn query(addr: std::net::SocketAddr, q: &str) -> Value {
    reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .json(&json!({"query": q}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_start_scrapers_and_carry_their_status() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).expect("dir");
    std::fs::write(
        manifests.join("shop.yaml"),
        stratum_tests::pod_manifest(true),
    )
    .expect("manifest");
    let version = json!({"major": "1", "minor": "31", "gitVersion": "v1.31.4"});
    let cluster = FakeCluster::start(
        version,
        vec![scrape_config(
            &manifests,
            "@every 1h",
            json!({"env": "test"}),
        )],
    )
    .await
    .expect("fake cluster");
    let kubeconfig = cluster
        .write_kubeconfig(dir.path(), "crds")
        .expect("kubeconfig");
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["serve", "--listen", "127.0.0.1:0", "--watch-crds"])
        .args(stratum_tests::open_serve_flags(dir.path(), "admin"))
        .env("STRATUM_DATABASE_URL", &db.url)
        .env("KUBECONFIG", &kubeconfig)
        .env("STRATUM_LOG", "stratum_scrapers=info,warn")
        .env("STRATUM_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve");
    let addr = stratum_tests::listening_addr(&mut child).expect("serve starts");
    let _server = Server(child);

    // The resource that was there at start-up runs at once.
    let status = status_until(&cluster, "ScrapeConfig", "files", |s| {
        s["lastStatus"] == "succeeded"
    })
    .await;
    assert_eq!(status["items"], 2, "a namespace and a pod: {status}");
    assert_eq!(status["observedGeneration"], 1);
    assert!(status["lastRunAt"].is_string());
    assert!(
        status["warnings"].to_string().contains("sparkles"),
        "unsupported fields are named: {status}"
    );
    let body = query(
        addr,
        "{ configItems(search: \"tags.env=test\") { totalCount } }",
    )
    .await;
    assert_eq!(body["data"]["configItems"]["totalCount"], 2, "{body}");

    // A generation that does not load: invalid, with the loader's message.
    cluster
        .apply(scrape_config(
            &manifests,
            "whenever",
            json!({"env": "test"}),
        ))
        .expect("apply");
    let status = status_until(&cluster, "ScrapeConfig", "files", |s| {
        s["observedGeneration"] == 2
    })
    .await;
    assert_eq!(status["lastStatus"], "invalid", "{status}");
    assert!(
        status["errors"].to_string().contains("whenever"),
        "the error names the bad schedule: {status}"
    );

    // Fixed: it runs again with the new spec.
    cluster
        .apply(scrape_config(
            &manifests,
            "@every 1h",
            json!({"env": "prod"}),
        ))
        .expect("apply");
    let status = status_until(&cluster, "ScrapeConfig", "files", |s| {
        s["observedGeneration"] == 3 && s["lastStatus"] == "succeeded"
    })
    .await;
    assert_eq!(status["errors"], json!([]), "{status}");
    let body = query(
        addr,
        "{ configItems(search: \"tags.env=prod\") { totalCount } }",
    )
    .await;
    assert_eq!(body["data"]["configItems"]["totalCount"], 2, "{body}");

    // A Topology resource over the scraped pods.
    cluster
        .apply(json!({
            "apiVersion": "stratum.dev/v1", "kind": "Topology",
            "metadata": {"name": "shop", "namespace": "platform"},
            "spec": {"schedule": "@every 1h", "components": [
                {"name": "Web", "type": "Service", "configs": [{"types": ["Kubernetes::Pod"]}]}
            ]}
        }))
        .expect("apply topology");
    let status = status_until(&cluster, "Topology", "shop", |s| !s.is_null()).await;
    assert_eq!(status["lastStatus"], "applied", "{status}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = query(
            addr,
            "{ components(first: 10) { totalCount nodes { name } } }",
        )
        .await;
        if body["data"]["components"]["totalCount"] == 1 {
            assert_eq!(body["data"]["components"]["nodes"][0]["name"], "Web");
            break;
        }
        assert!(Instant::now() < deadline, "no component: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleted: its scraper stops.
    cluster
        .delete("stratum.dev/v1", "ScrapeConfig", Some("platform"), "files")
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("ScrapeConfig resource deleted; its scraper stopped") {
            break;
        }
        assert!(Instant::now() < deadline, "no stop in the log:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
