//! The Kubernetes scraper through the real kube client against the fake API
//! server (`stratum_tests::fake_kube`) serving recorded cluster JSON, on
//! both backends: items, hierarchy, relationships, health and events from a
//! paged list; a 500 mid-list that deletes nothing; and a watch that turns
//! MODIFIED into diffs, DELETED into deletions, events into counted
//! changes, and survives `410 Gone` by relisting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use stratum_domain::{RunStatus, Store};
use stratum_scrapers::{LoadedScrapeConfig, RunOptions, load_str, run_scrape};
use stratum_tests::fake_kube::FakeCluster;
use stratum_tests::{Backend, TestDb, repo_root};
use uuid::Uuid;

stratum_tests::on_both_backends!(
    a_paged_list_builds_the_cluster_graph,
    a_failed_list_page_deletes_nothing,
    change_rules_rename_copy_up_and_drop_event_changes,
    the_watch_applies_changes_deletes_and_events_and_relists_on_gone,
    relationship_lookups_link_objects_by_kind_name_and_namespace
);

const KINDS: &str = "[Namespace, Node, Pod, Deployment, ReplicaSet, StatefulSet, Job, Service, Ingress, \
                     PersistentVolume, PersistentVolumeClaim, ConfigMap, cert-manager.io/Certificate]";

async fn cluster() -> FakeCluster {
    let (version, objects) =
        FakeCluster::load_fixtures(&repo_root().join("tests/fixtures/kubernetes"))
            .expect("fixtures");
    FakeCluster::start(version, objects)
        .await
        .expect("fake API server")
}

fn config(dir: &Path, fake: &FakeCluster, extra: &str) -> LoadedScrapeConfig {
    let kubeconfig = fake.write_kubeconfig(dir, "prod").expect("kubeconfig");
    let text = format!(
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {{name: prod, namespace: platform}}\nspec:\n  retention: {{staleItemAge: 0s}}\n  kubernetes:\n    - clusterName: prod-eu1\n      kubeconfig: {}\n      pageSize: 2\n      kinds: {{include: {KINDS}}}\n      exclusions: {{names: [kube-root-ca.crt]}}\n      events: {{exclude: {{reasons: [Pulling]}}}}\n{extra}",
        kubeconfig.display()
    );
    let mut configs = load_str(&dir.join("prod.yaml"), &text).expect("config loads");
    configs.remove(0)
}

/// `(type, name)` → `(id, parent_id, health, status, tags, config)` of live items.
type Items = BTreeMap<(String, String), (Uuid, Option<Uuid>, String, Option<String>, Value, Value)>;

async fn items(store: &Store) -> Items {
    let rows = store
        .connection()
        .query_all_raw(Statement::from_string(
            store.backend(),
            "SELECT id, type, name, parent_id, health, status, tags, config FROM config_items WHERE deleted_at IS NULL",
        ))
        .await
        .expect("items");
    let json = |r: &sea_orm::QueryResult, c: &str| -> Value {
        r.try_get::<Value>("", c)
            .or_else(|_| {
                r.try_get::<String>("", c)
                    .map(|s| serde_json::from_str(&s).unwrap_or(Value::Null))
            })
            .unwrap_or(Value::Null)
    };
    rows.iter()
        .map(|r| {
            (
                (
                    r.try_get("", "type").expect("type"),
                    r.try_get("", "name").expect("name"),
                ),
                (
                    r.try_get("", "id").expect("id"),
                    r.try_get("", "parent_id").expect("parent"),
                    r.try_get("", "health").expect("health"),
                    r.try_get("", "status").expect("status"),
                    json(r, "tags"),
                    json(r, "config"),
                ),
            )
        })
        .collect()
}

async fn edges(store: &Store) -> BTreeSet<(Uuid, Uuid, String)> {
    let rows = store
        .connection()
        .query_all_raw(Statement::from_string(
            store.backend(),
            "SELECT from_id, to_id, relation FROM config_relationships WHERE deleted_at IS NULL",
        ))
        .await
        .expect("edges");
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "from_id").expect("from"),
                r.try_get("", "to_id").expect("to"),
                r.try_get("", "relation").expect("relation"),
            )
        })
        .collect()
}

