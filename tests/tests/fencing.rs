//! Ownership fencing (SPEC §2 (b)) on real SQLite and PostgreSQL: writes
//! through a handle fenced by a scraper's claim succeed while it is the
//! latest claim, and every kind of write fails with `Fenced` once another
//! replica has claimed the scraper, writing nothing; the claim closes the
//! runs the earlier owner left running.

use serde_json::json;
use stratum_domain::store::{IngestSession, ScraperRecord};
use stratum_domain::{DomainError, RunMode, ScraperSource, Store, ids};
use stratum_tests::{Backend, TestDb, item, keep_everything};

stratum_tests::on_both_backends!(a_later_claim_fences_the_earlier_owner_out);

fn record() -> ScraperRecord {
    ScraperRecord {
        name: "fenced".into(),
        namespace: "default".into(),
        spec: json!({}),
        source: ScraperSource::File,
    }
}

async fn live_count(store: &Store) -> u64 {
    store.count_items(&Default::default()).await.expect("count")
}

fn fenced_out<T: std::fmt::Debug>(result: Result<T, DomainError>, what: &str) {
    match result {
        Err(DomainError::Fenced(_)) => {}
        other => panic!("{what}: expected Fenced, got {other:?}"),
    }
}

async fn a_later_claim_fences_the_earlier_owner_out(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let scraper = ids::scraper_id("default", "fenced");

    // Replica A claims the scraper and writes a batch.
    let a = store.fenced(store.claim_scraper(scraper).await.expect("claim a"));
    assert_eq!(
        a.upsert_scraper(&record(), true).await.expect("register"),
        scraper
    );
    let (run, started) = a.start_run(scraper, RunMode::Full).await.expect("run");
    let mut session = IngestSession::new(scraper, run, started);
    a.ingest_batch(
        &mut session,
        vec![item("Test::Box", "one", json!({"n": 1}))],
    )
    .await
    .expect("a writes while it owns the scraper");
    assert_eq!(live_count(store).await, 1);

    // Replica B takes over: A's open run is closed, and A can write nothing.
    let b = store.fenced(store.claim_scraper(scraper).await.expect("claim b"));
    let runs = store.list_runs(scraper, 10).await.expect("runs");
    assert_eq!(runs[0].status, "failed");
    assert!(
        runs[0].errors.to_string().contains("another replica"),
        "{}",
        runs[0].errors
    );
    fenced_out(
        a.ingest_batch(
            &mut session,
            vec![item("Test::Box", "two", json!({"n": 2}))],
        )
        .await,
        "a batch",
    );
    fenced_out(
        a.complete_run(&mut session, &keep_everything()).await,
        "settling",
    );
    fenced_out(a.start_run(scraper, RunMode::Full).await, "a new run");
    fenced_out(
        a.delete_from_source(
            scraper,
            &[ids::item_id(scraper, "Test::Box", "one")],
            "test",
        )
        .await,
        "a delete",
    );
    assert_eq!(live_count(store).await, 1, "nothing A tried was written");

    // B writes freely; an unfenced handle (one process, SQLite) too.
    let (run, started) = b.start_run(scraper, RunMode::Full).await.expect("run");
    let mut session = IngestSession::new(scraper, run, started);
    b.ingest_batch(
        &mut session,
        vec![item("Test::Box", "two", json!({"n": 2}))],
    )
    .await
    .expect("b writes");
    b.complete_run(&mut session, &keep_everything())
        .await
        .expect("b settles");
    assert_eq!(live_count(store).await, 2);
}
