//! The event bus on both backends: a committed write is announced with its
//! row and item, and a batch that rolls back announces nothing (SPEC §13).

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::json;
use stratum_domain::events::{Delivery, EventCursor};
use stratum_domain::store::{IngestSession, ScraperRecord};
use stratum_domain::{Health, RunMode, ScraperSource, Store};
use stratum_tests::{Backend, TestDb, item};

stratum_tests::on_both_backends!(
    a_rolled_back_batch_announces_nothing,
    since_replays_stored_rows_then_goes_live
);

async fn session(store: &Store) -> IngestSession {
    let scraper = store
        .upsert_scraper(
            &ScraperRecord {
                name: "events".into(),
                namespace: "default".into(),
                spec: json!({}),
                source: ScraperSource::File,
            },
            true,
        )
        .await
        .expect("scraper");
    let (run, started) = store.start_run(scraper, RunMode::Full).await.expect("run");
    let mut session = IngestSession::new(scraper, run, started);
    store.preload_existing(&mut session).await.expect("preload");
    session
}

fn pod(health: Health, status: &str) -> stratum_domain::ScrapedItem {
    let mut it = item("Kubernetes::Pod", "web-1", json!({"app": "web"}));
    it.health.health = health;
    it.health.status = Some(status.into());
    it
}

/// Aborts any insert of a change whose summary mentions "poison".
async fn poison(store: &Store, on: bool) {
    let sql = match (store.backend(), on) {
        (sea_orm::DbBackend::Postgres, true) => {
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.summary LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER poison BEFORE INSERT ON config_changes FOR EACH ROW EXECUTE FUNCTION poison();"
        }
        (sea_orm::DbBackend::Postgres, false) => {
            "DROP TRIGGER poison ON config_changes; DROP FUNCTION poison();"
        }
        (_, true) => {
            "CREATE TRIGGER poison BEFORE INSERT ON config_changes WHEN NEW.summary LIKE '%poison%' \
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;"
        }
        (_, false) => "DROP TRIGGER poison;",
    };
    store
        .connection()
        .execute_unprepared(sql)
        .await
        .expect("trigger");
}

async fn a_rolled_back_batch_announces_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut s = session(&db.store).await;
    db.store
        .ingest_batch(&mut s, vec![pod(Health::Healthy, "Running")])
        .await
        .expect("first write");
    let mut subscriber = db
        .store
        .subscribe_changes(None, false, Box::new(|_| true))
        .await
        .expect("subscribe");

    poison(&db.store, true).await;
    let failed = db
        .store
        .ingest_batch(&mut s, vec![pod(Health::Unhealthy, "poison")])
        .await;
    assert!(failed.is_err(), "the trigger aborts the batch");
    let nothing = tokio::time::timeout(Duration::from_millis(500), subscriber.next()).await;
    assert!(
        nothing.is_err(),
        "no event for a rolled-back batch: {nothing:?}"
    );

    poison(&db.store, false).await;
    let mut s = session(&db.store).await;
    db.store
        .ingest_batch(&mut s, vec![pod(Health::Unhealthy, "CrashLoopBackOff")])
        .await
        .expect("second write");
    let delivery = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
        .await
        .expect("an event in time")
        .expect("the bus is open");
    let Delivery::Event(event) = delivery else {
        panic!("lagged: {delivery:?}");
    };
    assert!(event.is_health_transition());
    assert_eq!(event.change.change_type, "Unhealthy");
    assert_eq!(event.item.name, "web-1");
    assert_eq!(
        event.item.health, "unhealthy",
        "the item as it is after the write"
    );
    assert_eq!(
        event
            .transition_side("previous")
            .and_then(|p| p.get("health")),
        Some(&json!("healthy"))
    );
}

async fn since_replays_stored_rows_then_goes_live(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut s = session(&db.store).await;
    db.store
        .ingest_batch(&mut s, vec![pod(Health::Healthy, "Running")])
        .await
        .expect("write");
    let start = EventCursor::new(0, stratum_domain::store::now());
    for status in ["Warning one", "Unhealthy two"] {
        let health = if status.starts_with('W') {
            Health::Warning
        } else {
            Health::Unhealthy
        };
        db.store
            .ingest_batch(&mut s, vec![pod(health, status)])
            .await
            .expect("write");
    }
    let mut subscriber = db
        .store
        .subscribe_changes(Some(start), true, Box::new(|_| true))
        .await
        .expect("subscribe");
    let mut types = Vec::new();
    for _ in 0..2 {
        match subscriber.next().await {
            Some(Delivery::Event(e)) => types.push(e.change.change_type.clone()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(types, ["Warning", "Unhealthy"], "replayed in order");
    db.store
        .ingest_batch(&mut s, vec![pod(Health::Healthy, "Running again")])
        .await
        .expect("write");
    match tokio::time::timeout(Duration::from_secs(10), subscriber.next()).await {
        Ok(Some(Delivery::Event(e))) => assert_eq!(e.change.change_type, "Healthy"),
        other => panic!("{other:?}"),
    }
    let nothing = tokio::time::timeout(Duration::from_millis(300), subscriber.next()).await;
    assert!(nothing.is_err(), "no duplicate: {nothing:?}");
}