/// `(change_type, severity, count, source, external id)` of an item's changes.
async fn changes_of(store: &Store, id: Uuid) -> Vec<(String, String, i64, String, Option<String>)> {
    let rows = store
        .connection()
        .query_all_raw(Statement::from_sql_and_values(
            store.backend(),
            match store.backend() {
                sea_orm::DbBackend::Postgres => {
                    "SELECT change_type, severity, count, source, external_change_id FROM config_changes WHERE config_id = $1 ORDER BY seq"
                }
                _ => "SELECT change_type, severity, count, source, external_change_id FROM config_changes WHERE config_id = ? ORDER BY seq",
            },
            [id.into()],
        ))
        .await
        .expect("changes");
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "change_type").expect("type"),
                r.try_get("", "severity").expect("severity"),
                r.try_get("", "count").expect("count"),
                r.try_get("", "source").expect("source"),
                r.try_get("", "external_change_id").expect("ext"),
            )
        })
        .collect()
}

fn get<'a>(
    items: &'a Items,
    kind: &str,
    name: &str,
) -> &'a (Uuid, Option<Uuid>, String, Option<String>, Value, Value) {
    items
        .get(&(format!("Kubernetes::{kind}"), name.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "no {kind} {name}; have {:?}",
                items.keys().collect::<Vec<_>>()
            )
        })
}

const NODE_A: &str = "ip-10-0-1-11.eu-west-1.compute.internal";
const NODE_B: &str = "ip-10-0-1-12.eu-west-1.compute.internal";
const CRASHING: &str = "api-7d9f8b6c5-w2m4x";
const RUNNING: &str = "api-7d9f8b6c5-q8kzt";

