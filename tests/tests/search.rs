//! The search language against real SQLite and PostgreSQL: every field and
//! operator of SPEC §11 on a small hand-built catalog, with the expected
//! items counted by hand.

use chrono::Duration;
use serde_json::json;
use stratum_domain::store::{ItemFilter, PageRequest, RunCompletion};
use stratum_domain::{Health, ItemRef, ScrapedItem, Store, ids, search};
use stratum_tests::{Backend, TestDb, item};
use uuid::Uuid;

stratum_tests::on_both_backends!(every_field_and_operator_matches_the_hand_count);

const SCRAPER: &str = "search";

fn id_of(t: &str, ext: &str) -> Uuid {
    ids::item_id(ids::scraper_id("default", SCRAPER), t, ext)
}

fn pod(name: &str, namespace: &str, health: Health, config: serde_json::Value) -> ScrapedItem {
    let mut i = item("Kubernetes::Pod", name, config);
    i.namespace = Some(namespace.into());
    i.tags.insert("team".into(), namespace.into());
    i.health.health = health;
    i
}

fn catalog(with_gone: bool) -> Vec<ScrapedItem> {
    let mut deployment = item(
        "Kubernetes::Deployment",
        "api",
        json!({"spec": {"replicas": 2}}),
    );
    deployment.namespace = Some("payments".into());
    deployment.tags.insert("team".into(), "payments".into());
    let mut api1 = pod(
        "api-1",
        "payments",
        Health::Healthy,
        json!({"spec": {"replicas": 3}, "status": {"phase": "Running"}}),
    );
    api1.labels.insert("app".into(), "api".into());
    let mut api2 = pod(
        "api-2",
        "payments",
        Health::Unhealthy,
        json!({"spec": {"replicas": 1}}),
    );
    for p in [&mut api1, &mut api2] {
        p.parent = Some((
            ItemRef::External {
                item_type: "Kubernetes::Deployment".into(),
                external_id: "api".into(),
            },
            "DeploymentPod".into(),
        ));
    }
    let worker = pod(
        "worker-1",
        "shipping",
        Health::Warning,
        json!({"spec": {"replicas": 1}, "enabled": true}),
    );
    let mut db = item(
        "AWS::RDS::DBInstance",
        "billing-db",
        json!({"engine": "postgres"}),
    );
    db.properties = json!([{"name": "engine", "text": "postgres"}, {"name": "size", "value": 20}]);
    let mut items = vec![deployment, api1, api2, worker, db];
    if with_gone {
        items.push(item("Test::Thing", "gone", json!({})));
    }
    items
}

async fn scrape(store: &Store, items: Vec<ScrapedItem>) {
    let completion = RunCompletion {
        full: true,
        stale_item_age: Some(Duration::zero()),
        ..stratum_tests::keep_everything()
    };
    stratum_tests::scrape_items(store, SCRAPER, items, completion).await;
}

/// Moves every `last_scraped_at` an hour back so the next full run deletes
/// what it does not see, whatever the speed of the machine.
async fn backdate(store: &Store) {
    use sea_orm::ConnectionTrait;
    let backend = store.backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "UPDATE config_items SET last_scraped_at = $1",
        _ => "UPDATE config_items SET last_scraped_at = ?",
    };
    store
        .connection()
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [(stratum_domain::store::now() - Duration::hours(1)).into()],
        ))
        .await
        .expect("backdate");
}

async fn names(store: &Store, query: &str) -> Vec<String> {
    let filter = ItemFilter {
        search: search::parse(query).expect(query),
        ..ItemFilter::default()
    };
    let page = store
        .list_items(&filter, &[], &PageRequest::first(100))
        .await
        .expect(query);
    let total = store.count_items(&filter).await.expect(query);
    let mut names: Vec<String> = page.items.into_iter().map(|(_, m)| m.name).collect();
    assert_eq!(total as usize, names.len(), "{query}: totalCount");
    names.sort();
    names
}

async fn every_field_and_operator_matches_the_hand_count(backend: Backend) {
    let db = TestDb::new(backend).await;
    scrape(&db.store, catalog(true)).await;
    backdate(&db.store).await;
    scrape(&db.store, catalog(false)).await;

    let deployment = id_of("Kubernetes::Deployment", "api");
    let rds = id_of("AWS::RDS::DBInstance", "billing-db");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "type=Kubernetes::Pod".into(),
            vec!["api-1", "api-2", "worker-1"],
        ),
        (
            "type=kubernetes::pod health=unhealthy,warning".into(),
            vec!["api-2", "worker-1"],
        ),
        ("api".into(), vec!["api", "api-1", "api-2"]),
        ("name=*-1".into(), vec!["api-1", "worker-1"]),
        ("name:PI-".into(), vec!["api-1", "api-2"]),
        ("tags.team=payments".into(), vec!["api", "api-1", "api-2"]),
        ("tags.team=pay*".into(), vec!["api", "api-1", "api-2"]),
        ("!tags.team".into(), vec!["billing-db"]),
        (
            "tags.team=payments | namespace=shipping".into(),
            vec!["api", "api-1", "api-2", "worker-1"],
        ),
        (
            "type=Kubernetes::Pod !namespace=payments".into(),
            vec!["worker-1"],
        ),
        ("namespace!=payments".into(), vec!["billing-db", "worker-1"]),
        ("health!=healthy".into(), vec!["api-2", "worker-1"]),
        ("config.spec.replicas>=2".into(), vec!["api", "api-1"]),
        ("config.spec.replicas<2".into(), vec!["api-2", "worker-1"]),
        ("config.status.phase=Running".into(), vec!["api-1"]),
        ("config.enabled=true".into(), vec!["worker-1"]),
        ("config.engine=postgres".into(), vec!["billing-db"]),
        ("labels.app:pi".into(), vec!["api-1"]),
        ("labels.app".into(), vec!["api-1"]),
        ("properties.engine=postgres".into(), vec!["billing-db"]),
        ("properties.size=20".into(), vec!["billing-db"]),
        ("properties.engine!=postgres type=AWS::*".into(), vec![]),
        (
            format!("related={deployment},direction=outgoing"),
            vec!["api-1", "api-2"],
        ),
        (
            format!("related={deployment},direction=incoming,relation=hard"),
            vec![],
        ),
        (
            format!("related={deployment} health=unhealthy"),
            vec!["api-2"],
        ),
        (format!("id={rds}"), vec!["billing-db"]),
        (
            "updated>now-1h".into(),
            vec!["api", "api-1", "api-2", "billing-db", "worker-1"],
        ),
        ("created<now-1d".into(), vec![]),
        ("name=gone".into(), vec![]),
        ("deleted".into(), vec!["gone"]),
        ("deleted>now-1h name=gone".into(), vec!["gone"]),
        (
            "(type=AWS::* | (tags.team=shipping health=warning)) !name=api*".into(),
            vec!["billing-db", "worker-1"],
        ),
        (
            "source=test".into(),
            vec!["api", "api-1", "api-2", "billing-db", "worker-1"],
        ),
        ("name=\"100%_off\"".into(), vec![]),
    ];
    for (query, expected) in cases {
        assert_eq!(names(&db.store, &query).await, expected, "{query}");
    }

    // The structured filter and the query are ANDed.
    let filter = ItemFilter {
        namespaces: vec!["payments".into()],
        search: search::parse("health=unhealthy").expect("parse"),
        ..ItemFilter::default()
    };
    assert_eq!(db.store.count_items(&filter).await.expect("count"), 1);
}