async fn a_paged_list_builds_the_cluster_graph(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let fake = cluster().await;
    let config = config(dir.path(), &fake, "");
    let report = stratum_tests::scrape_succeeds(&db.store, &config).await;
    assert!(
        report
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("1 event(s) about objects not in the catalog")),
        "the event of a pod long gone is counted and dropped: {:?}",
        report.summary.warnings
    );
    // Lists were paged: pods (6) took three pages of two.
    let pod_lists: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("/api/v1/pods?"))
        .collect();
    assert_eq!(pod_lists.len(), 3, "{pod_lists:?}");
    assert!(
        pod_lists[1].contains("continue=offset-2-rv-"),
        "{pod_lists:?}"
    );

    let items = items(&db.store).await;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, _) in items.keys() {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let want: BTreeMap<&str, usize> = [
        ("Kubernetes::Certificate", 1),
        ("Kubernetes::Cluster", 1),
        ("Kubernetes::ConfigMap", 1),
        ("Kubernetes::Deployment", 1),
        ("Kubernetes::Ingress", 1),
        ("Kubernetes::Job", 1),
        ("Kubernetes::Namespace", 2),
        ("Kubernetes::Node", 2),
        ("Kubernetes::PersistentVolume", 1),
        ("Kubernetes::PersistentVolumeClaim", 1),
        ("Kubernetes::Pod", 6),
        ("Kubernetes::ReplicaSet", 1),
        ("Kubernetes::Service", 2),
        ("Kubernetes::StatefulSet", 1),
    ]
    .into();
    assert_eq!(
        counts, want,
        "EndpointSlices are not stored; kube-root-ca.crt is excluded"
    );

    // Cluster → Namespace → Deployment → ReplicaSet → Pod; cluster-scoped under the cluster.
    let cluster = get(&items, "Cluster", "prod-eu1");
    assert_eq!(
        (cluster.2.as_str(), cluster.3.as_deref()),
        ("healthy", Some("Reachable"))
    );
    assert_eq!(cluster.5["version"]["gitVersion"], "v1.31.4");
    let payments = get(&items, "Namespace", "payments");
    let deployment = get(&items, "Deployment", "api");
    let replicaset = get(&items, "ReplicaSet", "api-7d9f8b6c5");
    let running = get(&items, "Pod", RUNNING);
    let crashing = get(&items, "Pod", CRASHING);
    assert_eq!(payments.1, Some(cluster.0));
    assert_eq!(get(&items, "Node", NODE_A).1, Some(cluster.0));
    let volume = items
        .iter()
        .find(|((t, _), _)| t == "Kubernetes::PersistentVolume")
        .map(|(_, v)| v);
    assert_eq!(volume.and_then(|v| v.1), Some(cluster.0));
    assert_eq!(deployment.1, Some(payments.0));
    assert_eq!(replicaset.1, Some(deployment.0));
    assert_eq!(
        (running.1, crashing.1),
        (Some(replicaset.0), Some(replicaset.0))
    );
    assert_eq!(
        get(&items, "Pod", "db-0").1,
        Some(get(&items, "StatefulSet", "db").0)
    );
    assert_eq!(
        get(&items, "Pod", "migrate-20261130-7xk2n").1,
        Some(get(&items, "Job", "migrate-20261130").0)
    );
    assert_eq!(
        get(&items, "Certificate", "api-tls").1,
        Some(get(&items, "Ingress", "api").0)
    );
    // Items carry their uid as id, cluster and namespace tags, and no managedFields.
    assert_eq!(
        running.4,
        json!({"cluster": "prod-eu1", "namespace": "payments"})
    );
    assert!(running.5.pointer("/metadata/managedFields").is_none());
    assert_eq!(
        running.5["kind"], "Pod",
        "a listed object gets back the kind its list left out"
    );

    // Health of each state.
    for (kind, name, health, status) in [
        ("Pod", RUNNING, "healthy", "Running"),
        ("Pod", CRASHING, "unhealthy", "CrashLoopBackOff"),
        ("Pod", "reporter", "unhealthy", "ImagePullBackOff"),
        (
            "Pod",
            "worker-5c6d7e8f9-abcde",
            "unhealthy",
            "Unschedulable",
        ),
        ("Pod", "migrate-20261130-7xk2n", "healthy", "Completed"),
        ("Node", NODE_A, "healthy", "Ready"),
        ("Node", NODE_B, "unhealthy", "NotReady"),
        ("Job", "migrate-20261130", "healthy", "Completed"),
        ("PersistentVolumeClaim", "data-db-0", "healthy", "Bound"),
        ("Certificate", "api-tls", "healthy", "Issued"),
    ] {
        let item = get(&items, kind, name);
        assert_eq!(
            (item.2.as_str(), item.3.as_deref()),
            (health, Some(status)),
            "{kind} {name}"
        );
    }

    // Relationships of SPEC §4.
    let edges = edges(&db.store).await;
    let has =
        |from: Uuid, to: Uuid, relation: &str| edges.contains(&(from, to, relation.to_string()));
    let api_service = get(&items, "Service", "api").0;
    assert!(
        has(api_service, running.0, "ServicePod") && has(api_service, crashing.0, "ServicePod"),
        "from the EndpointSlice"
    );
    let worker_pod = get(&items, "Pod", "worker-5c6d7e8f9-abcde").0;
    assert!(
        has(get(&items, "Service", "worker").0, worker_pod, "ServicePod"),
        "the selector fallback"
    );
    assert!(has(
        get(&items, "Ingress", "api").0,
        api_service,
        "IngressService"
    ));
    assert!(has(get(&items, "Node", NODE_A).0, running.0, "NodePod"));
    let pvc = get(&items, "PersistentVolumeClaim", "data-db-0").0;
    assert!(has(
        get(&items, "Pod", "db-0").0,
        pvc,
        "PodPersistentVolumeClaim"
    ));
    assert!(
        edges
            .iter()
            .any(|(f, _, r)| *f == pvc && r == "PersistentVolumeClaimPersistentVolume")
    );
    assert!(
        has(replicaset.0, running.0, "ReplicaSetPod"),
        "the hard edge mirrors the parent"
    );

    // Events as changes: reason → type, the event's count, the severity table; Pulling excluded.
    let crash_changes = changes_of(&db.store, crashing.0).await;
    let backoff = crash_changes
        .iter()
        .find(|c| c.0 == "BackOff")
        .expect("BackOff change");
    assert_eq!(
        (backoff.1.as_str(), backoff.2, backoff.3.as_str()),
        ("high", 12, "kubelet")
    );
    assert!(
        backoff.4.is_some(),
        "the event uid is the external change id"
    );
    let pending = changes_of(&db.store, worker_pod).await;
    assert!(
        pending
            .iter()
            .any(|c| c.0 == "FailedScheduling" && c.1 == "high" && c.2 == 5),
        "{pending:?}"
    );
    assert!(
        changes_of(&db.store, deployment.0)
            .await
            .iter()
            .any(|c| c.0 == "ScalingReplicaSet" && c.1 == "low")
    );
    let reporter = changes_of(&db.store, get(&items, "Pod", "reporter").0).await;
    assert!(
        !reporter.iter().any(|c| c.0 == "Pulling"),
        "excluded reason: {reporter:?}"
    );

    // A replay changes nothing: same items, no new changes, events not duplicated.
    let again = stratum_tests::scrape_succeeds(&db.store, &config).await;
    assert_eq!(
        (
            again.summary.created,
            again.summary.updated,
            again.summary.changes
        ),
        (0, 0, 0),
        "{:?}",
        again.summary
    );
    assert_eq!(changes_of(&db.store, crashing.0).await, crash_changes);
}

async fn a_failed_list_page_deletes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let fake = cluster().await;
    let config = config(dir.path(), &fake, "");
    stratum_tests::scrape_succeeds(&db.store, &config).await;
    let before = items(&db.store).await;
    // The second page of pods fails; the pods on it (and after it) go unseen.
    fake.fail_list_page("pods", 1, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let failed = run_scrape(&db.store, &config, &RunOptions::default())
        .await
        .expect("scrape");
    assert_eq!(failed.status, RunStatus::Partial, "{:?}", failed.summary);
    assert!(failed.summary.deletions_blocked);
    assert!(
        failed
            .summary
            .errors
            .iter()
            .any(|e| e.contains("list pods") && e.contains("etcdserver")),
        "{:?}",
        failed.summary.errors
    );
    assert_eq!(failed.summary.deleted, 0);
    assert_eq!(
        items(&db.store).await.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "nothing deleted"
    );
    // The next good run has nothing to repair and records no duplicate changes.
    let crashing = get(&before, "Pod", CRASHING).0;
    let changes = changes_of(&db.store, crashing).await;
    let good = run_scrape(&db.store, &config, &RunOptions::default())
        .await
        .expect("scrape");
    assert_eq!(
        (good.status, good.summary.deleted),
        (RunStatus::Succeeded, 0),
        "{:?}",
        good.summary
    );
    assert_eq!(changes_of(&db.store, crashing).await, changes);

    // An unreachable cluster: a failed run that deletes nothing, and a
    // cluster item that says why.
    let dead = dir.path().join("kubeconfig-dead");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: dead\n  context: {cluster: dead, user: u}\ncurrent-context: dead\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .expect("kubeconfig");
    let text = format!(
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {{name: prod, namespace: platform}}\nspec:\n  kubernetes:\n    - clusterName: prod-eu1\n      kubeconfig: {}\n",
        dead.display()
    );
    let unreachable = load_str(&dir.path().join("prod.yaml"), &text)
        .expect("config")
        .remove(0);
    let run = run_scrape(&db.store, &unreachable, &RunOptions::default())
        .await
        .expect("scrape");
    assert_ne!(run.status, RunStatus::Succeeded);
    assert!(
        run.summary.deletions_blocked && run.summary.deleted == 0,
        "{:?}",
        run.summary
    );
    let now = items(&db.store).await;
    assert_eq!(now.len(), before.len(), "nothing deleted");
    let cluster = get(&now, "Cluster", "prod-eu1");
    assert_eq!(
        (cluster.2.as_str(), cluster.3.as_deref()),
        ("unhealthy", Some("Unreachable"))
    );
}

/// Polls until `check` holds, for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_watch_applies_changes_deletes_and_events_and_relists_on_gone(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let fake = cluster().await;
    let config = Arc::new(config(dir.path(), &fake, ""));
    let first = stratum_tests::scrape_succeeds(&db.store, &config).await;
    let before = items(&db.store).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let watch = tokio::spawn(stratum_scrapers::kubernetes::watch::run(
        db.store.clone(),
        config.clone(),
        config.kubernetes[0].clone(),
        Arc::new(tokio::sync::Mutex::new(())),
        cancel.clone(),
    ));
    // One watch per listed kind, EndpointSlices and events.
    eventually("every watch to open", || async {
        fake.open_watches() >= 15
    })
    .await;

    // MODIFIED: the crashing pod recovers → a diff and a health transition.
    let crashing_id = get(&before, "Pod", CRASHING).0;
    let mut pod = fake
        .get("v1", "Pod", Some("payments"), RUNNING)
        .expect("pod");
    pod["metadata"]["name"] = CRASHING.into();
    pod["metadata"]["uid"] = crashing_id.to_string().into();
    pod["status"]["podIP"] = "10.244.1.77".into();
    fake.apply(pod).expect("modify");
    eventually("the recovered pod", || async {
        items(&db.store)
            .await
            .get(&("Kubernetes::Pod".into(), CRASHING.into()))
            .is_some_and(|i| i.2 == "healthy")
    })
    .await;
    let changes = changes_of(&db.store, crashing_id).await;
    assert!(changes.iter().any(|c| c.0 == "diff"), "{changes:?}");
    assert!(
        changes.iter().any(|c| c.0 == "Healthy" && c.3 == "health"),
        "{changes:?}"
    );

    // An event's count moves on: the same change row counts 13.
    let mut event = fake
        .get(
            "v1",
            "Event",
            Some("payments"),
            "api-7d9f8b6c5-w2m4x.180c5a1b2c3d4e5f",
        )
        .expect("event");
    event["count"] = 13.into();
    event["lastTimestamp"] = "2026-11-30T10:03:00Z".into();
    fake.apply(event).expect("event");
    eventually("the event count", || async {
        changes_of(&db.store, crashing_id)
            .await
            .iter()
            .any(|c| c.0 == "BackOff" && c.2 == 13)
    })
    .await;
    assert_eq!(
        changes_of(&db.store, crashing_id)
            .await
            .iter()
            .filter(|c| c.0 == "BackOff")
            .count(),
        1
    );

    // A pod that appears and then joins a Service's EndpointSlice gets its
    // ServicePod edge; so does one matching a slice-less Service's selector.
    let mut joiner = fake
        .get("v1", "Pod", Some("payments"), RUNNING)
        .expect("pod");
    let joiner_uid = Uuid::new_v4();
    joiner["metadata"]["name"] = "api-7d9f8b6c5-j01n3".into();
    joiner["metadata"]["uid"] = joiner_uid.to_string().into();
    fake.apply(joiner).expect("add");
    eventually("the new pod", || async {
        items(&db.store)
            .await
            .contains_key(&("Kubernetes::Pod".into(), "api-7d9f8b6c5-j01n3".into()))
    })
    .await;
    let mut slice = fake
        .get(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some("payments"),
            "api-h7x2k",
        )
        .expect("slice");
    let mut endpoint = slice["endpoints"][0].clone();
    endpoint["addresses"] = serde_json::json!(["10.244.1.99"]);
    endpoint["targetRef"]["name"] = "api-7d9f8b6c5-j01n3".into();
    endpoint["targetRef"]["uid"] = joiner_uid.to_string().into();
    slice["endpoints"]
        .as_array_mut()
        .expect("endpoints")
        .push(endpoint);
    fake.apply(slice).expect("slice");
    let api_service = get(&before, "Service", "api").0;
    eventually("the joined pod's ServicePod edge", || async {
        edges(&db.store)
            .await
            .contains(&(api_service, joiner_uid, "ServicePod".to_string()))
    })
    .await;
    let mut worker = fake
        .get("v1", "Pod", Some("payments"), "worker-5c6d7e8f9-abcde")
        .expect("pod");
    let worker_uid = Uuid::new_v4();
    worker["metadata"]["name"] = "worker-5c6d7e8f9-fghij".into();
    worker["metadata"]["uid"] = worker_uid.to_string().into();
    fake.apply(worker).expect("add");
    let worker_service = get(&before, "Service", "worker").0;
    eventually("the selector's ServicePod edge", || async {
        edges(&db.store)
            .await
            .contains(&(worker_service, worker_uid, "ServicePod".to_string()))
    })
    .await;
    for name in ["api-7d9f8b6c5-j01n3", "worker-5c6d7e8f9-fghij"] {
        fake.delete("v1", "Pod", Some("payments"), name)
            .expect("delete");
    }
    eventually("the extra pods gone", || async {
        let now = items(&db.store).await;
        !now.contains_key(&("Kubernetes::Pod".into(), "api-7d9f8b6c5-j01n3".into()))
            && !now.contains_key(&("Kubernetes::Pod".into(), "worker-5c6d7e8f9-fghij".into()))
    })
    .await;

    // A bookmark moves nothing; DELETED soft-deletes with a Deleted change.
    fake.bookmark();
    fake.delete("v1", "ConfigMap", Some("payments"), "api-config")
        .expect("delete");
    let config_map = get(&before, "ConfigMap", "api-config").0;
    eventually("the deleted ConfigMap", || async {
        !items(&db.store)
            .await
            .contains_key(&("Kubernetes::ConfigMap".into(), "api-config".into()))
    })
    .await;
    assert!(
        changes_of(&db.store, config_map)
            .await
            .iter()
            .any(|c| c.0 == "Deleted")
    );

    // 410 Gone: every watch relists. A pod deleted while the watches were
    // gone is deleted by the relist; one added meanwhile appears.
    fake.expire_watches();
    let reporter = get(&before, "Pod", "reporter").0;
    fake.delete("v1", "Pod", Some("payments"), "reporter")
        .expect("delete");
    let mut added = fake
        .get("v1", "Pod", Some("payments"), RUNNING)
        .expect("pod");
    added["metadata"]["name"] = "api-7d9f8b6c5-n3w9z".into();
    added["metadata"]["uid"] = Uuid::new_v4().to_string().into();
    fake.apply(added).expect("add");
    eventually("the relist", || async {
        let now = items(&db.store).await;
        now.contains_key(&("Kubernetes::Pod".into(), "api-7d9f8b6c5-n3w9z".into()))
            && !now.contains_key(&("Kubernetes::Pod".into(), "reporter".into()))
    })
    .await;
    let now = items(&db.store).await;
    assert_eq!(
        get(&now, "Pod", "api-7d9f8b6c5-n3w9z").1,
        Some(get(&before, "ReplicaSet", "api-7d9f8b6c5").0)
    );
    assert!(
        changes_of(&db.store, reporter)
            .await
            .iter()
            .any(|c| c.0 == "Deleted")
    );
    assert_eq!(
        now.len(),
        before.len() - 1,
        "one pod and one ConfigMap gone, one pod new"
    );

    cancel.cancel();
    watch.await.expect("join").expect("watch ends cleanly");
    let runs = db
        .store
        .list_runs(first.scraper_id, 10)
        .await
        .expect("runs");
    assert!(
        runs.iter()
            .any(|r| r.mode == "incremental" && r.status != "running"),
        "the watch's run is settled"
    );
}

async fn change_rules_rename_copy_up_and_drop_event_changes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let fake = cluster().await;
    let rules = r#"  transform:
    changes:
      mapping:
        - filter: change_type == "BackOff"
          type: PodCrashLooping
          severity: critical
          action: copy-up
          ancestorType: Kubernetes::Deployment
        - filter: change_type == "ScalingReplicaSet"
          action: ignore
        - filter: change_type == "FailedScheduling" && config_item.namespace == "payments"
          severity: {expr: '"medium"'}
      exclude: ['change_type == "Scheduled"']
"#;
    let config = config(dir.path(), &fake, rules);
    stratum_tests::scrape_succeeds(&db.store, &config).await;
    let items = items(&db.store).await;
    let crashing = changes_of(&db.store, get(&items, "Pod", CRASHING).0).await;
    assert!(
        crashing
            .iter()
            .any(|c| c.0 == "PodCrashLooping" && c.1 == "critical" && c.2 == 12),
        "{crashing:?}"
    );
    assert!(
        !crashing.iter().any(|c| c.0 == "BackOff"),
        "renamed: {crashing:?}"
    );
    let deployment = changes_of(&db.store, get(&items, "Deployment", "api").0).await;
    assert!(
        deployment.iter().any(|c| c.0 == "PodCrashLooping"),
        "copied up to the Deployment: {deployment:?}"
    );
    assert!(
        !deployment.iter().any(|c| c.0 == "ScalingReplicaSet"),
        "ignored: {deployment:?}"
    );
    let pending = changes_of(&db.store, get(&items, "Pod", "worker-5c6d7e8f9-abcde").0).await;
    assert!(
        pending
            .iter()
            .any(|c| c.0 == "FailedScheduling" && c.1 == "medium"),
        "{pending:?}"
    );
    let running = changes_of(&db.store, get(&items, "Pod", RUNNING).0).await;
    assert!(
        !running.iter().any(|c| c.0 == "Scheduled"),
        "excluded: {running:?}"
    );
    // Bad rules are rejected at load.
    for (bad, says) in [
        (
            rules.replace("severity: critical", "severity: dire"),
            "unknown severity",
        ),
        (
            rules.replace("          ancestorType: Kubernetes::Deployment\n", ""),
            "needs ancestorType",
        ),
        (
            rules.replace("action: ignore", "action: shred"),
            "is not ignore",
        ),
    ] {
        let kubeconfig = fake
            .write_kubeconfig(dir.path(), "prod")
            .expect("kubeconfig");
        let text = format!(
            "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {{name: prod}}\nspec:\n  kubernetes:\n    - clusterName: prod-eu1\n      kubeconfig: {}\n{bad}",
            kubeconfig.display()
        );
        let Err(stratum_scrapers::ScraperError::Invalid(diags)) =
            load_str(&dir.path().join("prod.yaml"), &text)
        else {
            panic!("{says}: expected a rejection");
        };
        assert!(
            diags.iter().any(|d| d.message.contains(says)),
            "{says}: {diags:?}"
        );
    }
}

async fn relationship_lookups_link_objects_by_kind_name_and_namespace(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let fake = cluster().await;
    // Pods find the Deployment named by their `app` label (in their own
    // namespace); the Deployment finds its ConfigMap by an expression, in
    // Mission Control's `{value}` spelling; Pods find their Node, which is
    // cluster-scoped, so the namespace is ignored.
    let lookups = concat!(
        "      relationships:\n",
        "        - {kind: {value: Deployment}, name: {label: app}}\n",
        "        - {kind: ConfigMap, name: {expr: 'config.metadata.name + \"-config\"'}, namespace: {value: payments}}\n",
        "        - {kind: Node, name: $.spec.nodeName, namespace: {value: elsewhere}}\n",
    );
    let config = config(dir.path(), &fake, lookups);
    stratum_tests::scrape_succeeds(&db.store, &config).await;
    let items = items(&db.store).await;
    let edges = edges(&db.store).await;
    let has =
        |from: Uuid, to: Uuid, relation: &str| edges.contains(&(from, to, relation.to_string()));
    let deployment = get(&items, "Deployment", "api").0;
    for pod in ["api-7d9f8b6c5-q8kzt", "api-7d9f8b6c5-w2m4x"] {
        let pod = get(&items, "Pod", pod).0;
        assert!(has(deployment, pod, "DeploymentPod"), "{edges:?}");
        assert!(
            edges.iter().any(|(_, t, r)| *t == pod && r == "NodePod"),
            "{edges:?}"
        );
    }
    assert!(has(
        get(&items, "ConfigMap", "api-config").0,
        deployment,
        "ConfigMapDeployment"
    ));
    // The worker's `app` names no Deployment: no edge, and nothing made up.
    let worker = get(&items, "Pod", "worker-5c6d7e8f9-abcde").0;
    assert!(
        !edges
            .iter()
            .any(|(_, t, r)| *t == worker && r == "DeploymentPod"),
        "{edges:?}"
    );
    // No object links to itself (the Deployment's own `app` label names it).
    assert!(!has(deployment, deployment, "DeploymentDeployment"));

    // A lookup without a name is rejected at load.
    let kubeconfig = fake
        .write_kubeconfig(dir.path(), "prod")
        .expect("kubeconfig");
    let text = format!(
        "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {{name: prod}}\nspec:\n  kubernetes:\n    - clusterName: prod-eu1\n      kubeconfig: {}\n      relationships:\n        - kind: {{value: Deployment}}\n",
        kubeconfig.display()
    );
    let Err(stratum_scrapers::ScraperError::Invalid(diags)) =
        load_str(&dir.path().join("prod.yaml"), &text)
    else {
        panic!("expected a rejection");
    };
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("kind and name are required") && d.line == 8),
        "{diags:?}"
    );
}
